"""Build the CLEAN_*, REJECTED_*, EXCLUDED_*, INGEST_LOG and INGEST_REASONS tables as ``*__NEW``,
then put them in place together.

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
from customer_analytics.ingest import product_types
from customer_analytics.ingest.common import (
    CLEAN_COLUMNS,
    CLEAN_TYPES,
    FILLED,
    NEW,
    RAW,
    RAW_COLUMNS,
    REJECT_COLUMNS,
    STAGE,
    SourceCounts,
    SourcePlan,
)
from customer_analytics.ingest.stage import in_sample, is_excluded, rejected_rows

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
    "EXCLUDED_ORDER_LINES",
    "PRODUCT_TYPES",
    "INGEST_LOG",
    "INGEST_REASONS",
]
#: INGEST_LOG: one row per source. FIRST_TS / LAST_TS: the date range of its accepted rows.
LOG_COLUMNS = [
    "SOURCE",
    "FILE_NAME",
    "STATUS",
    "UNIT",
    "RECORDS",
    "ROWS_READ",
    "ACCEPTED",
    "REJECTED",
    "EXCLUDED",
    "SAMPLED_OUT",
    "DERIVED",
    "FILE_BYTES",
    "FILE_SHA256",
    "FIRST_TS",
    "LAST_TS",
]
REASON_COLUMNS = [
    "SOURCE",
    "FIELD",
    "REASON",
    "N_ROWS",
    "EXAMPLE_LINES",
]  # ROWS is reserved in Snowflake
#: EXCLUDED_ORDER_LINES: valid order lines kept out on purpose, with their typed values (guest
#: revenue).
EXCLUDED_COLUMNS = [
    "SOURCE_FILE",
    "LINE_NO",
    "ITEM_NO",
    "FIELD",
    "REASON",
    "ORDER_ID",
    "CUSTOMER_ID",
    "TS",
    "PRODUCT",
    "QUANTITY",
    "UNIT_PRICE",
    "IS_RETURN",
    "COUPON",
    "SHIP_COST",
]


def staged_names() -> list[str]:
    """Every working table of a run (dropped before and after it)."""
    names = [f"{s}{x}" for s in STAGE.values() for x in ("", "_F", "_C")]
    names.append(STAGE["orders"] + FILLED)
    return names + [t + NEW for t in PUBLISHED] + ["RAW_ORDER_ITEMS" + NEW]


def drop(session: Session, names: list[str]) -> None:
    """Drop these tables where they exist."""
    for n in names:
        session.sql(f"DROP TABLE IF EXISTS {n}").collect()


def empty(session: Session, table: str, columns: list[str], types: dict[str, str]) -> None:
    """Create ``table`` with these columns (VARCHAR unless ``types`` says otherwise) and no row."""
    cols = ", ".join(f"{c} {types.get(c, 'VARCHAR')}" for c in columns)
    session.sql(f"CREATE OR REPLACE TABLE {table} ({cols})").collect()


def _accepted(session: Session, stage: str, fraction: float) -> DataFrame:
    t = session.table(stage)
    return t.filter(F.col("REASON").is_null() & in_sample(F.col("CUSTOMER_ID"), fraction))


def _rejected(session: Session, stage: str) -> DataFrame:
    t = session.table(stage)
    item = F.col("ITEM_NO") if "ITEM_NO" in t.columns else F.lit(None).cast("int")
    return rejected_rows(t).select(
        "SOURCE_FILE", "LINE_NO", item.alias("ITEM_NO"), "FIELD", "REASON", "VALUE", "RECORD"
    )


def _union(parts: list[DataFrame]) -> DataFrame:
    out = parts[0]
    for p in parts[1:]:
        out = out.union_all(p)
    return out


def most_frequent(lines: DataFrame, column: str, alias: str) -> DataFrame:
    """Per customer, the most frequent non-empty value of ``column`` (ties: the smallest value)."""
    counts = (
        lines.filter(F.col(column).is_not_null())
        .group_by("CUSTOMER_ID", column)
        .agg(F.count(F.lit(1)).alias("_N"))
    )
    w = Window.partition_by(F.col("CUSTOMER_ID")).order_by(F.col("_N").desc(), F.col(column).asc())
    ranked = counts.select(
        "CUSTOMER_ID", F.col(column).alias(alias), F.row_number().over(w).alias("_R")
    )
    return ranked.filter(F.col("_R") == F.lit(1)).select("CUSTOMER_ID", alias)


def _derived_customers(
    session: Session, plans: dict[str, SourcePlan], fraction: float
) -> DataFrame:
    """One customer per customer_id of the accepted order lines: sign-up = first order; country,
    channel and any other ``customer_attributes`` = their most frequent value on the customer's
    lines."""
    lines = _accepted(session, STAGE["orders"], fraction)
    out = lines.group_by("CUSTOMER_ID").agg(F.min("TS").alias("FIRST_TS"))
    attributes = plans["orders"].settings.get("attributes", [])
    for a in attributes:
        out = out.join(
            most_frequent(lines, f"ATTR_{a.upper()}", f"_A_{a.upper()}"), "CUSTOMER_ID", "left"
        )
    country = (
        F.upper(F.col("_A_COUNTRY")) if "country" in attributes else F.lit(None).cast("string")
    )
    channel = (
        F.lower(F.col("_A_ACQUISITION_CHANNEL"))
        if "acquisition_channel" in attributes
        else F.lit(None).cast("string")
    )
    extra = [
        F.col(f"_A_{a.upper()}").alias(a.upper())
        for a in attributes
        if a not in ("country", "acquisition_channel")
    ]
    return out.select(
        "CUSTOMER_ID",
        F.to_date(F.col("FIRST_TS")).alias("SIGNUP_DATE"),
        F.coalesce(country, F.lit(contract.UNKNOWN)).alias("COUNTRY"),
        F.coalesce(channel, F.lit(contract.UNKNOWN)).alias("CHANNEL"),
        F.lit(None).cast("int").alias("BIRTH_YEAR"),
        F.lit(None).cast("int").alias("LINE_NO"),
        F.lit(plans["orders"].name).alias("SOURCE_FILE"),
        *extra,
    ).sort("CUSTOMER_ID")


def _orders(session: Session) -> DataFrame:
    """CLEAN_ORDERS: one row per order, from the accepted order lines.

    ORDER_TOTAL is net (return lines count negative), RETURN_TOTAL the value of its return lines
    (≥ 0), IS_RETURN true when every line of the order is a return (a cancellation invoice).
    """
    amount = F.col("QUANTITY") * F.col("UNIT_PRICE")
    ret = F.col("IS_RETURN")
    return (
        session.table("CLEAN_ORDER_LINES" + NEW)
        .group_by("ORDER_ID", "CUSTOMER_ID", "TS")
        .agg(
            F.max("COUPON").alias("COUPON"),
            F.max("SHIP_COST").alias("SHIP_COST"),
            F.count(F.lit(1)).alias("N_LINES"),
            F.sum(amount).alias("ORDER_TOTAL"),
            (-F.sum(F.iff(ret, amount, F.lit(0.0)))).alias("RETURN_TOTAL"),
            (F.min(F.iff(ret, F.lit(1), F.lit(0))) == F.lit(1)).alias("IS_RETURN"),
        )
    )


def write_clean(
    session: Session, plans: dict[str, SourcePlan], fraction: float, staging: Path
) -> None:
    """CLEAN_*__NEW, REJECTED_*__NEW, EXCLUDED_ORDER_LINES__NEW and PRODUCT_TYPES__NEW from the
    STAGE_
    tables (ordered, so re-runs give identical tables)."""
    orders = plans["orders"]
    every = session.table(STAGE["orders"]).filter(
        F.col("REASON").is_null()
    )  # before sampling: stable keys
    mapping = product_types.build(
        session,
        every,
        orders.settings.get("max_product_types", product_types.DEFAULT_MAX_TYPES),
        "PRODUCT_TYPES" + NEW,
        staging,
    )
    lines = product_types.with_keys(_accepted(session, STAGE["orders"], fraction), mapping)
    if plans["orders"].fmt != "jsonl":
        w = Window.partition_by(F.col("ORDER_ID")).order_by(F.col("LINE_NO"))
        lines = lines.with_column("ITEM_NO", (F.row_number().over(w) - 1).cast("int"))
    wh.replace_table(
        lines.select(*CLEAN_COLUMNS["ORDER_LINES"]).sort("LINE_NO", "ITEM_NO"),
        "CLEAN_ORDER_LINES" + NEW,
    )
    if plans["customers"].present:
        cust = _accepted(session, STAGE["customers"], fraction).select(*CLEAN_COLUMNS["CUSTOMERS"])
        cust = cust.sort("LINE_NO")
    else:
        cust = _derived_customers(session, plans, fraction)
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
            rej = _union(parts).sort("SOURCE_FILE", "LINE_NO", "ITEM_NO")
            wh.replace_table(rej, f"REJECTED_{stem}" + NEW)
        else:
            empty(
                session,
                f"REJECTED_{stem}" + NEW,
                REJECT_COLUMNS,
                {"LINE_NO": "INT", "ITEM_NO": "INT"},
            )
    excluded = session.table(STAGE["orders"]).filter(is_excluded(F.col("REASON")))
    wh.replace_table(
        excluded.select(*EXCLUDED_COLUMNS).sort("LINE_NO", "ITEM_NO"), "EXCLUDED_ORDER_LINES" + NEW
    )


def date_range(session: Session, source: str) -> tuple[object, object]:
    """First and last TS of a source's accepted rows in its CLEAN_*__NEW table, or Nones."""
    table = {"orders": "CLEAN_ORDERS", "reviews": "CLEAN_REVIEWS", "calls": "CLEAN_REVIEWS"}.get(
        source
    )
    if table is None:
        return None, None
    t: DataFrame = session.table(table + NEW)
    if source in ("reviews", "calls") and "KIND" in t.columns:
        t = t.filter(F.col("KIND") == F.lit("review" if source == "reviews" else "call"))
    row = t.agg(
        F.count(F.lit(1)).alias("N"), F.min("TS").alias("FIRST"), F.max("TS").alias("LAST")
    ).collect()[0]
    return (
        (row["FIRST"], row["LAST"]) if row["N"] else (None, None)
    )  # the count guards a NULL shown as 1970


