"""Numbers as people read them: thousands separators, sensible decimals, a currency, units, dates.

Every figure a report shows goes through here, so a missing value never prints as ``NaN`` or
``None`` (it says "not available", or "none" for a count of nothing) and money always carries the
run's currency (``currency`` parameter, an ISO 4217 code; symbols from the CLDR data of Babel).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

MISSING = "not available"
NONE = "none"


def missing(value: Any) -> bool:
    """Whether ``value`` is absent: ``None``, NaN, ``pd.NA``/``NaT`` or an infinite number."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def number(value: Any, decimals: int = 0) -> str:
    """``12107.4`` -> ``"12,107"``; ``decimals`` places; missing -> "not available"."""
    if missing(value):
        return MISSING
    out = f"{float(value):,.{decimals}f}"
    return "0" if out.strip("-0.,") == "" else out  # no "-0"


def count(value: Any, noun: str = "", plural: str | None = None) -> str:
    """A whole count with its noun: ``count(1, "customer")`` -> "1 customer"; 0 -> "none"."""
    if missing(value):
        return MISSING
    n = int(round(float(value)))
    if not noun:
        return f"{n:,}"
    if n == 0:
        return f"no {plural or noun + 's'}"
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def symbol(currency: str) -> str:
    """The currency's symbol in English (``EUR`` -> ``€``), with a space after a letter code (``CHF
    ``)."""
    from babel.numbers import get_currency_symbol

    sym = get_currency_symbol(currency, locale="en")
    return sym + "\u00a0" if sym[-1:].isalpha() else sym


def money(value: Any, currency: str, decimals: int = 0) -> str:
    """``money(12107.4, "EUR")`` -> ``"€12,107"``; negative -> ``"−€12"``; missing -> "not
    available"."""
    if missing(value):
        return MISSING
    x = round(float(value), decimals)
    text = f"{abs(x):,.{decimals}f}"
    sign = "−" if x < 0 and text.strip("0.,") else ""
    return f"{sign}{symbol(currency)}{text}"


def money_range(low: Any, high: Any, currency: str, decimals: int = 0) -> str:
    """``"€11,300–€12,900"`` (missing end -> "not available")."""
    if missing(low) or missing(high):
        return MISSING
    return f"{money(low, currency, decimals)}–{money(high, currency, decimals)}"


def units(value: Any, decimals: int = 0) -> str:
    """``1234.2`` -> ``"1,234 units"``."""
    if missing(value):
        return MISSING
    text = number(value, decimals)
    return f"{text} unit" if text == "1" else f"{text} units"


def percent(value: Any, decimals: int = 0, signed: bool = False) -> str:
    """A share as a percentage: ``0.123`` -> ``"12%"`` (``signed``: ``"+12%"``)."""
    if missing(value):
        return MISSING
    text = f"{abs(float(value)) * 100:,.{decimals}f}%"
    if text.strip("0.,%") == "":
        return text
    return ("−" if float(value) < 0 else "+" if signed else "") + text


def ratio(value: Any, decimals: int = 2) -> str:
    """A plain ratio, ``1.0577`` -> ``"1.06"``."""
    return number(value, decimals)


def day(value: Any) -> str:
    """A date as people write it: ``2026-11-01`` -> ``"1 Nov 2026"``."""
    if missing(value):
        return MISSING
    if isinstance(value, str):
        value = dt.date.fromisoformat(value[:10])
    if isinstance(value, dt.datetime | pd.Timestamp):
        value = value.date()
    return f"{value.day} {value:%b %Y}"


def month(value: Any) -> str:
    """``2026-11-01`` -> ``"Nov 2026"``."""
    if missing(value):
        return MISSING
    return f"{pd.Timestamp(value):%b %Y}"


def period(first: Any, last: Any) -> str:
    """``"1 Sep 2026 to 30 Oct 2026"``."""
    return f"{day(first)} to {day(last)}"


def listing(items: Iterable[str], last: str = "and") -> str:
    """``["a", "b", "c"]`` -> ``"a, b and c"``."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def table(
    frame: pd.DataFrame,
    *,
    currency: str | None = None,
    money_cols: Iterable[str] = (),
    unit_cols: Iterable[str] = (),
    percent_cols: Iterable[str] = (),
    count_cols: Iterable[str] = (),
    decimals: dict[str, int] | None = None,
    index: bool | None = None,
    na: str = MISSING,
):
    """A table formatted for people (a pandas ``Styler``): money with the currency, counts with
    thousands separators, shares as percentages, other numbers with sensible decimals; missing
    values as ``na``; the index hidden when it is only row numbers.

    Args:
        frame: the table (aggregates only).
        currency: ISO code for ``money_cols``.
        money_cols, unit_cols, percent_cols, count_cols: columns of each kind.
        decimals: places per other numeric column (default: 0 for whole numbers, else 2).
        index: show the index (default: unless it is a plain ``RangeIndex``).
        na: what a missing value says.
    """
    decimals = decimals or {}
    if set(money_cols) and currency is None:
        raise ValueError("money columns need a currency")
    kinds = {
        **{c: "count" for c in (*unit_cols, *count_cols)},
        **{c: "percent" for c in percent_cols},
        **{c: "money" for c in money_cols},
    }
    formats: dict[str, Any] = {}
    for col in frame.columns:
        kind = kinds.get(col)
        if kind is None:
            dtype = frame[col].dtype
            kind = (
                "bool"
                if pd.api.types.is_bool_dtype(dtype)
                else "count"
                if pd.api.types.is_integer_dtype(dtype)
                else "number"
                if pd.api.types.is_numeric_dtype(dtype)
                else "text"
            )
        places = decimals.get(col, 0 if kind != "number" or _whole(frame[col]) else 2)
        formats[col] = _formatter(kind, places, currency, na)
    styler = frame.style.format(formats, na_rep=na)
    if index is None:
        index = not isinstance(frame.index, pd.RangeIndex)
    if not index:
        styler = styler.hide(axis="index")
    else:
        styler = styler.format_index(lambda v: na if missing(v) else _label(v), axis="index")
    return styler


def _formatter(kind: str, places: int, currency: str | None, na: str):
    def show(v: Any) -> str:
        if missing(v):
            return na
        if kind == "money":
            return money(v, currency or "", places)
        if kind == "percent":
            return percent(v, places)
        if kind in ("count", "number"):
            return number(v, places)
        if kind == "bool":
            return "yes" if bool(v) else "no"
        return str(v)

    return show


def _whole(series: pd.Series) -> bool:
    values = pd.to_numeric(series, errors="coerce").dropna()
    return bool(len(values)) and bool((values == values.round()).all())


def _label(value: Any) -> str:
    if isinstance(value, dt.date | pd.Timestamp):
        return day(value)
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    return str(value)
