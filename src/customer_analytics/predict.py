"""Batch prediction: score the customers of interest with the registered default model.

* **Who is scored** (``scoring_set``): ``new`` = signed up within ``new_customer_days`` before
  ``run_date`` (the trial customers, default); ``active`` = ordered within ``horizon_days``;
  ``all`` = everyone signed up before ``run_date``.
* **Features** as of ``run_date``: the ``score`` rows of FEATURES when 03_features built them for
  this date; otherwise (re-scoring on another day without retraining) the same definitions
  (:func:`customer_analytics.features.features_at`) computed in the warehouse for ``run_date``.
* **Memory stays flat**: the scored batch is staged once in the warehouse (:data:`BATCH`, with a
  chunk number per ``chunk_rows`` customers, in key order); the client pulls, scores and
  appends one chunk at a time to a staging table, so it never holds more than one chunk.
* **On Snowflake the model runs in the warehouse** (:func:`score_in_warehouse`: the registry's
  ``ModelVersion.run`` on the staged batch, written to a table by the warehouse; the client holds
  no customer row). The chunked client path is the fallback; the log and the report say when
  it was used and why.
* **PREDICTIONS keeps history**: one block of rows per ``RUN_DATE``, each row with the model
  name and version. Publishing replaces this date's rows only, in one ``CREATE OR REPLACE``
  statement at the end: a failure at any point leaves the previous table intact. An empty
  scoring set still publishes (an empty block: the table exists, this date's old rows are gone)
  and the summary says which setting would score someone (:func:`scoring_alternatives`).
* **Per-customer outlook** beside the predicted spend and quantities (:data:`OUTLOOK`), from the
  buy-till-you-die model fitted as of ``run_date`` on every customer's history (see
  :mod:`customer_analytics.features`): ``P_ALIVE`` (probability the customer is still active),
  ``EXP_ORDERS`` (expected purchase days in the next ``horizon_days``) and ``NEXT_ORDER_DATE``
  (the date by which another order is as likely as not; null when another order is less likely
  than not, or without a purchase history). The spend and quantities come from the registered
  model, which need not be the BTYD one.

Everything the report shows is a warehouse aggregate of PREDICTIONS (no customer rows).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import snowflake.snowpark.functions as F
from snowflake.snowpark import DataFrame, Session
from snowflake.snowpark.window import Window

from customer_analytics import drift, headlines
from customer_analytics import features as ft
from customer_analytics import portable as pt
from customer_analytics import warehouse as wh
from customer_analytics.config import Params
from customer_analytics.registry import ModelRegistry, ModelVersion, WarehouseRegistry

log = logging.getLogger(__name__)

TABLE = "PREDICTIONS"
BATCH = "SCORING_BATCH"
KEY = ft.KEY
CHUNK_ROWS = 50_000
PRED_SPEND = "PRED_SPEND"
META_COLUMNS = [KEY, "RUN_DATE", "MODEL_NAME", "MODEL_VERSION"]
#: outlook column -> the FEATURES column it comes from
OUTLOOK = {
    "P_ALIVE": "BTYD_P_ALIVE",
    "EXP_ORDERS": "BTYD_EXP_PURCHASES",
    "NEXT_ORDER_DATE": "BTYD_NEXT_DAYS",
}


class PredictError(RuntimeError):
    """Scoring cannot run as asked; the message says why and what to do."""


def check_model(mv: ModelVersion, params: Params) -> None:
    """Refuse to score with a model that does not predict what this run asks for.

    A registered version records its horizon, targets, product types, features and the version of
    the feature definitions (see :func:`customer_analytics.registry.register`).

    Raises:
        PredictError: another horizon or other feature definitions; the message names both values
            and the fix.
    """
    p = mv.meta.get("params", {})
    horizon = p.get("horizon_days")
    if horizon != params.horizon_days:
        raise PredictError(
            f"Model {mv.name} {mv.version} predicts spend over {horizon} days, but this run asks "
            f"for {params.horizon_days} days (horizon_days). Fix: train a "
            f"{params.horizon_days}-day model first (run 04_model_comparison with "
            f"horizon_days={params.horizon_days} in this namespace), or score with "
            f"horizon_days={horizon}."
        )
    definitions = p.get("definitions_version")
    if definitions != ft.DEFINITIONS_VERSION:
        raise PredictError(
            f"Model {mv.name} {mv.version} was trained on feature definitions version "
            f"{definitions}, but the features are now computed with version "
            f"{ft.DEFINITIONS_VERSION}. Fix: retrain (run the pipeline, or 03_features and "
            "04_model_comparison) before scoring."
        )


def prediction_column(target: str) -> str:
    """``SPEND_NEXT`` -> ``PRED_SPEND``, ``QTY_NEXT_<P>`` -> ``PRED_QTY_<P>``."""
    return "PRED_" + target.replace("_NEXT", "")


def in_scoring_set(df: DataFrame, params: Params) -> DataFrame:
    """Rows of a FEATURES-shaped frame that belong to the configured scoring set."""
    if params.scoring_set == "new":
        return df.filter(F.col("TENURE_DAYS") <= params.new_customer_days)
    if params.scoring_set == "active":
        return df.filter(
            (F.col("HAS_ORDERED") == 1) & (F.col("RECENCY_DAYS") <= params.horizon_days)
        )
    return df


def _score_block_date(session: Session) -> dt.date | None:
    if not wh.table_exists(session, "FEATURES"):
        return None
    return (
        session.table("FEATURES")
        .filter(F.col("ROLE") == "score")
        .agg(F.max("CUTOFF").alias("D"))
        .collect()[0]["D"]
    )


def _base_features(session: Session, params: Params, features: list[str]) -> DataFrame:
    """Every customer's features as of ``run_date`` (FEATURES' score rows, or computed then)."""
    if _score_block_date(session) == params.run_date:
        return session.table("FEATURES").filter(F.col("ROLE") == "score")
    if not wh.table_exists(session, "CLEAN_ORDER_LINES"):
        raise PredictError(
            "No clean data in the warehouse: run 01_ingest (or the whole pipeline) first."
        )
    log.info(
        "FEATURES has no score rows for %s: computing features as of that date", params.run_date
    )
    products = [p for p in ft.product_types(session) if ft.product_column("QTY", p) in features]
    sentiment = any(
        c in ft.SENTIMENT for c in features
    )  # scores of every text are in TEXT_SENTIMENT
    n_topics = sum(c.startswith(ft.tp.SHARE_PREFIX) for c in features)
    return ft.features_at(
        session,
        params.run_date,
        params.horizon_days,
        products,
        sentiment=sentiment,
        btyd_staging=params.warehouse_dir / "staging",
        topics=n_topics,
        seed=params.seed,
    )


def scoring_features(session: Session, params: Params, features: list[str]) -> DataFrame:
    """Features as of ``run_date`` of the customers to score.

    Columns: ``CUSTOMER_ID``, ``features`` and the outlook's sources (:data:`OUTLOOK`).

    Raises:
        PredictError: the model needs a column the data cannot provide, or nothing was ingested.
    """
    base = _base_features(session, params, features)
    missing = [c for c in features if c not in base.columns]
    if missing:
        raise PredictError(
            f"The model needs feature columns {missing} that the data as of {params.run_date} "
            "does not have (new or retired product types?): retrain with the full pipeline."
        )
    outlook = [c for c in OUTLOOK.values() if c in base.columns and c not in features]
    return in_scoring_set(base, params).select(KEY, *features, *outlook)


def scoring_alternatives(session: Session, params: Params, features: list[str]) -> dict[str, Any]:
    """How many customers each scoring set would hold as of ``run_date`` (warehouse aggregates).

    Returns:
        ``new``, ``active``, ``all`` (customer counts with this run's ``new_customer_days`` and
        ``horizon_days``) and ``newest_days`` (days since the latest sign-up, ``None`` without
        customers).
    """
    base = _base_features(session, params, features)
    row = base.agg(
        F.count(F.lit(1)).alias("N_ALL"),
        F.sum(
            F.iff(F.col("TENURE_DAYS") <= F.lit(params.new_customer_days), F.lit(1), F.lit(0))
        ).alias("N_NEW"),
        F.sum(
            F.iff(
                (F.col("HAS_ORDERED") == F.lit(1))
                & (F.col("RECENCY_DAYS") <= F.lit(params.horizon_days)),
                F.lit(1),
                F.lit(0),
            )
        ).alias("N_ACTIVE"),
        F.min(F.col("TENURE_DAYS")).alias("NEWEST"),
    ).collect()[0]
    return {
        "new": int(row["N_NEW"] or 0),
        "active": int(row["N_ACTIVE"] or 0),
        "all": int(row["N_ALL"] or 0),
        "newest_days": None if row["NEWEST"] is None else int(row["NEWEST"]),
    }


def reference_features(session: Session, params: Params, features: list[str]) -> DataFrame | None:
    """Training rows of FEATURES in the same scoring set (the drift reference), or ``None``."""
    if not wh.table_exists(session, "FEATURES"):
        return None
    return in_scoring_set(
        session.table("FEATURES").filter(F.col("ROLE") == "train"), params
    ).select(*features)


def score(model: Any, frame: pd.DataFrame, mv: ModelVersion, params: Params) -> pd.DataFrame:
    """Predictions for ``frame`` (feature rows): one row per ``CUSTOMER_ID``, with the outlook."""
    pred = np.clip(model.predict(frame[mv.meta["features"]]), 0, None)
    pred = pred.reshape(len(frame), -1)
    out = pd.DataFrame(
        {
            KEY: frame[KEY].to_numpy(),
            "RUN_DATE": params.run_date,
            "MODEL_NAME": mv.name,
            "MODEL_VERSION": mv.version,
        }
    )
    for i, t in enumerate(mv.meta["targets"]):
        out[prediction_column(t)] = pred[:, i].astype(float)
    return out.assign(**outlook(frame, params))


def outlook(frame: pd.DataFrame, params: Params) -> dict[str, Any]:
    """The :data:`OUTLOOK` columns for ``frame`` (null where the BTYD columns are missing)."""

    def col(name: str) -> np.ndarray:
        src = OUTLOOK[name]
        return (
            frame[src].to_numpy(dtype=float)
            if src in frame.columns
            else np.full(len(frame), np.nan)
        )

    days = col("NEXT_ORDER_DATE")
    ok = np.isfinite(days) & (days < 365 * 100)  # beyond a century: never, in practice
    start = pd.Timestamp(params.run_date)
    dates = [
        (start + pd.Timedelta(days=int(round(d)))).date() if k else None
        for d, k in zip(days, ok, strict=True)
    ]
    return {
        "P_ALIVE": col("P_ALIVE"),
        "EXP_ORDERS": col("EXP_ORDERS"),
        "NEXT_ORDER_DATE": pd.Series(dates, index=frame.index, dtype=object),
    }


def outlook_columns(frame: DataFrame, params: Params) -> list[Any]:
    """:func:`outlook` as Snowpark columns (scoring in the warehouse): null where the BTYD columns
    are missing."""

    def col(name: str) -> Any:
        src = OUTLOOK[name]
        return F.col(src).cast("double") if src in frame.columns else F.lit(None).cast("double")

    days = col("NEXT_ORDER_DATE")
    ok = days.is_not_null() & (days < F.lit(365 * 100))
    next_date = F.iff(
        ok,
        F.dateadd("day", F.round(days).cast("int"), F.lit(params.run_date)),
        F.lit(None).cast("date"),
    )
    return [
        col("P_ALIVE").alias("P_ALIVE"),
        col("EXP_ORDERS").alias("EXP_ORDERS"),
        F.to_date(next_date).alias("NEXT_ORDER_DATE"),
    ]


def empty_block(session: Session, mv: ModelVersion, name: str) -> str:
    """Create table ``name`` with PREDICTIONS' columns and no rows (an empty scoring set)."""
    cols = (
        [
            f"CAST(NULL AS VARCHAR) AS {KEY}",
            "CAST(NULL AS DATE) AS RUN_DATE",
            "CAST(NULL AS VARCHAR) AS MODEL_NAME",
            "CAST(NULL AS VARCHAR) AS MODEL_VERSION",
        ]
        + [
            f"CAST(NULL AS DOUBLE) AS {wh.check_identifier(prediction_column(t))}"
            for t in mv.meta["targets"]
        ]
        + [
            "CAST(NULL AS DOUBLE) AS P_ALIVE",
            "CAST(NULL AS DOUBLE) AS EXP_ORDERS",
            "CAST(NULL AS DATE) AS NEXT_ORDER_DATE",
        ]
    )
    wh.replace_table(session.sql(f"SELECT {', '.join(cols)}").filter(F.lit(False)), name)
    return name


