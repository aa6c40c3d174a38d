"""The contract's checks, generated from its field definitions and run in the warehouse (Snowpark).

Every field of a :class:`contract.Source` says its kind (id, text, date, timestamp, integer,
number, list), when a row needs it (``need``), its range (``lo``, ``hi``, ``sign``) and which
fields stand in for each other (``group``). :func:`field_checks` turns that into an ordered list
of checks; :func:`with_reason` gives each row the first one it fails. The same Snowpark code
runs on both backends.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import snowflake.snowpark.functions as F
from snowflake.snowpark import Column, DataFrame
from snowflake.snowpark.window import Window

from customer_analytics import contract
from customer_analytics import warehouse as wh
from customer_analytics.contract import CURRENCY_TOKENS, Field, Reason, Source
from customer_analytics.ingest import dates
from customer_analytics.ingest.common import (
    RAW_COLUMNS,
    VALUE_CHARS,
    IngestError,
    SourcePlan,
    fix_hint,
)

_NUMBER = r"[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?"
#: A number written with a decimal comma, dots grouping thousands: ``3,50``, ``1.234,5``, ``1.234``.
_COMMA_NUMBER = r"[+-]?([0-9]{1,3}([.][0-9]{3})+|[0-9]+)(,[0-9]+)?"
#: One that no thousands separator explains: a comma not followed by exactly three digits (``3,50``;
#: ``2,000`` may be a US two thousand).
_DECIMAL_COMMA = r"[+-]?([0-9]{1,3}([.][0-9]{3})+|[0-9]+),([0-9]{1,2}|[0-9]{4,})"
#: A number with commas grouping thousands and a decimal dot: ``1,234``, ``-12,345.5``.
_GROUPED = r"[+-]?[0-9]{1,3}(,[0-9]{3})+([.][0-9]+)?"
#: ... with a fraction, so unmistakably so: ``1,234.50``.
_GROUPED_FRACTION = r"[+-]?[0-9]{1,3}(,[0-9]{3})+[.][0-9]+"
#: A decimal dot no thousands separator explains (``3.50``; ``1.234`` may be a European thousand).
_DOT_DECIMAL = r"[+-]?[0-9]*[.]([0-9]{1,2}|[0-9]{4,})"
#: Currency signs a spreadsheet or a point-of-sale export writes with an amount.
CURRENCY_SIGNS = "$€£¥₹₩₽₺₪₫฿"
#: One currency sign or token (longest first: both regular-expression engines then agree).
_CURRENCY = "({}|[{}])".format(
    "|".join(re.escape(t) for t in sorted(CURRENCY_TOKENS, key=lambda t: (-len(t), t))),
    CURRENCY_SIGNS,
)
#: Every character of the signs and tokens: removed from a value that is an amount with one. The
#: ``$`` comes last: the embedded warehouse reads ``'$ABC'`` even in a string literal as a session
#: variable (fakesnow), so it must not be followed by a letter.
_CURRENCY_CHARS = "".join(sorted(set(CURRENCY_SIGNS + "".join(CURRENCY_TOKENS)) - {"$"})) + "$"
#: Spaces a spreadsheet may write beside a currency sign: a space, a no-break space (``3,50 €`` in
#: French and German locales) and a narrow no-break space.
_SIGN_SPACES = " \u00a0\u202f"
#: Characters that group thousands and are never a decimal mark: those spaces (French: ``1 234,50``)
#: and apostrophes (Swiss: ``1'234.50``).
_GROUP_SPACES = _SIGN_SPACES + "'\u2019"
#: A number whose thousands are grouped so: ``1 234,50``, ``1'234.50``, ``-12 345``.
_SPACED_DIGITS = rf"[0-9]{{1,3}}([{_GROUP_SPACES}][0-9]{{3}})+([.,][0-9]+)?"
_SPACED = rf"[+-]?{_SPACED_DIGITS}"
#: An amount with one currency sign or token before or after it, a space allowed beside it:
#: ``$3.50``, ``-$3.50``, ``$-3.50``, ``3,50 €``, ``£1,234.50``, ``1 234,50 €``, ``USD 3.50``.
_AMOUNT = rf"({_SPACED_DIGITS}|[0-9][0-9.,]*)"
_SIGNED = (
    rf"[+-]?[{_SIGN_SPACES}]?{_CURRENCY}[{_SIGN_SPACES}]?[+-]?{_AMOUNT}"
    rf"|[+-]?{_AMOUNT}[{_SIGN_SPACES}]?{_CURRENCY}"
)

#: (row is bad, field as named in the file, reason, column shown as VALUE or None)
Check = tuple[Column, str, str, str | None]


def text_col(name: str) -> str:
    """The staged text column of a contract field: ``S_<FIELD>``."""
    return f"S_{name.upper()}"


def kind_col(name: str) -> str:
    """JSON lines: the first character of the field's JSON text (``{`` object, ``[`` list,
    ``t``/``f`` true/false, ``"`` text, else a number): ``K_<FIELD>``."""
    return f"K_{name.upper()}"


