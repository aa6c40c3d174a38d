"""Marketplace exports shaped like Olist's public data set.

Order items without a quantity: one row per unit sold (Olist's order items joined to their
orders, marketplace and event exports). Before, "required column 'quantity' not found" stopped the
run and no setting could read them; now every line is one unit and the 01 summary says so, unless
the file holds a quantity under a name the mapping did not give (then the run still stops: reading
one unit per line would silently lose it).

Reviews that name the order, not the customer (Olist's order reviews): before, "required column
'customer_id' not found"; now each review takes its order's customer.
"""

from __future__ import annotations

import csv
import json

import pytest

from conftest import ingest_and_read, make_params
from customer_analytics import ingest, pushdown, sqlcheck
from customer_analytics.contract import Excluded, Reason
from customer_analytics.narrative import ingest as story

#: Olist's order items joined to their orders and products (the public data set's column names).
COLUMNS = [
    "order_id",
    "order_item_id",
    "product_id",
    "price",
    "freight_value",
    "customer_unique_id",
    "order_purchase_timestamp",
    "order_status",
    "product_category_name",
]
MAPPING = {
    "orders": {
        "line_id": "order_item_id",
        "customer_id": "customer_unique_id",
        "ts": "order_purchase_timestamp",
        "product": "product_category_name",
        "unit_price": "price",
        "cancelled": "order_status",
    }
}


def items(n_orders: int = 40) -> list[list[str]]:
    """Order items: an order of k units of one product is k rows (item ids 1..k); some orders are
    cancelled (Olist's ``canceled``)."""
    rows = []
    for o in range(n_orders):
        status = "canceled" if o % 10 == 3 else "delivered"
        units = 1 + o % 3
        for i in range(units):
            rows.append(
                [
                    f"ord{o:04d}",
                    str(i + 1),
                    f"p{o % 5}",
                    f"{10 + o % 7}.90",
                    "8.72",
                    f"cust{o % 12:03d}",
                    f"2018-0{1 + o % 9}-{10 + o % 18} 1{o % 10}:2{o % 6}:33",
                    status,
                    ["perfumaria", "cama_mesa_banho", "esporte_lazer"][o % 3],
                ]
            )
    return rows


def write_csv(path, header, rows) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def params(tmp_path, name: str, columns=MAPPING, **over):
    files = {"customers_file": "", "reviews_file": "", "calls_dir": ""}
    return make_params(
        tmp_path / "data",
        tmp_path / "wh",
        **{**files, "orders_file": name, "columns": columns, **over},
    )


def test_a_row_per_unit_export_reads_every_line_as_one_unit(tmp_path):
    (tmp_path / "data").mkdir()
    rows = items()
    # the item ids count 1, 2, … again in every order: only a repeat within an order (an export
    # appended twice) is a duplicate line
    write_csv(tmp_path / "data" / "order_items.csv", COLUMNS, rows + rows[1:3])
    p = params(tmp_path, "order_items.csv", returns="exclude")
    counts, clean, excluded, rejected = ingest_and_read(
        p, "CLEAN_ORDER_LINES", "EXCLUDED_ORDER_LINES", "REJECTED_ORDER_LINES"
    )
    o = counts["orders"]
    cancelled = [r for r in rows if r[7] == "canceled"]
    assert o.one_unit and o.rejected == 2
    assert sorted(rejected["LINE_NO"]) == [len(rows) + 2, len(rows) + 3]
    assert set(rejected["REASON"]) == {str(Reason.DUPLICATE_LINE)}
    assert (o.accepted, o.excluded) == (len(rows) - len(cancelled), len(cancelled))
    assert set(clean["QUANTITY"]) == {1}
    kept = [r for r in rows if r[7] != "canceled"]
    assert clean["UNIT_PRICE"].sum() == pytest.approx(sum(float(r[3]) for r in kept))
    # units per order: the rows of that order
    per_order = clean.groupby("ORDER_ID")["QUANTITY"].sum().to_dict()
    assert per_order == {o_: sum(1 for r in kept if r[0] == o_) for o_ in {r[0] for r in kept}}
    assert set(excluded["REASON"]) == {str(Excluded.RETURN)}
    text = story.summary(list(counts.values()))
    assert "order_items.csv has no quantity: every line is read as one unit" in text


