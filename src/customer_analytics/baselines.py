"""The naive baseline estimators, self-contained: this module imports nothing from
customer_analytics.

On Snowflake a model is shipped to the warehouse by value (snowflake-ml's ``ext_modules``
pickles this module's classes with cloudpickle), and it is unpickled where customer_analytics
is not installed. So the classes here may use only the standard library, numpy, pandas and
scikit-learn, which the warehouse has (``registry.conda_dependencies``); a test unpickles every
candidate in a process where customer_analytics cannot be imported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

#: the segments of the segment-mean baseline: the acquisition channel a marketer already knows
SEGMENT_COLUMNS = ("CHANNEL",)
#: fill value of a missing segment value (the same as ``features.UNKNOWN``, checked by a test)
UNKNOWN = "unknown"


class LastPeriodBaseline(RegressorMixin, BaseEstimator):
    """Naive baseline: next period's spend and quantities equal the last period's.

    Args:
        source_columns: input column for each target, in target order (``SPEND_LAST``,
            ``QTY_LAST_*``).
    """

    def __init__(self, source_columns: tuple[str, ...] = ()):
        self.source_columns = source_columns

    def fit(self, X: pd.DataFrame, y=None):  # noqa: N803 - scikit-learn convention
        missing = [c for c in self.source_columns if c not in X.columns]
        if missing:
            raise ValueError(f"LastPeriodBaseline: input lacks columns {missing}")
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return X[list(self.source_columns)].to_numpy(dtype=float)


class SegmentMeanBaseline(RegressorMixin, BaseEstimator):
    """Naive baseline: the mean of each target over the training rows of the customer's segment.

    Segments never seen in training get the overall mean.

    Args:
        segment_columns: input columns whose combination of values defines a segment.
    """

    def __init__(self, segment_columns: tuple[str, ...] = SEGMENT_COLUMNS):
        self.segment_columns = segment_columns

    def _keys(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        cols = [X[c].fillna(UNKNOWN).astype(str) for c in self.segment_columns]
        key = cols[0]
        for c in cols[1:]:
            key = key + "|" + c
        return key.to_numpy()

    def fit(self, X: pd.DataFrame, y):  # noqa: N803
        y = np.asarray(y, dtype=float).reshape(len(X), -1)
        keys = self._keys(X)
        frame = pd.DataFrame(y).groupby(keys, sort=True).mean()
        self.segments_ = [str(k) for k in frame.index]
        self.means_ = frame.to_numpy(dtype=float)
        self.overall_ = y.mean(axis=0)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        pos = pd.Index(self.segments_).get_indexer(self._keys(X))
        table = (
            np.vstack([self.means_, self.overall_[None, :]])
            if len(self.segments_)
            else self.overall_[None, :]
        )
        return table[np.where(pos >= 0, pos, len(self.segments_))]
