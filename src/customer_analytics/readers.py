"""Streaming file readers: raw input files -> Parquet staging files with one row per physical
record.

Each reader walks its file once, in binary, line by line (memory stays flat whatever the file
size: rows are flushed to Parquet in bounded batches), and never raises on bad content. A large
JSON-lines file is cut at line starts and its parts read side by side, one process each
(:func:`read_jsonl`). Every
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

import codecs
import contextlib
import csv
import datetime as dt
import hashlib
import json
import logging
import os
import re
import stat
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from customer_analytics import contract
from customer_analytics.contract import (
    LEGACY_MIN_BAD,
    MAX_JSON_DEPTH,
    MAX_JSON_INT_DIGITS,
    MAX_LINE_BYTES,
    MAX_RECORD_LINES,
    Reason,
)

log = logging.getLogger(__name__)

BOM = b"\xef\xbb\xbf"
#: Columns every staged file has, before the per-field columns of CSV and call sources.
BASE_COLUMNS = ("SOURCE_FILE", "LINE_NO", "RECORD", "READ_REASON", "READ_FIELD")
BATCH_ROWS = 50_000
BATCH_BYTES = 64 * 2**20
_SHOWN_PREFIX = 4096  # bytes of an over-long line kept in RECORD
#: Header keys of a call transcript, by contract field.
CALL_HEADER_KEYS = {
    "customer_id": ("customer_id", "customer", "customer id"),
    "ts": ("ts", "date", "timestamp"),
}
_CALL_NAME = re.compile(r"^(?P<cid>.+?)_(?P<date>\d{4}-\d{2}-\d{2})(?:[_T].*)?$")
_HEADER_LINE = re.compile(r"^\s*(?P<key>[A-Za-z_ ]{1,40}?)\s*:\s*(?P<value>.*?)\s*$")

# quoted fields may be long (review texts); the csv module's default limit is 128 KB
csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES))


@dataclass
class FileStats:
    """What a reader saw: records staged, bytes, checksum and per-reason counts of unreadable
    records."""

    path: Path
    fmt: str
    staged: Path
    records: int = 0
    bytes: int = 0
    sha256: str = ""
    read_errors: dict[str, int] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)
    #: calls: entries of the folder that are not read, per reason (never their names)
    skipped: dict[str, int] = field(default_factory=dict)
    #: calls: the staged SOURCE_FILE names in name order (reports name a file by its position)
    names: list[str] = field(default_factory=list)
    #: the file (a transcript) changed size or time while it was read
    changed: bool = False
    #: calls: transcripts read in another encoding than UTF-8, per Python codec
    encodings: dict[str, int] = field(default_factory=dict)
    #: the staged Parquet files, in line order (``[staged]`` unless read in parts)
    parts: list[Path] = field(default_factory=list)
    #: JSON lines with items: the items' staged Parquet files, in line order
    item_parts: list[Path] = field(default_factory=list)

    def count_error(self, reason: str | None) -> None:
        if reason:
            self.read_errors[reason] = self.read_errors.get(reason, 0) + 1


def show(raw: bytes) -> str:
    """Bytes as text for RECORD/VALUE: invalid UTF-8 as ``\\xNN``, NUL as ``\\x00``."""
    return raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def _drop_boms(raw: bytes) -> bytes:
    """A line without the byte-order marks it starts with (files joined together keep theirs)."""
    while raw.startswith(BOM):
        raw = raw[len(BOM) :]
    return raw


class _Counted:
    """SHA-256 of the bytes read, and how many there were (a file may change while it is read)."""

    def __init__(self):
        self._sha, self.size = hashlib.sha256(), 0

    def update(self, data: bytes) -> None:
        self._sha.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def normalise(name: str) -> str:
    """A column name as matched against the contract: BOM and surrounding spaces removed, case
    folded."""
    return name.replace("\ufeff", "").strip().casefold()


# --------------------------------------------------------------------------- opening input files
class UnsafeInput(ValueError):
    """An input path that is never read: outside ``data_dir`` (a link or ``..``), or not a file.

    ``reason`` is a :class:`contract.Reason`; the message names neither the path nor its target.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def within(path: Path, root: Path) -> bool:
    """Whether ``path``, links followed, lies inside ``root`` (itself resolved: a data folder
    that is a link is fine; only escapes from it are not)."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))
    except (OSError, ValueError):
        return False


def check_input(path: Path, root: Path | None) -> Path:
    """The resolved path of an input file that may be read, without opening it.

    Raises:
        UnsafeInput: it resolves outside ``root`` (:data:`Reason.OUTSIDE_DATA_DIR`), or it is not a
            regular file (:data:`Reason.NOT_A_FILE`: a pipe, device, socket or folder).
    """
    if root is not None and not within(path, root):
        raise UnsafeInput(
            Reason.OUTSIDE_DATA_DIR,
            "it resolves to a place outside data_dir "
            "(a link or '..'): files outside the data folder are never read",
        )
    real = Path(os.path.realpath(path))
    try:
        mode = real.stat().st_mode
    except OSError as e:
        raise UnsafeInput(Reason.NOT_A_FILE, f"it cannot be opened ({type(e).__name__})") from e
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "a pipe, device or socket"
        raise UnsafeInput(Reason.NOT_A_FILE, f"it is not a regular file but {what}")
    return real


def open_input(path: Path, root: Path | None = None) -> BinaryIO:
    """Open an input file for reading: only a regular file inside ``root``, never blocking.

    The resolved path is opened without following a link swapped in meanwhile (``O_NOFOLLOW``)
    and without waiting on a pipe (``O_NONBLOCK``); what was opened is checked again.

    Raises:
        UnsafeInput: see :func:`check_input`.
    """
    real = check_input(path, root)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(real, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise UnsafeInput(Reason.NOT_A_FILE, f"it cannot be opened ({type(e).__name__})") from e
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeInput(Reason.NOT_A_FILE, "it is not a regular file")
    return os.fdopen(fd, "rb")


def _signature(f: BinaryIO) -> tuple[int, int]:
    st = os.fstat(f.fileno())
    return st.st_size, st.st_mtime_ns


# --------------------------------------------------------------------------- what a file is
#: Bytes of a file's start that :func:`sniff` looks at.
SNIFF_BYTES = 65_536
_MAGIC = (
    (
        b"PK\x03\x04",
        "a ZIP archive (an Excel .xlsx or OpenDocument workbook is one)",
        "if it is a workbook, give it its own extension (.xlsx or .ods: workbooks are read as "
        "they are); otherwise unzip it",
    ),
    (b"PK\x05\x06", "an empty ZIP archive", "export the data again"),
    (b"\x1f\x8b", "gzip-compressed", "decompress it first (gunzip)"),
    (b"BZh", "bzip2-compressed", "decompress it first (bunzip2)"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first (unxz)"),
    (b"(\xb5/\xfd", "zstd-compressed", "decompress it first (unzstd)"),
    (b"7z\xbc\xaf'\x1c", "a 7-Zip archive", "unpack it first"),
    (b"Rar!", "a RAR archive", "unpack it first"),
    (b"%PDF", "a PDF document", "export the data as CSV or JSON lines instead"),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "an old Office file (.xls/.doc)",
        "open it and save it as CSV UTF-8",
    ),
    (
        b"PAR1",
        "a Parquet file",
        "export it as CSV or JSON lines (or load it into a table and set <source>_table)",
    ),
    (b"SQLite format 3\x00", "an SQLite database", "export the table as CSV"),
    (b"\x89PNG", "a PNG image", "point the setting at the data export"),
    (b"\xff\xd8\xff", "a JPEG image", "point the setting at the data export"),
    (b"GIF8", "a GIF image", "point the setting at the data export"),
)
_BOMS = (  # longest first: a UTF-32 LE mark starts with the UTF-16 LE one
    (b"\xff\xfe\x00\x00", "UTF-32 (little-endian, with a byte-order mark)", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32 (big-endian, with a byte-order mark)", "UTF-32"),
    (b"\xff\xfe", "UTF-16 (little-endian, with a byte-order mark)", "UTF-16"),
    (b"\xfe\xff", "UTF-16 (big-endian, with a byte-order mark)", "UTF-16"),
)
#: The encoding a file in an 8-bit encoding is read with unless one is declared (``encodings``):
#: Windows-1252, which spreadsheets and shop systems on Windows write in Western Europe and the
#: Americas (a superset of ISO-8859-1's letters). Its five unassigned bytes are read as Latin-1's.
LEGACY_ENCODING = "cp1252"


#: Bytes that text never holds (tab, line breaks, form feed and escape excluded).
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")


@dataclass(frozen=True)
class Sniffed:
    """What a file that cannot be read as UTF-8 text with LF or CRLF lines is.

    Attributes:
        kind: ``utf16`` (UTF-16 or UTF-32), ``binary`` (archive, document, image, NUL bytes),
            ``cr_only`` (lines end with a carriage return alone), ``legacy`` (an 8-bit encoding
            such as Windows-1252), ``blank`` (nothing but a byte-order mark or blank lines).
        what: what the file is, for a message ("is UTF-16 (little-endian, …)").
        fix: how to re-export it.
    """

    kind: str
    what: str
    fix: str
    codec: str | None = None  # utf16: the Python codec that reads it (the mark included)


def sniff(head: bytes, whole: bool = False, name: str = "the file") -> Sniffed | None:
    """What the first bytes of a file say it is, when it is not readable text; ``None`` otherwise.

    Args:
        head: the file's first :data:`SNIFF_BYTES` bytes (or all of it).
        whole: ``head`` is the whole file.
        name: the file's name, used in the commands of ``fix``.
    """
    for bom, what, enc in _BOMS:
        if head.startswith(bom):
            return Sniffed("utf16", f"is {what}, not UTF-8", _iconv(enc, name), enc.lower())
    for magic, what, fix in _MAGIC:
        if head.startswith(magic):
            return Sniffed("binary", f"is {what}, not a text file", fix)
    sample = head[:4096]
    if sample.count(b"\x00") * 4 >= len(sample) > 0:
        odd = sample[1::2].count(b"\x00") > 2 * sample[0::2].count(b"\x00")
        even = sample[0::2].count(b"\x00") > 2 * sample[1::2].count(b"\x00")
        if odd or even:
            order = "little" if odd else "big"
            return Sniffed(
                "utf16",
                f"is UTF-16 ({order}-endian, without a byte-order mark), not UTF-8",
                _iconv(f"UTF-16{'LE' if odd else 'BE'}", name),
                f"utf-16-{'le' if odd else 'be'}",
            )
    if len(sample) >= 64 and len(_CONTROL_BYTES.findall(sample)) * 20 >= len(sample):
        return Sniffed(
            "binary",
            "is binary data, not text (it is full of control bytes)",
            "point the setting at the data export (CSV or JSON lines, UTF-8)",
        )
    if not _drop_boms(head).strip(b" \t\r\n") and whole:
        return Sniffed(
            "blank", "holds nothing but blank lines or a byte-order mark", "re-export it"
        )
    if b"\r" in head and b"\n" not in head:
        return Sniffed(
            "cr_only",
            "ends its lines with a carriage return alone (CR, the classic "
            "Mac OS convention); lines must end with LF or CRLF",
            f"re-export it with Unix (LF) or Windows (CRLF) line endings, e.g. "
            f"`tr '\\r' '\\n' < {name} > fixed_{name}`",
        )
    return _legacy(head, name)


def _iconv(encoding: str, name: str) -> str:
    return (
        f"re-export it as UTF-8 (spreadsheets: 'CSV UTF-8'), or convert it: "
        f"`iconv -f {encoding} -t UTF-8 {name} > utf8_{name}`"
    )


def _legacy(head: bytes, name: str) -> Sniffed | None:
    """An 8-bit encoding: several byte sequences that are not UTF-8, and none that is."""
    text = head[: len(head) - 3] if len(head) >= SNIFF_BYTES else head  # a cut last character
    decoded = text.decode("utf-8", "replace")
    bad = decoded.count("\ufffd") - text.decode("utf-8", "ignore").count("\ufffd")
    good = sum(1 for ch in decoded if ord(ch) > 0x7F and ch != "\ufffd")
    if bad >= 3 and good == 0:
        return Sniffed(
            "legacy",
            f"is not UTF-8: {bad} byte sequences in its first "
            f"{len(text):,} bytes are not UTF-8 and none is; it looks like "
            "an 8-bit encoding such as Windows-1252 or ISO-8859-1 (Latin-1)",
            _iconv("WINDOWS-1252", name),
        )
    return None


def sniff_file(path: Path, root: Path | None = None) -> Sniffed | None:
    """:func:`sniff` of a file's start (opened with :func:`open_input`)."""
    with open_input(path, root) as f:
        head = f.read(SNIFF_BYTES + 1)
    whole = len(head) <= SNIFF_BYTES
    return sniff(head[:SNIFF_BYTES], whole, path.name)


