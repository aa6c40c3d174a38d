"""A stop says what to do, and the 01 report can still show why: messages and the failed result."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from realistic_corpus import CASES, write

from conftest import REPO
from customer_analytics import config, ingest
from customer_analytics import warehouse as wh
from customer_analytics.contract import Reason
from customer_analytics.narrative import ingest as story


@pytest.fixture(scope="module")
def gift(tmp_path_factory):
    """The gift retailer's invoices, and a warehouse holding their correct ingest."""
    data = write("gift_invoices", tmp_path_factory.mktemp("gift"), seed=5, customers=150)
    warehouse = tmp_path_factory.mktemp("gift_wh")
    p = params(data, warehouse)
    s = wh.connect(p)
    ingest.run(s, p)
    yield data, warehouse, s
    s.close()
    wh.stop_local_server(warehouse)


def params(data, warehouse, **extra) -> config.Params:
    return config.load(
        REPO,
        data_dir=str(data),
        warehouse_dir=str(warehouse),
        reports_dir=str(warehouse / "r"),
        **{**CASES["gift_invoices"], **extra},
    )


def snapshot(s) -> dict:
    return {
        t: s.table(t).count()
        for t in ("CLEAN_ORDER_LINES", "CLEAN_CUSTOMERS", "EXCLUDED_ORDER_LINES")
    }


def test_a_column_that_does_not_fit_its_layout_stops_with_the_layout_values_and_fitting_advice(
    gift,
):
    """Issue 12, case 1: all dates rejected; the stop named no layout nor value and advised raising
    the
    threshold at 100%."""
    data, warehouse, s = gift
    before = snapshot(s)
    with pytest.raises(ingest.IngestError) as err:
        ingest.run(s, params(data, warehouse, date_formats={"orders": {"ts": "iso"}}))
    msg = str(err.value)
    assert "order lines rejected (100.0%)" in msg
    assert (
        "'unparseable date' in 'InvoiceDate'" in msg
        and "expected the declared layout iso (ISO 8601" in msg
    )
    assert re.search(
        r"values '12/\d+/2010 \d+:\d\d'", msg
    )  # offending values of a non-personal field
    assert (
        "mapping or layout problem" in msg and "correct date_formats.orders.ts, or remove it" in msg
    )
    assert "or raise max_reject_share" not in msg and "\n" not in msg
    assert snapshot(s) == before


def test_below_half_rejected_the_advice_may_be_to_accept_them(gift, tmp_path):
    data, warehouse, s = gift
    df = pd.read_csv(data / "online_retail.csv", dtype=str, keep_default_na=False)
    df.loc[df.index % 10 == 3, "UnitPrice"] = "1,25"  # a decimal comma on 10% of the lines
    bad = tmp_path / "bad"
    bad.mkdir()
    df.to_csv(bad / "online_retail.csv", index=False)
    with pytest.raises(ingest.IngestError) as err:
        ingest.run(s, params(bad, warehouse))
    msg = str(err.value)
    assert "'not a number' in 'UnitPrice'" in msg and "values '1,25'" in msg
    assert (
        "rule: not a plain decimal number" in msg
        and "or raise max_reject_share if these rejections are" in msg
    )


def test_run_can_return_a_failed_result_for_the_report_before_raising(gift):
    data, warehouse, s = gift
    before = snapshot(s)
    result = ingest.run(
        s, params(data, warehouse, date_formats={"orders": {"ts": "eu"}}), on_error="return"
    )
    assert not result.ok and result.source == "orders" and snapshot(s) == before
    (orders,) = [c for c in result if c.source == "orders"]
    assert (
        orders.rejected > 0 and orders.read == orders.accepted + orders.rejected + orders.excluded
    )
    assert str(data) in result.message and str(data) not in result.public  # reports show no path
    reasons = ingest.reasons_frame(result)
    assert reasons.loc[("orders", "InvoiceDate", Reason.BAD_DATE), "rows"] == orders.rejected
    assert "'12/13/2010" in reasons.loc[("orders", "InvoiceDate", Reason.BAD_DATE), "examples"]
    assert story.summary(result).startswith("**The ingest stopped; no table was replaced**")
    assert story.status_note(result).startswith("**The ingest stopped.** online_retail.csv: ")
    assert "Not shown: the ingest stopped" in story.orders_notes(s, result)
    with pytest.raises(ingest.IngestError, match="expected the declared layout eu"):
        result.raise_if_failed()


def test_a_plan_failure_is_returned_too_and_names_no_path(gift, tmp_path):
    _, warehouse, s = gift
    result = ingest.run(s, params(tmp_path / "nowhere", warehouse), on_error="return")
    assert not result.ok and list(result) == [] and "data_dir does not exist" in result.public
    assert str(tmp_path) not in result.public
    assert ingest.counts_frame(result).empty and ingest.reasons_frame(result).empty
    assert story.summary(result).startswith("**The ingest stopped; no table was replaced**")
    frame = ingest.sources_frame(params(tmp_path / "nowhere", warehouse))
    assert frame.loc["orders", "status"].startswith("unusable: data_dir does not exist")


def test_a_successful_run_returns_an_ok_result(gift):
    data, warehouse, s = gift
    result = ingest.run(s, params(data, warehouse), on_error="return")
    assert result.ok and story.status_note(result) == "" and len(result) == 4
    result.raise_if_failed()


def test_every_line_a_guest_is_a_stop_not_an_empty_success(gift, tmp_path):
    data, warehouse, s = gift
    with pytest.raises(
        ingest.IngestError, match=r"no order line was accepted \(.*guest order.*\)\..*guest_ids"
    ):
        ingest.run(
            s,
            params(
                data,
                warehouse,
                columns={
                    "orders": {
                        **CASES["gift_invoices"]["columns"]["orders"],
                        "customer_id": "Country",
                    }
                },
                guest_ids=[
                    "united kingdom",
                    "germany",
                    "france",
                    "eire",
                    "spain",
                    "netherlands",
                    "unspecified",
                ],
            ),
        )
