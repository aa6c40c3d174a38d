"""Exports with one row per line item that write the order's date and customer once per order
(Shopify's "orders_export.csv": `Created at` and `Email` on the first row, blank below), with
Shopify's timestamps (`2024-03-07 13:09:00 -0500`): which lines are filled, which are not.

Before: every line below an order's first was rejected (missing date) or excluded as a guest
order, and every timestamp was an unparseable date: the whole file was refused. The realistic
corpus's ``shop_export`` is checked against pandas in test_ingest_realistic.
"""

from __future__ import annotations

import csv

import pandas as pd
import pytest
from realistic_corpus import CASES, write

from conftest import REPO, ingest_and_read, make_params
from customer_analytics import config, ingest, pushdown, sqlcheck
from customer_analytics import warehouse as wh
from customer_analytics.contract import Excluded, Reason

COLUMNS = [
    "Name",
    "Email",
    "Financial Status",
    "Created at",
    "Lineitem quantity",
    "Lineitem name",
    "Lineitem price",
    "Billing Country",
]
MAPPING = CASES["shop_export"]["columns"]  # the realistic corpus's shop export


def write_csv(path, rows) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(rows)


def ingest_file(tmp_path, rows, **over):
    data = tmp_path / "data"
    data.mkdir()
    write_csv(data / "orders_export.csv", rows)
    p = make_params(
        data,
        tmp_path / "wh",
        orders_file="orders_export.csv",
        customers_file="",
        reviews_file="",
        calls_dir="",
        columns=MAPPING,
        **over,
    )
    return ingest_and_read(p, "CLEAN_ORDER_LINES", "REJECTED_ORDER_LINES", "EXCLUDED_ORDER_LINES")


def test_the_filling_sends_snowflake_sql(tmp_path, monkeypatch):
    """The shop export of the realistic corpus (its content is checked in test_ingest_realistic):
    every statement of its ingest, the filling's window functions included, is Snowflake SQL."""
    data = write("shop_export", tmp_path / "data", seed=4, customers=80)
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv(pushdown.AUDIT_VAR, str(audit))  # the server records every statement
    p = config.load(
        REPO,
        data_dir=str(data),
        warehouse_dir=str(tmp_path / "wh"),
        reports_dir=str(tmp_path / "reports"),
        **CASES["shop_export"],
    )
    s = wh.connect(p)
    try:
        (o,) = [c for c in ingest.run(s, p) if c.source == "orders"]
    finally:
        s.close()
        wh.stop_local_server(p.warehouse_dir)
    assert o.rejected == 0 and set(o.filled) == {"Created at", "Email"}
    statements = sqlcheck.audit_statements(audit)
    assert any("LAST_VALUE" in q and "IGNORE NULLS" in q for q in statements)
    assert sqlcheck.check(statements) == []


def test_only_lines_of_the_same_order_are_filled_and_disagreements_stay_visible(tmp_path):
    row = ["", "", "", "", "1", "Gift Box", "3.0", ""]

    def line(order, email, stamp):
        return [order, email, "", stamp, *row[4:]]

    rows = [
        line("#1", "", ""),  # its order's date and customer come on the line below
        line("#1", "a@example.com", "2024-03-07 13:09:00 -0500"),
        line("#2", "", ""),  # its order has them on no line
        line("", "", ""),  # no order id: nothing to take them from
        line("#3", "b@example.com", "2024-03-08 10:00:00 +0100"),
        line("#3", "c@example.com", ""),  # another customer on the same order
        line("#4", "", "2024-03-09 09:00:00 UTC"),  # a guest order: no customer anywhere
    ]
    counts, clean, rejected, excluded = ingest_file(tmp_path, rows, max_reject_share=0.5)
    o = counts["orders"]
    assert o.filled == {"Created at": 2, "Email": 1}

    first = clean[clean["ORDER_ID"] == "#1"]
    assert len(first) == 2 and set(first["CUSTOMER_ID"]) == {"a@example.com"}
    assert set(first["TS"]) == {pd.Timestamp(2024, 3, 7, 13, 9)}
    assert set(clean["ORDER_ID"]) == {"#1", "#3"}
    why = dict(zip(rejected["LINE_NO"], rejected["REASON"], strict=True))
    assert why == {
        4: str(Reason.MISSING),  # '#2': no date on any of its lines
        5: str(Reason.MISSING),  # no order id
        7: str(Reason.DUPLICATE_ORDER),  # '#3' with another customer
    }
    assert excluded["REASON"].tolist() == [str(Excluded.GUEST)]


@pytest.mark.parametrize("stamp", ["2024-03-07 13:09:00  -0500", "2024-03-07 13:09:00 -05:0"])
def test_a_malformed_zone_is_still_an_unparseable_date(tmp_path, stamp):
    rows = [["#1", "a@example.com", "", stamp, "1", "Gift Box", "3.0", ""]] * 1 + [
        ["#2", "a@example.com", "", "2024-03-07 13:09:00 -0500", "1", "Gift Box", "3.0", ""]
    ] * 40
    counts, _, rejected, _ = ingest_file(tmp_path, rows)
    assert counts["orders"].rejected == 1
    assert rejected["REASON"].tolist() == [str(Reason.BAD_DATE)]
