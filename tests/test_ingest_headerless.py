"""Delimited files without a header line, and columns aligned with spaces.

CDNow's transaction log (``CDNOW_master.txt``, the data set the buy-till-you-die literature is
measured on) is both: ``00001 19970101  1  11.77`` — customer, day, CDs bought, dollars — with
no header and runs of spaces between the columns. It stopped the run ("the file probably has no
header line"), and adding a header did not help: a space was not a separator. Now
``column_names`` names the columns of a file without a header line, and runs of spaces separate
fields when they name the wanted columns (or give a header-less file its column count).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO, ingest_and_read, make_params
from customer_analytics import config, ingest, readers
from customer_analytics.contract import Reason
from customer_analytics.parameters import ConfigError

CDNOW = (
    "00001 19970101  1  11.77\n"
    "00002 19970112  1  12.00\n"
    "00002 19970112  5  77.00\n"
    "00003 19970102  2  20.76\n"
    "00003 19970330  2  20.76\n"
    "00004 19970230  1   9.99\n"  # line 6: no such day
    "  00005 19970101  3  36.50  \n"  # spaces before and after a line are not fields
)
NAMES = ("customer_id", "ts", "quantity", "amount")


def folder(tmp_path: Path, name: str, text: str) -> Path:
    d = tmp_path / "shop"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text)
    return d


def settings(d: Path, tmp_path: Path, orders: str, **over) -> config.Params:
    return make_params(
        d,
        tmp_path / "wh",
        orders_file=orders,
        customers_file=None,
        reviews_file=None,
        calls_dir=None,
        max_reject_share=0.5,
        **over,
    )


def test_cdnow_transaction_log_is_ingested_as_it_is_distributed(tmp_path):
    d = folder(tmp_path, "CDNOW_master.txt", CDNOW)
    p = settings(d, tmp_path, "CDNOW_master.txt", column_names={"orders": NAMES})
    plan = {x.source.name: x for x in ingest.plan_sources(p)}["orders"]
    assert plan.delimiter == readers.SPACES
    counts, lines, rejected = ingest_and_read(p, "CLEAN_ORDER_LINES", "REJECTED_ORDER_LINES")
    c = counts["orders"]
    assert (c.read, c.accepted, c.rejected) == (7, 6, 1)
    assert list(rejected["LINE_NO"]) == [6] and list(rejected["REASON"]) == [Reason.BAD_DATE]
    assert sorted(lines["LINE_NO"]) == [1, 2, 3, 4, 5, 7]  # the first line is a record
    lines["SPEND"] = lines["QUANTITY"] * lines["UNIT_PRICE"]  # the amount is the line's total
    spend = lines.groupby("CUSTOMER_ID")["SPEND"].sum().round(2).to_dict()
    assert spend == {"00001": 11.77, "00002": 89.0, "00003": 41.52, "00005": 36.5}
    assert sorted(lines["TS"].dt.strftime("%Y-%m-%d").unique()) == [
        "1997-01-01",
        "1997-01-02",
        "1997-01-12",
        "1997-03-30",
    ]


def test_without_column_names_the_stop_says_how_to_name_them(tmp_path):
    d = folder(tmp_path, "CDNOW_master.txt", CDNOW)
    with pytest.raises(ingest.IngestError) as err:
        ingest.plan_sources(settings(d, tmp_path, "CDNOW_master.txt"))
    msg = str(err.value)
    assert "the file probably has no header line" in msg
    assert "column_names: {orders: [customer_id, ts, quantity" in msg
    assert "00001" not in msg and "11.77" not in msg  # no value of the file is quoted


def test_a_header_separated_by_spaces_is_read_with_its_names(tmp_path):
    """The same log with a header line of its own: the columns are found by their names."""
    d = folder(tmp_path, "cdnow.txt", "user_id  date      cds  dollars\n" + CDNOW)
    cols = {"customer_id": "user_id", "ts": "date", "quantity": "cds", "amount": "dollars"}
    p = settings(d, tmp_path, "cdnow.txt", columns={"orders": cols})
    counts, lines = ingest_and_read(p, "CLEAN_ORDER_LINES")
    assert (counts["orders"].accepted, counts["orders"].rejected) == (6, 1)
    assert sorted(lines["LINE_NO"]) == [2, 3, 4, 5, 6, 8]


@pytest.mark.parametrize(
    "header,expected",
    [
        ("Customer ID,Invoice Date,Quantity,Price", ","),  # names with spaces: still commas
        ("Customer ID;Invoice Date;Quantity;Price", ";"),
        ("Customer ID\tInvoice Date\tQuantity\tPrice", "\t"),
        ("Kunde Nr;Datum der Bestellung", ";"),  # nothing named: spaces never win on count
        ("customer_id ts quantity unit_price", readers.SPACES),
    ],
)
def test_runs_of_spaces_separate_fields_only_when_they_name_the_columns(header, expected, tmp_path):
    f = tmp_path / "x.csv"
    f.write_text(header + "\n")
    wanted = ["Customer ID", "Invoice Date", "Quantity", "Price", "customer_id", "ts", "quantity"]
    assert readers.detect_delimiter(f, wanted) == expected


def test_a_headerless_csv_with_commas_is_read_from_its_first_line(tmp_path):
    d = folder(
        tmp_path,
        "orders.csv",
        "O1,C1,2026-01-05 10:00,choc,2,3.50\nO2,C2,2026-01-06 11:00,tea,1,4.25\n",
    )
    names = ("order_id", "customer_id", "ts", "product", "quantity", "unit_price")
    p = settings(d, tmp_path, "orders.csv", column_names={"orders": names})
    counts, lines = ingest_and_read(p, "CLEAN_ORDER_LINES")
    assert counts["orders"].accepted == 2 and sorted(lines["ORDER_ID"]) == ["O1", "O2"]
    assert sorted(lines["LINE_NO"]) == [1, 2]


def test_column_names_that_do_not_fit_the_first_line_stop_the_plan(tmp_path):
    d = folder(tmp_path, "CDNOW_master.txt", CDNOW)
    with pytest.raises(ingest.IngestError) as err:
        ingest.plan_sources(
            settings(d, tmp_path, "CDNOW_master.txt", column_names={"orders": NAMES[:3]})
        )
    msg = str(err.value)
    assert (
        "CDNOW_master.txt: column_names gives 3 columns, but the first line has 1 field(s)" in msg
    )
    assert "00001" not in msg


@pytest.mark.parametrize(
    "value,expected",
    [
        ("{orders: [customer_id, ts, quantity, amount]}", NAMES),
        ("{orders: 'customer_id, ts, quantity, amount'}", NAMES),
        ("{orders: null}", None),
    ],
)
def test_column_names_setting(value, expected):
    assert config.load(REPO, column_names=value).column_names.get("orders") == expected


@pytest.mark.parametrize(
    "value,message",
    [
        ("{orders: [customer_id, ts, TS]}", "name 3 is repeated"),
        ("{orders: [customer_id, '', ts]}", "name 2 is empty"),
        ("{orders: 3}", "must list the file's column names"),
        ("{calls: [a]}", "unknown source 'calls'"),
    ],
)
def test_a_bad_column_names_setting_is_a_clear_error(value, message):
    with pytest.raises(ConfigError, match=message):
        config.load(REPO, column_names=value)
