"""Load each source into its RAW_ table, check every row, and account for every row (STAGE_ tables).

A STAGE_ table holds every row of a source with its typed clean columns and ``FIELD`` /
``REASON`` / ``VALUE`` (``REASON`` null = accepted so far). The order of the checks is the
contract's: reading problems, then each field (:func:`checks.field_checks`), then duplicates,
then unknown customers.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import snowflake.snowpark.functions as F
from snowflake.snowpark import Column, DataFrame, Session
from snowflake.snowpark.window import Window

from customer_analytics import contract
from customer_analytics import warehouse as wh
from customer_analytics.contract import CUSTOMERS, ORDERS, REVIEWS, Reason
from customer_analytics.ingest import checks as ck
from customer_analytics.ingest import dates
from customer_analytics.ingest.common import (
    NEW,
    RAW,
    RAW_COLUMNS,
    STAGE,
    IngestError,
    SourceCounts,
    SourcePlan,
)
from customer_analytics.ingest.plan import load_raw_file

log = logging.getLogger(__name__)

#: Columns every STAGE_ table starts with (ITEM_NO only where a record can hold several rows).
STAGE_HEAD = ["SOURCE_FILE", "LINE_NO", "RECORD", "FIELD", "REASON", "VALUE"]


def in_sample(customer_id: Column, fraction: float) -> Column:
    """Deterministic customer sample: the id's hash bucket (of 10,000) is below ``fraction``."""
    return (F.abs(F.hash(customer_id)) % 10000) < int(round(fraction * 10000))


def load(session: Session, plan: SourcePlan, staging_dir: Path) -> tuple[DataFrame, list[str]]:
    """Load the source's file into RAW_<SOURCE>__NEW; return the table and its columns."""
    table = RAW[plan.source.name] + NEW
    log.info("reading %s", plan.path)
    wanted = plan.wanted if plan.fmt == "csv" else None
    plan.stats = load_raw_file(
        session, plan.path, table, plan.fmt, staging_dir, source_file=plan.name, columns=wanted
    )
    raw = session.table(table)
    return raw, list(raw.columns)


def _ok_or_null(value: Column, kind: str) -> Column:
    """``value`` on accepted rows, NULL of type ``kind`` on rejected ones."""
    return F.iff(F.col("REASON").is_null(), value, F.lit(None).cast(kind))


def _present(
    f: DataFrame, plan: SourcePlan, names: list[str], required: list[str]
) -> dict[str, bool]:
    """Which fields the file has: CSV columns in the header; JSON keys on at least one line."""
    if plan.fmt == "jsonl":
        found = ck.occurs(f, names)
        ck.require_somewhere(found, plan, required)
        return found
    return {n: n in plan.stats.columns for n in names}


# --------------------------------------------------------------------------- customers
def stage_customers(
    session: Session, raw: DataFrame, raw_columns: list[str], plan: SourcePlan
) -> str:
    """STAGE_CUSTOMERS: every customer row with typed columns and FIELD/REASON/VALUE (REASON null = accepted)."""
    names = list(CUSTOMERS.field_names)
    f = ck.materialise(ck.text_fields(raw, plan, names, raw_columns), "STAGE_CUSTOMERS_F")
    present = _present(f, plan, names, ["customer_id", "signup_date"])
    checked = ck.with_reason(
        ck.typed(f, ck.used_fields(CUSTOMERS, present), dates.resolve(f, plan)), ck.field_checks(plan, present)
    )
    t = ck.materialise(
        checked.select(
            *STAGE_HEAD,
            F.col("S_CUSTOMER_ID").alias("CUSTOMER_ID"),
            F.col("T_SIGNUP_DATE").alias("SIGNUP_DATE"),
            F.coalesce(F.upper(F.col("S_COUNTRY")), F.lit(contract.UNKNOWN)).alias("COUNTRY"),
            F.coalesce(F.lower(F.col("S_ACQUISITION_CHANNEL")), F.lit(contract.UNKNOWN)).alias(
                "CHANNEL"
            ),
            _ok_or_null(F.col("N_BIRTH_YEAR"), "double").cast("int").alias("BIRTH_YEAR"),
        ),
        "STAGE_CUSTOMERS_C",
    )
    columns = [*STAGE_HEAD, "CUSTOMER_ID", "SIGNUP_DATE", "COUNTRY", "CHANNEL", "BIRTH_YEAR"]
    rules = [
        (
            ck.not_first(["CUSTOMER_ID"], ["LINE_NO"]),
            plan.column("customer_id"),
            Reason.DUPLICATE_CUSTOMER,
        )
    ]
    return wh.replace_table(ck.cross_checks(t, columns, rules), STAGE["customers"])


