"""The data contract: which input files are accepted, their fields, and every rejection reason.

This module is the single source of truth: :mod:`customer_analytics.ingest` validates against
it, :mod:`customer_analytics.config` checks the column mapping against it, and
``docs/data_contract.md`` is generated from it (``python -m customer_analytics.contract
--write docs/data_contract.md``; a test fails when the page and the code disagree).

Standard library only (it is also imported when Ploomber loads the pipeline).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

#: Workbook extensions: the file is converted to CSV before anything else reads it.
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")
#: Accepted file formats, by file name extension.
FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    # delimited text under other names (the separator is detected): tab-separated exports, and
    # Excel's "Unicode text" (.txt, UTF-16, tab-separated)
    ".tsv": "csv",
    ".tab": "csv",
    ".txt": "csv",
    # spreadsheet workbooks, read through a CSV copy (readers.workbook_to_csv)
    **{ext: "csv" for ext in WORKBOOK_SUFFIXES},
}
#: Extensions tried in place of a source file's own when it is not found (:func:`candidates`):
#: not ``.txt``, which names too many other files (notes, read-me files).
_ALTERNATIVES = tuple(ext for ext in FORMATS if ext != ".txt")
#: Currencies written with letters beside an amount, and the currencies each can mean: ISO 4217
#: codes (``USD 3.50``, ``3,50 EUR``: exports of multi-currency shops, payment providers) and local
#: signs (``R$ 3,50``, ``3,50 zł``, ``1 234 kr``, ``US$3.50``). Upper and lower case as written.
CURRENCY_TOKENS: dict[str, tuple[str, ...]] = {
    **{
        code: (code,)
        for code in (
            "USD EUR GBP JPY CNY INR KRW RUB TRY ILS VND THB CAD AUD NZD CHF SEK NOK DKK ISK "
            "PLN CZK HUF RON BGN BRL MXN ARS CLP COP PEN ZAR SGD HKD TWD MYR IDR PHP AED SAR"
        ).split()
    },
    "RMB": ("CNY",),
    "US$": ("USD",),
    "CA$": ("CAD",),
    "C$": ("CAD",),
    "AU$": ("AUD",),
    "A$": ("AUD",),
    "NZ$": ("NZD",),
    "HK$": ("HKD",),
    "S$": ("SGD",),
    "MX$": ("MXN",),
    "R$": ("BRL",),
    "kr": ("SEK", "NOK", "DKK", "ISK"),
    "zł": ("PLN",),
    "Kč": ("CZK",),
    "Ft": ("HUF",),
    "lei": ("RON",),
}


def currency_matches(sign: str, currency: str, symbol: str) -> bool:
    """Whether a sign or token seen beside amounts can be the run's ``currency`` (ISO code; its
    English ``symbol``, e.g. ``CA$``): ``$`` in a CAD shop is, ``USD`` in a EUR shop is not."""
    if sign in CURRENCY_TOKENS:
        return currency in CURRENCY_TOKENS[sign]
    return sign in symbol


#: A physical line (or CSV record, or call transcript) longer than this is rejected, not loaded.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: Bytes that are not UTF-8, and no character beyond ASCII that is, at least this many in a file:
#: it is in an 8-bit encoding (fewer: a damaged line or two in UTF-8, rejected with their reason).
LEGACY_MIN_BAD = 3
#: A quoted CSV field may span at most this many lines; beyond, its opening quote is taken as a
#: mistake.
MAX_RECORD_LINES = 1000
#: An order (a JSON line) with more items than this is rejected whole: it bounds the work per order.
MAX_ITEMS = 10_000
#: A JSON line nested deeper than this (objects and lists inside each other) is rejected.
MAX_JSON_DEPTH = 100
#: A JSON integer with more digits than this is rejected (Snowflake's NUMBER holds 38).
MAX_JSON_INT_DIGITS = 38
#: Characters an id may not hold, as regular-expression ranges: control characters, the soft
#: hyphen, zero-width and other invisible format characters, bidirectional controls, line and
#: paragraph separators, the byte-order mark, interlinear annotation marks.
INVISIBLE_ID_CHARS = (
    "\x01-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064"
    "\u2066-\u206f\ufeff\ufff9-\ufffb"
)
#: Dates and timestamps outside [MIN_DATE, MAX_DATE] are rejected as out of range.
MIN_DATE, MAX_DATE = dt.date(1990, 1, 1), dt.date(2099, 12, 31)
#: Plausible ranges of the numeric fields (inclusive).
BIRTH_YEARS = (1900, 2020)
RATINGS = (1, 5)
MAX_QUANTITY = 1_000_000
#: Words of a column name (any case; split at anything not a letter) that name a quantity in
#: another way or language: an orders file with such a column, unmapped, is not read as one unit
#: per line (see the ``quantity`` field); the run stops and asks for the mapping.
QUANTITY_WORDS = frozenset(
    {
        "qty",
        "qte",
        "qté",
        "quantity",
        "quantities",
        "quantité",
        "quantite",
        "quantità",
        "quantita",
        "quantidade",
        "cantidad",
        "menge",
        "anzahl",
        "stück",
        "stueck",
        "stk",
        "aantal",
        "antal",
        "antall",
        "ilość",
        "ilosc",
        "pcs",
        "pieces",
        "units",
    }
)
MAX_AMOUNT = 1_000_000_000.0
#: Default share of a source's rows that may be rejected before the run stops.
DEFAULT_MAX_REJECT_SHARE = 0.05
#: What ``returns`` may be: keep return lines and net them (default), exclude them, or reject them.
RETURNS = ("net", "exclude", "reject")
#: Customer ids that stand for "no customer" (guest checkouts), compared trimmed and case-
#: insensitively;
#: an empty id is always one. ``guest_ids`` in env.yaml replaces this list.
DEFAULT_GUEST_IDS = (
    "0",
    "-",
    "--",
    "null",
    "none",
    "nil",
    "n/a",
    "na",
    "nan",
    "#n/a",
    "guest",
    "unknown",
    "(blank)",
    "blank",
    "anonymous",
)
#: Values of a mapped ``cancelled`` column that mark a return or cancellation (trimmed, any case).
CANCELLED_VALUES = (
    "true",
    "t",
    "yes",
    "y",
    "1",
    "x",
    "c",
    "cancelled",
    "canceled",
    "cancellation",
    "return",
    "returned",
    "refund",
    "refunded",
    "storno",
)
#: A customer holding more than this share of the orders or of the spend (and 25 times an average
#: customer's share) is reported as a likely placeholder.
SUSPECT_SHARE = 0.01
#: ``customer_attributes`` names that fill CLEAN_CUSTOMERS' own columns (others become new columns).
ATTRIBUTE_ALIASES = {
    "channel": "acquisition_channel",
    "acquisition_channel": "acquisition_channel",
    "country": "country",
}
#: Names ``customer_attributes`` may not use (columns CLEAN_CUSTOMERS has for other purposes).
RESERVED_ATTRIBUTES = frozenset(
    {"customer_id", "signup_date", "birth_year", "line_no", "source_file"}
)
#: Categorical values used when a field is absent.
UNKNOWN = "unknown"
ALL_PRODUCTS = "all"


#: Named date layouts (``date_formats`` shortcuts): the parts each one tries, in order. A part is a
#: Snowflake format (``TRY_TO_TIMESTAMP_NTZ`` syntax, the same on both backends) or one of the
#: contract's own parsers: ``iso`` (ISO 8601, extended and basic), ``epoch_s``, ``epoch_ms``,
#: ``excel`` (a spreadsheet's serial day number).
DATE_LAYOUTS: dict[str, tuple[str, ...]] = {
    "iso": ("iso",),
    "us": (
        "MM/DD/YYYY HH24:MI:SS",
        "MM/DD/YYYY HH24:MI",
        "MM/DD/YYYY",
        "MM/DD/YYYY HH12:MI:SS AM",
        "MM/DD/YYYY HH12:MI AM",
    ),
    "eu": (
        "DD.MM.YYYY HH24:MI:SS",
        "DD.MM.YYYY HH24:MI",
        "DD.MM.YYYY",
        "DD/MM/YYYY HH24:MI:SS",
        "DD/MM/YYYY HH24:MI",
        "DD/MM/YYYY",
        "DD-MM-YYYY HH24:MI:SS",
        "DD-MM-YYYY HH24:MI",
        "DD-MM-YYYY",
    ),
    # year first with slashes or dots (East Asian and South African exports, some ERPs); the ISO
    # dash form is iso's, so a column is never both
    "ymd": (
        "YYYY/MM/DD HH24:MI:SS",
        "YYYY/MM/DD HH24:MI",
        "YYYY/MM/DD",
        "YYYY.MM.DD HH24:MI:SS",
        "YYYY.MM.DD HH24:MI",
        "YYYY.MM.DD",
    ),
    # month names, in English (case does not matter): 7 Mar 2024, 07-MAR-2024, Mar 7, 2024,
    # March 7, 2024 13:09 (reports, human-made spreadsheets, Oracle's default)
    "names": (
        "DD MON YYYY HH24:MI:SS",
        "DD MON YYYY HH24:MI",
        "DD MON YYYY",
        "DD-MON-YYYY HH24:MI:SS",
        "DD-MON-YYYY HH24:MI",
        "DD-MON-YYYY",
        "MON DD, YYYY HH24:MI:SS",
        "MON DD, YYYY HH24:MI",
        "MON DD, YYYY",
        "DD MMMM YYYY HH24:MI",
        "DD MMMM YYYY",
        "MMMM DD, YYYY HH24:MI",
        "MMMM DD, YYYY",
    ),
    "epoch_s": ("epoch_s",),
    "epoch_ms": ("epoch_ms",),
    # a spreadsheet's date as its serial number (days since 1899-12-30, the time as a fraction):
    # what a CSV holds when a date column was written with the General format
    "excel": ("excel",),
}
#: What each named layout accepts, for messages and the contract page.
LAYOUT_TEXT = {
    "iso": "ISO 8601: 2026-03-01, 2026-03-01 14:30, 2026-03-01T14:30:00.250+02:00, "
    "2026-03-01 14:30:00 -0500, and the basic form 20260301, 20260301T143000",
    "us": "US month/day/year: 03/01/2026, 3/1/2026 14:30, 3/1/2026 14:30:05, 3/1/2026 2:30 PM, "
    "3/1/26 14:30 (a two-digit year: 00-69 are 2000-2069, 70-99 are 1970-1999)",
    "eu": "European day.month.year: 01.03.2026, 1.3.2026 14:30, 01/03/2026, 01-03-2026 14:30:05, "
    "01.03.26 (a two-digit year: 00-69 are 2000-2069, 70-99 are 1970-1999)",
    "ymd": "year/month/day: 2026/03/01, 2026/3/1 14:30, 2026.03.01 14:30:05",
    "names": "English month names: 1 Mar 2026, 01-MAR-2026 14:30, Mar 1, 2026, March 1, 2026 14:30",
    "epoch_s": "Unix time in seconds: 1772375400 (a fraction is allowed)",
    "epoch_ms": "Unix time in milliseconds: 1772375400000",
    "excel": "a spreadsheet's serial date (days since 1899-12-30, a fraction for the time): "
    "46082, 46082.604166 (2026-03-01 14:30)",
}
#: The contract's own parsers (not Snowflake formats).
OWN_PARSERS = ("iso", "epoch_s", "epoch_ms", "excel")
#: Elements a declared Snowflake format may use; they mean the same on Snowflake and (translated by
#: sqlglot) on the embedded warehouse. Time zones are left out on purpose: the backends resolve them
#: differently. So are two-digit years, but for ``YY`` after the day and month (``DD/MM/YY``): the
#: format is read as ``YYYY`` and the value's year written out first, the same on both backends.
FORMAT_ELEMENTS = (
    "YYYY",
    "MMMM",
    "MON",
    "MM",
    "DD",
    "DY",
    "HH24",
    "HH12",
    "MI",
    "SS",
    "FF3",
    "FF6",
    "FF9",
    "AM",
    "PM",
    '"T"',
)
FORMAT_SEPARATORS = " -/.:,"
#: A format whose day and month come first, the year third (``DD/MM/YYYY``, ``MM.DD.YY``): the one
#: shape where a two-digit year is read (``ingest.dates``).
DAY_MONTH_FIRST = r"(MM|DD)[/.-](MM|DD)[/.-]"


def layout_parts(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The parts of a ``date_formats`` value: a shortcut, a Snowflake format, or a list of them.

    Raises:
        ValueError: an unknown shortcut or a format element outside :data:`FORMAT_ELEMENTS`; the
            message says what is accepted.
    """
    items = [value] if isinstance(value, str) else list(value)
    if not items:
        raise ValueError("an empty list of layouts")
    parts: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"{item!r} is not a date layout")
        key = item.strip()
        if key.lower() in DATE_LAYOUTS:
            parts += DATE_LAYOUTS[key.lower()]
        else:
            parts.append(check_format(key))
    return tuple(dict.fromkeys(parts))


