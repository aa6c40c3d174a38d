"""Date and timestamp layouts: parse in the warehouse, detect the layout of a column, explain it.

A layout is a tuple of parts (:func:`contract.layout_parts`): the contract's own parsers (``iso``,
``epoch_s``, ``epoch_ms``, ``excel``) or Snowflake formats used in
``TRY_TO_TIMESTAMP_NTZ(text, format)``. That call means the same on Snowflake and on the embedded
warehouse (fakesnow's SQL translator turns the format into DuckDB's ``TRY_STRPTIME``); the
elements a declared format may use are limited to those whose translation was checked
(``contract.FORMAT_ELEMENTS``; tests run every shortcut on both forms). Everything here is a
Snowpark column expression: no value is parsed in Python.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import snowflake.snowpark.functions as F
from snowflake.snowpark import Column, DataFrame

from customer_analytics import contract
from customer_analytics import portable as pt
from customer_analytics.ingest.common import IngestError, SourcePlan

_DATE_CORE = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]+)?)?)?"
)
#: A time-zone suffix, after the time or a space: ``Z``, ``UTC``/``GMT``, ``+02:00``, ``+0200``,
#: ``+02`` (Shopify's and Ruby's ``2024-03-07 13:09:00 -0500``). It is dropped: times are the
#: shop's local ones.
_ZONE = r"( ?(Z|UTC|GMT|[+-][0-9]{2}(:?[0-9]{2})?))?"
_DATETIME = _DATE_CORE + _ZONE
_EPOCH = dt.datetime(1970, 1, 1)
#: Epoch seconds of the first and last accepted instants: numbers outside are not dates.
_EPOCH_RANGE = (
    int((dt.datetime.combine(contract.MIN_DATE, dt.time()) - _EPOCH).total_seconds()),
    int((dt.datetime.combine(contract.MAX_DATE, dt.time.max) - _EPOCH).total_seconds()),
)
#: At most this many rows of a column are looked at to detect its layout (spread evenly over the
#: file).
DETECT_ROWS = 100_000


@dataclass
class LayoutChoice:
    """The layout used for one date field of one source, and how it was chosen.

    ``how``: ``declared`` (date_formats), ``detected`` (the one layout that parses the column's
    values), or ``default`` (nothing parsed: ISO is assumed and the values are rejected).
    """

    field: str
    column: str
    parts: tuple[str, ...]
    how: str
    name: str = ""
    values: int = 0
    parsed: int = 0

    @property
    def label(self) -> str:
        """The layout as a person reads it: the shortcut's name or the formats."""
        return self.name or " | ".join(self.parts)

    def expected(self) -> str:
        """What the values should look like, for messages."""
        if self.name in contract.LAYOUT_TEXT:
            return contract.LAYOUT_TEXT[self.name]
        return " or ".join(
            p if p not in contract.OWN_PARSERS else contract.LAYOUT_TEXT[p] for p in self.parts
        )


def shortcut(parts: tuple[str, ...]) -> str:
    """The shortcut whose parts these are ('' for a declared format)."""
    return next((k for k, v in contract.DATE_LAYOUTS.items() if v == parts), "")


# --------------------------------------------------------------------------- parsing
def _iso_extended(s: Column) -> Column:
    """ISO 8601 basic (``20260301``, ``20260301T1430[00]``) rewritten in the extended form; else
    unchanged."""

    def sub(a: int, n: int) -> Column:
        return F.substring(s, a, n)

    day = F.concat(sub(1, 4), F.lit("-"), sub(5, 2), F.lit("-"), sub(7, 2))
    return (
        F.when(s.rlike(F.lit("[0-9]{8}")), day)
        .when(
            s.rlike(F.lit("[0-9]{8}[T ][0-9]{6}")),
            F.concat(day, F.lit(" "), sub(10, 2), F.lit(":"), sub(12, 2), F.lit(":"), sub(14, 2)),
        )
        .when(
            s.rlike(F.lit("[0-9]{8}[T ][0-9]{4}")),
            F.concat(day, F.lit(" "), sub(10, 2), F.lit(":"), sub(12, 2)),
        )
        .otherwise(s)
    )


def _iso(s: Column) -> Column:
    """ISO 8601 text -> TIMESTAMP (time zone suffix dropped); NULL when not a real date/time.

    The text is validated before any cast: fakesnow's timestamp casts raise (even TRY_CAST) on
    bad input and read digit strings as epoch seconds.
    """
    s = _iso_extended(s)
    valid = s.rlike(F.lit(_DATETIME)) & F.substring(s, 1, 10).try_cast("date").is_not_null()
    core = F.replace(F.call_function("REGEXP_SUBSTR", s, F.lit(_DATE_CORE)), F.lit("T"), F.lit(" "))
    return F.iff(
        valid,
        F.substring(core, 1, 26).try_cast(pt.TIMESTAMP_NTZ),
        F.lit(None).cast(pt.TIMESTAMP_NTZ),
    )


