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
* **PREDICTIONS keeps history**: one block of rows per ``RUN_DATE``, each row with the model
  name and version. Publishing replaces this date's rows only, in one ``CREATE OR REPLACE``
  statement at the end: a failure at any point leaves the previous table intact.

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
from customer_analytics import warehouse as wh
from customer_analytics.config import Params
from customer_analytics.registry import ModelVersion

log = logging.getLogger(__name__)

TABLE = "PREDICTIONS"
BATCH = "SCORING_BATCH"
KEY = ft.KEY
CHUNK_ROWS = 50_000
PRED_SPEND = "PRED_SPEND"
META_COLUMNS = [KEY, "RUN_DATE", "MODEL_NAME", "MODEL_VERSION"]


class PredictError(RuntimeError):
    """Scoring cannot run as asked; the message says why and what to do."""


def check_model(mv: ModelVersion, params: Params) -> None:
    """Refuse to score with a model that does not predict what this run asks for.

    A registered version records its horizon, targets, product types, features and the version of
    the feature definitions (see :func:`customer_analytics.registry.register`).

    Raises:
        PredictError: another horizon or other feature definitions; the message names both values and the fix.
    """
    p = mv.meta.get("params", {})
    horizon = p.get("horizon_days")
    if horizon != params.horizon_days:
        raise PredictError(
            f"Model {mv.name} {mv.version} predicts spend over {horizon} days, but this run asks for "
            f"{params.horizon_days} days (horizon_days). Fix: train a {params.horizon_days}-day model first "
            f"(run 04_model_comparison with horizon_days={params.horizon_days} in this namespace), or score with "
            f"horizon_days={horizon}.")
    definitions = p.get("definitions_version")
    if definitions != ft.DEFINITIONS_VERSION:
        raise PredictError(
            f"Model {mv.name} {mv.version} was trained on feature definitions version {definitions}, but the "
            f"features are now computed with version {ft.DEFINITIONS_VERSION}. Fix: retrain (run the pipeline, "
            "or 03_features and 04_model_comparison) before scoring.")


def prediction_column(target: str) -> str:
    """``SPEND_NEXT`` -> ``PRED_SPEND``, ``QTY_NEXT_<P>`` -> ``PRED_QTY_<P>``."""
    return "PRED_" + target.replace("_NEXT", "")


def in_scoring_set(df: DataFrame, params: Params) -> DataFrame:
    """Rows of a FEATURES-shaped frame that belong to the configured scoring set."""
    if params.scoring_set == "new":
        return df.filter(F.col("TENURE_DAYS") <= params.new_customer_days)
    if params.scoring_set == "active":
        return df.filter((F.col("HAS_ORDERED") == 1) & (F.col("RECENCY_DAYS") <= params.horizon_days))
    return df


def _score_block_date(session: Session) -> dt.date | None:
    if not wh.table_exists(session, "FEATURES"):
        return None
    return session.table("FEATURES").filter(F.col("ROLE") == "score").agg(F.max("CUTOFF").alias("D")).collect()[0]["D"]


def scoring_features(session: Session, params: Params, features: list[str]) -> DataFrame:
    """Features as of ``run_date`` of the customers to score: ``CUSTOMER_ID`` + ``features``.

    Raises:
        PredictError: the model needs a column the data cannot provide, or nothing was ingested.
    """
    if _score_block_date(session) == params.run_date:
        base = session.table("FEATURES").filter(F.col("ROLE") == "score")
    else:
        if not wh.table_exists(session, "CLEAN_ORDER_LINES"):
            raise PredictError("No clean data in the warehouse: run 01_ingest (or the whole pipeline) first.")
        log.info("FEATURES has no score rows for %s: computing features as of that date", params.run_date)
        products = [p for p in ft.product_types(session) if ft.product_column("QTY", p) in features]
        sentiment = any(c in ft.SENTIMENT for c in features)  # scores of every text are in TEXT_SENTIMENT
        n_topics = sum(c.startswith(ft.tp.SHARE_PREFIX) for c in features)  # issue 20
        base = ft.features_at(session, params.run_date, params.horizon_days, products,
                              sentiment=sentiment, topics=n_topics)
    missing = [c for c in features if c not in base.columns]
    if missing:
        raise PredictError(f"The model needs feature columns {missing} that the data as of {params.run_date} "
                           "does not have (new or retired product types?): retrain with the full pipeline.")
    return in_scoring_set(base, params).select(KEY, *features)


