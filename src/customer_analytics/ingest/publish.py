"""Build the CLEAN_*, REJECTED_*, INGEST_LOG and INGEST_REASONS tables as ``*__NEW`` and put them in place.

Everything is written under a ``__NEW`` name first; :func:`publish` then replaces the published
tables together (:func:`warehouse.publish`), so any failure before it leaves every previous
table as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import snowflake.snowpark.functions as F
from snowflake.snowpark import DataFrame, Session
from snowflake.snowpark.window import Window

from customer_analytics import contract
from customer_analytics import warehouse as wh
from customer_analytics.ingest.common import (
    CLEAN_COLUMNS,
    CLEAN_TYPES,
    NEW,
    RAW,
    RAW_COLUMNS,
    REJECT_COLUMNS,
    STAGE,
    SourceCounts,
    SourcePlan,
)
from customer_analytics.ingest.stage import in_sample

#: Every table a run publishes, in the order they are put in place.
PUBLISHED = [
    *RAW.values(),
    "CLEAN_CUSTOMERS",
    "CLEAN_ORDER_LINES",
    "CLEAN_ORDERS",
    "CLEAN_REVIEWS",
    "REJECTED_CUSTOMERS",
    "REJECTED_ORDER_LINES",
    "REJECTED_REVIEWS",
    "INGEST_LOG",
    "INGEST_REASONS",
]
LOG_COLUMNS = [
    "SOURCE",
    "FILE_NAME",
    "STATUS",
    "UNIT",
    "RECORDS",
    "ROWS_READ",
    "ACCEPTED",
    "REJECTED",
    "SAMPLED_OUT",
    "DERIVED",
    "FILE_BYTES",
    "FILE_SHA256",
]
REASON_COLUMNS = ["SOURCE", "FIELD", "REASON", "ROWS", "EXAMPLE_LINES"]


def staged_names() -> list[str]:
    """Every working table of a run (dropped before and after it)."""
    names = [f"{s}{x}" for s in STAGE.values() for x in ("", "_F", "_C")]
    return names + [t + NEW for t in PUBLISHED]


def drop(session: Session, names: list[str]) -> None:
    """Drop these tables where they exist."""
    for n in names:
        session.sql(f"DROP TABLE IF EXISTS {n}").collect()


def empty(session: Session, table: str, columns: list[str], types: dict[str, str]) -> None:
    """Create ``table`` with these columns (VARCHAR unless ``types`` says otherwise) and no row."""
    cols = ", ".join(f"{c} {types.get(c, 'VARCHAR')}" for c in columns)
    session.sql(f"CREATE OR REPLACE TABLE {table} ({cols})").collect()


def _accepted(session: Session, stage: str, fraction: float) -> DataFrame:
    return session.table(stage).filter(
        F.col("REASON").is_null() & in_sample(F.col("CUSTOMER_ID"), fraction)
    )


def _rejected(session: Session, stage: str) -> DataFrame:
    t = session.table(stage)
    item = F.col("ITEM_NO") if "ITEM_NO" in t.columns else F.lit(None).cast("int")
    return t.filter(F.col("REASON").is_not_null()).select(
        "SOURCE_FILE", "LINE_NO", item.alias("ITEM_NO"), "FIELD", "REASON", "VALUE", "RECORD"
    )


def _union(parts: list[DataFrame]) -> DataFrame:
    out = parts[0]
    for p in parts[1:]:
        out = out.union_all(p)
    return out


def _derived_customers(session: Session, plans: dict[str, SourcePlan]) -> DataFrame:
    """One customer per customer_id of the accepted order lines (sign-up = first order)."""
    first = (
        session.table("CLEAN_ORDER_LINES" + NEW)
        .group_by("CUSTOMER_ID")
        .agg(F.min("TS").alias("FIRST_TS"))
    )
    return first.select(
        "CUSTOMER_ID",
        F.to_date(F.col("FIRST_TS")).alias("SIGNUP_DATE"),
        F.lit(contract.UNKNOWN).alias("COUNTRY"),
        F.lit(contract.UNKNOWN).alias("CHANNEL"),
        F.lit(None).cast("int").alias("BIRTH_YEAR"),
        F.lit(None).cast("int").alias("LINE_NO"),
        F.lit(plans["orders"].name).alias("SOURCE_FILE"),
    ).sort("CUSTOMER_ID")


def _orders(session: Session) -> DataFrame:
    """CLEAN_ORDERS: one row per order, from the accepted order lines."""
    return (
        session.table("CLEAN_ORDER_LINES" + NEW)
        .group_by("ORDER_ID", "CUSTOMER_ID", "TS")
        .agg(
            F.max("COUPON").alias("COUPON"),
            F.max("SHIP_COST").alias("SHIP_COST"),
            F.count(F.lit(1)).alias("N_LINES"),
            F.sum(F.col("QUANTITY") * F.col("UNIT_PRICE")).alias("ORDER_TOTAL"),
        )
    )


def write_clean(session: Session, plans: dict[str, SourcePlan], fraction: float) -> None:
    """CLEAN_*__NEW and REJECTED_*__NEW from the STAGE_ tables (ordered, so re-runs give identical tables)."""
    lines = _accepted(session, STAGE["orders"], fraction)
    if plans["orders"].fmt == "csv":
        w = Window.partition_by(F.col("ORDER_ID")).order_by(F.col("LINE_NO"))
        lines = lines.with_column("ITEM_NO", (F.row_number().over(w) - 1).cast("int"))
    wh.replace_table(
        lines.select(*CLEAN_COLUMNS["ORDER_LINES"]).sort("LINE_NO", "ITEM_NO"),
        "CLEAN_ORDER_LINES" + NEW,
    )
    if plans["customers"].present:
        cust = (
            _accepted(session, STAGE["customers"], fraction)
            .select(*CLEAN_COLUMNS["CUSTOMERS"])
            .sort("LINE_NO")
        )
    else:
        cust = _derived_customers(session, plans)
    wh.replace_table(cust, "CLEAN_CUSTOMERS" + NEW)
    reviews = [
        _accepted(session, STAGE[n], fraction).select(*CLEAN_COLUMNS["REVIEWS"])
        for n in ("reviews", "calls")
        if plans[n].present
    ]
    if reviews:
        wh.replace_table(
            _union(reviews).sort("KIND", "SOURCE_FILE", "LINE_NO"), "CLEAN_REVIEWS" + NEW
        )
    else:
        empty(session, "CLEAN_REVIEWS" + NEW, CLEAN_COLUMNS["REVIEWS"], CLEAN_TYPES)
    wh.replace_table(_orders(session).sort("TS", "ORDER_ID"), "CLEAN_ORDERS" + NEW)
    for stem, sources in (
        ("CUSTOMERS", ["customers"]),
        ("ORDER_LINES", ["orders"]),
        ("REVIEWS", ["reviews", "calls"]),
    ):
        parts = [_rejected(session, STAGE[s]) for s in sources if plans[s].present]
        if parts:
            wh.replace_table(
                _union(parts).sort("SOURCE_FILE", "LINE_NO", "ITEM_NO"), f"REJECTED_{stem}" + NEW
            )
        else:
            empty(
                session,
                f"REJECTED_{stem}" + NEW,
                REJECT_COLUMNS,
                {"LINE_NO": "INT", "ITEM_NO": "INT"},
            )


def write_log(session: Session, counts: list[SourceCounts], staging: Path) -> None:
    """INGEST_LOG__NEW (one row per source) and INGEST_REASONS__NEW (rows per source, field and reason)."""
    log_rows = [
        {
            "SOURCE": c.source,
            "FILE_NAME": c.file,
            "STATUS": c.status,
            "UNIT": c.unit,
            "RECORDS": c.records,
            "ROWS_READ": c.read,
            "ACCEPTED": c.accepted,
            "REJECTED": c.rejected,
            "SAMPLED_OUT": c.sampled_out,
            "DERIVED": c.derived,
            "FILE_BYTES": c.bytes,
            "FILE_SHA256": c.sha256,
        }
        for c in counts
    ]
    reason_rows = [
        {
            "SOURCE": c.source,
            "FIELD": d["field"],
            "REASON": d["reason"],
            "ROWS": d["rows"],
            "EXAMPLE_LINES": json.dumps([e["line"] for e in d["examples"]]),
        }
        for c in counts
        for d in c.details
    ]
    wh.write_pandas(
        session, pd.DataFrame(log_rows, columns=LOG_COLUMNS), "INGEST_LOG" + NEW, staging
    )
    reasons = pd.DataFrame(reason_rows, columns=REASON_COLUMNS)
    if reasons.empty:
        empty(session, "INGEST_REASONS" + NEW, REASON_COLUMNS, {"ROWS": "INT"})
    else:
        wh.write_pandas(session, reasons, "INGEST_REASONS" + NEW, staging)


def missing_raw(session: Session, source: str) -> None:
    """An empty RAW_ table for a source that was not loaded."""
    empty(session, RAW[source] + NEW, RAW_COLUMNS, {"LINE_NO": "INT"})


def publish(session: Session) -> None:
    """Put every ``*__NEW`` table of the run in place together."""
    wh.publish(session, {t + NEW: t for t in PUBLISHED})
