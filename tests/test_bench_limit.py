"""bench/limit.py (issue 19's limit): its DuckDB ingest + features against the pandas reference,
and its ``--check`` against a warehouse file that differs from it.

Small generated data, no warehouse server (a few seconds: the BTYD fits dominate).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import reference
from customer_analytics import config, synthetic
from customer_analytics import features as ft
from customer_analytics import portable as pt

ROOT = Path(__file__).resolve().parents[1]
CUSTOMERS = 400


def _load_limit():
    spec = importlib.util.spec_from_file_location("bench_limit", ROOT / "bench" / "limit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


limit = _load_limit()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Demo files, their parameters (3 cut-offs + run_date) and the limit's DuckDB tables."""
    tmp = tmp_path_factory.mktemp("limit")
    raw = tmp / "raw"
    synthetic.write(synthetic.generate(CUSTOMERS, seed=7), raw)
    params = config.load(ROOT, data_dir=str(raw), n_cutoffs=2)
    con = limit.connect(tmp / "spill")
    rejected = limit.ingest(con, raw, params)
    products, _ = limit.features(con, params)
    yield raw, params, con, rejected, products, tmp
    con.close()


def _frame(con, table: str) -> pd.DataFrame:
    return con.execute(f"SELECT * FROM {table}").df()


def _same(got: pd.DataFrame, want: pd.DataFrame, keys: list[str], cols: list[str], what: str):
    """Same keys, and every column equal (floats to 1e-9)."""
    got = got.set_index(keys).sort_index()
    want = want.set_index(keys).sort_index()
    assert list(got.index) == list(want.index), f"{what}: keys differ"
    for c in cols:
        a, b = got[c], want[c]
        if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
            np.testing.assert_allclose(
                a.astype(float), b.astype(float), rtol=1e-9, atol=2e-9, err_msg=f"{what}.{c}"
            )
        else:
            assert ((a == b) | (a.isna() & b.isna())).all(), f"{what}.{c}"


def test_limit_ingest_and_features_equal_the_pandas_reference(built):
    """Accepted customers, order lines and reviews, and every feature of every cut-off (BTYD
    outputs: to 1e-7, fitted on compressed triples here and per customer in the reference)."""
    raw, params, con, rejected, products, _ = built
    ing = reference.ingest(
        raw, params.orders_file, params.customers_file, params.reviews_file, None, {}
    )
    assert rejected == {"customers": 0, "orders": 0, "reviews": 0} and ing.rejected.empty
    cust = ing.customers
    _same(
        _frame(con, "CUSTOMERS").assign(SIGNUP_DATE=lambda d: pd.to_datetime(d["SIGNUP_DATE"])),
        cust,
        ["CUSTOMER_ID"],
        ["SIGNUP_DATE", "COUNTRY", "CHANNEL", "BIRTH_YEAR", "LINE_NO"],
        "customers",
    )
    lines = ing.order_lines.assign(ITEM_NO=lambda d: d["ITEM_NO"].astype(int))
    line_cols = ["ORDER_ID", "CUSTOMER_ID", "TS", "COUPON", "SHIP_METHOD", "SHIP_COST"]
    line_cols += ["PRODUCT", "QUANTITY", "UNIT_PRICE", "IS_RETURN"]
    _same(_frame(con, "ORDER_LINES"), lines, ["LINE_NO", "ITEM_NO"], line_cols, "order lines")
    revs = ing.reviews
    review_cols = ["CUSTOMER_ID", "TS", "RATING", "TEXT"]
    _same(_frame(con, "REVIEWS"), revs, ["LINE_NO"], review_cols, "reviews")
    assert products == sorted(lines["PRODUCT"].unique())

    got = _frame(con, "FEATURES")
    roles = {c: "train" for c in params.cutoffs()[:-1]}
    roles |= {params.cutoffs()[-1]: "holdout", params.run_date: "score"}
    assert sorted(got["CUTOFF"].dt.date.unique()) == sorted(roles)
    for cutoff, role in roles.items():
        ref = reference.features_at(cust, lines, revs, cutoff, params.horizon_days, products)
        ref = reference.with_btyd_outputs(ref, params.horizon_days)
        mine = got[got["CUTOFF"].dt.date == cutoff].drop(columns=["CUTOFF", "ROLE"])
        assert set(got[got["CUTOFF"].dt.date == cutoff]["ROLE"]) == {role}
        if role == "score":  # labels are not observed yet: null in FEATURES
            labels = ft.label_columns(products)
            assert mine[labels].isna().all().all()
            mine, ref = mine.drop(columns=labels), ref.drop(columns=labels)
        assert set(mine.columns) == set(ref.columns)
        exact = [c for c in ref.columns if c not in ft.BTYD_OUTPUTS and c != "CUSTOMER_ID"]
        _same(mine, ref, ["CUSTOMER_ID"], exact, f"features {cutoff}")
        a, b = mine.set_index("CUSTOMER_ID").sort_index(), ref.set_index("CUSTOMER_ID").sort_index()
        assert b["BTYD_P_ALIVE"].notna().sum() > 100
        for c in ft.BTYD_OUTPUTS:
            np.testing.assert_allclose(
                a[c].astype(float), b[c].astype(float), rtol=1e-7, atol=1e-9, err_msg=f"{c}"
            )


