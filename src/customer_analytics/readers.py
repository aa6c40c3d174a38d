"""Streaming file readers: raw input files -> Parquet staging files with one row per physical record.

Each reader walks its file once, in binary, line by line (memory stays flat whatever the file
size: rows are flushed to Parquet in bounded batches), and never raises on bad content. Every
record becomes exactly one staged row: ``SOURCE_FILE``, ``LINE_NO`` (1-based line where the
record starts), ``RECORD`` (the record as text; invalid bytes shown as ``\\xNN``) and, when the
record cannot be read, ``READ_REASON`` / ``READ_FIELD`` (one of :class:`contract.Reason`).

What is decided here is only what needs the raw bytes: encoding, line length, JSON and CSV
syntax. Field checks (types, dates, duplicates, …) run in the warehouse (:mod:`ingest`), so the
same Snowpark code validates on the embedded warehouse and on Snowflake. JSON is validated
here with Python's strict parser because the warehouses' parsers differ (DuckDB accepts trailing
commas, and fails the whole query on an invalid ``\\u`` escape).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from customer_analytics import contract
from customer_analytics.contract import MAX_LINE_BYTES, MAX_RECORD_LINES, Reason

log = logging.getLogger(__name__)

BOM = b"\xef\xbb\xbf"
#: Columns every staged file has, before the per-field columns of CSV and call sources.
BASE_COLUMNS = ("SOURCE_FILE", "LINE_NO", "RECORD", "READ_REASON", "READ_FIELD")
BATCH_ROWS = 50_000
BATCH_BYTES = 64 * 2**20
_SHOWN_PREFIX = 4096  # bytes of an over-long line kept in RECORD
#: Header keys of a call transcript, by contract field.
CALL_HEADER_KEYS = {"customer_id": ("customer_id", "customer", "customer id"), "ts": ("ts", "date", "timestamp")}
_CALL_NAME = re.compile(r"^(?P<cid>.+?)_(?P<date>\d{4}-\d{2}-\d{2})(?:[_T].*)?$")
_HEADER_LINE = re.compile(r"^\s*(?P<key>[A-Za-z_ ]{1,40}?)\s*:\s*(?P<value>.*?)\s*$")

# quoted fields may be long (review texts); the csv module's default limit is 128 KB
csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES))


@dataclass
class FileStats:
    """What a reader saw: records staged, bytes, checksum and per-reason counts of unreadable records."""

    path: Path
    fmt: str
    staged: Path
    records: int = 0
    bytes: int = 0
    sha256: str = ""
    read_errors: dict[str, int] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)

    def count_error(self, reason: str | None) -> None:
        if reason:
            self.read_errors[reason] = self.read_errors.get(reason, 0) + 1


def show(raw: bytes) -> str:
    """Bytes as text for RECORD/VALUE: invalid UTF-8 as ``\\xNN``, NUL as ``\\x00``."""
    return raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def normalise(name: str) -> str:
    """A column name as matched against the contract: BOM and surrounding spaces removed, case folded."""
    return name.replace("\ufeff", "").strip().casefold()


class _Writer:
    """Accumulates rows and writes them to Parquet in bounded batches (rows and bytes)."""

    def __init__(self, path: Path, columns: tuple[str, ...], text_index: int = 2):
        self.path, self.columns, self.text_index = path, columns, text_index
        self.schema = pa.schema([(c, pa.int64() if c in ("LINE_NO", "ITEM_NO") else pa.string())
                                 for c in columns])
        self._rows: list[tuple] = []
        self._bytes = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(path, self.schema, compression="snappy")

    def add(self, row: tuple) -> None:
        self._rows.append(row)
        self._bytes += len(row[self.text_index] or "")
        if len(self._rows) >= BATCH_ROWS or self._bytes >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            cols = [list(c) for c in zip(*self._rows, strict=True)]
            self._writer.write_table(pa.table(dict(zip(self.columns, cols, strict=True)), schema=self.schema))
        self._rows, self._bytes = [], 0

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def physical_lines(f: BinaryIO, digest) -> Iterator[tuple[int, bytes, bool]]:
    """Yield ``(line_no, content, too_long)`` for each line of a binary file, terminator stripped.

    A line longer than :data:`MAX_LINE_BYTES` is consumed in chunks (never held whole) and
    yielded with its first bytes and ``too_long=True``. A UTF-8 byte-order mark is dropped.
    """
    n = 0
    while chunk := f.readline(MAX_LINE_BYTES + 1):
        digest.update(chunk)
        n += 1
        too_long = len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n")
        if too_long:
            head = chunk[:_SHOWN_PREFIX]
            while chunk and not chunk.endswith(b"\n"):
                chunk = f.readline(2**20)
                digest.update(chunk)
            chunk = head
        if n == 1 and chunk.startswith(BOM):
            chunk = chunk[len(BOM):]
        if chunk.endswith(b"\n"):
            chunk = chunk[:-1]
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
        yield n, chunk, too_long


# --------------------------------------------------------------------------- JSON lines
def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):  # Snowflake's PARSE_JSON refuses these (and would fail the whole load)
        raise ValueError("duplicate key")
    return out


# strict: no NaN/Infinity, no control characters in strings, no key twice in one object
_JSON = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_unique_keys)


def _has_surrogate(value) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


def json_problem(text: str) -> str | None:
    """Why one line is not a usable JSON object (``None`` if it is one)."""
    return parse_object(text)[1]


def parse_object(text: str) -> tuple[dict | None, str | None]:
    """``(object, None)`` for a usable JSON object line, else ``(None, reason)``."""
    try:
        value = _JSON.decode(text)
    except (ValueError, RecursionError):
        return None, Reason.MALFORMED_JSON
    if not isinstance(value, dict):
        return None, Reason.NOT_AN_OBJECT
    if "\\u" in text.lower() and _has_surrogate(value):  # e.g. "\ud800": invalid text, breaks warehouse parsers
        return None, Reason.MALFORMED_JSON
    return value, None


#: Columns of the items staged beside a JSON-lines orders file: one row per element of ``items``.
ITEM_COLUMNS = ("SOURCE_FILE", "LINE_NO", "ITEM_NO", "ITEM")


def _get(obj: dict, path: str):
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _stage_items(value: dict, path: str, source_file: str, n: int, out: _Writer) -> str | None:
    """Write one row per element of the list at ``path`` (each as compact JSON); the reason when the
    list is longer than :data:`contract.MAX_ITEMS` (then nothing is written)."""
    items = _get(value, path)
    if not isinstance(items, list):
        return None
    if len(items) > contract.MAX_ITEMS:
        return Reason.TOO_MANY_ITEMS
    for k, item in enumerate(items):
        out.add((source_file, n, k, json.dumps(item, ensure_ascii=False, separators=(",", ":"))))
    return None


def read_jsonl(path: Path, staged: Path, source_file: str,
               items: tuple[str, Path] | None = None) -> FileStats:
    """Stage a JSON-lines file: one row per physical line; ``RECORD`` holds the line.

    Args:
        items: ``(key path, parquet file)``: also stage each element of the list at that key path as
            its own row (:data:`ITEM_COLUMNS`), so the warehouse never has to take a long list apart
            (memory per line stays linear in its size). A list longer than
            :data:`contract.MAX_ITEMS` makes the line unreadable as :data:`Reason.TOO_MANY_ITEMS`
            (``READ_FIELD`` = items).
    """
    stats, digest = FileStats(path, "jsonl", staged), hashlib.sha256()
    with contextlib.ExitStack() as stack:
        f = stack.enter_context(path.open("rb"))
        out = stack.enter_context(_Writer(staged, BASE_COLUMNS))
        item_out = (stack.enter_context(_Writer(items[1], ITEM_COLUMNS, text_index=3))
                    if items else None)
        _read_jsonl_lines(f, digest, source_file, out, items[0] if items else None, item_out, stats)
    stats.bytes, stats.sha256 = path.stat().st_size, digest.hexdigest()
    return stats


def _read_jsonl_lines(f: BinaryIO, digest, source_file: str, out: _Writer, items_path: str | None,
                      item_out: _Writer | None, stats: FileStats) -> None:
    for n, raw, too_long in physical_lines(f, digest):
        reason, fld = None, "line"
        if too_long:
            reason, text = Reason.LINE_TOO_LONG, show(raw)
        elif not raw.strip():
            reason, text = Reason.EMPTY_LINE, ""
        else:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                reason, text = Reason.INVALID_UTF8, show(raw)
            else:
                value, reason = parse_object(text)
                if reason:
                    text = text.replace("\x00", "\\x00")
                elif items_path and item_out is not None:
                    reason = _stage_items(value, items_path, source_file, n, item_out)
                    fld = "items"
        out.add((source_file, n, text, reason, fld if reason else None))
        stats.count_error(reason)
        stats.records = n


# --------------------------------------------------------------------------- CSV
def csv_records(lines: Iterator[tuple[int, bytes, bool]], header: bool = True) -> Iterator[tuple[int, str, str | None]]:
    """Group physical lines into CSV records: ``(first_line_no, text, reason)``.

    A record continues over line breaks while a quote is open (RFC 4180: quotes inside quoted
    fields are doubled, so an odd count means "still open"), for at most
    :data:`MAX_RECORD_LINES` lines, and only if the joined record splits into as many fields as
    the header (the first record, when ``header``). Otherwise the quote that opened it is taken
    as a mistake: only that line is rejected and the following lines are read again as records
    of their own, so one stray quote cannot swallow the rest of the file. Text is decoded with
    ``surrogateescape``: invalid bytes survive as lone surrogates for :func:`read_csv` to report.
    """
    pending: deque[tuple[int, bytes, bool]] = deque()
    n_fields: int | None = None

    def next_line():
        return pending.popleft() if pending else next(lines, None)

    while (item := next_line()) is not None:
        no, raw, too_long = item
        if too_long:
            yield no, show(raw), Reason.LINE_TOO_LONG
            continue
        text = raw.decode("utf-8", "surrogateescape")
        quotes = text.count('"')
        if quotes % 2 == 0:
            if header and n_fields is None:
                n_fields = len(split_record(text) or [])
            yield no, text, None
            continue
        parts, taken, size = [text], [], len(raw)
        while quotes % 2:
            nxt = next_line()
            if nxt is None:
                break
            taken.append(nxt)
            if nxt[2] or len(taken) >= MAX_RECORD_LINES or size + len(nxt[1]) > MAX_LINE_BYTES:
                break
            part = nxt[1].decode("utf-8", "surrogateescape")
            parts.append(part)
            quotes += part.count('"')
            size += len(nxt[1]) + 1
        joined = "\n".join(parts)
        if quotes % 2 == 0 and (n_fields is None or (_fits(joined, n_fields)
                                                     and not any(_is_record(x, n_fields) for x in parts[1:-1]))):
            if header and n_fields is None:
                n_fields = len(split_record(joined) or [])
            yield no, joined, None
        else:
            pending.extendleft(reversed(taken))
            yield no, text, Reason.CSV_UNCLOSED_QUOTE


def _is_record(line: str, n_fields: int) -> bool:
    """Whether one line is, on its own, a complete record of ``n_fields`` fields (then it is not inside a field)."""
    return line.count('"') % 2 == 0 and _fits(line, n_fields)


def _fits(text: str, n_fields: int) -> bool:
    """Whether a multi-line record splits into ``n_fields`` fields (extra empty ones tolerated)."""
    fields = split_record(text)
    return fields is not None and len(fields) >= n_fields and not any(f.strip() for f in fields[n_fields:])


def _as_record(text: str) -> str:
    """Record text for storage: lone surrogates (invalid bytes) back to ``\\xNN``, NUL visible."""
    if not text.isascii():
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text.replace("\x00", "\\x00")


def split_record(text: str) -> list[str] | None:
    """The fields of one complete CSV record (``None`` if the csv module cannot split it)."""
    try:
        return next(csv.reader([text]), [])
    except csv.Error:
        return None


def read_header(path: Path) -> list[str] | None:
    """The header fields of a CSV file (BOM tolerated; ``None`` if the file has no first record)."""
    with path.open("rb") as f:
        first = next(csv_records(physical_lines(f, hashlib.sha256()), header=False), None)
    if first is None or first[2]:
        return None
    return split_record(first[1])


def _field_problem(fields: list[str], header: list[str], text: str) -> tuple[str | None, str | None]:
    """Reading problem of one split CSV record: ``(reason, column)`` or ``(None, None)``."""
    n = len(header)
    if not any(fields) or not any(f.strip() for f in fields):
        return Reason.EMPTY_LINE, "line"
    if len(fields) != n and (len(fields) < n or any(f.strip() for f in fields[n:])):
        return Reason.CSV_FIELD_COUNT, "line"
    if text.isascii() and "\x00" not in text:
        return None, None
    for name, value in zip(header, fields, strict=False):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return Reason.INVALID_UTF8, name
        if "\x00" in value:
            return Reason.NUL_BYTE, name
    return None, None


def read_csv(path: Path, staged: Path, source_file: str, wanted: dict[str, str]) -> FileStats:
    """Stage a CSV file: one row per record after the header, plus one string column per contract field.

    Args:
        path: the CSV file.
        staged: Parquet file to write.
        source_file: name recorded in ``SOURCE_FILE``.
        wanted: contract field -> column name expected in the header (matched by :func:`normalise`).
            Fields whose column is absent get no staged column; ``FileStats.columns`` lists the
            ones found (field -> header name as written in the file).
    """
    stats, digest = FileStats(path, "csv", staged), hashlib.sha256()
    with path.open("rb") as f:
        records = csv_records(physical_lines(f, digest))
        head = next(records, None)
        header = (split_record(head[1]) if head and not head[2] else None) or []
        index = {normalise(h): i for i, h in reversed(list(enumerate(header)))}
        found = {fld: index[normalise(col)] for fld, col in wanted.items() if normalise(col) in index}
        stats.columns = {fld: header[i] for fld, i in found.items()}
        columns = BASE_COLUMNS + tuple(fld.upper() for fld in found)
        with _Writer(staged, columns) as out:
            for no, text, reason in records:
                fields = split_record(text) if reason is None else None
                column = "line" if reason else None
                if reason is None and fields is None:
                    reason, column = Reason.CSV_SYNTAX, "line"
                elif reason is None:
                    reason, column = _field_problem(fields, header, text)
                values = [None] * len(found) if reason else [fields[i] for i in found.values()]
                out.add((source_file, no, _as_record(text), reason, column, *values))
                stats.count_error(reason)
                stats.records += 1
    stats.bytes, stats.sha256 = path.stat().st_size, digest.hexdigest()
    return stats


# --------------------------------------------------------------------------- call transcripts
def call_files(folder: Path) -> list[Path]:
    """The transcripts of a calls folder (``*.txt``, any case), sorted by name."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".txt"
                   and not p.name.startswith(".")), key=lambda p: p.name)


