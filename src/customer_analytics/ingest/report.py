"""What the 01_ingest report shows: accounting, reasons with examples, missing sources, a summary.

Aggregates only: values of personal fields (ids, names, e-mails, free text) are never shown.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import snowflake.snowpark.functions as F
from snowflake.snowpark import Session

from customer_analytics import contract, readers
from customer_analytics import warehouse as wh
from customer_analytics.config import Params
from customer_analytics.contract import Excluded
from customer_analytics.ingest import dates, product_types
from customer_analytics.ingest.common import (
    RAW,
    SHOWABLE_FIELDS,
    IngestError,
    SourceCounts,
    public_text,
)
from customer_analytics.ingest.plan import plan_source
from customer_analytics.ingest.runner import IngestResult


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
    columns = ["source", "file", "status", "unit", "read", "accepted", "rejected", "excluded",
               "sampled out", "rejected %", "balanced"]
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


def rejections(counts: list[SourceCounts]):
    """For the report: :func:`reasons_frame`, or a Markdown note when nothing was rejected."""
    from IPython.display import Markdown

    if not any(c.rejected for c in counts):
        return Markdown("No row was rejected.")
    return reasons_frame(counts).style  # a Styler: long example lists are not cut at 50 characters


def missing_note(counts: list[SourceCounts]) -> str:
    """Markdown: which optional sources were missing and what was used instead ('' when none)."""
    notes = []
    for c in counts:
        if c.status == "derived":
            notes.append(
                f"- **customers**: no file ({c.file or 'disabled'}); {c.derived:,} customers were "
                "derived "
                "from the orders (sign-up = first order; country and channel "
                f"'{contract.UNKNOWN}')."
            )
        elif c.status in ("missing", "disabled"):
            what = "no review rows" if c.source == "reviews" else "no support-call rows"
            notes.append(
                f"- **{c.source}**: no {'file' if c.source != 'calls' else 'transcripts'} "
                f"({c.file or 'disabled'}); {what}."
            )
        if c.skipped:
            notes.append(f"- **{c.source}**: {skipped_text(c)}")
    return "\n".join(notes)


def skipped_text(c: SourceCounts) -> str:
    """The entries of a calls folder that were not read, counted per reason (names never shown)."""
    total = sum(c.skipped.values())
    parts = "; ".join(f"{n:,} {r}" for r, n in sorted(c.skipped.items(), key=lambda x: -x[1]))
    return f"{total:,} entries of {c.file}/ were not read ({parts})."


def summary(counts: IngestResult, session: Session | None = None) -> str:
    """Markdown summary of the ingest: whether it stopped, accepted/rejected/excluded per source,
    what was
    missing, the date layouts detected and, given the session of a run that succeeded, the date
    range of
    the orders and the return rate."""
    failed = getattr(counts, "ok", True) is False
    parts = [
        f"**{c.accepted:,}** of {c.read:,} {c.unit} accepted ({c.rejected:,} rejected"
        + (f", {c.excluded:,} excluded" if c.excluded else "")
        + (f", {c.sampled_out:,} outside the sample" if c.sampled_out else "")
        + ")"
        for c in counts
        if c.status == "loaded"
    ]
    text = ""
    if failed:
        text = (
            "**The ingest stopped; no table was replaced** (the next notebooks still see the "
            "previous data). "
            f"{counts.public} "
        )
        if parts:
            text += "Checked before the stop: " + "; ".join(parts) + "."
    else:
        text = "This run ingested: " + "; ".join(parts) + "."
    missing = [c for c in counts if c.status != "loaded"]
    if missing and not failed:
        text += (
            " Missing: "
            + "; ".join(
                f"{c.source} (derived {c.derived:,} customers from the orders)"
                if c.status == "derived"
                else f"{c.source} (none used)"
                for c in missing
            )
            + "."
        )
    skipped = [c for c in counts if c.skipped]
    if skipped:
        text += " Not read: " + " ".join(skipped_text(c) for c in skipped)
    excluded = {r: n for c in counts for r, n in c.excluded_reasons.items()}
    if excluded:
        text += (
            " Excluded, not errors: " + "; ".join(f"{n:,} {r}" for r, n in excluded.items()) + "."
        )
    detected = [
        d for c in counts for d in c.layouts if d["how"] == "detected" and d["name"] != "iso"
    ]
    if detected:
        text += (
            " Dates read as "
            + "; ".join(f"{d['name']} in '{d['column']}' (detected)" for d in detected)
            + "."
        )
    rejected = sum(c.rejected for c in counts)
    if rejected and not failed:
        top = max(((d["reason"], d["rows"]) for c in counts for d in c.details), key=lambda x: x[1])
        text += (
            f" Most common rejection: '{top[0]}' ({top[1]:,} rows); all rejected rows are kept "
            "in REJECTED_*."
        )
    if session is not None and not failed:
        text += _orders_sentence(session)
    return text


def _orders_sentence(session: Session) -> str:
    from customer_analytics import freshness

    fresh = freshness.freshness(session)
    out = f" Orders from {fresh.first:%Y-%m-%d} to {fresh.last:%Y-%m-%d}." if fresh.last else ""
    ret = returns_summary(session)
    if ret["return_lines"]:
        out += f" Return rate {ret['rate']:.1%}: spend is net of returns."
    return out


def status_note(result: IngestResult) -> str:
    """Markdown shown first in the 01 report when the run stopped ('' when it succeeded)."""
    if getattr(result, "ok", True):
        return ""
    return (
        f"**The ingest stopped.** {result.public} The tables below show what was counted and why; "
        "the "
        "notebook stops in its last cell."
    )


def sources_frame(params: Params) -> pd.DataFrame:
    """The plan as a table: per source, where it is read from (file, stage file or table), its
    format and
    size, or why it is absent or unusable (the plan phase of :func:`run`, which is where a stop
    comes from)."""
    rows: list[dict[str, object]] = []
    for src in contract.SOURCES:
        try:
            p = plan_source(src, params)
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
                "format": p.fmt or "—",
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


def layouts_note(counts: list[SourceCounts]) -> str:
    """Markdown: the layout each date column was read with, declared or detected."""
    lines = [
        f"- **{c.source}** " + dates.describe(dates.LayoutChoice(**d)).replace("<source>", c.source)
        for c in counts
        for d in c.layouts
    ]
    return "\n".join(lines)


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


def returns_note(summary: dict) -> str:
    """Markdown: how returns were handled and the return rate (for the 01 report)."""
    if not summary["return_lines"] and not summary["excluded_return_lines"]:
        return "No return or cancellation line: spend is the same gross or net."
    text = (
        f"**{summary['return_lines']:,}** of {summary['lines']:,} order lines are returns or "
        "cancellations: "
        f"{summary['returned']:,.2f} returned of {summary['sold']:,.2f} sold, a **return rate of "
        f"{summary['rate']:.1%}**. Spend in every later report (features, labels, EDA, "
        "predictions) is "
        f"**net** of returns ({summary['net']:,.2f}); order counts count purchases only."
    )
    if summary["excluded_return_lines"]:
        text += (
            f" {summary['excluded_return_lines']:,} return lines were excluded (returns: exclude): "
            "spend "
            "is gross."
        )
    return text


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
    """Guest-order revenue and orders per calendar month (for the EDA's revenue chart)."""
    g = session.table("EXCLUDED_ORDER_LINES").filter(F.col("REASON") == F.lit(Excluded.GUEST))
    month = F.date_trunc("month", F.col("TS")).alias("MONTH")
    df = g.group_by(month).agg(
        F.count_distinct("ORDER_ID").alias("GUEST_ORDERS"),
        F.sum(F.col("QUANTITY") * F.col("UNIT_PRICE")).alias("GUEST_REVENUE"),
    )
    out = wh.to_pandas(df.sort("MONTH"), "ingest:guest_monthly")
    out.columns = [c.lower() for c in out.columns]
    return out.set_index("month")


def guest_note(guests: dict, counts: list[SourceCounts]) -> str:
    """Markdown: the guest orders excluded, and the setting that decides what a guest id is."""
    if not guests["lines"]:
        return "No guest order: every order line has a customer id."
    return (
        f"**{guests['lines']:,}** order lines ({guests['orders']:,} orders) carry no customer id "
        "or a placeholder "
        "id: guest orders, excluded from the customers and the models but not errors (not counted "
        "against "
        f"max_reject_share). Their revenue, {guests['revenue']:,.2f} ({guests['share']:.1%} of all "
        "revenue), is "
        "kept in EXCLUDED_ORDER_LINES. Which ids mean a guest is the setting guest_ids."
    )


def shown_id(customer_id: str) -> str:
    """A customer id as a report may show it: verbatim when it looks like a placeholder (no digit,
    or one
    character repeated, e.g. ``(blank)``, ``0000``); otherwise masked (``1***0``): ids are personal
    data."""
    text = str(customer_id)
    if not any(ch.isdigit() for ch in text) or len(set(text)) == 1:
        return text
    return text[0] + "*" * max(1, len(text) - 2) + text[-1] if len(text) > 2 else "*" * len(text)


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


def suspects_note(suspects: pd.DataFrame) -> str:
    """Markdown for the 01/02 reports: the likely placeholder customers, or that there is none."""
    if suspects.empty:
        return "No single customer holds an implausible share of the orders or the spend."
    names = ", ".join(
        f"`{c}` ({r['order share']:.1%} of orders, {r['spend share']:.1%} of spend)"
        for c, r in suspects.head(5).iterrows()
    )
    return (
        f"**{len(suspects)} customer id(s) hold an implausible share** and are likely placeholders "
        "for guest "
        f"orders: {names}. If so, add them to guest_ids and run again; masked ids are shown as "
        "first and last "
        "character."
    )


# --------------------------------------------------------------------------- report sections
_STOPPED = "Not shown: the ingest stopped, so the tables still hold the previous run's data."


def orders_notes(session: Session, result: list[SourceCounts]) -> str:
    """Markdown: returns and the return rate, guest orders, and likely placeholder customers."""
    if getattr(result, "ok", True) is False:
        return _STOPPED
    return "\n\n".join(
        [
            returns_note(returns_summary(session)),
            guest_note(guest_orders(session), result),
            suspects_note(suspect_customers(session)),
        ]
    )


def product_types_note(session: Session, result: list[SourceCounts], params: Params) -> str:
    """Markdown: how many product types go downstream, which names were renamed, told apart or
    grouped."""
    if getattr(result, "ok", True) is False:
        return _STOPPED
    return product_types.note(product_types.frame(session), params.max_product_types)


def product_types_table(session: Session, result: list[SourceCounts]) -> pd.DataFrame:
    """The product types whose key differs from their name, or that group others."""
    if getattr(result, "ok", True) is False:
        return pd.DataFrame()
    frame = product_types.frame(session)
    return frame[frame["note"] != ""]


class FreshnessNote(str):
    """The 01 report's freshness paragraph; its warning (if any) goes to the report's banner.

    01's set-up cell cannot know the new data's range, so this cell's output carries the banner
    metadata the exporter shows under the title (see :class:`customer_analytics.reports.BannerPreprocessor`).
    """

    warning: str = ""

    def _repr_mimebundle_(self, include=None, exclude=None) -> tuple[dict[str, str], dict]:
        from customer_analytics.runs import BANNER_KEY

        meta = {BANNER_KEY: [self.warning]} if self.warning else {}
        return {"text/markdown": str(self), "text/plain": str(self)}, meta


def _note(text: str, warning: str) -> FreshnessNote:
    note = FreshnessNote(text)
    note.warning = warning
    return note


def freshness_note(session: Session, result: list[SourceCounts], params: Params) -> FreshnessNote:
    """Markdown: the date range of the orders, and a warning when run_date lies beyond the data."""
    from customer_analytics import freshness

    if getattr(result, "ok", True) is False:
        return _note(_STOPPED, "")
    fresh = freshness.freshness(session)
    warning = freshness.run_date_note(fresh, params.run_date, params.freshness_tolerance_days)
    if fresh.last is None:
        return _note(warning, warning)
    text = (
        f"Orders run from **{fresh.first:%Y-%m-%d}** to **{fresh.last:%Y-%m-%d}** (recorded in "
        "INGEST_LOG: FIRST_TS, LAST_TS)."
    )
    return _note(text + (" " + warning if warning else f" run_date {params.run_date} is within the data."),
                 warning)