@dataclass(frozen=True)
class ScoringRun:
    """What one scoring run did."""

    customers: int
    chunks: int
    largest_chunk: int
    table_rows: int
    #: where the model ran: "warehouse" (Snowflake, ModelVersion.run) or "client" (chunks)
    where: str = "client"
    #: why the client path was used on Snowflake ("" when it was not a fallback)
    fallback: str = ""
    #: with no customers: what the other scoring sets would hold
    alternatives: dict[str, Any] | None = None


def stage_batch(session: Session, params: Params, features: list[str], chunk_rows: int) -> int:
    """Materialise the scored batch as :data:`BATCH` with a ``CHUNK_NO`` per ``chunk_rows``
    customers; return its rows."""
    rank = F.row_number().over(Window.order_by(F.col(KEY)))
    batch = scoring_features(session, params, features).with_column(
        "CHUNK_NO", F.floor((rank - F.lit(1)) / F.lit(chunk_rows)).cast("int")
    )
    wh.replace_table(batch, BATCH)
    return wh.row_count(session, BATCH)


def warehouse_registry(session: Session, reg: ModelRegistry | None) -> WarehouseRegistry | None:
    """``reg`` if the model runs in the warehouse: on Snowflake, with a registry that can run it
    there."""
    if reg is not None and not wh.is_local(session) and isinstance(reg, WarehouseRegistry):
        return reg
    return None


