"""Spreadsheet workbooks as sources: shops export .xlsx as often as CSV (the gift retailer's
invoice log is published as one, a sheet per year).

A workbook used to stop the run ("unsupported file type '.xlsx'"). It is now read through a CSV
copy (``readers.workbook_to_csv``): the first sheet's first row is the header, later sheets with
the same header add their rows, others are named as not read; dates become ISO text, whole numbers
lose Excel's ``.0``. The workbooks here are real ``.xlsx`` files written by XlsxWriter, and an
OpenDocument ``.ods`` (LibreOffice's format) written the way LibreOffice lays one out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import xlsxwriter
from realistic_corpus import CASES

from conftest import ingest_and_read, make_params
from customer_analytics import contract, ingest, readers
from customer_analytics.contract import Reason
from customer_analytics.ingest.common import IngestError
from customer_analytics.narrative import ingest as story

HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
          "CustomerID", "Country"]  # fmt: skip
D = dt.datetime
GIFT = CASES["gift_invoices"]
SHEETS = {
    "2010": [
        ["536365", "85123A", "WHITE HANGING\nHEART T-LIGHT HOLDER", 6, D(2010, 12, 1, 8, 26), 2.55,
         17850, "United Kingdom"],
        ["C536379", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", -2, D(2010, 12, 1, 9, 41),
         2.55, 17850, "United Kingdom"],
        ["536380", "22423", "REGENCY CAKESTAND 3 TIER", 1, D(2010, 12, 1, 9, 45), 12.75, None,
         "France"],
        ["536381", "22423", "REGENCY CAKESTAND 3 TIER", 0, D(2010, 12, 2, 10, 0), 12.75, 13047,
         "United Kingdom"],  # a zero quantity: rejected, named by its sheet row (5)
    ],
    "2011": [
        ["540001", "22423", "REGENCY CAKESTAND 3 TIER", 3, D(2011, 1, 4, 10, 0), 12.75, 13047,
         "United Kingdom"],
    ],
}  # fmt: skip


def _workbook(path: Path, notes: bool = True) -> None:
    wb = xlsxwriter.Workbook(str(path))
    stamp = wb.add_format({"num_format": "m/d/yy h:mm"})  # as the published file shows them
    for name, rows in SHEETS.items():
        ws = wb.add_worksheet(name)
        ws.write_row(0, 0, HEADER)
        for r, row in enumerate(rows, start=1):
            for c, v in enumerate(row):
                if isinstance(v, dt.datetime):
                    ws.write_datetime(r, c, v, stamp)
                elif v is not None:
                    ws.write(r, c, v)
    if notes:
        ws = wb.add_worksheet("Notes")
        ws.write_row(0, 0, ["Read me", "exported 2011-12-10"])
    wb.close()


def _params(d: Path, wh: Path, name: str):
    return make_params(
        d,
        wh,
        orders_file=name,
        customers_file=None,
        reviews_file=None,
        calls_dir=None,
        max_reject_share=0.5,
        return_order_prefix="C",
        columns=GIFT["columns"],  # the realistic corpus's invoice export: the same columns
        customer_attributes=GIFT["customer_attributes"],
    )


def test_a_workbook_is_ingested_like_its_csv_twin(tmp_path):
    d = tmp_path / "shop"
    d.mkdir()
    _workbook(d / "online_retail.xlsx")
    twin = "\n".join(
        ",".join(
            ""
            if v is None
            else f"{v.month}/{v.day}/{v.year} {v.hour}:{v.minute:02d}"
            if isinstance(v, dt.datetime)
            else str(v).replace("\n", " ")
            for v in row
        )
        for row in [HEADER, *SHEETS["2010"], *SHEETS["2011"]]
    )
    (d / "online_retail.csv").write_text(twin + "\n")
    got = {}
    for name in ("online_retail.xlsx", "online_retail.csv"):
        p = _params(d, tmp_path / name / "wh", name)
        if name.endswith(".csv"):  # too few days to tell US dates in the text; the book has dates
            p = dataclasses.replace(p, date_formats={"orders": {"ts": contract.DATE_LAYOUTS["us"]}})
        got[name] = ingest_and_read(p, "CLEAN_ORDER_LINES", "REJECTED_ORDER_LINES")
        assert not list((tmp_path / name / "wh" / "staging" / "transcoded").glob("*"))
    (counts, lines, rejected), (counts_csv, lines_csv, rejected_csv) = got.values()
    key = ["ORDER_ID", "PRODUCT"]
    assert (lines.drop(columns="SOURCE_FILE").sort_values(key).reset_index(drop=True)).equals(
        lines_csv.drop(columns="SOURCE_FILE").sort_values(key).reset_index(drop=True)
    )
    o = counts["orders"]
    assert (o.read, o.accepted, o.rejected, o.excluded) == (5, 3, 1, 1)  # 1 guest line excluded
    assert sorted(lines["TS"]) == [D(2010, 12, 1, 8, 26), D(2010, 12, 1, 9, 41), D(2011, 1, 4, 10)]
    assert sorted(lines["QUANTITY"]) == [-2, 3, 6] and lines["IS_RETURN"].sum() == 1
    assert set(lines["CUSTOMER_ID"]) == {"17850", "13047"}  # not 17850.0
    assert list(rejected["LINE_NO"]) == [5] and list(rejected["REASON"]) == [Reason.NOT_POSITIVE]
    assert list(rejected_csv["LINE_NO"]) == [5]
    received = (d / "online_retail.xlsx").read_bytes()
    assert o.sha256 == hashlib.sha256(received).hexdigest() and o.bytes == len(received)
    assert o.workbook == {"sheets": ("2010", "2011"), "skipped": ("Notes",), "rows": 5}
    text = story.summary(list(counts.values()))
    assert "'online_retail.xlsx' is a workbook: 5 rows read from 2 sheets" in text
    assert "Not read, their first row is not that header: 'Notes'." in text
    assert "workbook" not in story.summary(list(counts_csv.values()))
    frame = ingest.sources_frame(_params(d, tmp_path / "listed", "online_retail.xlsx"))
    assert frame.loc["orders", "format"] == "workbook (xlsx)"
    assert not (tmp_path / "listed" / "staging" / "transcoded").exists()  # not converted again


def _ods(path: Path) -> None:
    """:data:`SHEETS` and a notes sheet as an OpenDocument spreadsheet: the ``mimetype`` entry
    first and stored, a manifest, the cells typed in ``content.xml`` (dates as
    ``office:date-value``)."""
    ns = {"office": "office:1.0", "table": "table:1.0", "text": "text:1.0"}
    xmlns = " ".join(
        f'xmlns:{k}="urn:oasis:names:tc:opendocument:xmlns:{v}"' for k, v in ns.items()
    )

    def cell(v) -> str:
        if v is None:
            return "<table:table-cell/>"
        if isinstance(v, dt.datetime):
            typed = f'office:value-type="date" office:date-value="{v.isoformat()}"'
        elif isinstance(v, int | float):
            typed = f'office:value-type="float" office:value="{v}"'
        else:
            typed = 'office:value-type="string"'
        text = "".join(f"<text:p>{escape(x)}</text:p>" for x in str(v).split("\n"))
        return f"<table:table-cell {typed}>{text}</table:table-cell>"

    sheets = {**{n: [HEADER, *rows] for n, rows in SHEETS.items()}, "Notes": [["Read me"]]}
    tables = "".join(
        f'<table:table table:name="{n}">'
        + "".join(f"<table:table-row>{''.join(map(cell, r))}</table:table-row>" for r in rows)
        + "</table:table>"
        for n, rows in sheets.items()
    )
    mime = "application/vnd.oasis.opendocument.spreadsheet"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("mimetype"), mime, compress_type=zipfile.ZIP_STORED)
        z.writestr(
            "META-INF/manifest.xml",
            '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:'
            'manifest:1.0"><manifest:file-entry manifest:full-path="/" '
            f'manifest:media-type="{mime}"/></manifest:manifest>',
        )
        z.writestr(
            "content.xml",
            f'<office:document-content {xmlns} office:version="1.2"><office:body>'
            f"<office:spreadsheet>{tables}</office:spreadsheet></office:body>"
            "</office:document-content>",
        )


def test_an_opendocument_spreadsheet_gives_the_same_copy_as_the_xlsx(tmp_path):
    """LibreOffice's .ods goes through the same reader: the same CSV copy, byte for byte, as the
    .xlsx of the same cells, and the same sheets read and not read (a line break inside a cell is
    a paragraph of its own in OpenDocument: both read as a space)."""
    _workbook(tmp_path / "book.xlsx")
    _ods(tmp_path / "book.ods")
    _, xlsx = readers.workbook_to_csv(tmp_path / "book.xlsx", tmp_path / "xlsx.csv")
    copy, ods = readers.workbook_to_csv(tmp_path / "book.ods", tmp_path / "ods.csv")
    assert (tmp_path / "ods.csv").read_bytes() == (tmp_path / "xlsx.csv").read_bytes()
    assert (ods.sheets, ods.skipped, ods.rows) == (("2010", "2011"), ("Notes",), 5) == (
        xlsx.sheets, xlsx.skipped, xlsx.rows
    )  # fmt: skip
    assert copy.sha256 == hashlib.sha256((tmp_path / "book.ods").read_bytes()).hexdigest()


def test_an_empty_row_between_rows_stays_a_row(tmp_path):
    """An empty row inside the data is an (empty) record on its own line, so later rows keep
    their sheet row numbers; the copy holds the sheet's rows and nothing else."""
    wb = xlsxwriter.Workbook(str(tmp_path / "b.xlsx"))
    ws = wb.add_worksheet("Sheet1")
    ws.write_row(0, 0, ["a", "b"])
    ws.write_row(1, 0, ["x", 1])
    ws.write_row(3, 0, ["y", 2.5])  # row 3 (index 2) left empty
    wb.close()
    copy, book = readers.workbook_to_csv(tmp_path / "b.xlsx", tmp_path / "b.csv")
    assert (tmp_path / "b.csv").read_text().splitlines() == ["a,b", "x,1", ",", "y,2.5"]
    assert (book.sheets, book.skipped, book.rows) == (("Sheet1",), (), 3)
    assert copy.bytes == (tmp_path / "b.xlsx").stat().st_size


