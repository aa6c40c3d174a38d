"""The streaming readers: every physical record becomes exactly one staged row, bad ones flagged,
never raising."""

import contextlib
import csv
import hashlib
import io
import json
import random
import tracemalloc

import pyarrow.parquet as pq
import pytest

from customer_analytics import readers
from customer_analytics.contract import MAX_LINE_BYTES, MAX_RECORD_LINES, Reason

CUSTOMER_COLUMNS = {
    "customer_id": "customer_id",
    "signup_date": "signup_date",
    "birth_year": "birth_year",
}


def staged(path):
    return pq.read_table(path).to_pylist()


def read_csv(tmp_path, data: bytes, wanted=None):
    src = tmp_path / "in.csv"
    src.write_bytes(data)
    stats = readers.read_csv(src, tmp_path / "out.parquet", "in.csv", wanted or CUSTOMER_COLUMNS)
    return stats, staged(tmp_path / "out.parquet")


def read_jsonl(tmp_path, data: bytes):
    src = tmp_path / "in.jsonl"
    src.write_bytes(data)
    stats = readers.read_jsonl(src, tmp_path / "out.parquet", "in.jsonl")
    return stats, staged(tmp_path / "out.parquet")


def test_physical_lines_strip_crlf_and_bom_and_skip_over_long_lines_without_holding_them():
    long_line = b"x" * (MAX_LINE_BYTES + 5)
    data = b"\xef\xbb\xbfa\r\nb\n" + long_line + b"\nc"
    out = list(readers.physical_lines(io.BytesIO(data), hashlib.sha256()))
    assert [(n, too_long) for n, _, too_long in out] == [
        (1, False),
        (2, False),
        (3, True),
        (4, False),
    ]
    assert [out[0][1], out[1][1], out[3][1]] == [b"a", b"b", b"c"]
    assert len(out[2][1]) <= 4096  # only a prefix is kept


def test_csv_with_bom_crlf_quoted_newlines_and_trailing_commas(tmp_path):
    data = (
        "\ufeffcustomer_id,name,signup_date,birth_year\r\n"
        'C1,"Anna\r\nMaria",2026-01-02,1980\r\n'
        "C2,Jürgen,2026-01-03,1975,\r\n"  # trailing comma: an empty extra field, tolerated
        'C3,"Smith, ""Jr""",2026-01-04,\r\n'
    ).encode()
    stats, rows = read_csv(tmp_path, data)
    assert stats.records == 3 and stats.read_errors == {}
    assert [r["LINE_NO"] for r in rows] == [2, 4, 5]  # a record is numbered by its first line
    assert [r["CUSTOMER_ID"] for r in rows] == ["C1", "C2", "C3"]
    # the line break inside the quoted field is kept exactly as in the file (CRLF; issue 15.17)
    assert rows[2]["BIRTH_YEAR"] == "" and rows[0]["RECORD"] == 'C1,"Anna\r\nMaria",2026-01-02,1980'
    assert stats.columns == CUSTOMER_COLUMNS


@pytest.mark.parametrize(
    "header,expected",
    [
        ("customer_id,signup_date,birth_year", ","),
        ("customer_id;signup_date;birth_year", ";"),  # spreadsheets where ',' is the decimal mark
        ("customer_id\tsignup_date\tbirth_year", "\t"),
        ("customer_id|signup_date|birth_year", "|"),
        ('customer_id;"Betrag, brutto";signup_date', ";"),  # a comma inside a column name
        ("customer_id,note;x,signup_date", ","),  # more wanted names split by ','
        ("something else entirely", ","),  # nothing tells them apart: the comma
    ],
)
def test_the_field_separator_is_the_one_that_finds_the_columns(tmp_path, header, expected):
    src = tmp_path / "in.csv"
    src.write_text(header + "\n" + header.replace("customer_id", "C1") + "\n")
    assert readers.detect_delimiter(src, CUSTOMER_COLUMNS.values()) == expected