def in_warehouse(session: Session, reg: ModelRegistry | None) -> bool:
    """Whether the model runs in the warehouse (see :func:`warehouse_registry`)."""
    return warehouse_registry(session, reg) is not None


def model_for_scoring(
    reg: ModelRegistry, session: Session, name: str
) -> tuple[Any | None, ModelVersion]:
    """Model ``name``'s default version, with its Python model when this client scores (``None``
    when the warehouse does: snowflake-ml lets only the owner role load a model here)."""
    if in_warehouse(session, reg):
        return None, reg.get(name)
    return reg.load(name)


def score_in_warehouse(
    session: Session, reg: WarehouseRegistry, mv: ModelVersion, params: Params
) -> ScoringRun:
    """Score the scoring set in the warehouse (``ModelVersion.run`` on a Snowpark DataFrame) and
    publish.

    The batch is staged as :data:`BATCH`; the registry's warehouse function writes the predictions
    into a staging table by one ``CREATE TABLE … AS SELECT``, then :func:`publish` as for the client
    path.
    """
    n = stage_batch(session, params, mv.meta["features"], CHUNK_ROWS)
    stage = wh.check_identifier(f"{TABLE}__RUN_{params.run_date:%Y%m%d}")
    if n:
        batch = session.table(BATCH)
        sources = [c for c in OUTLOOK.values() if c in batch.columns]
        out, _ = reg.run_in_warehouse(batch, mv.name, mv.version, keep=(KEY, *sources))
        preds = out.select(
            F.col(KEY),
            F.lit(params.run_date).alias("RUN_DATE"),
            F.lit(mv.name).alias("MODEL_NAME"),
            F.lit(mv.version).alias("MODEL_VERSION"),
            *[
                F.greatest(F.col(t), F.lit(0.0)).alias(prediction_column(t))
                for t in mv.meta["targets"]
            ],
            *outlook_columns(out, params),
        )
        wh.replace_table(preds.sort(KEY), stage)
    alternatives = None
    if not n:  # an empty block: PREDICTIONS exists, and the report says what would score someone
        empty_block(session, mv, stage)
        alternatives = scoring_alternatives(session, params, mv.meta["features"])
    log.info("scored %d customers in the warehouse with %s %s", n, mv.name, mv.version)
    total = publish(session, stage, params)
    session.sql(f"DROP TABLE IF EXISTS {stage}").collect()
    return ScoringRun(
        customers=n,
        chunks=0,
        largest_chunk=0,
        table_rows=total,
        where="warehouse",
        alternatives=alternatives,
    )