#: Bytes read at a time when a whole file's encoding is checked or converted.
_CHUNK = 16 * 2**20


@dataclass(frozen=True)
class Utf8Scan:
    """What :func:`scan_utf8` found in a whole file."""

    bad: int  # bytes that are not UTF-8 (counted up to the first character beyond ASCII in UTF-8)
    multibyte: bool  # a character beyond ASCII written in UTF-8 was found (the scan stopped there)

    @property
    def legacy(self) -> bool:
        """Several bytes that are not UTF-8 and no character in UTF-8: an 8-bit encoding."""
        return self.bad >= LEGACY_MIN_BAD and not self.multibyte

    @classmethod
    def of(cls, raw: bytes) -> Utf8Scan:
        """The scan of bytes held in memory (a transcript), as :func:`scan_utf8` of a file."""
        text = raw.decode("utf-8", "surrogateescape")  # one character per byte that is not UTF-8
        if len(text) < len(raw):
            return cls(0, True)
        return cls(len(raw.translate(None, _ASCII)), False)


def scan_utf8(path: Path, root: Path | None = None) -> Utf8Scan:
    """Whether a whole file is UTF-8, an 8-bit encoding, or UTF-8 with a few damaged lines.

    Stops at the first character beyond ASCII written in UTF-8 (the file is then UTF-8, and a
    damaged line is rejected with its reason); only a file without any is read to the end, and
    every byte beyond ASCII in it is then not UTF-8. All of it runs in C: ASCII stretches are
    skipped with ``bytes.isascii`` (~5 GB/s), others decoded with ``surrogateescape`` (one
    character per byte that is not UTF-8, so fewer characters than bytes means a UTF-8 one;
    ~100 MB/s even when no byte is UTF-8).
    """
    bad = 0
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    with open_input(path, root) as f:
        while chunk := f.read(_CHUNK):
            held = decoder.getstate()[0]  # the start of a character cut by the last chunk
            if chunk.isascii() and not held:
                continue
            text = decoder.decode(chunk)
            if len(held) + len(chunk) - len(decoder.getstate()[0]) > len(text):
                return Utf8Scan(bad, True)
            bad += len(chunk.translate(None, _ASCII))
    return Utf8Scan(bad, False)


