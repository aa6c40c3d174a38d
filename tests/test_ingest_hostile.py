"""Hostile input without a warehouse (issue 15: 2, 5, 12, 13, 15, 17, 18, 19 and their neighbours).

Whatever a file does, the readers and the plan either stage rows with documented reasons or stop
with one clear message that names no personal data and no place outside the project — never a
traceback, a hang or unbounded memory. The cases run on real files in a temporary data folder.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import make_params
from customer_analytics import contract, ingest, readers, reports
from customer_analytics.contract import MAX_JSON_DEPTH, Reason

NAME, EMAIL = "Rosa Fischer", "rosa.fischer1@example.com"
CUSTOMERS = (
    f"C000001,{NAME},{EMAIL},2026-01-02,DE,email,1980\r\n"
    "C000002,Jan Kowalski,jan.k@example.org,2026-01-03,PL,ads,1975\r\n"
)
HEADER = "customer_id,name,email,signup_date,country,acquisition_channel,birth_year\r\n"
ORDER = {
    "order_id": "O1",
    "customer_id": "C000001",
    "ts": "2026-01-05T10:00:00",
    "items": [{"product": "choc", "quantity": 2, "unit_price": 1.5}],
}


@pytest.fixture
def data(tmp_path) -> Path:
    """A data folder with a valid orders file (tests add the file they break)."""
    d = tmp_path / "shop data"
    d.mkdir()
    (d / "orders.jsonl").write_text(json.dumps(ORDER) + "\n")
    return d


def stop(data: Path, tmp_path: Path, **over) -> str:
    """The plan's stop message for the data folder (it must stop)."""
    with pytest.raises(ingest.IngestError) as err:
        ingest.plan_sources(make_params(data, tmp_path / "wh", **over))
    msg = str(err.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def plan(data: Path, tmp_path: Path, **over) -> dict:
    return {
        p.source.name: p for p in ingest.plan_sources(make_params(data, tmp_path / "wh", **over))
    }


def rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def jsonl(tmp_path: Path, lines: list[bytes]) -> list[dict]:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    readers.read_jsonl(src, tmp_path / "out.parquet", "in.jsonl")
    return rows(tmp_path / "out.parquet")


# ------------------------------------------------------------------------ 2: a header that is data
def test_a_customers_file_without_its_header_line_stops_without_quoting_the_first_customer(
    data, tmp_path
):
    """Issue 15.2: the stop message listed the first record (a name and an e-mail)."""
    (data / "customers.csv").write_text(CUSTOMERS)
    msg = stop(data, tmp_path)
    assert "customers.csv: required column 'customer_id' not found" in msg
    assert "looks like a record, not column names" in msg and "probably has no header line" in msg
    assert "add the header line naming the columns (customer_id, signup_date" in msg
    for personal in (NAME, EMAIL, "Rosa", "fischer", "C000001"):
        assert personal.lower() not in msg.lower(), personal


def test_a_first_line_of_plain_words_is_counted_not_quoted(data, tmp_path):
    """A record with no date, number or e-mail ("Anna,Schmidt,Berlin") is not quoted either."""
    (data / "customers.csv").write_text("Anna,Schmidt,Berlin\r\nBen,Meier,Hamburg\r\n")
    msg = stop(data, tmp_path)
    assert "3 field(s), not listed" in msg and "Anna" not in msg and "Schmidt" not in msg


def test_a_real_header_is_still_listed_but_bounded(data, tmp_path):
    """An export with its own column names keeps the helpful list; 100,000 columns stay a short
    message."""
    (data / "customers.csv").write_text("Kundennummer,Anmeldung\r\nK1,2026-01-01\r\n")
    assert "Columns in the file: 'Kundennummer', 'Anmeldung'." in stop(data, tmp_path)
    wide = ",".join(f"col{i}" for i in range(100_000))
    (data / "customers.csv").write_text(f"customer_id,{wide}\r\nC1," + "1," * 99_999 + "1\r\n")
    msg = stop(data, tmp_path)
    assert "and 99,971 more" in msg and len(msg) < 2000


def test_a_customers_file_linked_to_a_system_file_is_refused_unread(data, tmp_path):
    """Issue 15.2/15.10: a link to /etc/passwd put its first line into the index."""
    (data / "customers.csv").symlink_to("/etc/passwd")
    msg = stop(data, tmp_path)
    assert "customers.csv: refused: it resolves to a place outside data_dir" in msg
    first_line = Path("/etc/passwd").read_text().splitlines()[0]  # "root:x:0:0:..."
    assert first_line not in msg and first_line.split(":")[0] + ":" not in msg
    assert "/etc" not in msg and "passwd" not in msg  # (the test's own path may hold "root")


# ------------------------------------------------------------------------ 13: a column named twice
@pytest.mark.parametrize(
    "file,text,column",
    [
        ("customers.csv", HEADER.replace("country", "signup_date") + CUSTOMERS, "signup_date"),
        (
            "orders.csv",
            "order_id,customer_id,ts,product,quantity,unit_price, Quantity\r\n"
            "O1,C1,2026-01-01,a,1,2,3\r\n",
            "quantity",
        ),
    ],
)
def test_a_column_named_twice_is_a_stop_naming_it(file, text, column, data, tmp_path):
    """Issue 15.13: accepted silently, first column used."""
    (data / file).write_text(text)
    msg = stop(data, tmp_path, orders_file="orders.csv" if file == "orders.csv" else "orders.jsonl")
    assert f"the header names the column '{column}' 2 times" in msg and "ambiguous" in msg


def test_unused_columns_named_twice_are_fine(data, tmp_path):
    (data / "customers.csv").write_text(
        "customer_id,signup_date,notes,notes,,\r\nC1,2026-01-01,a,b,,\r\n"
    )
    assert plan(data, tmp_path)["customers"].present


# --------------------------------------------------------------------------- 18: what a file is
@pytest.mark.parametrize(
    "file,content,expected",
    [
        (
            "customers.csv",
            (HEADER + CUSTOMERS).replace("\r\n", "\r").encode(),
            "ends its lines with a carriage return",
        ),
        ("orders.jsonl", (json.dumps(ORDER) + "\r") * 3, "ends its lines with a carriage return"),
        (
            "customers.csv",
            b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8,
            "is a PNG image, not a text file",
        ),
        ("orders.jsonl", b"PK\x03\x04" + bytes(range(256)) * 8, "is a ZIP archive"),
        ("orders.jsonl", b"\x1f\x8b\x08\x00" + bytes(200), "is gzip-compressed"),
        ("customers.csv", b"\xef\xbb\xbf", "holds nothing but blank lines or a byte-order mark"),
        ("orders.jsonl", b"\n\r\n  \n", "holds nothing but blank lines"),
    ],
)
def test_a_file_that_is_not_utf8_text_is_named_as_what_it_is(
    file, content, expected, data, tmp_path
):
    """Issue 15.18: UTF-16 or CR-only customers.csv said "no readable header line"; a CR-only
    orders.jsonl said "none of the first 1 lines is a JSON object"."""
    (data / file).write_bytes(content if isinstance(content, bytes) else content.encode())
    msg = stop(data, tmp_path)
    assert f"{file}: the file {expected}" in msg and "Fix: " in msg, msg
    assert "no readable header line" not in msg and "none of the first" not in msg


def test_utf8_bom_variants_and_mixed_line_endings_are_read(data, tmp_path):
    """Neighbours: a doubled BOM, a BOM starting a later line (files joined), LF and CRLF mixed."""
    (data / "customers.csv").write_bytes(
        b"\xef\xbb\xbf\xef\xbb\xbf"
        + (HEADER + CUSTOMERS).encode()
        + b"C000003,Eve,e@x.org,2026-01-04,DE,a,1990\n"
    )
    (data / "orders.jsonl").write_bytes(
        b"\xef\xbb\xbf"
        + json.dumps(ORDER).encode()
        + b"\r\n\xef\xbb\xbf"
        + json.dumps({**ORDER, "order_id": "O2"}).encode()
        + b"\n"
    )
    plans = plan(data, tmp_path)
    staged = readers.read_csv(
        data / "customers.csv", tmp_path / "c.parquet", "customers.csv", plans["customers"].wanted
    )
    got = rows(tmp_path / "c.parquet")
    assert staged.read_errors == {} and [r["CUSTOMER_ID"] for r in got] == [
        "C000001",
        "C000002",
        "C000003",
    ]
    assert [
        r["READ_REASON"]
        for r in jsonl(tmp_path, (data / "orders.jsonl").read_bytes().split(b"\n")[:2])
    ] == [None, None]


def test_header_only_and_binary_csv_stop_cleanly(data, tmp_path):
    (data / "customers.csv").write_text(HEADER)
    assert "the file has a header but no data rows" in stop(data, tmp_path)
    (data / "customers.csv").write_bytes(HEADER.encode() + bytes(range(256)) * 64)
    assert "is binary data, not text" in stop(data, tmp_path)


# --------------------------------------------------------------------- 10: no escape from data_dir
def test_a_pipe_or_a_device_is_never_opened_and_nothing_hangs(data, tmp_path):
    os.mkfifo(data / "customers.csv")
    result = {}
    worker = threading.Thread(
        target=lambda: result.setdefault("msg", stop(data, tmp_path)), daemon=True
    )
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the plan blocked on a named pipe"
    assert (
        "customers.csv: refused: it is not a regular file but a pipe, device or socket"
        in result["msg"]
    )
    (data / "customers.csv").unlink()
    (data / "customers.csv").symlink_to("/dev/zero")  # endless, and outside: refused, never read
    assert "refused: it resolves to a place outside data_dir" in stop(data, tmp_path)


def test_a_data_dir_that_is_a_link_is_fine_and_a_relative_escape_is_not(data, tmp_path):
    (data / "customers.csv").write_text(HEADER + CUSTOMERS)
    link = tmp_path / "current"
    link.symlink_to(data)
    assert plan(link, tmp_path)["customers"].present
    (tmp_path / "other.csv").write_text(HEADER + CUSTOMERS)
    assert "refused" in stop(data, tmp_path, customers_file="../other.csv")


def test_a_very_deep_data_dir_is_read(tmp_path):
    deep = tmp_path.joinpath(*[f"level {i}" for i in range(60)])
    deep.mkdir(parents=True)
    (deep / "orders.jsonl").write_text(json.dumps(ORDER) + "\n")
    assert plan(deep, tmp_path)["orders"].present


def test_a_file_changing_while_it_is_read_is_noticed(tmp_path):
    """Neighbour: an export still being written. The reader notices (the run then stops)."""
    src = tmp_path / "orders.jsonl"
    src.write_text((json.dumps(ORDER) + "\n") * 300_000)
    staged = tmp_path / "o.parquet"

    def append():
        while not staged.exists():
            time.sleep(0.001)
        with src.open("a") as f:
            f.write(json.dumps(ORDER) + "\n")

    writer = threading.Thread(target=append, daemon=True)
    writer.start()
    stats = readers.read_jsonl(src, staged, "orders.jsonl")
    writer.join(30)
    assert stats.changed
    assert not readers.read_jsonl(src, staged, "orders.jsonl").changed


# --------------------------------------------------------------------------- 5 and 15: JSON lines
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 500, 5_000, 200_000])
def test_deeply_nested_json_is_rejected_with_its_reason_and_never_crashes(depth, tmp_path):
    """Issue 15.5: 500 levels with a \\u escape crashed the whole ingest with RecursionError."""
    line = ('{"a":' * depth + '"\\u00e9"' + "}" * depth).encode()
    got = jsonl(tmp_path, [line, line.replace(b"\\u00e9", b"x"), json.dumps(ORDER).encode()])
    assert [r["READ_REASON"] for r in got] == [Reason.TOO_DEEP, Reason.TOO_DEEP, None]


