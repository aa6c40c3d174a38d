"""Forecast totals with a measured range, the target list, the track record and what changed.

**The range of a total.** The model predicts each customer's spend (and units per product type)
over the next ``horizon_days``. A manager needs the *total* of a group of customers (everyone
scored, a channel, a decile) with a range. The range comes from how wrong the registered model
was, customer by customer, on the latest window whose outcome is known: the held-out rows of
FEATURES (the window ``[run_date - horizon, run_date)``, never seen by a model registered earlier
or in this run). Those customers are put in :data:`BANDS` bands of predicted value (restricted to
the run's scoring set when it has at least :data:`MIN_CALIBRATION` of them); per band, the mean
error (actual - predicted), its variance and the share of customers who bought. For a group of
customers the expected total is the sum of ``max(predicted + band's mean error, 0)``, and its
range is the normal approximation of a sum of independent errors, with the uncertainty of the
band means included::

    variance = sum over the group's customers of their band's variance
             + sum over bands of (customers of the group in the band)^2 * variance / calibration
             customers

**Measured coverage.** The method is tested on the same held-out window by repeated random splits
(:func:`coverage`): :data:`SPLITS` times, a random group of held-out customers (as many as this
run scores, at most half of them) is set aside, the bands are calibrated on the others, and the
group's actual total is compared with its range. The share of groups whose actual total fell
inside is the measured coverage that 05 states. It measures how well the range describes the
customer-to-customer uncertainty in one window; a change of season between that window and the
next is not in it (04 shows how the totals moved from one past window to another, and the track
record shows every forecast against what happened).

Why not MAPIE: it gives per-customer intervals, and per-customer intervals do not add up to an
interval for a total (summing their bounds is far too wide); the few lines of numpy here do the
sum directly and are tested by measurement.

**Targets.** ``TARGETS`` (one block per run date) holds per scored customer: expected spend,
probability of buying, value decile, channel and country, and per product type expected units,
expected spend and probability of buying. Personal data leaves the warehouse only through
``customer-analytics export-targets`` (:mod:`customer_analytics.cli`); reports show aggregates.

**Track record.** For every earlier run date whose forecast window has ended (and is covered by
the data), :func:`track_record` compares the forecast (``FORECASTS``, or the sum of
``PREDICTIONS`` for older runs) with the actual net spend of the same customers in the same
window, in total and per decile.

Everything here returns numbers; :mod:`customer_analytics.narrative` says them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import snowflake.snowpark.functions as F
from snowflake.snowpark import Column, DataFrame, Session
from snowflake.snowpark.window import Window

from customer_analytics import features as ft
from customer_analytics import fsutil, predict
from customer_analytics import portable as pt
from customer_analytics import warehouse as wh
from customer_analytics.config import Params
from customer_analytics.warehouse_server import machine_cpus

log = logging.getLogger(__name__)

TARGETS = "TARGETS"
FORECASTS = "FORECASTS"
KEY = ft.KEY
#: bands of predicted value at most, and calibration customers per band at least
BANDS, PER_BAND = 10, 50
#: held-out customers of the scoring set needed to calibrate on them alone (else all held-out ones)
MIN_CALIBRATION = 200
#: random splits of the coverage measurement
SPLITS = 1000
#: customers x splits computed in one block of array operations (coverage)
COVERAGE_BLOCK = 2_000_000
#: held-out rows pulled to calibrate at most (a seeded sample beyond)
MAX_CALIBRATION_ROWS = 200_000
DECILES = 10
#: group kinds of FORECASTS
OVERALL, DECILE, CHANNEL, COUNTRY, PRODUCT = "all", "decile", "channel", "country", "product"
SPEND, UNITS = "spend", "units"
UNKNOWN = ft.UNKNOWN


# --------------------------------------------------------------------------- calibration
@dataclasses.dataclass
class Calibration:
    """How wrong the model was, per band of predicted value, on the calibration customers.

    Attributes:
        target: the model's target (``SPEND_NEXT`` or ``QTY_NEXT_<P>``).
        edges: band edges on the prediction (band ``k`` = predictions with ``k`` edges at or below
            them).
        shift: mean error (actual - predicted) per band.
        var: variance of the error per band.
        count: calibration customers per band.
        buy_rate: share of them with a positive actual value.
    """

    target: str
    edges: list[float]
    shift: list[float]
    var: list[float]
    count: list[int]
    buy_rate: list[float]

    def band(self, pred: np.ndarray) -> np.ndarray:
        return np.searchsorted(
            np.asarray(self.edges, dtype=float), np.asarray(pred, dtype=float), side="right"
        )

    def expected(self, pred: np.ndarray) -> np.ndarray:
        """Each customer's expected value: the prediction plus its band's mean error, never below
        0."""
        return np.maximum(
            np.asarray(pred, dtype=float) + np.asarray(self.shift)[self.band(pred)], 0.0
        )

    def p_buy(self, pred: np.ndarray) -> np.ndarray:
        """Each customer's probability of buying: the share of calibration customers of its band who
        bought."""
        return np.asarray(self.buy_rate)[self.band(pred)]

    def total(self, pred: np.ndarray, level: float) -> Total:
        """The expected total of a group of customers (their predictions) and its range."""
        pred = np.asarray(pred, dtype=float)
        counts = np.bincount(self.band(pred), minlength=len(self.shift))
        return self.total_from(float(self.expected(pred).sum()), counts, level)

    def total_from(self, expected: float, counts: np.ndarray, level: float) -> Total:
        """:meth:`total` from a group's expected sum and its customers per band (warehouse
        aggregates)."""
        counts = np.asarray(counts, dtype=float)
        var, cal = np.asarray(self.var), np.maximum(np.asarray(self.count, dtype=float), 1.0)
        sd = float(np.sqrt((counts * var).sum() + (counts**2 * var / cal).sum()))
        z = NormalDist().inv_cdf(0.5 + level / 2)
        n = int(counts.sum())
        return Total(n, expected, max(expected - z * sd, 0.0), expected + z * sd, level)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Total:
    """A group's expected total and its range (``level``: e.g. 0.9)."""

    customers: int
    expected: float
    low: float
    high: float
    level: float