_ASCII = bytes(range(128))


def _cp1252_unassigned(e: UnicodeError) -> tuple[str, int]:
    """Windows-1252's five unassigned bytes (0x81 0x8D 0x8F 0x90 0x9D) read as Latin-1's, as
    Windows itself does."""
    if not isinstance(e, UnicodeDecodeError):
        raise e
    return e.object[e.start : e.end].decode("latin-1"), e.end


codecs.register_error("customer_analytics.cp1252", _cp1252_unassigned)


@dataclass(frozen=True)
class Transcoded:
    """A UTF-8 copy of a file in another encoding (:func:`transcode`)."""

    path: Path
    encoding: str  # the Python codec it was read with
    sha256: str  # of the original file's bytes
    bytes: int  # the original file's size
    replaced: int  # characters written as U+FFFD (sequences the encoding could not read)


def transcode(path: Path, dest: Path, encoding: str, root: Path | None = None) -> Transcoded:
    """Write ``path`` (read with the Python codec ``encoding``) to ``dest`` as UTF-8, streaming.

    Lines stay as they are (same count, same order), so line numbers refer to the original.
    Sequences the encoding cannot read become U+FFFD and are counted (Windows-1252's unassigned
    bytes are read as Latin-1's instead). A byte-order mark is dropped.

    Raises:
        UnsafeInput: see :func:`open_input`.
        LookupError: ``encoding`` is not a codec.
    """
    info = codecs.lookup(encoding)
    errors = "customer_analytics.cp1252" if info.name == "cp1252" else "replace"
    decoder = info.incrementaldecoder(errors=errors)
    digest, size, replaced = hashlib.sha256(), 0, 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open_input(path, root) as f, open(dest, "wb") as out:
        before = _signature(f)
        while True:
            chunk = f.read(_CHUNK)
            digest.update(chunk)
            size += len(chunk)
            text = decoder.decode(chunk, final=not chunk)
            replaced += text.count("\ufffd")
            out.write(text.encode("utf-8", "replace"))  # a lone surrogate (UTF-16) as '?'
            if not chunk:
                break
        changed = _signature(f) != before
    if changed:
        dest.unlink(missing_ok=True)
        raise UnsafeInput(
            Reason.NOT_A_FILE, "it changed while it was read (an export still being written?)"
        )
    return Transcoded(dest, info.name, digest.hexdigest(), size, replaced)


@dataclass(frozen=True)
class Workbook:
    """What :func:`workbook_to_csv` read of a spreadsheet workbook."""

    sheets: tuple[str, ...]  # the sheets whose rows are in the copy, in workbook order
    skipped: tuple[str, ...]  # visible sheets with another header (or none), not read
    rows: int  # data rows written (header lines excluded)


def _cell_text(v: object) -> str:
    """A workbook cell as CSV text: dates in ISO 8601, whole numbers without ``.0`` (Excel stores
    every number as a double: ids and quantities are whole), line breaks as spaces (one row, one
    line, so line numbers stay the sheet's rows)."""
    if isinstance(v, str):
        return v.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    return "" if v is None else str(v)


def _sheet_rows(book, name: str):
    """The rows of a worksheet; a sheet calamine cannot read is a :class:`ValueError`."""
    try:
        return book.get_sheet_by_name(name).iter_rows()
    except Exception as e:  # noqa: BLE001 - calamine's errors all mean a damaged sheet
        raise ValueError(f"its sheet '{name}' cannot be read ({type(e).__name__})") from None


def workbook_to_csv(
    path: Path, dest: Path, root: Path | None = None
) -> tuple[Transcoded, Workbook]:
    """Write a spreadsheet workbook (:data:`contract.WORKBOOK_SUFFIXES`) as one UTF-8 CSV file.

    The first visible worksheet's first row is the header; every later visible worksheet whose
    first row is the same header adds its rows (a workbook with a sheet per year), others are not
    read and are named in :attr:`Workbook.skipped`. Cells: :func:`_cell_text`. The copy's line
    numbers are the first sheet's row numbers when it starts at row 1.

    Raises:
        UnsafeInput: see :func:`open_input`.
        ValueError: the file is not a workbook calamine can read (corrupt, encrypted); the message
            says which.
    """
    import io

    from python_calamine import CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum

    with open_input(path, root) as f:
        before = _signature(f)
        data = f.read()
        changed = _signature(f) != before
    if changed:
        raise UnsafeInput(
            Reason.NOT_A_FILE, "it changed while it was read (an export still being written?)"
        )
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except Exception as e:  # noqa: BLE001 - calamine's errors (zip, xml, password) all mean one thing
        raise ValueError(
            f"it cannot be read as a workbook ({type(e).__name__}: it may be damaged, "
            "password-protected or another format under this name)"
        ) from None
    visible = [
        m.name
        for m in book.sheets_metadata
        if m.typ == SheetTypeEnum.WorkSheet and m.visible == SheetVisibleEnum.Visible
    ]
    header: list[str] | None = None
    read, skipped, rows = [], [], 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(dest, "w", encoding="utf-8", newline="") as out:
            w = csv.writer(out, lineterminator="\n")
            for name in visible:
                it = iter(_sheet_rows(book, name))
                first = [_cell_text(v).strip() for v in next(it, [])]
                while first and not first[-1]:
                    first.pop()
                if header is None and any(first):
                    header = first
                    w.writerow(header)
                elif first != header:
                    skipped.append(name)
                    continue
                read.append(name)
                width, empty = len(header), 0
                for row in it:
                    cells = [_cell_text(v) for v in row]
                    while len(cells) > width and not cells[-1]:
                        cells.pop()  # the used range's empty cells (values beyond stay: rejected)
                    if not any(cells):  # written only if a row with values follows: formatted
                        empty += 1  # rows below the data are not records
                        continue
                    for _ in range(empty):  # an empty row between data rows: an empty record
                        w.writerow([""] * width)
                    rows += empty + 1
                    empty = 0
                    w.writerow(cells)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    digest = hashlib.sha256(data).hexdigest()
    return (
        Transcoded(dest, "utf-8", digest, len(data), 0),
        Workbook(tuple(read), tuple(skipped), rows),
    )


