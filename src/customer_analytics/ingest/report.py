"""What the 01_ingest report shows: accounting, reasons with examples, missing sources, a summary.

Aggregates only: values of personal fields (ids, names, e-mails, free text) are never shown.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from snowflake.snowpark import Session

from customer_analytics import contract, readers
from customer_analytics import warehouse as wh
from customer_analytics.config import Params
from customer_analytics.ingest import dates
from customer_analytics.ingest.common import RAW, SHOWABLE_FIELDS, SourceCounts
from customer_analytics.ingest.plan import plan_sources


def counts_frame(counts: list[SourceCounts]) -> pd.DataFrame:
    """Row accounting per source for the report (read = accepted + rejected + sampled out)."""
    rows = [
        {
            "source": c.source,
            "file": c.file or "—",
            "status": c.status,
            "unit": c.unit,
            "read": c.read,
            "accepted": c.accepted,
            "rejected": c.rejected,
            "sampled out": c.sampled_out,
            "rejected %": round(100 * c.reject_share, 2),
            "balanced": c.read == c.accepted + c.rejected + c.sampled_out,
        }
        for c in counts
    ]
    return pd.DataFrame(rows).set_index("source")


def _example(e: dict, show_value: bool) -> str:
    where = Path(e["file"]).name if e["file"] and "/" in e["file"] else f"line {e['line']}"
    where += f" item {e['item']}" if e["item"] is not None else ""
    value = e["value"] if e["value"] is None or len(e["value"]) <= 30 else e["value"][:29] + "…"
    return where + (f" ({value!r})" if show_value and value is not None else "")


def reasons_frame(counts: list[SourceCounts]) -> pd.DataFrame:
    """Rejected rows per source, field and reason, with the first examples (values only of non-personal fields)."""
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
    """For the report: :func:`reasons_frame`, or a one-line Markdown note when nothing was rejected."""
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
                f"- **customers**: no file ({c.file or 'disabled'}); {c.derived:,} customers were derived "
                f"from the orders (sign-up = first order; country and channel '{contract.UNKNOWN}')."
            )
        elif c.status in ("missing", "disabled"):
            what = "no review rows" if c.source == "reviews" else "no support-call rows"
            notes.append(
                f"- **{c.source}**: no {'file' if c.source != 'calls' else 'transcripts'} "
                f"({c.file or 'disabled'}); {what}."
            )
    return "\n".join(notes)


def summary(counts: list[SourceCounts]) -> str:
    """Markdown summary of the ingest: accepted/rejected per source and what was missing."""
    parts = [
        f"**{c.accepted:,}** of {c.read:,} {c.unit} accepted ({c.rejected:,} rejected"
        + (f", {c.sampled_out:,} outside the sample" if c.sampled_out else "")
        + ")"
        for c in counts
        if c.status == "loaded"
    ]
    text = "This run ingested: " + "; ".join(parts) + "."
    missing = [c for c in counts if c.status != "loaded"]
    if missing:
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
    rejected = sum(c.rejected for c in counts)
    if rejected:
        top = max(((d["reason"], d["rows"]) for c in counts for d in c.details), key=lambda x: x[1])
        text += f" Most common rejection: '{top[0]}' ({top[1]:,} rows); all rejected rows are kept in REJECTED_*."
    return text


def sources_frame(params: Params) -> pd.DataFrame:
    """The plan as a table: per source, the file used, its format and size, or why it is absent.

    Raises:
        IngestError: a file cannot be used at all (this is the plan phase of :func:`run`).
    """
    rows = []
    for p in plan_sources(params):
        size = (
            (
                sum(f.stat().st_size for f in readers.call_files(p.path))
                if p.fmt == "calls"
                else p.path.stat().st_size
            )
            if p.present
            else None
        )
        n_files = len(readers.call_files(p.path)) if p.fmt == "calls" and p.present else None
        rows.append(
            {
                "source": p.source.name,
                "required": "yes" if p.source.required else "no",
                "file": p.name or "—",
                "status": {"loaded": "found", "missing": "missing", "disabled": "disabled"}[
                    p.status
                ],
                "format": p.fmt or "—",
                "files": n_files or (1 if p.present else 0),
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
    """Row counts of the RAW_, CLEAN_ and REJECTED_ tables."""
    names = [
        *RAW.values(),
        "CLEAN_CUSTOMERS",
        "CLEAN_ORDERS",
        "CLEAN_ORDER_LINES",
        "CLEAN_REVIEWS",
        "REJECTED_CUSTOMERS",
        "REJECTED_ORDER_LINES",
        "REJECTED_REVIEWS",
    ]
    return pd.DataFrame({"rows": [wh.row_count(session, n) for n in names]}, index=names)


def layouts_note(counts: list[SourceCounts]) -> str:
    """Markdown: the layout each date column was read with, and whether it was declared or detected."""
    lines = [
        f"- **{c.source}** " + dates.describe(dates.LayoutChoice(**d)).replace("<source>", c.source)
        for c in counts
        for d in c.layouts
    ]
    return "\n".join(lines)
