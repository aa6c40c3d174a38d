"""Model candidates, time-based evaluation, selection, and the figures' numbers.

Every candidate is a scikit-learn estimator predicting all label columns at once (spend, then
quantity per product type), built by a factory function in :func:`candidates`; preprocessing
lives inside each ``Pipeline`` so training and scoring can never drift apart. Naive baselines
are part of every comparison, so the report can say how much the real models add.

Evaluation is by time only (rows of one cut-off share customers, so a random split would leak):

* **cross-validation over cut-offs** — for each of the last ``cv_folds`` training cut-offs, fit
  on the cut-offs before it, validate on it (expanding window; label windows never overlap the
  validation window because cut-offs are ``horizon_days`` apart);
* **held-out window** — fit on every training cut-off, evaluate once on the held-out cut-off.

Selection: lowest (R²: highest) mean cross-validated spend metric, ``primary_metric``; the held-out
window then says, untouched by the selection, how much better the chosen model is than the best
naive baseline (with a paired bootstrap interval). Fitting cost is bounded by the number of
training rows (``max_train_rows``, sampled in the warehouse, see :func:`features.load_labelled`)
and by the fixed model sizes below.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from customer_analytics import features as ft

# the baselines live in a self-contained module (shipped by value to the warehouse); names kept here
from customer_analytics.baselines import SEGMENT_COLUMNS, LastPeriodBaseline, SegmentMeanBaseline  # noqa: F401

log = logging.getLogger(__name__)

BASELINES = ("last_period", "mean", "segment_mean")
METRICS = ("rmse", "mae", "r2", "top_decile_mae", "qty_mae")
HIGHER_IS_BETTER = {"r2"}
METRIC_LABELS = {"rmse": "RMSE", "mae": "MAE", "r2": "R²", "top_decile_mae": "MAE on the top 10% spenders",
                 "qty_mae": "mean quantity MAE"}
#: model sizes: fixed so that fitting cost grows only with the (capped) number of training rows
RF_TREES = 60
HGB_ITERATIONS = 200
IMPORTANCE_ROWS = 1000
IMPORTANCE_REPEATS = 3
BOOTSTRAP_SAMPLES = 400
#: OpenMP threads for gradient boosting. Measured here on the shared 2-core machine: the same
#: fits took 146 s with OpenMP's default threads under CPU contention and 6 s with one thread.
OPENMP_THREADS = 1


def _preprocessor(features: list[str], scale: bool, impute: bool = True) -> ColumnTransformer:
    categorical = [c for c in ft.CATEGORICAL if c in features]
    numeric = [c for c in features if c not in categorical]
    steps = ([SimpleImputer(strategy="median", add_indicator=True)] if impute else []) + \
        ([StandardScaler()] if scale else [])
    return ColumnTransformer([
        ("categorical", OneHotEncoder(handle_unknown="ignore", min_frequency=20, sparse_output=False), categorical),
        ("numeric", make_pipeline(*steps) if steps else "passthrough", numeric),
    ])


def last_period_sources(targets: list[str]) -> tuple[str, ...]:
    """The "last period" input column of each target (``SPEND_NEXT`` -> ``SPEND_LAST``, ...)."""
    prefix = ft.LABEL_QTY_PREFIX + "_"
    return tuple("SPEND_LAST" if t == ft.LABEL_SPEND else "QTY_LAST_" + t[len(prefix):] for t in targets)


def candidates(features: list[str], targets: list[str], seed: int) -> dict[str, Callable[[], BaseEstimator]]:
    """Factories for every known candidate, keyed by the names used in ``env.yaml``.

    Args:
        features: model input columns (categorical ones are one-hot encoded inside the pipeline).
        targets: label columns, spend first.
        seed: random state of every randomised model.
    """
    return {
        "last_period": lambda: LastPeriodBaseline(last_period_sources(targets)),
        "mean": lambda: DummyRegressor(strategy="mean"),
        "segment_mean": lambda: SegmentMeanBaseline(tuple(c for c in SEGMENT_COLUMNS if c in features)),
        "ridge": lambda: Pipeline([("prep", _preprocessor(features, scale=True)), ("model", Ridge(alpha=10.0))]),
        "random_forest": lambda: Pipeline([
            ("prep", _preprocessor(features, scale=False)),
            ("model", RandomForestRegressor(n_estimators=RF_TREES, min_samples_leaf=20, max_features=0.4,
                                            max_samples=0.5, n_jobs=-1, random_state=seed)),
        ]),
        "hist_gradient_boosting": lambda: Pipeline([
            ("prep", _preprocessor(features, scale=False, impute=False)),  # missing values handled natively
            ("model", MultiOutputRegressor(HistGradientBoostingRegressor(
                max_iter=HGB_ITERATIONS, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=50,
                l2_regularization=1.0,
                early_stopping=True, validation_fraction=0.1, n_iter_no_change=15, random_state=seed))),
        ]),
    }


def metrics(y_true: np.ndarray | pd.DataFrame, y_pred: np.ndarray) -> dict[str, float]:
    """Spend RMSE/MAE/R² (first column), MAE on the top decile by actual spend, mean quantity MAE."""
    yt = np.asarray(y_true, dtype=float)
    yt = yt.reshape(len(yt), -1)
    y_pred = np.asarray(y_pred, dtype=float).reshape(len(yt), -1)
    spend_t, spend_p = yt[:, 0], y_pred[:, 0]
    top = spend_t >= np.quantile(spend_t, 0.9)
    return {
        "rmse": float(np.sqrt(mean_squared_error(spend_t, spend_p))),
        "mae": float(mean_absolute_error(spend_t, spend_p)),
        "r2": float(r2_score(spend_t, spend_p)) if np.ptp(spend_t) > 0 else float("nan"),
        "top_decile_mae": float(mean_absolute_error(spend_t[top], spend_p[top])),
        "qty_mae": float(mean_absolute_error(yt[:, 1:], y_pred[:, 1:])) if yt.shape[1] > 1 else float("nan"),
    }


def is_better(a: float, b: float, metric: str, rel_tol: float = 1e-9) -> bool:
    """Whether metric value ``a`` is better than ``b`` by more than ``rel_tol`` (relative)."""
    margin = rel_tol * max(abs(a), abs(b))
    return a > b + margin if metric in HIGHER_IS_BETTER else a < b - margin


def sequential_predictions(model: BaseEstimator) -> BaseEstimator:
    """Set every ``n_jobs`` of a fitted model to 1, so that its predictions are bit-for-bit reproducible.

    A random forest predicting with several threads adds the trees' outputs in the order the
    threads finish (differences of ~1e-14 from one call to the next); fitting is unaffected.
    """
    jobs = {k: 1 for k, v in model.get_params(deep=True).items() if k.endswith("n_jobs") and v not in (None, 1)}
    return model.set_params(**jobs) if jobs else model


def usable_features(train: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Model inputs and targets of a FEATURES frame, leaving out inputs missing on every training row."""
    feats, targets = ft.model_columns(list(train.columns))
    empty = [c for c in feats if train[c].isna().all()]
    if empty:
        log.warning("leaving out features that are missing on every training row: %s", empty)
    return [c for c in feats if c not in empty], targets