class _Writer:
    """Accumulates rows and writes them to Parquet in bounded batches (rows and bytes)."""

    def __init__(self, path: Path, columns: tuple[str, ...], text_index: int = 2):
        self.path, self.columns, self.text_index = path, columns, text_index
        self.schema = pa.schema(
            [(c, pa.int64() if c in ("LINE_NO", "ITEM_NO") else pa.string()) for c in columns]
        )
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
        if self._rows:  # the rows as one struct array: pyarrow converts them without a transpose
            rows = pa.array(self._rows, type=pa.struct(self.schema))
            self._writer.write_table(pa.Table.from_struct_array(rows))
        self._rows, self._bytes = [], 0

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def physical_lines(
    f: BinaryIO, digest, keep_cr: bool = False, first: int = 1, end: int | None = None
) -> Iterator[tuple[int, bytes, bool]]:
    """Yield ``(line_no, content, too_long)`` for each line of a binary file, terminator stripped.

    A line longer than :data:`MAX_LINE_BYTES` is consumed in chunks (never held whole) and
    yielded with its first bytes and ``too_long=True``. Byte-order marks at the start of the file
    are dropped (one or several). ``keep_cr``: the CR of a CRLF stays (CSV keeps it inside quoted
    fields, exactly as in the file). ``first``/``end``: a run of whole lines read from the file's
    current position (a line start), numbered from ``first``, up to byte offset ``end`` (also a
    line start); see :func:`read_jsonl`.
    """
    n = first - 1
    while (end is None or f.tell() < end) and (chunk := f.readline(MAX_LINE_BYTES + 1)):
        digest.update(chunk)
        n += 1
        too_long = len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n")
        if too_long:
            head = chunk[:_SHOWN_PREFIX]
            while chunk and not chunk.endswith(b"\n"):
                chunk = f.readline(2**20)
                digest.update(chunk)
            chunk = head
        while n == 1 and chunk.startswith(BOM):
            chunk = chunk[len(BOM) :]
        if chunk.endswith(b"\n"):
            chunk = chunk[:-1]
        if chunk.endswith(b"\r") and not keep_cr:
            chunk = chunk[:-1]
        yield n, chunk, too_long


# --------------------------------------------------------------------------- JSON lines
class _NumberRange(ValueError):
    """A JSON number no warehouse holds: beyond a double (1e400), or too many digits."""


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NumberRange(text[:20])
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise _NumberRange(text[:20])
    return int(text)


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(
        pairs
    ):  # Snowflake's PARSE_JSON refuses these (and would fail the whole load)
        raise ValueError("duplicate key")
    return out


# strict: no NaN/Infinity, no control characters in strings, no key twice in one object, numbers
# that a warehouse can hold
_JSON = json.JSONDecoder(
    parse_constant=_reject_constant,
    object_pairs_hook=_unique_keys,
    parse_float=_finite,
    parse_int=_bounded_int,
)


def _scan(value: object, deep: bool, strings: bool) -> tuple[str, str] | None:
    """``(reason, top-level key)`` of the first problem inside a parsed line: nesting deeper than
    :data:`MAX_JSON_DEPTH`, a lone surrogate (``"\\ud800"``), a NUL character (``"\\u0000"``).

    Iterative (a stack, not recursion): any depth is walked safely.
    """
    stack: list[tuple[object, int, str]] = [(value, 1, "line")]
    while stack:
        item, depth, top = stack.pop()
        if isinstance(item, dict | list):
            if deep and depth > MAX_JSON_DEPTH:
                return Reason.TOO_DEEP, "line"
            pairs = item.items() if isinstance(item, dict) else (("", v) for v in item)
            for k, v in pairs:
                key = k if depth == 1 and isinstance(item, dict) else top
                if strings and k and (problem := _text_problem(k)):
                    return problem, key if problem == Reason.NUL_BYTE else "line"
                stack.append((v, depth + 1, key))
        elif strings and isinstance(item, str) and (problem := _text_problem(item)):
            return problem, top if problem == Reason.NUL_BYTE else "line"
    return None


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return Reason.NUL_BYTE
    if any("\ud800" <= ch <= "\udfff" for ch in text):  # invalid text, breaks warehouse parsers
        return Reason.MALFORMED_JSON
    return None


def json_problem(text: str) -> str | None:
    """Why one line is not a usable JSON object (``None`` if it is one)."""
    return parse_object(text)[1]


def parse_object(text: str) -> tuple[dict | None, str | None]:
    """``(object, None)`` for a usable JSON object line, else ``(None, reason)``."""
    return _parse(text)[::2]


#: Bytes of a line with every digit made ``0`` and everything else a space: 19 zeros in a row are
#: a digit run that may be an integer beyond 64 bits (orjson turns those into floats).
_DIGITS = bytes(ord("0") if chr(b).isdigit() and b < 128 else ord(" ") for b in range(256))
_LONG_RUN = b"0" * 19
#: Every key of an object is followed by this; so can a string value (see :func:`_fast_parse`).
_KEY_END = re.compile(r'"\s*:')


def _fast_parse(text: str) -> dict | None:
    """The object of a line that is certainly fine, parsed by orjson; ``None``: ask :func:`_parse`.

    orjson is as strict as :data:`_JSON` on NaN/Infinity, control characters, infinite numbers and
    trailing content, but accepts a repeated key (keeping the last), ``\\u0000``, lone surrogates,
    any depth and integers beyond 64 bits. So a line goes this way only without ``\\u`` escapes,
    19-digit runs or more than :data:`MAX_JSON_DEPTH` brackets, and is vouched for only if it has as
    many ``"<spaces>:`` as its compact re-serialisation has ``":``. String contents are the same in
    both (no ``\\u`` escapes), and outside them every key token ends so: a key written twice but
    parsed once makes the line's count larger.
    """
    if "\\u" in text or text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        return None
    try:
        raw = text.encode()
    except UnicodeEncodeError:  # a lone surrogate in a str given by a caller
        return None
    if _LONG_RUN in raw.translate(_DIGITS):
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    if len(_KEY_END.findall(text)) != orjson.dumps(value).count(b'":'):
        return None
    return value


