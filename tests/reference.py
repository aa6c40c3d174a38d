"""An independent pandas implementation of the ingest and feature definitions.

Nothing here touches the warehouse: files are parsed with the standard library and pandas.
Tests compare the Snowpark results (run on fakesnow/DuckDB, which translates Snowflake SQL
through sqlglot and can mistranslate) against these numbers, on small generated data.
The same code is the "floor" a benchmark can compare the pipeline with.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from customer_analytics import contract
from customer_analytics import features as ft

# ---------------------------------------------------------------------- ingest (the data contract)
# A deliberately plain, whole-file implementation of docs/data_contract.md: it shares only the
# constants and reason strings of ``contract`` with the warehouse ingest (none of its code), so
# tests can compare the warehouse's CLEAN_/REJECTED_ tables with it row for row.
R = contract.Reason
_NUM = re.compile(r"[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?")
_TS = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ]([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9])"
    r"(?:[.]([0-9]+))?)?)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)


def _lines(path: Path, keep_cr: bool = False) -> list[bytes]:
    data = path.read_bytes()
    while data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines if keep_cr else [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]


class _Range(ValueError):
    pass


def _strict_json(text: str):
    def no_constant(name):
        raise ValueError(name)

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate key")
        return dict(pairs)

    def finite(t):
        if math.isinf(float(t)):
            raise _Range(t)
        return float(t)

    def bounded(t):
        if len(t.lstrip("-")) > contract.MAX_JSON_INT_DIGITS:
            raise _Range(t)
        return int(t)

    return json.loads(
        text,
        parse_constant=no_constant,
        object_pairs_hook=no_duplicates,
        parse_float=finite,
        parse_int=bounded,
    )


def _depth(obj) -> int:
    best, todo = 0, [(obj, 1)]
    while todo:
        o, d = todo.pop()
        if isinstance(o, dict | list):
            best = max(best, d)
            todo += [(v, d + 1) for v in (o.values() if isinstance(o, dict) else o)]
    return best


def _strings(obj, top="line"):
    """Every key and string of a parsed line, with the top-level key it is under."""
    todo = [(obj, top, True)]
    while todo:
        o, t, first = todo.pop()
        if isinstance(o, dict):
            for k, v in o.items():
                key = k if first else t
                yield k, key
                todo.append((v, key, False))
        elif isinstance(o, list):
            todo += [(v, t, False) for v in o]
        elif isinstance(o, str):
            yield o, t


def _line_problem(obj) -> tuple[str, str] | None:
    """(reason, field) of a parsed object: depth, NUL (field: its top-level key), lone surrogate."""
    if _depth(obj) > contract.MAX_JSON_DEPTH:
        return R.TOO_DEEP, "line"
    found = [
        (R.NUL_BYTE, key) if "\x00" in text else (R.MALFORMED_JSON, "line")
        for text, key in _strings(obj)
        if "\x00" in text or re.search("[\ud800-\udfff]", text)
    ]
    return found[0] if found else None


def jsonl_records(path: Path) -> list[dict]:
    """One dict per physical line: ``line``, ``obj`` (parsed object or None), ``reason`` (None if
    readable) and ``field``."""
    out = []
    for no, raw in enumerate(_lines(path), start=1):
        rec = {"line": no, "obj": None, "reason": None, "field": "line"}
        while raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if len(raw) > contract.MAX_LINE_BYTES:
            rec["reason"] = R.LINE_TOO_LONG
        elif raw.strip() == b"":
            rec["reason"] = R.EMPTY_LINE
        elif b"\x00" in raw:
            rec["reason"] = R.NUL_BYTE
        else:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                rec["reason"] = R.INVALID_UTF8
            else:
                try:
                    obj = _strict_json(text)
                except _Range:
                    rec["reason"] = R.NUMBER_RANGE
                except RecursionError:
                    rec["reason"] = R.TOO_DEEP
                except ValueError:
                    rec["reason"] = R.MALFORMED_JSON
                else:
                    problem = _line_problem(obj) if isinstance(obj, dict) else None
                    if not isinstance(obj, dict):
                        rec["reason"] = R.NOT_AN_OBJECT
                    elif problem:
                        rec["reason"], rec["field"] = problem
                    else:
                        rec["obj"] = obj
        out.append(rec)
    return out


def _complete(fields: list[str] | None, width: int) -> bool:
    return (
        fields is not None and len(fields) >= width and all(f.strip() == "" for f in fields[width:])
    )


def _alone(line: str, width: int) -> bool:
    """A line that is a whole record by itself (so it cannot be the inside of a quoted field)."""
    if line.count('"') % 2:
        return False
    try:
        return _complete(next(csv.reader([line]), []), width)
    except csv.Error:
        return False


def csv_records(path: Path) -> tuple[list[str], list[dict]]:
    """Header and one dict per CSV record: ``line`` (first line), ``values`` (column -> text) or
    ``reason``/``field``."""
    raw_lines = [ln.decode("utf-8", "surrogateescape") for ln in _lines(path, keep_cr=True)]
    ends = ["\r\n" if ln.endswith("\r") else "\n" for ln in raw_lines]
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in raw_lines]
    records, i, width = [], 0, None
    while i < len(lines):
        lines[i] = lines[i].lstrip("\ufeff")
        j, text = i, lines[i]
        while text.count('"') % 2 and j + 1 < len(lines) and j + 1 - i < contract.MAX_RECORD_LINES:
            j += 1
            text += ends[j - 1] + lines[j]
        fields = None
        if text.count('"') % 2 == 0:
            try:
                fields = next(csv.reader([text]), [])
            except csv.Error:
                fields = None
        fits = (
            j == i
            or width is None
            or (_complete(fields, width) and not any(_alone(x, width) for x in lines[i + 1 : j]))
        )
        if text.count('"') % 2 or not fits:
            records.append({"line": i + 1, "text": lines[i], "reason": R.CSV_UNCLOSED_QUOTE})
            i += 1
        else:
            records.append({"line": i + 1, "text": text, "reason": None})
            if width is None:
                width = len(fields or [])
            i = j + 1
    header = next(csv.reader([records[0]["text"]])) if records else []
    out = []
    for rec in records[1:]:
        rec = {**rec, "values": None, "field": "line" if rec["reason"] else None}
        if rec["reason"] is None:
            try:
                fields = next(csv.reader([rec["text"]]), [])
            except csv.Error:
                fields, rec["reason"], rec["field"] = None, R.CSV_SYNTAX, "line"
            if fields is not None:
                rec["reason"], rec["field"] = _csv_problem(fields, header)
                if rec["reason"] is None:
                    rec["values"] = {}
                    for h, v in zip(header, fields, strict=False):
                        rec["values"].setdefault(h.strip().casefold(), v)
        out.append(rec)
    return header, out


def _csv_problem(fields: list[str], header: list[str]) -> tuple[str | None, str | None]:
    if all(f.strip() == "" for f in fields):
        return R.EMPTY_LINE, "line"
    extra = fields[len(header) :]
    if len(fields) < len(header) or any(f.strip() for f in extra):
        return R.CSV_FIELD_COUNT, "line"
    for name, value in zip(header, fields, strict=False):
        if re.search("[\udc80-\udcff]", value):
            return R.INVALID_UTF8, name
        if "\x00" in value:
            return R.NUL_BYTE, name
    return None, None


def _value(rec: dict, fmt: str, name: str):
    """The text of a field (None when missing or empty), ``name`` as in the file (dotted for
    JSON)."""
    if fmt == "csv":
        v = (rec["values"] or {}).get(name.strip().casefold())
    else:
        v = rec.get("obj")
        for part in name.split("."):
            v = v.get(part) if isinstance(v, dict) else None
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, dict | list):
            v = json.dumps(v, separators=(",", ":"))
        elif isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
            v = repr(v)
    v = None if v is None else str(v).strip(" ")  # the warehouses' TRIM: spaces only
    return v or None


_INVISIBLE = re.compile(f"[{contract.INVISIBLE_ID_CHARS}]")


def _kind(rec: dict, fmt: str, name: str) -> str | None:
    """JSON lines: ``{``, ``[``, ``t`` or ``f`` for an object, a list or true/false at ``name``."""
    if fmt != "jsonl":
        return None
    v = rec.get("obj")
    for part in name.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    if isinstance(v, bool):
        return "t" if v else "f"
    return "{" if isinstance(v, dict) else "[" if isinstance(v, list) else None


def _vp(
    source: contract.Source, field: str, rec: dict, fmt: str, names: dict, shown: dict, g: dict
):
    """The value problem of a field: not a single JSON value, or an invisible character in an id."""
    f = source.field(field)
    bad = ("{", "[") if f.kind == "text" else ("{", "[", "t", "f")
    if _kind(rec, fmt, names[field]) in bad:
        return R.NOT_A_VALUE, shown[field]
    if f.kind == "id" and g.get(field) is not None and _INVISIBLE.search(g[field]):
        return R.INVISIBLE_IN_ID, shown[field]
    return None


_BASIC = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})(?:[T ]([0-9]{2})([0-9]{2})([0-9]{2})?)?")


def parse_timestamp(text: str | None) -> dt.datetime | None:
    """ISO 8601 date or timestamp, extended or basic (time zone dropped); None if not a real one."""
    b = _BASIC.fullmatch(text or "")
    if b:
        y, mo, d, h, mi, s = b.groups()
        text = f"{y}-{mo}-{d}" + (f" {h}:{mi}" + (f":{s}" if s else "") if h else "")
    m = _TS.fullmatch(text or "")
    if not m:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        micro = int((frac or "0")[:6].ljust(6, "0"))
        return dt.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), micro)
    except ValueError:
        return None


def parse_number(text: str | None) -> float | None:
    return float(text) if text is not None and _NUM.fullmatch(text) else None


def _date_problem(text, name):
    if text is None:
        return R.MISSING, name
    t = parse_timestamp(text)
    if t is None:
        return R.BAD_DATE, name
    if not contract.MIN_DATE <= t.date() <= contract.MAX_DATE:
        return R.DATE_RANGE, name
    return None


def _number_problem(text, name, *, whole=False, positive=False, lo=None, hi=None, required=False):
    if text is None:
        return (R.MISSING, name) if required else None
    n = parse_number(text)
    if n is None:
        return R.NOT_A_NUMBER, name
    if whole and math.isfinite(n) and not n.is_integer():
        return R.NOT_WHOLE, name
    if positive and n <= 0:
        return R.NOT_POSITIVE, name
    if lo == 0 and n < 0:
        return R.NEGATIVE, name
    if lo not in (None, 0) and n < lo:
        return R.OUT_OF_RANGE, name
    if hi is not None and n > hi:
        return R.OUT_OF_RANGE, name
    return None


def _first(*problems):
    return next((p for p in problems if p), (None, None))


@dataclass
class Ingested:
    """The reference ingest: accepted rows per clean table, and every rejected row with its
    reason."""

    customers: pd.DataFrame
    order_lines: pd.DataFrame
    reviews: pd.DataFrame
    rejected: pd.DataFrame  # SOURCE, SOURCE_FILE, LINE_NO, ITEM_NO, FIELD, REASON
    read: dict[str, int]
    excluded: pd.DataFrame | None = None  # order lines kept out: LINE_NO, ITEM_NO, REASON, AMOUNT


def _records(path: Path, fmt: str) -> tuple[list[dict], dict[str, str]]:
    """Records and, for CSV, the header names by normalised name."""
    if fmt == "csv":
        header, recs = csv_records(path)
        return recs, {h.strip().casefold(): h for h in header}
    return [{**r, "field": r["field"] if r["reason"] else None} for r in jsonl_records(path)], {}


def _names(source: contract.Source, fmt: str, columns: dict) -> dict[str, str]:
    m = columns.get(source.name, {})
    return {
        f.name: m.get(f.name) or (f.json_path if fmt == "jsonl" and f.json_path else f.name)
        for f in source.fields
    }


def _shown(names: dict[str, str], header: dict[str, str]) -> dict[str, str]:
    """Field -> its name as the file spells it (CSV header spelling)."""
    return {f: header.get(n.strip().casefold(), n) for f, n in names.items()}


def _read_source(path: Path, source: contract.Source, columns: dict):
    """A file's format, its records, its CSV header (normalised name -> spelling), each field's name
    in the file and the name shown in reasons."""
    fmt = contract.file_format(path)
    recs, header = _records(path, fmt)
    names = _names(source, fmt, columns)
    return fmt, recs, header, names, _shown(names, header)


def _ref_customers(path: Path, columns: dict) -> tuple[pd.DataFrame, list[dict]]:
    fmt, recs, _, names, shown = _read_source(path, contract.CUSTOMERS, columns)
    rows, rejected, seen = [], [], set()
    for r in recs:
        g = {f: _value(r, fmt, n) for f, n in names.items()} if r["reason"] is None else {}
        vp = {f: _vp(contract.CUSTOMERS, f, r, fmt, names, shown, g) for f in names} if g else {}
        reason, fld = (
            (r["reason"], r["field"])
            if r["reason"]
            else _first(
                vp["customer_id"],
                (R.MISSING, shown["customer_id"]) if g["customer_id"] is None else None,
                vp["signup_date"],
                _date_problem(g["signup_date"], shown["signup_date"]),
                vp["country"],
                vp["acquisition_channel"],
                vp["birth_year"],
                _number_problem(
                    g["birth_year"],
                    shown["birth_year"],
                    whole=True,
                    lo=contract.BIRTH_YEARS[0],
                    hi=contract.BIRTH_YEARS[1],
                ),
            )
        )
        if reason is None and g["customer_id"] in seen:
            reason, fld = R.DUPLICATE_CUSTOMER, shown["customer_id"]
        if reason:
            rejected.append({"LINE_NO": r["line"], "ITEM_NO": None, "FIELD": fld, "REASON": reason})
            continue
        seen.add(g["customer_id"])
        by = parse_number(g["birth_year"])
        signup = pd.Timestamp(parse_timestamp(g["signup_date"]).date())
        rows.append(
            {
                "CUSTOMER_ID": g["customer_id"],
                "SIGNUP_DATE": signup,
                "COUNTRY": g["country"].upper() if g["country"] else contract.UNKNOWN,
                "CHANNEL": g["acquisition_channel"].lower()
                if g["acquisition_channel"]
                else contract.UNKNOWN,
                "BIRTH_YEAR": None if by is None else int(by),
                "LINE_NO": r["line"],
            }
        )
    return pd.DataFrame(rows), rejected


def _unit(g: dict, price: str, q: float) -> float:
    """Unit price of a valid line: the unit_price, or |amount| / |quantity|."""
    v = parse_number(g[price])
    return v if price == "unit_price" else abs(v) / abs(q)


def _quantity_problem(text, name):
    """Quantity: a whole number other than 0 (below 0: a return line), at most MAX_QUANTITY."""
    if text is None:
        return R.MISSING, name
    n = parse_number(text)
    if n is None:
        return R.NOT_A_NUMBER, name
    if math.isfinite(n) and not n.is_integer():
        return R.NOT_WHOLE, name
    if n == 0:
        return R.NOT_POSITIVE, name
    if abs(n) > contract.MAX_QUANTITY:
        return R.OUT_OF_RANGE, name
    return None


def _item_obj(item, names: dict) -> dict:
    """An item's fields placed where the line's field paths find them (for :func:`_kind`)."""
    out = {}
    for f in ("product", "quantity", "unit_price", "amount", "line_id"):
        v = item
        for part in names[f].split("."):
            v = v.get(part) if isinstance(v, dict) else None
        out[names[f].split(".")[0]] = v if "." not in names[f] else {names[f].split(".", 1)[1]: v}
    return out


def _ref_order_lines(
    path: Path,
    columns: dict,
    known: set | None,
    returns: str = "net",
    prefix: str | None = None,
    guest_ids=contract.DEFAULT_GUEST_IDS,
):
    """Accepted order lines, rejected rows, rows read and excluded rows (guests, returns)."""
    fmt, recs, header, names, shown = _read_source(path, contract.ORDERS, columns)
    jsonl = fmt == "jsonl"
    # one row per order line; a JSON line with no usable items list is one row
    rows = []
    for r in recs:
        g = (
            {f: _value(r, fmt, names[f]) for f in contract.ORDERS.field_names}
            if r["reason"] is None
            else {}
        )
        items = None
        if jsonl and r["reason"] is None:
            cur = r["obj"]
            for part in names["items"].split("."):
                cur = cur.get(part) if isinstance(cur, dict) else None
            items = cur
        if isinstance(items, str) and not items.strip():
            items = None
        if jsonl and isinstance(items, list) and len(items) > contract.MAX_ITEMS:
            rows.append(({**r, "reason": R.TOO_MANY_ITEMS, "field": "items"}, None, g, items))
        elif jsonl and isinstance(items, list) and items:
            for k, it in enumerate(items):
                row = {
                    **g,
                    **{
                        f: _value({"obj": it}, "jsonl", names[f])
                        for f in ("product", "quantity", "unit_price", "amount", "line_id")
                    },
                }
                rows.append((r, k, row, items))
        else:
            rows.append((r, None, g, items))
    has = {
        f: any(row.get(f) is not None for r, _, row, _ in rows if r["reason"] is None)
        for f in ("order_id", "product", "unit_price", "line_id", "cancelled")
    }
    if fmt == "csv":
        has = {f: names[f].strip().casefold() in header for f in has}
    price = "unit_price" if has["unit_price"] else "amount"
    out, rejected, excluded = [], [], []
    for r, k, g, items in rows:
        if r["reason"]:
            rejected.append(
                {"LINE_NO": r["line"], "ITEM_NO": None, "FIELD": r["field"], "REASON": r["reason"]}
            )
            continue
        q = parse_number(g.get("quantity"))
        is_return = bool(
            (q is not None and q < 0)
            or (
                has["cancelled"] and (g.get("cancelled") or "").lower() in contract.CANCELLED_VALUES
            )
            or (prefix and (g.get("order_id") or "").startswith(prefix))
        )
        price_problem = _number_problem(
            g[price], shown[price], lo=0, hi=contract.MAX_AMOUNT, required=True
        )
        if price == "amount" and is_return and parse_number(g[price]) is not None:
            price_problem = _number_problem(
                str(abs(parse_number(g[price]))),
                shown[price],
                lo=0,
                hi=contract.MAX_AMOUNT,
                required=True,
            )
        src_rec = r if k is None else {"obj": {**(r["obj"] or {}), **_item_obj(items[k], names)}}
        vp = {
            f: _vp(contract.ORDERS, f, src_rec, fmt, names, shown, g)
            for f in contract.ORDERS.field_names
            if f != "items"
        }
        other_price = "amount" if price == "unit_price" else "unit_price"
        reason, fld = _first(
            vp["order_id"],
            (R.MISSING, shown["order_id"])
            if (jsonl or has["order_id"]) and g["order_id"] is None
            else None,
            vp["customer_id"],
            vp["ts"],
            _date_problem(g["ts"], shown["ts"]),
            (R.MISSING, shown["items"]) if jsonl and items is None else None,
            (R.NOT_A_LIST, shown["items"])
            if jsonl and items is not None and not isinstance(items, list)
            else None,
            (R.NO_ITEMS, shown["items"]) if jsonl and items == [] else None,
            vp["product"],
            (R.MISSING, shown["product"]) if has["product"] and g["product"] is None else None,
            vp["quantity"],
            _quantity_problem(g["quantity"], shown["quantity"]),
            vp[price],
            price_problem,
            *[
                vp[f]
                for f in ("line_id", "cancelled", "coupon", "ship_method", "ship_cost")
                if f != other_price
            ],
            _number_problem(g["ship_cost"], shown["ship_cost"], lo=0, hi=contract.MAX_AMOUNT),
            (R.RETURN_REJECTED, shown["quantity"]) if returns == "reject" and is_return else None,
        )
        if reason:
            rejected.append({"LINE_NO": r["line"], "ITEM_NO": k, "FIELD": fld, "REASON": reason})
            continue
        guest = g["customer_id"] is None or g["customer_id"].lower() in guest_ids
        if guest or (is_return and returns == "exclude"):
            why = contract.Excluded.GUEST if guest else contract.Excluded.RETURN
            excluded.append(
                {
                    "LINE_NO": r["line"],
                    "ITEM_NO": k,
                    "REASON": why,
                    "CUSTOMER_ID": g["customer_id"],
                    "AMOUNT": (-1 if is_return else 1) * abs(q) * _unit(g, price, q),
                }
            )
            continue
        qty, amount = abs(parse_number(g["quantity"])), abs(parse_number(g[price]))
        oid = g["order_id"] if (jsonl or has["order_id"]) else f"{g['customer_id'] or ''}@{g['ts']}"
        out.append(
            {
                "ORDER_ID": oid,
                "CUSTOMER_ID": g["customer_id"],
                "TS": pd.Timestamp(parse_timestamp(g["ts"])),
                "COUPON": g["coupon"],
                "SHIP_METHOD": g["ship_method"],
                "SHIP_COST": parse_number(g["ship_cost"]),
                "PRODUCT": g["product"].lower() if has["product"] else contract.ALL_PRODUCTS,
                "QUANTITY": int(-qty if is_return else qty),
                "IS_RETURN": is_return,
                "UNIT_PRICE": amount if price == "unit_price" else amount / qty,
                "LINE_NO": r["line"],
                "ITEM_NO": k,
                "_LINE_ID": g.get("line_id"),
            }
        )
    accepted, first_line, first_of_order, seen = [], {}, {}, set()
    for row in sorted(out, key=lambda x: (x["LINE_NO"], x["ITEM_NO"] or 0)):
        reason = fld = None
        # a line id repeats within its order (per order: Olist's order_item_id counts 1, 2, …)
        line_key = (row["ORDER_ID"] if jsonl or has["order_id"] else None, row["_LINE_ID"])
        if has["line_id"] and row["_LINE_ID"] is not None and line_key in seen:
            reason, fld = R.DUPLICATE_LINE, shown["line_id"]
        if row["_LINE_ID"] is not None:
            seen.add(line_key)
        first_line.setdefault(row["ORDER_ID"], row["LINE_NO"])
        first = first_of_order.setdefault(row["ORDER_ID"], (row["CUSTOMER_ID"], row["TS"]))
        if reason is None and jsonl and first_line[row["ORDER_ID"]] != row["LINE_NO"]:
            reason, fld = R.DUPLICATE_ORDER, shown["order_id"]
        if (
            reason is None
            and not jsonl
            and has["order_id"]
            and first != (row["CUSTOMER_ID"], row["TS"])
        ):
            reason, fld = R.DUPLICATE_ORDER, shown["order_id"]
        if reason is None and known is not None and row["CUSTOMER_ID"] not in known:
            reason, fld = R.UNKNOWN_CUSTOMER, shown["customer_id"]
        if reason:
            rejected.append(
                {
                    "LINE_NO": row["LINE_NO"],
                    "ITEM_NO": row["ITEM_NO"],
                    "FIELD": fld,
                    "REASON": reason,
                }
            )
        else:
            accepted.append(row)
    df = pd.DataFrame(accepted).drop(columns="_LINE_ID", errors="ignore")
    if not jsonl and len(df):
        df["ITEM_NO"] = df.groupby("ORDER_ID").cumcount()
    kept_out = pd.DataFrame(
        excluded, columns=["LINE_NO", "ITEM_NO", "REASON", "CUSTOMER_ID", "AMOUNT"]
    )
    return df, rejected, len(rows), kept_out


def _ref_reviews(path: Path, columns: dict, known: set | None) -> tuple[pd.DataFrame, list[dict]]:
    fmt, recs, _, names, shown = _read_source(path, contract.REVIEWS, columns)
    rows, rejected, seen = [], [], set()
    for r in recs:
        g = {f: _value(r, fmt, n) for f, n in names.items()} if r["reason"] is None else {}
        vp = {f: _vp(contract.REVIEWS, f, r, fmt, names, shown, g) for f in names} if g else {}
        reason, fld = (
            (r["reason"], r["field"])
            if r["reason"]
            else _first(
                vp["customer_id"],
                (R.MISSING, shown["customer_id"]) if g["customer_id"] is None else None,
                vp["ts"],
                _date_problem(g["ts"], shown["ts"]),
                vp["rating"],
                _number_problem(
                    g["rating"],
                    shown["rating"],
                    whole=True,
                    lo=contract.RATINGS[0],
                    hi=contract.RATINGS[1],
                ),
                vp["text"],
                (R.NO_CONTENT, shown["text"])
                if g["text"] is None and g["rating"] is None
                else None,
            )
        )
        key = (g.get("customer_id"), g.get("ts"), g.get("rating"), g.get("text"))
        if reason is None and key in seen:
            reason, fld = R.DUPLICATE_LINE, "line"
        if reason is None:
            seen.add(key)
            if known is not None and g["customer_id"] not in known:
                reason, fld = R.UNKNOWN_CUSTOMER, shown["customer_id"]
        if reason:
            rejected.append({"LINE_NO": r["line"], "ITEM_NO": None, "FIELD": fld, "REASON": reason})
            continue
        rating = parse_number(g["rating"])
        rows.append(
            {
                "CUSTOMER_ID": g["customer_id"],
                "TS": pd.Timestamp(parse_timestamp(g["ts"])),
                "RATING": None if rating is None else int(rating),
                "TEXT": g["text"],
                "LINE_NO": r["line"],
                "KIND": "review",
            }
        )
    return pd.DataFrame(rows), rejected


_ARCHIVES = (b"PK\x03\x04", b"\x1f\x8b", b"%PDF", b"BZh", b"\xfd7zXZ\x00", b"Rar!")


_UNICODE_MARKS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff", b"\xff\xfe", b"\xfe\xff")
_UTF8_CHAR = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def _ref_transcript_text(raw: bytes) -> str | None:
    """A transcript's text: UTF-16/32 by its mark, UTF-8, or Windows-1252 when at least three
    bytes are beyond ASCII and none is part of a UTF-8 character; None: damaged UTF-8."""
    for mark in _UNICODE_MARKS:
        if raw.startswith(mark):
            return raw.decode("utf-32" if len(mark) == 4 else "utf-16", "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        if sum(b >= 0x80 for b in raw) >= 3 and not _UTF8_CHAR.search(raw):
            return raw.decode("cp1252", "replace")
        return None


def _ref_calls(folder: Path, prefix: str, known: set | None) -> tuple[pd.DataFrame, list[dict]]:
    rows, rejected = [], []
    entries = folder.iterdir() if folder.is_dir() else []
    files = sorted(
        (
            p
            for p in entries
            if p.suffix.lower() == ".txt" and not p.name.startswith(".") and not p.is_dir()
        ),
        key=lambda p: p.name,
    )
    root = os.path.realpath(folder.parent)
    for p in files:
        name = f"{prefix}/{os.fsencode(p.name).decode('utf-8', 'backslashreplace')}"
        cid = ts = body = None
        reason = fld = None
        real = os.path.realpath(p)
        if not Path(real).is_relative_to(root):
            reason, fld, raw = R.OUTSIDE_DATA_DIR, "file", b""
        elif not stat.S_ISREG(os.stat(real).st_mode):
            reason, fld, raw = R.NOT_A_FILE, "file", b""
        else:
            raw = Path(real).read_bytes()
            while raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
        if reason:
            pass
        elif not raw.startswith(_UNICODE_MARKS) and (
            raw.startswith(_ARCHIVES)
            or (
                len(raw[:4096]) >= 64
                and 20 * len(re.findall(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]", raw[:4096]))
                >= len(raw[:4096])
            )
        ):
            reason, fld = R.NOT_TEXT, "text"
        elif len(raw) > contract.MAX_LINE_BYTES:
            reason, fld = R.LINE_TOO_LONG, "text"
        else:
            text = _ref_transcript_text(raw)
            if text is None:
                reason, fld = R.INVALID_UTF8, "text"
            else:
                if "\x00" in text:
                    reason, fld = R.NUL_BYTE, "text"
                else:
                    head = {}
                    lines = text.splitlines()
                    n = 0
                    for ln in lines:
                        m = re.match(
                            r"\s*(customer_id|customer|customer "
                            r"id|ts|date|timestamp)\s*:\s*(.*?)\s*$",
                            ln,
                            re.I,
                        )
                        if not m:
                            break
                        key = "ts" if m[1].lower() in ("ts", "date", "timestamp") else "customer_id"
                        head.setdefault(key, m[2])
                        n += 1
                    if head and n < len(lines) and not lines[n].strip():
                        n += 1
                    body = "\n".join(lines[n:]).strip() or None
                    fm = re.match(r"^(.+?)_(\d{4}-\d{2}-\d{2})(?:[_T].*)?$", p.stem)
                    cid = head.get("customer_id") or (fm[1] if fm else None) or ""
                    cid = cid.strip(" ") or None
                    ts = (head.get("ts") or (fm[2] if fm else None) or "").strip(" ") or None
                    reason, fld = _first(
                        (R.INVISIBLE_IN_ID, "customer_id")
                        if cid and _INVISIBLE.search(cid)
                        else None,
                        (R.MISSING, "customer_id") if cid is None else None,
                        _date_problem(ts, "ts"),
                        (R.MISSING, "text") if body is None else None,
                    )
        if reason is None and known is not None and cid not in known:
            reason, fld = R.UNKNOWN_CUSTOMER, "customer_id"
        if reason:
            rejected.append(
                {"SOURCE_FILE": name, "LINE_NO": 1, "ITEM_NO": None, "FIELD": fld, "REASON": reason}
            )
            continue
        rows.append(
            {
                "CUSTOMER_ID": cid,
                "TS": pd.Timestamp(parse_timestamp(ts)),
                "RATING": None,
                "TEXT": body,
                "LINE_NO": 1,
                "KIND": "call",
                "SOURCE_FILE": name,
            }
        )
    return pd.DataFrame(rows), rejected


def ingest(
    data_dir: Path,
    orders_file: str = "orders.jsonl",
    customers_file: str | None = "customers.csv",
    reviews_file: str | None = "reviews.jsonl",
    calls_dir: str | None = "calls",
    columns: dict | None = None,
    returns: str = "net",
    return_order_prefix: str | None = None,
    guest_ids: tuple[str, ...] = contract.DEFAULT_GUEST_IDS,
) -> Ingested:
    """The whole data contract on the files of ``data_dir`` (absent optional files are skipped)."""
    columns = columns or {}
    rejected, read = [], {}

    def add(source, file_name, rows):
        rejected.extend(
            {"SOURCE": source, "SOURCE_FILE": file_name, **r}
            if "SOURCE_FILE" not in r
            else {"SOURCE": source, **r}
            for r in rows
        )

    known = None
    cust_path = data_dir / customers_file if customers_file else None
    if cust_path and cust_path.is_file():
        cust, rej = _ref_customers(cust_path, columns)
        add("customers", customers_file, rej)
        read["customers"] = len(cust) + len(rej)
        known = set(cust["CUSTOMER_ID"])
    lines, rej, read["orders"], excluded = _ref_order_lines(
        data_dir / orders_file, columns, known, returns, return_order_prefix, guest_ids
    )
    add("orders", orders_file, rej)
    if known is None:
        first = lines.groupby("CUSTOMER_ID")["TS"].min()
        cust = pd.DataFrame(
            {
                "CUSTOMER_ID": first.index,
                "SIGNUP_DATE": first.dt.normalize().values,
                "COUNTRY": contract.UNKNOWN,
                "CHANNEL": contract.UNKNOWN,
                "BIRTH_YEAR": None,
                "LINE_NO": None,
            }
        )
    parts = []
    if reviews_file and (data_dir / reviews_file).is_file():
        revs, rej = _ref_reviews(data_dir / reviews_file, columns, known)
        add("reviews", reviews_file, rej)
        read["reviews"] = len(revs) + len(rej)
        parts.append(revs.assign(SOURCE_FILE=reviews_file) if len(revs) else revs)
    if calls_dir:
        calls, rej = _ref_calls(data_dir / calls_dir, calls_dir, known)
        add("calls", None, rej)
        read["calls"] = len(calls) + len(rej)
        parts.append(calls)
    columns_out = ["CUSTOMER_ID", "TS", "RATING", "TEXT", "LINE_NO", "KIND", "SOURCE_FILE"]
    parts = [p.astype({"RATING": "float64"}) for p in parts if len(p)]
    reviews = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns_out)
    cols = ["SOURCE", "SOURCE_FILE", "LINE_NO", "ITEM_NO", "FIELD", "REASON"]
    rejected = pd.DataFrame(rejected, columns=cols)
    return Ingested(cust, lines, reviews, rejected, read, excluded)


def order_lines(path: Path) -> pd.DataFrame:
    """Valid order lines of one orders file (the contract's checks, without the customer check)."""
    return _ref_order_lines(path, {}, None)[0]


def customers(path: Path) -> pd.DataFrame:
    """Accepted customers of one customers file (first occurrence of each id)."""
    return _ref_customers(path, {})[0]


def reviews(path: Path) -> pd.DataFrame:
    """Accepted reviews of one reviews file (without the customer check)."""
    return _ref_reviews(path, {}, None)[0]


def text_scores(revs: pd.DataFrame, pipeline) -> pd.DataFrame:
    """Sentiment of every text with scikit-learn's own ``decision_function`` / ``predict_proba``.

    The warehouse scores texts by joining exported word weights; this is the client-side model
    it must agree with. Adds ``SENTIMENT_LOGIT`` and ``SENTIMENT`` to the rows with a text.
    """
    out = revs[revs["TEXT"].notna()].copy()
    out["SENTIMENT_LOGIT"] = pipeline.decision_function(out["TEXT"]) if len(out) else []
    out["SENTIMENT"] = pipeline.predict_proba(out["TEXT"])[:, 1] if len(out) else []
    return out


def _days(later: pd.Series, earlier: pd.Series) -> pd.Series:
    """Calendar days between two timestamps (day boundaries crossed, like SQL ``DATEDIFF('day',
    …)``)."""
    return (later.dt.normalize() - earlier.dt.normalize()).dt.days


def features_at(
    cust: pd.DataFrame,
    lines: pd.DataFrame,
    revs: pd.DataFrame,
    cutoff: dt.date,
    horizon_days: int,
    products: list[str],
    scores: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Same definitions as :func:`customer_analytics.features.features_at`, in pandas.

    Args:
        cust, lines, revs: outputs of :func:`customers`, :func:`order_lines`, :func:`reviews`
            (``revs`` may carry a ``KIND`` column; without one every text is a review).
        scores: output of :func:`text_scores`; ``None`` = no sentiment features.
    """
    c0 = pd.Timestamp(cutoff)
    h = pd.Timedelta(days=horizon_days)
    pop = cust[cust["SIGNUP_DATE"] < c0].set_index("CUSTOMER_ID")
    ln = lines[lines["CUSTOMER_ID"].isin(pop.index)].copy()
    ln["AMOUNT"] = ln["QUANTITY"] * ln["UNIT_PRICE"]
    ln["RETURN_LINE"] = ln["QUANTITY"] < 0  # a return line keeps its negative quantity
    orders = ln.groupby(["ORDER_ID", "CUSTOMER_ID", "TS"], as_index=False).agg(
        # count: vectorised; max of str is not
        ORDER_TOTAL=("AMOUNT", "sum"),
        N_COUPON_LINES=("COUPON", "count"),
        IS_RETURN=("RETURN_LINE", "all"),
    )
    net = orders  # spend is net of returns; counts, recency and gaps count purchases only
    orders = orders[~orders["IS_RETURN"]]
    past = orders[orders["TS"] < c0].sort_values(["CUSTOMER_ID", "TS", "ORDER_ID"])
    g = past.groupby("CUSTOMER_ID")

    def window(df, lo, hi, col=None):
        sel = df[(df["TS"] >= lo) & (df["TS"] < hi)].groupby("CUSTOMER_ID")
        return sel.size() if col is None else sel[col].sum()

    out = pd.DataFrame(index=pop.index)
    out["N_ORDERS"] = g.size()
    out["SPEND"] = net[net["TS"] < c0].groupby("CUSTOMER_ID")["ORDER_TOTAL"].sum()
    first, last = g["TS"].min(), g["TS"].max()
    out["N_ORDERS_LAST"] = window(orders, c0 - h, c0)
    out["SPEND_LAST"] = window(net, c0 - h, c0, "ORDER_TOTAL")
    out["N_ORDERS_PREV"] = window(orders, c0 - 2 * h, c0 - h)
    out["SPEND_PREV"] = window(net, c0 - 2 * h, c0 - h, "ORDER_TOTAL")
    out["N_COUPON_ORDERS"] = past[past["N_COUPON_LINES"] > 0].groupby("CUSTOMER_ID").size()
    out[ft.LABEL_SPEND] = window(net, c0, c0 + h, "ORDER_TOTAL")
    out["QTY_TOTAL"] = ln[ln["TS"] < c0].groupby("CUSTOMER_ID")["QUANTITY"].sum()
    for p in products:
        lp = ln[ln["PRODUCT"] == p]
        out[ft.product_column("QTY", p)] = (
            lp[lp["TS"] < c0].groupby("CUSTOMER_ID")["QUANTITY"].sum()
        )
        out[ft.product_column("QTY_LAST", p)] = window(lp, c0 - h, c0, "QUANTITY")
        out[ft.product_column("QTY_NEXT", p)] = window(lp, c0, c0 + h, "QUANTITY")
    revs = revs if "KIND" in revs.columns else revs.assign(KIND="review")
    rv = revs[(revs["TS"] < c0) & revs["CUSTOMER_ID"].isin(pop.index)]
    is_review = rv["KIND"].fillna("review") == "review"
    out["N_REVIEWS"] = rv[is_review].groupby("CUSTOMER_ID").size()
    out["N_CALLS"] = rv[~is_review].groupby("CUSTOMER_ID").size()
    out = out.fillna(0)
    out["AVG_RATING"] = rv[is_review].groupby("CUSTOMER_ID")["RATING"].mean()
    if scores is not None:
        sc = scores[(scores["TS"] < c0) & scores["CUSTOMER_ID"].isin(pop.index)]
        out["AVG_SENTIMENT"] = sc.groupby("CUSTOMER_ID")["SENTIMENT"].mean()
        out["MIN_SENTIMENT"] = sc.groupby("CUSTOMER_ID")["SENTIMENT"].min()
        out["N_NEGATIVE_TEXTS"] = (sc["SENTIMENT_LOGIT"] < 0).groupby(sc["CUSTOMER_ID"]).sum()
        out["N_NEGATIVE_TEXTS"] = out["N_NEGATIVE_TEXTS"].fillna(0)

    tenure = (c0 - pop["SIGNUP_DATE"]).dt.days
    out["TENURE_DAYS"] = tenure
    out["AGE"] = cutoff.year - pop["BIRTH_YEAR"]
    n = out["N_ORDERS"]
    out["HAS_ORDERED"] = (n > 0).astype(int)
    out["RECENCY_DAYS"] = (
        _days(pd.Series(c0, index=last.index), last).reindex(out.index).fillna(tenure)
    )
    out["DAYS_SINCE_FIRST_ORDER"] = _days(pd.Series(c0, index=first.index), first).reindex(
        out.index
    )
    out["AVG_ORDER_VALUE"] = np.where(n > 0, out["SPEND"] / n.where(n > 0, 1), 0.0)
    out["MAX_ORDER_VALUE"] = g["ORDER_TOTAL"].max().reindex(out.index).fillna(0)
    out["ORDERS_PER_30D"] = n * 30.0 / tenure
    out["SPEND_PER_30D"] = out["SPEND"] * 30.0 / tenure
    gaps = _days(past["TS"], g["TS"].shift(1)).groupby(past["CUSTOMER_ID"])
    out["MEAN_GAP_DAYS"] = gaps.mean().reindex(out.index).where(n > 1)
    out["STD_GAP_DAYS"] = gaps.std(ddof=1).reindex(out.index).where(n > 2)
    out["MAX_GAP_DAYS"] = gaps.max().reindex(out.index).where(n > 1)
    mg = out["MEAN_GAP_DAYS"]
    out["RECENCY_OVER_GAP"] = (out["RECENCY_DAYS"] / mg).where(mg > 0)
    out["ORDERS_TREND"] = out["N_ORDERS_LAST"] - out["N_ORDERS_PREV"]
    out["SPEND_TREND"] = out["SPEND_LAST"] - out["SPEND_PREV"]
    out["COUPON_SHARE"] = np.where(n > 0, out["N_COUPON_ORDERS"] / n.where(n > 0, 1), 0.0)
    total = out["QTY_TOTAL"]
    for p in products:
        q = out[ft.product_column("QTY", p)]
        out[ft.product_column("SHARE", p)] = np.where(total > 0, q / total.where(total > 0, 1), 0.0)
    for c in ft.CATEGORICAL:
        out[c] = pop[c].fillna(ft.UNKNOWN)
    # purchase days from purchases; a day's value nets every order of that day, returns included
    out = out.join(btyd_summary(net[net["TS"] < c0], c0))
    return out.drop(columns="QTY_TOTAL").reset_index()


def with_btyd_outputs(features: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """``features`` (one cut-off, :func:`features_at`) plus the BTYD outputs fitted on its buyers.

    The fitting is :mod:`customer_analytics.btyd`'s (the thing under test elsewhere is the
    warehouse's summaries and plumbing, checked against this).
    """
    from customer_analytics import btyd

    buyers = features[features["BTYD_X"].notna()]
    summaries = pd.DataFrame(
        {
            "X": buyers["BTYD_X"],
            "TX": buyers["BTYD_TX"],
            "T": buyers["BTYD_T"],
            "VALUE": buyers["BTYD_VALUE"].round(ft.DECIMALS),
        }
    )
    out = btyd.score_summaries(summaries, btyd.fit_cutoff(summaries), horizon_days).round(
        ft.DECIMALS
    )
    return features.join(out.reindex(features.index))


def btyd_summary(past_orders: pd.DataFrame, c0: pd.Timestamp) -> pd.DataFrame:
    """The BTYD summaries of :func:`customer_analytics.features.btyd_summaries`, from past orders.

    A purchase day is a calendar day with an order of positive total; its value is the net total
    of all that day's orders. Columns are missing (NaN) for customers without a purchase day.
    """
    cols = ft.BTYD_SUMMARY
    o = past_orders.assign(DAY=past_orders["TS"].dt.normalize(), BUY=past_orders["ORDER_TOTAL"] > 0)
    days = (
        o.groupby(["CUSTOMER_ID", "DAY"])
        .agg(NET=("ORDER_TOTAL", "sum"), BUY=("BUY", "any"))
        .reset_index()
    )
    buy = days[days["BUY"]]
    if buy.empty:
        return pd.DataFrame(columns=cols, dtype=float)
    g = buy.groupby("CUSTOMER_ID")
    first, last, n = g["DAY"].min(), g["DAY"].max(), g.size()
    repeat = buy[buy["DAY"] > buy["CUSTOMER_ID"].map(first)].groupby("CUSTOMER_ID")["NET"].sum()
    age = (c0 - first).dt.days
    out = pd.DataFrame({"BTYD_X": n - 1, "BTYD_TX": (last - first).dt.days, "BTYD_T": age})
    out["BTYD_VALUE"] = (repeat.reindex(out.index).fillna(0) / out["BTYD_X"]).where(
        out["BTYD_X"] > 0
    )
    out["RECENCY_OVER_AGE"] = (c0 - last).dt.days / age
    out["PURCHASE_DAYS_PER_30D"] = n * 30.0 / age
    return out.astype(float)


# --------------------------------------------------------------------------- topics (issue 20)
def topic_table(assigned: pd.DataFrame, as_of: dt.date, recent_days: int) -> pd.DataFrame:
    """Per topic: texts, share, reviews, calls, mean rating and trend, from one row per text.

    Args:
        assigned: ``TEXT_TOPICS`` rows (``TS``, ``KIND``, ``RATING``, ``TOPIC``).
        recent_days: the trend compares the share over the last ``recent_days`` before ``as_of``
            with the share over the same span before that (percentage points).
    """
    end = pd.Timestamp(as_of)
    t = assigned[assigned["TOPIC"].notna() & (assigned["TS"] < end)].copy()
    t["TOPIC"] = t["TOPIC"].astype(int)
    g = t.groupby("TOPIC")
    out = pd.DataFrame(
        {"texts": g.size(), "reviews": g["KIND"].apply(lambda k: (k == "review").sum())}
    )
    out["share"] = out["texts"] / out["texts"].sum()
    out["calls"] = out["texts"] - out["reviews"]
    out["mean rating"] = g["RATING"].apply(lambda r: r.dropna().astype(float).mean())
    recent_start, before_start = (
        end - pd.Timedelta(days=recent_days),
        end - pd.Timedelta(days=2 * recent_days),
    )
    recent = t[t["TS"] >= recent_start]["TOPIC"].value_counts(normalize=True)
    before = t[(t["TS"] >= before_start) & (t["TS"] < recent_start)]["TOPIC"].value_counts(
        normalize=True
    )
    out["trend (pp)"] = 100 * (
        recent.reindex(out.index).fillna(0) - before.reindex(out.index).fillna(0)
    )
    return out.sort_index()


def topic_shares(assigned: pd.DataFrame, cutoff: dt.date, n_topics: int) -> pd.DataFrame:
    """Per customer with a text before ``cutoff``: the share of those texts in each topic."""
    t = assigned[assigned["TS"] < pd.Timestamp(cutoff)]
    counts = pd.crosstab(t["CUSTOMER_ID"], t["TOPIC"].fillna(0).astype(int))
    shares = counts.div(counts.sum(axis=1), axis=0)
    return pd.DataFrame(
        {f"TOPIC_SHARE_{k:02d}": shares[k] if k in shares else 0.0 for k in range(1, n_topics + 1)},
        index=shares.index,
    )


# --------------------------------------------------------------------------- retention (issue 20)
def _month_no(ts: pd.Series) -> pd.Series:
    ts = pd.to_datetime(ts)
    return ts.dt.year * 12 + ts.dt.month - 1


def cohorts(cust: pd.DataFrame, orders: pd.DataFrame, as_of: dt.date, months: int) -> pd.DataFrame:
    """Cohort cells as :func:`customer_analytics.eda.cohort_frame` defines them, from CLEAN_
    frames."""
    last = as_of.year * 12 + as_of.month - 1
    c = cust.assign(COHORT=_month_no(cust["SIGNUP_DATE"]))
    c = c[(c["COHORT"] >= last - months) & (c["COHORT"] < last)]
    o = orders[pd.to_datetime(orders["TS"]) < pd.Timestamp(as_of)].merge(
        c[["CUSTOMER_ID", "COHORT"]], on="CUSTOMER_ID"
    )
    o = o.assign(M=_month_no(o["TS"]))
    o = o[(o["M"] >= o["COHORT"]) & (o["M"] < last)].assign(OFFSET=lambda d: d["M"] - d["COHORT"])
    rows = []
    for cohort, members in c.groupby("COHORT"):
        mine = o[o["COHORT"] == cohort]
        if mine.empty:
            rows.append((cohort, 0, len(members), 0, 0.0))
        for off, cell in mine.groupby("OFFSET"):
            buyers = cell.loc[
                ~cell["IS_RETURN"].fillna(False).astype(bool), "CUSTOMER_ID"
            ].nunique()
            rows.append((cohort, int(off), len(members), buyers, float(cell["ORDER_TOTAL"].sum())))
    out = pd.DataFrame(rows, columns=["cohort", "offset", "customers", "active", "revenue"])
    out["cohort"] = [dt.date(int(n) // 12, int(n) % 12 + 1, 1) for n in out["cohort"]]
    return out.sort_values(["cohort", "offset"]).reset_index(drop=True)


def churn_rates(orders: pd.DataFrame, month_starts: list[dt.date], days: int) -> pd.DataFrame:
    """Per month start: customers who bought in the ``days`` before it, and the share of them who
    bought nothing in the ``days`` from it."""
    buys = orders[~orders["IS_RETURN"].fillna(False).astype(bool)]
    ts = pd.to_datetime(buys["TS"])
    rows = {}
    for m in month_starts:
        m0, h = pd.Timestamp(m), pd.Timedelta(days=days)
        before = set(buys.loc[(ts >= m0 - h) & (ts < m0), "CUSTOMER_ID"])
        after = set(buys.loc[(ts >= m0) & (ts < m0 + h), "CUSTOMER_ID"])
        if before:
            rows[m] = (len(before), len(before - after), len(before - after) / len(before))
    return pd.DataFrame.from_dict(
        rows, orient="index", columns=["active customers", "churned", "churn rate"]
    )


def repeat_purchase(cust: pd.DataFrame, orders: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Per sign-up year and overall: customers, buyers, repeat buyers (2+ purchases before
    ``as_of``)."""
    buys = orders[
        (pd.to_datetime(orders["TS"]) < pd.Timestamp(as_of))
        & ~orders["IS_RETURN"].fillna(False).astype(bool)
    ]
    n = buys.groupby("CUSTOMER_ID").size()
    c = cust[pd.to_datetime(cust["SIGNUP_DATE"]) < pd.Timestamp(as_of)].copy()
    c["N"] = c["CUSTOMER_ID"].map(n).fillna(0)
    c["YEAR"] = pd.to_datetime(c["SIGNUP_DATE"]).dt.year.astype(str)
    out = (
        pd.concat([c, c.assign(YEAR="all")])
        .groupby("YEAR")
        .agg(
            customers=("N", "size"),
            buyers=("N", lambda x: (x >= 1).sum()),
            repeat=("N", lambda x: (x >= 2).sum()),
        )
    )
    out["repeat-purchase rate"] = out["repeat"] / out["buyers"]
    return out