def test_cells_become_csv_text():
    cell = readers._cell_text
    assert [cell(v) for v in (17850.0, 2.55, -2.0, 1e20, 0.1 + 0.2)] == [
        "17850", "2.55", "-2", "1e+20", "0.30000000000000004"
    ]  # fmt: skip
    assert cell(D(2010, 12, 1, 8, 26)) == "2010-12-01 08:26:00"
    assert cell(dt.date(2011, 1, 2)) == "2011-01-02"
    assert cell(True) == "true" and cell("") == "" and cell(None) == ""
    assert cell("two\nlines\r\nhere") == "two lines here"


def test_a_damaged_or_empty_workbook_stops_with_what_to_do(tmp_path):
    d = tmp_path / "shop"
    d.mkdir()
    (d / "orders.xlsx").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    p = _params(d, tmp_path / "wh", "orders.xlsx")
    with pytest.raises(IngestError, match=r"orders\.xlsx: it cannot be read as a workbook.*Fix: "):
        ingest.plan_sources(p)
    wb = xlsxwriter.Workbook(str(d / "empty.xlsx"))
    wb.add_worksheet("Sheet1")
    wb.close()
    with pytest.raises(IngestError, match=r"no visible worksheet with a header row"):
        ingest.plan_sources(_params(d, tmp_path / "wh", "empty.xlsx"))
    assert not list((tmp_path / "wh" / "staging" / "transcoded").glob("*"))