def _parse(text: str) -> tuple[dict | None, str, str | None]:
    """``(object, field, reason)`` of one line; ``field`` is the top-level key of a NUL.

    Lines :func:`_fast_parse` vouches for skip the strict decoder (the same result, ~5x faster).
    """
    if (value := _fast_parse(text)) is not None:
        return value, "line", None
    if "\x00" in text:  # a NUL byte in the line: the same reason as in a CSV field
        return None, "line", Reason.NUL_BYTE
    try:
        value = _JSON.decode(text)
    except _NumberRange:
        return None, "line", Reason.NUMBER_RANGE
    except RecursionError:
        return None, "line", Reason.TOO_DEEP
    except ValueError:
        return None, "line", Reason.MALFORMED_JSON
    if not isinstance(value, dict):
        return None, "line", Reason.NOT_AN_OBJECT
    deep = text.count("[") + text.count("{") > MAX_JSON_DEPTH
    strings = "\\u" in text.lower()  # a surrogate or NUL can only come from an escape
    if (deep or strings) and (problem := _scan(value, deep, strings)):
        return None, problem[1], problem[0]
    return value, "line", None


#: Columns of the items staged beside a JSON-lines orders file: one row per element of ``items``.
ITEM_COLUMNS = ("SOURCE_FILE", "LINE_NO", "ITEM_NO", "ITEM")


def _get(obj: dict, path: str) -> object:
    found: object = obj
    for part in path.split("."):
        found = found.get(part) if isinstance(found, dict) else None
    return found


def _stage_items(value: dict, path: str, source_file: str, n: int, out: _Writer) -> str | None:
    """Write one row per element of the list at ``path`` (each as compact JSON); the reason when the
    list is longer than :data:`contract.MAX_ITEMS` (then nothing is written)."""
    items = _get(value, path)
    if not isinstance(items, list):
        return None
    if len(items) > contract.MAX_ITEMS:
        return Reason.TOO_MANY_ITEMS
    for k, item in enumerate(items):
        out.add((source_file, n, k, compact_json(item)))
    return None