def test_a_semicolon_file_stages_the_fields_of_its_comma_twin(tmp_path):
    rows = [
        ["customer_id", "signup_date", "birth_year", "note"],
        ["C1", "2026-01-02", "1980", 'says "hi; there"'],
        ["C2", "2026-01-03", "", "two\nlines, and a comma"],
    ]

    def staged_as(delimiter: str):
        src = tmp_path / f"in{ord(delimiter)}.csv"
        with src.open("w", newline="") as f:
            csv.writer(f, delimiter=delimiter).writerows(rows)
        out = tmp_path / f"out{ord(delimiter)}.parquet"
        d = readers.detect_delimiter(src, CUSTOMER_COLUMNS.values())
        stats = readers.read_csv(src, out, "in.csv", CUSTOMER_COLUMNS, delimiter=d)
        return d, stats, [{k: v for k, v in r.items() if k != "RECORD"} for r in staged(out)]

    comma, semi, tab = staged_as(","), staged_as(";"), staged_as("\t")
    assert (comma[0], semi[0], tab[0]) == (",", ";", "\t")
    assert comma[1].read_errors == semi[1].read_errors == tab[1].read_errors == {}
    assert comma[2] == semi[2] == tab[2] and [r["CUSTOMER_ID"] for r in semi[2]] == ["C1", "C2"]


def test_csv_header_is_matched_case_insensitively_and_mapped(tmp_path):
    data = b"Kunde , Datum,KUNDE\nC1,2026-01-02,ignored\n"
    stats, rows = read_csv(
        tmp_path, data, {"customer_id": "kunde", "signup_date": "datum", "birth_year": "Jahr"}
    )
    assert stats.columns == {
        "customer_id": "Kunde ",
        "signup_date": " Datum",
    }  # first 'kunde' wins; Jahr absent
    assert rows[0]["CUSTOMER_ID"] == "C1" and "BIRTH_YEAR" not in rows[0]


def test_csv_reading_problems_are_flagged_with_the_field(tmp_path):
    data = (
        b"customer_id,name,signup_date\n"
        b"C1,Ren\xe9,2026-01-02\n"  # latin-1 byte
        b"C2,a\x00b,2026-01-02\n"
        b"C3,too few\n"
        b"C4,x,2026-01-02,extra\n"
        b"\n"
        b",,\n"
        b"C5,a\rb,2026-01-02\n"  # lone carriage return outside quotes
        b"C6,ok,2026-01-02\n"
    )
    stats, rows = read_csv(tmp_path, data)
    got = [(r["LINE_NO"], r["READ_FIELD"], r["READ_REASON"]) for r in rows]
    assert got == [
        (2, "name", Reason.INVALID_UTF8),
        (3, "name", Reason.NUL_BYTE),
        (4, "line", Reason.CSV_FIELD_COUNT),
        (5, "line", Reason.CSV_FIELD_COUNT),
        (6, "line", Reason.EMPTY_LINE),
        (7, "line", Reason.EMPTY_LINE),
        (8, "line", Reason.CSV_SYNTAX),
        (9, None, None),
    ]
    assert (
        rows[0]["RECORD"] == "C1,Ren\\xe9,2026-01-02"
        and rows[1]["RECORD"] == "C2,a\\x00b,2026-01-02"
    )
    assert rows[0]["CUSTOMER_ID"] is None  # values of unreadable records are not staged
    assert stats.records == 8 and sum(stats.read_errors.values()) == 7


def test_an_unclosed_quote_rejects_only_its_line(tmp_path):
    lines = ["customer_id,name,signup_date", 'C1,"Anna,2026-01-02'] + [
        f"C{i},n,2026-01-02" for i in range(2, 6)
    ]
    lines += ['C6,"multi', 'line",2026-01-02', "C7,n,2026-01-02"]
    stats, rows = read_csv(tmp_path, "\n".join(lines).encode())
    got = [(r["LINE_NO"], r["CUSTOMER_ID"], r["READ_REASON"]) for r in rows]
    # the stray quote of line 2 would close at line 7 (the legitimate multi-line field), swallowing
    # lines 3-6: the joined record has the wrong number of fields, so only line 2 is rejected and
    # reading resumes
    assert got == [
        (2, None, Reason.CSV_UNCLOSED_QUOTE),
        (3, "C2", None),
        (4, "C3", None),
        (5, "C4", None),
        (6, "C5", None),
        (7, "C6", None),
        (9, "C7", None),
    ]
    assert stats.records == 7