def check_format(text: str) -> str:
    """A Snowflake date/time format, upper-cased; ``ValueError`` naming the first element not
    accepted."""
    fmt, i = text.strip().upper().replace('"t"', '"T"'), 0
    if re.match(DAY_MONTH_FIRST + "YY(?!Y)", fmt):  # a two-digit year after day and month:
        fmt = fmt[:6] + "YYYY" + fmt[8:]  # written out to four digits when parsed (ingest.dates)
    elif re.search(r"(?<!Y)YY(?!Y)", fmt):
        raise ValueError(
            f"{text!r}: a two-digit year (YY) is read only after the day and month, as in "
            "DD/MM/YY or MM/DD/YY (00-69 are 2000-2069, 70-99 are 1970-1999); write YYYY "
            "elsewhere"
        )
    elements = sorted(FORMAT_ELEMENTS, key=len, reverse=True)
    while i < len(fmt):
        if fmt[i] in FORMAT_SEPARATORS:
            i += 1
            continue
        hit = next((e for e in elements if fmt.startswith(e, i)), None)
        if hit is None:
            raise ValueError(
                f"{text!r} is neither a shortcut ({', '.join(DATE_LAYOUTS)}) nor a format made of "
                f"{', '.join(FORMAT_ELEMENTS)} and the separators {FORMAT_SEPARATORS!r} "
                f"(unknown at {text.strip()[i : i + 8]!r})"
            )
        i += len(hit)
    if "YYYY" not in fmt or not any(m in fmt for m in ("MM", "MON")) or "DD" not in fmt:
        raise ValueError(
            f"{text!r} must contain a year (YYYY), a month (MM, MON or MMMM) and a day (DD)"
        )
    return fmt


class SourceStatus(StrEnum):
    """What the ingest did with a source (``INGEST_LOG.STATUS``)."""

    LOADED = "loaded"  # found and read (or, in a plan: to be read)
    MISSING = "missing"  # optional and not found
    DISABLED = "disabled"  # switched off in the settings
    DERIVED = "derived"  # customers built from the orders (no customers file)