# --------------------------------------------------------------------------- orders
ORDER_FIELDS = [f.name for f in ORDERS.fields if f.level == "record"]
ITEM_FIELDS = [f.name for f in ORDERS.fields if f.level == "item"]


def _order_rows(raw: DataFrame, raw_columns: list[str], plan: SourcePlan) -> DataFrame:
    """Orders as one row per order line; a JSON line without items (or unreadable) stays one row.

    Snowflake's ``FLATTEN(…, OUTER => TRUE)`` would keep such lines, but fakesnow ignores OUTER,
    so lines with a non-empty ``items`` list are flattened and the others appended as they are
    (correct on both backends).
    ``_N_ITEMS`` is 1 on flattened rows, else the list size (0) or NULL (absent or not a list).
    """
    if plan.fmt != "jsonl":
        return ck.text_fields(raw, plan, ORDER_FIELDS + ITEM_FIELDS, raw_columns).select(
            "*", F.lit(None).cast("int").alias("ITEM_NO"), F.lit(1).alias("_N_ITEMS")
        )
    items = ck.json_get(ck.parsed_record(F.col("RECORD")), plan.wanted["items"])
    lines = ck.text_fields(raw, plan, ORDER_FIELDS, raw_columns).select(
        "*", F.array_size(items).alias("_N_ITEMS"), items.alias("_ITEMS")
    )
    base = RAW_COLUMNS + [ck.text_col(f) for f in ORDER_FIELDS]
    # the element is taken with GET(items, INDEX), not FLATTEN's VALUE: fakesnow numbers INDEX with an unordered
    # row_number(), so only the set of indexes is right there; on Snowflake both are the same element
    item = F.get(F.col("_ITEMS"), F.col("INDEX"))
    flat = (
        lines.filter(F.col("_N_ITEMS") > 0)
        .join_table_function("flatten", F.col("_ITEMS"))
        .select(
            *base,
            *[
                ck.clean_text(ck.json_get(item, plan.wanted[f])).alias(ck.text_col(f))
                for f in ITEM_FIELDS
            ],
            F.col("INDEX").cast("int").alias("ITEM_NO"),
            F.lit(1).alias("_N_ITEMS"),
        )
    )
    bare = lines.filter(F.coalesce(F.col("_N_ITEMS"), F.lit(0)) == 0).select(
        *base,
        *[F.lit(None).cast("string").alias(ck.text_col(f)) for f in ITEM_FIELDS],
        F.lit(None).cast("int").alias("ITEM_NO"),
        "_N_ITEMS",
    )
    return flat.union_all(bare)


def _items_checks(plan: SourcePlan) -> list[ck.Check]:
    name = plan.column("items")
    return [
        (F.col("S_ITEMS").is_null(), name, Reason.MISSING, None),
        (F.col("_N_ITEMS").is_null(), name, Reason.NOT_A_LIST, "S_ITEMS"),
        (F.col("_N_ITEMS") == 0, name, Reason.NO_ITEMS, "S_ITEMS"),
    ]


def stage_orders(
    session: Session,
    raw: DataFrame,
    raw_columns: list[str],
    plan: SourcePlan,
    customers: DataFrame | None,
) -> str:
    """STAGE_ORDER_LINES: every order line with typed columns and FIELD/REASON/VALUE."""
    f = ck.materialise(_order_rows(raw, raw_columns, plan), "STAGE_ORDER_LINES_F")
    jsonl = plan.fmt == "jsonl"
    present = _present(
        f, plan, ORDER_FIELDS + ITEM_FIELDS, ["order_id", "customer_id", "ts", "items"]
    )
    special = {"items": _items_checks(plan)} if jsonl else {}
    checks = ck.field_checks(plan, present, special, skip=() if jsonl else ("items",))
    checked = ck.with_reason(ck.typed(f, ck.used_fields(ORDERS, present), dates.resolve(f, plan)), checks)
    has_id = jsonl or present["order_id"]
    unit = (
        F.col("N_UNIT_PRICE")
        if any(x.name == "unit_price" for x in ck.used_fields(ORDERS, present))
        else F.col("N_AMOUNT") / F.col("N_QUANTITY")
    )
    order_id = (
        F.col("S_ORDER_ID")
        if has_id
        else F.concat(F.col("S_CUSTOMER_ID"), F.lit("@"), F.col("S_TS"))
    )
    product = F.lower(F.col("S_PRODUCT")) if present["product"] else F.lit(contract.ALL_PRODUCTS)
    head = ["SOURCE_FILE", "LINE_NO", "ITEM_NO", "RECORD", "FIELD", "REASON", "VALUE"]
    t = ck.materialise(
        checked.select(
            *head,
            "S_LINE_ID",
            order_id.alias("ORDER_ID"),
            F.col("S_CUSTOMER_ID").alias("CUSTOMER_ID"),
            _ok_or_null(F.col("T_TS"), "timestamp").alias("TS"),
            F.col("S_COUPON").alias("COUPON"),
            F.col("S_SHIP_METHOD").alias("SHIP_METHOD"),
            _ok_or_null(F.col("N_SHIP_COST"), "double").alias("SHIP_COST"),
            product.alias("PRODUCT"),
            _ok_or_null(F.col("N_QUANTITY"), "double").cast("int").alias("QUANTITY"),
            _ok_or_null(unit, "double").alias("UNIT_PRICE"),
        ),
        "STAGE_ORDER_LINES_C",
    )
    order, c = ["LINE_NO", "ITEM_NO"], plan.column
    rules = []
    if present["line_id"]:
        rules.append(
            (
                F.col("S_LINE_ID").is_not_null() & ck.not_first(["S_LINE_ID"], order),
                c("line_id"),
                Reason.DUPLICATE_LINE,
            )
        )
    if jsonl:
        rules.append(
            (
                ck.differs_from_first("ORDER_ID", ["LINE_NO"], order),
                c("order_id"),
                Reason.DUPLICATE_ORDER,
            )
        )
    elif has_id:
        rules.append(
            (
                ck.differs_from_first("ORDER_ID", ["CUSTOMER_ID", "TS"], order),
                c("order_id"),
                Reason.DUPLICATE_ORDER,
            )
        )
    columns = [x for x in t.columns if x != "S_LINE_ID"]
    final = ck.cross_checks(t, columns, rules, customers, c("customer_id"))
    return wh.replace_table(final, STAGE["orders"])