def reference_features(session: Session, params: Params, features: list[str]) -> DataFrame | None:
    """Training rows of FEATURES in the same scoring set (the drift reference), or ``None``."""
    if not wh.table_exists(session, "FEATURES"):
        return None
    return in_scoring_set(session.table("FEATURES").filter(F.col("ROLE") == "train"), params).select(*features)


def score(model: Any, frame: pd.DataFrame, mv: ModelVersion, params: Params) -> pd.DataFrame:
    """Predictions for ``frame`` (feature rows): one row per customer, keyed by ``CUSTOMER_ID``."""
    pred = np.clip(model.predict(frame[mv.meta["features"]]), 0, None)
    pred = pred.reshape(len(frame), -1)
    out = pd.DataFrame({KEY: frame[KEY].to_numpy(), "RUN_DATE": params.run_date,
                        "MODEL_NAME": mv.name, "MODEL_VERSION": mv.version})
    for i, t in enumerate(mv.meta["targets"]):
        out[prediction_column(t)] = pred[:, i].astype(float)
    return out


@dataclass(frozen=True)
class ScoringRun:
    """What one scoring run did."""

    customers: int
    chunks: int
    largest_chunk: int
    table_rows: int


def stage_batch(session: Session, params: Params, features: list[str], chunk_rows: int) -> int:
    """Materialise the scored batch as :data:`BATCH` with a ``CHUNK_NO`` per ``chunk_rows`` customers; return its rows."""
    rank = F.row_number().over(Window.order_by(F.col(KEY)))
    batch = scoring_features(session, params, features).with_column(
        "CHUNK_NO", F.floor((rank - F.lit(1)) / F.lit(chunk_rows)).cast("int"))
    wh.replace_table(batch, BATCH)
    return wh.row_count(session, BATCH)


def score_in_chunks(session: Session, model: Any, mv: ModelVersion, params: Params,
                    chunk_rows: int | None = None) -> ScoringRun:
    """Score the scoring set chunk by chunk and publish this run date's rows of PREDICTIONS.

    Args:
        chunk_rows: customers per chunk pulled to the client (default :data:`CHUNK_ROWS`).
    """
    chunk_rows = int(chunk_rows or CHUNK_ROWS)
    if chunk_rows < 1:
        raise PredictError(f"chunk_rows must be a positive whole number, got {chunk_rows}.")
    n = stage_batch(session, params, mv.meta["features"], chunk_rows)
    n_chunks = math.ceil(n / chunk_rows)
    stage = wh.check_identifier(f"{TABLE}__RUN_{params.run_date:%Y%m%d}")
    staging_dir = params.warehouse_dir / "staging"
    largest = 0
    for k in range(n_chunks):
        frame = wh.to_pandas(session.table(BATCH).filter(F.col("CHUNK_NO") == k).sort(KEY), "predict:chunk")
        largest = max(largest, len(frame))
        preds = score(model, frame, mv, params)
        if k == 0:
            wh.write_pandas(session, preds, stage, staging_dir)
        else:
            part = wh.write_pandas(session, preds, f"{stage}_PART", staging_dir)
            cols = ", ".join(preds.columns)
            session.sql(f"INSERT INTO {stage} ({cols}) SELECT {cols} FROM {part}").collect()
        log.info("scored chunk %d/%d (%d customers)", k + 1, n_chunks, len(frame))
    total = publish(session, stage if n else None, params)
    for t in (stage, f"{stage}_PART"):
        session.sql(f"DROP TABLE IF EXISTS {t}").collect()
    return ScoringRun(customers=n, chunks=n_chunks, largest_chunk=largest, table_rows=total)


