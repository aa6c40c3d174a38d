"""Recalibrated estimators: a fitted model whose predictions are scaled, one factor per target.

Self-contained on purpose (numpy and scikit-learn only, nothing from ``customer_analytics``): a
recalibrated model stored in the registry loads and predicts wherever the model goes. Which
candidates are recalibrated, and by how much, is decided in :mod:`customer_analytics.models`.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone


class ScaledRegressor(RegressorMixin, BaseEstimator):
    """``estimator``'s predictions times ``scale`` (one factor per target column).

    Args:
        estimator: the model to scale (fitted by :meth:`fit`, or already fitted via :meth:`wrap`).
        scale: factor per target, e.g. actual / predicted totals over the cross-validation folds.
    """

    def __init__(self, estimator=None, scale: tuple[float, ...] = ()):
        self.estimator = estimator
        self.scale = scale

    @classmethod
    def wrap(cls, fitted, scale) -> ScaledRegressor:
        """A ScaledRegressor around an already fitted model (no refit)."""
        out = cls(fitted, tuple(float(s) for s in scale))
        out.estimator_ = fitted
        out.n_features_in_ = getattr(fitted, "n_features_in_", None)
        return out

    def fit(self, X, y):  # noqa: N803 - scikit-learn convention
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.n_features_in_ = getattr(self.estimator_, "n_features_in_", None)
        return self

    def predict(self, X) -> np.ndarray:  # noqa: N803
        pred = np.asarray(self.estimator_.predict(X), dtype=float)
        pred = pred.reshape(len(pred), -1)
        return pred * np.asarray(self.scale, dtype=float)[None, :]