def band_count(customers: int) -> int:
    """Bands :func:`calibrate` cuts ``customers`` calibration customers into (equal counts)."""
    return int(np.clip(customers // PER_BAND, 2, BANDS))


def calibrate(
    target: str, pred: np.ndarray, actual: np.ndarray, bands: int | None = None
) -> Calibration:
    """Bands of predicted value (equal counts) with the mean, variance and buy rate of the error."""
    pred, actual = np.asarray(pred, dtype=float), np.asarray(actual, dtype=float)
    if not len(pred):
        raise ValueError(f"no calibration customers for {target}")
    k = bands or band_count(len(pred))
    edges = (
        np.unique(np.quantile(pred, np.linspace(0, 1, k + 1)[1:-1]))
        if len(pred) > 1
        else np.array([])
    )
    edges = edges[edges > pred.min()]  # no empty first band
    band = np.searchsorted(edges, pred, side="right")
    n = len(edges) + 1
    count = np.bincount(band, minlength=n)
    err = actual - pred
    shift = np.bincount(band, err, n) / np.maximum(count, 1)
    var = np.array(
        [err[band == b].var(ddof=1) if count[b] > 1 else float(err.var()) for b in range(n)]
    )
    buy = np.bincount(band, (actual > 0).astype(float), n) / np.maximum(count, 1)
    return Calibration(
        target,
        [float(e) for e in edges],
        [float(s) for s in shift],
        [float(v) for v in var],
        [int(c) for c in count],
        [float(b) for b in buy],
    )


@dataclasses.dataclass
class Coverage:
    """The measured coverage of the method on the held-out window (see the module doc)."""

    target: str
    share: float  # groups whose actual total fell inside their range
    group: int  # customers per group
    splits: int
    customers: int  # held-out customers the groups were drawn from
    level: float


def coverage(
    target: str,
    pred: np.ndarray,
    actual: np.ndarray,
    group: int,
    level: float,
    seed: int,
    splits: int = SPLITS,
) -> Coverage:
    """Repeated random splits: calibrate on the rest, check the range of a set-aside group (module
    doc).

    Split ``s`` is the ``s``-th ``rng.permutation`` of the customers: its first ``group`` are set
    aside, :func:`calibrate` runs on the rest and ``Calibration.total`` gives the group's range. The
    splits are computed together, a block of them per array operation (a loop of 1,000 splits in
    Python took 0.35 s on 1,896 customers, most of it per-call overhead); the numbers are those of
    the loop (``tests/test_forecast.py`` keeps the loop and compares)."""
    pred, actual = np.asarray(pred, dtype=float), np.asarray(actual, dtype=float)
    n = len(pred)
    size = int(max(1, min(group, n // 2)))
    if n <= size:
        raise ValueError(f"no calibration customers for {target}")
    rng = np.random.default_rng(seed)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    k = band_count(n - size)  # calibrate()'s bands, the same every split
    per_block = max(1, COVERAGE_BLOCK // max(n, 1))
    hits = 0
    for start in range(0, splits, per_block):
        order = np.stack([rng.permutation(n) for _ in range(min(per_block, splits - start))])
        hits += int(_covered(pred[order], actual[order], size, k, z).sum())
    return Coverage(target, hits / splits if splits else float("nan"), size, splits, n, level)


def _covered(pred: np.ndarray, actual: np.ndarray, size: int, k: int, z: float) -> np.ndarray:
    """Whether each row's set-aside group (its first ``size`` columns) falls inside the range that
    the rest of the row calibrates: :func:`calibrate` and ``Calibration.total`` row-wise."""
    rows = len(pred)
    rest, rest_actual = pred[:, size:], actual[:, size:]
    if rest.shape[1] > 1:
        edges = np.quantile(rest, np.linspace(0, 1, k + 1)[1:-1], axis=1).T  # (rows, k - 1)
        # calibrate() drops repeated edges and those at or below the minimum; as -inf (below every
        # value) or a repeat they only leave bands that no customer falls in, whose terms are 0
        edges = np.where(edges > rest.min(axis=1, keepdims=True), edges, -np.inf)
    else:
        edges = np.empty((rows, 0))
    bands = edges.shape[1] + 1

    def band(values: np.ndarray) -> np.ndarray:  # searchsorted(edges, values, side="right")
        b = np.zeros(values.shape, dtype=np.int64)
        for j in range(edges.shape[1]):
            b += values >= edges[:, j : j + 1]
        return b + np.arange(rows)[:, None] * bands  # one bincount for every row

    flat = band(rest).ravel()
    errors = rest_actual - rest
    err = errors.ravel()
    count = np.bincount(flat, minlength=rows * bands).reshape(rows, bands)
    shift = np.bincount(flat, err, rows * bands).reshape(rows, bands) / np.maximum(count, 1)
    dev = err - shift.ravel()[flat]
    var = np.bincount(flat, dev * dev, rows * bands).reshape(rows, bands) / np.maximum(count - 1, 1)
    var = np.where(count > 1, var, errors.var(axis=1)[:, None])
    test = band(pred[:, :size])
    expected = np.maximum(pred[:, :size] + shift.ravel()[test], 0.0).sum(axis=1)
    counts = np.bincount(test.ravel(), minlength=rows * bands).reshape(rows, bands)
    cal = np.maximum(count, 1.0)
    sd = np.sqrt((counts * var).sum(axis=1) + (counts**2 * var / cal).sum(axis=1))
    total = actual[:, :size].sum(axis=1)
    return (np.maximum(expected - z * sd, 0.0) <= total) & (total <= expected + z * sd)


@dataclasses.dataclass
class Calibrated:
    """The run's calibration: per target, with its measured coverage, and where it comes from.

    Attributes:
        targets: calibration per model target (spend first).
        coverage: measured coverage per target.
        population: ``"scoring set"`` (held-out customers of the run's scoring set) or ``"all"``.
        window_start, window_end: the held-out window (first and last day).
        customers: held-out customers calibrated on.
        level: the range's level.
        model_total_ratio: on that window, the model's total / the actual total (before
            calibration).
    """

    targets: dict[str, Calibration]
    coverage: dict[str, Coverage]
    population: str
    window_start: dt.date
    window_end: dt.date
    customers: int
    level: float
    model_total_ratio: float

    @property
    def spend(self) -> Calibration:
        return self.targets[ft.LABEL_SPEND]


def holdout_rows(
    session: Session, params: Params, features: list[str], targets: list[str]
) -> tuple[pd.DataFrame, str]:
    """The held-out rows of FEATURES to calibrate on: those of the scoring set, or all when too few.

    Returns the rows (features and labels, at most :data:`MAX_CALIBRATION_ROWS`, a seeded sample
    beyond) and the population they represent.
    """
    if not wh.table_exists(session, ft.TABLE):
        raise predict.PredictError("No FEATURES table: run 03_features before scoring.")
    rows = session.table(ft.TABLE).filter(F.col("ROLE") == F.lit("holdout"))
    missing = [c for c in [*features, *targets] if c not in rows.columns]
    if missing:
        raise predict.PredictError(f"The held-out rows lack {missing[:5]}: rebuild 03_features.")
    population = "scoring set"
    chosen = predict.in_scoring_set(rows, params)
    if chosen.count() < MIN_CALIBRATION:
        population, chosen = "all", rows
    n = chosen.count()
    if n > MAX_CALIBRATION_ROWS:
        chosen = ft.train_sample(
            chosen, params.seed, int(ft.TRAIN_BUCKETS * MAX_CALIBRATION_ROWS / n)
        )
    frame = wh.to_pandas(
        chosen.select(KEY, "CUTOFF", *features, *targets).sort(KEY), "forecast:holdout"
    )
    return frame, population


def calibrate_model(
    session: Session, params: Params, mv: Any, model: Any = None, reg: Any = None
) -> Calibrated:
    """Calibrate the ranges of model version ``mv`` on this run's held-out window and measure their
    coverage.

    Args:
        model: the version's Python model (``None``: predictions through ``reg.run``, e.g. on
            Snowflake).
        reg: the registry holding ``mv``.
    """
    feats, targets = mv.meta["features"], mv.meta["targets"]
    frame, population = holdout_rows(session, params, feats, targets)
    if frame.empty:
        raise predict.PredictError(
            "The held-out window has no customer: no range can be calibrated."
        )
    if model is not None:
        pred = np.clip(
            np.asarray(model.predict(frame[feats]), dtype=float).reshape(len(frame), -1), 0, None
        )
    else:
        pred = np.clip(reg.run(frame, mv.name, mv.version).to_numpy(dtype=float), 0, None)
    actual = frame[targets].to_numpy(dtype=float)
    group = scoring_count(session, params) or len(frame)
    level = params.forecast_level
    cals, covs = calibrate_targets(targets, pred, actual, group, level, params.seed)
    start = pd.Timestamp(frame["CUTOFF"].iloc[0]).date()
    total = actual[:, 0].sum()
    log.info(
        "forecast ranges calibrated on %d held-out customers (%s); measured coverage %.1f%%",
        len(frame),
        population,
        100 * covs[targets[0]].share,
    )
    return Calibrated(
        cals,
        covs,
        population,
        start,
        start + dt.timedelta(days=params.horizon_days - 1),
        len(frame),
        level,
        float(pred[:, 0].sum() / total) if total > 0 else float("nan"),
    )


def calibrate_targets(
    targets: list[str],
    pred: np.ndarray,
    actual: np.ndarray,
    group: int,
    level: float,
    seed: int,
    workers: int | None = None,
) -> tuple[dict[str, Calibration], dict[str, Coverage]]:
    """:func:`calibrate` and :func:`coverage` of each target (column ``j`` of ``pred``/``actual``,
    seed ``seed + j``), ``workers`` targets at once (threads; default: the CPUs). NumPy sorts and
    searches without holding the GIL, and each target has its own seed, so the results are those of
    one target after the other (7 targets, 1,000 splits each, on 2 CPUs: 1.14 s one after the other
    and 0.61 s side by side for 1,896 customers; 77 s and 46 s for 200,000)."""

    def one(j: int) -> tuple[Calibration, Coverage]:
        t, p, a = targets[j], np.ascontiguousarray(pred[:, j]), np.ascontiguousarray(actual[:, j])
        return calibrate(t, p, a), coverage(t, p, a, group, level, seed + j)

    n = max(1, min(len(targets), workers or machine_cpus()))
    with ThreadPoolExecutor(n) as pool:
        done = list(pool.map(one, range(len(targets))))
    return (
        {t: cal for t, (cal, _) in zip(targets, done, strict=True)},
        {t: cov for t, (_, cov) in zip(targets, done, strict=True)},
    )


def scoring_count(session: Session, params: Params) -> int:
    """Customers in this run date's block of PREDICTIONS."""
    if not wh.table_exists(session, predict.TABLE):
        return 0
    return session.table(predict.TABLE).filter(F.col("RUN_DATE") == F.lit(params.run_date)).count()


# --------------------------------------------------------------------------- targets
def _band(col: Column, cal: Calibration) -> Column:
    out: Column = F.lit(0)
    for e in cal.edges:
        out = out + F.iff(col >= F.lit(e), F.lit(1), F.lit(0))
    return out


def _lookup(band: Column, values: list[float]) -> Column:
    expr = F.when(band == F.lit(0), F.lit(float(values[0])))
    for k, v in enumerate(values[1:], start=1):
        expr = expr.when(band == F.lit(k), F.lit(float(v)))
    return expr.otherwise(F.lit(float(values[-1])))


def unit_prices(session: Session, params: Params, products: list[str]) -> dict[str, float]:
    """Average net price per unit of each product type over the last ``horizon_days`` before
    run_date (over all time when none was sold then; 0 when never)."""
    lines = session.table("CLEAN_ORDER_LINES").filter(F.col("QUANTITY") > F.lit(0))
    start = dt.datetime.combine(params.run_date - dt.timedelta(days=params.horizon_days), dt.time())
    end = dt.datetime.combine(params.run_date, dt.time())
    recent = lines.filter(
        (F.col("TS") >= pt.timestamp_literal(start)) & (F.col("TS") < pt.timestamp_literal(end))
    )
    out: dict[str, float] = {}
    for frame in (recent, lines.filter(F.col("TS") < pt.timestamp_literal(end))):
        rows = (
            frame.group_by("PRODUCT")
            .agg(
                F.sum(F.col("QUANTITY") * F.col("UNIT_PRICE")).alias("V"),
                F.sum("QUANTITY").alias("Q"),
            )
            .collect()
        )
        for r in rows:
            if r["PRODUCT"] in products and r["PRODUCT"] not in out and r["Q"]:
                out[r["PRODUCT"]] = float(r["V"]) / float(r["Q"])
    return {p: out.get(p, 0.0) for p in products}


def product_names(session: Session, products: list[str]) -> dict[str, str]:
    """Each product-type key's name as the shop writes it (from PRODUCT_TYPES; the key when
    absent)."""
    names = {}
    if wh.table_exists(session, "PRODUCT_TYPES"):
        for r in session.table("PRODUCT_TYPES").select("PRODUCT", "NAME").collect():
            names[r["PRODUCT"]] = r["NAME"]
    return {p: str(names.get(p) or p) for p in products}


def qty_target(product: str) -> str:
    return ft.product_column(ft.LABEL_QTY_PREFIX, product)


def target_columns(products: list[str]) -> list[str]:
    """The columns of TARGETS, in order (documented in the README, exported by
    ``export-targets``)."""
    cols = [
        KEY,
        "RUN_DATE",
        "MODEL_NAME",
        "MODEL_VERSION",
        "DECILE",
        "CHANNEL",
        "COUNTRY",
        "P_BUY",
        "EXPECTED_SPEND",
    ]
    for p in products:
        cols += [
            wh.column_name(f"EXPECTED_UNITS_{p}"),
            wh.column_name(f"EXPECTED_SPEND_{p}"),
            wh.column_name(f"P_BUY_{p}"),
        ]
    return cols


def stage_targets(
    session: Session, params: Params, mv: Any, cal: Calibrated
) -> tuple[str, list[str]]:
    """Stage this run date's target rows (with band columns) in the warehouse; return the table and
    products.

    Computed in the warehouse from this run date's PREDICTIONS, CLEAN_CUSTOMERS and the calibration,
    in three materialised steps (bands; expected values; spend split and decile), so that no
    column's expression repeats another's (Snowpark inlines a column into every expression that uses
    it).
    """
    products = [
        p for p in ft.products_from_columns(mv.meta["targets"]) if qty_target(p) in cal.targets
    ]
    name = wh.check_identifier(f"{TARGETS}__RUN_{params.run_date:%Y%m%d}")
    preds = session.table(predict.TABLE).filter(F.col("RUN_DATE") == F.lit(params.run_date))
    cust = session.table("CLEAN_CUSTOMERS").select(
        KEY, *[F.coalesce(F.col(c).cast("string"), F.lit(UNKNOWN)).alias(c) for c in ft.CATEGORICAL]
    )
    sources = {"SPEND": (predict.PRED_SPEND, cal.spend)}
    sources |= {
        wh.column_name(p): (predict.prediction_column(qty_target(p)), cal.targets[qty_target(p)])
        for p in products
    }
    base = [KEY, "RUN_DATE", "MODEL_NAME", "MODEL_VERSION"]
    step1 = preds.join(cust, KEY, "left").select(
        *base,
        *[F.coalesce(F.col(c), F.lit(UNKNOWN)).alias(c) for c in ft.CATEGORICAL],
        *[F.col(src).alias(f"PRED_{k}") for k, (src, _) in sources.items()],
        *[_band(F.col(src), c).alias(f"BAND_{k}") for k, (src, c) in sources.items()],
    )
    wh.replace_table(step1, f"{name}_A")
    a = session.table(f"{name}_A")
    prices = unit_prices(session, params, products)
    cols = [F.col(c) for c in [*base, *ft.CATEGORICAL]] + [F.col(f"BAND_{k}") for k in sources]
    weight: Column = F.lit(0.0)
    for k, (_, c) in sources.items():
        band = F.col(f"BAND_{k}")
        value = F.greatest(F.col(f"PRED_{k}") + _lookup(band, c.shift), F.lit(0.0))
        cols += [
            value.alias(f"EXPECTED_{'SPEND' if k == 'SPEND' else 'UNITS_' + k}"),
            _lookup(band, c.buy_rate).alias("P_BUY" if k == "SPEND" else f"P_BUY_{k}"),
        ]
    wh.replace_table(a.select(*cols), f"{name}_B")
    b = session.table(f"{name}_B")
    for p in products:
        weight = weight + F.col(wh.column_name(f"EXPECTED_UNITS_{p}")) * F.lit(prices[p])
    mix = _recent_mix(prices)
    out = [F.col(c) for c in b.columns]
    for p in (
        products
    ):  # each customer's expected spend split by their expected units at each product's price
        units = F.col(wh.column_name(f"EXPECTED_UNITS_{p}"))
        share = F.iff(weight > F.lit(0), units * F.lit(prices[p]) / weight, F.lit(mix.get(p, 0.0)))
        out.append((F.col("EXPECTED_SPEND") * share).alias(wh.column_name(f"EXPECTED_SPEND_{p}")))
    rank = F.ntile(F.lit(DECILES)).over(Window.order_by(F.col("EXPECTED_SPEND").desc(), F.col(KEY)))
    wh.replace_table(b.select(*out, rank.cast("int").alias("DECILE")), name)
    for t in (f"{name}_A", f"{name}_B"):
        session.sql(f"DROP TABLE IF EXISTS {t}").collect()
    return name, products


def _recent_mix(prices: dict[str, float]) -> dict[str, float]:
    """Split of spend when a customer is expected to buy no unit at all: equal shares of the priced
    types."""
    priced = [p for p, v in prices.items() if v > 0] or list(prices)
    return {p: 1.0 / len(priced) for p in priced} if priced else {}


def publish_targets(session: Session, staged: str, params: Params, products: list[str]) -> int:
    """Replace this run date's block of TARGETS with the staged rows (without the band columns)."""
    keep = [c for c in target_columns(products) if c in session.table(staged).columns]
    block = wh.check_identifier(f"{staged}_PUBLIC")
    wh.replace_table(session.table(staged).select(*keep), block)
    total = predict.publish(session, block, params, table=TARGETS)
    session.sql(f"DROP TABLE IF EXISTS {block}").collect()
    return total


# --------------------------------------------------------------------------- totals
@dataclasses.dataclass
class GroupTotal:
    """One row of FORECASTS: a group's expected total and range (spend, or units of a product
    type)."""

    kind: str
    group: str
    measure: str
    total: Total
    spend: Total | None = (
        None  # products: the spend at each product's price, range scaled from the units
    )
    expected_buyers: float | None = None  # products: sum of the customers' probability of buying it


@dataclasses.dataclass
class Forecast:
    """What 05 forecasts for this run date, with measured ranges."""

    run_date: dt.date
    window_end: dt.date
    level: float
    overall: Total
    groups: list[GroupTotal]
    calibration: Calibrated
    model_total: float  # the model's own total (PREDICTIONS), before calibration
    buyers: float  # expected number of customers who buy (sum of P_BUY)

    def by(self, kind: str) -> list[GroupTotal]:
        return [g for g in self.groups if g.kind == kind]


def _group_totals(
    staged: DataFrame, key: Column | None, band: str, value: str, cal: Calibration, level: float
) -> dict[str, Total]:
    by = [key.alias("G")] if key is not None else [F.lit(OVERALL).alias("G")]
    rows = (
        staged.group_by(*by, F.col(band).alias("B"))
        .agg(F.count(F.lit(1)).alias("N"), F.sum(F.col(value)).alias("V"))
        .collect()
    )
    sums: dict[str, float] = {}
    counts: dict[str, np.ndarray] = {}
    for r in rows:
        g = str(r["G"])
        counts.setdefault(g, np.zeros(len(cal.shift)))[int(r["B"])] += int(r["N"])
        sums[g] = sums.get(g, 0.0) + float(r["V"] or 0.0)
    return {g: cal.total_from(sums[g], counts[g], level) for g in sorted(counts)}


def totals(
    session: Session, params: Params, staged: str, products: list[str], cal: Calibrated
) -> Forecast:
    """The forecast of this run date: overall, per decile, channel, country and product type."""
    df = session.table(staged)
    level = cal.level
    end = params.run_date + dt.timedelta(days=params.horizon_days - 1)
    spend = cal.spend
    overall = _group_totals(df, None, "BAND_SPEND", "EXPECTED_SPEND", spend, level).get(
        OVERALL, Total(0, 0.0, 0.0, 0.0, level)
    )
    groups: list[GroupTotal] = []
    for kind, key in (
        (DECILE, F.col("DECILE").cast("string")),
        (CHANNEL, F.col("CHANNEL")),
        (COUNTRY, F.col("COUNTRY")),
    ):
        for g, t in _group_totals(df, key, "BAND_SPEND", "EXPECTED_SPEND", spend, level).items():
            groups.append(GroupTotal(kind, g, SPEND, t))
    groups.sort(key=lambda g: (g.kind, int(g.group) if g.kind == DECILE else 0, -g.total.expected))
    for p in products:
        c = cal.targets[qty_target(p)]
        units = _group_totals(
            df, None, f"BAND_{wh.column_name(p)}", wh.column_name(f"EXPECTED_UNITS_{p}"), c, level
        ).get(OVERALL)
        if units is None:
            continue
        row = df.agg(
            F.sum(F.col(wh.column_name(f"EXPECTED_SPEND_{p}"))).alias("S"),
            F.sum(F.col(wh.column_name(f"P_BUY_{p}"))).alias("B"),
        ).collect()[0]
        s = float(row["S"] or 0.0)
        scale = s / units.expected if units.expected > 0 else 0.0
        money = Total(units.customers, s, units.low * scale, units.high * scale, level)
        groups.append(GroupTotal(PRODUCT, p, UNITS, units, money, float(row["B"] or 0.0)))
    agg = df.agg(F.sum(F.col("P_BUY")).alias("B")).collect()[0]
    model_total = (
        session.table(predict.TABLE)
        .filter(F.col("RUN_DATE") == F.lit(params.run_date))
        .agg(F.sum(F.col(predict.PRED_SPEND)).alias("S"))
        .collect()[0]["S"]
    )
    return Forecast(
        params.run_date,
        end,
        level,
        overall,
        groups,
        cal,
        float(model_total or 0.0),
        float(agg["B"] or 0.0),
    )


FORECAST_COLUMNS = [
    "RUN_DATE",
    "HORIZON_DAYS",
    "LEVEL",
    "KIND",
    "GROUP_NAME",
    "MEASURE",
    "CUSTOMERS",
    "EXPECTED",
    "LOW",
    "HIGH",
    "EXPECTED_SPEND",
    "LOW_SPEND",
    "HIGH_SPEND",
    "MODEL_NAME",
    "MODEL_VERSION",
    "COVERAGE",
]


def forecast_frame(fc: Forecast, params: Params, mv: Any) -> pd.DataFrame:
    """FORECASTS rows of this run date (one per group)."""
    rows = [GroupTotal(OVERALL, OVERALL, SPEND, fc.overall), *fc.groups]
    cov = fc.calibration.coverage[ft.LABEL_SPEND].share
    out = []
    for g in rows:
        s = g.spend if g.spend is not None else (g.total if g.measure == SPEND else None)
        out.append(
            {
                "RUN_DATE": params.run_date,
                "HORIZON_DAYS": params.horizon_days,
                "LEVEL": fc.level,
                "KIND": g.kind,
                "GROUP_NAME": g.group,
                "MEASURE": g.measure,
                "CUSTOMERS": g.total.customers,
                "EXPECTED": g.total.expected,
                "LOW": g.total.low,
                "HIGH": g.total.high,
                "EXPECTED_SPEND": s.expected if s else None,
                "LOW_SPEND": s.low if s else None,
                "HIGH_SPEND": s.high if s else None,
                "MODEL_NAME": mv.name,
                "MODEL_VERSION": mv.version,
                "COVERAGE": cov,
            }
        )
    return pd.DataFrame(out, columns=FORECAST_COLUMNS)


def publish(session: Session, params: Params, mv: Any, cal: Calibrated) -> Forecast:
    """Write this run date's TARGETS and FORECASTS blocks (each replaced in one step) and return the
    forecast."""
    staged, products = stage_targets(session, params, mv, cal)
    fc = totals(session, params, staged, products, cal)
    publish_targets(session, staged, params, products)
    frame = forecast_frame(fc, params, mv)
    stage = wh.check_identifier(f"{FORECASTS}__RUN_{params.run_date:%Y%m%d}")
    wh.write_pandas(session, frame, stage, params.warehouse_dir / "staging")
    predict.publish(session, stage, params, table=FORECASTS)
    for t in (stage, staged):
        session.sql(f"DROP TABLE IF EXISTS {t}").collect()
    return fc


# --------------------------------------------------------------------------- track record
@dataclasses.dataclass
class Check:
    """An earlier run's forecast against what its customers actually spent in its window."""

    run_date: dt.date
    window_end: dt.date
    customers: int
    forecast: float
    low: float | None
    high: float | None
    actual: float
    deciles: pd.DataFrame  # decile -> customers, forecast, actual (empty without TARGETS)

    @property
    def inside(self) -> bool | None:
        if self.low is None or self.high is None:
            return None
        return bool(self.low <= self.actual <= self.high)

    def record(self) -> dict[str, Any]:
        return {
            "run_date": self.run_date.isoformat(),
            "window_end": self.window_end.isoformat(),
            "customers": self.customers,
            "forecast": self.forecast,
            "low": self.low,
            "high": self.high,
            "actual": self.actual,
            "inside": self.inside,
        }


def _window(d: dt.date, horizon: int) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(d, dt.time())
    return start, start + dt.timedelta(days=horizon)


def actual_spend(
    session: Session, customers: DataFrame, start: dt.date, horizon_days: int
) -> DataFrame:
    """Net spend per customer of ``customers`` (a frame with ``CUSTOMER_ID``) in ``[start, start +
    horizon)``: the same definition as the spend label (sum of CLEAN_ORDERS.ORDER_TOTAL; 0 without
    an order)."""
    t0, t1 = _window(start, horizon_days)
    in_window = (F.col("TS") >= pt.timestamp_literal(t0)) & (F.col("TS") < pt.timestamp_literal(t1))
    orders = session.table("CLEAN_ORDERS").filter(in_window)
    spend = orders.group_by(KEY).agg(F.sum("ORDER_TOTAL").alias("ACTUAL"))
    return customers.join(spend, KEY, "left").with_column(
        "ACTUAL", F.coalesce(F.col("ACTUAL"), F.lit(0.0))
    )


def checkable_dates(session: Session, params: Params, last_day: dt.date | None) -> list[dt.date]:
    """Earlier run dates in PREDICTIONS whose forecast window has ended by run_date and lies in the
    data."""
    if last_day is None or not wh.table_exists(session, predict.TABLE):
        return []
    rows = session.table(predict.TABLE).select("RUN_DATE").distinct().collect()
    h = dt.timedelta(days=params.horizon_days)
    out = []
    for r in rows:
        d = r["RUN_DATE"]
        if d + h <= params.run_date and d + h - dt.timedelta(days=1) <= last_day:
            out.append(d)
    return sorted(out)


def track_record(session: Session, params: Params, last_day: dt.date | None) -> list[Check]:
    """Every earlier forecast whose window has ended, against actual spend (newest first)."""
    out = []
    for d in reversed(checkable_dates(session, params, last_day)):
        block = session.table(predict.TABLE).filter(F.col("RUN_DATE") == F.lit(d))
        has_targets = (
            wh.table_exists(session, TARGETS)
            and session.table(TARGETS).filter(F.col("RUN_DATE") == F.lit(d)).limit(1).count() > 0
        )
        if has_targets:
            base = (
                session.table(TARGETS)
                .filter(F.col("RUN_DATE") == F.lit(d))
                .select(KEY, F.col("EXPECTED_SPEND").alias("FORECAST"), "DECILE")
            )
        else:
            base = block.select(
                KEY,
                F.col(predict.PRED_SPEND).alias("FORECAST"),
                F.lit(None).cast("int").alias("DECILE"),
            )
        joined = actual_spend(session, base, d, params.horizon_days)
        row = joined.agg(
            F.count(F.lit(1)).alias("N"), F.sum("FORECAST").alias("F"), F.sum("ACTUAL").alias("A")
        ).collect()[0]
        low = high = None
        forecast = float(row["F"] or 0.0)
        if wh.table_exists(session, FORECASTS):
            f = (
                session.table(FORECASTS)
                .filter((F.col("RUN_DATE") == F.lit(d)) & (F.col("KIND") == F.lit(OVERALL)))
                .collect()
            )
            if f:
                forecast, low, high = (
                    float(f[0]["EXPECTED"]),
                    float(f[0]["LOW"]),
                    float(f[0]["HIGH"]),
                )
        deciles = pd.DataFrame()
        if has_targets:
            deciles = wh.to_pandas(
                joined.group_by("DECILE")
                .agg(
                    F.count(F.lit(1)).alias("CUSTOMERS"),
                    F.sum("FORECAST").alias("FORECAST"),
                    F.sum("ACTUAL").alias("ACTUAL"),
                )
                .sort("DECILE"),
                "forecast:track_deciles",
            ).set_index("DECILE")
        out.append(
            Check(
                d,
                d + dt.timedelta(days=params.horizon_days - 1),
                int(row["N"] or 0),
                forecast,
                low,
                high,
                float(row["A"] or 0.0),
                deciles,
            )
        )
    return out


# --------------------------------------------------------------------------- what changed
@dataclasses.dataclass
class Change:
    """This run against the previous run date in PREDICTIONS."""

    previous: dt.date
    customers_before: int
    customers_now: int
    total_before: float
    total_now: float
    version_before: str
    version_now: str
    shifts: list[
        tuple[str, str, float, float]
    ]  # (kind, group, before, now): the largest moves first
    basis: str = (
        "expected"  # totals: "expected" (FORECASTS, both runs) or "model" (PREDICTIONS' own sums)
    )

    def record(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in dataclasses.asdict(self).items() if k != "shifts"},
            "previous": self.previous.isoformat(),
            "shifts": [list(s) for s in self.shifts],
        }


def _block_summary(session: Session, d: dt.date) -> tuple[int, float, str]:
    rows = session.table(predict.TABLE).filter(F.col("RUN_DATE") == F.lit(d))
    r = rows.agg(
        F.count(F.lit(1)).alias("N"), F.sum(F.col(predict.PRED_SPEND)).alias("S")
    ).collect()[0]
    versions = rows.group_by("MODEL_VERSION").count().sort(F.col("COUNT").desc()).limit(1).collect()
    return (
        int(r["N"] or 0),
        float(r["S"] or 0.0),
        (str(versions[0]["MODEL_VERSION"]) if versions else ""),
    )


def _forecast_rows(session: Session, d: dt.date) -> pd.DataFrame:
    if not wh.table_exists(session, FORECASTS):
        return pd.DataFrame()
    return wh.to_pandas(
        session.table(FORECASTS).filter(F.col("RUN_DATE") == F.lit(d)), "forecast:rows"
    )


def changes(session: Session, params: Params, top: int = 3) -> Change | None:
    """What changed since the previous run date: customers, expected total, model version, largest
    shifts."""
    prev = predict.previous_run_date(session, params)
    if prev is None:
        return None
    n0, s0, v0 = _block_summary(session, prev)
    n1, s1, v1 = _block_summary(session, params.run_date)
    before, now = _forecast_rows(session, prev), _forecast_rows(session, params.run_date)
    shifts: list[tuple[str, str, float, float]] = []
    basis = "model"
    if not before.empty and not now.empty:
        key = ["KIND", "GROUP_NAME"]
        b = before.set_index(key)
        n = now.set_index(key)
        overall = (OVERALL, OVERALL)
        basis = "model"
        if overall in b.index and overall in n.index:
            s0, s1 = float(b.loc[overall, "EXPECTED"]), float(n.loc[overall, "EXPECTED"])
            basis = "expected"
        value = "EXPECTED_SPEND"
        both = b.index.intersection(n.index)
        moves = [
            (k, g, float(b.loc[(k, g), value]), float(n.loc[(k, g), value]))
            for k, g in both
            if k in (CHANNEL, COUNTRY, PRODUCT)
            and pd.notna(b.loc[(k, g), value])
            and pd.notna(n.loc[(k, g), value])
        ]
        shifts = sorted(moves, key=lambda m: -abs(m[3] - m[2]))[:top]
    else:  # an earlier run without FORECASTS: units per product type from PREDICTIONS
        cols = [c for c in session.table(predict.TABLE).columns if c.startswith("PRED_QTY_")]
        if cols:

            def sums(d: dt.date) -> dict[str, float]:
                row = (
                    session.table(predict.TABLE)
                    .filter(F.col("RUN_DATE") == F.lit(d))
                    .agg(*[F.sum(F.col(c)).alias(c) for c in cols])
                    .collect()[0]
                )
                return {c: float(row[c] or 0.0) for c in cols}

            a, b2 = sums(prev), sums(params.run_date)
            shifts = sorted(
                [("units", c.removeprefix("PRED_QTY_").lower(), a[c], b2[c]) for c in cols],
                key=lambda m: -abs(m[3] - m[2]),
            )[:top]
    return Change(prev, n0, n1, s0, s1, v0, v1, shifts, basis)


# --------------------------------------------------------------------------- for the report
def spend_bands(session: Session, params: Params, bins: int = 20) -> pd.DataFrame:
    """Scored customers per band of expected spend (equal bands up to the 99th percentile, the rest
    in the last): columns ``low``, ``high`` (``None`` for the last) and ``customers``."""
    rows = (
        session.table(TARGETS).filter(F.col("RUN_DATE") == F.lit(params.run_date))
        if wh.table_exists(session, TARGETS)
        else None
    )
    if rows is None:
        return pd.DataFrame(columns=["low", "high", "customers"])
    top = rows.agg(
        F.percentile_cont(0.99).within_group(F.col("EXPECTED_SPEND")).alias("P99")
    ).collect()[0]["P99"]
    width = predict._nice_width(float(top or 0) / bins)
    band = (
        F.least(F.floor(F.col("EXPECTED_SPEND") / F.lit(width)), F.lit(bins - 1))
        .cast("int")
        .alias("BAND")
    )
    counts = {
        r["BAND"]: r["N"] for r in rows.group_by(band).agg(F.count(F.lit(1)).alias("N")).collect()
    }
    return pd.DataFrame(
        {
            "low": [i * width for i in range(bins)],
            "high": [(i + 1) * width for i in range(bins - 1)] + [None],
            "customers": [int(counts.get(i, 0)) for i in range(bins)],
        }
    )


def headline(head: Any, fc: Forecast | None, checks: list[Check], change: Change | None) -> Any:
    """05's headline record with the forecast, the track record and what changed (aggregates
    only)."""
    cov = fc.calibration.coverage.get(ft.LABEL_SPEND) if fc else None
    top = [g for g in fc.by(DECILE) if g.group == "1"] if fc else []
    return dataclasses.replace(
        head,
        expected_spend=fc.overall.expected if fc else None,
        spend_low=fc.overall.low if fc else None,
        spend_high=fc.overall.high if fc else None,
        level=fc.level if fc else None,
        coverage=cov.share if cov else None,
        coverage_group=cov.group if cov else None,
        window_end=fc.window_end.isoformat() if fc else None,
        buyers=fc.buyers if fc else None,
        top_decile_share=(top[0].total.expected / fc.overall.expected)
        if top and fc and fc.overall.expected
        else None,
        track=[c.record() for c in checks],
        changes=change.record() if change else None,
    )


# --------------------------------------------------------------------------- export for the CRM
class ExportError(ValueError):
    """``export-targets`` cannot write what was asked; the message says why and what to do."""


EXPORT_LOG = "exports.jsonl"


def refuse_report_path(out: Path, forbidden: list[Path]) -> None:
    """Raise :class:`ExportError` when ``out`` lies under one of ``forbidden`` (the reports
    folders).

    Personal data never goes where reports are published: the path is resolved first, so ``..`` or a
    link into ``reports/`` is refused too.
    """
    target = out.expanduser().resolve()
    for folder in forbidden:
        if target.is_relative_to(folder.expanduser().resolve()):
            raise ExportError(
                f"export-targets does not write under the reports folder ({folder.name}/): "
                "reports are shared and hold aggregates only. Choose a path outside it."
            )


def export_frame(
    session: Session, params: Params, top: int | None = None, product: str | None = None
) -> pd.DataFrame:
    """This run date's rows of TARGETS for the CRM, best first (by ``product``'s expected spend if
    given).

    Args:
        top: keep the ``top`` customers only.
        product: a product-type key or its name in the shop (``PRODUCT_TYPES``).

    Raises:
        ExportError: no TARGETS for the run date, an unknown product type or a bad ``top``.
    """
    if top is not None and top < 1:
        raise ExportError(f"--top must be at least 1, got {top}.")
    if not wh.table_exists(session, TARGETS):
        raise ExportError(
            "No TARGETS table in this warehouse: run the pipeline (05_batch_prediction) first."
        )
    rows = session.table(TARGETS).filter(F.col("RUN_DATE") == F.lit(params.run_date))
    if rows.limit(1).count() == 0:
        dates = sorted(
            {r["RUN_DATE"] for r in session.table(TARGETS).select("RUN_DATE").distinct().collect()}
        )
        known = ", ".join(d.isoformat() for d in dates[-5:]) or "none"
        raise ExportError(
            f"TARGETS holds no customer for run date {params.run_date} (latest run dates: "
            f"{known}). Run the pipeline for that date first, or pass one of those."
        )
    products = sorted(
        c.removeprefix("EXPECTED_UNITS_").lower()
        for c in rows.columns
        if c.startswith("EXPECTED_UNITS_")
    )
    order = F.col("EXPECTED_SPEND")
    if product:
        names = product_names(session, products)
        match = [p for p in products if _plain(product) in (_plain(p), _plain(names[p]))]
        if not match:
            raise ExportError(
                f"--product {product[:40]!r} is not a product type of run {params.run_date}; "
                f"choose one of: {', '.join(sorted(products))}."
            )
        order = F.col(wh.column_name(f"EXPECTED_SPEND_{match[0]}"))
    ranked = rows.select(*[c for c in target_columns(products) if c in rows.columns]).sort(
        order.desc(), F.col(KEY)
    )
    if top is not None:
        ranked = ranked.limit(top)
    frame = wh.to_pandas(ranked, "forecast:export")
    for col in frame.columns:  # money to the cent, units and probabilities to three places
        if col.startswith(("EXPECTED_SPEND", "EXPECTED_UNITS_", "P_BUY")):
            frame[col] = (
                frame[col].astype(float).round(2 if col.startswith("EXPECTED_SPEND") else 3)
            )
    return frame


def _plain(name: str) -> str:
    return re.sub(r"[\s_-]+", " ", str(name).strip().lower())


def export_targets(
    session: Session,
    params: Params,
    out: Path,
    forbidden: list[Path],
    log_dir: Path,
    top: int | None = None,
    product: str | None = None,
) -> int:
    """Write the target list to ``out`` (CSV, written atomically) and log who exported how many rows
    when.

    The log line (``log_dir/exports.jsonl`` and the library log) names the file, not its folder, and
    holds no customer data. Returns the number of rows written.
    """
    refuse_report_path(out, forbidden)
    if out.suffix.lower() != ".csv":
        raise ExportError(f"--out must name a .csv file, got {out.name[:60]!r}.")
    frame = export_frame(session, params, top, product)
    fsutil.atomic_write(out, frame.to_csv(index=False, date_format="%Y-%m-%d"))
    entry = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "who": getpass.getuser(),
        "run_date": params.run_date.isoformat(),
        "rows": len(frame),
        "top": top,
        "product": product,
        "file": out.name,
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / EXPORT_LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
    log.info(
        "export-targets: %s exported %d rows of run %s to %s",
        entry["who"],
        len(frame),
        params.run_date,
        out.name,
    )
    return len(frame)