def test_a_stray_quote_cannot_swallow_complete_records_even_when_the_field_count_fits(tmp_path):
    lines = [
        "customer_id,name,signup_date",
        'C1,"Anna,2026-01-02',
        "C2,n,2026-01-02",
        "C3,n,2026-01-02",
        'tail",2026-01-05',
        "C4,n,2026-01-02",
    ]
    # joined, lines 2-5 would split into exactly 3 fields (C1 | Anna...tail | 2026-01-05), hiding C2
    # and C3
    stats, rows = read_csv(tmp_path, "\n".join(lines).encode())
    got = [(r["LINE_NO"], r["CUSTOMER_ID"], r["READ_REASON"]) for r in rows]
    assert got == [
        (2, None, Reason.CSV_UNCLOSED_QUOTE),
        (3, "C2", None),
        (4, "C3", None),
        (5, None, Reason.CSV_UNCLOSED_QUOTE),
        (6, "C4", None),
    ]


def test_a_quote_left_open_to_the_end_of_the_file_is_bounded(tmp_path):
    body = ["customer_id,name,signup_date", 'C0,"never closed,2026-01-02']
    body += [f"C{i},n,2026-01-02" for i in range(1, MAX_RECORD_LINES + 50)]
    stats, rows = read_csv(tmp_path, "\n".join(body).encode())
    assert stats.records == len(body) - 1
    assert [r["READ_REASON"] for r in rows].count(Reason.CSV_UNCLOSED_QUOTE) == 1
    assert rows[-1]["CUSTOMER_ID"] == f"C{MAX_RECORD_LINES + 49}"


def test_jsonl_is_strict_and_every_line_is_one_row(tmp_path):
    lines = [
        b'\xef\xbb\xbf{"a": 1}',
        b'{"a": 1,}',
        b'{"a": NaN}',
        b'{"a": "\\ud800"}',
        b"[1, 2]",
        b"42",
        b"   ",
        b'{"name": "J\xc3\xbcrgen \xf0\x9f\x8d\xaa"}',
        b'{"a": "caf\xe9"}',
        b'{"a": 1',
        b'{"a": "\\u00e9"}',
        b'{"a": 1, "b": {"c": 1, "c": 2}}',
    ]
    stats, rows = read_jsonl(tmp_path, b"\n".join(lines) + b"\n")
    assert [r["READ_REASON"] for r in rows] == [
        None,
        Reason.MALFORMED_JSON,
        Reason.MALFORMED_JSON,
        Reason.MALFORMED_JSON,
        Reason.NOT_AN_OBJECT,
        Reason.NOT_AN_OBJECT,
        Reason.EMPTY_LINE,
        None,
        Reason.INVALID_UTF8,
        Reason.MALFORMED_JSON,
        None,
        Reason.MALFORMED_JSON,
    ]
    assert [r["LINE_NO"] for r in rows] == list(range(1, 13))
    assert json.loads(rows[7]["RECORD"]) == {"name": "Jürgen 🍪"}
    assert rows[8]["RECORD"] == '{"a": "caf\\xe9"}'
    assert stats.records == 12 and stats.read_errors[Reason.MALFORMED_JSON] == 5


def test_random_bytes_never_raise_and_every_line_is_accounted_for(tmp_path):
    data = random.Random(5).randbytes(300_000)
    stats, rows = read_jsonl(tmp_path, data)
    expected_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    assert stats.records == len(rows) == expected_lines
    assert all(r["READ_REASON"] for r in rows)
    stats, rows = read_csv(tmp_path, b"customer_id,name,signup_date\n" + data)
    assert stats.records == len(rows) > 0 and all(r["READ_REASON"] for r in rows)


def test_huge_fields_are_kept_whole(tmp_path):
    text = "délicieux " * 300_000  # 3 MB, above the csv module's default field limit
    stats, rows = read_csv(
        tmp_path, f'customer_id,name,signup_date\nC1,"{text}",2026-01-01\n'.encode()
    )
    assert rows[0]["READ_REASON"] is None and rows[0]["RECORD"].count("délicieux") == 300_000


def test_memory_stays_flat_as_the_file_grows(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "BATCH_ROWS", 2_000)
    line = json.dumps(
        {"order_id": "O1", "customer_id": "C1", "ts": "2026-01-01", "items": [{"quantity": 1}]}
    )
    peaks = []
    for n in (20_000, 80_000):
        src = tmp_path / f"o{n}.jsonl"
        src.write_text((line + "\n") * n)
        tracemalloc.start()
        readers.read_jsonl(src, tmp_path / f"o{n}.parquet", "o.jsonl")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0], peaks  # 4x the rows, about the same peak