def publish(session: Session, staged: str | None, params: Params) -> int:
    """Replace this run date's rows of PREDICTIONS with table ``staged`` (``None``: no rows); return the row count.

    Earlier run dates are kept; if the prediction columns changed (new product types), the
    union is by name and missing columns are null, so no history is lost.
    """
    exists = wh.table_exists(session, TABLE)
    if staged is None and not exists:
        return 0
    old = session.table(TABLE).filter(F.col("RUN_DATE") != F.lit(params.run_date)) if exists else None
    if staged is None:
        merged = old
    elif old is None:
        merged = session.table(staged)
    else:
        new = session.table(staged)
        same = set(old.columns) == set(new.columns)
        merged = old.union_all_by_name(new, allow_missing_columns=not same)
    wh.replace_table(merged, f"{TABLE}__MERGED")
    wh.replace_table(session.table(f"{TABLE}__MERGED"), TABLE)  # the one atomic swap
    session.sql(f"DROP TABLE IF EXISTS {TABLE}__MERGED").collect()
    return wh.row_count(session, TABLE)


def _run_rows(session: Session, run_date: dt.date) -> DataFrame:
    return session.table(TABLE).filter(F.col("RUN_DATE") == F.lit(run_date))


def overview(session: Session, params: Params) -> pd.DataFrame:
    """Customers scored and the distribution of predicted spend for this run date (warehouse aggregates)."""
    s = F.col(PRED_SPEND)
    row = _run_rows(session, params.run_date).agg(
        F.count(F.lit(1)).alias("N"), F.sum(s).alias("TOTAL"), F.avg(s).alias("MEAN"),
        F.percentile_cont(0.5).within_group(s).alias("MEDIAN"), F.percentile_cont(0.9).within_group(s).alias("P90"),
    ).collect()[0]
    values = {"customers scored": int(row["N"])}
    values |= {k: None if v is None else round(float(v), 2) for k, v in
               (("total predicted spend", row["TOTAL"]), ("mean", row["MEAN"]), ("median", row["MEDIAN"]),
                ("90th percentile", row["P90"]))}
    return pd.Series(values, name="predicted spend", dtype=object).to_frame()


def spend_distribution(session: Session, params: Params, bins: int = 20) -> pd.Series:
    """Customers per band of predicted spend (equal bands up to the 99th percentile, the rest in the last)."""
    rows = _run_rows(session, params.run_date)
    top = rows.agg(F.percentile_cont(0.99).within_group(F.col(PRED_SPEND)).alias("P99")).collect()[0]["P99"]
    width = _nice_width(float(top or 0) / bins)
    band = F.least(F.floor(F.col(PRED_SPEND) / F.lit(width)), F.lit(bins - 1)).cast("int").alias("BAND")
    counts = {r["BAND"]: r["N"] for r in rows.group_by(band).agg(F.count(F.lit(1)).alias("N")).collect()}
    d = 0 if float(width).is_integer() else 1
    labels = [f"{i * width:,.{d}f}–{(i + 1) * width:,.{d}f}" for i in range(bins - 1)] + [f"≥ {(bins - 1) * width:,.{d}f}"]
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
    out = pd.Series({c.removeprefix("PRED_QTY_").lower(): float(v or 0) for c, v in row.items()}, name="predicted quantity")
    return out.sort_values(ascending=False)


def previous_run_date(session: Session, params: Params) -> dt.date | None:
    """The latest run date in PREDICTIONS before this one, if any."""
    if not wh.table_exists(session, TABLE):
        return None
    return (session.table(TABLE).filter(F.col("RUN_DATE") < F.lit(params.run_date))
            .agg(F.max("RUN_DATE").alias("D")).collect()[0]["D"])