class Reason(StrEnum):
    """Exact rejection reasons, as written to ``REJECTED_*.REASON`` (tests assert these strings).

    Members are strings; pass ``str(reason)`` to Snowpark's ``F.lit`` (it refuses str subclasses).
    """

    INVALID_UTF8 = "invalid UTF-8"
    NUL_BYTE = "NUL byte"
    EMPTY_LINE = "empty line"
    LINE_TOO_LONG = "line too long"
    MALFORMED_JSON = "malformed JSON"
    NOT_AN_OBJECT = "not a JSON object"
    TOO_DEEP = "JSON nested too deeply"
    NUMBER_RANGE = "JSON number out of range"
    NOT_TEXT = "not a text file"
    OUTSIDE_DATA_DIR = "outside data_dir"
    NOT_A_FILE = "not a regular file"
    CSV_FIELD_COUNT = "malformed CSV line (wrong number of fields)"
    CSV_UNCLOSED_QUOTE = "malformed CSV line (unclosed quote)"
    CSV_SYNTAX = "malformed CSV line"
    MISSING = "missing required field"
    NOT_A_VALUE = "not a single value"
    INVISIBLE_IN_ID = "invisible character in id"
    BAD_DATE = "unparseable date"
    DATE_RANGE = "date out of range"
    NOT_A_NUMBER = "not a number"
    NOT_WHOLE = "not a whole number"
    NOT_POSITIVE = "not a positive quantity"
    RETURN_REJECTED = "return line (returns: reject)"
    NEGATIVE = "negative amount"
    OUT_OF_RANGE = "out of range"
    NOT_A_LIST = "not a list"
    NO_ITEMS = "no items"
    TOO_MANY_ITEMS = "too many items"
    NO_CONTENT = "neither text nor rating"
    DUPLICATE_CUSTOMER = "duplicate customer_id (first kept)"
    DUPLICATE_ORDER = "duplicate order_id (first kept)"
    DUPLICATE_LINE = "duplicate line (first kept)"
    UNKNOWN_CUSTOMER = "unknown customer_id"
    UNKNOWN_ORDER = "unknown order_id"
    # audio calls (customer_analytics.audio)
    UNREADABLE_AUDIO = "unreadable audio"
    SILENT_AUDIO = "silent audio"
    NO_SPEECH = "no speech recognised"
    AUDIO_BUDGET = "over max_audio_minutes"


class Excluded(StrEnum):
    """Why a readable, valid row is kept out of the CLEAN_ tables without being an error
    (``EXCLUDED_ORDER_LINES.REASON``; not counted against ``max_reject_share``)."""

    GUEST = "guest order (placeholder customer id)"
    RETURN = "return line (returns: exclude)"


#: What each exclusion means.
EXCLUSIONS: dict[str, str] = {
    Excluded.GUEST: "the customer id is empty or a placeholder (`guest_ids`: by default "
    + ", ".join(f"`{g}`" for g in DEFAULT_GUEST_IDS)
    + "): a guest checkout, not a customer. "
    "Its revenue is kept in `EXCLUDED_ORDER_LINES` and shown as guest orders",
    Excluded.RETURN: "a return or cancellation line while `returns: exclude`",
}


#: What each reason means (the data contract page lists them in this order).
REASONS: dict[str, str] = {
    Reason.INVALID_UTF8: "the bytes of the line (CSV: of the field) are not valid UTF-8 in a file "
    "that is otherwise UTF-8; re-export the file as UTF-8, or declare its encoding "
    "(`encodings: {orders: cp1252}`)",
    Reason.NUL_BYTE: "the field holds a NUL byte (binary data in a text file)",
    Reason.EMPTY_LINE: "a blank line (JSON lines) or an all-empty CSV record",
    Reason.LINE_TOO_LONG: "a line (or CSV record, or transcript) longer than "
    f"{MAX_LINE_BYTES // 2**20} MB",
    Reason.MALFORMED_JSON: "not valid JSON (RFC 8259): e.g. a trailing comma, single quotes, NaN, "
    "a cut-off line, "
    "an invalid \\u escape, or the same key twice in one object",
    Reason.NOT_AN_OBJECT: "valid JSON, but not an object `{…}` (e.g. a list or a bare number)",
    Reason.TOO_DEEP: f"objects and lists nested more than {MAX_JSON_DEPTH} levels deep (no export "
    "needs that many; it bounds the work per line)",
    Reason.NUMBER_RANGE: "a JSON number no warehouse can hold: beyond the range of a double "
    f"(e.g. `1e400`) or an integer of more than {MAX_JSON_INT_DIGITS} digits (the warehouse's "
    "JSON parser would refuse the whole load); quote it to keep it as text",
    Reason.NOT_TEXT: "a transcript that is binary data (an archive, a document, control bytes) "
    "under a `.txt` name",
    Reason.OUTSIDE_DATA_DIR: "a transcript that is a link to a file outside `data_dir`: it is "
    "never read (a data folder that is itself a link is fine; only escapes from it are refused)",
    Reason.NOT_A_FILE: "a transcript name that is not a regular file (a pipe, device or socket): "
    "it is not opened",
    Reason.CSV_FIELD_COUNT: "a CSV record with fewer fields than the header, or more (extra fields "
    "that are all "
    "empty, as left by trailing commas, are tolerated)",
    Reason.CSV_UNCLOSED_QUOTE: f"a quote opened but not closed within {MAX_RECORD_LINES} lines, or "
    "closed only by "
    "joining lines into a record with another number of fields than the "
    "header, or "
    "across a line that is a complete record on its own; only the line "
    "that opened it "
    "is rejected and reading resumes on the next line",
    Reason.CSV_SYNTAX: "a record the CSV parser cannot split (e.g. a lone carriage return outside "
    "quotes)",
    Reason.MISSING: "a required field is absent, null or empty",
    Reason.NOT_A_VALUE: "JSON lines: an object `{…}` or a list `[…]` where one value is "
    "expected, "
    "or `true`/`false` where an id, a date or a number is expected (text fields such as "
    "`cancelled` take `true`/`false` as text)",
    Reason.INVISIBLE_IN_ID: "an id holds a control character (tab, line break, …), a zero-width "
    "character, a soft hyphen or a bidirectional override: it would look like another id that "
    "it is not. Letters of any script, emoji and punctuation are fine",
    Reason.BAD_DATE: "not a date or timestamp in the column's layout (see *Date layouts*), or not "
    "a real "
    "calendar date (e.g. 2026-02-30)",
    Reason.DATE_RANGE: f"a date before {MIN_DATE} or after {MAX_DATE}",
    Reason.NOT_A_NUMBER: "not a plain decimal number (e.g. '12,50', '€3', 'n/a')",
    Reason.NOT_WHOLE: "a quantity, rating or birth year with a fractional part",
    Reason.NOT_POSITIVE: "a quantity of zero (a negative quantity is a return line, see *Returns*)",
    Reason.RETURN_REJECTED: "a return or cancellation line while `returns: reject`",
    Reason.NEGATIVE: "a price, amount or shipping cost below zero",
    Reason.OUT_OF_RANGE: f"a rating outside {RATINGS[0]}-{RATINGS[1]}, a birth year outside "
    f"{BIRTH_YEARS[0]}-{BIRTH_YEARS[1]}, a quantity above {MAX_QUANTITY:,} or "
    "an amount above "
    f"{MAX_AMOUNT:,.0f}",
    Reason.NOT_A_LIST: "`items` is present but not a JSON list",
    Reason.NO_ITEMS: "`items` is an empty list: the order has no line",
    Reason.TOO_MANY_ITEMS: f"`items` has more than {MAX_ITEMS:,} elements: the order is rejected "
    "whole (one row), "
    "which bounds the memory and work per order",
    Reason.NO_CONTENT: "a review with neither text nor rating",
    Reason.DUPLICATE_CUSTOMER: "a customer_id seen on an earlier valid line; the first is kept",
    Reason.DUPLICATE_ORDER: "JSON lines: an order_id seen on an earlier line. CSV: an order_id "
    "whose earlier lines "
    "have another customer_id or timestamp. The first is kept",
    Reason.DUPLICATE_LINE: "reviews: an exact repeat of an earlier valid review (same customer, "
    "time, rating and "
    "text; and order, for reviews read through their order); orders: a `line_id` seen on an "
    "earlier line of the same order. Typically an "
    "export appended twice",
    Reason.UNKNOWN_CUSTOMER: "the customer_id is not among the accepted customers (only when a "
    "customers file is "
    "used): absent from that file, or its line there was rejected",
    Reason.UNKNOWN_ORDER: "a review read through its order (a reviews file without "
    "customer_id): the order_id is not among the accepted order lines (absent from the orders, "
    "their lines rejected, or a guest order)",
    Reason.UNREADABLE_AUDIO: "a call recording the decoder cannot read (not WAV, FLAC, MP3 or Ogg "
    "Vorbis, cut off or corrupt) or with a sample rate outside 8,000-192,000 Hz",
    Reason.SILENT_AUDIO: "a call recording whose level stays below -50 dBFS, or shorter than 0.2 s",
    Reason.NO_SPEECH: "a call recording in which the speech recognizer found no word",
    Reason.AUDIO_BUDGET: "a call recording not transcribed in this run: it does not fit in what is "
    "left of `max_audio_minutes` of new audio; a later run transcribes it (transcripts are cached)",
}
#: The reasons only audio calls can have.
AUDIO_REASONS = (
    Reason.UNREADABLE_AUDIO,
    Reason.SILENT_AUDIO,
    Reason.NO_SPEECH,
    Reason.AUDIO_BUDGET,
)