def write_log(session: Session, counts: list[SourceCounts], staging: Path) -> None:
    """INGEST_LOG__NEW (one row per source) and INGEST_REASONS__NEW (rows per source, field and
    reason)."""
    log_rows = []
    for c in counts:
        first, last = date_range(session, c.source) if c.accepted else (None, None)
        log_rows.append(
            {
                "SOURCE": c.source,
                "FILE_NAME": c.file,
                "STATUS": c.status,
                "UNIT": c.unit,
                "RECORDS": c.records,
                "ROWS_READ": c.read,
                "ACCEPTED": c.accepted,
                "REJECTED": c.rejected,
                "EXCLUDED": c.excluded,
                "SAMPLED_OUT": c.sampled_out,
                "DERIVED": c.derived,
                "FILE_BYTES": c.bytes,
                "FILE_SHA256": c.sha256,
                "FIRST_TS": first,
                "LAST_TS": last,
            }
        )
    reason_rows = [
        {
            "SOURCE": c.source,
            "FIELD": d["field"],
            "REASON": d["reason"],
            "N_ROWS": d["rows"],
            "EXAMPLE_LINES": json.dumps([e["line"] for e in d["examples"]]),
        }
        for c in counts
        for d in c.details
    ]
    frame = pd.DataFrame(log_rows, columns=LOG_COLUMNS)
    for col in (
        "FIRST_TS",
        "LAST_TS",
    ):  # microseconds: nanosecond Parquet timestamps are misread locally
        frame[col] = pd.to_datetime(frame[col]).astype("datetime64[us]")
    wh.write_pandas(session, frame, "INGEST_LOG" + NEW, staging)
    reasons = pd.DataFrame(reason_rows, columns=REASON_COLUMNS)
    if reasons.empty:
        empty(session, "INGEST_REASONS" + NEW, REASON_COLUMNS, {"N_ROWS": "INT"})
    else:
        wh.write_pandas(session, reasons, "INGEST_REASONS" + NEW, staging)


def missing_raw(session: Session, source: str) -> None:
    """An empty RAW_ table for a source that was not loaded."""
    empty(session, RAW[source] + NEW, RAW_COLUMNS, {"LINE_NO": "INT"})


def publish(session: Session) -> None:
    """Put every ``*__NEW`` table of the run in place together."""
    wh.publish(session, {t + NEW: t for t in PUBLISHED})
