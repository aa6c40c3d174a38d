"""Ingest: raw files -> RAW_* tables -> CLEAN_* tables (+ REJECTED_*), all in Snowpark.

Sources (in ``data_dir``):

* ``customers.csv``: customer_id, name, email, signup_date, country, acquisition_channel, birth_year
* ``orders.jsonl``: order_id, customer_id, ts, items [{product, quantity, unit_price}], coupon?, shipping{}
* ``reviews.jsonl``: customer_id, ts, rating? (1-5), text

Names and e-mails are read into RAW_CUSTOMERS only; CLEAN_CUSTOMERS keeps no personal data
(modelling needs none). Every clean row keeps ``LINE_NO``, its line in the source file; every
rejected row is kept in REJECTED_<SOURCE> with the line, the field and the reason.
Sampling (``sample`` < 1) keeps the customers whose id hashes into the sample, in every source.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import snowflake.snowpark.functions as F
from snowflake.snowpark import Column, DataFrame, Session
from snowflake.snowpark.window import Window

from customer_analytics import warehouse as wh
from customer_analytics.config import Params

log = logging.getLogger(__name__)

SOURCES = {"customers": ("customers.csv", "csv"), "orders": ("orders.jsonl", "jsonl"),
           "reviews": ("reviews.jsonl", "jsonl")}
REJECT_COLUMNS = ["LINE_NO", "FIELD", "REASON"]


class IngestError(RuntimeError):
    """An input file cannot be used at all; the message names the file, the problem and the fix."""


@dataclass
class SourceCounts:
    """Row accounting for one source: ``read == accepted + rejected`` always holds."""

    source: str
    unit: str
    read: int
    accepted: int
    rejected: int
    reasons: dict[str, int] = field(default_factory=dict)


def in_sample(customer_id: Column, fraction: float) -> Column:
    """Deterministic customer sample: the id's hash bucket (of 10,000) is below ``fraction``."""
    return (F.abs(F.hash(customer_id)) % 10000) < int(round(fraction * 10000))


def _with_reason(df: DataFrame, checks: list[tuple[Column, str, str]]) -> DataFrame:
    """Add FIELD/REASON for the first failing check (``checks``: condition-is-bad, field, reason)."""
    field_col, reason_col = F.lit(None).cast("string"), F.lit(None).cast("string")
    for bad, fld, why in reversed(checks):
        field_col = F.when(bad, F.lit(fld)).otherwise(field_col)
        reason_col = F.when(bad, F.lit(why)).otherwise(reason_col)
    return df.with_column("FIELD", field_col).with_column("REASON", reason_col)


def _first_per_key(df: DataFrame, key: str, bad_reason: str) -> DataFrame:
    """Mark every row after the first (by LINE_NO) with the same ``key`` as a duplicate."""
    rn = F.row_number().over(Window.partition_by(F.col(key)).order_by(F.col("LINE_NO")))
    dup = F.col("REASON").is_null() & (rn > 1)
    return (df.with_column("FIELD", F.when(dup, F.lit(key)).otherwise(F.col("FIELD")))
              .with_column("REASON", F.when(dup, F.lit(bad_reason)).otherwise(F.col("REASON"))))


def clean_customers(raw: DataFrame, fraction: float) -> DataFrame:
    """Typed customers with FIELD/REASON columns (REASON null = accepted)."""
    df = raw.select(
        F.trim(F.col("CUSTOMER_ID")).alias("CUSTOMER_ID"),
        F.trim(F.col("SIGNUP_DATE")).try_cast("date").alias("SIGNUP_DATE"),
        F.upper(F.trim(F.col("COUNTRY"))).alias("COUNTRY"),
        F.lower(F.trim(F.col("ACQUISITION_CHANNEL"))).alias("CHANNEL"),
        F.trim(F.col("BIRTH_YEAR")).try_cast("int").alias("BIRTH_YEAR"),
        F.col("LINE_NO"),
    ).filter(in_sample(F.col("CUSTOMER_ID"), fraction))
    df = _with_reason(df, [
        (F.col("CUSTOMER_ID").is_null() | (F.col("CUSTOMER_ID") == ""), "customer_id", "missing required field"),
        (F.col("SIGNUP_DATE").is_null(), "signup_date", "not a date (expected YYYY-MM-DD)"),
        (F.col("BIRTH_YEAR").is_not_null() & ((F.col("BIRTH_YEAR") < 1900) | (F.col("BIRTH_YEAR") > 2020)),
         "birth_year", "out of range (1900-2020)"),
    ])
    return _first_per_key(df, "CUSTOMER_ID", "duplicate customer_id (first kept)")


