"""Snowpark expressions that compute the same numbers on Snowflake, on DuckDB (fakesnow) and in
pandas.

The two backends agree on the SQL but not always on its numbers:

* ``AVG`` (and ``STDDEV``/``VARIANCE``) of an integer or decimal is fixed-point on Snowflake (a
  few decimals), a DOUBLE on DuckDB: :func:`mean` and :func:`stddev` cast to DOUBLE first.
* ``TIMESTAMP`` means what the account's ``TIMESTAMP_TYPE_MAPPING`` says on Snowflake (NTZ, LTZ or
  TZ): :data:`TIMESTAMP_NTZ` and :func:`timestamp_literal` name the type explicitly.
* ``HASH`` is signed on Snowflake and unsigned (another function) on DuckDB, so a sample drawn by
  it picks other rows on each: :func:`stable_hash` derives a number from ``MD5`` instead, the same
  on both backends and in Python (:func:`stable_hash_py`), so the pandas reference reproduces
  every sample exactly.

``sqlcheck`` lints the SQL a run sends for the constructs these helpers replace.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable

import snowflake.snowpark.functions as F
from snowflake.snowpark import Column, DataFrame
from snowflake.snowpark.types import TimestampTimeZone, TimestampType

#: the timestamp type of every timestamp the project creates (wall-clock time, no time zone)
TIMESTAMP_NTZ = TimestampType(TimestampTimeZone.NTZ)
#: hexadecimal digits of the MD5 digest used by :func:`stable_hash` (8: values in [0, 2**32))
HASH_DIGITS = 8
HASH_RANGE = 16**HASH_DIGITS
SEPARATOR = "|"
#: SQL comment that marks a statement as sent to the local warehouse only, by design (e.g. DuckDB's
#: ``read_parquet``, the local branch of ``warehouse.write_pandas``); ``sqlcheck`` honours it
LOCAL_ONLY = "/* ca:local-only */"
_HEX = "0123456789abcdef"
_DIGEST = "_STABLE_HASH_DIGEST"
_EPOCH = "1970-01-01 00:00:00"


def local_only(sql: str) -> str:
    """``sql`` tagged as local-only by design (see :data:`LOCAL_ONLY`)."""
    return f"{LOCAL_ONLY} {sql}"


def mean(c: Column) -> Column:
    """``AVG`` of ``c`` as a DOUBLE on both backends (AVG of integers is fixed-point on
    Snowflake)."""
    return F.avg(c.cast("double"))


def stddev(c: Column) -> Column:
    """Sample standard deviation of ``c`` as a DOUBLE on both backends."""
    return F.stddev_samp(c.cast("double"))


def timestamp_literal(value: dt.datetime | dt.date) -> Column:
    """A ``TIMESTAMP_NTZ`` constant (``CAST('…' AS TIMESTAMP_NTZ)``), whatever the account's
    mapping."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    return F.lit(value.isoformat(sep=" ")).cast(TIMESTAMP_NTZ)


def epoch_days(c: Column) -> Column:
    """Whole days from 1970-01-01 to the date ``c`` (an integer: the same text on every backend)."""
    return F.datediff("day", F.lit(_EPOCH[:10]).cast("date"), c)


def epoch_seconds(c: Column) -> Column:
    """Whole seconds from 1970-01-01 00:00 to the timestamp ``c`` (an integer)."""
    return F.datediff("second", F.lit(_EPOCH).cast(TIMESTAMP_NTZ), c)


def stable_hash(*cols: Column) -> Column:
    """A number in ``[0, HASH_RANGE)`` from the MD5 of the columns' text joined by ``|`` (NULL as
    '').

    The first :data:`HASH_DIGITS` hexadecimal digits of the digest, read as an integer digit by
    digit with ``POSITION``/``SUBSTR`` (``TO_NUMBER(…, 'XXXX')`` has no DuckDB translation). Pass
    integers or text: dates and timestamps print differently on each backend, convert them with
    :func:`epoch_days` / :func:`epoch_seconds` first. :func:`stable_hash_py` is the same in Python.

    The expression names the digest once per digit; on a DataFrame, :func:`with_stable_hash`
    computes it once.
    """
    return _hex_value(F.md5(_joined(cols)))


def with_stable_hash(df: DataFrame, name: str, *cols: Column) -> DataFrame:
    """``df`` with a column ``name`` holding :func:`stable_hash` of ``cols``.

    The digest is computed once, in an inner select, and the digits are read from that column:
    the same values as :func:`stable_hash`, in a statement several times shorter (the inline form
    repeats the digest's whole expression for each of the :data:`HASH_DIGITS` digits, and the
    local warehouse parses, translates and plans all of it).
    """
    return (
        df.with_column(_DIGEST, F.md5(_joined(cols)))
        .with_column(name, _hex_value(F.col(_DIGEST)))
        .drop(_DIGEST)
    )


def _joined(cols: Iterable[Column]) -> Column:
    return F.concat_ws(F.lit(SEPARATOR), *[F.coalesce(c.cast("string"), F.lit("")) for c in cols])


def _hex_value(digest: Column) -> Column:
    value: Column = F.lit(0)
    for i in range(HASH_DIGITS):
        digit = F.position(F.substring(digest, i + 1, 1), F.lit(_HEX)) - F.lit(1)
        value = value * F.lit(16) + digit
    return value


def stable_hash_py(*values: object) -> int:
    """:func:`stable_hash` of one row's values, in Python (``None`` as '')."""
    text = SEPARATOR.join("" if v is None else str(v) for v in values)
    return int(
        hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:HASH_DIGITS], 16
    )


def stable_hashes(rows: Iterable[tuple]) -> list[int]:
    """:func:`stable_hash_py` of many rows (e.g. ``zip(frame[a], frame[b])``)."""
    return [stable_hash_py(*r) for r in rows]


def epoch_days_py(d: dt.date) -> int:
    """:func:`epoch_days` in Python."""
    return (d - dt.date(1970, 1, 1)).days


def epoch_seconds_py(t: dt.datetime) -> int:
    """:func:`epoch_seconds` in Python (whole seconds, rounded down)."""
    return int((t - dt.datetime(1970, 1, 1)) // dt.timedelta(seconds=1))
