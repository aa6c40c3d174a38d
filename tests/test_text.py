"""Text sentiment: the warehouse's scores against scikit-learn's own, training sample,
evaluation."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import snowflake.snowpark.functions as F
from sklearn.metrics import accuracy_score

import reference
from customer_analytics import text
from customer_analytics import warehouse as wh
from customer_analytics.narrative import features as story


@pytest.fixture(scope="module")
def before(params):
    return params.cutoffs()[0]


@pytest.fixture(scope="module")
def built(session, params, before):
    """The sentiment model of the small data, with every text scored in the warehouse."""
    model, quality = text.build(
        session, before, params.seed, params.text_max_rows, params.warehouse_dir / "staging"
    )
    assert model.available, model.reason
    return model, quality


@pytest.fixture(scope="module")
def ref_reviews(raw_dir):
    return reference.reviews(raw_dir / "reviews.jsonl")


def test_warehouse_scores_match_sklearn_on_every_text(session, built, ref_reviews):
    model, _ = built
    got = (
        wh.to_pandas(session.table(text.SCORES_TABLE), "test")
        .set_index(["CUSTOMER_ID", "TS"])
        .sort_index()
    )
    want = (
        reference.text_scores(ref_reviews, model.pipeline)
        .set_index(["CUSTOMER_ID", "TS"])
        .sort_index()
    )
    assert len(got) == len(want) == ref_reviews["TEXT"].notna().sum() > 100
    assert got.index.equals(want.index)
    np.testing.assert_allclose(got["SENTIMENT_LOGIT"], want["SENTIMENT_LOGIT"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["SENTIMENT"], want["SENTIMENT"], rtol=0, atol=1e-9)
    assert (got["KIND"] == "review").all()


def test_tokenisation_in_the_warehouse_matches_sklearn_on_awkward_texts(
    session, built, fresh_warehouse
):
    """Case, punctuation, digits, accents, one-letter words, repeats (binary!), empty and missing
    texts."""
    model, _ = built
    texts = [
        "LOVE love LoVe!!! love",
        "stale,stale;dry...late",
        "café délicieux, très bon",
        "a b c d",
        "",
        "2nd order: 100% great",
        "late—late–late",
        "don't   do it\tagain\nnever",
        "ÄÖÜ ß ñ 日本",
        "perfect_with_coffee",
        "x" * 300,
        None,
        "fast 'delivery' (fresh)",
    ]
    reviews = pd.DataFrame(
        {
            "CUSTOMER_ID": [f"C{i:03d}" for i in range(len(texts))],
            "TS": pd.Timestamp("2026-01-01"),
            "RATING": pd.array([None] * len(texts), dtype="Int64"),
            "TEXT": texts,
            "LINE_NO": np.arange(1, len(texts) + 1),
        }
    )
    s = wh.connect(fresh_warehouse)
    try:
        wh.write_pandas(s, reviews, text.SOURCE_TABLE, fresh_warehouse.warehouse_dir / "staging")
        text.score_texts(s, model, fresh_warehouse.warehouse_dir / "staging")
        got = wh.to_pandas(s.table(text.SCORES_TABLE), "test").sort_values("LINE_NO")
    finally:
        s.close()
    scored = reviews[reviews["TEXT"].notna()]
    assert got["LINE_NO"].tolist() == scored["LINE_NO"].tolist()
    np.testing.assert_allclose(
        got["SENTIMENT_LOGIT"], model.pipeline.decision_function(scored["TEXT"]), atol=1e-9
    )
    assert (
        model.pipeline.decision_function(["delicious"])[0] > model.intercept
    )  # the words carry weight


def test_out_of_time_accuracy_is_sklearns_accuracy_on_later_rated_reviews(
    built, ref_reviews, before
):
    model, quality = built
    later = ref_reviews[
        (ref_reviews["TS"] >= pd.Timestamp(before))
        & ref_reviews["RATING"].notna()
        & ref_reviews["TEXT"].notna()
    ]
    truth = (later["RATING"] >= text.POSITIVE_RATING).astype(int)
    q = quality.iloc[:, 0]
    assert q["rated reviews tested"] == len(later) > 50
    assert q["accuracy"] == pytest.approx(
        accuracy_score(truth, model.pipeline.predict(later["TEXT"])), abs=1e-12
    )
    majority = int(model.positive_share >= 0.5)
    assert q["majority-class accuracy"] == pytest.approx((truth == majority).mean(), abs=1e-12)
    assert q["accuracy"] > q["majority-class accuracy"] + 0.1  # the demo text carries the sentiment


def test_training_sample_is_bounded_seeded_and_uses_only_earlier_rated_reviews(
    session, ref_reviews, before
):
    rated_before = ref_reviews[
        (ref_reviews["TS"] < pd.Timestamp(before))
        & ref_reviews["RATING"].notna()
        & ref_reviews["TEXT"].notna()
    ]
    full = text.training_sample(session, before, 10_000, seed=1)
    assert len(full) == len(rated_before)
    assert sorted(full["TEXT"]) == sorted(rated_before["TEXT"])
    a, b = (
        text.training_sample(session, before, 40, seed=1),
        text.training_sample(session, before, 40, seed=1),
    )
    c = text.training_sample(session, before, 40, seed=2)
    assert len(a) == 40 and a.equals(b) and not a.equals(c)


def test_too_few_rated_reviews_give_no_model_and_say_why(session):
    model = text.train(session, dt.date(2025, 1, 5), seed=1, max_rows=1000)
    assert not model.available and "rated reviews" in model.reason
    assert "**No tone (sentiment) features**" in story.text_summary(model, None)
    with pytest.raises(ValueError, match="No sentiment model"):
        text.score_texts(session, model)


def test_only_the_bounded_training_sample_and_small_aggregates_reach_the_client(
    session, params, before, monkeypatch
):
    """Scoring and features are pushed down: per-text, per-order and per-customer rows stay in the
    warehouse. The BTYD fits pull distinct (x, t_x, T) histories and a capped sample of repeat
    buyers (cap lowered here to show that it binds)."""
    from customer_analytics import features as ft

    monkeypatch.setattr(ft, "BTYD_VALUE_SAMPLE", 40)
    start = dict(wh.ROWS_PULLED)
    model, _ = text.build(session, before, params.seed, 50, params.warehouse_dir / "staging")
    ft.build(session, params, sentiment=model.available)
    pulled = {k: v - start.get(k, 0) for k, v in wh.ROWS_PULLED.items() if v != start.get(k, 0)}
    n_cutoffs = len(params.cutoffs()) + 1
    distinct = session.table(f"{ft.BTYD_SCORES}_SUMMARIES").select("CUTOFF", "X", "TX", "T")
    customers = session.table(f"{ft.BTYD_SCORES}_SUMMARIES").count()
    assert set(pulled) == {
        "text:training_sample",
        "features:btyd_triples",
        "features:btyd_value_sample",
    }
    assert pulled["text:training_sample"] == 50
    assert pulled["features:btyd_triples"] == distinct.distinct().count() < customers
    # a seeded hash sample: about the cap per cut-off, far below the repeat buyers
    assert 0 < pulled["features:btyd_value_sample"] <= 2 * 40 * n_cutoffs
    # every buyer still gets the outputs
    scores = session.table(ft.BTYD_SCORES)
    assert scores.count() == customers
    assert scores.filter(F.col("BTYD_EXP_VALUE").is_null()).count() < customers / 10


def test_the_report_shows_only_common_words(built):
    model, _ = built
    words = model.top_words(n=50)
    shown = set(words["positive word"]) | set(words["negative word"])
    floor = max(text.REPORT_MIN_DOCS, text.REPORT_MIN_SHARE * model.n_train)
    assert shown and all(model.doc_freq[w] >= floor for w in shown)
    rare = [t for t, k in model.doc_freq.items() if k < floor]
    assert rare and not set(rare) & shown