@dataclass(frozen=True)
class Field:
    """One field of a source.

    Attributes:
        name: the contract name; also the default column (CSV) or key (JSON) in the file.
        kind: ``id``, ``text``, ``date``, ``timestamp``, ``integer``, ``number`` or ``list``.
        required: ``"yes"``, ``"no"``, or a note on when it is required.
        description: meaning, unit and what happens when it is absent.
        clean: the column it becomes in the CLEAN_ table ("" if none).
        json_path: default location in a JSON record when it differs from ``name`` (dotted).
        level: ``item`` for fields of one element of ``items`` (nested JSON orders).
        need: when a row must have a value, as the checks apply it: ``always``; ``jsonl`` (JSON
            lines always, CSV only when the file has the column); ``in_file`` (every row, when the
            file has the column or key at all); ``never``.
        group: fields that stand in for each other: ``price`` (the first one the file has is used,
            and is then needed on every row) or ``content`` (at least one of them per row).
        lo, hi: inclusive range of a number (``lo`` = 0: below it is a negative amount).
        sign: ``positive`` (> 0) or ``nonzero`` (≠ 0; ``hi`` bounds the absolute value).
        signed_for_returns: below 0 is allowed on a return line (the line total of a return).
    """

    name: str
    kind: str
    required: str
    description: str
    clean: str = ""
    json_path: str = ""
    level: str = "record"
    need: str = "never"
    group: str = ""
    lo: float | None = None
    hi: float | None = None
    sign: str = ""
    signed_for_returns: bool = False

    @property
    def is_required(self) -> bool:
        return self.required == "yes"

    @property
    def whole(self) -> bool:
        """Whether the field holds a whole number."""
        return self.kind == "integer"


@dataclass(frozen=True)
class Source:
    """One input source: where it is read from, what one row is, and its fields."""

    name: str
    setting: str
    default_file: str
    formats: tuple[str, ...]
    required: bool
    row: str
    when_absent: str
    fields: tuple[Field, ...]
    clean_table: str
    rejected_table: str

    def field(self, name: str) -> Field:
        """The field called ``name``."""
        return next(f for f in self.fields if f.name == name)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


ORDERS = Source(
    name="orders",
    setting="orders_file",
    default_file="orders.jsonl",
    formats=("jsonl", "csv"),
    required=True,
    row="one order line: an element of `items` (JSON lines; a line whose `items` is missing, empty "
    "or that cannot "
    "be read at all counts as one row) or one CSV record",
    when_absent="the run stops: orders are the only required source",
    clean_table="CLEAN_ORDER_LINES",
    rejected_table="REJECTED_ORDER_LINES",
    fields=(
        Field(
            "order_id",
            "id",
            "JSON lines: yes; CSV: no",
            "order identifier; in a CSV without it, an order is one customer's lines with the "
            "same `ts`",
            "ORDER_ID",
            need="jsonl",
        ),
        Field(
            "customer_id",
            "id",
            "yes",
            "who placed the order; empty or a placeholder (`guest_ids`): a guest "
            "order, excluded (see *Guest orders*)",
            "CUSTOMER_ID",
            need="always",
        ),
        Field(
            "ts",
            "timestamp",
            "yes",
            "when the order was placed: a date or a timestamp (local time; a time "
            "zone suffix is dropped)",
            "TS",
            need="always",
        ),
        Field(
            "items",
            "list",
            "JSON lines: yes",
            "the order lines: a list of objects with the item fields below",
            need="jsonl",
        ),
        Field(
            "product",
            "text",
            "no",
            f"product type (lower-cased). Absent from the whole file: every line gets "
            f"'{ALL_PRODUCTS}'. Present in the file but empty on a line: rejected",
            "PRODUCT",
            level="item",
            need="in_file",
        ),
        Field(
            "quantity",
            "integer",
            "yes, unless the file has no quantity at all",
            "units ordered, a whole number other than 0; below 0 the line is a "
            "return (CLEAN_ORDER_LINES keeps the sign). A file without any quantity (no such "
            "column, no such key on any item) has one row per unit, as marketplace exports "
            "such as Olist's order items: every line is 1 unit and the `01_ingest` summary says "
            "so; not when `quantity` is mapped to a column the file lacks, or when the file has "
            "an unmapped column named like a quantity (`Qty`, `Menge`, `Units`, …): the run "
            "stops and asks for the mapping",
            "QUANTITY",
            level="item",
            need="in_file",
            sign="nonzero",
            hi=MAX_QUANTITY,
        ),
        Field(
            "unit_price",
            "number",
            "this or `amount`",
            "price of one unit, ≥ 0 (the shop's currency). When the "
            "file has it (a CSV column, or a value on any JSON item), every line needs it",
            "UNIT_PRICE",
            level="item",
            group="price",
            lo=0,
            hi=MAX_AMOUNT,
        ),
        Field(
            "amount",
            "number",
            "this or `unit_price`",
            "line total, ≥ 0 (below 0 on a return line); used "
            "when there is no `unit_price`: UNIT_PRICE = |amount| / |quantity|",
            "UNIT_PRICE",
            level="item",
            group="price",
            lo=0,
            hi=MAX_AMOUNT,
            signed_for_returns=True,
        ),
        Field(
            "line_id",
            "id",
            "no",
            "order line identifier (an order-item id, or a line number within its order such "
            "as Olist's `order_item_id` 1, 2, …); when the file has it, a line whose order id and "
            "line_id were both seen on an earlier line is rejected (the line_id alone in a CSV "
            "without order ids): the guard against an export appended twice "
            "(identical lines "
            "without it are kept: an order may list the same product twice)",
            level="item",
        ),
        Field(
            "cancelled",
            "text",
            "no",
            "marks a return or cancellation line: "
            + ", ".join(f"`{v}`" for v in CANCELLED_VALUES[:6])
            + ", … (any other value: a purchase)",
            "IS_RETURN",
        ),
        Field("coupon", "text", "no", "coupon code, if any", "COUPON"),
        Field(
            "ship_method",
            "text",
            "no",
            "shipping method",
            "SHIP_METHOD",
            json_path="shipping.method",
        ),
        Field(
            "ship_cost",
            "number",
            "no",
            "shipping cost of the order, ≥ 0",
            "SHIP_COST",
            json_path="shipping.cost",
            lo=0,
            hi=MAX_AMOUNT,
        ),
    ),
)

CUSTOMERS = Source(
    name="customers",
    setting="customers_file",
    default_file="customers.csv",
    formats=("csv", "jsonl"),
    required=False,
    row="one CSV record or JSON line",
    when_absent="CLEAN_CUSTOMERS is derived from the accepted orders: one row per customer_id, "
    "SIGNUP_DATE = date "
    f"of the first order, COUNTRY and CHANNEL = '{UNKNOWN}', BIRTH_YEAR empty; orders "
    "are not checked "
    "against a customer list",
    clean_table="CLEAN_CUSTOMERS",
    rejected_table="REJECTED_CUSTOMERS",
    fields=(
        Field(
            "customer_id", "id", "yes", "customer identifier, unique", "CUSTOMER_ID", need="always"
        ),
        Field(
            "signup_date",
            "date",
            "yes",
            "when the customer signed up (a timestamp is cut to its date)",
            "SIGNUP_DATE",
            need="always",
        ),
        Field(
            "country",
            "text",
            "no",
            f"country code (upper-cased); '{UNKNOWN}' when absent",
            "COUNTRY",
        ),
        Field(
            "acquisition_channel",
            "text",
            "no",
            f"how the customer was acquired (lower-cased); '{UNKNOWN}' when absent",
            "CHANNEL",
        ),
        Field(
            "birth_year",
            "integer",
            "no",
            f"year of birth, {BIRTH_YEARS[0]}-{BIRTH_YEARS[1]}",
            "BIRTH_YEAR",
            lo=BIRTH_YEARS[0],
            hi=BIRTH_YEARS[1],
        ),
    ),
)