@pytest.mark.parametrize(
    "text,name,expected",
    [
        (
            "customer_id: C1\nts: 2026-03-01 10:00\n\nHello, the cookies\nwere broken.",
            "x.txt",
            ("C1", "2026-03-01 10:00", "Hello, the cookies\nwere broken."),
        ),
        ("Customer: C2\nDate: 2026-03-02\nAgent: hi", "x.txt", ("C2", "2026-03-02", "Agent: hi")),
        (
            "Agent: hello\nCustomer said: fine",
            "C3_2026-03-03_morning.txt",
            ("C3", "2026-03-03", "Agent: hello\nCustomer said: fine"),
        ),
        ("just text", "notes.txt", (None, None, "just text")),
        ("customer_id: C4\n\n", "C9_2026-01-01.txt", ("C4", "2026-01-01", "")),
    ],
)
def test_call_transcripts_take_the_customer_and_date_from_the_header_or_the_file_name(
    text, name, expected
):
    assert readers.parse_call(text, name) == expected


def test_call_files_are_staged_one_row_each(tmp_path):
    folder = tmp_path / "calls"
    folder.mkdir()
    (folder / "C1_2026-01-02.txt").write_text("all good")
    (folder / "b.TXT").write_bytes(b"customer_id: C2\nts: 2026-01-02\n\nbad \xff byte")
    (folder / "ignored.md").write_text("not a transcript")
    stats = readers.read_calls(folder, tmp_path / "c.parquet", "calls")
    rows = staged(tmp_path / "c.parquet")
    assert stats.records == 2
    assert [(r["SOURCE_FILE"], r["CUSTOMER_ID"], r["READ_REASON"]) for r in rows] == [
        ("calls/C1_2026-01-02.txt", "C1", None),
        ("calls/b.TXT", None, Reason.INVALID_UTF8),
    ]


def _strict(text: str):
    """What the strict decoder alone says of a line: (object, field, reason)."""
    fast, readers._fast_parse = readers._fast_parse, lambda text: None
    try:
        return readers._parse(text)
    finally:
        readers._fast_parse = fast


def _mutations(seed: int, n: int) -> list[str]:
    """Order lines with one small edit each: the places where a faster parser could disagree."""
    rng = random.Random(seed)
    base = [
        '{"order_id":"O1","customer_id":"C1","ts":"2025-01-01T23:39:05",'
        '"items":[{"product":"double_chocolate","quantity":6,"unit_price":3.0},'
        '{"product":"peanut_butter","quantity":2,"unit_price":2.6}],'
        '"shipping":{"method":"standard","country":"FR","cost":4.95}}',
        '{"a": 1, "b": [1, 2, {"c": "x\\":y"}], "d": {"e": null, "f": true}}',
        '{ "k" : "v" , "n" : -0.0e-5 }',
    ]
    edits = [
        '"order_id":"O2",',
        '"a":1,',
        '"a" :1,',
        '"k":"v",',
        '"x":"\\":",',
        "NaN",
        "Infinity",
        "1e400",
        "1" * 19,
        "1" * 25,
        "1" * 40,
        "-" + "9" * 38,
        "\\u0000",
        "\\ud800",
        "\\udc00\\ud800",
        "\\u00e9",
        "\\/",
        "\x01",
        "\x00",
        "\x7f",
        " ",
        "\t",
        ",",
        "}",
        "]",
        "[",
        "{",
        ":",
        '"',
        "{" * 120 + "}" * 120,
        "[" * 120 + "]" * 120,
        "1.5E+3",
        "01",
        "-",
        ".5",
        "tru",
        "null",
        "\u2028",
        "\ufeff",
        '"é":1,',
        "é",
    ]
    out = []
    for _ in range(n):
        line = rng.choice(base)
        at = rng.randrange(len(line) + 1)
        cut = rng.choice([0, 0, 0, 1, 2])
        out.append(line[:at] + rng.choice(edits) + line[at + cut :])
    return out + [
        '{"a":1,"a":2}',
        '{"a":1,"b":{"c":1,"c":2}}',
        '{"a":1, "a" :2, "b" :3}',
        '{"a":"x\\":y","a":2}',
        '{"a":[{"k":1,"k":1}]}',
        '{"a":' + "1" * 30 + "}",
        '{"a":18446744073709551616}',
        '{"a":9223372036854775807}',
        '{"a":"\\u0000"}',
        '{"a":' * 101 + "1" + "}" * 101,
        '{"a":' * 99 + "1" + "}" * 99,
        "[1]",
        "1",
        '"s"',
    ]


