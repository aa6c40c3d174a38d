"""Retention, churn and repeat purchase (issue 20): warehouse numbers against an independent pandas
computation."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

import reference
from conftest import make_params
from customer_analytics import eda, ingest, plots
from customer_analytics import warehouse as wh
from customer_analytics.narrative import eda as story

AS_OF = dt.date(2026, 11, 1)


def clean(session) -> tuple[pd.DataFrame, pd.DataFrame]:
    return session.table("CLEAN_CUSTOMERS").to_pandas(), session.table("CLEAN_ORDERS").to_pandas()


def test_cohorts_equal_an_independent_pandas_computation(session):
    cust, orders = clean(session)
    got = eda.cohort_frame(session, AS_OF)
    expected = reference.cohorts(cust, orders, AS_OF, eda.MAX_MONTHS)
    assert len(got) > 100
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), expected, check_dtype=False, rtol=1e-9
    )
    matrix = eda.retention_matrix(got, AS_OF)
    assert matrix.shape[0] == got["cohort"].nunique() and np.nanmax(matrix.to_numpy()) <= 1
    # month 0 of the last complete cohort is observed, month 1 is not
    assert np.isfinite(matrix.iloc[-1, 0]) and np.isnan(matrix.iloc[-1, 1])
    revenue = eda.revenue_matrix(got, AS_OF)
    row = got[got["cohort"] == got["cohort"].min()]
    assert revenue.iloc[0, int(row["offset"].max())] == pytest.approx(
        row["revenue"].sum() / row["customers"].iloc[0]
    )
    fig = plots.cohort_heatmap(matrix)
    assert fig._repr_png_()[:4] == b"\x89PNG"


def test_churn_and_repeat_purchase_equal_pandas(session):
    cust, orders = clean(session)
    churn = eda.churn_rates(session, AS_OF)
    assert len(churn) >= 12 and churn["churn rate"].between(0, 1).all()
    assert max(churn.index) + dt.timedelta(days=eda.CHURN_DAYS) <= AS_OF
    expected = reference.churn_rates(orders, list(churn.index), eda.CHURN_DAYS)
    pd.testing.assert_frame_equal(churn, expected, check_dtype=False, check_names=False)
    repeat = eda.repeat_purchase(session, AS_OF)
    ref = reference.repeat_purchase(cust, orders, AS_OF)
    assert list(repeat.index) == list(ref.index)
    np.testing.assert_array_equal(
        repeat[["customers", "buyers", "repeat buyers"]].to_numpy(),
        ref[["customers", "buyers", "repeat"]].to_numpy(),
    )
    text = story.retention_summary(
        eda.retention_matrix(eda.cohort_frame(session, AS_OF), AS_OF), churn, repeat
    )
    assert "churns" in text and "%" in text


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Four customers by hand: a return, a customer who never buys, orders in the run date's own
    month."""
    raw = tmp_path_factory.mktemp("retention_raw")
    (raw / "customers.csv").write_text(
        "customer_id,name,email,signup_date,country,acquisition_channel,birth_year\n"
        "A,x,x@example.com,2026-01-10,DE,organic,1980\n"
        "B,x,x@example.com,2026-01-20,DE,organic,1980\n"
        "C,x,x@example.com,2026-01-25,DE,organic,1980\n"
        "D,x,x@example.com,2026-02-03,DE,organic,1980\n",
        encoding="utf-8",
    )
    orders = [
        ("A", "2026-01-11", 2),
        ("A", "2026-02-15", 1),
        ("A", "2026-03-02", -1),
        ("B", "2026-01-21", 1),
        ("B", "2026-03-05", 3),
        ("D", "2026-02-04", 1),
        ("D", "2026-04-10", 1),
        ("A", "2026-04-20", 1),
    ]
    with (raw / "orders.jsonl").open("w", encoding="utf-8") as f:
        for k, (c, ts, q) in enumerate(orders):
            f.write(
                json.dumps(
                    {
                        "order_id": f"O{k}",
                        "customer_id": c,
                        "ts": ts,
                        "items": [{"product": "cookie", "quantity": q, "unit_price": 10.0}],
                    }
                )
                + "\n"
            )
    p = make_params(
        raw,
        tmp_path_factory.mktemp("retention_wh"),
        reviews_file=None,
        calls_dir=None,
        max_reject_share=1.0,
    )
    s = wh.connect(p)
    ingest.run(s, p)
    yield s
    s.close()
    wh.stop_local_server(p.warehouse_dir)


def test_retention_by_hand_on_four_customers(tiny):
    as_of = dt.date(2026, 4, 15)  # April is partial: left out
    frame = eda.cohort_frame(tiny, as_of)
    matrix = eda.retention_matrix(frame, as_of)
    jan, feb = dt.date(2026, 1, 1), dt.date(2026, 2, 1)
    # January: A, B, C. Month 0: A and B bought; month 1: A; month 2: B bought, A only returned
    assert list(matrix.loc[jan].iloc[:3]) == pytest.approx([2 / 3, 1 / 3, 1 / 3])
    assert matrix.shape[1] == 3  # April is not observed yet: no column for it
    assert list(matrix.loc[feb].iloc[:2]) == pytest.approx([1.0, 0.0]) and np.isnan(
        matrix.loc[feb].iloc[2]
    )
    revenue = eda.revenue_matrix(frame, as_of)  # net: A's return of 10 in March is subtracted
    assert list(revenue.loc[jan].iloc[:3]) == pytest.approx([30 / 3, 40 / 3, (40 - 10 + 30) / 3])
    cust, orders = clean(tiny)
    pd.testing.assert_frame_equal(
        frame.reset_index(drop=True),
        reference.cohorts(cust, orders, as_of, eda.MAX_MONTHS),
        check_dtype=False,
    )
    repeat = eda.repeat_purchase(tiny, as_of)
    # A (its March line is a return), B and D bought twice before as_of; C never bought
    assert repeat.loc["all", "buyers"] == 3 and repeat.loc["all", "repeat buyers"] == 3