def score_in_chunks(
    session: Session,
    model: Any,
    mv: ModelVersion,
    params: Params,
    chunk_rows: int | None = None,
    reg: ModelRegistry | None = None,
) -> ScoringRun:
    """Score the scoring set and publish this run date's rows of PREDICTIONS.

    On Snowflake, with ``reg`` given, the model runs in the warehouse (:func:`score_in_warehouse`);
    otherwise, or when that fails, this client scores chunk by chunk.

    Args:
        model: the version's Python model (``None``: loaded from ``reg`` when the client scores).
        chunk_rows: customers per chunk pulled to the client (default :data:`CHUNK_ROWS`).
        reg: the registry holding ``mv`` (for scoring in the warehouse).
    """
    chunk_rows = int(chunk_rows or CHUNK_ROWS)
    if chunk_rows < 1:
        raise PredictError(f"chunk_rows must be a positive whole number, got {chunk_rows}.")
    fallback = ""
    if (runner := warehouse_registry(session, reg)) is not None:
        try:
            return score_in_warehouse(session, runner, mv, params)
        except Exception as e:  # noqa: BLE001 - the client path below is the fallback, and says why
            fallback = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
            log.warning(
                "scoring in the warehouse failed (%s); scoring on this client in chunks instead",
                fallback,
            )
    elif not wh.is_local(session):
        fallback = "no registry given that can run the model in the warehouse"
        log.warning("scoring on this client in chunks: %s", fallback)
    if model is None:
        if reg is None:
            raise PredictError("score_in_chunks needs the model or the registry that holds it.")
        model, _ = reg.load(mv.name, mv.version)
    n = stage_batch(session, params, mv.meta["features"], chunk_rows)
    n_chunks = math.ceil(n / chunk_rows)
    stage = wh.check_identifier(f"{TABLE}__RUN_{params.run_date:%Y%m%d}")
    staging_dir = params.warehouse_dir / "staging"
    largest = 0
    for k in range(n_chunks):
        frame = wh.to_pandas(
            session.table(BATCH).filter(F.col("CHUNK_NO") == k).sort(KEY), "predict:chunk"
        )
        largest = max(largest, len(frame))
        preds = score(model, frame, mv, params)
        if k == 0:
            wh.write_pandas(session, preds, stage, staging_dir)
        else:
            part = wh.write_pandas(session, preds, f"{stage}_PART", staging_dir)
            cols = ", ".join(preds.columns)
            session.sql(f"INSERT INTO {stage} ({cols}) SELECT {cols} FROM {part}").collect()
        log.info("scored chunk %d/%d (%d customers)", k + 1, n_chunks, len(frame))
    alternatives = None
    if not n:  # an empty block: PREDICTIONS exists, and the report says what would score someone
        empty_block(session, mv, stage)
        alternatives = scoring_alternatives(session, params, mv.meta["features"])
    total = publish(session, stage, params)
    for t in (stage, f"{stage}_PART"):
        session.sql(f"DROP TABLE IF EXISTS {t}").collect()
    return ScoringRun(
        customers=n,
        chunks=n_chunks,
        largest_chunk=largest,
        table_rows=total,
        fallback=fallback,
        alternatives=alternatives,
    )