def test_nesting_within_the_limit_is_accepted(tmp_path):
    depth = MAX_JSON_DEPTH - 1
    got = jsonl(tmp_path, [('{"a":' * depth + '"\\u00e9"' + "}" * depth).encode()])
    assert got[0]["READ_REASON"] is None


def test_a_nul_in_json_is_rejected_like_a_nul_in_csv(tmp_path):
    """Issue 15.15: \\u0000 inside JSON strings was accepted, while a NUL in CSV is rejected."""
    got = jsonl(
        tmp_path,
        [
            b'{"coupon": "A\\u0000B", "x": 1}',
            b'{"items": [{"product": "a\\u0000"}]}',
            b'{"k\\u0000": 1}',
            b'{"coupon": "A\x00B"}',
            b'{"coupon": "A\\\\u0000B"}',
        ],
    )
    assert [(r["READ_REASON"], r["READ_FIELD"]) for r in got] == [
        (Reason.NUL_BYTE, "coupon"),
        (Reason.NUL_BYTE, "items"),
        (Reason.NUL_BYTE, "k\x00"),
        (Reason.NUL_BYTE, "line"),
        (None, None),
    ]  # the last one is a backslash and "u0000": text
    src = tmp_path / "in.csv"
    src.write_bytes(b"customer_id,coupon\nC1,A\x00B\n")
    readers.read_csv(src, tmp_path / "c.parquet", "in.csv", {"customer_id": "customer_id"})
    assert rows(tmp_path / "c.parquet")[0]["READ_REASON"] == Reason.NUL_BYTE