def predict(model: BaseEstimator, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Predictions of ``model`` for ``frame``, clipped at 0 (spend and quantities cannot be negative)."""
    return np.clip(np.asarray(model.predict(frame[features]), dtype=float).reshape(len(frame), -1), 0, None)


def fold_cutoffs(train: pd.DataFrame, cv_folds: int) -> list:
    """The training cut-offs used as validation folds (the last ``cv_folds``, each with earlier data)."""
    cutoffs = sorted(train["CUTOFF"].unique())
    n = min(cv_folds, len(cutoffs) - 1)
    if n < cv_folds:
        log.warning("only %d training cut-offs: using %d cross-validation fold(s) instead of %d",
                    len(cutoffs), n, cv_folds)
    return cutoffs[len(cutoffs) - n:] if n > 0 else []


@dataclasses.dataclass
class Comparison:
    """Everything the model comparison produced.

    Attributes:
        board: one row per candidate: ``kind``, cross-validated ``cv_<metric>`` mean and
            ``cv_<metric>_std``, held-out metrics and ``fit_seconds``.
        folds: one row per candidate and validation cut-off, with its metrics.
        models: every candidate fitted on all training cut-offs.
        predictions: each candidate's predictions on the held-out rows.
        actual: the held-out labels (spend first).
        features: model inputs.
        targets: label columns.
    """

    board: pd.DataFrame
    folds: pd.DataFrame
    models: dict[str, BaseEstimator]
    predictions: dict[str, np.ndarray]
    actual: np.ndarray
    features: list[str]
    targets: list[str]


def compare(train: pd.DataFrame, holdout: pd.DataFrame, names: tuple[str, ...], seed: int,
            cv_folds: int) -> Comparison:
    """Cross-validate every candidate over the training cut-offs, then score it on the held-out window.

    Args:
        train: FEATURES training rows (several cut-offs), e.g. from :func:`features.load_labelled`.
        holdout: FEATURES rows of the held-out cut-off.
        names: candidates to compare (keys of :func:`candidates`).
        seed: random state.
        cv_folds: number of validation cut-offs (see :func:`fold_cutoffs`).
    """
    feats, targets = usable_features(train)
    factories = candidates(feats, targets, seed)
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise ValueError(f"Unknown model candidate(s) {unknown}; known: {list(factories)}.")
    folds = fold_cutoffs(train, cv_folds)
    y_ho = holdout[targets].to_numpy(dtype=float)
    rows, fold_rows, fitted, preds = [], [], {}, {}
    with threadpool_limits(limits=OPENMP_THREADS, user_api="openmp"):
        for name in names:
            started = time.perf_counter()
            for c in folds:
                fit_rows, val = train[train["CUTOFF"] < c], train[train["CUTOFF"] == c]
                model = sequential_predictions(factories[name]().fit(fit_rows[feats], fit_rows[targets].astype(float)))
                fold_rows.append({"model": name, "cutoff": c, "train_rows": len(fit_rows),
                                  **metrics(val[targets].to_numpy(dtype=float), predict(model, val, feats))})
            model = sequential_predictions(factories[name]().fit(train[feats], train[targets].astype(float)))
            preds[name], fitted[name] = predict(model, holdout, feats), model
            rows.append({"model": name, "kind": "baseline" if name in BASELINES else "model",
                         **metrics(y_ho, preds[name]), "fit_seconds": time.perf_counter() - started})
            log.info("%s: holdout spend RMSE %.3f (%.1f s)", name, rows[-1]["rmse"], rows[-1]["fit_seconds"])
    fold_frame = pd.DataFrame(fold_rows, columns=["model", "cutoff", "train_rows", *METRICS])
    board = pd.DataFrame(rows).set_index("model")
    cv = fold_frame.groupby("model")[list(METRICS)].agg(["mean", "std"])
    for m in METRICS:
        board.insert(board.columns.get_loc("rmse"), f"cv_{m}", cv[(m, "mean")].reindex(board.index))
        board.insert(board.columns.get_loc("rmse"), f"cv_{m}_std", cv[(m, "std")].reindex(board.index))
    return Comparison(board, fold_frame, fitted, preds, y_ho, feats, targets)


@dataclasses.dataclass
class Selection:
    """The chosen candidate and how it compares with the best naive baseline on the held-out window.

    Attributes:
        chosen: candidate with the best mean cross-validated ``metric`` (held-out metric if no CV).
        metric: the primary metric.
        rule: the selection rule, in words.
        baseline: best naive baseline by held-out ``metric`` ('' when none was compared).
        holdout_chosen, holdout_baseline: held-out ``metric`` of both.
        improvement: relative error reduction of ``chosen`` over ``baseline`` (R²: relative gain).
        interval: 90% paired-bootstrap interval of ``improvement`` over held-out customers.
    """

    chosen: str
    metric: str
    rule: str
    baseline: str
    holdout_chosen: float
    holdout_baseline: float
    improvement: float
    interval: tuple[float, float]


def _improvement(model_value: float, base_value: float, metric: str) -> float:
    if metric in HIGHER_IS_BETTER:
        return (model_value - base_value) / abs(base_value) if base_value else float("nan")
    return (base_value - model_value) / base_value if base_value else float("nan")


def _spend_metric(actual: np.ndarray, pred: np.ndarray, metric: str) -> float:
    """One spend metric of 1-d arrays (the bootstrap's inner loop: no other metric computed)."""
    err = actual - pred
    if metric == "rmse":
        return float(np.sqrt(np.mean(err ** 2)))
    if metric == "mae":
        return float(np.mean(np.abs(err)))
    if metric == "r2":
        ss = np.sum((actual - actual.mean()) ** 2)
        return float(1 - np.sum(err ** 2) / ss) if ss > 0 else float("nan")
    raise ValueError(f"no bootstrap for metric {metric!r}")


def improvement_interval(actual: np.ndarray, model_pred: np.ndarray, base_pred: np.ndarray, metric: str,
                         seed: int, n_boot: int = BOOTSTRAP_SAMPLES) -> tuple[float, float]:
    """90% paired bootstrap interval (resampling held-out customers) of the relative improvement in spend."""
    rng = np.random.default_rng(seed)
    a, m, b = (np.asarray(x, dtype=float).reshape(len(actual), -1)[:, 0] for x in (actual, model_pred, base_pred))
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(a), len(a))
        values.append(_improvement(_spend_metric(a[idx], m[idx], metric), _spend_metric(a[idx], b[idx], metric),
                                   metric))
    lo, hi = np.nanquantile(values, [0.05, 0.95])
    return float(lo), float(hi)


def select(comparison: Comparison, primary_metric: str, seed: int = 0) -> Selection:
    """Apply the selection rule (see the module doc) and measure the chosen model against the baselines."""
    board = comparison.board
    higher = primary_metric in HIGHER_IS_BETTER
    key = f"cv_{primary_metric}" if board[f"cv_{primary_metric}"].notna().all() else primary_metric
    chosen = board.sort_values(key, ascending=not higher, kind="stable").index[0]
    n_folds = comparison.folds["cutoff"].nunique()
    where = (f"mean over {n_folds} cross-validation fold{'s' if n_folds > 1 else ''} (cut-offs)" if key.startswith("cv_")
             else "held-out window: too few cut-offs for cross-validation")
    rule = (f"{'highest' if higher else 'lowest'} spend {METRIC_LABELS[primary_metric]} ({where}), "
            f"then confirmed on the held-out window")
    baselines = board[board["kind"] == "baseline"].sort_values(primary_metric, ascending=not higher, kind="stable")
    if baselines.empty:
        return Selection(chosen, primary_metric, rule, "", board.loc[chosen, primary_metric], float("nan"),
                         float("nan"), (float("nan"), float("nan")))
    base = baselines.index[0]
    m, b = board.loc[chosen, primary_metric], board.loc[base, primary_metric]
    interval = improvement_interval(comparison.actual, comparison.predictions[chosen],
                                    comparison.predictions[base], primary_metric, seed)
    return Selection(chosen, primary_metric, rule, base, float(m), float(b), _improvement(m, b, primary_metric),
                     interval)


def leaderboard_table(comparison: Comparison, primary_metric: str) -> pd.DataFrame:
    """The leaderboard as the report shows it: CV mean ± std and held-out value of the main metrics."""
    b = comparison.board
    higher = primary_metric in HIGHER_IS_BETTER
    out = pd.DataFrame(index=b.index)
    out["kind"] = b["kind"]
    for m in ("rmse", "mae", "r2", "top_decile_mae"):
        out[f"CV {METRIC_LABELS[m]}"] = [f"{v:.2f} ± {s:.2f}" if pd.notna(v) else "–"
                                          for v, s in zip(b[f"cv_{m}"], b[f"cv_{m}_std"].fillna(0), strict=True)]
        out[f"held-out {METRIC_LABELS[m]}"] = b[m].round(3)
    out["held-out qty MAE"] = b["qty_mae"].round(3)
    out["fit s"] = b["fit_seconds"].round(1)
    key = f"cv_{primary_metric}" if b[f"cv_{primary_metric}"].notna().all() else primary_metric
    return out.loc[b.sort_values(key, ascending=not higher, kind="stable").index]


def per_product(comparison: Comparison, names: list[str] | None = None) -> pd.DataFrame:
    """Held-out MAE of the quantity of each product type, per candidate (rows: product types)."""
    names = names or list(comparison.predictions)
    prefix = ft.LABEL_QTY_PREFIX + "_"
    rows = {}
    for j, t in enumerate(comparison.targets):
        if j == 0:
            continue
        actual = comparison.actual[:, j]
        rows[t[len(prefix):].lower()] = {"mean actual": actual.mean(), **{
            n: mean_absolute_error(actual, comparison.predictions[n][:, j]) for n in names}}
    return pd.DataFrame(rows).T


def lift_table(actual: np.ndarray, predicted: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Customers ranked by predicted spend, in deciles (1 = highest): actual spend and lift per decile."""
    rank = pd.Series(predicted).rank(method="first", ascending=False)
    decile = np.ceil(rank / len(rank) * n_bins).astype(int).clip(1, n_bins)
    df = pd.DataFrame({"decile": decile, "actual": actual, "predicted": predicted})
    g = df.groupby("decile").agg(customers=("actual", "size"), mean_predicted=("predicted", "mean"),
                                 mean_actual=("actual", "mean"), actual_total=("actual", "sum"))
    total = df["actual"].sum()
    g["share_of_spend"] = g["actual_total"] / total if total else np.nan
    g["cumulative_share"] = g["share_of_spend"].cumsum()
    g["lift"] = g["mean_actual"] / df["actual"].mean() if total else np.nan
    return g.drop(columns="actual_total")


def importance(model: BaseEstimator, holdout: pd.DataFrame, features: list[str], seed: int,
               top: int = 15) -> pd.DataFrame:
    """Permutation importance for spend on (a seeded sample of) the held-out rows.

    Importance = increase of the held-out spend RMSE when one feature's values are shuffled
    (mean and standard deviation over :data:`IMPORTANCE_REPEATS` shuffles).
    """
    sample = holdout.sample(n=min(IMPORTANCE_ROWS, len(holdout)), random_state=seed)

    def neg_spend_rmse(est, X, y):  # noqa: N803
        return -float(np.sqrt(mean_squared_error(y, predict(est, X, features)[:, 0])))

    result = permutation_importance(model, sample[features], sample[ft.LABEL_SPEND].to_numpy(dtype=float),
                                    scoring=neg_spend_rmse, n_repeats=IMPORTANCE_REPEATS, random_state=seed)
    out = pd.DataFrame({"feature": [f.lower() for f in features], "importance": result.importances_mean,
                        "std": result.importances_std})
    return out.sort_values("importance", ascending=False, kind="stable").head(top).set_index("feature")


def verdict(selection: Selection, decision=None) -> str:
    """Markdown summary: the selection rule, the chosen model, its gain over the baselines, the promotion.

    Args:
        selection: output of :func:`select`.
        decision: the registry's promotion decision (:class:`customer_analytics.registry.Promotion`), if any.
    """
    s = selection
    label = METRIC_LABELS[s.metric]
    out = f"Selection rule: {s.rule}. Chosen: **{s.chosen}**"
    if not s.baseline:
        out += " (no naive baseline in the comparison)."
    elif s.chosen in BASELINES:
        out += f" — a naive baseline: no model beat the baselines on this data (held-out {label} {s.holdout_chosen:.3f})."
    else:
        lo, hi = s.interval
        better = "better" if s.improvement >= 0 else "worse"
        out += (f", whose held-out spend {label} ({s.holdout_chosen:.3f}) is **{abs(s.improvement):.1%} {better}** "
                f"than the best naive baseline's (**{s.baseline}**, {s.holdout_baseline:.3f}; 90% bootstrap "
                f"interval of the gain {lo:.1%} to {hi:.1%}).")
    if decision is not None:
        out += f" {decision.sentence()}"
    return out
