"""Features and labels: the warehouse's numbers against an independent pandas computation."""

import datetime as dt

import numpy as np
import pytest

from conftest import CUTOFF
from customer_analytics import features as ft
from customer_analytics import reference


@pytest.fixture(scope="module")
def products(session):
    return ft.product_types(session)


@pytest.fixture(scope="module")
def ref_tables(raw_dir):
    return (reference.customers(raw_dir / "customers.csv"), reference.order_lines(raw_dir / "orders.jsonl"),
            reference.reviews(raw_dir / "reviews.jsonl"))


@pytest.mark.parametrize("cutoff", [CUTOFF, dt.date(2026, 9, 2)])
def test_features_match_the_pandas_reference(session, products, ref_tables, params, cutoff):
    got = ft.features_at(session, cutoff, params.horizon_days, products).to_pandas()
    want = reference.features_at(*ref_tables, cutoff, params.horizon_days, products)
    got, want = got.set_index("CUSTOMER_ID").sort_index(), want.set_index("CUSTOMER_ID").sort_index()
    assert list(got.index) == list(want.index) and len(got) > 100
    for col in ft.BASE_NUMERIC + ft.label_columns(products) + [ft.product_column("QTY", p) for p in products]:
        np.testing.assert_allclose(got[col].astype(float), want[col].astype(float), rtol=1e-9, atol=1e-9,
                                   equal_nan=True, err_msg=col)
    for col in ft.CATEGORICAL:
        assert (got[col] == want[col]).all(), col


def test_labels_are_not_all_zero_and_features_use_the_past_only(session, products, params):
    df = ft.features_at(session, CUTOFF, params.horizon_days, products).to_pandas()
    assert (df[ft.LABEL_SPEND] > 0).mean() > 0.1
    assert (df["TENURE_DAYS"] > 0).all()
    assert (df["RECENCY_DAYS"] >= 0).all()
