"""Features and labels: the warehouse's numbers against an independent pandas computation, and no
leakage."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import snowflake.snowpark.functions as F

import reference
from conftest import CUTOFF, make_params
from customer_analytics import features as ft
from customer_analytics import ingest, text
from customer_analytics import warehouse as wh
from customer_analytics.narrative import features as story


@pytest.fixture(scope="module")
def products(session):
    return ft.product_types(session)


@pytest.fixture(scope="module")
def text_model(session, params):
    model, _ = text.build(
        session,
        params.cutoffs()[0],
        params.seed,
        params.text_max_rows,
        params.warehouse_dir / "staging",
    )
    assert model.available, model.reason
    return model


@pytest.fixture(scope="module")
def ref_tables(raw_dir):
    return (
        reference.customers(raw_dir / "customers.csv"),
        reference.order_lines(raw_dir / "orders.jsonl"),
        reference.reviews(raw_dir / "reviews.jsonl"),
    )


def assert_same_features(got: pd.DataFrame, want: pd.DataFrame, columns: list[str]) -> None:
    got, want = (
        got.set_index("CUSTOMER_ID").sort_index(),
        want.set_index("CUSTOMER_ID").sort_index(),
    )
    assert list(got.index) == list(want.index)
    for col in columns:
        if col in ft.CATEGORICAL:
            assert (got[col] == want[col]).all(), col
        else:
            np.testing.assert_allclose(
                got[col].astype(float),
                want[col].astype(float),
                rtol=1e-9,
                atol=1e-9,
                equal_nan=True,
                err_msg=col,
            )


@pytest.mark.parametrize("cutoff", [CUTOFF, dt.date(2025, 9, 7), dt.date(2026, 11, 1)])
def test_every_feature_and_label_matches_the_pandas_reference(
    session, products, ref_tables, text_model, params, cutoff
):
    got = ft.features_at(session, cutoff, params.horizon_days, products, sentiment=True).to_pandas()
    scores = reference.text_scores(ref_tables[2], text_model.pipeline)
    want = reference.features_at(*ref_tables, cutoff, params.horizon_days, products, scores)
    columns = ft.feature_columns(products, sentiment=True) + ft.label_columns(products)
    assert set(got.columns) == set(columns) | {"CUSTOMER_ID", "CUTOFF"} and len(got) > 100
    assert_same_features(got, want, columns)
    assert got[ft.SENTIMENT[0]].notna().sum() > 10 and got["STD_GAP_DAYS"].notna().sum() > 10


def test_without_a_sentiment_model_there_are_no_sentiment_columns(session, products, params):
    got = ft.features_at(session, CUTOFF, params.horizon_days, products, sentiment=False)
    assert not set(ft.SENTIMENT) & set(got.columns)
    assert ft.model_columns(got.columns)[0] == ft.feature_columns(products, sentiment=False)


def test_locally_inferred_schema_is_the_one_the_warehouse_describes(
    session, products, text_model, params
):
    """Sessions infer a DataFrame's columns from its plan (``warehouse._tuned``) instead of asking
    the warehouse; for the feature query (joins, windows, casts, conditionals) the inferred columns
    and types are the ones a describe query returns."""
    assert session.reduce_describe_query_enabled

    def schema(reduce: bool) -> tuple[list[tuple[str, str]], int]:
        session.reduce_describe_query_enabled = reduce
        try:
            with session.query_history(include_describe=True) as history:
                df = ft.features_for(
                    session,
                    [CUTOFF, dt.date(2025, 9, 7)],
                    params.horizon_days,
                    products,
                    sentiment=True,
                    roles={CUTOFF: "train", dt.date(2025, 9, 7): "score"},
                )
                fields = [(f.name, repr(f.datatype)) for f in df.schema.fields]
            return fields, sum(q.is_describe for q in history.queries)
        finally:
            session.reduce_describe_query_enabled = True

    (inferred, asked_inferring), (described, asked) = schema(True), schema(False)
    assert len(described) > 40 and inferred == described
    assert asked_inferring < asked  # fewer round trips: what the setting is for


def test_labels_are_not_all_zero_and_features_use_the_past_only(session, products, params):
    df = ft.features_at(session, CUTOFF, params.horizon_days, products).to_pandas()
    assert (df[ft.LABEL_SPEND] > 0).mean() > 0.1
    assert (df["TENURE_DAYS"] > 0).all()
    assert (df["RECENCY_DAYS"] >= 0).all()
    shares = df[[ft.product_column("SHARE", p) for p in products]].sum(axis=1)
    np.testing.assert_allclose(shares[df["HAS_ORDERED"] == 1], 1.0, atol=1e-6)


def test_build_stacks_every_cutoff_with_its_role_and_matches_the_reference(
    session, products, params, text_model, ref_tables
):
    ft.build(session, params, products, sentiment=True)
    table = wh.to_pandas(session.table(ft.TABLE), "test")
    blocks = table.groupby(["CUTOFF", "ROLE"]).size()
    assert [c for c, _ in blocks.index] == [*params.cutoffs(), params.run_date]
    assert [r for _, r in blocks.index] == ["train"] * params.n_cutoffs + ["holdout", "score"]
    score = table[table["ROLE"] == "score"]
    assert score[ft.label_columns(products)].isna().all().all()
    scores = reference.text_scores(ref_tables[2], text_model.pipeline)
    columns = ft.feature_columns(products, True) + ft.label_columns(products)
    for cutoff in params.cutoffs():
        want = reference.features_at(*ref_tables, cutoff, params.horizon_days, products, scores)
        assert_same_features(table[table["CUTOFF"] == cutoff], want, columns)


def _shift_after(raw: Path, out: Path, cutoff: dt.date) -> None:
    """Copy the raw files, changing every order (and review) dated on or after ``cutoff``."""
    out.mkdir(parents=True)
    (out / "customers.csv").write_bytes((raw / "customers.csv").read_bytes())
    c = cutoff.isoformat()
    rng = np.random.default_rng(3)
    with (raw / "orders.jsonl").open() as f, (out / "orders.jsonl").open("w") as g:
        for k, line in enumerate(f):
            o = json.loads(line)
            if o["ts"] >= c:
                if k % 7 == 0:
                    continue  # deleted
                for item in o["items"]:
                    item["quantity"] = int(item["quantity"]) * 3 + 1
                    item["unit_price"] = round(float(item["unit_price"]) * 1.7, 2)
                    item["product"] = "gift_box" if k % 2 else item["product"]
                o["coupon"] = None if o.get("coupon") else "LATE50"
                o["ts"] = (
                    dt.datetime.fromisoformat(o["ts"])
                    + dt.timedelta(hours=int(rng.integers(0, 500)))
                ).isoformat()
                g.write(json.dumps(o) + "\n")
                o = {**o, "order_id": o["order_id"] + "X"}  # and one more order
            g.write(json.dumps(o) + "\n")
    with (raw / "reviews.jsonl").open() as f, (out / "reviews.jsonl").open("w") as g:
        for line in f:
            r = json.loads(line)
            if r["ts"] >= c:
                r = {**r, "text": "Late and broken, never again.", "rating": 1}
            g.write(json.dumps(r) + "\n")


def test_no_leakage_changing_every_order_after_the_cutoff_changes_only_the_labels(
    raw_dir, tmp_path, session, products, params
):
    cutoff = CUTOFF
    changed = make_params(tmp_path / "raw", tmp_path / "wh")
    _shift_after(raw_dir, changed.data_dir, cutoff)
    s2 = wh.connect(changed)
    try:
        ingest.run(s2, changed)
        frames = []
        for s in (session, s2):
            model = text.train(s, cutoff, params.seed, params.text_max_rows)
            text.score_texts(s, model, params.warehouse_dir / "staging")
            frames.append(
                ft.features_at(s, cutoff, params.horizon_days, products, True).to_pandas()
            )
    finally:
        s2.close()
        wh.stop_local_server(changed.warehouse_dir)
    before, after = (f.set_index("CUSTOMER_ID").sort_index() for f in frames)
    assert before.index.equals(after.index)
    feats = ft.feature_columns(products, sentiment=True)
    pd.testing.assert_frame_equal(before[feats], after[feats], check_exact=False, rtol=0, atol=1e-9)
    labels = ft.label_columns(products)
    moved = (before[labels] != after[labels]).any(axis=1)
    assert moved.mean() > 0.2, (
        "the change after the cut-off did not reach the labels: the test proves nothing"
    )


def test_no_reviews_at_all_gives_features_without_sentiment(session, products, tmp_path, raw_dir):
    """CLEAN_REVIEWS may be empty (no reviews source): no text model, review counts 0, ratings
    missing."""
    p = make_params(raw_dir, tmp_path / "wh")
    p = dataclasses.replace(p, n_cutoffs=2, cv_folds=1)
    s = wh.connect(p)
    try:
        for t in ("CLEAN_CUSTOMERS", "CLEAN_ORDERS", "CLEAN_ORDER_LINES"):
            wh.write_pandas(s, wh.to_pandas(session.table(t), "test"), t, tmp_path)
        empty = pd.DataFrame(
            {
                "CUSTOMER_ID": pd.Series(dtype="string"),
                "TS": pd.Series(dtype="datetime64[us]"),
                "RATING": pd.Series(dtype="float64"),
                "TEXT": pd.Series(dtype="string"),
                "LINE_NO": pd.Series(dtype="int64"),
            }
        )
        wh.write_pandas(s, empty, "CLEAN_REVIEWS", tmp_path)
        model, quality = text.build(s, p.cutoffs()[0], p.seed, p.text_max_rows, tmp_path)
        assert not model.available and quality is None and "0 rated reviews" in model.reason
        ft.build(s, p, products, sentiment=model.available)
        table = wh.to_pandas(s.table(ft.TABLE), "test")
    finally:
        s.close()
        wh.stop_local_server(p.warehouse_dir)
    assert not set(ft.SENTIMENT) & set(table.columns)
    assert (
        (table["N_REVIEWS"] == 0).all() and table["AVG_RATING"].isna().all() and len(table) > 1000
    )
    assert "The tone of reviews and calls is not included" in story.summary(
        ft_summary_from(table), p, 10, model
    )


def ft_summary_from(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`features.summary`'s shape, computed in pandas from a FEATURES frame."""
    g = table.groupby(["CUTOFF", "ROLE"])
    out = pd.DataFrame(
        {
            "customers": g.size(),
            "mean_spend_next": g[ft.LABEL_SPEND].mean(),
            "share_buying_next": g[ft.LABEL_SPEND].apply(lambda s: (s > 0).mean()),
        }
    ).reset_index()
    return out.rename(columns={"ROLE": "role"}).set_index("CUTOFF")


