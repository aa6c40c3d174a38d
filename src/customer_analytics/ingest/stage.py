"""Load each source into its RAW_ table, check every row, and account for every row (STAGE_ tables).

A STAGE_ table holds every row of a source with its typed clean columns and ``FIELD`` /
``REASON`` / ``VALUE`` (``REASON`` null = accepted so far). The order of the checks is the
contract's: reading problems, then each field (:func:`checks.field_checks`), then duplicates,
then unknown customers.

STAGE_ tables and their steps (``_F``, ``_C``) are working tables of the run's session: temporary
tables (Snowflake's TEMPORARY, DuckDB's in-memory temp catalog that spills to the warehouse's
``tmp`` folder), gone with the session, never written to the database file. At 989,779 orders
that took ingest from 36.4 s to 28.3 s. The RAW_, CLEAN_ and REJECTED_ tables they feed are
permanent, and published together (:mod:`customer_analytics.ingest.publish`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import snowflake.snowpark.functions as F
from snowflake.snowpark import Column, DataFrame, Session
from snowflake.snowpark.window import Window

from customer_analytics import audio, contract, readers
from customer_analytics import portable as pt
from customer_analytics import warehouse as wh
from customer_analytics.contract import CUSTOMERS, ORDERS, REVIEWS, Excluded, Reason
from customer_analytics.ingest import checks as ck
from customer_analytics.ingest import dates
from customer_analytics.ingest.common import (
    FILLED,
    NEW,
    RAW,
    RAW_COLUMNS,
    SHOWABLE_FIELDS,
    STAGE,
    IngestError,
    SourceCounts,
    SourcePlan,
    fix_hint,
)
from customer_analytics.ingest.plan import (
    attribute_field,
    check_file,
    lacks_quantity,
    load_raw_file,
    missing_columns,
    one_unit,
    quantity_mapped,
)

log = logging.getLogger(__name__)

#: The elements of the JSON orders' items lists, one row each, staged by the reader (a working
#: table).
ITEMS = "RAW_ORDER_ITEMS" + NEW
#: Item rows keep the whole JSON line in RECORD only up to this size; beyond, RECORD is the item
#: itself, so
#: a line's size is never multiplied by its number of items.
ITEM_RECORD_BYTES = 16_384
#: Columns every STAGE_ table starts with (ITEM_NO only where a record can hold several rows).
STAGE_HEAD = ["SOURCE_FILE", "LINE_NO", "RECORD", "FIELD", "REASON", "VALUE"]


def in_sample(customer_id: Column, fraction: float) -> Column:
    """Deterministic customer sample: the id's bucket (of 10,000) is below ``fraction``.

    The bucket comes from :func:`portable.stable_hash` (MD5), so Snowflake, the local warehouse
    and the pandas reference (:func:`portable.stable_hash_py`) keep the same customers.
    """
    kept = int(round(fraction * 10000))
    if kept >= 10000:  # everyone: no hash to compute on every row
        return F.lit(True)
    return (pt.stable_hash(customer_id) % F.lit(10000)) < F.lit(kept)


def load(session: Session, plan: SourcePlan, staging_dir: Path) -> tuple[DataFrame, list[str]]:
    """Load the source into RAW_<SOURCE>__NEW (from its file, its stage file or its table); return
    the
    table and its columns."""
    table = RAW[plan.source.name] + NEW
    if plan.fmt == "table":
        return load_table(session, plan, table)
    if (
        plan.path is None
    ):  # a file on a Snowflake stage: fetched, then pre-checked and read like any file
        plan.path = fetch_staged(session, plan, staging_dir)
        plan.root = plan.path.parent
        plan.scratch = staging_dir / "transcoded"
        check_file(plan)
    log.info("reading %s", plan.path)
    wanted = plan.wanted if plan.fmt == "csv" else None
    items = (plan.wanted["items"], ITEMS) if plan.fmt == "jsonl" and plan.source is ORDERS else None
    readable, root = plan.readable if plan.fmt != "calls" else (plan.local_path, plan.root)
    plan.stats = load_raw_file(
        session,
        readable,
        table,
        plan.found_fmt,
        staging_dir,
        source_file=plan.name,
        columns=wanted,
        items=items,
        transcriber=audio.transcriber(plan.settings) if plan.fmt == "calls" else None,
        root=root,
        delimiter=plan.delimiter,
        names=plan.names,
    )
    if plan.transcoded is not None:  # the counts describe the file as received
        plan.stats.sha256, plan.stats.bytes = plan.transcoded.sha256, plan.transcoded.bytes
    raw = session.table(table)
    return raw, list(raw.columns)


def fetch_staged(session: Session, plan: SourcePlan, staging_dir: Path) -> Path:
    """GET a stage file (``@stage/path/file.csv``) into the staging folder; return the copy."""
    target = staging_dir / "stage_files" / plan.source.name
    target.mkdir(parents=True, exist_ok=True)
    for old in target.iterdir():
        old.unlink()
    session.file.get(plan.found_name, str(target))
    files = sorted(target.iterdir())
    if len(files) != 1:
        raise IngestError(
            f"{plan.name}: expected one file on the stage, found {len(files)}. Fix: point "
            f"{plan.source.setting} at a single file."
        )
    return files[0]


def load_table(session: Session, plan: SourcePlan, table: str) -> tuple[DataFrame, list[str]]:
    """RAW_<SOURCE>__NEW from a warehouse table or view: one row per row, the mapped columns as
    text.

    Columns are matched to the contract like a CSV header (case-insensitively); ``LINE_NO`` numbers
    the
    rows in the order of their mapped values, ``RECORD`` is the row's mapped values as JSON.

    Raises:
        IngestError: the table does not exist, or lacks a required column.
    """
    try:
        src = session.table(plan.found_name)
        names = src.columns
    except Exception as e:  # the connector's message names the object; nothing else to add
        raise IngestError(
            f"{plan.source.name}_table = {plan.name}: the table or view cannot be read "
            f"({type(e).__name__}). Fix: check the name and that this role may SELECT from it."
        ) from e
    by_name = {readers.normalise(c.strip('"')): c for c in names}
    found = {
        f: by_name[readers.normalise(col)]
        for f, col in plan.wanted.items()
        if readers.normalise(col) in by_name
    }
    header = [c.strip('"') for c in names]
    have = set(by_name)
    missing = missing_columns(plan, have)
    if missing:
        req = missing[0]
        want = " or ".join(f"'{plan.wanted[x]}'" for x in req.split("|"))
        raise IngestError(
            f"{plan.source.name}_table = {plan.name}: required column {want} not found. "
            "Columns: "
            f"{', '.join(repr(h) for h in header)}. Fix: "
            f"{fix_hint(plan.source, req.split('|')[0])}."
        )
    if lacks_quantity(plan, have):
        one_unit(plan, header, f"{plan.source.name}_table = {plan.name}")
    text = {f: F.col(c).cast("string") for f, c in found.items()}
    order = [text[f] for f in sorted(found)]
    record = F.to_json(
        F.object_construct_keep_null(
            *[x for f, c in sorted(found.items()) for x in (F.lit(c.strip('"')), F.col(c))]
        )
    )
    raw = src.select(
        F.lit(plan.name).alias("SOURCE_FILE"),
        F.row_number().over(Window.order_by(*order)).alias("LINE_NO"),
        record.alias("RECORD"),
        F.lit(None).cast("string").alias("READ_REASON"),
        F.lit(None).cast("string").alias("READ_FIELD"),
        *[v.alias(f.upper()) for f, v in text.items()],
    )
    wh.replace_table(raw, table)
    rows = wh.row_count(session, table)
    plan.stats = readers.FileStats(
        Path(plan.found_name),
        "table",
        Path(table),
        records=rows,
        columns={f: c.strip('"') for f, c in found.items()},
    )
    log.info("read %s rows from %s", rows, plan.name)
    t = session.table(table)
    return t, list(t.columns)


def _ok_or_null(value: Column, kind: str) -> Column:
    """``value`` on accepted rows, NULL of type ``kind`` on rejected ones."""
    return F.iff(
        F.col("REASON").is_null(),
        value,
        F.lit(None).cast(pt.TIMESTAMP_NTZ if kind == "timestamp" else kind),
    )


def _present(
    f: DataFrame, plan: SourcePlan, names: list[str], required: list[str]
) -> dict[str, bool]:
    """Which fields the file has: CSV columns in the header; JSON keys on at least one line."""
    if plan.fmt == "jsonl":
        found = ck.occurs(f, names)
        ck.require_somewhere(found, plan, required)
        return found
    return {n: n in plan.found_stats.columns for n in names}


# --------------------------------------------------------------------------- customers
def stage_customers(
    session: Session, raw: DataFrame, raw_columns: list[str], plan: SourcePlan
) -> str:
    """STAGE_CUSTOMERS: every customer row with typed columns and FIELD/REASON/VALUE (REASON null =
    accepted)."""
    names = list(CUSTOMERS.field_names)
    f = ck.materialise(ck.text_fields(raw, plan, names, raw_columns), "STAGE_CUSTOMERS_F")
    present = _present(f, plan, names, ["customer_id", "signup_date"])
    checked = ck.with_reason(
        ck.typed(f, ck.used_fields(CUSTOMERS, present), dates.resolve(f, plan), plan),
        ck.field_checks(plan, present),
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
    return wh.replace_table(ck.cross_checks(t, columns, rules), STAGE["customers"], temporary=True)


# --------------------------------------------------------------------------- orders
ORDER_FIELDS = [f.name for f in ORDERS.fields if f.level == "record"]
ITEM_FIELDS = [f.name for f in ORDERS.fields if f.level == "item"]


def _attributes(plan: SourcePlan) -> list[str]:
    """Staged fields of the customer attributes read from the order lines."""
    return [attribute_field(a) for a in plan.settings.get("attributes", [])]


def _order_rows(
    session: Session, raw: DataFrame, raw_columns: list[str], plan: SourcePlan
) -> DataFrame:
    """Orders as one row per order line; a JSON line without items (or unreadable) stays one row.

    JSON lines: the reader staged each element of ``items`` as its own row (:data:`ITEMS`, with its
    true position), so the lines are joined with their items instead of taking the parsed list apart
    in the warehouse (FLATTEN + GET carried the whole list, and the whole line, on every item row:
    memory grew with the square of the items of one order). Item rows carry the line's RECORD only
    when it is at most :data:`ITEM_RECORD_BYTES`, else the item's own JSON. ``_N_ITEMS`` is 1 on
    item
    rows, else the list size (0) or NULL (absent or not a list).
    """
    record_fields = ORDER_FIELDS + _attributes(plan)
    if plan.fmt != "jsonl":
        return ck.text_fields(raw, plan, record_fields + ITEM_FIELDS, raw_columns).select(
            "*", F.lit(None).cast("int").alias("ITEM_NO"), F.lit(1).alias("_N_ITEMS")
        )
    items = ck.json_get(F.col(ck.PARSED), plan.wanted["items"])
    fields = ck.text_fields(raw, plan, record_fields, raw_columns, keep_parsed=True)
    lines = fields.select(
        *[c for c in fields.columns if c != ck.PARSED], F.array_size(items).alias("_N_ITEMS")
    )
    order_cols = [ck.text_col(f) for f in record_fields if f != "items"]
    order_kinds = [ck.kind_col(f) for f in record_fields if f != "items"]
    small = F.iff(
        F.length(F.col("RECORD")) <= F.lit(ITEM_RECORD_BYTES),
        F.col("RECORD"),
        F.lit(None).cast("string"),
    )
    heads = lines.filter(F.col("_N_ITEMS") > 0).select(
        F.col("SOURCE_FILE").alias("_F"),
        F.col("LINE_NO").alias("_L"),
        small.alias("_RECORD"),
        *order_cols,
        *order_kinds,
    )
    # each item parsed once, not once per field and use (see ck.text_fields)
    elements = session.table(ITEMS).select("*", F.parse_json(F.col("ITEM")).alias(ck.PARSED))
    item = F.col(ck.PARSED)
    on = (F.col("_F") == F.col("SOURCE_FILE")) & (F.col("_L") == F.col("LINE_NO"))
    flat = heads.join(elements, on).select(
        F.col("_F").alias("SOURCE_FILE"),
        F.col("_L").alias("LINE_NO"),
        F.coalesce(F.col("_RECORD"), F.col("ITEM")).alias("RECORD"),
        F.lit(None).cast("string").alias("READ_REASON"),
        F.lit(None).cast("string").alias("READ_FIELD"),
        *[
            F.col(c)
            if c in order_cols
            else F.lit("[…]").alias(c)  # S_ITEMS: a list was there (not copied)
            for c in [ck.text_col(f) for f in record_fields]
        ],
        *[
            ck.clean_field(ck.json_get(item, plan.wanted[f]), f, plan).alias(ck.text_col(f))
            for f in ITEM_FIELDS
        ],
        *[
            F.col(k) if k in order_kinds else F.lit("[").alias(k)
            for k in [ck.kind_col(f) for f in record_fields]
        ],
        *[
            ck.json_kind(ck.json_get(item, plan.wanted[f])).alias(ck.kind_col(f))
            for f in ITEM_FIELDS
        ],
        F.col("ITEM_NO").cast("int").alias("ITEM_NO"),
        F.lit(1).alias("_N_ITEMS"),
    )
    bare = lines.filter(F.coalesce(F.col("_N_ITEMS"), F.lit(0)) == 0).select(
        *RAW_COLUMNS,
        *[ck.text_col(f) for f in record_fields],
        *[F.lit(None).cast("string").alias(ck.text_col(f)) for f in ITEM_FIELDS],
        *[ck.kind_col(f) for f in record_fields],
        *[F.lit(None).cast("string").alias(ck.kind_col(f)) for f in ITEM_FIELDS],
        F.lit(None).cast("int").alias("ITEM_NO"),
        "_N_ITEMS",
    )
    return flat.union_all(bare)


#: Order fields an export may write on one line of an order only (Shopify's and WooCommerce's
#: "one row per line item": the date and the e-mail on the order's first row, blank below it).
ORDER_LEVEL = ("ts", "customer_id")


def _fill_order_fields(f: DataFrame, plan: SourcePlan, present: dict[str, bool]) -> DataFrame:
    """CSV order lines with an order id: an empty order field (:data:`ORDER_LEVEL`) takes the value
    of the nearest line above with the same order id (else the first below). Lines whose order has
    the field nowhere keep it empty (rejected as missing, or a guest order); lines that disagree are
    left to the duplicate-order check.

    One aggregate query counts, per field, the empty lines of orders that have the value on another
    line; ``plan.filled`` records them (per column as the file names it). Only a file with such
    lines pays for the window functions; otherwise ``f`` is returned as it is.
    """
    cols = [x for x in ORDER_LEVEL if present.get(x)]
    if plan.fmt == "jsonl" or not present.get("order_id") or not cols:
        return f
    oid = F.col("S_ORDER_ID")
    lines = F.count(F.lit(1))
    per_order = (
        f.filter(oid.is_not_null())
        .group_by(oid)
        .agg(
            *[
                F.iff(
                    F.count(ck.text_col(x)) > F.lit(0), lines - F.count(ck.text_col(x)), F.lit(0)
                ).alias(f"G{i}")
                for i, x in enumerate(cols)
            ]
        )
    )
    row = per_order.select(*[F.sum(f"G{i}").alias(f"G{i}") for i in range(len(cols))]).collect()[0]
    fillable = {x: int(row[f"G{i}"] or 0) for i, x in enumerate(cols)}
    if not any(fillable.values()):
        return f
    plan.filled = {plan.column(x): n for x, n in fillable.items() if n}
    in_order = Window.partition_by(oid).order_by("SOURCE_FILE", "LINE_NO")
    above = in_order.rows_between(Window.UNBOUNDED_PRECEDING, Window.CURRENT_ROW)
    whole = in_order.rows_between(Window.UNBOUNDED_PRECEDING, Window.UNBOUNDED_FOLLOWING)
    filled = {}
    for x in cols:
        c = F.col(ck.text_col(x))
        value = F.coalesce(
            c,
            F.last_value(c, ignore_nulls=True).over(above),
            F.first_value(c, ignore_nulls=True).over(whole),
        )
        filled[ck.text_col(x)] = F.iff(oid.is_null(), c, value)
    return ck.materialise(
        f.select(*[filled.get(c, F.col(c)).alias(c) for c in f.columns]),
        STAGE["orders"] + FILLED,
    )


def _items_checks(plan: SourcePlan) -> list[ck.Check]:
    name = plan.column("items")
    return [
        (F.col("_N_ITEMS").is_null() & F.col("S_ITEMS").is_null(), name, Reason.MISSING, None),
        (F.col("_N_ITEMS").is_null(), name, Reason.NOT_A_LIST, "S_ITEMS"),
        (F.col("_N_ITEMS") == 0, name, Reason.NO_ITEMS, "S_ITEMS"),
    ]


def is_guest(customer_id: Column, guest_ids: tuple[str, ...]) -> Column:
    """Whether a (trimmed) customer id is empty or a placeholder: a guest order, not a customer."""
    guest = customer_id.is_null()
    if guest_ids:
        guest = guest | F.lower(customer_id).isin([F.lit(g) for g in guest_ids])
    return guest


def _is_return(plan: SourcePlan, present: dict[str, bool]) -> Column:
    """Return or cancellation line: a negative quantity, a mapped cancelled flag, or the order-id
    prefix."""
    ret = F.coalesce(F.col("N_QUANTITY") < F.lit(0), F.lit(False))
    if present.get("cancelled"):
        flag = F.lower(F.col("S_CANCELLED")).isin([F.lit(v) for v in contract.CANCELLED_VALUES])
        ret = ret | F.coalesce(flag, F.lit(False))
    prefix = plan.settings.get("return_order_prefix")
    if prefix:
        starts = F.substring(F.col("S_ORDER_ID"), 1, len(prefix)) == F.lit(prefix)
        ret = ret | F.coalesce(starts, F.lit(False))
    return ret


def _exclusion(plan: SourcePlan) -> tuple[Column, Column]:
    """(reason, field) of the exclusion of an otherwise valid order line (NULL: not excluded)."""
    ok = F.col("REASON").is_null()
    guest = ok & is_guest(F.col("S_CUSTOMER_ID"), plan.settings.get("guest_ids", ()))
    dropped = ok & F.col("IS_RETURN") & F.lit(plan.settings.get("returns") == "exclude")
    reason = F.when(guest, F.lit(str(Excluded.GUEST))).when(dropped, F.lit(str(Excluded.RETURN)))
    fld = F.when(guest, F.lit(plan.column("customer_id"))).when(
        dropped, F.lit(plan.column("quantity"))
    )
    return reason.otherwise(F.lit(None).cast("string")), fld.otherwise(F.lit(None).cast("string"))


#: STAGE_ORDER_LINES' columns after the outcome, in order.
ORDER_STAGE = [
    "ORDER_ID",
    "CUSTOMER_ID",
    "TS",
    "COUPON",
    "SHIP_METHOD",
    "SHIP_COST",
    "PRODUCT",
    "QUANTITY",
    "UNIT_PRICE",
    "IS_RETURN",
]


def stage_orders(
    session: Session,
    raw: DataFrame,
    raw_columns: list[str],
    plan: SourcePlan,
    customers: DataFrame | None,
) -> str:
    """STAGE_ORDER_LINES: every order line with typed columns and FIELD/REASON/VALUE.

    Return lines (negative quantity, cancelled flag, order-id prefix) keep a negative QUANTITY and
    IS_RETURN; with ``returns: reject`` they are rejected, with ``exclude`` excluded. Lines of guest
    orders (placeholder customer ids) that pass every check are excluded, not rejected.
    """
    f = ck.materialise(_order_rows(session, raw, raw_columns, plan), "STAGE_ORDER_LINES_F")
    jsonl = plan.fmt == "jsonl"
    present = _present(
        f,
        plan,
        ORDER_FIELDS + ITEM_FIELDS + _attributes(plan),
        ["order_id", "customer_id", "ts", "items", *_attributes(plan)],
    )
    if not present["quantity"]:  # one unit per line (CSV and tables: checked in the plan phase)
        if plan.fmt == "jsonl":
            ck.require_somewhere(present, plan, ["quantity"] if quantity_mapped(plan) else [])
            one_unit(plan, None, str(plan.path))
        f = f.select(*[F.lit("1").alias(c) if c == "S_QUANTITY" else F.col(c) for c in f.columns])
    f = _fill_order_fields(f, plan, present)
    used = ck.used_fields(ORDERS, present)
    typed = ck.typed(f, used, dates.resolve(f, plan), plan)
    typed = typed.select("*", _is_return(plan, present).alias("IS_RETURN"))
    special = {"items": _items_checks(plan)} if jsonl else {}
    skip = (
        ("customer_id",) if jsonl else ("customer_id", "items")
    )  # an empty customer id: a guest order
    checks = ck.field_checks(plan, present, special, skip, is_return=F.col("IS_RETURN"))
    if plan.settings.get("returns") == "reject":
        checks.append(
            (F.col("IS_RETURN"), plan.column("quantity"), Reason.RETURN_REJECTED, "S_QUANTITY")
        )
    checked = ck.with_reason(typed, checks)
    has_id = jsonl or present["order_id"]
    qty = F.col("N_QUANTITY")
    unit = (
        F.col("N_UNIT_PRICE")
        if any(x.name == "unit_price" for x in used)
        else F.abs(F.col("N_AMOUNT")) / F.abs(qty)
    )
    who = F.coalesce(F.col("S_CUSTOMER_ID"), F.lit(""))
    order_id = F.col("S_ORDER_ID") if has_id else F.concat(who, F.lit("@"), F.col("S_TS"))
    product = F.lower(F.col("S_PRODUCT")) if present["product"] else F.lit(contract.ALL_PRODUCTS)
    signed = F.iff(F.col("IS_RETURN"), -F.abs(qty), qty)
    why, fld = _exclusion(plan)
    head = ["SOURCE_FILE", "LINE_NO", "ITEM_NO", "RECORD"]
    t = ck.materialise(
        checked.select(
            *head,
            F.coalesce(F.col("FIELD"), fld).alias("FIELD"),
            F.coalesce(F.col("REASON"), why).alias("REASON"),
            F.iff(
                why.is_not_null() & (why == F.lit(str(Excluded.RETURN))),
                F.col("S_QUANTITY"),
                F.col("VALUE"),
            ).alias("VALUE"),
            "S_LINE_ID",
            order_id.alias("ORDER_ID"),
            F.col("S_CUSTOMER_ID").alias("CUSTOMER_ID"),
            _ok_or_null(F.col("T_TS"), "timestamp").alias("TS"),
            F.col("S_COUPON").alias("COUPON"),
            F.col("S_SHIP_METHOD").alias("SHIP_METHOD"),
            _ok_or_null(F.col("N_SHIP_COST"), "double").alias("SHIP_COST"),
            product.alias("PRODUCT"),
            _ok_or_null(signed, "double").cast("int").alias("QUANTITY"),
            _ok_or_null(unit, "double").alias("UNIT_PRICE"),
            _ok_or_null(F.col("IS_RETURN"), "boolean").alias("IS_RETURN"),
            *[F.col(ck.text_col(a)).alias(a.upper()) for a in _attributes(plan)],
        ),
        "STAGE_ORDER_LINES_C",
    )
    order, c = ["LINE_NO", "ITEM_NO"], plan.column
    rules = []
    if present["line_id"]:
        rules.append(
            (
                # per order when there are orders: Olist's order_item_id and ERPs' line numbers
                # count 1, 2, … (or 10, 20, …) again in every order
                F.col("S_LINE_ID").is_not_null()
                & ck.not_first(["ORDER_ID", "S_LINE_ID"] if has_id else ["S_LINE_ID"], order),
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
    return wh.replace_table(final, STAGE["orders"], temporary=True)


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
    present = _present(f, plan, names, ["ts"])
    special: dict[str, list[ck.Check]] = {}
    if not present["customer_id"] and (
        plan.by_order or plan.fmt == "jsonl" and present["order_id"]
    ):
        f, special = _customer_of_order(session, f, plan)
        present["customer_id"] = True
    else:
        ck.require_somewhere(present, plan, ["customer_id"])
    checked = ck.with_reason(
        ck.typed(f, ck.used_fields(REVIEWS, present), dates.resolve(f, plan), plan),
        ck.field_checks(plan, present, special, ignore=() if plan.by_order else ("order_id",)),
    )
    t = ck.materialise(
        checked.select(
            *STAGE_HEAD,
            "S_TS",
            "S_RATING",
            "S_ORDER_ID",
            F.col("S_CUSTOMER_ID").alias("CUSTOMER_ID"),
            _ok_or_null(F.col("T_TS"), "timestamp").alias("TS"),
            _ok_or_null(F.col("N_RATING"), "double").cast("int").alias("RATING"),
            F.col("S_TEXT").alias("TEXT"),
            F.lit("review").alias("KIND"),
            F.lit(None).cast("string").alias("RECOGNIZER"),
            F.lit(None).cast("double").alias("CONFIDENCE"),
        ),
        "STAGE_REVIEWS_C",
    )
    same = ["CUSTOMER_ID", "S_TS", "S_RATING", "TEXT"] + (["S_ORDER_ID"] if plan.by_order else [])
    rules = [
        (  # read through orders: reviews of two orders alike are two reviews
            ck.not_first(same, ["LINE_NO"]),
            "line",
            Reason.DUPLICATE_LINE,
        )
    ]
    columns = [x for x in t.columns if not x.startswith("S_")]
    return wh.replace_table(
        ck.cross_checks(t, columns, rules, customers, plan.column("customer_id")),
        STAGE["reviews"],
        temporary=True,
    )


def _customer_of_order(
    session: Session, f: DataFrame, plan: SourcePlan
) -> tuple[DataFrame, dict[str, list[ck.Check]]]:
    """Reviews without customer_id (Olist's reviews name the order): each review takes the customer
    of its order among the accepted order lines (STAGE_ORDER_LINES, staged before the reviews);
    the checks of customer_id become: order_id empty (missing), order not there (unknown)."""
    plan.by_order = True
    orders = (
        session.table(STAGE["orders"])
        .filter(F.col("REASON").is_null())
        .group_by(F.col("ORDER_ID"))
        .agg(F.min(F.col("CUSTOMER_ID")).alias("_CUSTOMER"))
    )
    joined = f.join(orders, F.col("S_ORDER_ID") == F.col("ORDER_ID"), "left")
    f = ck.materialise(
        joined.select(
            *[F.col("_CUSTOMER").alias(c) if c == "S_CUSTOMER_ID" else F.col(c) for c in f.columns]
        ),
        "STAGE_REVIEWS_O",
    )
    name = plan.column("order_id")
    return f, {
        "customer_id": [
            (F.col("S_ORDER_ID").is_null(), name, Reason.MISSING, None),
            (F.col("S_CUSTOMER_ID").is_null(), name, Reason.UNKNOWN_ORDER, None),
        ]
    }


def stage_calls(
    session: Session,
    raw: DataFrame,
    raw_columns: list[str],
    plan: SourcePlan,
    customers: DataFrame | None,
) -> str:
    """STAGE_CALLS: every transcript as a review row (KIND 'call', RATING null) with
    FIELD/REASON/VALUE; a transcribed recording also has RECOGNIZER and CONFIDENCE."""
    names = list(contract.CALLS.field_names)
    # audio calls (customer_analytics.audio): the recognizer and its confidence ride along
    f = ck.text_fields(raw, plan, names + ["recognizer", "confidence"], raw_columns)
    present = {n: True for n in names}
    checked = ck.with_reason(
        ck.typed(f, ck.used_fields(contract.CALLS, present), dates.resolve(f, plan)),
        ck.field_checks(plan, present),
    )
    t = ck.materialise(
        checked.select(
            *STAGE_HEAD,
            F.col("S_CUSTOMER_ID").alias("CUSTOMER_ID"),
            _ok_or_null(F.col("T_TS"), "timestamp").alias("TS"),
            F.lit(None).cast("int").alias("RATING"),
            F.col("S_TEXT").alias("TEXT"),
            F.lit("call").alias("KIND"),
            F.col("S_RECOGNIZER").alias("RECOGNIZER"),
            F.col("S_CONFIDENCE").cast("double").alias("CONFIDENCE"),
        ),
        "STAGE_CALLS_C",
    )
    return wh.replace_table(
        ck.cross_checks(t, t.columns, [], customers, "customer_id"), STAGE["calls"], temporary=True
    )


# --------------------------------------------------------------------------- accounting
def is_excluded(reason: Column) -> Column:
    """Whether a row's REASON is an exclusion (a valid row kept out on purpose), not a rejection."""
    return reason.isin([F.lit(str(r)) for r in contract.EXCLUSIONS])


def rejected_rows(t: DataFrame) -> DataFrame:
    """The rows of a STAGE_ table that were rejected (exclusions are not rejections)."""
    return t.filter(F.col("REASON").is_not_null() & ~is_excluded(F.col("REASON")))


def account(
    session: Session, stage: str, plan: SourcePlan, unit: str, fraction: float
) -> SourceCounts:
    """Counts of a staged source; asserts that every record read is in it and that
    read = accepted + rejected + excluded + sampled out."""
    t = session.table(stage)
    why = F.col("REASON")
    sampled = why.is_null() & ~in_sample(F.col("CUSTOMER_ID"), fraction)
    row = t.agg(
        F.count(F.lit(1)).alias("READ"),
        F.sum(F.iff(why.is_null() & ~sampled, 1, 0)).alias("ACCEPTED"),
        F.sum(F.iff(why.is_not_null() & ~is_excluded(why), 1, 0)).alias("REJECTED"),
        F.sum(F.iff(why.is_not_null() & is_excluded(why), 1, 0)).alias("EXCLUDED"),
        F.sum(F.iff(sampled, 1, 0)).alias("OUT"),
    ).collect()[0]
    read, acc, rej, exc, out = (
        int(row[k] or 0) for k in ("READ", "ACCEPTED", "REJECTED", "EXCLUDED", "OUT")
    )
    records = t.select("SOURCE_FILE", "LINE_NO").distinct().count()
    by_reason = {
        r["REASON"]: int(r["N"])
        for r in t.filter(why.is_not_null())
        .group_by("REASON")
        .agg(F.count(F.lit(1)).alias("N"))
        .collect()
    }
    reasons = {k: v for k, v in by_reason.items() if k not in contract.EXCLUSIONS}
    st = plan.found_stats
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
        excluded=exc,
        excluded_reasons={k: v for k, v in by_reason.items() if k in contract.EXCLUSIONS},
        layouts=[dataclasses.asdict(c) for c in plan.layouts.values()],
        skipped=dict(plan.skipped),
        filled=dict(plan.filled),
        one_unit=plan.one_unit,
        by_order=plan.by_order,
        decimal_comma=list(plan.decimal_comma),
        thousands=list(plan.thousands),
        parentheses=list(plan.parentheses),
        currency_signs=dict(plan.currency_signs),
        encoding=plan.encoding_note
        or ({"transcripts": dict(st.encodings), "how": "detected"} if st.encodings else {}),
        workbook=dataclasses.asdict(plan.workbook) if plan.workbook is not None else {},
    )
    if records != st.records or read != acc + rej + exc + out or sum(reasons.values()) != rej:
        raise IngestError(
            f"{plan.path}: row accounting failed ({st.records:,} records read, {records:,} staged; "
            f"{read:,} rows vs {acc:,} accepted + {rej:,} rejected + {exc:,} excluded + {out:,} "
            "sampled "
            "out). This is a bug: nothing was replaced."
        )
    return counts