def flatten_orders(raw: DataFrame, fraction: float) -> DataFrame:
    """One row per order line (FLATTEN of ``items``) with FIELD/REASON columns."""
    v = F.col("V")
    item = F.col("VALUE")
    df = raw.join_table_function("flatten", v["items"]).select(
        v["order_id"].cast("string").alias("ORDER_ID"),
        v["customer_id"].cast("string").alias("CUSTOMER_ID"),
        v["ts"].cast("string").try_cast("timestamp").alias("TS"),
        v["coupon"].cast("string").alias("COUPON"),
        v["shipping"]["method"].cast("string").alias("SHIP_METHOD"),
        v["shipping"]["cost"].cast("string").try_cast("double").alias("SHIP_COST"),
        item["product"].cast("string").alias("PRODUCT"),
        item["quantity"].cast("string").try_cast("int").alias("QUANTITY"),
        item["unit_price"].cast("string").try_cast("double").alias("UNIT_PRICE"),
        F.col("LINE_NO"),
        F.col("INDEX").alias("ITEM_NO"),
    ).filter(in_sample(F.col("CUSTOMER_ID"), fraction))
    return _with_reason(df, [
        (F.col("ORDER_ID").is_null(), "order_id", "missing required field"),
        (F.col("CUSTOMER_ID").is_null(), "customer_id", "missing required field"),
        (F.col("TS").is_null(), "ts", "not a timestamp (expected ISO 8601)"),
        (F.col("QUANTITY").is_null() | (F.col("QUANTITY") <= 0), "quantity", "not a positive whole number"),
        (F.col("UNIT_PRICE").is_null() | (F.col("UNIT_PRICE") < 0), "unit_price", "not a non-negative number"),
    ]).with_column("PRODUCT", F.coalesce(F.lower(F.trim(F.col("PRODUCT"))), F.lit("all")))


def clean_reviews(raw: DataFrame, fraction: float) -> DataFrame:
    """Typed reviews with FIELD/REASON columns; a rating outside 1-5 becomes missing."""
    v = F.col("V")
    rating = v["rating"].cast("string").try_cast("int")
    df = raw.select(
        v["customer_id"].cast("string").alias("CUSTOMER_ID"),
        v["ts"].cast("string").try_cast("timestamp").alias("TS"),
        F.when(rating.between(1, 5), rating).alias("RATING"),
        v["text"].cast("string").alias("TEXT"),
        F.col("LINE_NO"),
    ).filter(in_sample(F.col("CUSTOMER_ID"), fraction))
    return _with_reason(df, [
        (F.col("CUSTOMER_ID").is_null(), "customer_id", "missing required field"),
        (F.col("TS").is_null(), "ts", "not a timestamp (expected ISO 8601)"),
        (F.col("TEXT").is_null() & F.col("RATING").is_null(), "text", "neither text nor rating"),
    ])


def _split(session: Session, df: DataFrame, name: str, keep: list[str]) -> None:
    """Write the accepted rows of ``df`` to ``CLEAN_<name>__NEW`` and the rest to ``REJECTED_<name>__NEW``."""
    staged = wh.replace_table(df, f"STAGE_{name}")
    all_rows = session.table(staged)
    wh.replace_table(all_rows.filter(F.col("REASON").is_null()).select(*keep), f"CLEAN_{name}__NEW")
    wh.replace_table(all_rows.filter(F.col("REASON").is_not_null()).select(*REJECT_COLUMNS),
                     f"REJECTED_{name}__NEW")


def _counts(session: Session, name: str, unit: str) -> SourceCounts:
    accepted = wh.row_count(session, f"CLEAN_{name}__NEW")
    rej = session.table(f"REJECTED_{name}__NEW").group_by("REASON").count().collect()
    reasons = {r["REASON"]: r["COUNT"] for r in rej}
    read = wh.row_count(session, f"STAGE_{name}")
    counts = SourceCounts(name.lower(), unit, read, accepted, sum(reasons.values()), reasons)
    if counts.read != counts.accepted + counts.rejected:  # accounting is a hard invariant
        raise IngestError(f"{name}: row accounting broken ({counts}); nothing was replaced.")
    return counts


