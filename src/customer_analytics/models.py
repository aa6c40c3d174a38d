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

Before fitting, the inputs are reviewed: features missing, constant or duplicated on the
training rows are dropped (:func:`dropped_features`), and numeric features whose held-out (or
scoring) values lie outside the training range for more than :data:`RANGE_SHARE` of the rows are
flagged (:func:`range_table`); flagged ones are left out of the machine-learning models (in a
closed cohort: the ones measuring time since a fixed event — tenure, days since the first order, …;
:data:`customer_analytics.features.ABSOLUTE_TIME` — whose information relative features such as
recency / age or purchase days per 30 days carry).

The ``zero`` baseline ("nobody buys") is always compared, whether ``names`` lists it or not.

Calibration is part of the comparison: every candidate's predicted / actual total spend is
measured over the cross-validation folds (pooled) and on the held-out window. A candidate whose
cross-validated total is off by more than ``calibration_tolerance`` is **recalibrated** — its
predictions scaled, per target, by actual / predicted totals over the folds (a new row,
``<name>_recalibrated``, replaces it in the selection) — or, when it predicts no spend at all
(``zero``), **refused**.

Selection: among the candidates left, the lowest (R²: highest) mean cross-validated spend metric,
``primary_metric``; candidates within :data:`SELECTION_MARGIN` (1%) of the best, or within one
standard error of the paired fold-by-fold differences from it (the "one-standard-error" idea: a
difference smaller than the folds' disagreement about it is noise), count as tied, and the tie
goes to the lower cross-validated value of the other error metric (for RMSE and R²: the MAE at
equal totals, :func:`mae_at_total`, so predicting less cannot win; for MAE: RMSE), so a model that
is as good on one and better on the other wins. The held-out window then
says, untouched by the selection, how much better the chosen model is than the best naive
baseline (with a paired bootstrap interval). Fitting cost is bounded by the number of training
rows (``max_train_rows``, sampled in the warehouse, see
:func:`features.load_labelled`) and by the fixed model sizes below.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import pickle
import signal
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from select import select as wait_readable

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from customer_analytics import features as ft
from customer_analytics import hgb_binning

# the baselines live in a self-contained module (shipped by value to the warehouse); names kept here
from customer_analytics.baselines import SEGMENT_COLUMNS, LastPeriodBaseline, SegmentMeanBaseline  # noqa: F401
from customer_analytics.btyd import BTYDBoosting, BTYDRegressor
from customer_analytics.calibration import ScaledRegressor
from customer_analytics.warehouse_server import machine_cpus

log = logging.getLogger(__name__)

BASELINES = ("zero", "last_period", "mean", "segment_mean")
#: the buy-till-you-die candidate (the academic bar): neither naive nor machine learning
BTYD = ("btyd",)
#: candidates that read the BTYD columns by name (left out, with a note, when FEATURES has none)
NEEDS_BTYD = ("btyd", "hybrid_boosting")
RECALIBRATED = "_recalibrated"
#: default largest relative error of a candidate's cross-validated total before it is recalibrated
CALIBRATION_TOLERANCE = 0.10
#: candidates whose cross-validated primary metric is within this (relative) margin of the best
#: one, or within one standard error of their paired fold-by-fold differences from it, count as
#: tied; the tie goes to the best value of the other error metric
SELECTION_MARGIN = 0.01
#: the other error metric that breaks near-ties of the primary one
SECONDARY = {"rmse": "mae", "mae": "rmse", "r2": "mae"}
#: the board column that breaks near-ties of each primary metric over the CV folds: MAE at equal
#: totals (:func:`mae_at_total`), so that predicting less is no way to win a tie; RMSE for MAE
TIE_BREAK = {"rmse": "cv_mae_at_total", "mae": "cv_rmse", "r2": "cv_mae_at_total"}
TIE_LABELS = {
    "cv_mae_at_total": "MAE at equal totals",
    "cv_rmse": "RMSE",
    "mae": "MAE",
    "rmse": "RMSE",
}
#: share of held-out or scoring rows outside a feature's training range above which it is flagged
RANGE_SHARE = 0.10
#: "outside" means beyond the training range by more than this fraction of its width
RANGE_MARGIN = 0.05
METRICS = ("rmse", "mae", "r2", "top_decile_mae", "qty_mae")
HIGHER_IS_BETTER = {"r2"}
METRIC_LABELS = {
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R²",
    "top_decile_mae": "MAE on the top 10% spenders",
    "qty_mae": "mean quantity MAE",
}
#: model sizes: fixed so that fitting cost grows only with the (capped) number of training rows
RF_TREES = 60
HGB_ITERATIONS = 200
IMPORTANCE_ROWS = 1000
IMPORTANCE_REPEATS = 3
#: rows per ``predict`` call of :func:`importance` (its shuffled copies, stacked)
IMPORTANCE_BATCH_ROWS = 50_000
BOOTSTRAP_SAMPLES = 400
#: the hybrid's shape constraints: more expected purchases / value / activity never lowers its
#: prediction, a longer silence relative to the customer's age never raises it. They also keep a
#: decaying cohort's older customers from landing in a tree leaf learnt from younger ones.
MONOTONE = {
    "BTYD_EXP_SPEND": 1,
    "BTYD_EXP_PURCHASES": 1,
    "BTYD_P_ALIVE": 1,
    "BTYD_EXP_VALUE": 1,
    "ORDERS_PER_30D": 1,
    "PURCHASE_DAYS_PER_30D": 1,
    "SPEND_PER_30D": 1,
    "RECENCY_OVER_AGE": -1,
}
#: OpenMP threads for gradient boosting. Measured here on the shared 2-core machine: the same
#: fits took 146 s with OpenMP's default threads under CPU contention and 6 s with one thread.
OPENMP_THREADS = 1
#: fits of one candidate (its CV folds and its final fit) run at once, one per CPU this process may
#: use (each with OPENMP_THREADS): they are independent, and the boosting fits use one core each.
FIT_WORKERS = min(4, machine_cpus())
#: ... from this many training rows on, in threads. Measured on the 2-core machine, nine
#: candidates: 60k rows (the max_train_rows cap, reached from ~90k orders) 58.5 s side by side
#: against 72.8 s one after the other (the boosting fits 17 s against 29 s); 6.8k rows (10k orders)
#: 12.9 s against 12.1 s (small fits are mostly Python, which holds the GIL). Where this process
#: can fork (:func:`fork_fits`), fits run side by side in forked copies of it at every size.
PARALLEL_FIT_ROWS = 20_000
#: Set to ``0`` to fit in threads (or one after the other) instead of forked processes.
FORK_FITS_VAR = "CA_FORK_FITS"


def fork_fits() -> bool:
    """Whether fits may run in forked copies of this process (Linux, not turned off)."""
    return sys.platform.startswith("linux") and os.environ.get(FORK_FITS_VAR, "1") != "0"


def _fit_in_child(factory: Callable[[], BaseEstimator], x, y, out: int) -> None:
    """In a forked copy: fit, send ``("ok", model, warnings)`` pickled on ``out``; never
    returns. Its output goes nowhere (a kernel's streams belong to threads a fork does not copy);
    its warnings go back to the parent with the model."""
    code = 0
    try:
        with contextlib.suppress(Exception):  # die with the parent (Linux: PR_SET_PDEATHSIG)
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGKILL)
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the process exits below
        with warnings.catch_warnings(record=True) as caught:
            model = _fit_one(factory, x, y)
        seen = [(str(w.message), w.category, w.filename, w.lineno) for w in caught]
        payload = pickle.dumps(("ok", model, seen), protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(payload)
        while view:
            view = view[os.write(out, view) :]
    except BaseException:  # noqa: BLE001 - the parent fits this one itself and meets the error
        code = 1
    finally:
        os._exit(code)


def _fit_forked(
    factory: Callable[[], BaseEstimator],
    data: list[tuple[pd.DataFrame, pd.DataFrame]],
    workers: int,
) -> list[BaseEstimator]:
    """:func:`fit_many` in forked copies of this process, ``workers`` at once. A copy that fails
    (its fit raised, it was killed, its model would not pickle) is fitted again here, so an error
    is raised as it would be without forks. Interrupted (Ctrl-C), the copies are killed."""
    results: list[BaseEstimator | None] = [None] * len(data)
    pending = deque(range(len(data)))
    running: dict[int, tuple[int, int, bytearray]] = {}  # read end -> (pid, index, bytes)
    failed: list[int] = []
    try:
        while pending or running:
            while pending and len(running) < workers:
                i = pending.popleft()
                r, w = os.pipe()
                pid = os.fork()
                if pid == 0:  # pragma: no cover - the child's code is measured by its result
                    os.close(r)
                    _fit_in_child(factory, *data[i], w)
                os.close(w)
                running[r] = (pid, i, bytearray())
            ready, _, _ = wait_readable(list(running), [], [])
            for fd in ready:
                chunk = os.read(fd, 1 << 20)
                if chunk:
                    running[fd][2].extend(chunk)
                    continue
                pid, i, buf = running.pop(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                if status != 0 or not buf:
                    failed.append(i)
                    continue
                _, model, seen = pickle.loads(bytes(buf))
                for message, category, filename, lineno in seen:
                    warnings.warn_explicit(message, category, filename, lineno)
                results[i] = model
    finally:
        for fd, (pid, _, _) in running.items():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
            os.close(fd)
    for i in failed:
        log.debug("a forked fit failed: fitting it in this process")
        results[i] = _fit_one(factory, *data[i])
    return [m for m in results if m is not None]


def _fit_one(
    factory: Callable[[], BaseEstimator], x: pd.DataFrame, y: pd.DataFrame
) -> BaseEstimator:
    # OpenMP's thread count is per thread: a worker thread starts with the default (all cores)
    with threadpool_limits(limits=OPENMP_THREADS, user_api="openmp"):
        return sequential_predictions(factory().fit(x, y))


def fit_many(
    factory: Callable[[], BaseEstimator],
    data: list[tuple[pd.DataFrame, pd.DataFrame]],
    workers: int | None = None,
) -> list[BaseEstimator]:
    """Fit a fresh ``factory()`` model on each ``(x, y)``, ``workers`` at once (threads; default
    :data:`FIT_WORKERS`), in order. The same models as fitting them one after the other: each fit
    is seeded by its factory, and none depends on another."""
    workers = FIT_WORKERS if workers is None else workers
    if workers <= 1 or len(data) <= 1:
        return [_fit_one(factory, x, y) for x, y in data]
    if fork_fits():
        return _fit_forked(factory, data, min(workers, len(data)))
    return list(
        Parallel(n_jobs=min(workers, len(data)), prefer="threads")(
            delayed(_fit_one)(factory, x, y) for x, y in data
        )
    )


def _preprocessor(
    features: list[str], scale: bool, impute: bool = True, named: bool = False
) -> ColumnTransformer:
    categorical = [c for c in ft.CATEGORICAL if c in features]
    numeric = [c for c in features if c not in categorical]
    steps = ([SimpleImputer(strategy="median", add_indicator=True)] if impute else []) + (
        [StandardScaler()] if scale else []
    )
    prep = ColumnTransformer(
        [
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", min_frequency=20, sparse_output=False),
                categorical,
            ),
            ("numeric", make_pipeline(*steps) if steps else "passthrough", numeric),
        ],
        verbose_feature_names_out=not named,
    )
    # named: the model sees column names (for monotone constraints by name)
    return prep.set_output(transform="pandas") if named else prep


def last_period_sources(targets: list[str]) -> tuple[str, ...]:
    """The "last period" input column of each target (``SPEND_NEXT`` -> ``SPEND_LAST``, ...)."""
    prefix = ft.LABEL_QTY_PREFIX + "_"
    return tuple(
        "SPEND_LAST" if t == ft.LABEL_SPEND else "QTY_LAST_" + t[len(prefix) :] for t in targets
    )


def btyd_sources(targets: list[str]) -> tuple[str, ...]:
    """The past-quantity input column of each quantity target (``QTY_NEXT_<P>`` -> ``QTY_<P>``)."""
    prefix = ft.LABEL_QTY_PREFIX + "_"
    return tuple("QTY_" + t[len(prefix) :] for t in targets if t != ft.LABEL_SPEND)


def kind(name: str) -> str:
    """``baseline`` (naive), ``btyd`` or ``model`` (machine learning); also of recalibrated rows."""
    base = name.removesuffix(RECALIBRATED)
    return "baseline" if base in BASELINES else "btyd" if base in BTYD else "model"


def candidates(
    features: list[str], targets: list[str], seed: int, model_features: list[str] | None = None
) -> dict[str, Callable[[], BaseEstimator]]:
    """Factories for every known candidate, keyed by the names used in ``env.yaml``.

    Args:
        features: input columns every candidate receives.
        targets: label columns, spend first.
        seed: random state of every randomised model.
        model_features: the inputs the machine-learning pipelines use (default: ``features``);
            categorical ones are one-hot encoded inside the pipeline.
    """
    ml = list(model_features if model_features is not None else features)
    hgb_binning.install()  # the hybrid's weighted bins in one sort per feature, the same edges
    return {
        "zero": lambda: DummyRegressor(strategy="constant", constant=np.zeros(len(targets))),
        "last_period": lambda: LastPeriodBaseline(last_period_sources(targets)),
        "mean": lambda: DummyRegressor(strategy="mean"),
        "segment_mean": lambda: SegmentMeanBaseline(
            tuple(c for c in SEGMENT_COLUMNS if c in features)
        ),
        "btyd": lambda: BTYDRegressor("BTYD_EXP_SPEND", "SPEND", btyd_sources(targets)),
        "ridge": lambda: Pipeline(
            [("prep", _preprocessor(ml, scale=True)), ("model", Ridge(alpha=10.0))]
        ),
        "random_forest": lambda: Pipeline(
            [
                ("prep", _preprocessor(ml, scale=False)),
                (
                    "model",
                    RandomForestRegressor(
                        n_estimators=RF_TREES,
                        min_samples_leaf=20,
                        max_features=0.4,
                        max_samples=0.5,
                        n_jobs=-1,
                        random_state=seed,
                    ),
                ),
            ]
        ),
        "hybrid_boosting": lambda: BTYDBoosting(
            BTYDRegressor("BTYD_EXP_SPEND", "SPEND", btyd_sources(targets)),
            Pipeline(
                [
                    ("prep", _preprocessor(ml, scale=False, impute=False, named=True)),
                    (
                        "model",
                        HistGradientBoostingRegressor(
                            loss="poisson",
                            max_iter=HGB_ITERATIONS,
                            learning_rate=0.1,
                            max_leaf_nodes=15,
                            min_samples_leaf=50,
                            l2_regularization=1.0,
                            monotonic_cst={c: v for c, v in MONOTONE.items() if c in ml},
                            early_stopping=True,
                            validation_fraction=0.1,
                            n_iter_no_change=15,
                            random_state=seed,
                        ),
                    ),
                ]
            ),
        ),
        "hist_gradient_boosting": lambda: Pipeline(
            [
                # missing values handled natively
                ("prep", _preprocessor(ml, scale=False, impute=False)),
                (
                    "model",
                    MultiOutputRegressor(
                        HistGradientBoostingRegressor(
                            max_iter=HGB_ITERATIONS,
                            learning_rate=0.1,
                            max_leaf_nodes=15,
                            min_samples_leaf=50,
                            l2_regularization=1.0,
                            early_stopping=True,
                            validation_fraction=0.1,
                            n_iter_no_change=15,
                            random_state=seed,
                        )
                    ),
                ),
            ]
        ),
    }


def metrics(y_true: np.ndarray | pd.DataFrame, y_pred: np.ndarray) -> dict[str, float]:
    """Spend RMSE/MAE/R² (first column), MAE on the top decile by actual spend, mean quantity
    MAE."""
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
        "qty_mae": float(mean_absolute_error(yt[:, 1:], y_pred[:, 1:]))
        if yt.shape[1] > 1
        else float("nan"),
    }