# --------------------------------------------------------------------------- reviews and calls
def stage_reviews(
    session: Session,
    raw: DataFrame,
    raw_columns: list[str],
    plan: SourcePlan,
    customers: DataFrame | None,
) -> str:
    """STAGE_REVIEWS: every review row with typed columns and FIELD/REASON/VALUE."""
    names = list(REVIEWS.field_names)
    f = ck.materialise(ck.text_fields(raw, plan, names, raw_columns), "STAGE_REVIEWS_F")
    present = _present(f, plan, names, ["customer_id", "ts"])
    checked = ck.with_reason(
        ck.typed(f, ck.used_fields(REVIEWS, present), dates.resolve(f, plan)), ck.field_checks(plan, present)
    )
    t = ck.materialise(
        checked.select(
            *STAGE_HEAD,
            "S_TS",
            "S_RATING",
            F.col("S_CUSTOMER_ID").alias("CUSTOMER_ID"),
            _ok_or_null(F.col("T_TS"), "timestamp").alias("TS"),
            _ok_or_null(F.col("N_RATING"), "double").cast("int").alias("RATING"),
            F.col("S_TEXT").alias("TEXT"),
            F.lit("review").alias("KIND"),
        ),
        "STAGE_REVIEWS_C",
    )
    rules = [
        (
            ck.not_first(["CUSTOMER_ID", "S_TS", "S_RATING", "TEXT"], ["LINE_NO"]),
            "line",
            Reason.DUPLICATE_LINE,
        )
    ]
    columns = [x for x in t.columns if not x.startswith("S_")]
    return wh.replace_table(
        ck.cross_checks(t, columns, rules, customers, plan.column("customer_id")), STAGE["reviews"]
    )


def stage_calls(
    session: Session,
    raw: DataFrame,
    raw_columns: list[str],
    plan: SourcePlan,
    customers: DataFrame | None,
) -> str:
    """STAGE_CALLS: every transcript as a review row (KIND 'call', RATING null) with FIELD/REASON/VALUE."""
    names = list(contract.CALLS.field_names)
    f = ck.text_fields(raw, plan, names, raw_columns)
    present = {n: True for n in names}
    checked = ck.with_reason(
        ck.typed(f, ck.used_fields(contract.CALLS, present), dates.resolve(f, plan)), ck.field_checks(plan, present)
    )
    t = ck.materialise(
        checked.select(
            *STAGE_HEAD,
            F.col("S_CUSTOMER_ID").alias("CUSTOMER_ID"),
            _ok_or_null(F.col("T_TS"), "timestamp").alias("TS"),
            F.lit(None).cast("int").alias("RATING"),
            F.col("S_TEXT").alias("TEXT"),
            F.lit("call").alias("KIND"),
        ),
        "STAGE_CALLS_C",
    )
    return wh.replace_table(
        ck.cross_checks(t, t.columns, [], customers, "customer_id"), STAGE["calls"]
    )