def test_calls_single_product_and_unknown_profile_fields(session, tmp_path, raw_dir, params):
    """Issue 3's shapes: a KIND column with unrated call transcripts, one product type 'all', no
    channel/country."""
    p = make_params(raw_dir, tmp_path / "wh")
    s = wh.connect(p)
    try:
        cust = wh.to_pandas(session.table("CLEAN_CUSTOMERS"), "test")
        cust = cust.assign(
            CHANNEL=np.where(np.arange(len(cust)) % 2, None, ft.UNKNOWN), COUNTRY=ft.UNKNOWN
        )
        lines = wh.to_pandas(session.table("CLEAN_ORDER_LINES"), "test").assign(PRODUCT="all")
        reviews = wh.to_pandas(session.table("CLEAN_REVIEWS"), "test").assign(KIND="review")
        calls = reviews[reviews["RATING"].isna()].assign(
            KIND="call", TEXT=lambda d: "Caller said: " + d["TEXT"]
        )
        reviews = pd.concat([reviews, calls], ignore_index=True)
        for name, frame in (
            ("CLEAN_CUSTOMERS", cust),
            ("CLEAN_ORDER_LINES", lines),
            ("CLEAN_REVIEWS", reviews),
            ("CLEAN_ORDERS", wh.to_pandas(session.table("CLEAN_ORDERS"), "test")),
        ):
            wh.write_pandas(s, frame, name, tmp_path)
        model, _ = text.build(s, p.cutoffs()[0], p.seed, p.text_max_rows, tmp_path)
        assert model.available
        got = ft.features_at(s, CUTOFF, p.horizon_days, ["all"], sentiment=True).to_pandas()
        kinds = text.by_kind(s)
    finally:
        s.close()
        wh.stop_local_server(p.warehouse_dir)
    assert kinds.loc[("call", "unrated"), "texts"] == len(calls)
    ref_cust = cust.assign(SIGNUP_DATE=pd.to_datetime(cust["SIGNUP_DATE"]))
    want = reference.features_at(
        ref_cust,
        lines,
        reviews,
        CUTOFF,
        p.horizon_days,
        ["all"],
        reference.text_scores(reviews, model.pipeline),
    )
    columns = ft.feature_columns(["all"], sentiment=True) + ft.label_columns(["all"])
    assert_same_features(got, want, columns)
    assert (got["CHANNEL"] == ft.UNKNOWN).all() and got["N_CALLS"].sum() > 0
    assert (got["SHARE_ALL"][got["HAS_ORDERED"] == 1] == 1).all()