def json_kind(v: Column) -> Column:
    """The first character of a JSON value's text (NULL when absent): tells objects, lists and
    true/false from single values, the same on both backends (``TO_JSON``)."""
    return F.substring(F.to_json(v), 1, 1)


#: JSON kinds (first characters) no field takes, and those only text fields take.
_COMPOUND, _BOOLEAN = ("{", "["), ("t", "f")
#: An id with one of these characters is rejected (see :data:`contract.INVISIBLE_ID_CHARS`).
_INVISIBLE = f"[^{contract.INVISIBLE_ID_CHARS}]*[{contract.INVISIBLE_ID_CHARS}](.|\n)*"


def typed_col(f: Field) -> str:
    """The typed column of a contract field: ``T_<FIELD>`` (dates) or ``N_<FIELD>`` (numbers)."""
    return ("T_" if f.kind in ("date", "timestamp") else "N_") + f.name.upper()


# --------------------------------------------------------------------------- typed values
def clean_text(c: Column) -> Column:
    """Trimmed string; empty -> NULL (a missing value)."""
    t = F.trim(c.cast("string"))
    return F.iff(t == F.lit(""), F.lit(None).cast("string"), t)


#: an id written as a whole number with a decimal point: spreadsheets and pandas write the integer
#: ids of a column with gaps so (``13085.0``)
_FLOAT_ID = "[0-9]+[.]0+"


def clean_id(c: Column) -> Column:
    """:func:`clean_text` of an id, ``13085.0`` read as ``13085`` (so the customer ids of an
    orders export written by pandas match the customer list's)."""
    t = clean_text(c)
    whole = F.call_function("SPLIT_PART", t, F.lit("."), F.lit(1))
    return F.iff(t.rlike(F.lit(_FLOAT_ID)), whole, t)


def clean_field(c: Column, name: str, plan: SourcePlan) -> Column:
    """The text of field ``name`` of ``plan``'s source: :func:`clean_id` for ids, else
    :func:`clean_text`."""
    return clean_id(c) if name in _id_fields(plan) else clean_text(c)


def _id_fields(plan: SourcePlan) -> frozenset[str]:
    return frozenset(f.name for f in plan.source.fields if f.kind == "id")


def unsigned(s: Column) -> Column:
    """``s`` without the currency sign of an amount written with one (``$3.50``, ``3,50 €``,
    ``-£12``, ``USD 3.50``: :data:`_SIGNED`); other text unchanged. The value is a sign and an
    amount, so removing every character of every sign leaves the amount."""
    return F.iff(
        s.rlike(F.lit(_SIGNED)),
        F.translate(s, F.lit(_CURRENCY_CHARS + _SIGN_SPACES), F.lit("")),
        s,
    )


#: An amount in parentheses, the accounting notation of a negative one (spreadsheets' Accounting
#: format, accounting software): ``(3.50)``, ``($1,234.50)``, ``(3,50 €)``; no sign inside.
_PARENTHESISED = r"[(][^()+-]*[0-9][^()+-]*[)]"
#: An amount with its minus sign after it, as SAP and other ERP systems write negatives
#: (``3.50-``, ``1.234,50-``); no other sign.
_TRAILING_MINUS = r"[^()+-]*[0-9][^()+-]*-"
#: Either notation of a negative amount that :func:`negated` rewrites.
_NEGATIVE = f"({_PARENTHESISED}|{_TRAILING_MINUS})"


