"""Batch prediction on the real embedded warehouse: chunked scoring, scoring sets, history,
aggregates.

The warehouse's predictions are checked against an independent computation: features from the
pandas reference (``reference.py``), the scoring set filtered in pandas, the same model applied
to all rows at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
import snowflake.snowpark.functions as F

import reference
from conftest import make_params
from customer_analytics import features as ft
from customer_analytics import ingest, models, predict, registry
from customer_analytics import warehouse as wh
from customer_analytics.narrative import forecast as story

D1 = dt.date(2026, 11, 1)  # = run_date of env.yaml: FEATURES holds its score rows
D2 = dt.date(2026, 11, 2)  # no score rows in FEATURES: features are computed for the date


@pytest.fixture(scope="module")
def env(raw_dir, tmp_path_factory):
    """Own warehouse: ingested, FEATURES built for D1, a ridge model registered as default."""
    params = make_params(raw_dir, tmp_path_factory.mktemp("predict"))
    s = wh.connect(params)
    ingest.run(s, params)
    products = ft.product_types(s)
    ft.build(s, params, products)
    train, holdout = ft.load_labelled(s)
    data = pd.concat([train, holdout], ignore_index=True)
    feats, targets = models.usable_features(data)
    model = models.candidates(feats, targets, params.seed)["ridge"]().fit(
        data[feats], data[targets].astype(float)
    )
    reg = registry.open_registry(params)
    name = registry.model_name(params.horizon_days)
    spec = {
        "candidate": "ridge",
        "horizon_days": params.horizon_days,
        "definitions_version": ft.DEFINITIONS_VERSION,
    }
    mv = reg.log_model(model, name, {"rmse": 1.0}, spec, {"run_date": str(D1)}, feats, targets)
    reg.set_default(name, mv.version)
    model, mv = reg.load(name)
    yield params, s, model, mv, products
    s.close()
    wh.stop_local_server(params.warehouse_dir)


@pytest.fixture(scope="module")
def ref_tables(raw_dir):
    return (
        reference.customers(raw_dir / "customers.csv"),
        reference.order_lines(raw_dir / "orders.jsonl"),
        reference.reviews(raw_dir / "reviews.jsonl"),
    )


def expected(ref_tables, products, params, model, mv) -> pd.DataFrame:
    """Independent predictions: pandas features as of run_date, scoring set in pandas, one predict
    call."""
    f = reference.features_at(*ref_tables, params.run_date, params.horizon_days, products)
    f = reference.with_btyd_outputs(f, params.horizon_days)
    if params.scoring_set == "new":
        f = f[f["TENURE_DAYS"] <= params.new_customer_days]
    elif params.scoring_set == "active":
        f = f[(f["N_ORDERS"] > 0) & (f["RECENCY_DAYS"] <= params.horizon_days)]
    f = f.sort_values("CUSTOMER_ID").reset_index(drop=True)
    pred = np.clip(model.predict(f[mv.meta["features"]]), 0, None)
    return pd.DataFrame(
        pred, columns=[predict.prediction_column(t) for t in mv.meta["targets"]]
    ).assign(CUSTOMER_ID=f["CUSTOMER_ID"].to_numpy())


def rows_of(s, run_date) -> pd.DataFrame:
    df = (
        s.table(predict.TABLE)
        .filter(F.col("RUN_DATE") == F.lit(run_date))
        .sort("CUSTOMER_ID")
        .to_pandas()
    )
    return df.reset_index(drop=True)


def counts(s) -> dict:
    return {
        r["RUN_DATE"]: r["COUNT"]
        for r in s.table(predict.TABLE).group_by("RUN_DATE").count().collect()
    }


@pytest.mark.parametrize("run_date", [D1, D2])
def test_chunked_scoring_matches_one_shot_scoring_of_the_pandas_features(env, ref_tables, run_date):
    params, s, model, mv, products = env
    p = dataclasses.replace(params, run_date=run_date)
    pulled = wh.ROWS_PULLED["predict:chunk"]
    run = predict.score_in_chunks(s, model, mv, p, chunk_rows=25)
    want = expected(ref_tables, products, p, model, mv)
    got = rows_of(s, run_date)
    assert run.customers == len(want) == len(got) > 50
    assert run.chunks == math.ceil(len(want) / 25) > 1 and run.largest_chunk <= 25
    assert wh.ROWS_PULLED["predict:chunk"] - pulled == len(
        want
    )  # every customer pulled exactly once, by chunk
    assert list(got["CUSTOMER_ID"]) == list(want["CUSTOMER_ID"])
    for col in [c for c in want.columns if c.startswith("PRED_")]:
        np.testing.assert_allclose(got[col], want[col], rtol=1e-9, atol=1e-9, err_msg=col)
    assert set(got["MODEL_NAME"]) == {mv.name} and set(got["MODEL_VERSION"]) == {mv.version}


@pytest.mark.parametrize("scoring_set", ["active", "all"])
def test_scoring_sets_select_the_documented_customers(env, ref_tables, scoring_set):
    params, s, model, mv, products = env
    p = dataclasses.replace(params, run_date=D2, scoring_set=scoring_set)
    n = predict.stage_batch(s, p, mv.meta["features"], chunk_rows=1000)
    got = sorted(r["CUSTOMER_ID"] for r in s.table(predict.BATCH).select("CUSTOMER_ID").collect())
    want = list(expected(ref_tables, products, p, model, mv)["CUSTOMER_ID"])
    assert n == len(got) and got == want
    n_new = predict.stage_batch(
        s, dataclasses.replace(p, scoring_set="new"), mv.meta["features"], 1000
    )
    assert 0 < n_new < n


def test_rerunning_a_date_replaces_only_its_rows(env):
    params, s, model, mv, _ = env
    p1, p2 = dataclasses.replace(params, run_date=D1), dataclasses.replace(params, run_date=D2)
    predict.score_in_chunks(s, model, mv, p1)
    predict.score_in_chunks(s, model, mv, p2)
    before, d2_before = counts(s), rows_of(s, D2)
    run = predict.score_in_chunks(s, model, mv, p1, chunk_rows=7)  # same date, other chunking
    assert counts(s) == before and {D1, D2} <= set(before)
    assert run.table_rows == sum(before.values())
    pd.testing.assert_frame_equal(rows_of(s, D2), d2_before)


def test_a_failure_while_scoring_leaves_predictions_untouched(env):
    params, s, model, mv, _ = env
    predict.score_in_chunks(s, model, mv, dataclasses.replace(params, run_date=D1))
    before = s.table(predict.TABLE).sort("RUN_DATE", "CUSTOMER_ID").to_pandas()

    class FailsOnSecondChunk:  # fault injection around the real model
        calls = 0

        def predict(self, x):
            self.calls += 1
            if self.calls == 2:
                raise MemoryError("simulated failure in chunk 2")
            return model.predict(x)

    with pytest.raises(MemoryError):
        predict.score_in_chunks(
            s, FailsOnSecondChunk(), mv, dataclasses.replace(params, run_date=D1), chunk_rows=20
        )
    pd.testing.assert_frame_equal(
        s.table(predict.TABLE).sort("RUN_DATE", "CUSTOMER_ID").to_pandas(), before
    )


def test_history_survives_new_prediction_columns(env):
    params, s, model, mv, _ = env
    predict.score_in_chunks(s, model, mv, dataclasses.replace(params, run_date=D1))
    before = counts(s)
    d3 = dt.date(2026, 11, 3)
    new = pd.DataFrame(
        {
            "CUSTOMER_ID": ["X1", "X2"],
            "RUN_DATE": [d3, d3],
            "MODEL_NAME": "m",
            "MODEL_VERSION": "v9",
            "PRED_SPEND": [1.0, 2.0],
            "PRED_QTY_NEW_PRODUCT": [3.0, 4.0],
        }
    )
    staged = wh.write_pandas(s, new, "PREDICTIONS__TEST", params.warehouse_dir / "staging")
    total = predict.publish(s, staged, dataclasses.replace(params, run_date=d3))
    after = counts(s)
    assert total == sum(before.values()) + 2 and after == {**before, d3: 2}
    old = rows_of(s, D1)
    assert old["PRED_QTY_NEW_PRODUCT"].isna().all() and old["PRED_SPEND"].notna().all()
    predict.publish(
        s, None, dataclasses.replace(params, run_date=d3)
    )  # an empty run removes that date's rows
    assert counts(s) == before


def test_a_date_without_customers_to_score_scores_nobody_and_keeps_history(env):
    params, s, model, mv, _ = env
    predict.score_in_chunks(s, model, mv, dataclasses.replace(params, run_date=D1))
    before = counts(s)
    p = dataclasses.replace(params, run_date=dt.date(2020, 1, 1))  # before the first signup
    run = predict.score_in_chunks(s, model, mv, p)
    assert run.customers == 0 and run.chunks == 0 and counts(s) == before
    head = predict.headline(run, mv, p, None, pd.DataFrame(), predict.overview(s, p))
    assert "**No customer to score**: there are no new customers" in story.summary(head, p)


def test_report_aggregates_match_pandas_on_the_predictions(env):
    params, s, model, mv, _ = env
    p = dataclasses.replace(params, run_date=D1, scoring_set="all")
    predict.score_in_chunks(s, model, mv, p)
    rows = rows_of(s, D1)
    spend = rows["PRED_SPEND"]
    ov = predict.overview(s, p)["predicted spend"]
    assert ov["customers scored"] == len(rows)
    assert ov["total predicted spend"] == pytest.approx(round(spend.sum(), 2), abs=0.011)
    assert ov["median"] == pytest.approx(round(spend.median(), 2), abs=0.011)
    assert ov["90th percentile"] == pytest.approx(round(spend.quantile(0.9), 2), abs=0.011)
    bands = predict.spend_distribution(s, p, bins=10)
    assert bands.sum() == len(rows) and len(bands) == 10
    totals = predict.product_totals(s, p)
    for col in [c for c in rows.columns if c.startswith("PRED_QTY_")]:
        assert totals[col.removeprefix("PRED_QTY_").lower()] == pytest.approx(
            rows[col].sum(), rel=1e-9
        )


def test_a_model_needing_unknown_features_gets_a_clear_error(env):
    params, s, model, mv, _ = env
    odd = registry.ModelVersion(
        mv.name, mv.version, {**mv.meta, "features": [*mv.meta["features"], "QTY_UNOBTAINIUM"]}
    )
    with pytest.raises(predict.PredictError, match="QTY_UNOBTAINIUM.*retrain"):
        predict.score_in_chunks(s, model, odd, dataclasses.replace(params, run_date=D2))


def test_large_shifts_lead_the_summary(env):
    params, s, model, mv, _ = env
    p = dataclasses.replace(params, run_date=D1)
    run = predict.score_in_chunks(s, model, mv, p)
    feats = pd.DataFrame(
        {
            "psi": [0.4, 0.12, 0.01],
            "level": ["large", "moderate", "stable"],
            "current rows": run.customers,
        },
        index=["SPEND", "AGE", "COUNTRY"],
    )
    preds = pd.DataFrame(
        {"previous run": ["2026-10-31"], "psi": [0.3], "level": ["large"]},
        index=["predicted spend"],
    )
    head = predict.headline(run, mv, p, feats, preds, predict.overview(s, p))
    text = story.summary(head, p)
    assert text.split("\n\n")[1].startswith(  # right under the heading
        "> ⚠ **Large shifts since the model learned**: spend so far (PSI 0.40); expected spend "
        "per customer against the run of 31 Oct 2026 (PSI 0.30)."
    )
    assert head.drift["large"] == [["SPEND", 0.4]] and head.drift["prediction_level"] == "large"
    assert story.drift_note(head.drift).startswith(
        "Against the customers the model learned from, 1 of 3 features shifted a lot and 1 "
        "moderately; the largest shift is in spend so far (PSI 0.40)."
    )


def test_a_model_of_another_horizon_or_other_definitions_is_refused_with_the_fix(env):
    params, s, model, mv, _ = env
    predict.check_model(mv, params)  # the run's own model is fine
    with pytest.raises(
        predict.PredictError,
        match=r"predicts spend over 60 days, but this run asks for 30 days "
        r"\(horizon_days\)\. Fix: train a 30-day model first",
    ):
        predict.check_model(mv, dataclasses.replace(params, horizon_days=30))
    old = registry.ModelVersion(
        mv.name,
        mv.version,
        {**mv.meta, "params": {**mv.meta["params"], "definitions_version": "0"}},
    )
    with pytest.raises(predict.PredictError, match="feature definitions version 0.*Fix: retrain"):
        predict.check_model(old, params)


def test_an_empty_scoring_set_on_a_fresh_warehouse_writes_an_empty_block_and_names_what_would_score(
    fresh_warehouse,
):
    """Issue 12, item 5: nobody signed up recently, no PREDICTIONS yet: 05's calls must all work."""
    params = dataclasses.replace(
        fresh_warehouse, run_date=dt.date(2026, 11, 20), new_customer_days=1
    )
    s = wh.connect(params)
    try:
        ingest.run(s, params)
        products = ft.product_types(s)
        frame = ft.features_at(s, dt.date(2026, 6, 1), params.horizon_days, products).to_pandas()
        feats, targets = models.usable_features(frame)
        model = models.candidates(feats, targets, params.seed)["last_period"]().fit(
            frame[feats], frame[targets]
        )
        reg = registry.open_registry(params)
        mv = reg.log_model(
            model,
            registry.model_name(params.horizon_days),
            {"rmse": 1.0},
            {"candidate": "last_period"},
            {},
            feats,
            targets,
        )
        model, mv = reg.load(mv.name, version=mv.version)
        everyone = ft.features_at(s, params.run_date, params.horizon_days, products).to_pandas()
        newest = int(everyone["TENURE_DAYS"].min())
        assert newest > 1 and not wh.table_exists(
            s, predict.TABLE
        )  # the premise: nobody new, a fresh warehouse
        run = predict.score_in_chunks(s, model, mv, params)
        assert (
            run.customers == 0
            and wh.table_exists(s, predict.TABLE)
            and wh.row_count(s, predict.TABLE) == 0
        )
        scored = predict.overview(s, params)
        assert scored.loc["customers scored", "predicted spend"] == 0
        assert predict.spend_distribution(s, params).sum() == 0
        assert (predict.product_totals(s, params) == 0).all()
        assert predict.prediction_shift(s, params).empty
        drift_table = predict.feature_drift(s, params, mv.meta["features"])
        head = predict.headline(run, mv, params, drift_table, pd.DataFrame(), scored)
        text = story.summary(head, params)
    finally:
        s.close()
    active = int(
        ((everyone["N_ORDERS"] > 0) & (everyone["RECENCY_DAYS"] <= params.horizon_days)).sum()
    )
    assert (
        "**No customer to score**: there are no new customers (signed up in the 1 days "
        "before 20 Nov 2026)." in text
    )
    assert (
        f"`scoring_set: active` would score {active:,}" in text
        and f"`scoring_set: all` would score {len(everyone):,}" in text
    )
    assert f"`new_customer_days: {newest}` would score the latest sign-ups" in text