def compact_json(value: object) -> str:
    """``value`` as compact JSON text (UTF-8 as is), the same whichever decoder parsed it."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


#: JSON-lines files from this size are read by several processes side by side (see
#: :func:`read_jsonl`); below it, starting them costs more than they save.
PARALLEL_BYTES = 48 * 2**20
#: At most this many reading processes per file.
MAX_READERS = 4


def reader_count(size: int) -> int:
    """How many processes read a JSON-lines file of ``size`` bytes: one per CPU this process may
    use (at most :data:`MAX_READERS`), one below :data:`PARALLEL_BYTES`."""
    if size < PARALLEL_BYTES:
        return 1
    from customer_analytics.warehouse_server import machine_cpus

    return max(1, min(MAX_READERS, machine_cpus(), size // (PARALLEL_BYTES // 2)))


def part_path(staged: Path, k: int) -> Path:
    """The ``k``-th part of a staged Parquet file read in parts (part 0 is ``staged`` itself)."""
    return staged if k == 0 else staged.with_name(f"{staged.stem}.part{k}{staged.suffix}")


def read_jsonl(
    path: Path,
    staged: Path,
    source_file: str,
    items: tuple[str, Path] | None = None,
    root: Path | None = None,
    workers: int | None = None,
) -> FileStats:
    """Stage a JSON-lines file: one row per physical line; ``RECORD`` holds the line.

    A large file is cut at line starts into ``workers`` runs of lines (default
    :func:`reader_count`), each read by its own process into its own part
    (:func:`part_path`; ``FileStats.parts`` lists them in line order); the rows are the same as one
    reader's, split over the parts. This process meanwhile checksums the whole file.

    Args:
        items: ``(key path, parquet file)``: also stage each element of the list at that key path as
            its own row (:data:`ITEM_COLUMNS`), so the warehouse never has to take a long list apart
            (memory per line stays linear in its size). A list longer than
            :data:`contract.MAX_ITEMS` makes the line unreadable as :data:`Reason.TOO_MANY_ITEMS`
            (``READ_FIELD`` = items).
        root: the data folder; a file resolving outside it is refused (:class:`UnsafeInput`).
        workers: reading processes (1: read here, in this process).
    """
    stats, digest = FileStats(path, "jsonl", staged), _Counted()
    with open_input(path, root) as f:
        before = _signature(f)
        runs = _line_runs(f, digest, workers or reader_count(before[0]))
        if len(runs) == 1:
            results = [_read_jsonl_part(f, staged, source_file, items, 1, None, digest)]
        else:
            results = _read_parts(path, root, staged, source_file, items, runs, f, digest)
        stats.changed = _signature(f) != before or any(r["inode"] != _inode(f) for r in results)
    for r in results:
        for reason, n in r["errors"].items():
            stats.read_errors[reason] = stats.read_errors.get(reason, 0) + n
        stats.records = max(stats.records, r["last"])
    stats.parts = [part_path(staged, k) for k in range(len(results))]
    stats.item_parts = [part_path(items[1], k) for k in range(len(results))] if items else []
    stats.bytes, stats.sha256 = digest.size, digest.hexdigest()
    return stats


def _inode(f: BinaryIO) -> tuple[int, int]:
    st = os.fstat(f.fileno())
    return st.st_dev, st.st_ino


def _line_runs(f: BinaryIO, digest, workers: int) -> list[tuple[int, int, int | None]]:
    """``(first line, start offset, end offset)`` of ``workers`` runs of whole lines of ``f`` (one
    run, read in order with ``digest``, when ``workers`` is 1).

    The cut points are the line starts nearest to equal shares of the file; the line number at each
    comes from counting newlines up to it, which also feeds ``digest``.
    """
    if workers <= 1:
        return [(1, 0, None)]
    size = _signature(f)[0]
    cuts: list[int] = []
    for k in range(1, workers):
        f.seek(size * k // workers)
        while (skipped := f.readline(2**20)) and not skipped.endswith(b"\n"):
            pass  # to the next line start, never holding a long line whole
        pos = f.tell()
        if pos < size and (not cuts or pos > cuts[-1]):
            cuts.append(pos)
    if not cuts:
        f.seek(0)
        return [(1, 0, None)]
    f.seek(0)
    firsts, lines, done = [1], 0, 0
    for cut in cuts:
        while done < cut:
            block = f.read(min(2**24, cut - done))
            if not block:
                break
            digest.update(block)
            lines += block.count(b"\n")
            done += len(block)
        firsts.append(lines + 1)
    starts = [0, *cuts]
    ends: list[int | None] = [*cuts, None]
    return list(zip(firsts, starts, ends, strict=True))


def _read_parts(
    path: Path,
    root: Path | None,
    staged: Path,
    source_file: str,
    items: tuple[str, Path] | None,
    runs: list[tuple[int, int, int | None]],
    f: BinaryIO,
    digest,
) -> list[dict]:
    """Read each run of lines in its own process; checksum the rest of the file here meanwhile.

    The processes are fresh interpreters (``python -m customer_analytics.readers``), never forks:
    this process may hold threads (a warehouse connection), and a script calling the ingest needs
    no ``if __name__ == "__main__"`` guard.
    """
    import subprocess
    import sys

    real = check_input(path, root)
    procs: list[subprocess.Popen] = []
    try:
        for k, (first, start, end) in enumerate(runs):
            job = {
                "path": str(real),
                "root": str(root) if root is not None else None,
                "staged": str(part_path(staged, k)),
                "source_file": source_file,
                "items": [items[0], str(part_path(items[1], k))] if items else None,
                "run": [first, start, end],
            }
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "customer_analytics.readers", json.dumps(job)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
        f.seek(digest.size)
        while block := f.read(2**24):
            digest.update(block)
        results = []
        for proc in procs:
            out, err = proc.communicate()
            if proc.returncode != 0:
                tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
                raise RuntimeError(f"a reading process failed ({proc.returncode}): {tail[0]}")
            result = json.loads(out)
            if "unsafe" in result:
                raise UnsafeInput(*result["unsafe"])
            result["inode"] = tuple(result["inode"])
            results.append(result)
        return results
    finally:  # a failure (or an interrupt) here leaves no reading process behind
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _read_run(job: dict) -> dict:
    """One run of lines of a JSON-lines file into its own part (in a reading process)."""
    first, start, end = job["run"]
    items = (job["items"][0], Path(job["items"][1])) if job["items"] else None
    root = Path(job["root"]) if job["root"] is not None else None
    try:
        with open_input(Path(job["path"]), root) as f:
            f.seek(start)
            return _read_jsonl_part(f, Path(job["staged"]), job["source_file"], items, first, end)
    except UnsafeInput as e:
        return {"unsafe": [e.reason, str(e)]}


def _read_jsonl_part(
    f: BinaryIO,
    staged: Path,
    source_file: str,
    items: tuple[str, Path] | None,
    first: int,
    end: int | None,
    digest=None,
) -> dict:
    """Stage the lines of ``f`` from its position up to ``end``: ``{errors, last, inode}``."""
    part = FileStats(staged, "jsonl", staged)
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(_Writer(staged, BASE_COLUMNS))
        item_out = (
            stack.enter_context(_Writer(items[1], ITEM_COLUMNS, text_index=3)) if items else None
        )
        lines = physical_lines(f, digest or _Ignored(), first=first, end=end)
        _read_jsonl_lines(lines, source_file, out, items[0] if items else None, item_out, part)
    return {"errors": part.read_errors, "last": part.records, "inode": _inode(f)}


class _Ignored:
    """A digest that counts nothing (a part's bytes are checksummed by the process that cut it)."""

    size = 0

    def update(self, data: bytes) -> None:
        pass


def _read_jsonl_lines(
    lines: Iterator[tuple[int, bytes, bool]],
    source_file: str,
    out: _Writer,
    items_path: str | None,
    item_out: _Writer | None,
    stats: FileStats,
) -> None:
    for n, raw, too_long in lines:
        reason: str | None = None
        fld = "line"
        if too_long:
            reason, text = Reason.LINE_TOO_LONG, show(raw)
        elif not _drop_boms(raw).strip():
            reason, text = Reason.EMPTY_LINE, ""
        else:
            try:
                text = _drop_boms(raw).decode("utf-8")
            except UnicodeDecodeError:
                reason, text = Reason.INVALID_UTF8, show(raw)
            else:
                value, fld, reason = _parse(text)
                if reason:
                    text = text.replace("\x00", "\\x00")
                elif items_path and item_out is not None and value is not None:
                    reason = _stage_items(value, items_path, source_file, n, item_out)
                    fld = "items"
        out.add((source_file, n, text, reason, fld if reason else None))
        stats.count_error(reason)
        stats.records = n


# --------------------------------------------------------------------------- CSV
def csv_records(
    lines: Iterator[tuple[int, bytes, bool]],
    header: bool = True,
    delimiter: str = ",",
    n_fields: int | None = None,
) -> Iterator[tuple[int, str, str | None]]:
    """Group physical lines into CSV records: ``(first_line_no, text, reason)``.

    A record continues over line breaks while a quote is open (RFC 4180: quotes inside quoted
    fields are doubled, so an odd count means "still open"), for at most
    :data:`MAX_RECORD_LINES` lines, and only if the joined record splits into as many fields as
    the header (the first record, when ``header``). Otherwise the quote that opened it is taken
    as a mistake: only that line is rejected and the following lines are read again as records
    of their own, so one stray quote cannot swallow the rest of the file. Text is decoded with
    ``surrogateescape``: invalid bytes survive as lone surrogates for :func:`read_csv` to report.

    Lines may come with the CR of their CRLF (``physical_lines(..., keep_cr=True)``): a line break
    inside a quoted field is then kept exactly as in the file (CRLF or LF); the CR that ends a
    record is dropped. A byte-order mark starting a record (files joined together) is dropped.
    ``n_fields``: the fields of a record when the file has no header line (``column_names``).
    """
    pending: deque[tuple[int, bytes, bool]] = deque()

    def next_line():
        return pending.popleft() if pending else next(lines, None)

    while (item := next_line()) is not None:
        no, raw, too_long = item
        if too_long:
            yield no, show(raw), Reason.LINE_TOO_LONG
            continue
        text, eol = _split_eol(_drop_boms(raw))
        quotes = text.count('"')
        if quotes % 2 == 0:
            if header and n_fields is None:
                n_fields = len(split_record(text, delimiter) or [])
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
            part, next_eol = _split_eol(nxt[1])
            parts += [eol, part]
            eol = next_eol
            quotes += part.count('"')
            size += len(nxt[1]) + 1
        joined = "".join(parts)
        lines_of = parts[2:-1:2]  # the lines between the first and the last
        fits = n_fields is None or (
            _fits(joined, n_fields, delimiter)
            and not any(_is_record(x, n_fields, delimiter) for x in lines_of)
        )
        if quotes % 2 == 0 and fits:
            if header and n_fields is None:
                n_fields = len(split_record(joined, delimiter) or [])
            yield no, joined, None
        else:
            pending.extendleft(reversed(taken))
            yield no, text, Reason.CSV_UNCLOSED_QUOTE


def _split_eol(raw: bytes) -> tuple[str, str]:
    """A line's text and the line break that ended it (``\\r\\n`` when its CR was kept)."""
    if raw.endswith(b"\r"):
        return raw[:-1].decode("utf-8", "surrogateescape"), "\r\n"
    return raw.decode("utf-8", "surrogateescape"), "\n"


def _is_record(line: str, n_fields: int, delimiter: str = ",") -> bool:
    """Whether one line is, on its own, a complete record of ``n_fields`` fields (then it is not
    inside a field)."""
    return line.count('"') % 2 == 0 and _fits(line, n_fields, delimiter)


def _fits(text: str, n_fields: int, delimiter: str = ",") -> bool:
    """Whether a multi-line record splits into ``n_fields`` fields (extra empty ones tolerated)."""
    fields = split_record(text, delimiter)
    return (
        fields is not None
        and len(fields) >= n_fields
        and not any(f.strip() for f in fields[n_fields:])
    )


def _as_record(text: str) -> str:
    """Record text for storage: lone surrogates (invalid bytes) back to ``\\xNN``, NUL visible."""
    if not text.isascii():
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text.replace("\x00", "\\x00")


def split_record(text: str, delimiter: str = ",") -> list[str] | None:
    """The fields of one complete CSV record (``None`` if the csv module cannot split it); the
    delimiter :data:`SPACES` splits at runs of spaces (columns aligned with spaces)."""
    try:
        if delimiter == SPACES:
            return next(csv.reader([text.strip(" ")], delimiter=" ", skipinitialspace=True), [])
        return next(csv.reader([text], delimiter=delimiter), [])
    except csv.Error:
        return None


def read_head(
    path: Path, n: int = 2, root: Path | None = None, delimiter: str = ","
) -> list[list[str] | None]:
    """The first ``n`` records of a CSV file, split into fields (``None`` for one that cannot be
    read: too long, an unclosed quote, a syntax error); fewer when the file is shorter."""
    out: list[list[str] | None] = []
    with open_input(path, root) as f:
        lines = physical_lines(f, _Counted(), keep_cr=True)
        for _, text, reason in csv_records(lines, header=False, delimiter=delimiter):
            out.append(None if reason else split_record(text, delimiter))
            if len(out) >= n:
                break
    return out


#: Runs of spaces as the field separator: columns aligned with spaces (fixed-width text such as
#: CDNow's transaction log); leading and trailing spaces of a line are not fields.
SPACES = " "
#: Field separators a CSV export may use: the comma (also on ties), then what spreadsheets write
#: where the comma is the decimal mark (``;``), tab-separated text, the pipe, and runs of spaces.
DELIMITERS = (",", ";", "\t", "|", SPACES)


def detect_delimiter(
    path: Path, wanted: Iterable[str], root: Path | None = None, n_fields: int | None = None
) -> str:
    """The field separator of a CSV file (:data:`DELIMITERS`): the one under which its first line
    names the most of the ``wanted`` columns (compared with :func:`normalise`), then splits into the
    most fields; the comma when nothing tells them apart. Runs of spaces only when they name a
    wanted column (a header's names may hold spaces). A file without a header line
    (``n_fields`` names given): the one under which the first line has that many fields, the comma
    first."""
    with open_input(path, root) as f:
        first = next(csv_records(physical_lines(f, _Counted(), keep_cr=True), header=False), None)
    text = first[1] if first and not first[2] else ""
    names = {normalise(w) for w in wanted}

    def score(d: str) -> tuple[int, int, bool]:
        fields = split_record(text, d) or []
        if n_fields is not None:
            return int(len(fields) == n_fields), int(d == ","), len(fields) > 1
        named = sum(normalise(f) in names for f in fields)
        return named, len(fields) if (named or d != SPACES) else 0, d == ","

    return max(DELIMITERS, key=score)


def read_header(path: Path, root: Path | None = None) -> list[str] | None:
    """The header fields of a CSV file (BOM tolerated; ``None`` if the file has no first record)."""
    head = read_head(path, 1, root)
    return head[0] if head else None


def _field_problem(
    fields: list[str], header: list[str], text: str
) -> tuple[str | None, str | None]:
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


def read_csv(
    path: Path,
    staged: Path,
    source_file: str,
    wanted: dict[str, str],
    root: Path | None = None,
    delimiter: str = ",",
    names: Iterable[str] | None = None,
) -> FileStats:
    """Stage a CSV file: one row per record after the header, plus one string column per contract
    field.

    Args:
        path: the CSV file.
        staged: Parquet file to write.
        source_file: name recorded in ``SOURCE_FILE``.
        wanted: contract field -> column name expected in the header (matched by :func:`normalise`).
            Fields whose column is absent get no staged column; ``FileStats.columns`` lists the
            ones found (field -> header name as written in the file); a name given twice: the first.
        root: the data folder; a file resolving outside it is refused (:class:`UnsafeInput`).
        delimiter: the field separator (:func:`detect_delimiter`).
        names: the column names of a file without a header line (``column_names``): its first
            line is a record.
    """
    stats, digest = FileStats(path, "csv", staged), _Counted()
    given = list(names) if names else None
    with open_input(path, root) as f:
        before = _signature(f)
        lines = physical_lines(f, digest, keep_cr=True)
        if given:
            records = csv_records(lines, False, delimiter, n_fields=len(given))
            header = given
        else:
            records = csv_records(lines, delimiter=delimiter)
            head = next(records, None)
            header = (split_record(head[1], delimiter) if head and not head[2] else None) or []
        index = {normalise(h): i for i, h in reversed(list(enumerate(header)))}
        found = {
            fld: index[normalise(col)] for fld, col in wanted.items() if normalise(col) in index
        }
        stats.columns = {fld: header[i] for fld, i in found.items()}
        columns = BASE_COLUMNS + tuple(fld.upper() for fld in found)
        with _Writer(staged, columns) as out:
            for no, text, reason in records:
                fields = split_record(text, delimiter) if reason is None else None
                column = "line" if reason else None
                if reason is None and fields is None:
                    reason, column = Reason.CSV_SYNTAX, "line"
                elif reason is None and fields is not None:
                    reason, column = _field_problem(fields, header, text)
                values = (
                    [fields[i] for i in found.values()]
                    if fields is not None and not reason
                    else [None] * len(found)
                )
                out.add((source_file, no, _as_record(text), reason, column, *values))
                stats.count_error(reason)
                stats.records += 1
        stats.changed = _signature(f) != before
    stats.bytes, stats.sha256 = digest.size, digest.hexdigest()
    return stats


# --------------------------------------------------------------------------- call transcripts
@dataclass
class CallScan:
    """What a calls folder holds: the transcripts (``*.txt``) and recordings
    (:data:`contract.AUDIO_SUFFIXES`), any case, in name order, and how many other entries are not
    read, per reason (:data:`contract.CALL_SKIPS`; never their names)."""

    files: list[Path]
    skipped: dict[str, int]


def _skip_reason(entry: os.DirEntry) -> str | None:
    """Why an entry of the calls folder is not a transcript to read (``None``: it is one)."""
    name = entry.name
    if name.startswith("."):
        return contract.SKIP_HIDDEN
    try:
        if entry.is_dir():
            return contract.SKIP_FOLDER
    except OSError:
        pass
    low = name.lower()
    if low.endswith((".txt", *contract.AUDIO_SUFFIXES)):
        return None
    for reason, suffixes in contract.SKIP_SUFFIXES.items():
        if low.endswith(suffixes):
            return reason
    return contract.SKIP_OTHER


def scan_calls(folder: Path) -> CallScan:
    """The entries of a calls folder: transcripts to stage, and the others counted by reason.

    Sub-folders are not entered (their content is not read, not even listed); links are not
    followed here (a transcript that is a link is checked when it is read).
    """
    if not folder.is_dir():
        return CallScan([], {})
    files: list = []
    skipped: Counter[str] = Counter()
    with os.scandir(folder) as entries:
        for entry in entries:
            reason = _skip_reason(entry)
            if reason:
                skipped[reason] += 1
            else:
                files.append(Path(entry.path))
    return CallScan(sorted(files, key=lambda p: p.name), dict(skipped))


def call_files(folder: Path) -> list[Path]:
    """The transcripts and recordings of a calls folder (any case, not hidden), sorted by name."""
    return scan_calls(folder).files


def shown_name(name: str) -> str:
    """A file name as text that can be stored: bytes that are not UTF-8 as ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def parse_call(text: str, file_name: str) -> tuple[str | None, str | None, str]:
    """``(customer_id, ts, body)`` of one transcript: header lines first, else the file name."""
    lines = text.splitlines()
    values: dict[str, str] = {}
    i = 0
    while i < len(lines) and (m := _HEADER_LINE.match(lines[i])):
        key = next(
            (k for k, names in CALL_HEADER_KEYS.items() if m["key"].strip().lower() in names), None
        )
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


def read_calls(
    folder: Path, staged: Path, prefix: str, root: Path | None = None, transcriber=None
) -> FileStats:
    """Stage a folder of calls: one row per transcript (``*.txt``) or recording, with the
    :data:`CALL_COLUMNS`, in name order.

    A file that resolves outside ``root`` (a link to another place) or is not a regular file is not
    read: its row is rejected (:data:`Reason.OUTSIDE_DATA_DIR`, :data:`Reason.NOT_A_FILE`). Other
    entries of the folder are counted in ``FileStats.skipped`` by reason, never named.

    Args:
        transcriber: an :class:`audio.Transcriber`; without one, recordings are counted as not
            read (:data:`contract.SKIP_MEDIA`).
    """
    from customer_analytics import audio

    stats, digest = FileStats(folder, "txt", staged), hashlib.sha256()
    scan = scan_calls(folder)
    stats.skipped = dict(scan.skipped)
    recordings = [p for p in scan.files if audio.is_audio(p)]
    if transcriber is None and recordings:
        stats.skipped[contract.SKIP_MEDIA] = stats.skipped.get(contract.SKIP_MEDIA, 0) + len(
            recordings
        )
    progress = audio.Progress(len(recordings), transcriber)
    with _Writer(staged, BASE_COLUMNS + CALL_COLUMNS) as out:
        for path in scan.files:
            name = f"{prefix}/{shown_name(path.name)}"
            if audio.is_audio(path):
                if transcriber is None:
                    continue
                stats.names.append(name)
                row, size = audio.staged_row(path, name, transcriber, digest, root)
                progress.step()
                out.add(row)
                stats.count_error(row[3])
                stats.records += 1
                stats.bytes += size
                continue
            stats.names.append(name)
            digest.update(name.encode() + b"\0")
            try:
                f = open_input(path, root)
            except UnsafeInput as e:
                row = (name, 1, "", e.reason, "file", None, None, None)
            else:
                with f:
                    before = _signature(f)
                    raw = f.read(MAX_LINE_BYTES + 1)
                    stats.changed |= _signature(f) != before
                stats.bytes += len(raw)
                if len(raw) > MAX_LINE_BYTES:
                    row = (
                        name,
                        1,
                        show(raw[:_SHOWN_PREFIX]),
                        Reason.LINE_TOO_LONG,
                        "text",
                        None,
                        None,
                        None,
                    )
                else:
                    digest.update(raw)
                    row = _call_row(raw, name, stats.encodings)
            out.add(row + (None, None, None))
            stats.count_error(row[3])
            stats.records += 1
    progress.done()
    stats.sha256 = digest.hexdigest()
    return stats


def _call_row(raw: bytes, name: str, encodings: dict[str, int] | None = None) -> tuple:
    """The staged row of one transcript. One in UTF-16/32 (its byte-order mark or zero bytes) or
    in an 8-bit encoding (several bytes that are not UTF-8 and no character that is: read as
    :data:`LEGACY_ENCODING`) is decoded as such, as files are (:func:`transcode`), and counted in
    ``encodings``; one with a few bytes that are not UTF-8 is rejected."""
    what = sniff(raw[:SNIFF_BYTES], True, "x")
    if what is not None and what.kind == "binary":
        return name, 1, show(raw[:_SHOWN_PREFIX]), Reason.NOT_TEXT, "text", None, None, None
    codec = None
    if what is not None and what.kind == "utf16":
        codec = what.codec or "utf-16"
    elif Utf8Scan.of(raw).legacy:
        codec = LEGACY_ENCODING
    if codec is not None:
        errors = "customer_analytics.cp1252" if codec == LEGACY_ENCODING else "replace"
        text = raw.decode(codec, errors).lstrip("\ufeff")
        if encodings is not None:
            encodings[codec] = encodings.get(codec, 0) + 1
    else:
        try:
            text = _drop_boms(raw).decode("utf-8")
        except UnicodeDecodeError:
            return name, 1, show(raw), Reason.INVALID_UTF8, "text", None, None, None
    if "\x00" in text:
        return name, 1, show(raw), Reason.NUL_BYTE, "text", None, None, None
    cid, ts, body = parse_call(text, name)
    return name, 1, text, None, None, cid, ts, body or None


if __name__ == "__main__":  # a reading process of a JSON-lines file read in parts
    import sys

    print(json.dumps(_read_run(json.loads(sys.argv[1]))))
