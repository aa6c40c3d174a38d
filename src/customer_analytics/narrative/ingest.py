"""What the 01 report says: what was received, rejected, excluded; dates, returns, guests,
freshness.

The numbers come from :mod:`customer_analytics.ingest` (counts, returns, guest orders, likely
placeholder customers, product types) and :mod:`customer_analytics.freshness`. Values of personal
fields (ids, names, e-mails, free text) are never shown.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from customer_analytics import contract
from customer_analytics.config import Params
from customer_analytics.narrative import fmt, words
from customer_analytics.narrative.runs import run_date_note

TERMS = ["rejected rows", "guest orders", "net spend"]
_STOPPED = "Not shown: the ingest stopped, so the tables still hold the previous run's data."


def heading(params: Params) -> str:
    return f"# Data received, {fmt.day(params.run_date)}: summary"


def _failed(counts: Any) -> bool:
    return getattr(counts, "ok", True) is False


def skipped_text(c: Any) -> str:
    """The entries of a calls folder that were not read, counted per reason (names never shown)."""
    total = sum(c.skipped.values())
    parts = "; ".join(f"{n:,} {r}" for r, n in sorted(c.skipped.items(), key=lambda x: -x[1]))
    return f"{total:,} entries of {c.file}/ were not read ({parts})."


def filled_text(c: Any) -> str:
    """Order lines that took an order field from another line of their order (exports that write
    the date or customer once per order)."""
    parts = " and ".join(f"'{col}' ({n:,} {c.unit})" for col, n in c.filled.items())
    return (
        f"Order fields given once per order in {c.file}: {parts} taken from another line of the "
        "same order."
    )


_CODEC_NAMES = {
    "cp1252": "Windows-1252",
    "iso8859-1": "ISO-8859-1 (Latin-1)",
    "iso8859-15": "ISO-8859-15 (Latin-9)",
    "utf-16": "UTF-16",
    "utf-16-le": "UTF-16 (little-endian)",
    "utf-16-be": "UTF-16 (big-endian)",
    "utf-32": "UTF-32",
}


def workbook_text(file: str, book: dict[str, Any]) -> str:
    """Which sheets of a workbook were read (``SourceCounts.workbook``), and which were not."""
    sheets = book["sheets"]
    text = (
        f"'{file}' is a workbook: {book['rows']:,} rows read from "
        + (
            f"sheet '{sheets[0]}'"
            if len(sheets) == 1
            else f"{len(sheets)} sheets with the same "
            "header (" + ", ".join(f"'{s}'" for s in sheets) + ")"
        )
        + "."
    )
    if book["skipped"]:
        text += (
            " Not read, their first row is not that header: "
            + ", ".join(f"'{s}'" for s in book["skipped"])
            + "."
        )
    return text


def encoding_text(file: str, source: str, note: dict[str, Any]) -> str:
    """How a file that is not UTF-8 was read (``SourceCounts.encoding``), and how to say
    otherwise."""
    if "transcripts" in note:  # calls: transcripts are detected one by one
        per = note["transcripts"]
        total = sum(per.values())
        read = ", ".join(
            f"{_CODEC_NAMES.get(c, c)} ({n:,})" for c, n in sorted(per.items(), key=lambda x: -x[1])
        )
        return (
            f"{total:,} {'transcript' if total == 1 else 'transcripts'} in '{file}' "
            f"{'is' if total == 1 else 'are'} not UTF-8: read as {read} (detected)."
        )
    codec = note["encoding"]
    name = _CODEC_NAMES.get(codec, codec)
    how = note["how"]
    text = f"'{file}' is not UTF-8: read as {name} ({how})"
    if note.get("replaced"):
        text += f"; {note['replaced']:,} characters could not be read in it and show as \ufffd"
    text += "."
    if how != "declared":
        text += (
            " If accented letters look wrong in the reports, declare its encoding in env.yaml: "
            f"`encodings: {{{source}: <encoding>}}` (e.g. latin-1, cp1250, cp1251)."
        )
    return text


def signs_text(signs: dict[str, str], currency: str | None = None) -> str:
    """The currency signs removed from amounts (column -> signs seen), and a warning when one is
    not the run's ``currency`` (amounts are taken in it, not converted)."""
    text = "Currency signs removed from the amounts in " + ", ".join(
        f"'{col}' ({seen})" for col, seen in signs.items()
    )
    text += "."
    if currency is None:
        return text
    own = fmt.symbol(currency).strip()
    other = sorted(
        {
            x
            for seen in signs.values()
            for x in seen.split(" ")
            if not contract.currency_matches(x, currency, own)
        }
    )
    if other:
        text += (
            f" **Check the currency**: the amounts are written with {' and '.join(other)}, "
            f"the run's currency is {currency} ({own}); amounts are taken in it, not converted. "
            "Fix: set `currency` in env.yaml to the shop's currency."
        )
    return text