def negated(s: Column) -> Column:
    """``s`` in an accounting notation of a negative amount, in parentheses
    (:data:`_PARENTHESISED`) or with a trailing minus (:data:`_TRAILING_MINUS`), written with a
    leading minus sign instead (``(3.50)``, ``3.50-`` -> ``-3.50``); other text unchanged
    (``(-3.50)`` and ``-3.50-`` stay as they are, and are not numbers)."""
    return (
        F.when(
            s.rlike(F.lit(_PARENTHESISED)),
            F.concat(F.lit("-"), F.translate(s, F.lit("()"), F.lit(""))),
        )
        # the pattern allows no other minus: dropping every one drops the trailing one (RTRIM
        # with characters is not translated for the embedded warehouse)
        .when(
            s.rlike(F.lit(_TRAILING_MINUS)),
            F.concat(F.lit("-"), F.translate(s, F.lit("-"), F.lit(""))),
        )
        .otherwise(s)
    )


def unspaced(s: Column) -> Column:
    """``s`` without the spaces or apostrophes grouping the thousands of a number written so
    (``1 234,50``, ``1'234.50``: :data:`_SPACED`); other text unchanged."""
    return F.iff(s.rlike(F.lit(_SPACED)), F.translate(s, F.lit(_GROUP_SPACES), F.lit("")), s)


def number(s: Column, comma: bool = False, grouped: bool = False) -> Column:
    """A plain decimal number as DOUBLE; NULL when the text is not one (checked before casting).

    ``comma``: the column writes numbers with a decimal comma (:func:`number_forms`): ``3,50`` and
    ``1.234,5`` are read so (dots group thousands), and a plain number still is one.
    ``grouped``: the column writes a dot as the decimal mark and may group thousands with commas:
    ``1,234`` and ``1,234.50`` are read so."""
    plain = F.iff(s.rlike(F.lit(_NUMBER)), s.try_cast("double"), F.lit(None).cast("double"))
    if grouped:
        undotted = F.replace(s, F.lit(","), F.lit("")).try_cast("double")
        plain = F.iff(s.rlike(F.lit(_GROUPED)), undotted, plain)
    if not comma:
        return plain
    dotted = F.replace(F.replace(s, F.lit("."), F.lit("")), F.lit(","), F.lit("."))
    return F.iff(s.rlike(F.lit(_COMMA_NUMBER)), dotted.try_cast("double"), plain)


@dataclasses.dataclass(frozen=True)
class NumberForms:
    """How the numeric columns of a CSV file write their numbers (field names)."""

    comma: frozenset[str] = frozenset()  # a decimal comma: 3,50 and 1.234,50
    grouped: frozenset[str] = frozenset()  # a decimal dot, commas grouping thousands: 1,234.50
    signs: frozenset[str] = frozenset()  # amounts with a currency sign: $3.50, 3,50 €
    spaced: frozenset[str] = frozenset()  # thousands grouped by spaces or apostrophes: 1 234,50
    negated: frozenset[str] = frozenset()  # accounting negatives: (3.50), 3.50-