@pytest.mark.parametrize(
    "line,reason",
    [
        (b'{"a": 1e400}', Reason.NUMBER_RANGE),
        (b'{"a": -1e999}', Reason.NUMBER_RANGE),
        (b'{"a": ' + b"9" * 39 + b"}", Reason.NUMBER_RANGE),
        (b'{"a": ' + b"9" * 5000 + b"}", Reason.NUMBER_RANGE),
        (b'{"a": ' + b"9" * 38 + b"}", None),
        (b'{"a": 1e-400}', None),
        (b'{"a": NaN}', Reason.MALFORMED_JSON),
        (b'{"a": Infinity}', Reason.MALFORMED_JSON),
        (b'{"a": "\\ud800"}', Reason.MALFORMED_JSON),
        (b'{"a": "\\udc00x", "b": 1}', Reason.MALFORMED_JSON),
        (b'{"a": "\\ud83c\\udf6a"}', None),  # a surrogate pair: one emoji
        (b'{"a": {"b": {"c": 1, "c": 2}}}', Reason.MALFORMED_JSON),  # a key twice, at depth
        (b'{"a": "\x01"}', Reason.MALFORMED_JSON),  # a raw control character in a string
        (
            b'{"a": "\\u0001\\u200b\\u202e"}',
            None,
        ),  # escaped: text (ids are checked in the warehouse)
        (b'\xef\xbb\xbf\xef\xbb\xbf{"a": 1}', None),
    ],
)
def test_json_neighbours_get_documented_reasons(line, reason, tmp_path):
    got = jsonl(tmp_path, [b'{"first": 1}', line])
    assert got[1]["READ_REASON"] == reason