def summary(counts: Any, session: Any = None, params: Params | None = None) -> str:
    """The 01 summary: whether the ingest stopped, accepted / rejected / excluded per source, what
    was missing, the date layouts detected and, given the session of a run that succeeded, the date
    range of the orders and the return rate."""
    failed = _failed(counts)
    parts = [
        f"**{c.accepted:,}** of {c.read:,} {c.unit} accepted ({c.rejected:,} rejected"
        + (f", {c.excluded:,} excluded" if c.excluded else "")
        + (f", {c.sampled_out:,} outside the sample" if c.sampled_out else "")
        + ")"
        for c in counts
        if c.status == "loaded"
    ]
    if failed:
        text = (
            "**The ingest stopped; no table was replaced** (the next steps still see the "
            f"previous data). {counts.public} "
        )
        if parts:
            text += "Checked before the stop: " + "; ".join(parts) + "."
    else:
        text = "This run received: " + "; ".join(parts) + "."
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
    for c in counts:
        if getattr(c, "workbook", None):
            text += " " + workbook_text(c.file, c.workbook)
        if getattr(c, "encoding", None):
            text += " " + encoding_text(c.file, c.source, c.encoding)
    skipped = [c for c in counts if c.skipped]
    if skipped:
        text += " Not read: " + " ".join(skipped_text(c) for c in skipped)
    filled = [c for c in counts if c.filled]
    if filled:
        text += " " + " ".join(filled_text(c) for c in filled)
    for c in counts:
        if getattr(c, "by_order", False):
            text += (
                f" {c.file} has no customer_id: each review was given the customer of its "
                "order (order_id)."
            )
        if getattr(c, "one_unit", False):
            text += (
                f" {c.file} has no quantity: every line is read as one unit (a row per unit sold)."
            )
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
    comma = [f"'{col}'" for c in counts for col in c.decimal_comma]
    if comma:
        text += f" Numbers read with a decimal comma in {', '.join(comma)} (detected)."
    grouped = [f"'{col}'" for c in counts for col in c.thousands]
    if grouped:
        text += f" Numbers read with thousands separators in {', '.join(grouped)} (detected)."
    negative = [f"'{col}'" for c in counts for col in c.parentheses]
    if negative:
        text += (
            f" Amounts in parentheses or with a trailing minus, (3.50) or 3.50-, read as negative "
            f"in {', '.join(negative)} (accounting)."
        )
    signs = {col: seen for c in counts for col, seen in c.currency_signs.items()}
    if signs:
        text += " " + signs_text(signs, params.currency if params is not None else None)
    rejected = sum(c.rejected for c in counts)
    if rejected and not failed:
        top = max(((d["reason"], d["rows"]) for c in counts for d in c.details), key=lambda x: x[1])
        text += (
            f" Most common rejection: '{top[0]}' ({top[1]:,} rows); every rejected row is kept in "
            "the warehouse with its reason."
        )
    if session is not None and not failed:
        text += _orders_sentence(session)
    if params is not None:
        late = _late_note(session, params) if session is not None and not failed else ""
        return f"{heading(params)}\n\n" + (f"> ⚠ {late}\n\n" if late else "") + text
    return text


def _late_note(session: Any, params: Params) -> str:
    """The run-date warning of the other reports' banner, for the top of 01's summary: 01's own
    banner is computed before the new data is in, so it cannot say it."""
    from customer_analytics import freshness

    fresh = freshness.freshness(session)
    return run_date_note(
        fresh.last_day,
        params.run_date,
        fresh.days_after(params.run_date),
        params.freshness_tolerance_days,
    )


def _orders_sentence(session: Any) -> str:
    from customer_analytics import freshness, ingest

    fresh = freshness.freshness(session)
    out = f" Orders from {fmt.day(fresh.first)} to {fmt.day(fresh.last)}." if fresh.last else ""
    ret = ingest.returns_summary(session)
    if ret["return_lines"]:
        out += f" Return rate {fmt.percent(ret['rate'], 1)}: spend is net of returns."
    return out


def status_note(result: Any) -> str:
    """Markdown shown first in the 01 report when the run stopped ('' when it succeeded)."""
    if not _failed(result):
        return ""
    return (
        f"**The ingest stopped.** {result.public} The tables below show what was counted and why; "
        "the notebook stops in its last cell."
    )


