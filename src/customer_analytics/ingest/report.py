"""What the 01_ingest report shows: accounting, reasons with examples, missing sources, a summary.

Aggregates only: values of personal fields (ids, names, e-mails, free text) are never shown.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import snowflake.snowpark.functions as F
from snowflake.snowpark import Session

from customer_analytics import contract, readers
from customer_analytics import warehouse as wh
from customer_analytics.config import Params
from customer_analytics.contract import Excluded
from customer_analytics.ingest import product_types
from customer_analytics.ingest.common import (
    RAW,
    SHOWABLE_FIELDS,
    IngestError,
    SourceCounts,
    public_text,
)
from customer_analytics.ingest.plan import drop_copies, plan_source


def counts_frame(counts: list[SourceCounts]) -> pd.DataFrame:
    """Row accounting per source for the report (read = accepted + rejected + excluded + sampled
    out)."""
    rows = [
        {
            "source": c.source,
            "file": c.file or "—",
            "status": c.status,
            "unit": c.unit,
            "read": c.read,
            "accepted": c.accepted,
            "rejected": c.rejected,
            "excluded": c.excluded,
            "sampled out": c.sampled_out,
            "rejected %": round(100 * c.reject_share, 2),
            "balanced": c.read == c.accepted + c.rejected + c.excluded + c.sampled_out,
        }
        for c in counts
    ]
    columns = [
        "source",
        "file",
        "status",
        "unit",
        "read",
        "accepted",
        "rejected",
        "excluded",
        "sampled out",
        "rejected %",
        "balanced",
    ]
    return pd.DataFrame(rows, columns=columns).set_index("source")


def _example(e: dict, show_value: bool) -> str:
    where = e.get("where") or (
        f"line {e['line']}" + (f" item {e['item']}" if e["item"] is not None else "")
    )
    value = e["value"] if e["value"] is None or len(e["value"]) <= 30 else e["value"][:29] + "…"
    return where + (f" ({value!r})" if show_value and value is not None else "")


def reasons_frame(counts: list[SourceCounts]) -> pd.DataFrame:
    """Rejected rows per source, field and reason, with the first examples (values only of
    non-personal fields)."""
    rows = [
        {
            "source": c.source,
            "field": d["field"],
            "reason": d["reason"],
            "rows": d["rows"],
            "examples": "; ".join(
                _example(e, d["contract_field"] in SHOWABLE_FIELDS) for e in d["examples"]
            ),
        }
        for c in counts
        for d in c.details
    ]
    return pd.DataFrame(rows, columns=["source", "field", "reason", "rows", "examples"]).set_index(
        ["source", "field", "reason"]
    )


def sources_frame(params: Params) -> pd.DataFrame:
    """The plan as a table: per source, where it is read from (file, stage file or table), its
    format and
    size, or why it is absent or unusable (the plan phase of :func:`run`, which is where a stop
    comes from)."""
    rows: list[dict[str, object]] = []
    for src in contract.SOURCES:
        try:
            p = plan_source(src, params, listing=True)
        except IngestError as e:
            problem = public_text(str(e), params.data_dir)
            rows.append(
                {
                    "source": src.name,
                    "required": "yes" if src.required else "no",
                    "file": "—",
                    "status": "unusable: " + problem.split(". Fix:")[0],
                    "format": "—",
                    "files": 0,
                    "MB": None,
                }
            )
            continue
        drop_copies([p])  # a UTF-8 copy made to check the file: the run makes its own
        local = p.present and p.path is not None
        size: int | None = None
        if local:
            size = (
                sum(f.lstat().st_size for f in readers.call_files(p.local_path))
                if p.fmt == "calls"
                else p.local_path.stat().st_size
            )
        n_files = len(readers.call_files(p.local_path)) if p.fmt == "calls" and local else None
        status = {"loaded": "found", "missing": "missing", "disabled": "disabled"}[p.status]
        if p.fmt == "table":
            status = "table in the warehouse"
        elif p.present and p.path is None:
            status = "file on a stage"
        rows.append(
            {
                "source": src.name,
                "required": "yes" if src.required else "no",
                "file": p.name or "—",
                "status": status,
                "format": (
                    f"workbook ({p.local_path.suffix.lstrip('.').lower()})"
                    if p.path is not None and p.path.suffix.lower() in contract.WORKBOOK_SUFFIXES
                    else (p.fmt or "—")
                    + (f" ({p.transcoded.encoding})" if p.transcoded is not None else "")
                ),
                "files": n_files or (1 if local else 0),
                "MB": None if size is None else round(size / 2**20, 2),
            }
        )
    return pd.DataFrame(rows).set_index("source")


def source_paths(params: Params) -> dict[str, Path | None]:
    """Where each source is expected (None: disabled)."""
    return {
        s.name: (params.data_dir / getattr(params, s.setting))
        if getattr(params, s.setting)
        else None
        for s in contract.SOURCES
    }


def table_counts(session: Session) -> pd.DataFrame:
    """Row counts of the RAW_, CLEAN_, REJECTED_ and EXCLUDED_ tables and of PRODUCT_TYPES."""
    names = [
        *RAW.values(),
        "CLEAN_CUSTOMERS",
        "CLEAN_ORDERS",
        "CLEAN_ORDER_LINES",
        "CLEAN_REVIEWS",
        "REJECTED_CUSTOMERS",
        "REJECTED_ORDER_LINES",
        "REJECTED_REVIEWS",
        "EXCLUDED_ORDER_LINES",
        "PRODUCT_TYPES",
    ]
    names = [n for n in names if wh.table_exists(session, n)]
    return pd.DataFrame({"rows": [wh.row_count(session, n) for n in names]}, index=names)


# --------------------------------------------------------------------------- returns, guests,
# placeholders
def _one(df) -> dict:
    return df.collect()[0].as_dict()


def returns_summary(session: Session) -> dict:
    """Return lines in CLEAN_ORDER_LINES (and those excluded by ``returns: exclude``), and the
    return rate.

    ``rate`` is the value returned over the value sold (gross purchases); ``net`` = sold - returned.
    """
    lines = session.table("CLEAN_ORDER_LINES")
    amount = F.col("QUANTITY") * F.col("UNIT_PRICE")
    ret = (
        F.coalesce(F.col("IS_RETURN"), F.lit(False))
        if "IS_RETURN" in lines.columns
        else F.lit(False)
    )
    row = _one(
        lines.agg(
            F.count(F.lit(1)).alias("LINES"),
            F.sum(F.iff(ret, 1, 0)).alias("RETURN_LINES"),
            F.sum(F.iff(ret, F.lit(0.0), amount)).alias("SOLD"),
            F.sum(F.iff(ret, -amount, F.lit(0.0))).alias("RETURNED"),
        )
    )
    sold, returned = float(row["SOLD"] or 0), float(row["RETURNED"] or 0)
    excluded = 0
    if wh.table_exists(session, "EXCLUDED_ORDER_LINES"):
        excluded = (
            session.table("EXCLUDED_ORDER_LINES")
            .filter(F.col("REASON") == F.lit(Excluded.RETURN))
            .count()
        )
    return {
        "lines": int(row["LINES"] or 0),
        "return_lines": int(row["RETURN_LINES"] or 0),
        "excluded_return_lines": excluded,
        "sold": sold,
        "returned": returned,
        "net": sold - returned,
        "rate": returned / sold if sold else 0.0,
    }


def guest_orders(session: Session) -> dict:
    """Guest orders (placeholder customer ids), kept in EXCLUDED_ORDER_LINES: lines, orders, revenue
    and
    its share of all revenue (guest + customers'), for the 01 and 02 reports."""
    empty = {"lines": 0, "orders": 0, "revenue": 0.0, "share": 0.0}
    if not wh.table_exists(session, "EXCLUDED_ORDER_LINES"):
        return empty
    g = session.table("EXCLUDED_ORDER_LINES").filter(F.col("REASON") == F.lit(Excluded.GUEST))
    row = _one(
        g.agg(
            F.count(F.lit(1)).alias("LINES"),
            F.count_distinct("ORDER_ID").alias("ORDERS"),
            F.sum(F.col("QUANTITY") * F.col("UNIT_PRICE")).alias("REVENUE"),
        )
    )
    if not row["LINES"]:
        return empty
    revenue = float(row["REVENUE"] or 0)
    clean = float(
        _one(session.table("CLEAN_ORDERS").agg(F.sum("ORDER_TOTAL").alias("R")))["R"] or 0
    )
    return {
        "lines": int(row["LINES"]),
        "orders": int(row["ORDERS"]),
        "revenue": revenue,
        "share": revenue / (revenue + clean) if revenue + clean else 0.0,
    }


def guest_monthly(session: Session) -> pd.DataFrame:
    """Guest-order revenue and orders per calendar month (for the EDA's revenue chart; empty without
    any)."""
    if not wh.table_exists(session, "EXCLUDED_ORDER_LINES"):
        return pd.DataFrame(columns=["guest_orders", "guest_revenue"])
    g = session.table("EXCLUDED_ORDER_LINES").filter(F.col("REASON") == F.lit(Excluded.GUEST))
    month = F.date_trunc("month", F.col("TS")).alias("MONTH")
    df = g.group_by(month).agg(
        F.count_distinct("ORDER_ID").alias("GUEST_ORDERS"),
        F.sum(F.col("QUANTITY") * F.col("UNIT_PRICE")).alias("GUEST_REVENUE"),
    )
    out = wh.to_pandas(df.sort("MONTH"), "ingest:guest_monthly")
    out.columns = [c.lower() for c in out.columns]
    return out.set_index("month")


def shown_id(customer_id: str) -> str:
    """A customer id as a report may show it: verbatim only when it looks like a placeholder, not a
    person (:func:`looks_like_placeholder`: ``(blank)``, ``0000``, ``Cash customer``, ``WALKIN``);
    otherwise masked (``1***0``, ``a**************m``): ids are personal data, and real exports use
    e-mail addresses and names as ids."""
    text = str(customer_id)
    if looks_like_placeholder(text):
        return text
    return text[0] + "*" * max(1, len(text) - 2) + text[-1] if len(text) > 2 else "*" * len(text)


#: Words (lower-case, whole) that make an id a placeholder rather than a person's: the default
#: guest ids' words of two letters or more, and what shops' tills and exports use for "no
#: customer".
PLACEHOLDER_WORDS = frozenset(
    {w for g in contract.DEFAULT_GUEST_IDS for w in re.findall(r"[a-z]{2,}", g)}
    | {
        "anon",
        "cash",
        "default",
        "dummy",
        "empty",
        "laufkunde",
        "missing",
        "nobody",
        "placeholder",
        "pos",
        "store",
        "test",
        "unassigned",
        "undefined",
        "unspecified",
        "walk",
        "walkin",
    }
)
#: Words a placeholder may carry beside one of :data:`PLACEHOLDER_WORDS` (``Cash customer``,
#: ``Walk-in``), never alone (``Customer``... is an id like any other).
FILLER_WORDS = frozenset({"customer", "kunde", "in", "sale", "the"})


def looks_like_placeholder(text: str) -> bool:
    """Whether a customer id reads as a placeholder: one character repeated (``0000``), no letter
    or digit (``-``), or, without any digit, only placeholder words (``(blank)``, ``Cash customer``,
    ``Walk-in``). Never an e-mail address; an id with digits (``17850``, ``Customer 4711``) or any
    other word (a name) is not one."""
    if "@" in text:
        return False
    if len(set(text)) == 1 or not any(ch.isalnum() for ch in text):
        return True
    if text.strip().lower() in contract.DEFAULT_GUEST_IDS:  # N/A, #N/A, nan, ...
        return True
    if any(ch.isdigit() for ch in text):
        return False
    words = set(re.findall(r"[^\W\d_]+", text.lower()))
    return bool(words & PLACEHOLDER_WORDS) and words <= PLACEHOLDER_WORDS | FILLER_WORDS


#: A likely placeholder holds more than this many times an average customer's share (and >
#: max_share).
SUSPECT_FACTOR = 25.0


def suspect_customers(session: Session, max_share: float = contract.SUSPECT_SHARE) -> pd.DataFrame:
    """Customers holding an implausible share of the orders or of the spend: likely placeholders.

    A customer is named when its share exceeds ``max_share`` and :data:`SUSPECT_FACTOR` times an
    average customer's share (so a small shop's best customers are not flagged for being few).
    Computed in the warehouse;
    only the flagged customers (at most a few hundred) come back, with :func:`shown_id`.
    """
    orders = session.table("CLEAN_ORDERS")
    buy = ~F.col("IS_RETURN") if "IS_RETURN" in orders.columns else F.lit(True)
    per = orders.group_by("CUSTOMER_ID").agg(
        F.sum(F.iff(buy, 1, 0)).alias("ORDERS"), F.sum("ORDER_TOTAL").alias("SPEND")
    )
    tot = _one(
        per.agg(F.count(F.lit(1)).alias("N"), F.sum("ORDERS").alias("O"), F.sum("SPEND").alias("S"))
    )
    n, o, s = int(tot["N"] or 0), float(tot["O"] or 0), float(tot["S"] or 0)
    columns = ["customer", "orders", "order share", "spend", "spend share"]
    if not n or o <= 0:
        return pd.DataFrame(columns=columns).set_index("customer")
    limit = max(max_share, SUSPECT_FACTOR / n)
    flagged = per.filter(
        (F.col("ORDERS") > F.lit(limit * o)) | ((F.col("SPEND") > F.lit(limit * s)) & F.lit(s > 0))
    )
    rows = wh.to_pandas(flagged.sort(F.col("ORDERS").desc()).limit(500), "ingest:suspects")
    out = pd.DataFrame(
        {
            "customer": [shown_id(c) for c in rows["CUSTOMER_ID"]],
            "orders": rows["ORDERS"].astype(int),
            "order share": rows["ORDERS"] / o,
            "spend": rows["SPEND"].astype(float),
            "spend share": rows["SPEND"] / s if s > 0 else 0.0,
        },
        columns=columns,
    )
    return out.set_index("customer")


# --------------------------------------------------------------------------- report sections
def product_types_table(session: Session, result: list[SourceCounts]) -> pd.DataFrame:
    """The product types whose key differs from their name, or that group others."""
    if getattr(result, "ok", True) is False:
        return pd.DataFrame()
    frame = product_types.frame(session)
    return frame[frame["note"] != ""]