def test_btyd_outputs_are_the_models_fitted_per_cutoff_on_the_reference_summaries(
    session, products, params, ref_tables
):
    """FEATURES' BTYD columns = the models fitted, per cut-off, on the pandas summaries."""
    from customer_analytics import btyd

    ft.build(session, params, products)
    table = wh.to_pandas(session.table(ft.TABLE), "test")
    fitted = wh.to_pandas(session.table(ft.BTYD_PARAMS), "test").set_index("CUTOFF")
    for cutoff in (params.cutoffs()[0], params.run_date):
        ref = reference.features_at(*ref_tables, cutoff, params.horizon_days, products).set_index(
            "CUSTOMER_ID"
        )
        buyers = ref[ref["BTYD_X"].notna()]
        summaries = pd.DataFrame(
            {
                "X": buyers["BTYD_X"],
                "TX": buyers["BTYD_TX"],
                "T": buyers["BTYD_T"],
                "VALUE": buyers["BTYD_VALUE"].round(ft.DECIMALS),
            }
        )
        fits = btyd.fit_cutoff(summaries)
        want = reference.with_btyd_outputs(ref, params.horizon_days)
        got = table[table["CUTOFF"] == cutoff].set_index("CUSTOMER_ID").loc[want.index]
        assert (
            len(buyers) > 200 and got.loc[ref["BTYD_X"].isna(), ft.BTYD_OUTPUTS].isna().all().all()
        )
        for col in ft.BTYD_OUTPUTS:
            np.testing.assert_allclose(
                got[col], want[col], rtol=1e-7, atol=1e-9, equal_nan=True, err_msg=f"{cutoff} {col}"
            )
        row = fitted.loc[cutoff]
        assert row["MODEL"] == btyd.best_family(fits)
        assert row["BGNBD_R"] == pytest.approx(fits["bgnbd"].params["r"], rel=1e-9)
        assert row["GAMMA_GAMMA_Q"] == pytest.approx(fits["gamma_gamma"].params["q"], rel=1e-9)