def missing_note(counts: Any) -> str:
    """Markdown: which optional sources were missing and what was used instead ('' when none)."""
    notes = []
    for c in counts:
        if c.status == "derived":
            notes.append(
                f"- **customers**: no file ({c.file or 'disabled'}); {c.derived:,} customers were "
                "derived from the orders (sign-up = first order; country and channel "
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


def rejections(counts: Any) -> Any:
    """The rejected rows per source, field and reason with examples (formatted), or a sentence when
    none."""
    from IPython.display import Markdown

    from customer_analytics import ingest

    if not any(c.rejected for c in counts):
        return Markdown("No row was rejected.")
    return fmt.table(ingest.reasons_frame(counts).reset_index(), count_cols=["rows"])


def layout_text(choice: Any) -> str:
    """One Markdown sentence on the layout used for a date field (``ingest.dates.LayoutChoice``)."""
    what = f"**{choice.label}** ({choice.expected()})" if choice.name else f"`{choice.label}`"
    if choice.how == "declared":
        return f"`{choice.column}`: {what}, as declared in date_formats."
    if choice.how == "default":
        return (
            f"`{choice.column}`: no known layout parses its values; ISO 8601 was assumed (their "
            "rows are rejected as unparseable dates). Declare the layout in date_formats."
        )
    if choice.name == "iso" and choice.parsed == choice.values:
        return f"`{choice.column}`: ISO 8601 dates (detected; every distinct value parses)."
    share = choice.parsed / choice.values if choice.values else 1.0
    return (
        f"`{choice.column}`: detected {what}: it parses {share:.1%} of {choice.values:,} distinct "
        "values (the only known layout that does). To fix it for later runs: date_formats: "
        f"{{<source>: {{{choice.field}: {choice.name}}}}}."
    )


def layouts_note(counts: Any) -> str:
    """Markdown: the layout each date column was read with, declared or detected."""
    from customer_analytics.ingest import dates

    return "\n".join(
        f"- **{c.source}** " + layout_text(dates.LayoutChoice(**d)).replace("<source>", c.source)
        for c in counts
        for d in c.layouts
    )


def returns_note(summary: dict, currency: str = "EUR") -> str:
    """Markdown: how returns were handled and the return rate."""
    if not summary["return_lines"] and not summary["excluded_return_lines"]:
        return "No return or cancellation line: spend is the same gross or net."
    text = (
        f"**{summary['return_lines']:,}** of {summary['lines']:,} order lines are returns or "
        f"cancellations: {fmt.money(summary['returned'], currency, 2)} returned of "
        f"{fmt.money(summary['sold'], currency, 2)} sold, a **return rate of "
        f"{fmt.percent(summary['rate'], 1)}**. Spend in every later report (exploration, customer "
        f"profiles, forecasts) is **net** of returns ({fmt.money(summary['net'], currency, 2)}); "
        "order counts count purchases only."
    )
    if summary["excluded_return_lines"]:
        text += (
            f" {summary['excluded_return_lines']:,} return lines were excluded (returns: "
            "exclude): spend is gross."
        )
    return text


def guest_note(guests: dict, currency: str = "EUR") -> str:
    """Markdown: the guest orders excluded, and the setting that decides what a guest id is."""
    if not guests["lines"]:
        return "No guest order: every order line has a customer id."
    return (
        f"**{guests['lines']:,}** order lines ({guests['orders']:,} orders) carry no customer id "
        "or a placeholder id: guest orders, excluded from the customers and the models but not "
        "errors (not counted against max_reject_share). Their revenue, "
        f"{fmt.money(guests['revenue'], currency, 2)} ({fmt.percent(guests['share'], 1)} of all "
        "revenue), is kept apart in the warehouse. Which ids mean a guest is the setting "
        "guest_ids."
    )


def suspects_note(suspects: pd.DataFrame) -> str:
    """Markdown for the 01/02 reports: the likely placeholder customers, or that there is none."""
    if suspects.empty:
        return "No single customer holds an implausible share of the orders or the spend."
    names = ", ".join(
        f"`{c}` ({fmt.percent(r['order share'], 1)} of orders, {fmt.percent(r['spend share'], 1)} "
        "of spend)"
        for c, r in suspects.head(5).iterrows()
    )
    return (
        f"**{len(suspects)} customer id(s) hold an implausible share** and are likely "
        f"placeholders for guest orders: {names}. If so, add them to guest_ids and run again; "
        "masked ids are shown as first and last character."
    )


def orders_notes(session: Any, result: Any, currency: str = "EUR") -> str:
    """Markdown: returns and the return rate, guest orders, and likely placeholder customers."""
    from customer_analytics import ingest

    if _failed(result):
        return _STOPPED
    return "\n\n".join(
        [
            returns_note(ingest.returns_summary(session), currency),
            guest_note(ingest.guest_orders(session), currency),
            suspects_note(ingest.suspect_customers(session)),
        ]
    )


def product_types_text(mapping: pd.DataFrame, max_types: int) -> str:
    """Markdown: how many product types go downstream, which names were renamed, told apart or
    grouped."""
    from customer_analytics.ingest.product_types import OTHER

    renamed = mapping[mapping["note"].isin(["renamed", "told apart from a name with the same key"])]
    grouped = OTHER in mapping.index and pd.isna(mapping.loc[OTHER, "name"])
    text = (
        f"**{len(mapping):,} product types** are used downstream (at most max_product_types = "
        f"{max_types:,}"
    )
    text += " plus 'other')." if grouped else ")."
    if grouped:
        o = mapping.loc[OTHER]
        text += (
            f" The {int(o['names']):,} least frequent types ({int(o['lines']):,} order lines) are "
            "grouped as 'other'."
        )
    if len(renamed):
        text += (
            f" {len(renamed):,} names were turned into column-safe keys (see the table: e.g. "
            + ", ".join(f"'{r['name']}' becomes '{k}'" for k, r in renamed.head(3).iterrows())
            + ")."
        )
    return text


def product_types_note(session: Any, result: Any, params: Params) -> str:
    from customer_analytics.ingest import product_types

    if _failed(result):
        return _STOPPED
    return product_types_text(product_types.frame(session), params.max_product_types)


def freshness_note(session: Any, result: Any, params: Params) -> str:
    """Markdown: the date range of the orders, and a warning when the run date lies beyond the
    data."""
    from customer_analytics import freshness

    if _failed(result):
        return _STOPPED
    fresh = freshness.freshness(session)
    note = run_date_note(
        fresh.last_day,
        params.run_date,
        fresh.days_after(params.run_date),
        params.freshness_tolerance_days,
    )
    if fresh.last is None:
        return note
    text = f"Orders run from **{fmt.day(fresh.first)}** to **{fmt.day(fresh.last)}**."
    return text + (
        " " + note if note else f" The run date, {fmt.day(params.run_date)}, is within the data."
    )


def audio_note(frame: pd.DataFrame | None, bench: dict | None) -> str:
    """Markdown on the run's audio calls and the recognizer's measured word error rate."""
    if frame is None:
        return "The ingest stopped before the calls were published: see the message at the top."
    if frame.empty:
        return "No audio calls in this run (only text transcripts, or none)."
    n = int(frame["recordings"].sum())
    ok = int(frame["recordings"].get("transcribed", 0))
    out = (
        f"**{n:,} audio calls**: {ok:,} transcribed into calls (with the recognizer's name and "
        f"confidence), {n - ok:,} rejected with their reason (table below)."
    )
    if bench and bench["words"]:
        out += (
            f" Recognizer: **{bench['recognizer']}**, offline. Its word error rate, measured on "
            f"the {bench['clips']} shipped demo recordings ({bench['seconds']:.0f} s, "
            f"{bench['words']} words, synthetic voices), is **{fmt.percent(bench['wer'])}**: "
            "treat audio transcripts as rough text (topics and sentiment still see words such as "
            "*refund*, *late* or *broken*, but many words are wrong)."
        )
    return out


def counts_table(frame: pd.DataFrame) -> Any:
    """The row accounting, formatted (file names, counts with separators, balanced as yes/no)."""
    out = frame.rename(columns={"rejected %": "rejected share"}).copy()
    out["rejected share"] = out["rejected share"] / 100
    out["balanced"] = out["balanced"].astype(bool)
    out.index.name = "source"
    return fmt.table(
        out,
        percent_cols=["rejected share"],
        decimals={"rejected share": 2},
        count_cols=["read", "accepted", "rejected", "excluded", "sampled out"],
    )


def sources_table(frame: pd.DataFrame) -> Any:
    return fmt.table(
        frame.rename(columns={"MB": "size (MB)"}), count_cols=["files"], decimals={"size (MB)": 2}
    )


def tables_table(frame: pd.DataFrame) -> Any:
    """Rows per warehouse table, the tables named in words."""
    out = pd.DataFrame(
        {"rows": frame["rows"].to_numpy()}, index=[words.table(t) for t in frame.index]
    )
    out.index.name = "table"
    return fmt.table(out, count_cols=["rows"])


def glossary() -> str:
    return words.glossary(TERMS)
