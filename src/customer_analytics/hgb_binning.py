"""Weighted binning of scikit-learn's histogram gradient boosting, one sort per feature.

The hybrid candidate (:class:`customer_analytics.btyd.BTYDBoosting`) fits a
``HistGradientBoostingRegressor`` with sample weights. Since scikit-learn 1.8 the weights also
shape the bins, and scikit-learn 1.9 computes each feature's 254 bin edges with one call of
``_weighted_percentile`` per edge, which sorts the column again every time. Measured here on
6,841 training rows (10k orders): 1.5 s per fit, ~85% of it in those calls; on 60,000 rows it
was most of the hybrid's 16.7 s.

:func:`find_binning_thresholds` sorts the column once and takes every edge in one call of
:func:`weighted_percentiles`: ``_weighted_percentile``'s arithmetic on arrays (scikit-learn's own
loops in Python over the 253 percentiles, ~47 ms a column; this takes ~0.3 ms), the same sort,
sums and searches, so the same numbers bit for bit. :func:`install` puts it (scikit-learn
1.9.1's function otherwise) in place of scikit-learn's, on the versions it was checked against;
:func:`customer_analytics.models.candidates` calls it (not :mod:`customer_analytics.btyd`, whose
classes travel to Snowflake by value and import nothing of ours). scikit-learn has merged the
one-call fix upstream (scikit-learn/scikit-learn#34248, not released as of 1.9.1); on other
versions nothing is replaced. ``tests/test_hgb_binning.py`` checks the edges and the percentiles
against scikit-learn's own.
"""

from __future__ import annotations

import numpy as np
import sklearn
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.ensemble._hist_gradient_boosting import binning
from sklearn.ensemble._hist_gradient_boosting.common import ALMOST_INF, X_DTYPE

#: the scikit-learn releases whose ``_find_binning_thresholds`` this module reproduces
CHECKED_VERSIONS = ("1.9.1",)
#: scikit-learn's own function, as imported
ORIGINAL = binning._find_binning_thresholds


def find_binning_thresholds(
    col_data: np.ndarray, max_bins: int, sample_weight: np.ndarray | None = None
) -> np.ndarray:
    """scikit-learn 1.9.1's ``_find_binning_thresholds``, the weighted percentiles at once."""
    if sample_weight is None:
        return ORIGINAL(col_data, max_bins)
    missing_mask = np.isnan(col_data)
    if missing_mask.any():
        col_data = col_data[~missing_mask]
        sample_weight = sample_weight[~missing_mask]
    nnz_sw = sample_weight != 0
    col_data = col_data[nnz_sw]
    sample_weight = sample_weight[nnz_sw]

    sort_idx = np.argsort(col_data)
    col_data = col_data[sort_idx]
    sample_weight = sample_weight[sort_idx]
    distinct_values = np.unique(col_data).astype(X_DTYPE)
    if len(distinct_values) == 1:
        return np.asarray([])
    if len(distinct_values) <= max_bins:
        bin_thresholds = sliding_window_view(distinct_values, 2).mean(axis=1)
    else:
        percentiles = np.linspace(0, 100, num=max_bins + 1)[1:-1]
        bin_thresholds = weighted_percentiles(col_data, sample_weight, percentiles)
        assert bin_thresholds.shape[0] == max_bins - 1
    unique_bin_values = np.unique(bin_thresholds)
    if unique_bin_values.shape[0] != bin_thresholds.shape[0]:
        bin_thresholds = unique_bin_values
    np.clip(bin_thresholds, a_min=None, a_max=ALMOST_INF, out=bin_thresholds)
    return bin_thresholds


def weighted_percentiles(
    values: np.ndarray, weights: np.ndarray, percentiles: np.ndarray
) -> np.ndarray:
    """``_weighted_percentile(values, weights, percentiles, average=True)`` for a 1-D column,
    every percentile at once.

    scikit-learn 1.9.1's function loops in Python over the percentiles (a search, two clips and a
    few small arrays each): ~47 ms for the 253 edges of one column, times every column of every
    weighted fit. This is the same arithmetic on arrays: the same sort, cumulative sum, scaled
    ranks, searches and averages, so the same numbers bit for bit (``tests/test_hgb_binning.py``).
    """
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    ranks = np.asarray(percentiles, dtype=np.float64)
    if not (weights != 0).any():
        return np.full(ranks.shape, np.nan)
    order = np.argsort(values.reshape(-1, 1), axis=0)[:, 0]  # scikit-learn's (unstable) sort
    sorted_weights = weights[order]
    nan = np.isnan(values[order])
    if nan.any():
        sorted_weights[nan] = 0
    cdf = np.cumsum(sorted_weights)
    adjusted = ranks / 100 * cdf[-1]
    at_zero = adjusted == 0
    adjusted[at_zero] = np.nextafter(adjusted[at_zero], adjusted[at_zero] + 1)
    last = len(values) - 1
    index = np.clip(np.searchsorted(cdf, adjusted), 0, last)
    above = (cdf[index] - adjusted) > np.finfo(np.float64).eps
    following = np.clip(index + 1, 0, last)
    following_in_sorted = order[following]
    for i in np.flatnonzero(weights[following_in_sorted] == 0):  # next weight 0: the next one up
        nxt = np.searchsorted(cdf, cdf[index[i]], side="right")
        following_in_sorted[i] = order[nxt if nxt <= last else index[i]]
    low = values[order[index]]
    return np.where(above, low, (low + values[following_in_sorted]) / 2)


def install() -> bool:
    """Use :func:`find_binning_thresholds` in scikit-learn's binning; whether it is in place.

    Idempotent and safe from several threads (the same function is assigned each time)."""
    if sklearn.__version__ not in CHECKED_VERSIONS:
        return False
    binning._find_binning_thresholds = find_binning_thresholds
    return True