def is_better(a: float, b: float, metric: str, rel_tol: float = 1e-9) -> bool:
    """Whether metric value ``a`` is better than ``b`` by more than ``rel_tol`` (relative)."""
    margin = rel_tol * max(abs(a), abs(b))
    return a > b + margin if metric in HIGHER_IS_BETTER else a < b - margin


def sequential_predictions(model: BaseEstimator) -> BaseEstimator:
    """Set every ``n_jobs`` of a fitted model to 1, so that its predictions are bit-for-bit
    reproducible.

    A random forest predicting with several threads adds the trees' outputs in the order the
    threads finish (differences of ~1e-14 from one call to the next); fitting is unaffected.
    """
    jobs = {
        k: 1
        for k, v in model.get_params(deep=True).items()
        if k.endswith("n_jobs") and v not in (None, 1)
    }
    return model.set_params(**jobs) if jobs else model


def protected_columns(targets: list[str]) -> set[str]:
    """Inputs that a candidate reads by name (never dropped as constant or duplicate)."""
    return (
        set(last_period_sources(targets)) | set(btyd_sources(targets)) | {"SPEND", "BTYD_EXP_SPEND"}
    )


def _same(a: pd.Series, b: pd.Series) -> bool:
    if a.dtype.kind in "biuf" and b.dtype.kind in "biuf":
        return bool(
            np.array_equal(a.to_numpy(dtype=float), b.to_numpy(dtype=float), equal_nan=True)
        )
    return bool(
        a.astype(object).where(a.notna(), None).equals(b.astype(object).where(b.notna(), None))
    )