def details(t: DataFrame, plan: SourcePlan) -> list[dict]:
    """Rows per field and reason, with up to three example lines (first in file order)."""
    bad = rejected_rows(t)
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
    position = {n: k for k, n in enumerate(plan.stats.names if plan.stats else [], start=1)}
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
                "examples": [_example(r, position, plan) for r in rows],
            }
        )
    return out


def _example(r, position: dict[str, int], plan: SourcePlan) -> dict:
    """One example row: where it is (``where``, for reports) and its value.

    A transcript is named by its position in the calls folder (``file 17 of calls/``, in name
    order), never by its name: file names of transcripts may hold e-mail addresses or names.
    """
    item = None if r["ITEM_NO"] is None else int(r["ITEM_NO"])
    if plan.fmt == "calls":
        k = position.get(r["SOURCE_FILE"])
        where = f"file {k} of {plan.name}/ in name order" if k else f"a file of {plan.name}/"
        file = f"{plan.name}/#{k}" if k else plan.name
    else:
        where = f"line {int(r['LINE_NO'])}" + (f" item {item}" if item is not None else "")
        file = r["SOURCE_FILE"]
    return {
        "file": file,
        "line": int(r["LINE_NO"]),
        "item": item,
        "value": r["VALUE"],
        "where": where,
    }


