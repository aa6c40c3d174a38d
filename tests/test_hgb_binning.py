"""The weighted bin edges of histogram gradient boosting, one sort per feature (hgb_binning)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.ensemble._hist_gradient_boosting import binning
from sklearn.utils.stats import _weighted_percentile

from customer_analytics import btyd, hgb_binning
from customer_analytics import models as md

checked = pytest.mark.skipif(
    sklearn.__version__ not in hgb_binning.CHECKED_VERSIONS,
    reason=f"scikit-learn {sklearn.__version__} keeps its own binning",
)


def _columns(seed: int):
    """Columns of every shape the binning meets: continuous, few or many repeated values,
    missing values, zero and unit weights, one distinct value."""
    rng = np.random.default_rng(seed)
    for case in range(60):
        n = int(rng.integers(2, 4000))
        kind = case % 6
        if kind == 0:
            x = rng.normal(size=n)
        elif kind == 1:
            x = rng.integers(0, int(rng.integers(2, 700)), size=n).astype(float)
        elif kind == 2:
            x = np.round(rng.exponential(size=n), 2)
        elif kind == 3:
            x = rng.normal(size=n)
            x[rng.random(n) < 0.3] = np.nan
        elif kind == 4:
            x = np.full(n, 3.0)
        else:
            x = rng.lognormal(size=n) * 1e6
        w = np.ones(n) if case % 7 == 0 else rng.exponential(size=n)
        if case % 3 == 0:
            w[rng.random(n) < 0.4] = 0
        if w[~np.isnan(x)].sum() > 0:
            yield case, x, w


@checked
@pytest.mark.parametrize("seed", [0, 1])
def test_edges_are_scikit_learns_own(seed):
    compared = 0
    for case, x, w in _columns(seed):
        for max_bins in (255, 16):
            ours = hgb_binning.find_binning_thresholds(x.copy(), max_bins, w.copy())
            theirs = hgb_binning.ORIGINAL(x.copy(), max_bins, w.copy())
            np.testing.assert_array_equal(ours, theirs, err_msg=f"case {case}, {max_bins} bins")
            compared += 1
    assert compared > 100
    x = np.arange(50.0)
    np.testing.assert_array_equal(
        hgb_binning.find_binning_thresholds(x, 255), hgb_binning.ORIGINAL(x, 255)
    )


@checked
@pytest.mark.parametrize("seed", [0, 1])
def test_all_percentiles_at_once_are_scikit_learns_weighted_percentiles(seed):
    """The vectorised ``_weighted_percentile(..., average=True)``: every column of
    :func:`_columns` plus ties under integer weights and zero weights right after a percentile
    (its search for the next weighted value), at 0 and 100 and between, bit for bit."""
    rng = np.random.default_rng(seed)
    cases = [(x, w) for _, x, w in _columns(seed)]
    for _ in range(40):
        n = int(rng.integers(1, 300))
        x = rng.integers(0, int(rng.integers(1, 20)), size=n).astype(float)
        cases.append((x, rng.integers(0, 3, size=n).astype(float)))
    cases = [(x, w) for x, w in cases if w.sum() > 0]
    for x, w in cases:
        ranks = np.concatenate([[0.0, 100.0], np.linspace(0, 100, int(rng.integers(3, 300)))])
        theirs = np.asarray(_weighted_percentile(x.copy(), w.copy(), ranks, average=True))
        ours = hgb_binning.weighted_percentiles(x.copy(), w.copy(), ranks)
        np.testing.assert_array_equal(ours, theirs)
    assert len(cases) > 60


@checked
def test_a_weighted_booster_learns_the_same_model(monkeypatch):
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.normal(size=3000), rng.exponential(size=3000)])
    y = rng.poisson(np.exp(0.5 * x[:, 0]))
    w = rng.exponential(size=3000)

    def fit():
        model = HistGradientBoostingRegressor(loss="poisson", max_iter=30, random_state=0)
        return model.fit(x, y, sample_weight=w).predict(x)

    monkeypatch.setattr(binning, "_find_binning_thresholds", hgb_binning.ORIGINAL)
    theirs = fit()
    assert hgb_binning.install()
    assert binning._find_binning_thresholds is hgb_binning.find_binning_thresholds
    np.testing.assert_array_equal(fit(), theirs)


@checked
def test_the_candidates_put_it_in_place_and_the_hybrid_fits_with_it(monkeypatch):
    """``models.candidates`` installs it (not :mod:`btyd`, whose classes travel to Snowflake by
    value and import nothing of ours); the hybrid's weighted booster then bins with it."""
    monkeypatch.setattr(binning, "_find_binning_thresholds", hgb_binning.ORIGINAL)
    rng = np.random.default_rng(4)
    n = 600
    x = pd.DataFrame(
        {
            "BTYD_EXP_SPEND": rng.exponential(20, n),
            "SPEND": rng.exponential(50, n),
            "QTY_A": rng.poisson(2, n).astype(float),
            "AGE_DAYS": rng.integers(1, 900, n).astype(float),
        }
    )
    y = np.column_stack([rng.exponential(20, n), rng.poisson(1, n)])
    hybrid = md.candidates(list(x.columns), ["SPEND_NEXT", "QTY_NEXT_A"], 0)["hybrid_boosting"]
    assert binning._find_binning_thresholds is hgb_binning.find_binning_thresholds
    calls = []

    def counted(col_data, max_bins, sample_weight=None):
        calls.append(sample_weight is not None)
        return hgb_binning.find_binning_thresholds(col_data, max_bins, sample_weight)

    monkeypatch.setattr(binning, "_find_binning_thresholds", counted)
    assert hybrid().fit(x, y).booster_ is not None
    assert calls and all(calls)  # every column binned with the weights
    assert "customer_analytics" not in Path(btyd.__file__).read_text().split('"""', 2)[2]


def test_other_versions_keep_scikit_learns_binning(monkeypatch):
    monkeypatch.setattr(binning, "_find_binning_thresholds", hgb_binning.ORIGINAL)
    monkeypatch.setattr(sklearn, "__version__", "0.0.0")
    assert not hgb_binning.install()
    assert binning._find_binning_thresholds is hgb_binning.ORIGINAL