def dropped_features(
    train: pd.DataFrame, feats: list[str], protected: AbstractSet[str] = frozenset()
) -> pd.DataFrame:
    """Inputs that cannot help on these training rows: missing, constant, or a copy of another.

    Returns:
        One row per dropped feature (index, lower case) with the ``reason``; the first of a set of
        duplicates is kept, and ``protected`` columns are only dropped when missing everywhere.
    """
    rows: dict[str, str] = {}
    kept: list[str] = []
    by_hash: dict[int, list[str]] = {}
    for c in feats:
        col = train[c]
        if col.isna().all():
            rows[c] = "missing on every training row"
            continue
        if c not in protected and col.nunique(dropna=False) <= 1:
            value = col.dropna().iloc[0] if col.notna().any() else None
            rows[c] = f"constant on the training rows ({value})"
            continue
        key = int(
            pd.util.hash_pandas_object(
                col.astype(float) if col.dtype.kind in "biuf" else col.astype(str), index=False
            ).sum()
        )
        twin = next((k for k in by_hash.get(key, []) if _same(train[k], col)), None)
        if twin is not None and c not in protected:
            rows[c] = f"duplicate of {twin.lower()} on the training rows"
            continue
        by_hash.setdefault(key, []).append(c)
        kept.append(c)
    return pd.DataFrame(
        {"reason": list(rows.values())}, index=pd.Index([c.lower() for c in rows], name="feature")
    )