def _epoch(s: Column, unit: int) -> Column:
    """Unix time (``unit`` = 1 for seconds, 1000 for milliseconds) -> TIMESTAMP; NULL outside the
    range."""
    pattern = "[0-9]{1,12}([.][0-9]{1,6})?" if unit == 1 else "[0-9]{1,15}"
    n = F.iff(s.rlike(F.lit(pattern)), s.try_cast("double"), F.lit(None).cast("double"))
    lo, hi = (x * unit for x in _EPOCH_RANGE)
    ms = F.iff((n >= F.lit(lo)) & (n <= F.lit(hi)), F.round(n * F.lit(1000 // unit)), F.lit(None))
    return F.call_function("TO_TIMESTAMP_NTZ", ms.cast("bigint"), F.lit(3))


#: A day-month or month-day date with a two-digit year (``12/1/10 8:26``, ``01.03.21``).
_TWO_DIGIT_YEAR = r"[0-9]{1,2}[/.-][0-9]{1,2}[/.-][0-9]{2}([ T].*)?"


def _four_digit_year(s: Column) -> Column:
    """A two-digit year at the end of a day-month or month-day date written with four digits, as
    Snowflake reads ``YY`` by default (``TWO_DIGIT_CENTURY_START`` 1970): 00-69 -> 2000-2069,
    70-99 -> 1970-1999; other text unchanged.

    Written out here, not left to ``YY``: the backends resolve two-digit years differently, and
    ``YYYY`` alone reads ``10`` as the year 10 on the embedded warehouse. The day and month take
    4 to 6 characters (``1/2/``, ``12/1/``, ``12/31/``), told apart by full matches: a
    ``REGEXP_SUBSTR`` inside ``TRY_TO_TIMESTAMP`` is mistranslated for the embedded warehouse.
    """
    at = (
        F.when(s.rlike(F.lit(r"[0-9]{2}[/.-][0-9]{2}[/.-].*")), F.lit(6))
        .when(s.rlike(F.lit(r"[0-9][/.-][0-9][/.-].*")), F.lit(4))
        .otherwise(F.lit(5))
    )
    yy = F.substring(s, at + F.lit(1), F.lit(2))
    century = F.iff(yy.try_cast("int") < F.lit(70), F.lit("20"), F.lit("19"))
    wide = F.concat(F.substring(s, F.lit(1), at), century, yy, F.substring(s, at + 3, F.length(s)))
    return F.iff(s.rlike(F.lit(_TWO_DIGIT_YEAR)), wide, s)


def year_third(part: str) -> bool:
    """Whether a Snowflake format is a day-month or month-day date (its year written third)."""
    return re.match(contract.DAY_MONTH_FIRST + "YYYY", part) is not None


#: A spreadsheet's day 0 (the 1900 date system, as Excel, LibreOffice and Google Sheets count
#: serial dates from 1900-03-01 on) and the serial numbers of the contract's range.
_EXCEL_DAY0 = dt.date(1899, 12, 30)
_EXCEL_RANGE = (
    (contract.MIN_DATE - _EXCEL_DAY0).days,
    (contract.MAX_DATE - _EXCEL_DAY0).days + 1,
)


def _excel(s: Column) -> Column:
    """A spreadsheet's serial date (``46082.604166``: days since 1899-12-30, the time of day as a
    fraction) -> TIMESTAMP to the millisecond; NULL outside the range."""
    n = F.iff(
        s.rlike(F.lit("[0-9]{5}([.][0-9]{1,15})?")),
        s.try_cast("double"),
        F.lit(None).cast("double"),
    )
    lo, hi = _EXCEL_RANGE
    unix_days = (_EPOCH.date() - _EXCEL_DAY0).days
    ms = F.iff(
        (n >= F.lit(lo)) & (n < F.lit(hi)),
        F.round((n - F.lit(unix_days)) * F.lit(86_400_000)),
        F.lit(None),
    )
    return F.call_function("TO_TIMESTAMP_NTZ", ms.cast("bigint"), F.lit(3))


def _part(s: Column, part: str) -> Column:
    if part == "iso":
        return _iso(s)
    if part in ("epoch_s", "epoch_ms"):
        return _epoch(s, 1 if part == "epoch_s" else 1000)
    if part == "excel":
        return _excel(s)
    return F.call_function("TRY_TO_TIMESTAMP_NTZ", s, F.lit(part))


def parse(s: Column, parts: tuple[str, ...], wide: Column | None = None) -> Column:
    """Text -> TIMESTAMP with the first part that parses it; NULL when none does.

    A format with the year third (``MM/DD/YYYY``, ``DD.MM.YYYY``) also reads a two-digit year
    (:func:`_four_digit_year`; ``wide``: that of ``s``, computed once by the caller for many
    layouts)."""
    if any(year_third(p) for p in parts) and wide is None:
        wide = _four_digit_year(s)
    out = [_part(wide if year_third(p) and wide is not None else s, p) for p in parts]
    return out[0] if len(out) == 1 else F.coalesce(*out)


def parse_date(s: Column, parts: tuple[str, ...]) -> Column:
    """Text -> DATE (a time of day is dropped); NULL when no part parses it."""
    if parts == ("iso",):  # a date part alone: the time, if any, is not validated
        s = _iso_extended(s)
        valid = s.rlike(F.lit(_DATETIME)) & F.substring(s, 1, 10).try_cast("date").is_not_null()
        return F.iff(valid, F.substring(s, 1, 10).try_cast("date"), F.lit(None).cast("date"))
    return F.to_date(parse(s, parts))


def in_range(t: Column) -> Column:
    """Whether a parsed timestamp lies in the contract's date range."""
    day = F.to_date(t)
    return t.is_not_null() & (day >= F.lit(contract.MIN_DATE)) & (day <= F.lit(contract.MAX_DATE))


# --------------------------------------------------------------------------- detection
def detect_counts(df: DataFrame, column: str) -> tuple[int, dict[str, int]]:
    """Distinct values of ``column`` (rows spread over the file, at most :data:`DETECT_ROWS`) and
    how
    many of them each named layout parses into the contract's range (one aggregate query)."""
    rows = df.filter(F.col(column).is_not_null()).count()
    step = max(1, -(-rows // DETECT_ROWS))
    sample = df.filter(F.col(column).is_not_null())
    if step > 1:
        sample = sample.filter(F.col("LINE_NO") % F.lit(step) == F.lit(0))
    values = sample.select(F.col(column).alias("V")).distinct()
    # each layout's parse once, in an inner select; the range test (which names the parsed value
    # three times) reads its column: the statement stays a fraction of the size it would have.
    # The two-digit year written out once (W), for the 14 formats with the year third
    values = values.select("V", _four_digit_year(F.col("V")).alias("W"))
    parsed = values.select(
        *[
            parse(F.col("V"), parts, wide=F.col("W")).alias(f"P_{n.upper()}")
            for n, parts in contract.DATE_LAYOUTS.items()
        ]
    )
    row = parsed.agg(
        F.count(F.lit(1)).alias("N"),
        *[
            F.sum(F.iff(in_range(F.col(f"P_{n.upper()}")), F.lit(1), F.lit(0))).alias(n.upper())
            for n in contract.DATE_LAYOUTS
        ],
    ).collect()[0]
    return int(row["N"] or 0), {n: int(row[n.upper()] or 0) for n in contract.DATE_LAYOUTS}


def choose(counts: dict[str, int]) -> list[str]:
    """The layouts that best parse a column: one name (use it), several (ambiguous), none (nothing
    parses)."""
    best = max(counts.values(), default=0)
    return [n for n, c in counts.items() if c == best] if best else []


def _examples(
    df: DataFrame, column: str, parts_a: tuple[str, ...], parts_b: tuple[str, ...]
) -> list[str]:
    """Up to three values both layouts parse (dates are not personal data)."""
    v = F.col(column)
    both = df.filter(in_range(parse(v, parts_a)) & in_range(parse(v, parts_b)))
    return [r["V"] for r in both.select(v.alias("V")).distinct().sort("V").limit(3).collect()]


def resolve(df: DataFrame, plan: SourcePlan) -> dict[str, tuple[str, ...]]:
    """Choose the layout of every date field of ``plan``'s source; record the choices in
    ``plan.layouts``.

    A declared layout (``date_formats``) is used as it is. Otherwise the one named layout that
    parses most of the column's values is used; when several parse them equally (``01/02/2021``),
    the run stops and lists them with the setting to choose.

    Raises:
        IngestError: the layout of a column is ambiguous.
    """
    out = {}
    for f in plan.source.fields:
        if f.kind not in ("date", "timestamp"):
            continue
        column, text = plan.column(f.name), f"S_{f.name.upper()}"
        if f.name in plan.declared:
            parts = plan.declared[f.name]
            choice = LayoutChoice(f.name, column, parts, "declared", shortcut(parts))
        else:
            n, counts = detect_counts(df, text)
            names = choose(counts)
            if len(names) > 1:
                raise IngestError(
                    _ambiguous(
                        plan,
                        f.name,
                        names,
                        _examples(
                            df,
                            text,
                            contract.DATE_LAYOUTS[names[0]],
                            contract.DATE_LAYOUTS[names[1]],
                        ),
                    )
                )
            name = names[0] if names else "iso"
            choice = LayoutChoice(
                f.name,
                column,
                contract.DATE_LAYOUTS[name],
                "detected" if names else "default",
                name,
                n,
                counts.get(name, 0),
            )
        plan.layouts[f.name] = choice
        out[f.name] = choice.parts
    return out


def _ambiguous(plan: SourcePlan, fld: str, names: list[str], examples: list[str]) -> str:
    column = plan.column(fld)
    shown = ", ".join(repr(e) for e in examples)
    options = "; ".join(f"{n} ({contract.LAYOUT_TEXT[n]})" for n in names)
    return (
        f"{plan.path}: the dates in '{column}' fit several layouts, e.g. {shown}: {options}. "
        "Nothing was "
        "replaced. Fix: say which one in env.yaml, e.g. date_formats: "
        f"{{{plan.source.name}: {{{fld}: "
        f"{names[0]}}}}} (or any Snowflake format such as "
        '"DD.MM.YYYY HH24:MI"; docs/data_contract.md).'
    )