# --------------------------------------------------------------------------- 17: CRLF inside quotes
def test_crlf_inside_quoted_csv_fields_is_kept_exactly(tmp_path):
    """Issue 15.17: the CR of a CRLF inside quoted fields was dropped."""
    src = tmp_path / "in.csv"
    src.write_bytes(
        b'customer_id,name,signup_date\r\nC1,"two\r\nlines\nand LF",2026-01-01\r\nC2,x,2026-01-02\n'
    )
    wanted = {"customer_id": "customer_id", "name": "name"}
    readers.read_csv(src, tmp_path / "c.parquet", "in.csv", wanted)
    got = rows(tmp_path / "c.parquet")
    assert got[0]["NAME"] == "two\r\nlines\nand LF" and got[0]["RECORD"].endswith(
        'lines\nand LF",2026-01-01'
    )
    assert got[1]["CUSTOMER_ID"] == "C2" and got[1]["RECORD"] == "C2,x,2026-01-02"


# --------------------------------------------------------------------------- 19: what calls/ holds
def test_every_entry_of_the_calls_folder_that_is_not_read_is_counted_with_its_reason(tmp_path):
    """Issue 15.19: .pdf, .txt.gz, .text, hidden and sub-folder files were ignored without a
    trace."""
    calls = tmp_path / "calls"
    (calls / "sub").mkdir(parents=True)
    (calls / "C1_2026-01-02.txt").write_text("hello")
    (calls / "C2_2026-01-02.TXT").write_text("hello")
    for name in (
        "a.pdf",
        "b.txt.gz",
        "c.text",
        ".hidden.txt",
        "sub/C3_2026-01-01.txt",
        "d.zip",
        "e.wav",
        "e.m4a",
        "f.xyz",
    ):
        (calls / name).write_text("x")
    stats = readers.read_calls(calls, tmp_path / "c.parquet", "calls")
    assert stats.records == 2
    assert stats.skipped == {
        "a document: save the transcript as plain text (.txt, UTF-8)": 1,
        "compressed: unpack it into the calls folder": 2,
        contract.SKIP_TEXT: 1,
        "hidden (the name starts with '.')": 1,
        "a sub-folder (transcripts are read from the calls folder itself, not from below it)": 1,
        # a format never read, and a recording, which is read only with a transcriber (the ingest
        # always has one: tests/test_audio.py)
        contract.SKIP_MEDIA: 2,
        "not a .txt file": 1,
    }