def number_forms(df: DataFrame, plan: SourcePlan, fields: list[Field]) -> NumberForms:
    """How each numeric field of a CSV file writes its numbers, from one aggregate query over the
    values without their currency signs (:func:`unsigned`):

    - a decimal comma where more values read as :data:`_COMMA_NUMBER` than as plain numbers
      (``3,50`` against ``3.50``; whole numbers read both ways) and at least one value is
      :data:`_DECIMAL_COMMA` (so ``1,000`` and ``2,500`` alone, US thousands, are not read as 1
      and 2.5);
    - otherwise commas grouping thousands where some value is grouped (:data:`_GROUPED`) and the
      column shows a decimal dot: a grouped value with a fraction (``1,234.50``) or a value with a
      dot no thousands separator explains (``3.50``); ``1,000`` and ``2,500`` alone stay rejected;
    - a currency sign: read without it wherever one is written (``$3.50``), noted for the report;
    - thousands grouped by spaces or apostrophes, which are never a decimal mark (``1 234,50``,
      ``1'234.50``): read without them wherever a number is written so, before the rest.

    Recorded in ``plan.decimal_comma``, ``plan.thousands`` (commas, spaces or apostrophes) and
    ``plan.currency_signs`` (the columns, with the signs seen: for the report). JSON lines and
    tables carry numbers as numbers: never."""
    nums = [f for f in fields if f.kind in ("integer", "number")]
    if plan.fmt != "csv" or not nums:
        return NumberForms()
    patterns = {
        "P": _NUMBER,
        "C": _COMMA_NUMBER,
        "D": _DECIMAL_COMMA,
        "G": _GROUPED,
        "F": _GROUPED_FRACTION,
        "T": _DOT_DECIMAL,
    }
    # each value without its sign and grouping once, in an inner select that the counts read:
    # the statement stays a fraction of the size it would have (as in dates.detect_counts)
    inner = []
    for i, f in enumerate(nums):
        raw = F.col(text_col(f.name))
        signed = raw.rlike(F.lit(_SIGNED))
        inner += [
            unspaced(unsigned(negated(raw))).alias(f"V{i}"),
            F.iff(raw.rlike(F.lit(_NEGATIVE)), 1, 0).alias(f"NEG{i}"),
            F.iff(signed, 1, 0).alias(f"SIGNED{i}"),
            # the sign seen, for the report (the first and the last in sort order are kept)
            F.iff(
                signed,
                F.call_function("REGEXP_SUBSTR", raw, F.lit(_CURRENCY)),
                F.lit(None).cast("string"),
            ).alias(f"SIGN{i}"),
            F.iff(unsigned(raw).rlike(F.lit(_SPACED)), 1, 0).alias(f"SPACED{i}"),
        ]
    counts = []
    for i in range(len(nums)):
        v = F.col(f"V{i}")
        counts += [
            F.sum(F.iff(v.rlike(F.lit(p)), 1, 0)).alias(f"{k}{i}") for k, p in patterns.items()
        ]
        counts += [
            F.sum(F.col(f"SIGNED{i}")).alias(f"S{i}"),
            F.sum(F.col(f"SPACED{i}")).alias(f"W{i}"),
            F.sum(F.col(f"NEG{i}")).alias(f"N{i}"),
            F.min(F.col(f"SIGN{i}")).alias(f"SMIN{i}"),
            F.max(F.col(f"SIGN{i}")).alias(f"SMAX{i}"),
        ]
    row = df.select(*inner).agg(*counts).collect()[0]

    def n(key: str, i: int) -> int:
        return int(row[f"{key}{i}"] or 0)

    comma = [f for i, f in enumerate(nums) if n("C", i) > n("P", i) and n("D", i) > 0]
    grouped = [
        f
        for i, f in enumerate(nums)
        if f not in comma and n("G", i) > 0 and (n("F", i) > 0 or n("T", i) > 0)
    ]
    signs = [f for i, f in enumerate(nums) if n("S", i) > 0]
    spaced = [f for i, f in enumerate(nums) if n("W", i) > 0]
    neg = [f for i, f in enumerate(nums) if n("N", i) > 0]
    plan.parentheses = [plan.column(f.name) for f in neg]
    plan.decimal_comma = [plan.column(f.name) for f in comma]
    plan.thousands = [plan.column(f.name) for f in nums if f in grouped or f in spaced]
    plan.currency_signs = {
        plan.column(f.name): " ".join(dict.fromkeys((row[f"SMIN{i}"], row[f"SMAX{i}"])))
        for i, f in enumerate(nums)
        if f in signs
    }
    return NumberForms(
        *(frozenset(f.name for f in x) for x in (comma, grouped, signs, spaced, neg))
    )


def typed(
    df: DataFrame,
    fields: list[Field],
    layouts: dict[str, tuple[str, ...]] | None = None,
    plan: SourcePlan | None = None,
) -> DataFrame:
    """Add the typed column (:func:`typed_col`) of every date, timestamp and numeric field.

    Dates and timestamps are parsed with their layout (``layouts``: field -> parts; ISO 8601 when
    a field has none), see :mod:`.dates`; numbers of a CSV file (``plan``) with a decimal comma,
    thousands separators or currency signs where the column is written so (:func:`number_forms`).
    """
    layouts = layouts or {}
    forms = number_forms(df, plan, fields) if plan is not None else NumberForms()
    cols = []
    for f in fields:
        s = F.col(text_col(f.name))
        parts = layouts.get(f.name, ("iso",))
        if f.kind == "timestamp":
            cols.append(dates.parse(s, parts).alias(typed_col(f)))
        elif f.kind == "date":
            cols.append(dates.parse_date(s, parts).alias(typed_col(f)))
        elif f.kind in ("integer", "number"):
            if f.name in forms.negated:
                s = negated(s)
            if f.name in forms.signs:
                s = unsigned(s)
            if f.name in forms.spaced:
                s = unspaced(s)
            cols.append(
                number(s, f.name in forms.comma, f.name in forms.grouped).alias(typed_col(f))
            )
    return df.select("*", *cols)