def test_btyd_summaries_hold_with_return_lines(session, tmp_path, raw_dir, ref_tables):
    """Return lines (negative quantities, as the ingest will keep them) in the BTYD summaries.

    A return-only day is no purchase, a return on a purchase day lowers that day's value; the
    warehouse agrees with the pandas reference.
    """
    p = make_params(raw_dir, tmp_path / "wh")
    lines = wh.to_pandas(session.table("CLEAN_ORDER_LINES"), "test")
    lines = lines.sort_values(["TS", "ORDER_ID", "ITEM_NO"])
    first = lines.drop_duplicates("ORDER_ID").reset_index(drop=True)
    same_day = first.iloc[::7].assign(
        ORDER_ID=lambda d: d["ORDER_ID"] + "R",
        QUANTITY=-1,
        TS=lambda d: d["TS"] + pd.Timedelta(hours=1),
    )
    moved = (same_day["TS"] - pd.Timedelta(hours=1)).dt.normalize()
    same_day = same_day[same_day["TS"].dt.normalize() == moved]
    later = first.iloc[3::11].assign(
        ORDER_ID=lambda d: d["ORDER_ID"] + "L",
        QUANTITY=-2,
        TS=lambda d: d["TS"] + pd.Timedelta(days=3),
    )
    end_of_day = pd.Timedelta(hours=23, minutes=59)
    big = first.iloc[5::13].assign(
        ORDER_ID=lambda d: d["ORDER_ID"] + "B",
        QUANTITY=-40,
        TS=lambda d: d["TS"].dt.normalize() + end_of_day,
    )
    lines = pd.concat([lines, same_day, later, big], ignore_index=True)
    s = wh.connect(p)
    try:
        for t in ("CLEAN_CUSTOMERS", "CLEAN_REVIEWS"):
            wh.write_pandas(s, wh.to_pandas(session.table(t), "test"), t, tmp_path)
        wh.write_pandas(s, lines, "CLEAN_ORDER_LINES", tmp_path)
        orders = (
            s.table("CLEAN_ORDER_LINES")
            .group_by("ORDER_ID", "CUSTOMER_ID", "TS")
            .agg(
                F.max("COUPON").alias("COUPON"),
                F.max("SHIP_COST").alias("SHIP_COST"),
                F.count(F.lit(1)).alias("N_LINES"),
                F.sum(F.col("QUANTITY") * F.col("UNIT_PRICE")).alias("ORDER_TOTAL"),
                # as the ingest publishes it: an order of return lines only is a return
                (F.min(F.iff(F.col("QUANTITY") < 0, F.lit(1), F.lit(0))) == F.lit(1)).alias(
                    "IS_RETURN"
                ),
            )
        )
        wh.replace_table(orders, "CLEAN_ORDERS")
        products = ft.product_types(s)
        got = ft.features_at(s, CUTOFF, p.horizon_days, products).to_pandas()
    finally:
        s.close()
        wh.stop_local_server(p.warehouse_dir)
    want = reference.features_at(
        ref_tables[0], lines, ref_tables[2], CUTOFF, p.horizon_days, products
    )
    assert_same_features(got, want, ft.BTYD_SUMMARY + ["SPEND", "N_ORDERS", ft.LABEL_SPEND])
    assert (got["BTYD_VALUE"] < 0).any()  # a day whose return outweighs its purchase: value < 0