#: Above this share of rejected rows, the cause is a mapping or a layout, not a few bad rows.
WHOLESALE = 0.5


class ThresholdError(IngestError):
    """More than ``max_reject_share`` of a source's rows were rejected (the counts are in
    ``counts``)."""

    def __init__(self, message: str, counts: SourceCounts):
        super().__init__(message)
        self.counts = counts


def _expected(d: dict, plan: SourcePlan) -> str:
    """The layout or rule a rejected value broke, for the threshold message."""
    layout = plan.layouts.get(d["contract_field"])
    if layout is not None and d["reason"] in (Reason.BAD_DATE, Reason.DATE_RANGE):
        how = {"declared": "declared", "detected": "detected", "default": "assumed"}[layout.how]
        return f"expected the {how} layout {layout.label} ({layout.expected()})"
    return "rule: " + contract.REASONS.get(d["reason"], d["reason"])


def _values(d: dict) -> str:
    """Up to three offending values, only of fields that are not personal data."""
    if d["contract_field"] not in SHOWABLE_FIELDS:
        return ""
    values = list(dict.fromkeys(e["value"] for e in d["examples"] if e["value"] is not None))[:3]
    return (
        "; values " + ", ".join(repr(v if len(v) <= 30 else v[:29] + "…") for v in values)
        if values
        else ""
    )