def test_the_fast_json_path_agrees_with_the_strict_decoder_on_every_line():
    """orjson parses the lines it can vouch for; on every other line the strict decoder decides.
    Over thousands of edited order lines (repeated keys, escapes, NUL, huge numbers, deep nesting,
    broken syntax), the result is the strict decoder's, value for value; and the fast path does
    take the ordinary lines."""
    taken = 0
    for text in _mutations(7, 6000):
        got, expected = readers._parse(text), _strict(text)
        assert got[1:] == expected[1:], text
        assert got[0] == expected[0] and json.dumps(got[0]) == json.dumps(expected[0]), text
        if got[0] is not None:
            assert readers.compact_json(got[0]) == readers.compact_json(expected[0]), text
        taken += readers._fast_parse(text) is not None
    assert taken > 1000
    assert readers._fast_parse('{"a":1,"a":2}') is None
    assert readers._parse('{"a":1,"a":2}')[2] == Reason.MALFORMED_JSON


def _all_rows(paths):
    return [r for p in paths for r in staged(p)]


@pytest.mark.parametrize("workers", [2, 3])
def test_a_file_read_in_parts_stages_the_same_rows_as_one_reader(tmp_path, workers):
    """Parts cut at line starts, each read by its own process: same rows, numbers, reasons, items,
    counts and checksum as one reader, whatever lies at the cuts (BOM, CRLF, over-long, empty and
    invalid lines, a list of items)."""
    rng = random.Random(7)
    kinds = [
        b'{"order_id": "O%d", "items": [{"q": 1}, {"q": 2}]}',
        b'{"order_id": "O%d", "items": []}\r',
        b"",
        b'{"a": "caf\xe9 %d"}',
        b'{"a": 1, "a": %d}',
        b"not json %d",
    ]
    lines = [b'\xef\xbb\xbf{"order_id": "first", "items": [{"q": 3}]}']
    for i in range(400):
        k = rng.choice(kinds)
        lines.append(k % i if b"%d" in k else k)
    for at in (150, 260):  # the cuts fall inside these (they are most of the file)
        lines[at] = b"x" * (MAX_LINE_BYTES + 10)
    src = tmp_path / "orders.jsonl"
    src.write_bytes(b"\n".join(lines))  # no newline at the end
    one = readers.read_jsonl(
        src, tmp_path / "a.parquet", "orders.jsonl", ("items", tmp_path / "ai.parquet"), workers=1
    )
    parts = readers.read_jsonl(
        src,
        tmp_path / "b.parquet",
        "orders.jsonl",
        ("items", tmp_path / "bi.parquet"),
        root=tmp_path,
        workers=workers,
    )
    assert len(parts.parts) == len(parts.item_parts) == workers
    assert _all_rows(parts.parts) == _all_rows(one.parts)
    assert _all_rows(parts.item_parts) == _all_rows(one.item_parts)
    assert [r["LINE_NO"] for r in _all_rows(parts.parts)] == list(range(1, len(lines) + 1))
    assert (parts.records, parts.read_errors, parts.bytes, parts.sha256) == (
        one.records,
        one.read_errors,
        one.bytes,
        hashlib.sha256(src.read_bytes()).hexdigest(),
    )
    assert not parts.changed


def test_a_reading_process_that_fails_stops_the_read_and_leaves_no_process(tmp_path):
    """The first part cannot be written (a folder stands at its path), so its process fails at
    once while the second is still reading its ~20 MB: the read stops with the first process's
    error, and the second process is not left running."""
    import psutil

    src = tmp_path / "orders.jsonl"
    line = b'{"order_id": "O1", "customer_id": "C1", "items": [{"product": "x", "quantity": 1}]}\n'
    src.write_bytes(line * 250_000)
    (tmp_path / "o.parquet").mkdir()
    with pytest.raises(RuntimeError, match="a reading process failed"):
        readers.read_jsonl(src, tmp_path / "o.parquet", "orders.jsonl", workers=2)

    def readers_running() -> list:  # other tests' servers and kernels may be children too
        out = []
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.status() != psutil.STATUS_ZOMBIE and (
                    "customer_analytics.readers" in child.cmdline()
                ):
                    out.append(child)
        return out

    assert readers_running() == []
