"""The hybrid candidate's estimator: one Poisson-loss model per target, fitted on non-negative labels.

Self-contained on purpose (numpy and scikit-learn only, nothing from ``customer_analytics``), so
a stored model loads and predicts wherever it goes. The candidate itself (features, monotone
constraints, the buy-till-you-die inputs) is assembled in :func:`customer_analytics.models.candidates`.

Why Poisson loss: spend and quantities in a window are mostly zero with a long right tail. A
log-link model predicts a positive mean whose effects multiply (like the BTYD models' expected
purchases x expected value), and with its canonical loss the predictions add up to the labels'
total on the training rows, so it starts out calibrated. Net spend can be negative (returns in
the window): the labels are clipped at 0 for fitting, as the predictions are.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone


class PerTargetPoisson(RegressorMixin, BaseEstimator):
    """A clone of ``estimator`` (a Poisson-loss regressor) per target column, on labels clipped at 0.

    A target that is 0 on every training row is predicted as 0 (a Poisson fit needs a positive total).

    Args:
        estimator: an unfitted regressor accepting non-negative labels (e.g. gradient boosting
            with ``loss="poisson"``).
    """

    def __init__(self, estimator=None):
        self.estimator = estimator

    def fit(self, X, y):  # noqa: N803 - scikit-learn convention
        y = np.clip(np.asarray(y, dtype=float).reshape(len(X), -1), 0, None)
        self.estimators_ = [clone(self.estimator).fit(X, y[:, j]) if y[:, j].sum() > 0 else None
                            for j in range(y.shape[1])]
        self.n_outputs_ = y.shape[1]
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X) -> np.ndarray:  # noqa: N803
        out = np.zeros((len(X), self.n_outputs_))
        for j, est in enumerate(self.estimators_):
            if est is not None:
                out[:, j] = est.predict(X)
        return out
