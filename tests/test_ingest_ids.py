"""Ids written as whole numbers with a decimal point (``13085.0``: pandas and spreadsheets write the
integer ids of a column with gaps so) are those numbers, in every source and format, so an orders
export written by pandas matches a customer list written by the shop system.

Before: the orders' ``13085.0`` did not match the customers' ``13085``, every line was rejected as
an unknown customer and the run stopped.
"""

from __future__ import annotations

import json

import pandas as pd

from conftest import ingest_and_read, make_params
from customer_analytics.contract import Reason


def _run(tmp_path, orders_file: str, orders: str, customers: str):
    data = tmp_path / "data"
    data.mkdir()
    (data / orders_file).write_text(orders)
    (data / "customers.csv").write_text(customers)
    p = make_params(
        data,
        tmp_path / "wh",
        orders_file=orders_file,
        customers_file="customers.csv",
        reviews_file="",
        calls_dir="",
        max_reject_share=0.5,
        **(
            {"columns": {"orders": {"quantity": "qty", "amount": "total"}}}
            if orders_file.endswith(".csv")
            else {}
        ),
    )
    return ingest_and_read(p, "CLEAN_ORDER_LINES", "REJECTED_ORDER_LINES", "CLEAN_CUSTOMERS")


CUSTOMERS = (
    "customer_id,signup_date,country,acquisition_channel,birth_year\n"
    "13085,2024-01-02,DE,web,1980\n"
    "13086.0,2024-01-03,DE,web,1981\n"  # a customer list written by pandas too
    "A7.0,2024-01-04,DE,web,1982\n"  # not a number: kept as written
)


def test_float_written_ids_in_a_csv_match_the_customer_list(tmp_path):
    orders = (
        "order_id,customer_id,ts,product,qty,total\n"
        "536365.0,13085.0,2024-03-07 10:00,Gift Box,1,3.0\n"
        "536366,13086,2024-03-08 10:00,Gift Box,2,6.0\n"
        "536367,13086.00,2024-03-09 10:00,Gift Box,1,3.0\n"
        "536368,A7.0,2024-03-10 10:00,Gift Box,1,3.0\n"
        "536369,13085.5,2024-03-11 10:00,Gift Box,1,3.0\n"  # not a whole number: another id
    )
    counts, clean, rejected, customers = _run(tmp_path, "orders.csv", orders, CUSTOMERS)
    assert sorted(customers["CUSTOMER_ID"]) == ["13085", "13086", "A7.0"]
    assert clean.sort_values("LINE_NO")["CUSTOMER_ID"].tolist() == [
        "13085",
        "13086",
        "13086",
        "A7.0",
    ]
    assert sorted(clean["ORDER_ID"]) == ["536365", "536366", "536367", "536368"]
    assert rejected["LINE_NO"].tolist() == [6]
    assert rejected["REASON"].tolist() == [str(Reason.UNKNOWN_CUSTOMER)]
    assert counts["orders"].accepted == 4


def test_float_ids_in_json_lines_are_the_whole_numbers(tmp_path):
    lines = [
        {"order_id": 9.0, "customer_id": 13085.0, "ts": "2024-03-07T10:00:00", "items": []},
        {"order_id": "10", "customer_id": "13086.0", "ts": "2024-03-08T10:00:00", "items": []},
    ]
    item = {"product": "gift_box", "quantity": 1, "unit_price": 3.0}
    orders = "".join(json.dumps({**o, "items": [item]}) + "\n" for o in lines)
    _, clean, rejected, _ = _run(tmp_path, "orders.jsonl", orders, CUSTOMERS)
    assert rejected.empty
    got = clean.sort_values("LINE_NO")[["ORDER_ID", "CUSTOMER_ID"]]
    assert got.to_dict("list") == {"ORDER_ID": ["9", "10"], "CUSTOMER_ID": ["13085", "13086"]}
    assert pd.api.types.is_string_dtype(clean["CUSTOMER_ID"])
