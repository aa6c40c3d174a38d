"""Files that are not UTF-8 (real exports: Excel's "CSV" on Windows is Windows-1252, its "Unicode
text" is UTF-16; older shop systems write Latin-1 or a regional code page).

Such a file used to stop the run ("re-export it as UTF-8 or convert it with iconv"), or, when its
first 64 KiB happened to be ASCII, to lose every later line with an accent as "invalid UTF-8". It
is now read through a UTF-8 copy: UTF-16/32 by its byte-order mark or zero bytes, an 8-bit file as
Windows-1252 (the whole file checked), or as declared in ``encodings``; the 01 summary says how.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from pathlib import Path

import pytest

from conftest import REPO, ingest_and_read, make_params
from customer_analytics import config, ingest, readers
from customer_analytics.contract import Reason
from customer_analytics.narrative import ingest as story
from customer_analytics.parameters import ConfigError

HEADER = "customer_id,name,email,signup_date,country,acquisition_channel,birth_year\n"
ROWS = (
    "C1,Jürgen Müller,j@example.de,2026-01-02,DE,email,1980\n"
    "C2,Zoë Brontë,z@example.fr,2026-01-03,FR,ads,1975\n"
    "C3,Renée Lefèvre,r@example.fr,2026-01-04,FR,ads,1990\n"
)
ORDERS_HEADER = "order_id,customer_id,ts,product,quantity,unit_price\n"
ORDERS = (
    "O1,C1,2026-01-05 10:00,Crème brûlée,2,3.50\n"
    "O2,C2,2026-01-06 11:00,Pâte à choux,1,4.25\n"
    "O3,C3,2026-01-07 12:00,Crème brûlée,3,3.50\n"
)


@pytest.fixture
def data(tmp_path) -> Path:
    d = tmp_path / "shop"
    d.mkdir()
    (d / "orders.jsonl").write_text(
        json.dumps(
            {
                "order_id": "O9",
                "customer_id": "C1",
                "ts": "2026-01-05T10:00:00",
                "items": [{"product": "choc", "quantity": 2, "unit_price": 1.5}],
            }
        )
        + "\n"
    )
    return d


def plans(data: Path, tmp_path: Path, **over) -> dict:
    return {
        p.source.name: p for p in ingest.plan_sources(make_params(data, tmp_path / "wh", **over))
    }


@pytest.mark.parametrize(
    "codec,how",
    [
        ("utf-16", "byte-order mark"),  # Excel's "Unicode text"
        ("utf-16-be", "detected"),  # no mark: told by its zero bytes
        ("utf-32", "byte-order mark"),
        ("cp1252", "detected: 6 bytes are not UTF-8"),  # Excel's "CSV" on Windows
    ],
)
def test_a_file_in_another_encoding_is_read_through_a_utf8_copy(codec, how, data, tmp_path):
    """Each of these stopped the run before ("the file is UTF-16 … Fix: iconv …")."""
    (data / "customers.csv").write_bytes((HEADER + ROWS).encode(codec))
    plan = plans(data, tmp_path)["customers"]
    copy = plan.transcoded
    assert copy is not None and copy.encoding == codecs.lookup(codec).name
    assert plan.encoding_how == how
    assert copy.path.read_text("utf-8") == HEADER + ROWS  # no byte-order mark, same lines
    assert copy.path.parent == tmp_path / "wh" / "staging" / "transcoded"
    assert copy.sha256 == hashlib.sha256((data / "customers.csv").read_bytes()).hexdigest()
    assert plan.readable == (copy.path, copy.path.parent)
    ingest.drop_copies([plan])
    assert not copy.path.exists()


def test_an_ascii_start_does_not_hide_an_8bit_file(data, tmp_path):
    """The first 64 KiB used to decide: a Windows-1252 file whose accents come later lost those
    lines as 'invalid UTF-8'. The whole file is checked now (ASCII stretches at memory speed)."""
    plain = "".join(
        f"C{i},Anna Smith,a{i}@example.com,2026-01-02,GB,ads,1980\n" for i in range(10, 3000)
    )
    assert len(plain) > readers.SNIFF_BYTES
    (data / "customers.csv").write_bytes((HEADER + plain + ROWS).encode("cp1252"))
    plan = plans(data, tmp_path)["customers"]
    assert plan.transcoded is not None and plan.transcoded.encoding == "cp1252"
    ingest.drop_copies([plan])


@pytest.mark.parametrize(
    "content",
    [
        # UTF-8 with a few damaged lines: they are rejected, the file is not re-read
        (HEADER + ROWS).encode() + b"C4,Ren\xe9 \xff\xfe,x@y.z,2026-01-02,FR,ads,1990\n",
        # two stray bytes and nothing else beyond ASCII: too few to call it another encoding
        (HEADER + "C1,Rene,x@y.z,2026-01-02,FR,ads,1990\n").encode()
        + b"C4,Ren\xe9 \xe8,x@y.z,2026-01-02,FR,ads,1990\n",
        (HEADER + ROWS).encode(),  # UTF-8
    ],
)
def test_utf8_with_damaged_lines_stays_utf8(content, data, tmp_path):
    (data / "customers.csv").write_bytes(content)
    assert plans(data, tmp_path)["customers"].transcoded is None


def test_a_declared_encoding_is_used_and_utf8_turns_detection_off(data, tmp_path):
    polish = "C1,Łukasz Żółć,l@example.pl,2026-01-02,PL,ads,1980\n"
    (data / "customers.csv").write_bytes((HEADER + polish * 3).encode("cp1250"))
    plan = plans(data, tmp_path, encodings={"customers": "cp1250"})["customers"]
    assert plan.transcoded.path.read_text() == HEADER + polish * 3
    assert plan.encoding_how == "declared"
    ingest.drop_copies([plan])
    # detected, the same bytes read as Windows-1252: no stop, wrong letters, and the note says so
    plan = plans(data, tmp_path)["customers"]
    assert plan.transcoded.encoding == "cp1252" and "Łukasz" not in plan.transcoded.path.read_text()
    ingest.drop_copies([plan])
    with pytest.raises(ingest.IngestError) as err:
        plans(data, tmp_path, encodings={"customers": "utf-8"})
    assert "customers.csv: the file is not UTF-8" in str(err.value)


def test_a_wrong_declared_encoding_stops_with_what_the_copy_is(data, tmp_path):
    (data / "customers.csv").write_bytes((HEADER + ROWS).encode("utf-16"))
    with pytest.raises(ingest.IngestError) as err:
        plans(data, tmp_path, encodings={"customers": "cp1252"})
    msg = str(err.value)
    assert "customers.csv: read as cp1252 (declared), the file is" in msg
    assert "declare its encoding (encodings: {customers: <encoding>})" in msg
    assert not list((tmp_path / "wh" / "staging" / "transcoded").glob("*"))  # no copy left


def test_copies_are_removed_when_a_later_source_stops_the_plan(data, tmp_path):
    (data / "customers.csv").write_bytes((HEADER + ROWS).encode("cp1252"))
    (data / "reviews.jsonl").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    with pytest.raises(ingest.IngestError, match="reviews.jsonl: the file is a ZIP archive"):
        plans(data, tmp_path)
    assert not list((tmp_path / "wh" / "staging" / "transcoded").glob("*"))


@pytest.mark.parametrize(
    "value,expected",
    [("Latin-1", "iso8859-1"), ("CP1252", "cp1252"), ("utf16", "utf-16"), ("auto", None)],
)
def test_encodings_setting_takes_codec_names(value, expected):
    p = config.load(REPO, encodings=f"{{orders: {value}}}")
    assert p.encodings.get("orders") == expected


@pytest.mark.parametrize(
    "value,message",
    [
        ("{orders: klingon}", "'klingon' is not a text encoding"),
        ("{orders: base64}", "'base64' is not a text encoding"),  # a codec, but not for text
        ("{calls: cp1252}", "unknown source 'calls'"),
    ],
)
def test_a_bad_encodings_setting_is_a_clear_error(value, message):
    with pytest.raises(ConfigError, match=message):
        config.load(REPO, encodings=value)


def test_8bit_and_unicode_text_exports_are_ingested_with_their_accents(tmp_path):
    """End to end on the embedded warehouse: a shop export as Excel on Windows writes it —
    "CSV" (Windows-1252) and "Unicode text" (UTF-16, tab-separated, .txt; a .tsv for the
    customers) — gives the clean rows of its UTF-8 CSV twin; the counts keep the received file's
    size and checksum; a bad line keeps its original line number; the 01 summary says how the
    files were read."""
    variants = {  # codec, separator, orders file, customers file
        "utf-8": ("utf-8", ",", "orders.csv", "customers.csv"),
        "cp1252": ("cp1252", ",", "orders.csv", "customers.csv"),
        "unicode_text": ("utf-16", "\t", "orders.txt", "customers.tsv"),
    }
    bad = "O4,C1,2026-02-30 10:00,Crème brûlée,1,3.50\n"  # line 5: no such day
    results = {}
    for name, (codec, sep, orders, customers) in variants.items():
        d = tmp_path / name / "shop"
        d.mkdir(parents=True)
        (d / orders).write_bytes((ORDERS_HEADER + ORDERS + bad).replace(",", sep).encode(codec))
        (d / customers).write_bytes((HEADER + ROWS).replace(",", sep).encode(codec))
        p = make_params(
            d,
            tmp_path / name / "wh",
            orders_file=orders,
            customers_file=customers,
            reviews_file=None,
            max_reject_share=0.5,
        )
        results[name] = ingest_and_read(
            p, "CLEAN_ORDER_LINES", "CLEAN_CUSTOMERS", "REJECTED_ORDER_LINES"
        )
        assert not list((tmp_path / name / "wh" / "staging" / "transcoded").glob("*"))
    counts8, lines8, cust8, rej8 = results.pop("utf-8")
    key = ["ORDER_ID", "PRODUCT"]
    assert sorted(lines8["PRODUCT"].unique()) == ["creme_brulee", "pate_a_choux"]
    for name, (counts, lines, cust, rej) in results.items():
        codec, sep, orders, customers = variants[name]
        assert (
            lines.drop(columns="SOURCE_FILE")
            .sort_values(key)
            .reset_index(drop=True)
            .equals(lines8.drop(columns="SOURCE_FILE").sort_values(key).reset_index(drop=True))
        ), name
        assert set(lines["SOURCE_FILE"]) == {orders}
        assert (
            cust.drop(columns="SOURCE_FILE")
            .sort_values("CUSTOMER_ID")
            .reset_index(drop=True)
            .equals(
                cust8.drop(columns="SOURCE_FILE").sort_values("CUSTOMER_ID").reset_index(drop=True)
            )
        ), name
        assert list(rej["LINE_NO"]) == [5] and list(rej["REASON"]) == [Reason.BAD_DATE]
        assert list(rej["RECORD"]) == [bad.strip().replace(",", sep)]  # the line, accents kept
        received = (tmp_path / name / "shop" / orders).read_bytes()
        assert counts["orders"].sha256 == hashlib.sha256(received).hexdigest()
        assert counts["orders"].bytes == len(received)
        assert counts["orders"].encoding["encoding"] == codecs.lookup(codec).name
        text = story.summary(list(counts.values()))
        assert (
            f"'{orders}' is not UTF-8: read as " in text and f"'{customers}' is not UTF-8" in text
        )
        assert "encodings: {orders: <encoding>}" in text
    assert "(detected: " in story.summary(list(results["cp1252"][0].values()))
    assert "UTF-16 (byte-order mark)" in story.summary(list(results["unicode_text"][0].values()))
    assert not counts8["orders"].encoding
    assert "not UTF-8" not in story.summary(list(counts8.values()))


@pytest.mark.parametrize(
    "content,bad,multibyte",
    [
        (b"aaaaaaa" + "é".encode() + b"\xe9\xe9\xe9", 1, True),  # 'é' cut by the chunk boundary
        (b"aaaaaaa\xe9" + b"x\xe9\xe9\xe9", 4, False),  # no UTF-8 character on either side
        (b"aaaaaaaa" * 3 + "€".encode(), 0, True),  # after ASCII-only chunks
        (bytes(range(0x80, 0x100)) * 4, 512, False),  # nothing but bytes beyond ASCII
    ],
)
def test_the_whole_file_scan_across_chunks(content, bad, multibyte, tmp_path, monkeypatch):
    """The scan reads a file in chunks (16 MiB; 8 bytes here): a character cut in two by a chunk
    boundary is still one UTF-8 character."""
    monkeypatch.setattr(readers, "_CHUNK", 8)
    f = tmp_path / "x.csv"
    f.write_bytes(content)
    assert readers.scan_utf8(f) == readers.Utf8Scan(bad, multibyte)


def test_the_sources_table_names_the_encoding_and_leaves_no_copy(data, tmp_path):
    (data / "customers.csv").write_bytes((HEADER + ROWS).encode("cp1252"))
    table = ingest.sources_frame(make_params(data, tmp_path / "wh"))
    assert table.loc["customers", "format"] == "csv (cp1252)"
    assert table.loc["orders", "format"] == "jsonl"
    assert not list((tmp_path / "wh" / "staging" / "transcoded").glob("*"))


def test_call_transcripts_in_other_encodings_are_read(data, tmp_path):
    """A transcript saved by Notepad as "Unicode" (UTF-16) or by an older call-centre tool in
    Windows-1252 used to be rejected ("UTF-16 or UTF-32 text", "invalid UTF-8") while a file in
    the same encoding was read. Each transcript is now detected as files are; a UTF-8 one with a
    damaged byte is still rejected, and the 01 summary counts the transcripts not in UTF-8."""
    (data / "customers.csv").write_text(HEADER + ROWS)
    calls = data / "calls"
    calls.mkdir()
    body = "Agent: bonjour.\nCustomer: la crème brûlée était cassée, très déçue.\n"
    head = "customer_id: C{}\nts: 2026-01-0{}\n\n"
    transcripts = {
        "a_utf8.txt": (head.format(1, 1) + body).encode("utf-8"),
        "b_unicode.txt": (head.format(2, 2) + body).encode("utf-16"),  # with its mark
        "c_unicode_no_mark.txt": (head.format(3, 3) + body).encode("utf-16-le"),
        "d_windows.txt": (head.format(1, 4) + body).encode("cp1252"),
        "e_damaged.txt": (head.format(2, 5) + "one bad byte: \xff").encode("latin-1"),
    }
    for name, raw in transcripts.items():
        (calls / name).write_bytes(raw)
    p = make_params(data, tmp_path / "wh", reviews_file=None, max_reject_share=0.5)
    counts, clean, rejected = ingest_and_read(p, "CLEAN_REVIEWS", "REJECTED_REVIEWS")
    read = clean[clean["KIND"] == "call"].set_index("SOURCE_FILE")
    assert sorted(read.index) == [f"calls/{n}" for n in sorted(transcripts) if "damaged" not in n]
    assert set(read["TEXT"]) == {body.strip()}  # the accents as written, no byte-order mark
    assert list(rejected["SOURCE_FILE"]) == ["calls/e_damaged.txt"]
    assert list(rejected["REASON"]) == [Reason.INVALID_UTF8]
    note = counts["calls"].encoding
    assert note["transcripts"] == {"utf-16": 1, "utf-16-le": 1, "cp1252": 1}
    text = story.summary(list(counts.values()))
    assert "3 transcripts in 'calls' are not UTF-8: read as" in text
    assert "Windows-1252 (1)" in text and "UTF-16 (little-endian) (1)" in text