def publish(session: Session, staged: str | None, params: Params, table: str = TABLE) -> int:
    """Replace this run date's rows of ``table`` (PREDICTIONS) with table ``staged`` (``None``: no
    rows); return the row count.

    Earlier run dates are kept; if the columns changed (new product types), the union is by name
    and missing columns are null, so no history is lost. TARGETS and FORECASTS
    (:mod:`customer_analytics.forecast`) keep their history the same way.
    """
    table = wh.check_identifier(table)
    exists = wh.table_exists(session, table)
    if staged is None and not exists:
        return 0
    old = (
        session.table(table).filter(F.col("RUN_DATE") != F.lit(params.run_date)) if exists else None
    )
    if staged is None:
        merged = old
    elif old is None:
        merged = session.table(staged)
    else:
        new = session.table(staged)
        same = set(old.columns) == set(new.columns)
        merged = old.union_all_by_name(new, allow_missing_columns=not same)
    assert merged is not None  # staged or an existing table: returned above otherwise
    wh.replace_table(merged, f"{table}__MERGED")
    wh.replace_table(session.table(f"{table}__MERGED"), table)  # the one atomic swap
    session.sql(f"DROP TABLE IF EXISTS {table}__MERGED").collect()
    return wh.row_count(session, table)


def _run_rows(session: Session, run_date: dt.date) -> DataFrame:
    return session.table(TABLE).filter(F.col("RUN_DATE") == F.lit(run_date))