def prediction_shift(session: Session, params: Params) -> pd.DataFrame:
    """PSI of predicted spend between the previous run date and this one (empty when there is no earlier run)."""
    prev = previous_run_date(session, params)
    if prev is None:
        return pd.DataFrame()
    before = _run_rows(session, prev).select(PRED_SPEND)
    now = _run_rows(session, params.run_date).select(PRED_SPEND)
    out = drift.feature_psi(before, now, [PRED_SPEND]).round(3).rename(index={PRED_SPEND: "predicted spend"})
    out = out.rename(columns={"reference mean": "previous mean", "current mean": "this run's mean",
                              "reference rows": "previous rows", "current rows": "this run's rows"})
    out.insert(0, "previous run", prev.isoformat())
    return out


def feature_drift(session: Session, params: Params, features: list[str]) -> pd.DataFrame | None:
    """PSI of each model feature: this run's scored batch against the training rows of the same scoring set."""
    reference = reference_features(session, params, features)
    if reference is None:
        return None
    return drift.feature_psi(reference, session.table(BATCH).select(*features), features).round(3)


def headline(run: ScoringRun, mv: ModelVersion, params: Params, features: pd.DataFrame | None,
             predictions: pd.DataFrame | None, overview_table: pd.DataFrame) -> headlines.Scoring:
    """Headline figures of this run (for the summary and the run index): aggregates only."""
    found = drift.findings(features, predictions)
    o = overview_table["predicted spend"]
    metrics = mv.meta.get("metrics", {})
    error = metrics.get(params.primary_metric)
    return headlines.Scoring(
        customers_scored=run.customers, chunks=run.chunks, scoring_set=params.scoring_set,
        predicted_spend=float(o["total predicted spend"]) if run.customers else 0.0,
        mean_predicted_spend=float(o["mean"]) if run.customers else None,
        model_name=mv.name, model_version=mv.version,
        candidate=str((mv.meta.get("params") or {}).get("candidate") or mv.meta.get("estimator") or ""),
        metric=params.primary_metric, error=float(error) if isinstance(error, int | float) else None,
        horizon_days=params.horizon_days, table_rows=run.table_rows, drift_flags=list(found.flags),
        drift_note=found.note, drift_assessed=found.assessed)


def summary(head: headlines.Scoring, params: Params) -> str:
    """Markdown summary of this scoring run, drift warnings first (aggregates only)."""
    who = {"new": f"customers who signed up in the {params.new_customer_days} days before {params.run_date}",
           "active": f"customers who ordered in the {params.horizon_days} days before {params.run_date}",
           "all": f"all customers signed up before {params.run_date}"}[params.scoring_set]
    flags = head.drift_flags
    alert = (f"**⚠ Drift: {len(flags)} large shift{'s' if len(flags) > 1 else ''}** — " + "; ".join(flags)
             + ". See the drift sections before acting on these predictions.\n\n") if flags else ""
    if not head.customers_scored:
        return f"{alert}No customers to score ({who}). PREDICTIONS holds {head.table_rows:,} rows across run dates."
    err = f", held-out {head.metric.upper()} {head.error:,.2f}" if head.error is not None else ""
    return (f"{alert}Scored **{head.customers_scored:,}** {who} with model **{head.model_name} "
            f"{head.model_version}** ({head.candidate}{err}). Predicted spend over the next "
            f"{params.horizon_days} days: **{head.predicted_spend:,.0f}** in total, "
            f"{head.mean_predicted_spend or 0:,.2f} per customer on average. PREDICTIONS now holds "
            f"{head.table_rows:,} rows across run dates.\n\nDrift: {head.drift_note}.")


def drift_figure(table: pd.DataFrame):
    """The PSI bar chart of :func:`feature_drift`'s table, with this module's drift thresholds."""
    from customer_analytics import plots

    return plots.psi(table, moderate=drift.MODERATE, large=drift.LARGE, min_rows=drift.MIN_ROWS)