def run(session: Session, params: Params) -> list[SourceCounts]:
    """Ingest the three sources; replace CLEAN_*/REJECTED_* only once all of them succeeded."""
    paths = {src: params.data_dir / fname for src, (fname, _) in SOURCES.items()}
    for src, path in paths.items():
        if not path.is_file():
            raise IngestError(f"{path}: the {src} file is missing. Generate demo data with "
                              f"`python -m customer_analytics.synthetic --out {params.data_dir}` or fix data_dir.")
        if path.stat().st_size == 0:
            raise IngestError(f"{path}: the {src} file is empty.")
    for src, (_, fmt) in SOURCES.items():
        log.info("loading %s", paths[src])
        wh.load_raw_file(session, paths[src], f"RAW_{src.upper()}", fmt)

    f = params.sample
    _split(session, clean_customers(session.table("RAW_CUSTOMERS"), f), "CUSTOMERS",
           ["CUSTOMER_ID", "SIGNUP_DATE", "COUNTRY", "CHANNEL", "BIRTH_YEAR", "LINE_NO"])
    _split(session, flatten_orders(session.table("RAW_ORDERS"), f), "ORDER_LINES",
           ["ORDER_ID", "CUSTOMER_ID", "TS", "COUPON", "SHIP_METHOD", "SHIP_COST", "PRODUCT", "QUANTITY",
            "UNIT_PRICE", "LINE_NO", "ITEM_NO"])
    _split(session, clean_reviews(session.table("RAW_REVIEWS"), f), "REVIEWS",
           ["CUSTOMER_ID", "TS", "RATING", "TEXT", "LINE_NO"])
    counts = [_counts(session, "CUSTOMERS", "customers"), _counts(session, "ORDER_LINES", "order lines"),
              _counts(session, "REVIEWS", "reviews")]

    # publish: each CLEAN_/REJECTED_ table is replaced in one statement, after all checks passed
    for name in ("CUSTOMERS", "ORDER_LINES", "REVIEWS"):
        for kind in ("CLEAN", "REJECTED"):
            wh.replace_table(session.table(f"{kind}_{name}__NEW"), f"{kind}_{name}")
            session.sql(f"DROP TABLE IF EXISTS {kind}_{name}__NEW").collect()
        session.sql(f"DROP TABLE IF EXISTS STAGE_{name}").collect()
    orders = session.table("CLEAN_ORDER_LINES").group_by("ORDER_ID", "CUSTOMER_ID", "TS").agg(
        F.max("COUPON").alias("COUPON"), F.max("SHIP_COST").alias("SHIP_COST"),
        F.count(F.lit(1)).alias("N_LINES"), F.sum(F.col("QUANTITY") * F.col("UNIT_PRICE")).alias("ORDER_TOTAL"))
    wh.replace_table(orders, "CLEAN_ORDERS")
    return counts


def counts_frame(counts: list[SourceCounts]):
    """Row accounting as a small pandas table for the report."""
    import pandas as pd

    return pd.DataFrame([{"source": c.source, "unit": c.unit, "read": c.read, "accepted": c.accepted,
                          "rejected": c.rejected} for c in counts]).set_index("source")


def source_paths(params: Params) -> dict[str, Path]:
    """Where each source is expected."""
    return {src: params.data_dir / fname for src, (fname, _) in SOURCES.items()}


def reasons_frame(counts: list[SourceCounts]):
    """Rejected rows per source and reason (empty frame when nothing was rejected)."""
    import pandas as pd

    rows = [{"source": c.source, "reason": r, "rows": n} for c in counts for r, n in sorted(c.reasons.items())]
    return pd.DataFrame(rows, columns=["source", "reason", "rows"]).set_index(["source", "reason"])


def summary(counts: list[SourceCounts]) -> str:
    """One-paragraph Markdown summary of the ingest."""
    parts = [f"**{c.accepted:,}** of {c.read:,} {c.unit} accepted ({c.rejected:,} rejected)" for c in counts]
    return "This run ingested: " + "; ".join(parts) + "."


def table_counts(session: Session):
    """Row counts of the RAW_, CLEAN_ and REJECTED_ tables."""
    import pandas as pd

    names = [f"RAW_{s.upper()}" for s in SOURCES] + ["CLEAN_CUSTOMERS", "CLEAN_ORDERS", "CLEAN_ORDER_LINES",
                                                     "CLEAN_REVIEWS", "REJECTED_CUSTOMERS",
                                                     "REJECTED_ORDER_LINES", "REJECTED_REVIEWS"]
    return pd.DataFrame({"rows": [wh.row_count(session, n) for n in names]}, index=names)