def overview(session: Session, params: Params) -> pd.DataFrame:
    """Customers scored and the distribution of predicted spend for this run date (warehouse
    aggregates)."""
    s = F.col(PRED_SPEND)
    row = (
        _run_rows(session, params.run_date)
        .agg(
            F.count(F.lit(1)).alias("N"),
            F.sum(s).alias("TOTAL"),
            pt.mean(s).alias("MEAN"),
            F.percentile_cont(0.5).within_group(s).alias("MEDIAN"),
            F.percentile_cont(0.9).within_group(s).alias("P90"),
        )
        .collect()[0]
    )
    values: dict[str, float | None] = {"customers scored": int(row["N"])}
    values |= {
        k: None if v is None else round(float(v), 2)
        for k, v in (
            ("total predicted spend", row["TOTAL"]),
            ("mean", row["MEAN"]),
            ("median", row["MEDIAN"]),
            ("90th percentile", row["P90"]),
        )
    }
    return pd.Series(values, name="predicted spend", dtype=object).to_frame()


def outlook_summary(session: Session, params: Params) -> pd.DataFrame:
    """The scored customers' outlook for this run date (warehouse aggregates of :data:`OUTLOOK`)."""
    rows = _run_rows(session, params.run_date)
    if "P_ALIVE" not in rows.columns:
        return pd.DataFrame()
    end = params.run_date + dt.timedelta(days=params.horizon_days)
    one = F.lit(1)
    row = rows.agg(
        F.count(F.col("P_ALIVE")).alias("N_KNOWN"),  # WITH is reserved
        pt.mean(F.col("P_ALIVE")).alias("MEAN_ALIVE"),
        F.sum(F.iff(F.col("P_ALIVE") >= F.lit(0.5), one, F.lit(0))).alias("LIKELY"),
        F.sum(F.col("EXP_ORDERS")).alias("ORDERS"),
        F.sum(F.iff(F.col("NEXT_ORDER_DATE") < F.lit(end), one, F.lit(0))).alias("SOON"),
    ).collect()[0]
    values = {
        "customers with a purchase history (outlook known)": int(row["N_KNOWN"] or 0),
        "mean probability still active": None
        if row["MEAN_ALIVE"] is None
        else round(float(row["MEAN_ALIVE"]), 3),
        "likely still active (probability ≥ 0.5)": int(row["LIKELY"] or 0),
        f"expected orders in the next {params.horizon_days} days": round(
            float(row["ORDERS"] or 0), 1
        ),
        f"next order expected before {end}": int(row["SOON"] or 0),
    }
    return pd.Series(values, name="outlook", dtype=object).to_frame()


def spend_distribution(session: Session, params: Params, bins: int = 20) -> pd.Series:
    """Customers per band of predicted spend (equal bands up to the 99th percentile, the rest in the
    last)."""
    rows = _run_rows(session, params.run_date)
    top = rows.agg(F.percentile_cont(0.99).within_group(F.col(PRED_SPEND)).alias("P99")).collect()[
        0
    ]["P99"]
    width = _nice_width(float(top or 0) / bins)
    band = (
        F.least(F.floor(F.col(PRED_SPEND) / F.lit(width)), F.lit(bins - 1))
        .cast("int")
        .alias("BAND")
    )
    counts = {
        r["BAND"]: r["N"] for r in rows.group_by(band).agg(F.count(F.lit(1)).alias("N")).collect()
    }
    d = 0 if float(width).is_integer() else 1
    labels = [f"{i * width:,.{d}f}–{(i + 1) * width:,.{d}f}" for i in range(bins - 1)] + [
        f"≥ {(bins - 1) * width:,.{d}f}"
    ]
    return pd.Series([counts.get(i, 0) for i in range(bins)], index=labels, name="customers")


