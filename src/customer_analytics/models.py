"""Model candidates, time-based evaluation, and selection.

Every candidate is a scikit-learn estimator predicting all label columns at once (spend, then
quantity per product type). Preprocessing lives inside each ``Pipeline`` so training and
scoring can never drift apart. Baselines are part of every comparison, so the report can say
how much the real models add.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from customer_analytics import features as ft

log = logging.getLogger(__name__)

BASELINES = ("last_period", "mean")


class LastPeriodBaseline(RegressorMixin, BaseEstimator):
    """Naive baseline: next period's spend and quantities equal the last period's.

    Args:
        source_columns: input column for each target, in target order (``SPEND_LAST``, ``QTY_LAST_*``).
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


def _preprocessor(numeric: list[str], scale: bool) -> ColumnTransformer:
    num_steps = [SimpleImputer(strategy="median", add_indicator=True)] + ([StandardScaler()] if scale else [])
    return ColumnTransformer([
        ("categorical", OneHotEncoder(handle_unknown="ignore", min_frequency=20), ft.CATEGORICAL),
        ("numeric", make_pipeline(*num_steps), numeric),
    ])


def candidates(products: list[str], seed: int) -> dict[str, Callable[[], BaseEstimator]]:
    """Factories for every known candidate, keyed by the names used in ``env.yaml``."""
    numeric = [c for c in ft.feature_columns(products) if c not in ft.CATEGORICAL]
    last_cols = ("SPEND_LAST",) + tuple(ft.product_column("QTY_LAST", p) for p in products)
    return {
        "last_period": lambda: LastPeriodBaseline(last_cols),
        "mean": lambda: DummyRegressor(strategy="mean"),
        "ridge": lambda: Pipeline([("prep", _preprocessor(numeric, scale=True)), ("model", Ridge(alpha=10.0))]),
        "random_forest": lambda: Pipeline([
            ("prep", _preprocessor(numeric, scale=False)),
            ("model", RandomForestRegressor(n_estimators=150, min_samples_leaf=20, max_features=0.4,
                                            n_jobs=-1, random_state=seed)),
        ]),
        "hist_gradient_boosting": lambda: Pipeline([
            ("prep", _preprocessor(numeric, scale=False)),
            ("model", MultiOutputRegressor(HistGradientBoostingRegressor(
                max_iter=200, learning_rate=0.05, min_samples_leaf=40, l2_regularization=1.0,
                random_state=seed))),
        ]),
    }


def metrics(y_true: pd.DataFrame, y_pred: np.ndarray) -> dict[str, float]:
    """Spend RMSE/MAE/R² (first column), error on the top decile by actual spend, mean quantity MAE."""
    yt = y_true.to_numpy(dtype=float)
    spend_t, spend_p = yt[:, 0], y_pred[:, 0]
    top = spend_t >= np.quantile(spend_t, 0.9)
    return {
        "rmse": float(np.sqrt(mean_squared_error(spend_t, spend_p))),
        "mae": float(mean_absolute_error(spend_t, spend_p)),
        "r2": float(r2_score(spend_t, spend_p)),
        "top_decile_mae": float(mean_absolute_error(spend_t[top], spend_p[top])),
        "qty_mae": float(mean_absolute_error(yt[:, 1:], y_pred[:, 1:])) if yt.shape[1] > 1 else float("nan"),
    }


def split_xy(df: pd.DataFrame, products: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Model inputs and labels from a FEATURES frame."""
    return df[ft.feature_columns(products)], df[ft.label_columns(products)].astype(float)


def compare(train: pd.DataFrame, holdout: pd.DataFrame, products: list[str], names: tuple[str, ...],
            seed: int) -> tuple[pd.DataFrame, dict[str, BaseEstimator], dict[str, np.ndarray]]:
    """Fit every candidate on ``train``, score it on the later ``holdout`` window.

    Returns the leaderboard (one row per model, sorted by RMSE), the fitted models and their
    holdout predictions.
    """
    factories = candidates(products, seed)
    x_tr, y_tr = split_xy(train, products)
    x_ho, y_ho = split_xy(holdout, products)
    rows, fitted, preds = [], {}, {}
    for name in names:
        started = time.perf_counter()
        model = factories[name]().fit(x_tr, y_tr)
        preds[name] = np.clip(model.predict(x_ho), 0, None)
        fitted[name] = model
        rows.append({"model": name, "kind": "baseline" if name in BASELINES else "model",
                     **metrics(y_ho, preds[name]), "fit_seconds": time.perf_counter() - started})
        log.info("%s: holdout spend RMSE %.3f", name, rows[-1]["rmse"])
    board = pd.DataFrame(rows).set_index("model").sort_values("rmse")
    return board, fitted, preds


def select(board: pd.DataFrame, primary_metric: str) -> tuple[str, str, float]:
    """Best model and best baseline by ``primary_metric``; improvement of the one over the other.

    Returns ``(best_model, best_baseline, improvement)`` where improvement is the relative error
    reduction (for R², the relative gain) of the best model over the best baseline.
    """
    higher_better = primary_metric == "r2"
    ranked = board.sort_values(primary_metric, ascending=not higher_better)
    best = ranked.index[0]
    baselines = ranked[ranked["kind"] == "baseline"]
    if baselines.empty:
        return best, "", float("nan")
    base = baselines.index[0]
    b, m = board.loc[base, primary_metric], board.loc[best, primary_metric]
    improvement = (m - b) / abs(b) if higher_better else (b - m) / b
    return best, base, float(improvement)


def refit(name: str, train: pd.DataFrame, holdout: pd.DataFrame, products: list[str], seed: int) -> BaseEstimator:
    """Fit candidate ``name`` again on every labelled window (train + holdout), for scoring."""
    x, y = split_xy(pd.concat([train, holdout], ignore_index=True), products)
    return candidates(products, seed)[name]().fit(x, y)


def verdict(best: str, baseline: str, gain: float, metric: str) -> str:
    """Markdown sentence stating the selection rule and how much the winner beats the baselines."""
    rule = f"Selection rule: lowest held-out spend **{metric.upper()}**" if metric != "r2" else \
        "Selection rule: highest held-out spend **R²**"
    if not baseline:
        return f"{rule}. Chosen: **{best}** (no baseline in the comparison)."
    if best == baseline:
        return f"{rule}. Chosen: **{best}** — no model beat the naive baselines on this window."
    return (f"{rule}. Chosen: **{best}**, whose {metric.upper()} is **{gain:.1%} better** than the best "
            f"naive baseline (**{baseline}**).")