REVIEWS = Source(
    name="reviews",
    setting="reviews_file",
    default_file="reviews.jsonl",
    formats=("jsonl", "csv"),
    required=False,
    row="one JSON line or CSV record",
    when_absent="CLEAN_REVIEWS has no review rows (the model gets no review features from them)",
    clean_table="CLEAN_REVIEWS",
    rejected_table="REJECTED_REVIEWS",
    fields=(
        Field(
            "customer_id",
            "id",
            "this or `order_id`",
            "who wrote the review",
            "CUSTOMER_ID",
            need="always",
        ),
        Field(
            "order_id",
            "id",
            "no",
            "the order the review is about. A file without customer_id (Olist's reviews) takes "
            "each review's customer from its order among the accepted order lines; a review of "
            "an order not there is rejected (`unknown order_id`). Read only then",
        ),
        Field("ts", "timestamp", "yes", "when it was written", "TS", need="always"),
        Field(
            "rating",
            "integer",
            "this or `text`",
            f"stars, {RATINGS[0]}-{RATINGS[1]}",
            "RATING",
            group="content",
            lo=RATINGS[0],
            hi=RATINGS[1],
        ),
        Field(
            "text",
            "text",
            "this or `rating`",
            "free text (any length up to the line limit)",
            "TEXT",
            group="content",
        ),
    ),
)

CALLS = Source(
    name="calls",
    setting="calls_dir",
    default_file="calls",
    formats=("txt", "audio"),
    required=False,
    row="one transcript file `*.txt`, or one recording (`.wav`, `.flac`, `.mp3`, `.ogg`; see "
    "*Audio calls*), any case, in the folder itself. Every other entry is not read and is counted "
    "by reason in the 01 report and the log, never named: hidden files, sub-folders (not "
    "entered), compressed files, documents, other audio or video, other extensions",
    when_absent="no call rows in CLEAN_REVIEWS",
    clean_table="CLEAN_REVIEWS",
    rejected_table="REJECTED_REVIEWS",
    fields=(
        Field(
            "customer_id",
            "id",
            "yes",
            "a header line `customer_id: …` (or `customer: …`) at the top of the "
            "file, else the file name `<customer_id>_<YYYY-MM-DD>[_anything].txt` (a recording: "
            "always the file name)",
            "CUSTOMER_ID",
            need="always",
        ),
        Field(
            "ts",
            "timestamp",
            "yes",
            "a header line `ts: …` (or `date: …`, `timestamp: …`), else the date in the file name",
            "TS",
            need="always",
        ),
        Field(
            "text",
            "text",
            "yes",
            "the transcript: everything after the header lines (and the blank line "
            "that ends them), or the whole file when it has no header; for a recording, "
            "what the speech recognizer heard",
            "TEXT",
            need="always",
        ),
    ),
)

#: Every source, in the order they are ingested (customers first: orders are checked against them).
SOURCES: tuple[Source, ...] = (CUSTOMERS, ORDERS, REVIEWS, CALLS)
#: Sources whose column names may be mapped in ``env.yaml`` (``columns: {source: {field:
#: your_column}}``).
MAPPABLE = {s.name: s for s in (ORDERS, CUSTOMERS, REVIEWS)}


#: Why an entry of the calls folder is not read (the 01 report and the log count them by reason;
#: names are never shown, they may hold personal data).
SKIP_HIDDEN = "hidden (the name starts with '.')"
SKIP_FOLDER = "a sub-folder (transcripts are read from the calls folder itself, not from below it)"
SKIP_COMPRESSED = "compressed: unpack it into the calls folder"
SKIP_DOCUMENT = "a document: save the transcript as plain text (.txt, UTF-8)"
SKIP_MEDIA = (
    "audio or video in a format not read: convert it to .wav, .flac, .mp3 or .ogg (transcribed "
    "by the ingest) or transcribe it into a .txt file"
)
#: Recordings read from a calls folder (any case) and transcribed (:mod:`customer_analytics.audio`).
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
SKIP_TEXT = "text under another extension (.text, .md, .log, …): rename it to .txt to have it read"
SKIP_OTHER = "not a .txt file"
#: File name endings of each kind of skipped entry (compared in lower case).
SKIP_SUFFIXES: dict[str, tuple[str, ...]] = {
    SKIP_COMPRESSED: (".gz", ".zip", ".bz2", ".xz", ".zst", ".7z", ".rar", ".tgz", ".tar"),
    SKIP_DOCUMENT: (".pdf", ".doc", ".docx", ".rtf", ".odt", ".html", ".htm", ".pages"),
    SKIP_MEDIA: (".m4a", ".aac", ".wma", ".opus", ".mp4", ".webm", ".mov", ".amr", ".aiff"),
    SKIP_TEXT: (".text", ".md", ".log", ".srt", ".vtt", ".asc"),
}
CALL_SKIPS = (
    SKIP_HIDDEN,
    SKIP_FOLDER,
    SKIP_COMPRESSED,
    SKIP_DOCUMENT,
    SKIP_MEDIA,
    SKIP_TEXT,
    SKIP_OTHER,
)


def source(name: str) -> Source:
    """The source called ``name``."""
    return next(s for s in SOURCES if s.name == name)


def candidates(data_dir: Path, name: str) -> list[Path]:
    """Where a source named ``name`` may be: the name itself, then the same stem with another
    accepted extension.

    So ``orders_file: orders.jsonl`` also finds an ``orders.csv`` export (the report says which file
    was used).
    """
    path = data_dir / name
    others = sorted({ext for ext in _ALTERNATIVES if ext != path.suffix.lower()})
    return [path, *(path.with_suffix(ext) for ext in others)]


def locate(data_dir: Path, name: str) -> Path | None:
    """The file :func:`candidates` finds first, or ``None``."""
    return next((p for p in candidates(data_dir, name) if p.is_file()), None)


def file_format(path: Path) -> str | None:
    """``jsonl`` or ``csv`` from the file name extension, ``None`` if it is not an accepted one."""
    return FORMATS.get(path.suffix.lower())


# --------------------------------------------------------------------------- the contract page
def _source_section(src: Source) -> list[str]:
    fmt = {
        "jsonl": "JSON lines (`.jsonl`, `.ndjson`, `.json`: one object per line)",
        "csv": "CSV (`.csv`; also `.tsv`, `.tab` and `.txt`: delimited text, the separator is "
        "detected), or a spreadsheet workbook (`.xlsx`, `.xlsm`, `.xls`, `.ods`: see *Workbooks*)",
        "txt": "plain-text files (`.txt`), UTF-8",
        "audio": "recordings (`.wav`, `.flac`, `.mp3`, `.ogg`), 8-192 kHz, transcribed offline "
        "(see *Audio calls*)",
    }
    out = [
        f"### `{src.name}` — {'required' if src.required else 'optional'}",
        "",
        f"- **File**: `{src.setting}` in `env.yaml` (default `{src.default_file}`, inside "
        "`data_dir`).",
        "- **Formats**: " + "; ".join(fmt[f] for f in src.formats) + ".",
        f"- **One row is** {src.row}.",
        f"- **When absent**: {src.when_absent}.",
        f"- **Lands in** `{src.clean_table}`; rejected rows in `{src.rejected_table}`.",
        "",
        "| field | type | required | meaning | clean column |",
        "|---|---|---|---|---|",
    ]
    for f in src.fields:
        name = f"`{f.name}`" + (f" (JSON: `{f.json_path}`)" if f.json_path else "")
        name += " (JSON: in each element of `items`)" if f.level == "item" else ""
        out.append(f"| {name} | {f.kind} | {f.required} | {f.description} | {f.clean or '—'} |")
    return out + [""]