def _warehouse_copy(con, path: Path) -> None:
    """A warehouse-like file holding the limit's own tables under the pipeline's names."""
    names = {t: theirs for t, (theirs, _, _) in limit.CHECKS.items()}
    con.execute(f"ATTACH '{path}' AS OUT")
    con.execute("CREATE SCHEMA OUT.SHOP")
    for mine, theirs in names.items():
        con.execute(f"CREATE TABLE OUT.SHOP.{theirs} AS SELECT * FROM {mine}")
    con.execute("DETACH OUT")


def test_limit_check_names_every_difference(built):
    """The check passes on identical tables and names a changed value, a float beyond rounding,
    a missing row, a missing feature column and a date moved by a day."""
    _, _, con, _, _, tmp = built
    same = tmp / "same.db"
    _warehouse_copy(con, same)
    assert limit.check(con, same)["differences"] == []

    changed = tmp / "changed.db"
    shutil.copy(same, changed)
    with duckdb.connect(str(changed)) as w:
        w.execute("UPDATE SHOP.FEATURES SET SPEND = SPEND + 1e-7 WHERE N_ORDERS > 0")
        w.execute("UPDATE SHOP.FEATURES SET BTYD_P_ALIVE = BTYD_P_ALIVE + 1e-10")  # rounding
        w.execute("ALTER TABLE SHOP.FEATURES DROP COLUMN AGE")
        w.execute("UPDATE SHOP.CLEAN_CUSTOMERS SET SIGNUP_DATE = SIGNUP_DATE + 1 WHERE LINE_NO = 9")
        w.execute("DELETE FROM SHOP.CLEAN_REVIEWS WHERE LINE_NO = 3")
        w.execute("UPDATE SHOP.CLEAN_ORDER_LINES SET QUANTITY = 99 WHERE LINE_NO = 5")
    diffs = limit.check(con, changed)["differences"]
    text = "\n".join(diffs)
    assert "FEATURES: columns on one side only: ['AGE']" in text
    assert "'SPEND': " in text and "BTYD_P_ALIVE" not in text
    assert "CLEAN_CUSTOMERS: rows with a different value, per column: {'SIGNUP_DATE': 1}" in text
    assert "CLEAN_REVIEWS: 1 keys only limit" in text
    assert "CLEAN_ORDER_LINES: rows with a different value, per column: {'QUANTITY': " in text
    assert len(diffs) == 6, diffs  # the reviews' row counts differ too


def test_limit_samples_repeat_buyers_with_the_pipelines_hash():
    """The Gamma-Gamma sample (drawn above BTYD_VALUE_SAMPLE repeat buyers per cut-off) keeps the
    rows the warehouse keeps: the limit's SQL hash equals portable.stable_hash_py."""
    rows = [("C000001", dt.date(2026, 3, 7), 42), ("C123456", dt.date(1999, 12, 31), 0)]
    rows += [(f"C{k:06d}", dt.date(2025, 1, 1) + dt.timedelta(days=k), 7) for k in range(50)]
    con = duckdb.connect()
    frame = pd.DataFrame(rows, columns=["K", "D", "S"])  # noqa: F841 (read by DuckDB)
    for key, day, seed in rows:
        got = con.execute(
            f"SELECT {limit.stable_hash_sql('K', 'D', seed)} FROM frame WHERE K = ? AND D = ?",
            [key, day],
        ).fetchone()[0]
        assert got == pt.stable_hash_py(key, pt.epoch_days_py(day), seed)