def parse_call(text: str, file_name: str) -> tuple[str | None, str | None, str]:
    """``(customer_id, ts, body)`` of one transcript: header lines first, else the file name."""
    lines = text.splitlines()
    values: dict[str, str] = {}
    i = 0
    while i < len(lines) and (m := _HEADER_LINE.match(lines[i])):
        key = next((k for k, names in CALL_HEADER_KEYS.items() if m["key"].strip().lower() in names), None)
        if key is None:
            break
        values.setdefault(key, m["value"])
        i += 1
    if values and i < len(lines) and not lines[i].strip():
        i += 1  # the blank line that ends the header
    body = "\n".join(lines[i:]).strip()
    name = _CALL_NAME.match(Path(file_name).stem)
    cid = values.get("customer_id") or (name["cid"] if name else None)
    ts = values.get("ts") or (name["date"] if name else None)
    return cid or None, ts or None, body


#: Columns of a staged calls folder after BASE_COLUMNS (the last three are set for recordings only).
CALL_COLUMNS = ("CUSTOMER_ID", "TS", "TEXT", "RECOGNIZER", "CONFIDENCE", "AUDIO_SECONDS")


def read_calls(folder: Path, staged: Path, prefix: str, transcriber=None) -> FileStats:
    """Stage a folder of call transcripts: one row per file, with the :data:`CALL_COLUMNS`.

    Args:
        transcriber: an :class:`audio.Transcriber`; recordings are read only when one is given.
    """
    stats, digest = FileStats(folder, "txt", staged), hashlib.sha256()
    with _Writer(staged, BASE_COLUMNS + CALL_COLUMNS) as out:
        for path in call_files(folder):
            name = f"{prefix}/{path.name}"
            size = path.stat().st_size
            digest.update(name.encode() + b"\0")
            if size > MAX_LINE_BYTES:
                with path.open("rb") as f:
                    raw = f.read(_SHOWN_PREFIX)
                row = (name, 1, show(raw), Reason.LINE_TOO_LONG, "text", None, None, None)
            else:
                raw = path.read_bytes()
                digest.update(raw)
                row = _call_row(raw, name)
            out.add(row + (None, None, None))
            stats.count_error(row[3])
            stats.records += 1
            stats.bytes += size
        # ---- hook: audio calls (customer_analytics.audio); one row per recording, like a
        # transcript
        if transcriber is not None:
            from customer_analytics import audio

            for row, size in audio.staged_rows(folder, prefix, transcriber, digest):
                out.add(row)
                stats.count_error(row[3])
                stats.records += 1
                stats.bytes += size
        # ---- end of hook
    stats.sha256 = digest.hexdigest()
    return stats


def _call_row(raw: bytes, name: str) -> tuple:
    if raw.startswith(BOM):
        raw = raw[len(BOM):]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return name, 1, show(raw), Reason.INVALID_UTF8, "text", None, None, None
    if "\x00" in text:
        return name, 1, show(raw), Reason.NUL_BYTE, "text", None, None, None
    cid, ts, body = parse_call(text, name)
    return name, 1, text, None, None, cid, ts, body or None
