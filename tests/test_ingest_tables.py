"""Sources already in the warehouse (issue 14, point 8): a table or view checked by the same
contract, with the
same accounting and rejection tables as a file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import snowflake.snowpark.functions as F
from realistic_corpus import CASES, write
from test_ingest_realistic import gift_frame

from conftest import REPO
from customer_analytics import config, ingest
from customer_analytics import warehouse as wh
from customer_analytics.contract import Reason

GIFT = CASES["gift_invoices"]


def table_params(warehouse, data_dir, **extra) -> config.Params:
    settings = {k: v for k, v in GIFT.items() if k != "orders_file"}
    return config.load(
        REPO,
        data_dir=str(data_dir),
        warehouse_dir=str(warehouse),
        reports_dir=str(warehouse / "r"),
        **{**settings, "orders_table": "SHOP_EXPORT", **extra},
    )


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """The gift retailer's lines loaded by 'their ELT' into a table (numbers typed, dates as text,
    two rows
    broken), then ingested from it; the data folder holds no file at all."""
    files = write("gift_invoices", tmp_path_factory.mktemp("gift"), seed=9, customers=150)
    df = pd.read_csv(
        files / "online_retail.csv",
        dtype={"CustomerID": str, "InvoiceNo": str},
        keep_default_na=False,
    )
    df.loc[3, "InvoiceDate"] = "not a date"
    df.loc[7, "UnitPrice"] = -1.0
    warehouse = tmp_path_factory.mktemp("wh")
    empty = tmp_path_factory.mktemp("no_files")
    p = table_params(warehouse, empty)
    s = wh.connect(p)
    wh.write_pandas(s, df, "SHOP_EXPORT", warehouse / "staging")
    counts = {c.source: c for c in ingest.run(s, p)}
    yield s, p, df, files, counts
    s.close()
    wh.stop_local_server(warehouse)


def test_a_table_is_checked_and_accounted_like_a_file(loaded):
    s, _, df, _, counts = loaded
    o = counts["orders"]
    assert o.status == "loaded" and o.file == "SHOP_EXPORT" and o.records == len(df)
    assert o.read == o.accepted + o.rejected + o.excluded == len(df)
    assert o.reasons == {Reason.BAD_DATE: 1, Reason.NEGATIVE: 1}
    rej = s.table("REJECTED_ORDER_LINES").to_pandas()
    # FIELD names the column as the table spells it (write_pandas upper-cased them)
    assert set(rej["SOURCE_FILE"]) == {"SHOP_EXPORT"} and set(rej["FIELD"]) == {
        "INVOICEDATE",
        "UNITPRICE",
    }
    assert rej["RECORD"].str.startswith("{").all()  # the row as read, as JSON
    assert wh.row_count(s, "RAW_ORDERS") == len(df)
    assert counts["customers"].status == "derived" and o.layouts[0]["name"] == "us"


def test_net_spend_from_the_table_equals_the_file_computed_in_pandas(loaded):
    s, _, _, files, _ = loaded
    df = gift_frame(files)
    df = df.drop(index=[3, 7])
    want = df[~df["guest"]].groupby("CustomerID")["amount"].sum().sort_index()
    got = (
        s.table("CLEAN_ORDERS")
        .group_by("CUSTOMER_ID")
        .agg(F.sum("ORDER_TOTAL").alias("NET"))
        .to_pandas()
    )
    got = got.set_index("CUSTOMER_ID")["NET"].sort_index()
    assert list(got.index) == list(want.index)
    np.testing.assert_allclose(got.values, want.values, rtol=1e-9)


def test_the_same_table_gives_the_same_tables_again(loaded):
    s, p, _, _, _ = loaded
    before = s.table("CLEAN_ORDER_LINES").sort("LINE_NO", "ITEM_NO").to_pandas()
    ingest.run(s, p)
    pd.testing.assert_frame_equal(
        s.table("CLEAN_ORDER_LINES").sort("LINE_NO", "ITEM_NO").to_pandas(), before
    )


def test_a_table_without_a_required_column_stops_naming_its_columns(loaded, tmp_path):
    s, p, df, _, _ = loaded
    wh.write_pandas(s, df.drop(columns=["Quantity"]), "SHOP_BROKEN", tmp_path)
    with pytest.raises(
        ingest.IngestError,
        match=r"orders_table = SHOP_BROKEN: required column 'Quantity' not "
        r"found\. Columns: 'INVOICENO', .*columns: \{orders: \{quantity: <your column>\}\}",
    ):
        ingest.run(s, table_params(p.warehouse_dir, p.data_dir, orders_table="SHOP_BROKEN"))
    with pytest.raises(
        ingest.IngestError, match=r"orders_table = NO_SUCH_TABLE: the table or view cannot be read"
    ):
        ingest.run(s, table_params(p.warehouse_dir, p.data_dir, orders_table="NO_SUCH_TABLE"))


@pytest.mark.parametrize(
    "over,message",
    [
        ({"orders_table": "RAW.SHOP.ORDERS; DROP TABLE X"}, "must be a table or view name"),
        ({"orders_table": "A.B.C.D"}, "must be a table or view name"),
        ({"orders_table": "RAW.SHOP.ORDERS", "orders_file": "export.csv"}, "both set"),
    ],
)
def test_table_settings_are_validated(over, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load(REPO, **over)


def test_a_stage_path_is_refused_locally_with_the_alternatives(tmp_path):
    p = config.load(REPO, data_dir=str(tmp_path), orders_file="@MY_STAGE/exports/orders.csv")
    with pytest.raises(ingest.IngestError, match=r"exist only on Snowflake.*orders_table"):
        ingest.plan_sources(p)
    assert config.load(REPO, orders_table="raw.shop.orders").orders_table == "RAW.SHOP.ORDERS"


def test_a_reviews_table_that_names_the_order_takes_its_customer(loaded, tmp_path):
    """A reviews table without customer_id, its order column mapped (`order_id: INVOICE_REF`):
    each review takes its order's customer; an invoice not among the accepted lines is unknown."""
    s, p, df, _, _ = loaded
    lines = s.table("CLEAN_ORDER_LINES").select("ORDER_ID", "CUSTOMER_ID").distinct().to_pandas()
    lines = lines.sort_values("ORDER_ID").head(20)
    reviews = pd.DataFrame(
        {
            "INVOICE_REF": [*lines["ORDER_ID"], "999999"],
            "WHEN": "2011-12-01",
            "STARS": [str(1 + k % 5) for k in range(len(lines) + 1)],
        }
    )
    wh.write_pandas(s, reviews, "SHOP_REVIEWS", tmp_path)
    p2 = table_params(
        p.warehouse_dir,
        p.data_dir,
        reviews_table="SHOP_REVIEWS",
        max_reject_share=0.1,
        columns={
            **GIFT["columns"],
            "reviews": {"order_id": "INVOICE_REF", "ts": "WHEN", "rating": "STARS"},
        },
    )
    counts = {c.source: c for c in ingest.run(s, p2)}
    r = counts["reviews"]
    assert r.by_order and (r.accepted, r.rejected) == (len(lines), 1)
    assert r.reasons == {str(Reason.UNKNOWN_ORDER): 1}
    got = s.table("CLEAN_REVIEWS").select("CUSTOMER_ID").to_pandas()["CUSTOMER_ID"]
    assert sorted(got) == sorted(lines["CUSTOMER_ID"])
