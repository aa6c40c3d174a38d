"""Drift (PSI) from warehouse aggregates, checked against an independent NumPy computation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import snowflake.snowpark.functions as F

from customer_analytics import drift
from customer_analytics import features as ft
from customer_analytics import warehouse as wh

NUMERIC = ["SPEND", "TENURE_DAYS", "N_ORDERS", "AVG_RATING", "MEAN_GAP_DAYS", "HAS_ORDERED"]
CATEGORICAL = ["CHANNEL", "COUNTRY"]


def numpy_psi(ref: pd.Series, cur: pd.Series, categorical: bool) -> float:
    """The module's definition, written again with NumPy on the rows themselves."""
    if categorical:
        r, c = ref.fillna("(missing)"), cur.fillna("(missing)")
        values = sorted(set(r) | set(c))
        rc = np.array([(r == v).sum() for v in values], float)
        cc = np.array([(c == v).sum() for v in values], float)
    else:
        r, c = ref.astype(float), cur.astype(float)
        edges = np.unique(np.quantile(r.dropna(), [i / 10 for i in range(1, 10)], method="linear"))
        rc = np.concatenate(
            [
                [r.isna().sum()],
                np.bincount(
                    np.searchsorted(edges, r.dropna(), side="right"), minlength=len(edges) + 1
                ),
            ]
        ).astype(float)
        cc = np.concatenate(
            [
                [c.isna().sum()],
                np.bincount(
                    np.searchsorted(edges, c.dropna(), side="right"), minlength=len(edges) + 1
                ),
            ]
        ).astype(float)
    rp, cp = np.maximum(rc / rc.sum(), 1e-4), np.maximum(cc / cc.sum(), 1e-4)
    return float(((cp - rp) * np.log(cp / rp)).sum())


@pytest.fixture(scope="module")
def frames(session, params):
    ft.build(session, params)
    table = session.table("FEATURES")
    return table.filter(F.col("ROLE") == "train"), table.filter(F.col("ROLE") == "score")


def test_psi_matches_numpy_on_the_rows(frames):
    ref, cur = frames
    got = drift.feature_psi(ref, cur, NUMERIC + CATEGORICAL)
    r, c = (
        ref.select(*NUMERIC, *CATEGORICAL).to_pandas(),
        cur.select(*NUMERIC, *CATEGORICAL).to_pandas(),
    )
    for col in NUMERIC + CATEGORICAL:
        want = numpy_psi(r[col], c[col], col in CATEGORICAL)
        assert got.loc[col, "psi"] == pytest.approx(want, rel=1e-9, abs=1e-12), col
    for col in NUMERIC:
        assert got.loc[col, "reference mean"] == pytest.approx(
            r[col].astype(float).mean(), rel=1e-9
        )
        assert got.loc[col, "current mean"] == pytest.approx(c[col].astype(float).mean(), rel=1e-9)
    assert (got["reference rows"] == len(r)).all() and (got["current rows"] == len(c)).all()
    assert list(got["psi"]) == sorted(got["psi"], reverse=True)


def test_a_shifted_copy_flags_exactly_the_shifted_features(session, frames):
    ref, _ = frames
    shifted = ref.select(
        *[
            (F.col(c) * 3 + 50).alias(c)
            if c == "SPEND"
            else F.lit("tiktok").alias(c)
            if c == "CHANNEL"
            else F.col(c)
            for c in NUMERIC + CATEGORICAL
        ]
    )
    wh.replace_table(shifted, "DRIFT_TEST_SHIFTED")
    got = drift.feature_psi(ref, session.table("DRIFT_TEST_SHIFTED"), NUMERIC + CATEGORICAL)
    assert set(got.index[got["level"] == "large"]) == {"SPEND", "CHANNEL"}
    assert (
        got.drop(index=["SPEND", "CHANNEL"])["psi"] == 0
    ).all()  # unchanged columns: identical shares
    found = drift.findings(got, None)
    assert {name for name, _ in found.large} == {"SPEND", "CHANNEL"} and not found.reason
    assert found.largest is not None and found.largest[0] in ("SPEND", "CHANNEL")


def test_too_few_rows_are_not_assessed(frames):
    ref, cur = frames
    got = drift.feature_psi(ref, cur.limit(drift.MIN_ROWS - 1), ["SPEND"])
    assert got.loc["SPEND", "level"] == "not assessed"
    found = drift.findings(got, None)
    assert found.large == () and found.reason == "too few rows"


def test_psi_formula_on_hand_made_counts():
    assert drift.psi_from_counts([10, 20, 30], [1, 2, 3]) == 0  # same shares, any sizes
    # shares (0.5, 0.5) -> (0.25, 0.75): 0.25*ln(0.5)*(-1) + 0.25*ln(1.5)
    assert drift.psi_from_counts([50, 50], [25, 75]) == pytest.approx(
        0.25 * math.log(2) + 0.25 * math.log(1.5)
    )
    assert (
        drift.psi_from_counts([100, 0], [0, 100]) > 5
    )  # disjoint: empty bins are clipped, not infinite
    assert math.isnan(drift.psi_from_counts([0, 0], [1, 1]))
    assert [drift.level(v) for v in (0.05, 0.1, 0.2, 0.25, float("nan"))] == [
        "stable",
        "moderate",
        "moderate",
        "large",
        "n/a",
    ]