# --------------------------------------------------------------------------- per-field checks
def _date_checks(f: Field, name: str, needed: bool) -> list[Check]:
    s, t = F.col(text_col(f.name)), F.col(typed_col(f))
    day = F.to_date(t)
    out: list[Check] = [(s.is_null(), name, Reason.MISSING, None)] if needed else []
    present = s.is_not_null()
    return out + [
        (present & t.is_null(), name, Reason.BAD_DATE, text_col(f.name)),
        (
            present & ((day < F.lit(contract.MIN_DATE)) | (day > F.lit(contract.MAX_DATE))),
            name,
            Reason.DATE_RANGE,
            text_col(f.name),
        ),
    ]


def _number_checks(
    f: Field, name: str, needed: bool, is_return: Column | None = None
) -> list[Check]:
    """Checks of a numeric field; an absent value passes unless ``needed``.

    ``is_return``: which rows are return lines (a field ``signed_for_returns`` may be below 0
    there).
    """
    v = text_col(f.name)
    s, n = F.col(v), F.col(typed_col(f))
    present = s.is_not_null()
    checks: list[Check] = [(s.is_null(), name, Reason.MISSING, None)] if needed else []
    checks.append((present & n.is_null(), name, Reason.NOT_A_NUMBER, v))
    if f.whole:
        checks.append((present & (F.floor(n) != n), name, Reason.NOT_WHOLE, v))
    if f.sign == "positive":
        checks.append((present & (n <= 0), name, Reason.NOT_POSITIVE, v))
    elif f.sign == "nonzero":
        checks.append((present & (n == 0), name, Reason.NOT_POSITIVE, v))
    elif f.lo == 0:
        negative = present & (n < 0)
        if f.signed_for_returns and is_return is not None:
            negative = negative & ~is_return
        checks.append((negative, name, Reason.NEGATIVE, v))
    if f.lo is not None and f.lo != 0:
        checks.append((present & (n < f.lo), name, Reason.OUT_OF_RANGE, v))
    if f.hi is not None:
        size = F.abs(n) if f.sign == "nonzero" or f.signed_for_returns else n
        checks.append((present & (size > f.hi), name, Reason.OUT_OF_RANGE, v))
    return checks


def used_fields(src: Source, present: dict[str, bool]) -> list[Field]:
    """The source's fields this file is checked on: of a ``price`` group, the first in the file."""
    out = []
    for f in src.fields:
        if f.group == "price":
            members = [g for g in src.fields if g.group == f.group]
            if f is not next((g for g in members if present.get(g.name)), members[-1]):
                continue
        out.append(f)
    return out


def needed(f: Field, fmt: str, present: dict[str, bool]) -> bool:
    """Whether every row of this file must have a value for ``f`` (see :class:`contract.Field`)."""
    return (
        f.need == "always"
        or f.group == "price"
        or (f.need == "jsonl" and (fmt == "jsonl" or present.get(f.name)))
        or (f.need == "in_file" and bool(present.get(f.name)))
    )