def test_transcript_names_that_are_not_utf8_are_staged(tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()
    (calls / os.fsdecode(b"C1_2026-01-02_\xff.txt")).write_text("hello")
    readers.read_calls(calls, tmp_path / "c.parquet", "calls")
    assert rows(tmp_path / "c.parquet")[0]["SOURCE_FILE"] == "calls/C1_2026-01-02_\\xff.txt"


# --------------------------------------------------------------------------- 12: the one redaction
DATA_DIR = "/srv/shops/Acme Corp Shop/exports 2026"


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            f"FileNotFoundError: {DATA_DIR}/orders.jsonl: not found",
            "FileNotFoundError: orders.jsonl: not found",
        ),
        (
            f"IngestError: {DATA_DIR}/calls: 3 of 9 calls rejected",
            "IngestError: calls: 3 of 9 calls rejected",
        ),
        ("see C:\\Users\\Acme Corp\\data 2026\\orders.csv now", "see orders.csv now"),
        ("in '/srv/Acme Corp/x y/o.csv' and \"/home/ana maria/z.csv\"", "in 'o.csv' and \"z.csv\""),
        ("~/Acme Corp/exports/o.csv failed", "o.csv failed"),
        ("../shops/Acme Corp Shop/o.csv failed", "o.csv failed"),
        (f"contact {EMAIL} or Jan <jan.k@example.org>", "contact <e-mail> or Jan <<e-mail>>"),
        ("ratio 3/4, a/b and 5 / 10 rows stay", "ratio 3/4, a/b and 5 / 10 rows stay"),
        ("terminal \x1b[31mred\x1b[0m and \u202eevil", "terminal ?[31mred?[0m and ?evil"),
    ],
)
def test_redaction_removes_places_and_personal_data_from_hostile_strings(text, expected):
    """Issue 15.12: path redaction stopped at a space ("Acme Corp Shop/exports 2026/…")."""
    assert reports.redact(text) == expected


def test_redaction_of_data_paths_is_relative_and_knows_the_resolved_folder(tmp_path):
    real = tmp_path / "Acme Corp Shop" / "exports 2026"
    real.mkdir(parents=True)
    link = tmp_path / "current shop"
    link.symlink_to(real)
    text = f"{link}/orders.jsonl and {real}/calls/x.txt; data_dir {link} is empty; {real}"
    out = reports.redact(text, None, inside=(link,))
    assert out == "orders.jsonl and calls/x.txt; data_dir data_dir is empty; data_dir"
    assert "Acme" not in reports.redact("x" * 500 + f" {real}/o.csv")
    assert len(reports.redact("/a b" * 200_000, None)) < 200_001  # linear, bounded


def test_a_pipe_among_the_transcripts_is_rejected_unopened_and_a_link_out_unread(tmp_path):
    """Issue 15.10 at the reader: a transcript that is a pipe or leads out of data_dir is a
    rejected row (never opened or read); a link that stays inside is read."""
    data = tmp_path / "data"
    calls = data / "calls"
    calls.mkdir(parents=True)
    os.mkfifo(calls / "C1_2026-01-01.txt")
    (tmp_path / "secret.txt").write_text("SECRET")
    (calls / "C2_2026-01-02.txt").symlink_to(tmp_path / "secret.txt")
    (data / "inside.txt").write_text("inside")
    (calls / "C3_2026-01-03.txt").symlink_to(data / "inside.txt")
    done = {}
    worker = threading.Thread(
        target=lambda: done.setdefault(
            "stats", readers.read_calls(calls, tmp_path / "c.parquet", "calls", root=data)
        ),
        daemon=True,
    )
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the reader blocked on a named pipe"
    got = [(r["SOURCE_FILE"], r["READ_REASON"], r["RECORD"]) for r in rows(tmp_path / "c.parquet")]
    assert got == [
        ("calls/C1_2026-01-01.txt", Reason.NOT_A_FILE, ""),
        ("calls/C2_2026-01-02.txt", Reason.OUTSIDE_DATA_DIR, ""),
        ("calls/C3_2026-01-03.txt", None, "inside"),
    ]