def render_markdown() -> str:
    """The data contract as Markdown (the content of ``docs/data_contract.md``)."""
    lines = [
        "# Data contract",
        "",
        "<!-- Generated by `python -m customer_analytics.contract --write docs/data_contract.md` "
        "from",
        "     src/customer_analytics/contract.py; tests/test_ingest_contract.py fails when they "
        "disagree. -->",
        "",
        "What the ingest (`notebooks/01_ingest.ipynb`, `customer_analytics.ingest`) accepts, and "
        "what it does",
        "with everything else. All input files live in `data_dir` (`env.yaml`).",
        "",
        "## General rules",
        "",
        "- **Encoding**: UTF-8 (a byte-order mark is allowed, also at the start of a line of files "
        "joined together). A file in another encoding is read through a UTF-8 copy (line numbers "
        "stay the file's) and the 01 summary says how it was read: UTF-16 or UTF-32 by its "
        "byte-order mark (or, without one, by its zero bytes); a file with at least "
        f"{LEGACY_MIN_BAD} bytes that are not UTF-8 and no character beyond ASCII written in "
        "UTF-8 (the whole file is checked) as Windows-1252, the 8-bit encoding of spreadsheet "
        "exports on Windows in Western Europe and the Americas; or as declared per source: "
        "`encodings: {orders: cp1250}` (any Python codec name: `latin-1`, `cp1251`, `utf-16`, "
        "`shift_jis`, …; `utf-8` turns detection off). A file in UTF-8 with a few damaged lines "
        "stays UTF-8: those lines (CSV: fields) are rejected as `invalid UTF-8`. Call transcripts "
        "are detected one by one the same way (UTF-16/32, Windows-1252, else UTF-8) and the 01 "
        "summary counts those not in UTF-8. Line endings: "
        "`\\n` or `\\r\\n`, mixed or not; a line break inside a quoted CSV field is kept "
        "exactly as in the file. A file with lines ending in a carriage return alone, or that is "
        "an archive, a document, an image or other binary data stops the run with what it is and "
        "how to re-export it.",
        "- **Workbooks**: a source may be a spreadsheet workbook (`.xlsx`, `.xlsm`, `.xls`, "
        "`.ods`; read with calamine). It is read through a CSV copy: the first visible "
        "worksheet's first row is the header, and every later visible worksheet whose first row "
        "is the same header adds its rows (a workbook with a sheet per year); other sheets are "
        "not read and the 01 summary names them. Dates are taken as the cells hold them (ISO "
        "8601 in the copy, whatever the cell format shows), whole numbers without the `.0` of "
        "Excel's doubles (ids, quantities), line breaks inside a cell as spaces, so line numbers "
        "are the sheet's row numbers (of the first sheet; a later sheet's rows follow on). A "
        "damaged or password-protected workbook stops the run with what to do. The tests write "
        "`.xlsx` and `.ods` files; `.xls` (Excel 97-2003) is read by the same library but not "
        "tested here.",
        "- **Where files may be**: inside `data_dir` only. A file, transcript or calls folder that "
        "resolves outside it (a link, `..`) is refused and never read; so is anything that is not "
        "a "
        "regular file (a pipe, a device). A `data_dir` that is itself a link is fine.",
        "- **CSV**: fields separated by commas — or by `;`, tabs, `|` or runs of spaces (columns "
        "aligned with spaces; spaces starting or ending a line are not fields): the separator is "
        "the one under which the header names the mapped columns (then the one giving the most "
        "fields; a comma on a tie; runs of spaces only when they name a column), so spreadsheets' "
        "semicolon exports are read as they are (decimal commas: see *Numbers*); "
        "first line = header (unless `column_names` lists the columns of a file without one, "
        "`column_names: {orders: [customer_id, ts, quantity, amount]}`: its first line is then a "
        "record, and the separator the one that splits it into that many fields); "
        'fields quoted with `"` when needed (RFC '
        "4180: a quote "
        "inside a quoted field is doubled; quoted fields may span lines). Column names are matched "
        "case-insensitively, ignoring surrounding spaces; a column the run reads that the header "
        "names twice stops the run (which one holds the field would be a guess); "
        "columns not in the contract are ignored (they are kept "
        "in the `RAW_*` and `REJECTED_*` tables as part of the record).",
        "- **JSON lines**: one JSON object per line, strict JSON (RFC 8259). A file that is one "
        "JSON array is "
        "refused with a message saying how to convert it.",
        "- **Your own column names**: map them in `env.yaml`, contract field on the left, your "
        "column (CSV) or "
        "key (JSON, dotted for nested keys) on the right:",
        "",
        "  ```yaml",
        "  orders_file: export.csv",
        "  columns:",
        "    orders: {customer_id: Kundennummer, ts: Bestelldatum, product: Artikel, quantity: "
        "Menge, "
        "amount: Betrag}",
        "  ```",
        "",
        "- **Empty values**: an empty string (after trimming spaces) or JSON `null` is a missing "
        "value.",
        "- **Ids**: text, compared exactly after trimming spaces; an id written as a whole number "
        "with a decimal point (`13085.0`, as spreadsheets and pandas write the integer ids of a "
        "column with gaps) is that number (`13085`), so an orders export and a customer list "
        "written by different tools still match.",
        "- **Dates and timestamps**: see *Date layouts* below; by default ISO 8601 — `2026-03-01`, "
        "`2026-03-01 14:30`, `2026-03-01T14:30:00.250`, `20260301`, `20260301T143000`; a time-zone "
        "suffix "
        "(`Z`, `UTC`, `+02:00`, `+0200`, also after a space: `2026-03-01 14:30:00 -0500`) is "
        "accepted and dropped (times are taken as the shop's local time). "
        f"Accepted range: {MIN_DATE} to {MAX_DATE}.",
        "- **Numbers**: plain decimals with a dot (`12.5`, `-3`, `1e3`). In a CSV file, also as "
        "spreadsheets and shop systems write them, each column read one way, which the "
        "`01_ingest` summary names: with a decimal comma (`3,50`, `1.234,5`: dots group "
        "thousands) where more values read so than as plain numbers and one of them at least has "
        "a comma no thousands separator explains (`3,50`; `2,000` alone may be a US two "
        "thousand); otherwise with commas grouping thousands (`1,234.50`, `1,234`) where the "
        "column shows a decimal dot (`1,234.50`, or `3.50` beside `1,234`); and with one currency "
        "sign or code before or after the amount (`$3.50`, `-$3.50`, `3,50 €`, `USD 3.50`, "
        "`R$ 3,50`, `3,50 zł`, also with a no-break space; signs $ € £ ¥ ₹ ₩ ₽ ₺ ₪ ₫ ฿, "
        + ", ".join(sorted(t for t in CURRENCY_TOKENS if not (t.isalpha() and t.isupper())))
        + " and the ISO codes "
        + " ".join(sorted(t for t in CURRENCY_TOKENS if t.isalpha() and t.isupper()))
        + " in capitals; the sign is dropped, not converted: amounts are taken in the run's "
        "`currency`, and the summary warns when a sign is not its own). Thousands grouped by "
        "spaces or apostrophes, never a decimal mark, "
        "are read in either (`1 234,50` French, also with no-break spaces; `1'234.50` Swiss); "
        "so is an amount in parentheses, the accounting notation of a negative one (`(3.50)`, "
        "`($1,234.50)`: a refund's line total; not with a sign inside, `(-3.50)`), and one with "
        "its minus sign after it, as SAP and other ERP systems write negatives (`3.50-`, "
        "`1.234,50-`). "
        "Anything else is not a number: `1,000` and `2,500` alone (US thousands or decimal "
        "commas: nothing says which); JSON lines and warehouse "
        "tables carry numbers as numbers.",
        f"- **Line limit**: a line (or CSV record, or transcript) over {MAX_LINE_BYTES // 2**20} "
        "MB is rejected "
        f"without being loaded; an order (JSON line) with more than {MAX_ITEMS:,} items is "
        "rejected whole. The "
        "reader stages the items of each order as rows of their own, so the warehouse's memory per "
        "line grows "
        "with its size, not with its size times its number of items.",
        "",
        "## Date layouts",
        "",
        "Every date or timestamp column is parsed in the warehouse with one *layout*, chosen per "
        "source and "
        "field:",
        "",
        "- **Declared** in `env.yaml` (or on the command line): `date_formats: {orders: {ts: "
        '"MM/DD/YYYY '
        'HH24:MI"}}`. A layout is a shortcut below, a Snowflake format (the syntax of '
        "`TRY_TO_TIMESTAMP`; "
        f"elements {', '.join(f'`{e}`' for e in FORMAT_ELEMENTS)}, separators "
        f"{' '.join(f'`{c}`' for c in FORMAT_SEPARATORS.strip())} and space), or a list of them "
        "tried in order. "
        "The same string gives the same result on Snowflake and on the embedded warehouse; "
        "time-zone elements are not accepted because the two resolve them differently. A "
        "two-digit year (`YY`) is accepted after the day and month only (`DD/MM/YY`, "
        "`MM/DD/YY HH24:MI`): the year is written out before parsing, 00-69 as 2000-2069 and "
        "70-99 as 1970-1999 (Snowflake's default century), the same on both; the `us` and `eu` "
        "shortcuts read such dates too.",
        "- **Detected** otherwise: each shortcut is tried on the column's distinct values (rows "
        "spread over the "
        "whole file, at most 100,000): when exactly one parses the most values, it is used and the "
        "`01_ingest` "
        "report says so; when several parse them equally (`01/02/2021` is 1 February or 2 "
        "January), the run "
        "stops, lists them with example values and names the setting to choose. When none parses "
        "anything, "
        "ISO 8601 is assumed and the rows are rejected as unparseable dates.",
        "",
        "| shortcut | accepts |",
        "|---|---|",
        *[f"| `{k}` | {v} |" for k, v in LAYOUT_TEXT.items()],
        "",
        "A value outside the accepted range (an epoch number too, before or after it) is rejected; "
        "the reason "
        "names the expected layout in the report.",
        "",
        "## Returns and cancellations",
        "",
        "A return or cancellation is part of the order history, not an error. An order line is a "
        "**return line** "
        "when its quantity is below 0, when a column mapped to `cancelled` holds "
        + ", ".join(f"`{v}`" for v in CANCELLED_VALUES)
        + " (any case), or when its order id starts with "
        "`return_order_prefix` (e.g. `C` for invoices such as `C536379`). What happens to it is "
        "`returns`:",
        "",
        "- `net` (default): kept in `CLEAN_ORDER_LINES` with `IS_RETURN` true and a **negative** "
        "`QUANTITY` "
        "(`UNIT_PRICE` stays ≥ 0; a negative line total is allowed on a return line). "
        "`CLEAN_ORDERS.ORDER_TOTAL` "
        "is net, `RETURN_TOTAL` the value returned, `IS_RETURN` true for an order of returns only. "
        "Every spend "
        "downstream — features, labels, the EDA, predictions — is **net**; order counts, recency "
        "and the gaps "
        "between orders count purchases only. The `01_ingest` report shows the return rate (value "
        "returned / "
        "value sold).",
        "- `exclude`: return lines go to `EXCLUDED_ORDER_LINES` (reason "
        f"`{Excluded.RETURN}`); spend is gross.",
        f"- `reject`: return lines are rejected (`{Reason.RETURN_REJECTED}`) and count against "
        "`max_reject_share`: for shops that have no returns, where a negative quantity is a data "
        "error.",
        "",
        "## Guest orders and placeholder customers",
        "",
        "An order line whose customer id is empty or one of `guest_ids` (trimmed, any case; by "
        "default "
        + ", ".join(f"`{g}`" for g in DEFAULT_GUEST_IDS)
        + ") belongs to a guest checkout, not to a customer. "
        "It is **excluded**, not rejected: it passes every other check, then goes to "
        "`EXCLUDED_ORDER_LINES` "
        "with its typed values (so the EDA can show guest revenue) and does not count against "
        "`max_reject_share`. A run where every order line is excluded stops. A customer who holds "
        "more than "
        f"{SUSPECT_SHARE:.0%} of the orders or of the spend (and 25 times an average customer's "
        "share) is named "
        "in the `01_ingest` report as a likely placeholder — verbatim when the id reads as one "
        "(one character repeated, or no digit and only words like `blank`, `guest`, `cash`, "
        "`walk-in`: `(blank)`, `0000`, `Cash customer`), masked otherwise (ids with digits, and "
        "names and e-mail addresses used as ids, are personal data) — so it can be added to "
        "`guest_ids`.",
        "",
        "## Customer attributes on order lines",
        "",
        "Without a customers file, `CLEAN_CUSTOMERS` is derived from the orders. Attributes that "
        "the order lines "
        "carry are mapped with `customer_attributes: {country: Country, channel: SalesChannel, "
        "segment: Type}`: "
        "each customer gets the most frequent value on its accepted lines (ties: the smallest "
        "value). `country` "
        "and `channel` fill `COUNTRY` (upper-cased) and `CHANNEL` (lower-cased); any other name "
        "becomes a "
        "column of its own. With a customers file, the file's values are used.",
        "",
        "## Order fields given once per order",
        "",
        "Exports with one row per line item (Shopify's, WooCommerce's) often write the order's "
        "date and customer on its first row only. In a CSV with an order id, an order line whose "
        "date or customer id is empty takes it from the nearest line above with the same order id "
        "(else the first below that has it). The `01_ingest` summary counts the lines filled per "
        "column. An order that has the value on no line keeps it empty (a missing date is "
        "rejected; a missing customer is a guest order); lines of one order that disagree are "
        f"rejected as `{Reason.DUPLICATE_ORDER}`. JSON lines carry these fields once per order "
        "already.",
        "",
        "## Product types",
        "",
        "Product names become column names downstream, so each gets a key that is a safe "
        "identifier: "
        "transliterated to ASCII (`crème brûlée` → `creme_brulee`), other characters as `_`, at "
        "most 40 "
        "characters. Names that give the same key (`choc-chip`, `choc chip`) are told apart, never "
        "merged: the "
        "most frequent keeps it, the next get `_2`, `_3`. Only the `max_product_types` (default "
        "25) most frequent "
        "types keep a key of their own; the rest are grouped as `other`. "
        "`CLEAN_ORDER_LINES.PRODUCT` holds the "
        "key and `PRODUCT_NAME` the name; the table `PRODUCT_TYPES` documents the mapping (and the "
        "report lists "
        "what was renamed or grouped).",
        "",
        "## Audio calls",
        "",
        "A calls folder may hold recordings beside the transcripts: WAV, FLAC, MP3 or Ogg Vorbis "
        "(`.wav`, `.flac`, `.mp3`, `.ogg`, any case), 8,000-192,000 Hz, any number of channels "
        "(mixed down), 8 to 32-bit integer or float samples. Each is resampled to 16 kHz mono and "
        "transcribed offline by the `audio_recognizer` (default `pocketsphinx`: CMU PocketSphinx 5 "
        "with the US-English model in its wheel; or `package.module:factory` for your own, e.g. a "
        "local Whisper model). The customer and date come from the file name "
        "(`<customer_id>_<YYYY-MM-DD>[_anything].<ext>`). A transcribed recording becomes a call "
        "row "
        "of `CLEAN_REVIEWS` like a transcript, with `RECOGNIZER` (name, version, model) and "
        "`CONFIDENCE` (mean word posterior, 0-1; both null for typed texts); `RAW_CALLS.RECORD` "
        "describes the recording (format, rate, channels, duration) and `AUDIO_SECONDS` its "
        "length. "
        "A recording that cannot be used is rejected (field `audio`) as *unreadable audio*, "
        "*silent "
        "audio*, *no speech recognised* or *over max_audio_minutes*; the usual checks (date, known "
        "customer) follow. Transcripts are cached by the file's content and the recognizer under "
        "`warehouse_dir/transcripts`, so a recording is transcribed once; at most "
        "`max_audio_minutes` of new audio is transcribed per run, the rest by later runs. "
        "Accuracy: the `01_ingest` report gives the recognizer's word error rate measured on the "
        "shipped demo recordings.",
        "",
        "## Freshness",
        "",
        "`INGEST_LOG` records, per source, the first and last timestamp of its accepted rows "
        "(`FIRST_TS`, "
        "`LAST_TS`); `customer_analytics.freshness.freshness(session)` returns them for the "
        "orders. Reports warn "
        "when `run_date` lies beyond the last order, and model comparison stops when its held-out "
        "window reaches "
        "past the data.",
        "",
        "## Sources in the warehouse",
        "",
        "Any of orders, customers and reviews can be read from a table or view instead of a file: "
        "`orders_table: RAW.SHOP.ORDERS` (`NAME`, `SCHEMA.NAME` or `DATABASE.SCHEMA.NAME`; the "
        "file setting must "
        "then be null or left at its default). The table is flat — one row per order line, like a "
        "CSV — and its "
        "columns are matched and mapped like a CSV header; each value is read as text and checked "
        "by the same "
        "contract, with the same accounting and rejection tables (`SOURCE_FILE` is the table's "
        "name, `LINE_NO` "
        "the row's rank in the order of its mapped values, `RECORD` the mapped values as JSON). On "
        "Snowflake, a "
        "file setting may also name a file on a stage (`orders_file: "
        "'@MY_STAGE/exports/orders.csv'`): it is "
        "fetched with `GET` and read like a local file. A table's change does not re-run the "
        "ingest by itself "
        "(the pipeline tracks files only): run `01_ingest` again, or use `--force`.",
        "",
        "## Row accounting",
        "",
        "For every source: **rows read = accepted + rejected + excluded + sampled out**. "
        "*Excluded* rows are "
        "valid but kept out on purpose (guest orders, returns with `returns: exclude`), with their "
        "reason in "
        "`EXCLUDED_ORDER_LINES`. *Sampled out* is non-zero only "
        "when `sample` < 1: accepted rows of customers outside the sample. Every check runs on "
        "every row before "
        "sampling, so rejections do not depend on `sample`. The accounting is asserted in code (a "
        "mismatch stops "
        "the run) and shown in the `01_ingest` report, per source and per reason; it is also "
        "written to the "
        "tables `INGEST_LOG` (one row per source, with file name, size, SHA-256 and status "
        "`loaded`, `missing`, `disabled` or, for customers built from the orders, `derived`) and "
        "`INGEST_REASONS` (rows per source, field and reason).",
        "",
        "Every rejected row is kept in its `REJECTED_*` table with `SOURCE_FILE`, `LINE_NO` "
        "(1-based physical "
        "line where the record starts; the header is line 1), `ITEM_NO` (orders: 0-based position "
        "in `items`), "
        "`FIELD` (the offending column or key as named in your file, or `line`), `REASON` (below), "
        "`VALUE` (the "
        "offending value, first 200 characters) and `RECORD` (the whole line as read; invalid "
        "bytes as `\\xNN`; for one item of a JSON line longer than 16 KB, the item itself, so that "
        "a line is never copied once per item).",
        "",
        "## How files are loaded",
        "",
        "Each file is read once, as a stream, by `customer_analytics.readers` (memory stays flat "
        "whatever the file "
        "size: rows go to a Parquet staging file in batches of at most 50,000 rows or 64 MB), "
        "which decides only "
        "what needs the raw bytes — encoding, line length, JSON and CSV syntax — and never stops "
        "on bad content. "
        "The staging file is loaded into `RAW_<SOURCE>` with one row per physical record; every "
        "other check runs "
        "in the warehouse, with the same Snowpark code on both backends:",
        "",
        "- **Embedded local warehouse** (`connection: local`): DuckDB reads the Parquet file "
        "directly.",
        "- **Snowflake**: `PUT` of the Parquet file to a temporary stage, then `COPY INTO … "
        "FILE_FORMAT = (TYPE = "
        "PARQUET) MATCH_BY_COLUMN_NAME = CASE_SENSITIVE ON_ERROR = ABORT_STATEMENT`; the rows "
        "loaded are checked "
        "against the rows read. `ON_ERROR = CONTINUE` (plus `VALIDATE`) is not used on purpose: "
        "bad records have "
        "already been quarantined with their line numbers, so a load error can only be a bug and "
        "must stop the "
        "run rather than drop rows. **Not exercised**: nothing here can reach Snowflake; this path "
        "is written "
        "against the documented `PUT`/`COPY INTO` syntax and the Snowpark `session.file.put` API "
        "but has never "
        "run against an account. Everything else (the checks, the accounting, the publication of "
        "the tables) runs "
        "in the tests on the embedded warehouse and is compared with an independent pandas "
        "implementation "
        "(`tests/reference.py`).",
        "",
        "The new tables are built as `*__NEW` and put in place together at the end (locally in one "
        "transaction; "
        "on Snowflake one `ALTER TABLE … SWAP WITH` per table, after every check has passed), so a "
        "run that "
        "stops half-way leaves the previous tables untouched. Re-running on the same files gives "
        "identical tables.",
        "",
        "A file not found under its configured name is looked for with the same stem and another "
        "accepted "
        "extension (`orders.jsonl` → `orders.csv`); the report names the file used.",
        "",
        "## Sources",
        "",
    ]
    for src in SOURCES:
        lines += _source_section(src)
    lines += [
        "## Rejection reasons",
        "",
        "Checks run in this order; a row gets the first reason that applies: reading (encoding, "
        "JSON/CSV "
        "syntax), then each field in the order of the tables above, then duplicates, then unknown "
        "customers.",
        "",
        "| reason | meaning |",
        "|---|---|",
        *[f"| `{r}` | {m} |" for r, m in REASONS.items()],
        "",
        "Exclusions (valid rows kept out on purpose, in `EXCLUDED_ORDER_LINES`; not errors):",
        "",
        "| reason | meaning |",
        "|---|---|",
        *[f"| `{r}` | {m} |" for r, m in EXCLUSIONS.items()],
        "",
        "## When the run stops instead",
        "",
        "The run stops with one message naming the file, the problem and the fix — before any "
        "`CLEAN_*` table "
        "is replaced (the previous tables stay as they were) — when:",
        "",
        "- `data_dir` or the orders file does not exist;",
        "- a file that exists is empty (0 bytes) or holds only blank lines, or a CSV has a header "
        "but no record;",
        "- a file is not UTF-8 text with LF or CRLF lines (see *Encoding*), lies outside "
        "`data_dir`, is not a regular file, or changes while it is read;",
        "- a CSV names a column the run reads twice, or its first line is a record (no header "
        "line): the message then quotes none of its fields;",
        "- a file's extension is not an accepted format, or a JSON-lines file is one JSON array, "
        "or its first "
        "lines are not JSON at all;",
        "- a required column is absent from a CSV header (or a required key from every JSON line); "
        "the message "
        "lists the columns found and the mapping to add;",
        "- the dates of a column fit several layouts (see *Date layouts*), or no order line is "
        "accepted;",
        "- more than `max_reject_share` (default "
        f"{DEFAULT_MAX_REJECT_SHARE:.0%}) of a source's rows are rejected; the message names the "
        "most common "
        "reasons with an example line, the expected layout or rule, up to three offending values "
        "of fields "
        "that are not personal data, and the fix — above half of the rows rejected, a mapping or "
        "layout problem, "
        'never "raise the threshold".',
        "",
        "The `01_ingest` report is still written: `ingest.run(session, params, "
        'on_error="return")` gives the '
        "counts and reasons checked so far with the message, the report shows them, and its last "
        "cell stops.",
        "",
        "An optional file that is absent is not an error: the report says it was missing and what "
        "was used "
        "instead. Delete an optional file (or set its setting to `null`) to run without it.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the contract page, or write it with ``--write PATH``."""
    ap = argparse.ArgumentParser(description="Render the data contract page from the code.")
    ap.add_argument("--write", type=Path, help="write to this file instead of printing")
    a = ap.parse_args(argv)
    text = render_markdown()
    if a.write:
        a.write.parent.mkdir(parents=True, exist_ok=True)
        a.write.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