def field_checks(
    plan: SourcePlan,
    present: dict[str, bool],
    special: dict[str, list[Check]] | None = None,
    skip: tuple[str, ...] = (),
    is_return: Column | None = None,
    ignore: tuple[str, ...] = (),
) -> list[Check]:
    """Every per-row check of ``plan``'s source, in contract order, generated from its fields.

    Args:
        plan: the source plan (its format and the column names shown in FIELD).
        present: contract field -> whether the file has it (a CSV column, a key on some JSON line).
        special: checks of a field that its kind cannot express (the JSON ``items`` list), used at
            that field's place instead of the generated ones.
        skip: fields that get no check here (handled elsewhere).
        is_return: which rows are return lines (see :func:`_number_checks`).
        ignore: fields not read from this file at all (no check, not even of their values).
    """
    src, special = plan.source, special or {}
    checks: list[Check] = []
    fields = used_fields(src, present)
    for f in fields:
        if f.name in ignore:
            continue
        name = plan.column(f.name)
        checks += value_checks(f, name, plan.found_fmt)
        if f.name in skip:
            continue
        if f.name in special:
            checks += special[f.name]
        elif f.kind in ("date", "timestamp"):
            checks += _date_checks(f, name, needed(f, plan.found_fmt, present))
        elif f.kind in ("integer", "number"):
            checks += _number_checks(f, name, needed(f, plan.found_fmt, present), is_return)
        elif needed(f, plan.found_fmt, present):
            checks.append((F.col(text_col(f.name)).is_null(), name, Reason.MISSING, None))
        group = [g for g in fields if f.group == "content" and g.group == f.group]
        if group and f is group[-1]:  # at least one of them per row
            empty = F.lit(True)
            for g in group:
                empty = empty & F.col(text_col(g.name)).is_null()
            checks.append((empty, name, Reason.NO_CONTENT, None))
    return checks


def value_checks(f: Field, name: str, fmt: str) -> list[Check]:
    """Checks every value of a field gets first, whatever else applies to it: JSON lines give one
    value (not an object or a list; for ids, dates and numbers not true/false either), and an id
    holds no invisible character (:data:`contract.INVISIBLE_ID_CHARS`)."""
    if f.kind == "list":
        return []
    s = F.col(text_col(f.name))
    out: list[Check] = []
    if fmt == "jsonl":
        bad = _COMPOUND if f.kind == "text" else _COMPOUND + _BOOLEAN
        kind = F.col(kind_col(f.name))
        out.append((kind.isin([F.lit(k) for k in bad]), name, Reason.NOT_A_VALUE, text_col(f.name)))
    if f.kind == "id":
        out.append(
            (s.is_not_null() & s.rlike(F.lit(_INVISIBLE)), name, Reason.INVISIBLE_IN_ID, None)
        )
    return out


def with_reason(df: DataFrame, checks: list[Check]) -> DataFrame:
    """Add FIELD/REASON/VALUE from the first failing check; a reading problem (READ_REASON) comes
    first."""
    none = F.lit(None).cast("string")
    fld, why, val = none, none, none
    for bad, name, reason, value in reversed(checks):
        fld = F.when(bad, F.lit(name)).otherwise(fld)
        why = F.when(bad, F.lit(str(reason))).otherwise(why)
        val = F.when(bad, F.substring(F.col(value), 1, VALUE_CHARS) if value else none).otherwise(
            val
        )
    unread = F.col("READ_REASON").is_not_null()
    return (
        df.with_column("FIELD", F.when(unread, F.col("READ_FIELD")).otherwise(fld))
        .with_column("REASON", F.when(unread, F.col("READ_REASON")).otherwise(why))
        .with_column("VALUE", F.when(unread, none).otherwise(val))
    )


# --------------------------------------------------------------------------- field extraction
def json_get(v: Column, path: str) -> Column:
    """The value at a dotted key path of a parsed JSON value."""
    for part in path.split("."):
        v = v[part]
    return v


#: the column of a line's parsed JSON inside :func:`text_fields` (not in its output)
PARSED = "_PARSED"


def parsed_record(record: Column) -> Column:
    """The record parsed as JSON, only where the reader found it valid (PARSE_JSON never sees bad
    text)."""
    return F.parse_json(F.iff(F.col("READ_REASON").is_null(), record, F.lit(None).cast("string")))


def text_fields(
    raw: DataFrame,
    plan: SourcePlan,
    names: list[str],
    raw_columns: list[str],
    keep_parsed: bool = False,
) -> DataFrame:
    """Raw rows with one trimmed text column ``S_<FIELD>`` per contract field (NULL when absent or
    empty); JSON lines with ``keep_parsed`` also keep the parsed line (column :data:`PARSED`)."""
    cols = [F.col(c) for c in RAW_COLUMNS]
    if plan.fmt == "jsonl":
        # each line parsed once (PARSED), not once per field and use: the warehouse's plan keeps
        # the parsed value as a column for the next projection to read
        parsed = raw.select(*cols, parsed_record(F.col("RECORD")).alias(PARSED))
        v = F.col(PARSED)
        return parsed.select(
            *cols,
            *([v] if keep_parsed else []),
            *[clean_field(json_get(v, plan.wanted[n]), n, plan).alias(text_col(n)) for n in names],
            *[json_kind(json_get(v, plan.wanted[n])).alias(kind_col(n)) for n in names],
        )
    return raw.select(
        *cols,
        *[
            (
                clean_field(F.col(n.upper()), n, plan)
                if n.upper() in raw_columns
                else F.lit(None).cast("string")
            ).alias(text_col(n))
            for n in names
        ],
    )