def test_predictions_carry_the_btyd_outlook_of_each_customer(env):
    """P_ALIVE / EXP_ORDERS / NEXT_ORDER_DATE come from FEATURES' BTYD columns as of run_date."""
    params, s, model, mv, _ = env
    p = dataclasses.replace(params, run_date=D1, scoring_set="all")
    predict.score_in_chunks(s, model, mv, p)
    got = rows_of(s, D1).set_index("CUSTOMER_ID")
    feats = wh.to_pandas(s.table(ft.TABLE).filter(F.col("ROLE") == "score"), "test").set_index(
        "CUSTOMER_ID"
    )
    feats = feats.loc[got.index]
    np.testing.assert_allclose(got["P_ALIVE"], feats["BTYD_P_ALIVE"], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(
        got["EXP_ORDERS"], feats["BTYD_EXP_PURCHASES"], rtol=1e-12, equal_nan=True
    )
    days = feats["BTYD_NEXT_DAYS"]
    want = [None if pd.isna(d) else D1 + dt.timedelta(days=int(round(d))) for d in days]
    assert [None if pd.isna(v) else pd.Timestamp(v).date() for v in got["NEXT_ORDER_DATE"]] == want
    assert got["P_ALIVE"].notna().sum() > 100 and got["NEXT_ORDER_DATE"].notna().sum() > 100
    never = feats["BTYD_X"].isna()  # no purchase before run_date: no outlook
    assert got.loc[never, ["P_ALIVE", "EXP_ORDERS", "NEXT_ORDER_DATE"]].isna().all().all()
    assert (got.loc[got["NEXT_ORDER_DATE"].notna(), "P_ALIVE"] > 0.5).all()