def usable_features(train: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Model inputs and targets of a FEATURES frame, without those of :func:`dropped_features`."""
    feats, targets = ft.model_columns(list(train.columns))
    dropped = dropped_features(train, feats, protected_columns(targets))
    if len(dropped):
        log.info(
            "leaving out features: %s", "; ".join(f"{f}: {r}" for f, r in dropped["reason"].items())
        )
    gone = set(dropped.index)
    return [c for c in feats if c.lower() not in gone], targets


def range_table(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    feats: list[str],
    score_outside: dict[str, float] | None = None,
    protected: AbstractSet[str] = frozenset(),
) -> pd.DataFrame:
    """Numeric features whose held-out or scoring values leave the training range, and what is done.

    A value is outside when it lies beyond the training minimum or maximum by more than
    :data:`RANGE_MARGIN` of the range's width; a feature is flagged when more than
    :data:`RANGE_SHARE` of the held-out (or scoring) rows are outside.

    Args:
        train, holdout: FEATURES rows.
        feats: the inputs to check (categorical ones are skipped).
        score_outside: share of the scoring rows outside the training range per feature (from
            :func:`customer_analytics.features.outside_range`), if known.

    Returns:
        One row per flagged feature: training min / max, share of held-out and scoring rows
        outside, and the ``action``: flagged features are left out of the machine-learning models
        (trees predict a flat edge value beyond the range, linear models extrapolate blindly),
        except
        ``protected`` ones that a candidate reads by name. Absolute time features
        (:data:`features.ABSOLUTE_TIME`) are the usual ones in a closed cohort; relative features
        (recency / age, purchase days per 30 days) carry their information.
    """
    rows = {}
    for c in feats:
        if c in ft.CATEGORICAL:
            continue
        lo, hi = train[c].min(), train[c].max()
        h = holdout[c].dropna()
        margin = RANGE_MARGIN * (hi - lo) if pd.notna(lo) else 0.0
        ho = (
            float(((h < lo - margin) | (h > hi + margin)).mean())
            if len(h) and pd.notna(lo)
            else 0.0
        )
        sc = (score_outside or {}).get(c)
        if max(ho, sc or 0.0) > RANGE_SHARE:
            action = (
                "left out of the machine-learning models"
                + (
                    " (time since a fixed event; relative features carry it)"
                    if c in ft.ABSOLUTE_TIME
                    else ""
                )
                if c not in protected
                else "kept (a candidate reads it)"
            )
            rows[c.lower()] = {
                "train min": lo,
                "train max": hi,
                "held-out rows outside": ho,
                "scoring rows outside": sc,
                "action": action,
            }
    cols = ["train min", "train max", "held-out rows outside", "scoring rows outside", "action"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols).rename_axis("feature")


def predict(model: BaseEstimator, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Predictions of ``model`` for ``frame``, clipped at 0 (spend and quantities cannot be
    negative)."""
    return np.clip(
        np.asarray(model.predict(frame[features]), dtype=float).reshape(len(frame), -1), 0, None
    )


def fold_cutoffs(train: pd.DataFrame, cv_folds: int) -> list:
    """The training cut-offs used as validation folds (the last ``cv_folds``, each with earlier
    data)."""
    cutoffs = sorted(train["CUTOFF"].unique())
    n = min(cv_folds, len(cutoffs) - 1)
    if n < cv_folds:
        log.warning(
            "only %d training cut-offs: using %d cross-validation fold(s) instead of %d",
            len(cutoffs),
            n,
            cv_folds,
        )
    return cutoffs[len(cutoffs) - n :] if n > 0 else []


@dataclasses.dataclass
class Comparison:
    """Everything the model comparison produced.

    Attributes:
        board: one row per candidate (and per recalibrated candidate): ``kind``, cross-validated
            ``cv_<metric>`` mean and ``cv_<metric>_std``, ``cv_ratio`` (predicted / actual total
            spend over the folds, pooled), held-out metrics, ``ratio`` (held-out predicted / actual
            total spend), ``calibration`` (what the rule did), ``eligible`` and ``fit_seconds``.
        folds: one row per candidate and validation cut-off, with its metrics and ``ratio``.
        models: every candidate fitted on all training cut-offs.
        predictions: each candidate's predictions on the held-out rows.
        actual: the held-out labels (spend first).
        features: inputs every candidate receives.
        targets: label columns.
        model_features: inputs of the machine-learning pipelines.
        dropped: features left out before fitting, with the reason.
        ranges: features whose held-out / scoring values leave the training range
            (:func:`range_table`).
        notes: candidates left out and why (sentences).
        tolerance: the calibration tolerance used.
    """

    board: pd.DataFrame
    folds: pd.DataFrame
    models: dict[str, BaseEstimator]
    predictions: dict[str, np.ndarray]
    actual: np.ndarray
    features: list[str]
    targets: list[str]
    model_features: list[str] = dataclasses.field(default_factory=list)
    dropped: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    ranges: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    notes: list[str] = dataclasses.field(default_factory=list)
    tolerance: float = CALIBRATION_TOLERANCE


def total_ratio(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Predicted / actual total of the first column (spend); NaN when nothing was spent."""
    a = float(np.asarray(actual, dtype=float).reshape(len(actual), -1)[:, 0].sum())
    p = float(np.asarray(predicted, dtype=float).reshape(len(predicted), -1)[:, 0].sum())
    return p / a if a > 0 else float("nan")


def mae_at_total(fold_actual: list[np.ndarray], fold_pred: list[np.ndarray]) -> float:
    """Mean over the folds of the spend MAE once the predictions are scaled to the actual total.

    The scale is actual / predicted spend pooled over the folds (1 when nothing is predicted). On
    sparse data MAE rewards predicting less (the median customer spends nothing): at equal totals,
    a lower MAE means the spend is put on the right customers, not that less of it is predicted.
    """
    if not fold_pred:
        return float("nan")
    ratio = total_ratio(np.vstack(fold_actual), np.vstack(fold_pred))
    scale = 1.0 / ratio if np.isfinite(ratio) and ratio > 0 else 1.0
    return float(
        np.mean(
            [
                np.mean(np.abs(a[:, 0] - scale * p[:, 0]))
                for a, p in zip(fold_actual, fold_pred, strict=True)
            ]
        )
    )


def unavailable(
    names: tuple[str, ...], train: pd.DataFrame, feats: list[str], targets: list[str]
) -> dict[str, str]:
    """Requested candidates that cannot run on these inputs, with the reason (a sentence)."""
    out = {}
    if "segment_mean" in names:
        segs = [c for c in SEGMENT_COLUMNS if c in feats]
        if not segs:
            out["segment_mean"] = (
                f"segment_mean left out: its segment column ({', '.join(SEGMENT_COLUMNS).lower()}) "
                "is constant or unknown on the training rows, so it would equal `mean`"
            )
    need = ["BTYD_EXP_SPEND", "SPEND", *btyd_sources(targets)]
    missing = [c for c in need if c not in feats]
    for name in (n for n in NEEDS_BTYD if n in names and missing):
        out[name] = (
            f"{name} left out: the inputs lack {', '.join(m.lower() for m in missing)} "
            "(rebuild 03_features)"
        )
    return out


def _calibrate(
    name: str,
    cv_ratio: float,
    fold_pred: list[np.ndarray],
    fold_actual: list[np.ndarray],
    tolerance: float,
) -> tuple[str, np.ndarray | None]:
    """What the calibration rule does with one candidate: (status, per-target scale or None)."""
    if name == "zero":  # its total is 0 by construction, whatever the folds
        return "refused: it predicts no spend, so its total cannot add up", None
    if not fold_pred:
        return "not checked (no cross-validation folds)", None
    if np.isfinite(cv_ratio) and abs(cv_ratio - 1) <= tolerance:
        return f"within ±{tolerance:.0%}", None
    pred = np.vstack(fold_pred).sum(axis=0)
    actual = np.vstack(fold_actual).sum(axis=0)
    if not (pred[0] > 0 and actual[0] > 0):
        return (
            f"refused: its cross-validated total is {cv_ratio:.0%} of the actual one and it "
            "predicts no spend, so it cannot be rescaled"
        ), None
    scale = np.where(pred > 0, actual / np.where(pred > 0, pred, 1.0), 1.0)
    return (
        f"recalibrated ×{scale[0]:.3f} (cross-validated total {cv_ratio:.2f} × actual): "
        f"see {name}{RECALIBRATED}",
        scale,
    )


@dataclasses.dataclass(frozen=True)
class FeaturePlan:
    """The inputs :func:`compare` gives its candidates for a training frame (see
    :func:`feature_plan`)."""

    features: list[str]
    targets: list[str]
    model_features: list[str]
    dropped: pd.DataFrame
    ranges: pd.DataFrame

    def factory(self, name: str, seed: int) -> Callable[[], BaseEstimator]:
        """The unfitted candidate ``name`` as :func:`compare` builds it for these inputs."""
        return candidates(self.features, self.targets, seed, self.model_features)[name]


def feature_plan(
    train: pd.DataFrame, holdout: pd.DataFrame, score_outside: dict[str, float] | None = None
) -> FeaturePlan:
    """The inputs of :func:`compare` on ``train``: model columns without the
    :func:`dropped_features`, and the machine-learning models' inputs without the features
    :func:`range_table` leaves out."""
    all_feats, targets = ft.model_columns(list(train.columns))
    dropped = dropped_features(train, all_feats, protected_columns(targets))
    feats = [c for c in all_feats if c.lower() not in set(dropped.index)]
    ranges = range_table(train, holdout, feats, score_outside, protected_columns(targets))
    left_out = {f for f, a in ranges["action"].items() if a.startswith("left out")}
    model_feats = [c for c in feats if c.lower() not in left_out]
    return FeaturePlan(feats, targets, model_feats, dropped, ranges)


def rows_fingerprint(frame: pd.DataFrame, columns: list[str]) -> int:
    """A hash of ``frame``'s ``columns`` (values and index): tells whether two frames hold the
    same training rows."""
    hashed = pd.util.hash_pandas_object(frame[columns], index=True).to_numpy()
    return int.from_bytes(hashlib.blake2b(hashed.tobytes(), digest_size=8).digest(), "big")


@dataclasses.dataclass(frozen=True)
class Prefit:
    """Candidate ``name`` already fitted on every training row :func:`compare` will get (e.g. by
    :func:`customer_analytics.topic_features.check`): ``compare`` uses ``model`` as the
    candidate's held-out fit instead of fitting it again, when its inputs and rows are the same
    (:meth:`matches`), and fits as usual otherwise."""

    name: str
    features: tuple[str, ...]
    model_features: tuple[str, ...]
    fingerprint: int
    model: BaseEstimator
    seconds: float

    @classmethod
    def fit(cls, plan: FeaturePlan, name: str, seed: int, train: pd.DataFrame) -> Prefit:
        """Fit ``name`` on ``train`` exactly as :func:`compare`'s held-out fit does."""
        started = time.perf_counter()
        model = _fit_one(
            plan.factory(name, seed), train[plan.features], train[plan.targets].astype(float)
        )
        return cls(
            name,
            tuple(plan.features),
            tuple(plan.model_features),
            rows_fingerprint(train, plan.features + plan.targets),
            model,
            time.perf_counter() - started,
        )

    def matches(self, plan: FeaturePlan, train: pd.DataFrame) -> bool:
        return (
            self.features == tuple(plan.features)
            and self.model_features == tuple(plan.model_features)
            and self.fingerprint == rows_fingerprint(train, plan.features + plan.targets)
        )


def compare(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    names: tuple[str, ...],
    seed: int,
    cv_folds: int,
    calibration_tolerance: float = CALIBRATION_TOLERANCE,
    score_outside: dict[str, float] | None = None,
    prefit: Prefit | None = None,
) -> Comparison:
    """Cross-validate every candidate over the training cut-offs, then score it on the held-out
    window.

    Args:
        train: FEATURES training rows (several cut-offs), e.g. from :func:`features.load_labelled`.
        holdout: FEATURES rows of the held-out cut-off.
        names: candidates to compare (keys of :func:`candidates`).
        seed: random state.
        cv_folds: number of validation cut-offs (see :func:`fold_cutoffs`).
        calibration_tolerance: largest relative error of a candidate's cross-validated total spend
            before it is recalibrated or refused (see the module doc).
        score_outside: share of scoring rows outside the training range per feature
            (:func:`range_table`).
        prefit: a candidate already fitted on ``train`` with these inputs (:class:`Prefit`): its
            held-out fit is not done again (the same model: fits are seeded).
    """
    plan = feature_plan(train, holdout, score_outside)
    feats, targets, model_feats = plan.features, plan.targets, plan.model_features
    dropped, ranges = plan.dropped, plan.ranges
    factories = candidates(feats, targets, seed, model_feats)
    reuse = prefit if prefit is not None and prefit.matches(plan, train) else None
    if prefit is not None and reuse is None:
        log.info("%s: fitted again (the fit given was made on other rows or inputs)", prefit.name)
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise ValueError(f"Unknown model candidate(s) {unknown}; known: {list(factories)}.")
    names = ("zero", *(n for n in names if n != "zero"))  # the honest floor is always compared
    skipped = unavailable(names, train, feats, targets)
    folds = fold_cutoffs(train, cv_folds)
    y_ho = holdout[targets].to_numpy(dtype=float)
    fold_actual = [train.loc[train["CUTOFF"] == c, targets].to_numpy(dtype=float) for c in folds]
    rows, fold_rows, fitted, preds = [], [], {}, {}

    def record(
        name: str,
        fold_pred: list[np.ndarray],
        holdout_pred: np.ndarray,
        seconds: float,
        status: str,
        eligible: bool,
    ) -> None:
        for c, p, a in zip(folds, fold_pred, fold_actual, strict=True):
            fold_rows.append(
                {
                    "model": name,
                    "cutoff": c,
                    "train_rows": int((train["CUTOFF"] < c).sum()),
                    **metrics(a, p),
                    "ratio": total_ratio(a, p),
                }
            )
        cv_ratio = (
            total_ratio(np.vstack(fold_actual), np.vstack(fold_pred)) if fold_pred else float("nan")
        )
        rows.append(
            {
                "model": name,
                "kind": kind(name),
                **metrics(y_ho, holdout_pred),
                "ratio": total_ratio(y_ho, holdout_pred),
                "cv_ratio": cv_ratio,
                "cv_mae_at_total": mae_at_total(fold_actual, fold_pred),
                "calibration": status,
                "eligible": eligible,
                "fit_seconds": seconds,
            }
        )
        preds[name] = holdout_pred

    with threadpool_limits(limits=OPENMP_THREADS, user_api="openmp"):
        for name in (n for n in names if n not in skipped):
            started = time.perf_counter()
            given = reuse if reuse is not None and reuse.name == name else None
            fit_rows = [train[train["CUTOFF"] < c] for c in folds] + ([] if given else [train])
            fits = fit_many(
                factories[name],
                [(r[feats], r[targets].astype(float)) for r in fit_rows],
                workers=FIT_WORKERS if fork_fits() or len(train) >= PARALLEL_FIT_ROWS else 1,
            )
            *fold_models, model = [*fits, given.model] if given else fits
            if given:  # its fit's time counts as the candidate's own
                started -= given.seconds
            fold_pred = [
                predict(m, train[train["CUTOFF"] == c], feats)
                for m, c in zip(fold_models, folds, strict=True)
            ]
            fitted[name] = model
            seconds = time.perf_counter() - started
            cv_ratio = (
                total_ratio(np.vstack(fold_actual), np.vstack(fold_pred))
                if fold_pred
                else float("nan")
            )
            status, scale = _calibrate(
                name, cv_ratio, fold_pred, fold_actual, calibration_tolerance
            )
            record(
                name,
                fold_pred,
                predict(model, holdout, feats),
                seconds,
                status,
                eligible=not status.startswith(("refused", "recalibrated")),
            )
            if scale is not None:
                rname = name + RECALIBRATED
                fitted[rname] = ScaledRegressor.wrap(model, scale)
                record(
                    rname,
                    [p * scale for p in fold_pred],
                    predict(fitted[rname], holdout, feats),
                    seconds,
                    f"recalibrated ×{scale[0]:.3f}",
                    eligible=True,
                )
            log.info(
                "%s: holdout spend RMSE %.3f, total ratio %.2f (%.1f s)",
                name,
                rows[-1]["rmse"],
                rows[-1]["ratio"],
                seconds,
            )
    fold_frame = pd.DataFrame(
        fold_rows, columns=["model", "cutoff", "train_rows", *METRICS, "ratio"]
    )
    board = pd.DataFrame(rows).set_index("model")
    cv = fold_frame.groupby("model")[list(METRICS)].agg(["mean", "std"])
    for m in METRICS:
        board.insert(board.columns.get_loc("rmse"), f"cv_{m}", cv[(m, "mean")].reindex(board.index))
        board.insert(
            board.columns.get_loc("rmse"), f"cv_{m}_std", cv[(m, "std")].reindex(board.index)
        )
    return Comparison(
        board,
        fold_frame,
        fitted,
        preds,
        y_ho,
        feats,
        targets,
        model_feats,
        dropped,
        ranges,
        list(skipped.values()),
        calibration_tolerance,
    )


@dataclasses.dataclass
class Selection:
    """The chosen candidate and how it compares with the best naive baseline on the held-out window.

    Attributes:
        chosen: eligible candidate with the best mean cross-validated ``metric`` (held-out metric
            if no CV), near ties broken by the other metric (:func:`near_ties`).
        metric: the primary metric.
        folds: cross-validation folds the selection used (0: the held-out window, too few cut-offs).
        baseline: best naive baseline by held-out ``metric`` ('' when none was compared).
        holdout_chosen, holdout_baseline: held-out ``metric`` of both.
        improvement: relative error reduction of ``chosen`` over ``baseline`` (R²: relative gain).
        interval: 90% paired-bootstrap interval of ``improvement`` over held-out customers.
    """

    chosen: str
    metric: str
    folds: int
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
        return float(np.sqrt(np.mean(err**2)))
    if metric == "mae":
        return float(np.mean(np.abs(err)))
    if metric == "r2":
        ss = np.sum((actual - actual.mean()) ** 2)
        return float(1 - np.sum(err**2) / ss) if ss > 0 else float("nan")
    raise ValueError(f"no bootstrap for metric {metric!r}")


def improvement_interval(
    actual: np.ndarray,
    model_pred: np.ndarray,
    base_pred: np.ndarray,
    metric: str,
    seed: int,
    n_boot: int = BOOTSTRAP_SAMPLES,
) -> tuple[float, float]:
    """90% paired bootstrap interval (resampling held-out customers) of the relative improvement in
    spend."""
    rng = np.random.default_rng(seed)
    a, m, b = (
        np.asarray(x, dtype=float).reshape(len(actual), -1)[:, 0]
        for x in (actual, model_pred, base_pred)
    )
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(a), len(a))
        values.append(
            _improvement(
                _spend_metric(a[idx], m[idx], metric), _spend_metric(a[idx], b[idx], metric), metric
            )
        )
    lo, hi = np.nanquantile(values, [0.05, 0.95])
    return float(lo), float(hi)


def _sort_key(board: pd.DataFrame, metric: str) -> str:
    return f"cv_{metric}" if board[f"cv_{metric}"].notna().all() else metric


def paired_se(folds: pd.DataFrame, a: str, b: str, metric: str) -> float:
    """Standard error of the mean fold-by-fold difference of ``metric`` between ``a`` and ``b``."""
    wide = folds.pivot(index="cutoff", columns="model", values=metric)
    if a not in wide or b not in wide:
        return 0.0
    d = (wide[a] - wide[b]).dropna()
    return float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0


def near_ties(comparison: Comparison, metric: str) -> pd.DataFrame:
    """Eligible candidates tied with the best on the primary ``metric``, best by the other first.

    Tied: within :data:`SELECTION_MARGIN` or one paired standard error (:func:`paired_se`) of the
    best; ordered by the other metric (:data:`SECONDARY`), so the first row is the chosen
    candidate. Column ``tie_margin`` holds each one's allowance.
    """
    board = comparison.board
    key = _sort_key(board, metric)
    other = TIE_BREAK[metric] if key.startswith("cv_") else SECONDARY[metric]
    eligible = board[board["eligible"]] if board["eligible"].any() else board
    higher = metric in HIGHER_IS_BETTER
    best_name = eligible.sort_values(key, ascending=not higher, kind="stable").index[0]
    best = eligible.loc[best_name, key]
    se = [
        paired_se(comparison.folds, n, best_name, metric) if key.startswith("cv_") else 0.0
        for n in eligible.index
    ]
    margin = np.maximum(SELECTION_MARGIN * abs(best), se)
    gap = (best - eligible[key]) if higher else (eligible[key] - best)
    near = eligible[gap.to_numpy() <= margin].assign(tie_margin=margin[gap.to_numpy() <= margin])
    return near.sort_values([other, key], ascending=[True, not higher], kind="stable")


def select(comparison: Comparison, primary_metric: str, seed: int = 0) -> Selection:
    """Apply the selection rule (see the module doc) and measure the chosen model against the
    baselines."""
    board = comparison.board
    higher = primary_metric in HIGHER_IS_BETTER
    key = _sort_key(board, primary_metric)
    chosen = near_ties(comparison, primary_metric).index[0]
    n_folds = comparison.folds["cutoff"].nunique() if key.startswith("cv_") else 0
    baselines = board[board["kind"] == "baseline"].sort_values(
        primary_metric, ascending=not higher, kind="stable"
    )
    if baselines.empty:
        return Selection(
            chosen,
            primary_metric,
            n_folds,
            "",
            board.loc[chosen, primary_metric],
            float("nan"),
            float("nan"),
            (float("nan"), float("nan")),
        )
    base = baselines.index[0]
    m, b = board.loc[chosen, primary_metric], board.loc[base, primary_metric]
    interval = improvement_interval(
        comparison.actual,
        comparison.predictions[chosen],
        comparison.predictions[base],
        primary_metric,
        seed,
    )
    return Selection(
        chosen,
        primary_metric,
        n_folds,
        base,
        float(m),
        float(b),
        _improvement(m, b, primary_metric),
        interval,
    )


def leaderboard_table(comparison: Comparison, primary_metric: str) -> pd.DataFrame:
    """The leaderboard as the report shows it.

    CV mean ± std and held-out value of the main metrics, predicted / actual total spend (CV pooled
    and held-out), and whether the candidate could be chosen.
    """
    b = comparison.board
    higher = primary_metric in HIGHER_IS_BETTER
    out = pd.DataFrame(index=b.index)
    out["kind"] = b["kind"]
    for m in ("rmse", "mae", "r2", "top_decile_mae"):
        out[f"CV {METRIC_LABELS[m]}"] = [
            f"{v:.2f} ± {s:.2f}" if pd.notna(v) else "–"
            for v, s in zip(b[f"cv_{m}"], b[f"cv_{m}_std"].fillna(0), strict=True)
        ]
        out[f"held-out {METRIC_LABELS[m]}"] = b[m].round(3)
    out["held-out qty MAE"] = b["qty_mae"].round(3)
    out["CV predicted / actual"] = b["cv_ratio"].round(3)
    out["held-out predicted / actual"] = b["ratio"].round(3)
    out["eligible"] = np.where(b["eligible"], "yes", "no")
    out["fit s"] = b["fit_seconds"].round(1)
    key = _sort_key(b, primary_metric)
    return out.loc[b.sort_values(key, ascending=not higher, kind="stable").index]


def calibration_table(comparison: Comparison) -> pd.DataFrame:
    """Per candidate: predicted / actual total spend per fold, pooled, held-out; the rule's act."""
    b = comparison.board
    out = pd.DataFrame(index=b.index)
    if not comparison.folds.empty:
        per_fold = comparison.folds.pivot(index="model", columns="cutoff", values="ratio")
        for c in per_fold.columns:
            out[f"fold {c}"] = per_fold[c].reindex(b.index).round(3)
    out["CV pooled"] = b["cv_ratio"].round(3)
    out["held-out"] = b["ratio"].round(3)
    out["calibration rule"] = b["calibration"]
    return out


def calibration_deciles(
    actual: np.ndarray, predicted: np.ndarray, n_bins: int = 10
) -> pd.DataFrame:
    """Customers in deciles of predicted spend (1 = lowest): mean predicted and actual spend."""
    rank = pd.Series(np.asarray(predicted, dtype=float)).rank(method="first")
    decile = np.ceil(rank / len(rank) * n_bins).astype(int).clip(1, n_bins)
    df = pd.DataFrame({"decile": decile, "predicted": predicted, "actual": actual})
    return df.groupby("decile").agg(
        customers=("actual", "size"),
        mean_predicted=("predicted", "mean"),
        mean_actual=("actual", "mean"),
    )


def per_product(comparison: Comparison, names: list[str] | None = None) -> pd.DataFrame:
    """Held-out MAE of the quantity of each product type, per candidate (rows: product types)."""
    names = names or list(comparison.predictions)
    prefix = ft.LABEL_QTY_PREFIX + "_"
    rows = {}
    for j, t in enumerate(comparison.targets):
        if j == 0:
            continue
        actual = comparison.actual[:, j]
        rows[t[len(prefix) :].lower()] = {
            "mean actual": actual.mean(),
            **{n: mean_absolute_error(actual, comparison.predictions[n][:, j]) for n in names},
        }
    return pd.DataFrame(rows).T


def lift_table(actual: np.ndarray, predicted: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Customers ranked by predicted spend, in deciles (1 = highest): actual spend and lift per
    decile."""
    rank = pd.Series(predicted).rank(method="first", ascending=False)
    decile = np.ceil(rank / len(rank) * n_bins).astype(int).clip(1, n_bins)
    df = pd.DataFrame({"decile": decile, "actual": actual, "predicted": predicted})
    g = df.groupby("decile").agg(
        customers=("actual", "size"),
        mean_predicted=("predicted", "mean"),
        mean_actual=("actual", "mean"),
        actual_total=("actual", "sum"),
    )
    total = df["actual"].sum()
    g["share_of_spend"] = g["actual_total"] / total if total else np.nan
    g["cumulative_share"] = g["share_of_spend"].cumsum()
    g["lift"] = g["mean_actual"] / df["actual"].mean() if total else np.nan
    return g.drop(columns="actual_total")


def importance(
    model: BaseEstimator, holdout: pd.DataFrame, features: list[str], seed: int, top: int = 15
) -> pd.DataFrame:
    """Permutation importance for spend on (a seeded sample of) the held-out rows.

    Importance = increase of the held-out spend RMSE when one feature's values are shuffled
    (mean and standard deviation over :data:`IMPORTANCE_REPEATS` shuffles), as scikit-learn's
    ``permutation_importance`` computes it. The shuffled copies go to the model together, one
    ``predict`` per :data:`IMPORTANCE_BATCH_ROWS` rows, rather than one per shuffle: with ~60
    features that was ~180 calls, whose fixed cost (a pipeline's input checks, a forest's threads)
    was most of the 2.3 s the importance took at 10k orders.
    """
    sample = holdout.sample(n=min(IMPORTANCE_ROWS, len(holdout)), random_state=seed)
    X = sample[features].reset_index(drop=True)  # noqa: N806 - scikit-learn convention
    y = sample[ft.LABEL_SPEND].to_numpy(dtype=float)
    n = len(X)

    def rmse(pred: np.ndarray) -> float:
        return float(np.sqrt(mean_squared_error(y, pred)))

    baseline = rmse(predict(model, X, features)[:, 0])
    rng = np.random.default_rng(seed)
    shuffles = [(f, rng.permutation(n)) for f in features for _ in range(IMPORTANCE_REPEATS)]
    per_call = max(1, IMPORTANCE_BATCH_ROWS // max(n, 1))
    increase = np.empty(len(shuffles))
    for start in range(0, len(shuffles), per_call):
        part = shuffles[start : start + per_call]
        stacked = pd.concat(
            [X.assign(**{f: X[f].take(order).set_axis(X.index)}) for f, order in part],
            ignore_index=True,
        )
        spend = predict(model, stacked, features)[:, 0].reshape(len(part), n)
        increase[start : start + len(part)] = [rmse(row) - baseline for row in spend]
    per_feature = increase.reshape(len(features), IMPORTANCE_REPEATS)
    out = pd.DataFrame(
        {
            "feature": [f.lower() for f in features],
            "importance": per_feature.mean(axis=1),
            "std": per_feature.std(axis=1),
        }
    )
    return (
        out.sort_values("importance", ascending=False, kind="stable").head(top).set_index("feature")
    )