def materialise(df: DataFrame, name: str) -> DataFrame:
    """Write ``df`` to table ``name`` and return the table (keeps the next plans small)."""
    return df.session.table(wh.replace_table(df, name, temporary=True))


def occurs(df: DataFrame, names: list[str]) -> dict[str, bool]:
    """Whether each field has a value on at least one readable row (one aggregate query); ``_rows``:
    any row."""
    if not names:
        return {}
    row = (
        df.filter(F.col("READ_REASON").is_null())
        .agg(
            F.count(F.lit(1)).alias("_N"),
            *[F.count(F.col(text_col(n))).alias(n.upper()) for n in names],
        )
        .collect()[0]
    )
    return {n: bool(row[n.upper()]) for n in names} | {"_rows": bool(row["_N"])}


def require_somewhere(found: dict[str, bool], plan: SourcePlan, fields: list[str]) -> None:
    """JSON lines: a required key absent from every readable line is a structural problem, not N
    rejects."""
    if plan.fmt != "jsonl" or not found.get("_rows"):
        return
    for f in fields:
        if not found[f]:
            raise IngestError(
                f"{plan.path}: no line has the key '{plan.wanted[f]}' (contract field '{f}'). "
                f"Fix: {fix_hint(plan.source, f)}. Nothing was replaced."
            )


# --------------------------------------------------------------------------- checks across rows
def cross_checks(
    t: DataFrame,
    columns: list[str],
    rules: Sequence[tuple[Column, str, str]],
    customers: DataFrame | None = None,
    customer_field: str = "customer_id",
) -> DataFrame:
    """Apply checks across rows to the rows still accepted, in order (the first that applies wins).

    ``rules``: (row is bad, field, reason); window functions partitioned by :func:`accepted_flag`
    only compare accepted rows. With ``customers``, rows whose CUSTOMER_ID is not among them are
    rejected last as unknown customers.
    """
    rules = list(rules)
    if customers is not None:
        known = customers.select(F.col("CUSTOMER_ID").alias("_K")).distinct()
        t = t.join(known, F.col("CUSTOMER_ID") == F.col("_K"), "left")
        rules.append((F.col("_K").is_null(), customer_field, Reason.UNKNOWN_CUSTOMER))
    ok = F.col("REASON").is_null()
    fld, why, val = F.col("FIELD"), F.col("REASON"), F.col("VALUE")
    for bad, name, reason in reversed(rules):
        hit = ok & bad
        fld = F.when(hit, F.lit(name)).otherwise(fld)
        why = F.when(hit, F.lit(str(reason))).otherwise(why)
        val = F.when(hit, F.lit(None).cast("string")).otherwise(val)
    keep = [F.col(c) for c in columns if c not in ("FIELD", "REASON", "VALUE")]
    return t.select(*keep, fld.alias("FIELD"), why.alias("REASON"), val.alias("VALUE"))


def accepted_flag() -> Column:
    """1 for a row no check has rejected so far, else 0 (a window partition key)."""
    return F.iff(F.col("REASON").is_null(), F.lit(1), F.lit(0))


def not_first(keys: list[str], order: list[str]) -> Column:
    """Accepted row that is not the first accepted one (in file order) with these ``keys``."""
    w = Window.partition_by(*[F.col(k) for k in keys], accepted_flag()).order_by(
        *[F.col(o) for o in order]
    )
    return F.row_number().over(w) > 1


def differs_from_first(key: str, same: list[str], order: list[str]) -> Column:
    """Accepted row whose ``same`` columns differ from those of the first accepted row with its
    ``key``."""
    w = Window.partition_by(F.col(key), accepted_flag()).order_by(*[F.col(o) for o in order])
    differs = F.lit(False)
    for c in same:
        differs = differs | (F.col(c) != F.first_value(F.col(c)).over(w))
    return differs