# --------------------------------------------------------------------------- accounting
def account(
    session: Session, stage: str, plan: SourcePlan, unit: str, fraction: float
) -> SourceCounts:
    """Counts of a staged source; asserts that every record read is in it and read = accepted + rejected + out."""
    t = session.table(stage)
    sampled = F.col("REASON").is_null() & ~in_sample(F.col("CUSTOMER_ID"), fraction)
    row = t.agg(
        F.count(F.lit(1)).alias("READ"),
        F.sum(F.iff(F.col("REASON").is_null() & ~sampled, 1, 0)).alias("ACCEPTED"),
        F.sum(F.iff(F.col("REASON").is_not_null(), 1, 0)).alias("REJECTED"),
        F.sum(F.iff(sampled, 1, 0)).alias("OUT"),
    ).collect()[0]
    read, acc, rej, out = (int(row[k] or 0) for k in ("READ", "ACCEPTED", "REJECTED", "OUT"))
    records = t.select("SOURCE_FILE", "LINE_NO").distinct().count()
    reasons = {
        r["REASON"]: int(r["N"])
        for r in t.filter(F.col("REASON").is_not_null())
        .group_by("REASON")
        .agg(F.count(F.lit(1)).alias("N"))
        .collect()
    }
    st = plan.stats
    counts = SourceCounts(
        plan.source.name,
        unit,
        read,
        acc,
        rej,
        reasons,
        sampled_out=out,
        file=plan.name,
        records=st.records,
        bytes=st.bytes,
        sha256=st.sha256,
        details=details(t, plan),
        layouts=[dataclasses.asdict(c) for c in plan.layouts.values()],
    )
    if records != st.records or read != acc + rej + out or sum(reasons.values()) != rej:
        raise IngestError(
            f"{plan.path}: row accounting failed ({st.records:,} records read, {records:,} staged; "
            f"{read:,} rows vs {acc:,} accepted + {rej:,} rejected + {out:,} sampled out). "
            "This is a bug: nothing was replaced."
        )
    return counts


def details(t: DataFrame, plan: SourcePlan) -> list[dict]:
    """Rows per field and reason, with up to three example lines (first in file order)."""
    bad = t.filter(F.col("REASON").is_not_null())
    groups = bad.group_by("FIELD", "REASON").agg(F.count(F.lit(1)).alias("N")).collect()
    item = F.col("ITEM_NO") if "ITEM_NO" in t.columns else F.lit(None).cast("int")
    per_line = bad.group_by("FIELD", "REASON", "SOURCE_FILE", "LINE_NO").agg(
        F.min(item).alias("ITEM_NO"), F.min(F.col("VALUE")).alias("VALUE")
    )  # examples on distinct lines
    w = Window.partition_by(F.col("FIELD"), F.col("REASON")).order_by(
        F.col("SOURCE_FILE"), F.col("LINE_NO")
    )
    ex = (
        per_line.select(
            "FIELD",
            "REASON",
            "SOURCE_FILE",
            "LINE_NO",
            "ITEM_NO",
            "VALUE",
            F.row_number().over(w).alias("RN"),
        )
        .filter(F.col("RN") <= 3)
        .collect()
    )
    contract_field = {plan.column(f): f for f in plan.source.field_names}
    out = []
    for g in sorted(groups, key=lambda r: (-r["N"], r["REASON"], r["FIELD"] or "")):
        rows = sorted(
            (r for r in ex if r["FIELD"] == g["FIELD"] and r["REASON"] == g["REASON"]),
            key=lambda r: (r["SOURCE_FILE"], r["LINE_NO"], r["ITEM_NO"] or 0),
        )
        out.append(
            {
                "field": g["FIELD"],
                "contract_field": contract_field.get(g["FIELD"], g["FIELD"]),
                "reason": g["REASON"],
                "rows": int(g["N"]),
                "examples": [
                    {
                        "file": r["SOURCE_FILE"],
                        "line": int(r["LINE_NO"]),
                        "item": None if r["ITEM_NO"] is None else int(r["ITEM_NO"]),
                        "value": r["VALUE"],
                    }
                    for r in rows
                ],
            }
        )
    return out


def check_threshold(counts: SourceCounts, plan: SourcePlan, limit: float) -> None:
    """Stop when more than ``limit`` of the source's rows were rejected."""
    if counts.read == 0 or counts.reject_share <= limit:
        return
    top = "; ".join(
        f"'{d['reason']}' in '{d['field']}' ({d['rows']:,} rows, e.g. line {d['examples'][0]['line']})"
        for d in counts.details[:3]
    )
    raise IngestError(
        f"{plan.path}: {counts.rejected:,} of {counts.read:,} {counts.unit} rejected ({counts.reject_share:.1%}), "
        f"more than max_reject_share = {limit:.0%}. Most common: {top}. Fix: correct the file (see "
        "docs/data_contract.md), map your column names in env.yaml (columns:), or raise max_reject_share if these "
        "rejections are expected. Nothing was replaced: the previous tables are unchanged."
    )
