"""Numbers that must be the same on Snowflake, DuckDB and in pandas (issue 14, point 7).

The samples (ingest ``sample``, ``max_train_rows``, the text model's training reviews) come from
``portable.stable_hash`` (MD5), which the pandas side reproduces exactly; averages are over
DOUBLEs and timestamps are TIMESTAMP_NTZ. The SQL these functions send passes the Snowflake lint.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd
import snowflake.snowpark.functions as F

from customer_analytics import features as ft
from customer_analytics import ingest, portable, sqlcheck, text
from customer_analytics import warehouse as wh


def test_stable_hash_is_the_same_in_the_warehouse_and_in_python(session):
    df = session.sql(
        "SELECT 'C00001' AS ID, CAST('2026-01-02' AS DATE) AS D, CAST('2026-01-02 10:11:12' AS "
        "TIMESTAMP_NTZ) AS T, 7 AS N UNION ALL SELECT 'Ünïcødé ''quoted''', CAST('1969-12-31' AS "
        "DATE), CAST('1969-12-31 23:59:59' AS TIMESTAMP_NTZ), NULL"
    )
    h = portable.stable_hash(
        F.col("ID"),
        portable.epoch_days(F.col("D")),
        portable.epoch_seconds(F.col("T")),
        F.col("N"),
        F.lit(42),
    )
    rows = df.select("ID", "D", "T", "N", h.alias("H")).collect()
    for r in rows:
        expected = portable.stable_hash_py(
            r["ID"], portable.epoch_days_py(r["D"]), portable.epoch_seconds_py(r["T"]), r["N"], 42
        )
        assert r["H"] == expected and 0 <= expected < portable.HASH_RANGE


def test_the_hash_column_holds_the_same_values_with_the_digest_computed_once(session):
    df = session.sql(
        "SELECT 'C00001' AS ID, 3 AS N UNION ALL SELECT 'Ünïcødé', NULL UNION ALL SELECT '', 0"
    )
    parts = (F.col("ID"), F.col("N"), F.lit(42))
    hashed = portable.with_stable_hash(df, "H", *parts)
    sql = hashed.queries["queries"][-1].lower()
    assert sql.count("md5(") == 1 and hashed.columns == ["ID", "N", "H"]
    inline = df.select("ID", "N", portable.stable_hash(*parts).alias("H"))
    assert inline.queries["queries"][-1].lower().count("md5(") == portable.HASH_DIGITS
    got = sorted((r["ID"], r["N"], r["H"]) for r in hashed.collect())
    assert got == sorted((r["ID"], r["N"], r["H"]) for r in inline.collect())
    assert got == sorted((i, n, portable.stable_hash_py(i, n, 42)) for i, n, _ in got)


def test_the_ingest_sample_keeps_the_customers_pandas_predicts(session, params, tmp_path):
    """``sample`` < 1 on the warehouse keeps exactly the customers the Python hash selects."""
    everyone = set(
        wh.to_pandas(session.table("CLEAN_CUSTOMERS").select("CUSTOMER_ID"), "test")["CUSTOMER_ID"]
    )
    p = dataclasses.replace(params, sample=0.3, warehouse_dir=tmp_path / "wh")
    s = wh.connect(p)
    try:
        ingest.run(s, p)
        kept = set(
            wh.to_pandas(s.table("CLEAN_CUSTOMERS").select("CUSTOMER_ID"), "test")["CUSTOMER_ID"]
        )
    finally:
        s.close()
        wh.stop_local_server(p.warehouse_dir)
    expected = {c for c in everyone if portable.stable_hash_py(c) % 10000 < 3000}
    assert kept == expected and 0.2 < len(kept) / len(everyone) < 0.4


def test_the_max_train_rows_sample_is_reproduced_in_pandas(session, params, labelled):
    train_all, _ = labelled
    cap = len(train_all) // 3
    with session.query_history() as history:
        train, holdout = ft.load_labelled(session, cap, params.seed)
    frac = ft.sample_fraction(len(train_all), cap)
    bucket = [
        portable.stable_hash_py(c, portable.epoch_days_py(d), params.seed) % ft.TRAIN_BUCKETS
        for c, d in zip(train_all[ft.KEY], train_all["CUTOFF"], strict=True)
    ]
    expected = train_all[pd.Series(bucket) < int(frac * ft.TRAIN_BUCKETS)]
    assert list(zip(train[ft.KEY], train["CUTOFF"], strict=True)) == list(
        zip(expected[ft.KEY], expected["CUTOFF"], strict=True)
    )
    assert sqlcheck.check(q.sql_text for q in history.queries) == []


def test_the_max_holdout_rows_sample_is_reproduced_in_pandas_and_leaves_training_alone(
    session, params, labelled
):
    train_all, holdout_all = labelled
    cap = len(holdout_all) // 4
    with session.query_history() as history:
        train, holdout = ft.load_labelled(session, None, params.seed, max_holdout_rows=cap)
    frac = ft.sample_fraction(len(holdout_all), cap)
    bucket = [
        portable.stable_hash_py(c, portable.epoch_days_py(d), params.seed) % ft.TRAIN_BUCKETS
        for c, d in zip(holdout_all[ft.KEY], holdout_all["CUTOFF"], strict=True)
    ]
    expected = holdout_all[pd.Series(bucket) < int(frac * ft.TRAIN_BUCKETS)]
    assert 0 < len(holdout) < len(holdout_all) / 2
    pd.testing.assert_frame_equal(holdout, expected.reset_index(drop=True))
    pd.testing.assert_frame_equal(train, train_all)
    assert sqlcheck.check(q.sql_text for q in history.queries) == []


def test_the_text_training_sample_is_reproduced_in_pandas(session, params):
    before, max_rows = params.cutoffs()[0], 60
    with session.query_history() as history:
        sample = text.training_sample(session, before, max_rows, params.seed)
    rv = wh.to_pandas(session.table(text.SOURCE_TABLE), "test:reviews")
    rv = rv[rv["RATING"].notna() & rv["TEXT"].notna() & (rv["TS"] < pd.Timestamp(before))]
    if "KIND" in rv.columns:
        rv = rv[rv["KIND"].fillna(text.DEFAULT_KIND) == text.DEFAULT_KIND]
    key = text.text_key(session)

    def part(k, v):
        return (
            portable.epoch_seconds_py(v.to_pydatetime())
            if k == "TS"
            else (None if pd.isna(v) else v)
        )

    rv = rv.assign(
        _ORDER=[
            portable.stable_hash_py(
                *[part(k, v) for k, v in zip(key, row, strict=True)], params.seed
            )
            for row in rv[key].itertuples(index=False)
        ]
    )
    expected = rv.sort_values(["_ORDER", *key], kind="stable").head(max_rows)
    assert list(sample["TEXT"]) == list(expected["TEXT"])
    assert sqlcheck.check(q.sql_text for q in history.queries) == []


def test_feature_sql_averages_doubles_and_names_timestamp_ntz(session, params):
    cutoffs = params.cutoffs()[:2]
    df = ft.features_for(session, cutoffs, params.horizon_days, ft.product_types(session))
    findings = sqlcheck.check(df.queries["queries"])
    assert findings == [], sqlcheck.summary(findings)
    summary_sql = (
        session.table(text.SOURCE_TABLE).agg(portable.mean(F.col("RATING")).alias("M")).queries
    )
    assert "AS DOUBLE" in summary_sql["queries"][-1]


def test_timestamp_literal_is_ntz_and_equal_to_the_python_value(session):
    value = dt.datetime(
        2026, 3, 29, 2, 30
    )  # a wall-clock time that does not exist in CET (DST gap)
    row = (
        session.sql("SELECT 1 AS X")
        .select(portable.timestamp_literal(value).alias("T"))
        .collect()[0]
    )
    assert row["T"] == value