def _nice_width(raw: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is at least ``raw`` (readable band labels)."""
    if raw <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def product_totals(session: Session, params: Params) -> pd.Series:
    """Predicted total quantity per product type for this run date, largest first."""
    rows = _run_rows(session, params.run_date)
    cols = [c for c in rows.columns if c.startswith("PRED_QTY_")]
    if not cols:
        return pd.Series(dtype=float, name="predicted quantity")
    row = rows.agg(*[F.sum(F.col(c)).alias(c) for c in cols]).collect()[0].as_dict()
    out = pd.Series(
        {c.removeprefix("PRED_QTY_").lower(): float(v or 0) for c, v in row.items()},
        name="predicted quantity",
    )
    return out.sort_values(ascending=False)


def previous_run_date(session: Session, params: Params) -> dt.date | None:
    """The latest run date in PREDICTIONS before this one, if any."""
    if not wh.table_exists(session, TABLE):
        return None
    return (
        session.table(TABLE)
        .filter(F.col("RUN_DATE") < F.lit(params.run_date))
        .agg(F.max("RUN_DATE").alias("D"))
        .collect()[0]["D"]
    )


def prediction_shift(session: Session, params: Params) -> pd.DataFrame:
    """PSI of predicted spend between the previous run date and this one (empty when there is no
    earlier run)."""
    prev = previous_run_date(session, params)
    if prev is None:
        return pd.DataFrame()
    before = _run_rows(session, prev).select(PRED_SPEND)
    now = _run_rows(session, params.run_date).select(PRED_SPEND)
    out = (
        drift.feature_psi(before, now, [PRED_SPEND])
        .round(3)
        .rename(index={PRED_SPEND: "predicted spend"})
    )
    out = out.rename(
        columns={
            "reference mean": "previous mean",
            "current mean": "this run's mean",
            "reference rows": "previous rows",
            "current rows": "this run's rows",
        }
    )
    out.insert(0, "previous run", prev.isoformat())
    return out


def feature_drift(session: Session, params: Params, features: list[str]) -> pd.DataFrame | None:
    """PSI of each model feature: this run's scored batch against the training rows of the same
    scoring set."""
    reference = reference_features(session, params, features)
    if reference is None:
        return None
    return drift.feature_psi(reference, session.table(BATCH).select(*features), features).round(3)


def headline(
    run: ScoringRun,
    mv: ModelVersion,
    params: Params,
    features: pd.DataFrame | None,
    predictions: pd.DataFrame | None,
    overview_table: pd.DataFrame,
) -> headlines.Scoring:
    """Headline figures of this run (for the summary and the run index): aggregates only."""
    found = drift.findings(features, predictions)
    o = overview_table["predicted spend"]
    metrics = mv.meta.get("metrics", {})
    error = metrics.get(params.primary_metric)
    return headlines.Scoring(
        customers_scored=run.customers,
        chunks=run.chunks,
        scoring_set=params.scoring_set,
        predicted_spend=float(o["total predicted spend"]) if run.customers else 0.0,
        mean_predicted_spend=float(o["mean"]) if run.customers else None,
        model_name=mv.name,
        model_version=mv.version,
        candidate=str(
            (mv.meta.get("params") or {}).get("candidate") or mv.meta.get("estimator") or ""
        ),
        metric=params.primary_metric,
        error=float(error) if isinstance(error, int | float) else None,
        horizon_days=params.horizon_days,
        table_rows=run.table_rows,
        scored_in=run.where,
        scoring_note=run.fallback,
        drift=found.record(),
        drift_assessed=found.assessed,
        alternatives=run.alternatives,
        currency=params.currency,
    )


def drift_figure(table: pd.DataFrame):
    """The PSI bar chart of :func:`feature_drift`'s table, with this module's drift thresholds."""
    from customer_analytics import plots

    return plots.psi(table, moderate=drift.MODERATE, large=drift.LARGE, min_rows=drift.MIN_ROWS)