def test_json_items_without_a_quantity_are_one_unit_each(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with (data / "orders.jsonl").open("w") as f:
        for o in range(30):
            line = {
                "order_id": f"o{o}",
                "customer_id": f"c{o % 7}",
                "ts": f"2024-03-{1 + o % 28:02d}T10:00:00",
                "items": [{"product": "tea", "unit_price": 2.5}] * (1 + o % 2),
            }
            f.write(json.dumps(line) + "\n")
    with (data / "reviews.jsonl").open("w") as f:  # reviews that name the order (JSON lines)
        for o in range(0, 30, 3):
            f.write(json.dumps({"order_id": f"o{o}", "ts": "2024-04-01", "rating": 4}) + "\n")
    p = params(tmp_path, "orders.jsonl", columns={}, reviews_file="reviews.jsonl")
    counts, clean, reviews = ingest_and_read(p, "CLEAN_ORDER_LINES", "CLEAN_REVIEWS")
    assert counts["orders"].one_unit and counts["orders"].rejected == 0
    assert len(clean) == sum(1 + o % 2 for o in range(30)) and set(clean["QUANTITY"]) == {1}
    assert counts["reviews"].by_order and counts["reviews"].rejected == 0
    assert list(reviews.sort_values("LINE_NO")["CUSTOMER_ID"]) == [
        f"c{o % 7}" for o in range(0, 30, 3)
    ]


def test_a_file_with_a_quantity_is_not_one_unit(tmp_path):
    """The demo's orders have quantities: nothing changes for them, and the summary says nothing."""
    data = tmp_path / "data"
    data.mkdir()
    write_csv(
        data / "o.csv",
        ["customer_id", "ts", "quantity", "amount"],
        [["c1", "2024-01-02", "3", "9"]] * 3,
    )
    counts, clean = ingest_and_read(params(tmp_path, "o.csv", columns={}), "CLEAN_ORDER_LINES")
    assert not counts["orders"].one_unit and set(clean["QUANTITY"]) == {3}
    assert "one unit" not in story.summary(list(counts.values()))


@pytest.mark.parametrize(
    "header, mapping, message",
    [
        (  # a quantity under another name, not mapped: one unit per line would lose it
            ["customer_id", "ts", "Qty", "amount"],
            {},
            r"o\.csv: no column 'quantity', but column 'Qty' looks like one.*"
            r"columns: \{orders: \{quantity: Qty\}\}",
        ),
        (
            ["customer_id", "ts", "Menge (Stück)", "amount"],
            {},
            r"column 'Menge \(Stück\)' looks like one",
        ),
        (  # mapped to a column the file lacks: a typo, not a file without quantities
            ["customer_id", "ts", "amount"],
            {"orders": {"quantity": "units_ordered"}},
            r"o\.csv: required column 'units_ordered' \(contract field 'quantity'\) not found"
            r".*Columns in the file: 'customer_id', 'ts', 'amount'",
        ),
    ],
)
def test_a_quantity_the_file_may_hold_stops_the_run(tmp_path, header, mapping, message):
    data = tmp_path / "data"
    data.mkdir()
    write_csv(data / "o.csv", header, [["c1", "2024-01-02", "3", "9"][: len(header)]] * 3)
    p = params(tmp_path, "o.csv", columns=mapping)
    with pytest.raises(ingest.IngestError, match=message):
        ingest_and_read(p)


def test_a_json_quantity_mapped_to_a_key_no_item_has_stops_the_run(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    line = {"order_id": "o1", "customer_id": "c1", "ts": "2024-01-02", "items": [{"amount": 3}]}
    (data / "orders.jsonl").write_text(json.dumps(line) + "\n")
    p = params(tmp_path, "orders.jsonl", columns={"orders": {"quantity": "qty"}})
    with pytest.raises(ingest.IngestError, match=r"no line has the key 'qty' \(contract field"):
        ingest_and_read(p)


REVIEW_COLUMNS = [
    "review_id",
    "order_id",
    "review_score",
    "review_comment_title",
    "review_comment_message",
    "review_creation_date",
    "review_answer_timestamp",
]


def test_reviews_that_name_the_order_take_its_customer(tmp_path, monkeypatch):
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv(pushdown.AUDIT_VAR, str(audit))  # the server records every statement
    data = tmp_path / "data"
    data.mkdir()
    rows = items()
    write_csv(data / "order_items.csv", COLUMNS, rows)
    customer = {r[0]: r[5] for r in rows if r[7] != "canceled"}
    reviews = [
        [f"r{k}", o, str(1 + k % 5), "", "Recebi bem antes\ndo prazo." if k % 2 else "", "2018-10-0"
         f"{1 + k % 9} 00:00:00", "2018-10-12 18:40:00"]
        for k, o in enumerate(sorted(customer))
    ]  # fmt: skip
    cancelled = next(r[0] for r in rows if r[7] == "canceled")
    reviews += [
        ["r-unknown", "ord9999", "5", "", "", "2018-10-03 00:00:00", ""],
        ["r-cancelled", cancelled, "1", "", "nunca chegou", "2018-10-03 00:00:00", ""],
        ["r-empty", "", "4", "", "", "2018-10-03 00:00:00", ""],
    ]
    write_csv(data / "order_reviews.csv", REVIEW_COLUMNS, reviews)
    p = params(
        tmp_path,
        "order_items.csv",
        returns="exclude",
        reviews_file="order_reviews.csv",
        columns={
            **MAPPING,
            "reviews": {
                "rating": "review_score",
                "text": "review_comment_message",
                "ts": "review_creation_date",
            },
        },
        max_reject_share=0.2,
    )
    counts, clean, rejected = ingest_and_read(p, "CLEAN_REVIEWS", "REJECTED_REVIEWS")
    r = counts["reviews"]
    assert r.by_order and (r.read, r.accepted, r.rejected) == (len(reviews), len(customer), 3)
    # a review's line: where its record starts (the header is line 1; a quoted line break in a
    # message is a line of the file)
    starts = [2]
    for row in reviews:
        starts.append(starts[-1] + 1 + "".join(row).count("\n"))
    assert dict(zip(clean["LINE_NO"], clean["CUSTOMER_ID"], strict=True)) == {
        starts[k]: customer[o] for k, o in enumerate(sorted(customer))
    }
    n = len(customer)
    assert dict(zip(rejected["LINE_NO"], rejected["REASON"], strict=True)) == {
        starts[n]: str(Reason.UNKNOWN_ORDER),  # no such order
        starts[n + 1]: str(Reason.UNKNOWN_ORDER),  # cancelled, excluded: not an accepted order
        starts[n + 2]: str(Reason.MISSING),
    }
    assert set(rejected["FIELD"]) == {"order_id"}
    statements = sqlcheck.audit_statements(audit)  # the order join and the per-unit lines
    assert any('"_CUSTOMER"' in q for q in statements) and sqlcheck.check(statements) == []
    assert "order_reviews.csv has no customer_id: each review was given the customer of its " in (
        story.summary(list(counts.values()))
    )


def test_reviews_with_neither_customer_nor_order_stop_the_run(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_csv(data / "order_items.csv", COLUMNS, items())
    write_csv(data / "r.csv", ["review_id", "review_score", "ts"], [["r1", "5", "2018-01-02"]])
    p = params(
        tmp_path,
        "order_items.csv",
        reviews_file="r.csv",
        columns={**MAPPING, "reviews": {"rating": "review_score"}},
    )
    with pytest.raises(
        ingest.IngestError, match=r"r\.csv: required column 'customer_id' not found"
    ):
        ingest_and_read(p)
