"""Batch prediction: score the customers of interest with the registered default model.

PREDICTIONS keeps history: one block of rows per ``RUN_DATE``; re-running a date replaces that
date's rows only (one ``CREATE OR REPLACE … AS SELECT`` statement, so a failure leaves the
previous table intact).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import snowflake.snowpark.functions as F
from snowflake.snowpark import DataFrame, Session

from customer_analytics import features as ft
from customer_analytics import warehouse as wh
from customer_analytics.config import Params
from customer_analytics.registry import ModelVersion

log = logging.getLogger(__name__)

TABLE = "PREDICTIONS"


def scoring_population(session: Session, params: Params) -> DataFrame:
    """FEATURES rows as of ``run_date`` for the configured scoring set.

    ``new``: signed up within ``new_customer_days`` (trial customers); ``active``: ordered within
    ``horizon_days``; ``all``: everyone signed up before ``run_date``.
    """
    df = session.table("FEATURES").filter(F.col("ROLE") == "score")
    if params.scoring_set == "new":
        df = df.filter(F.col("TENURE_DAYS") <= params.new_customer_days)
    elif params.scoring_set == "active":
        df = df.filter((F.col("HAS_ORDERED") == 1) & (F.col("RECENCY_DAYS") <= params.horizon_days))
    return df


def score(model, frame: pd.DataFrame, mv: ModelVersion, params: Params) -> pd.DataFrame:
    """Predictions for ``frame`` (FEATURES rows): one row per customer, keyed by ``CUSTOMER_ID``."""
    targets = mv.meta["targets"]
    pred = np.clip(model.predict(frame[mv.meta["features"]]), 0, None)
    out = pd.DataFrame({
        "CUSTOMER_ID": frame["CUSTOMER_ID"].to_numpy(),
        "RUN_DATE": params.run_date,
        "MODEL_NAME": mv.name,
        "MODEL_VERSION": mv.version,
    })
    for i, t in enumerate(targets):
        out["PRED_" + t.replace("_NEXT", "")] = pred[:, i]
    return out


def write(session: Session, preds: pd.DataFrame, params: Params) -> int:
    """Replace this run date's rows of PREDICTIONS with ``preds``; return the table's row count."""
    staged = wh.write_pandas(session, preds, f"{TABLE}__NEW", params.warehouse_dir / "staging")
    new = session.table(staged)
    if wh.table_exists(session, TABLE):
        old = session.table(TABLE).filter(F.col("RUN_DATE") != F.lit(params.run_date))
        if set(old.columns) == set(new.columns):
            new = old.union_all_by_name(new)
        else:
            log.warning("PREDICTIONS columns changed (new product types?); earlier run dates are dropped")
    wh.replace_table(new, f"{TABLE}__MERGED")
    wh.replace_table(session.table(f"{TABLE}__MERGED"), TABLE)
    for t in (staged, f"{TABLE}__MERGED"):
        session.sql(f"DROP TABLE IF EXISTS {t}").collect()
    return wh.row_count(session, TABLE)


def product_summary(preds: pd.DataFrame) -> pd.DataFrame:
    """Predicted total quantity per product type (aggregate, for the report)."""
    qty = [c for c in preds.columns if c.startswith("PRED_QTY_")]
    return (preds[qty].sum().rename(lambda c: c.removeprefix("PRED_QTY_").lower())
            .sort_values(ascending=False).to_frame("predicted quantity"))


def label_columns_for(products: list[str]) -> list[str]:
    """Prediction column names for ``products`` (spend first)."""
    return ["PRED_" + t.replace("_NEXT", "") for t in ft.label_columns(products)]


def summary(preds: pd.DataFrame, params: Params, total_rows: int) -> str:
    """Markdown sentence describing this scoring run (aggregates only)."""
    who = {"new": f"customers who signed up in the {params.new_customer_days} days before {params.run_date}",
           "active": f"customers who ordered in the {params.horizon_days} days before {params.run_date}",
           "all": f"all customers signed up before {params.run_date}"}[params.scoring_set]
    if preds.empty:
        return f"No customers to score ({who})."
    return (f"Scored **{len(preds):,}** {who} with model **{preds['MODEL_NAME'].iloc[0]} "
            f"{preds['MODEL_VERSION'].iloc[0]}**. Predicted spend over the next {params.horizon_days} days: "
            f"**{preds['PRED_SPEND'].sum():,.0f}** in total, {preds['PRED_SPEND'].mean():,.2f} per customer on "
            f"average. PREDICTIONS now holds {total_rows:,} rows across run dates.")


def overview(preds: pd.DataFrame) -> pd.DataFrame:
    """Customers scored and the distribution of predicted spend (aggregates only)."""
    spend = preds["PRED_SPEND"]
    return pd.Series({"customers scored": len(preds), "total predicted spend": spend.sum(),
                      "mean": spend.mean(), "median": spend.median(), "90th percentile": spend.quantile(0.9)},
                     name="predicted spend").round(2).to_frame()
