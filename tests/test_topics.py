"""Text embeddings, topics and similar-text search (issue 20), on demo data with planted themes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlglot

import reference
from conftest import make_params
from customer_analytics import features, ingest, synthetic, topics
from customer_analytics import warehouse as wh

QUERY = "parcel arrived broken"


def theme_of(text: str) -> str:
    """The planted theme of a demo text (its phrases belong to one theme only)."""
    low = text.lower()
    found = {
        t
        for t, phrases in synthetic.THEMES.items()
        for p in phrases
        if p.split("{p}")[0].lower() in low
    }
    assert len(found) == 1, (text, found)
    return found.pop()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    raw = tmp_path_factory.mktemp("topics_raw")
    synthetic.write(synthetic.generate(1500, seed=7), raw, calls=True)
    p = make_params(raw, tmp_path_factory.mktemp("topics_wh"))
    s = wh.connect(p)
    ingest.run(s, p)
    model = topics.build(
        s, p.run_date, p.text_topics, p.seed, p.text_max_rows, p.warehouse_dir / "staging"
    )
    texts = (
        s.table("CLEAN_REVIEWS")
        .select(topics.text_id().alias("TEXT_ID"), "TEXT", "TS", "KIND", "RATING", "CUSTOMER_ID")
        .to_pandas()
    )
    yield s, p, model, texts.sort_values("TEXT_ID").reset_index(drop=True)
    s.close()
    wh.stop_local_server(p.warehouse_dir)


def test_embeddings_and_topics_computed_in_the_warehouse_equal_scikit_learn(demo):
    s, _, model, texts = demo
    assert model.available and model.n_topics == 8 and model.n_dims == topics.N_DIMS
    long = s.table("TEXT_EMBEDDINGS").to_pandas()
    wide = (
        long.pivot(index="TEXT_ID", columns="DIM", values="VALUE")
        .reindex(texts["TEXT_ID"])
        .fillna(0.0)
    )
    expected = model.embed(texts["TEXT"])
    assert np.abs(wide.to_numpy() - expected).max() < 1e-8
    assert np.allclose(
        np.linalg.norm(wide.to_numpy(), axis=1)[np.abs(expected).sum(axis=1) > 0], 1.0
    )
    assigned = s.table("TEXT_TOPICS").to_pandas().set_index("TEXT_ID").reindex(texts["TEXT_ID"])
    assert len(assigned) == len(texts) and assigned["TOPIC"].notna().all()
    assert (
        assigned["TOPIC"].fillna(0).astype(int).to_numpy() == model.predict(texts["TEXT"])
    ).all()


def test_topics_recover_the_planted_themes(demo):
    s, p, model, texts = demo
    assigned = s.table("TEXT_TOPICS").to_pandas().merge(texts[["TEXT_ID", "TEXT"]], on="TEXT_ID")
    table = pd.crosstab(assigned["TEXT"].map(theme_of), assigned["TOPIC"])
    assert set(table.index) == set(synthetic.THEMES)
    majority = table.idxmax(axis=1)
    purity = table.max(axis=1) / table.sum(axis=1)
    assert majority.nunique() == len(synthetic.THEMES), table  # one topic per theme
    assert (purity >= 0.8).all(), purity
    words = model.top_words()[int(majority["damaged_parcel"])]
    assert {"broken", "parcel", "crushed", "damaged"} & set(words), words


def test_the_planted_complaint_finds_its_paraphrases_above_unrelated_texts(demo):
    s, _, _, texts = demo
    found = topics.similar(s, QUERY, n=len(texts))
    assert list(found.columns) == ["similarity", "date", "kind", "rating", "topic", "text"]
    assert found["similarity"].is_monotonic_decreasing and found["similarity"].iloc[0] <= 1 + 1e-9
    theme = found["text"].map(theme_of)
    assert (theme.head(20) == "damaged_parcel").all(), found.head(20)
    words = set(topics.query_tokens(QUERY))
    paraphrase = (theme == "damaged_parcel") & found["text"].map(
        lambda t: not words & set(topics.query_tokens(t))
    )
    unrelated = theme != "damaged_parcel"
    assert paraphrase.sum() >= 20  # texts of the complaint without a word of the query
    # ranked above unrelated texts: a paraphrase beats a random unrelated text at least 90% of the
    # time
    ranks = pd.Series(np.arange(len(found)), index=found.index)
    beats = (ranks[unrelated].to_numpy()[None, :] > ranks[paraphrase].to_numpy()[:, None]).mean()
    assert beats >= 0.9, beats
    # and never shows who wrote a text
    assert not {"customer_id", "CUSTOMER_ID"} & set(found.columns)
    assert not found["text"].str.contains(r"C\d{6}").any()


def test_a_query_with_no_known_word_says_so(demo):
    with pytest.raises(ValueError, match="None of the query's words"):
        topics.similar(demo[0], "zzzz qqqq")


def test_topic_table_equals_an_independent_pandas_computation(demo):
    s, p, model, texts = demo
    table = topics.topic_table(s, p.run_date)
    assigned = s.table("TEXT_TOPICS").to_pandas()
    expected = reference.topic_table(assigned, p.run_date, topics.RECENT_DAYS)
    assert list(table.index) == list(expected.index)
    for col in ("texts", "share", "reviews", "calls", "mean rating", "trend (pp)"):
        np.testing.assert_allclose(
            table[col].astype(float), expected[col].astype(float), rtol=1e-9, err_msg=col
        )
    assert abs(table["share"].sum() - 1) < 1e-9
    assert table["label"].notna().all() and table["typical words"].str.len().gt(0).all()
    shares = topics.monthly_shares(s, p.run_date)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)


def test_customer_topic_shares_use_only_texts_written_before_the_cut_off(demo):
    s, p, model, _ = demo
    cut = dt.date(2026, 3, 1)
    cuts = features.cutoff_frame(s, [cut], p.horizon_days)
    topics.build(
        s,
        cut,
        p.text_topics,
        p.seed,
        p.text_max_rows,
        p.warehouse_dir / "staging",
        tables=topics.FEATURE,
    )
    got = (
        topics.customer_shares(s, cuts, p.text_topics)
        .to_pandas()
        .set_index("CUSTOMER_ID")
        .sort_index()
    )
    assigned = s.table("FEATURE_TEXT_TOPICS").to_pandas()
    expected = reference.topic_shares(assigned, cut, p.text_topics).sort_index()
    assert list(got.index) == list(expected.index) and len(got) > 100
    cols = topics.share_columns(p.text_topics)
    np.testing.assert_allclose(got[cols].to_numpy(), expected[cols].to_numpy(), rtol=1e-9)
    # a text written after the cut-off changes nothing
    assert (assigned["TS"] >= pd.Timestamp(cut)).any()


def test_snowflake_vector_statements_parse_as_snowflake_sql():
    q = np.full(topics.N_DIMS, 1 / np.sqrt(topics.N_DIMS))
    for sql in (
        topics.vector_sql(topics.SEARCH, topics.N_DIMS),
        topics.similarity_sql(topics.SEARCH, q, 10),
    ):
        parsed = sqlglot.parse_one(sql, read="snowflake")
        assert parsed is not None
    assert "VECTOR(FLOAT, 20)" in topics.vector_sql(topics.SEARCH, 20)
    assert "VECTOR_COSINE_SIMILARITY" in topics.similarity_sql(topics.SEARCH, q, 10)