def _advice(counts: SourceCounts, plan: SourcePlan, top: dict) -> str:
    """What to do: above :data:`WHOLESALE` a mapping or layout problem, else fix the rows or accept
    them."""
    src = plan.source.name
    if (
        top["reason"] in (Reason.BAD_DATE, Reason.DATE_RANGE)
        and top["contract_field"] in plan.layouts
    ):
        fld = top["contract_field"]
        fix = (
            f"declare the layout of '{top['field']}': date_formats: "
            f"{{{src}: {{{fld}: <shortcut or Snowflake "
            f"format>}}}} (shortcuts {', '.join(contract.DATE_LAYOUTS)})"
        )
        if plan.layouts[fld].how == "declared":
            fix = (
                f"the declared layout does not fit '{top['field']}': correct "
                f"date_formats.{src}.{fld}, or "
                "remove it to have the layout detected"
            )
    elif top["reason"] == Reason.MISSING or top["field"] == "line":
        fix = (
            f"check that columns: {{{src}: …}} names the right column for each field, and the "
            "file's format"
        )
    else:
        fix = f"check the column mapped to '{top['contract_field']}' (columns: {{{src}: …}})"
    if counts.reject_share > WHOLESALE:
        return (
            f"{counts.reject_share:.0%} rejected is not a few bad rows but a mapping or layout "
            f"problem: {fix}. "
            "Raising max_reject_share would only hide it"
        )
    return (
        f"correct the file (see docs/data_contract.md), or {fix}, or raise max_reject_share if "
        "these "
        "rejections are expected"
    )


def check_threshold(counts: SourceCounts, plan: SourcePlan, limit: float) -> None:
    """Stop when more than ``limit`` of the source's rows were rejected.

    The message names the most common reasons with an example line, the expected layout or rule,
    up to three offending values of non-personal fields, and advice that fits the share rejected.

    Raises:
        ThresholdError: the share is above ``limit``.
    """
    if counts.read == 0 or counts.reject_share <= limit:
        return
    top = "; ".join(
        f"'{d['reason']}' in '{d['field']}' ({d['rows']:,} rows, e.g. "
        f"{d['examples'][0]['where']}): "
        f"{_expected(d, plan)}{_values(d)}"
        for d in counts.details[:3]
    )
    raise ThresholdError(
        f"{plan.path}: {counts.rejected:,} of {counts.read:,} {counts.unit} rejected "
        f"({counts.reject_share:.1%}), "
        f"more than max_reject_share = {limit:.0%}. Most common: {top}. Fix: "
        f"{_advice(counts, plan, counts.details[0])}."
        " Nothing was replaced: the previous tables are unchanged.",
        counts,
    )
