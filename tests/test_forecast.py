"""Forecast ranges (issue 17): the band calibration against pandas, the range of a total tried on
groups the calibration never saw, and the report's number formats and words.

The warehouse side (TARGETS, FORECASTS, the track record, ``export-targets``) runs in the pipeline
test ``test_reports_stakeholder.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from customer_analytics import config, forecast
from customer_analytics.narrative import fmt, words


def shop(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A model's forecasts and what customers then spent: most spend nothing, spenders vary a lot,
    and the model is biased (over-forecasts small spenders, under-forecasts big ones)."""
    value = rng.gamma(0.8, 30.0, n)  # each customer's true expected spend
    buys = rng.random(n) < np.clip(value / 60, 0.05, 0.9)
    actual = np.where(buys, rng.gamma(2.0, value / 2.0 + 1.0), 0.0)
    pred = np.clip(0.6 * value + 6.0 + rng.normal(0, 4, n), 0, None)
    return pred, actual


def test_band_calibration_matches_pandas_on_the_same_bands():
    rng = np.random.default_rng(3)
    pred, actual = shop(2000, rng)
    cal = forecast.calibrate("SPEND_NEXT", pred, actual)
    assert len(cal.shift) == forecast.BANDS  # 2,000 customers: 10 bands of 200
    frame = pd.DataFrame({"band": cal.band(pred), "err": actual - pred, "bought": actual > 0})
    by = frame.groupby("band")
    assert by.size().tolist() == cal.count and sum(cal.count) == len(pred)
    np.testing.assert_allclose(by["err"].mean(), cal.shift, rtol=1e-9)
    np.testing.assert_allclose(by["err"].var(ddof=1), cal.var, rtol=1e-9)
    np.testing.assert_allclose(by["bought"].mean(), cal.buy_rate, rtol=1e-12)
    # the expected values of the calibration customers add up to their actual total (bands' means)
    assert cal.expected(pred).sum() == pytest.approx(actual.sum(), rel=0.02)


@pytest.mark.parametrize("group", [50, 400])
def test_the_range_of_a_total_holds_about_as_often_as_stated_on_groups_it_never_saw(group):
    """Calibrate once on 3,000 past customers; draw 400 fresh groups from the same shop: about 90%
    of their actual totals fall inside the 90% range (binomial sd 1.5 points), and the coverage the
    report states (measured by :func:`forecast.coverage` on the calibration customers alone) agrees
    with it."""
    rng = np.random.default_rng(11)
    pred, actual = shop(3000, rng)
    cal = forecast.calibrate("SPEND_NEXT", pred, actual)
    inside = []
    for _ in range(400):
        p, a = shop(group, rng)
        t = cal.total(p, 0.9)
        assert t.low <= t.expected <= t.high and t.customers == group
        inside.append(t.low <= a.sum() <= t.high)
    fresh = float(np.mean(inside))
    assert 0.85 <= fresh <= 0.95, fresh
    stated = forecast.coverage("SPEND_NEXT", pred, actual, group, 0.9, seed=5, splits=400)
    assert stated.group == group and stated.splits == 400 and stated.customers == 3000
    assert 0.85 <= stated.share <= 0.95 and abs(stated.share - fresh) <= 0.06, (stated.share, fresh)


def test_a_wider_level_gives_a_wider_range_and_a_group_total_from_warehouse_aggregates_is_same():
    rng = np.random.default_rng(2)
    pred, actual = shop(1000, rng)
    cal = forecast.calibrate("SPEND_NEXT", pred, actual)
    group = pred[:120]
    t90, t99 = cal.total(group, 0.9), cal.total(group, 0.99)
    assert t99.low <= t90.low and t99.high >= t90.high and t90.expected == t99.expected
    counts = np.bincount(cal.band(group), minlength=len(cal.shift))
    again = cal.total_from(float(cal.expected(group).sum()), counts, 0.9)
    assert (again.low, again.high, again.customers) == pytest.approx((t90.low, t90.high, 120))


def test_money_counts_and_missing_values_read_as_people_write_them():
    assert fmt.money(12107.4, "EUR") == "€12,107" and fmt.money(-12.5, "USD", 2) == "−$12.50"
    assert fmt.money(3.0, "CHF").startswith("CHF") and fmt.money(float("nan"), "EUR") == fmt.MISSING
    assert fmt.money_range(11300, 12900, "GBP") == "£11,300–£12,900"
    assert fmt.number(775070.12) == "775,070" and fmt.number(-0.001, 2) == "0"
    assert fmt.count(0, "customer") == "no customers" and fmt.count(1, "customer") == "1 customer"
    assert fmt.units(3253.0) == "3,253 units" and fmt.percent(0.4512) == "45%"
    assert fmt.day("2026-09-01") == "1 Sep 2026" and fmt.number(None) == fmt.MISSING
    frame = pd.DataFrame(
        {"spend": [775070.12, np.nan], "customers": [1200, 3], "share": [0.1234, None]}
    )
    html = fmt.table(frame, currency="EUR", money_cols=["spend"], percent_cols=["share"]).to_html()
    assert "€775,070" in html and "12%" in html and "1,200" in html
    assert (
        "nan" not in html.lower() and fmt.MISSING in html and ">0<" not in html
    )  # no 0–n index column


def test_every_model_feature_and_table_has_words_without_underscores():
    for name in (*config.MODEL_NAMES, *(n + "_recalibrated" for n in config.MODEL_NAMES)):
        assert "_" not in words.model(name), name
    for col in (
        "DAYS_SINCE_FIRST_ORDER",
        "QTY_LAST_CHOCOLATE_CHIP",
        "TOPIC_SHARE_3",
        "BTYD_P_ALIVE",
    ):
        assert "_" not in words.feature(col) and words.feature(col).islower(), col
    for table in (
        "CLEAN_ORDERS",
        "REJECTED_ORDER_LINES",
        "RAW_CALLS",
        "EXCLUDED_ORDER_LINES",
        "TARGETS",
    ):
        assert "_" not in words.table(table) and not words.table(table).isupper(), table
    assert (
        words.model("last_period") == "same as last period" and words.version("v12") == "version 12"
    )


def test_targets_calibrated_side_by_side_equal_one_after_the_other():
    """Each target's calibration and measured coverage are the same whether the targets run in
    threads or in turn (each has its own seed): the run's ranges never depend on the machine."""
    rng = np.random.default_rng(11)
    cols = [shop(3000, rng) for _ in range(4)]
    pred = np.column_stack([p for p, _ in cols])
    actual = np.column_stack([a for _, a in cols])
    targets = ["SPEND_NEXT", "QTY_NEXT_A", "QTY_NEXT_B", "QTY_NEXT_C"]
    one = forecast.calibrate_targets(targets, pred, actual, 300, 0.8, 5, workers=1)
    many = forecast.calibrate_targets(targets, pred, actual, 300, 0.8, 5, workers=4)
    assert one == many
    assert len({c.share for c in one[1].values()}) > 1  # the targets differ (own data, own seed)
    assert one[1]["QTY_NEXT_B"] == forecast.coverage(
        "QTY_NEXT_B", pred[:, 2], actual[:, 2], 300, 0.8, 7
    )


def _coverage_one_split_at_a_time(pred, actual, group, level, seed, splits):
    """:func:`forecast.coverage` as its doc states it: one permutation, one calibration and one
    range per split, in a Python loop."""
    n = len(pred)
    size = int(max(1, min(group, n // 2)))
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(splits):
        order = rng.permutation(n)
        test, rest = order[:size], order[size:]
        t = forecast.calibrate("T", pred[rest], actual[rest]).total(pred[test], level)
        hits += t.low <= actual[test].sum() <= t.high
    return hits / splits


def test_coverage_computed_in_blocks_is_the_split_by_split_loop(monkeypatch):
    """Continuous and rounded forecasts, many of them equal (repeated band edges, edges at the
    minimum), groups up to half the customers, blocks of one split or of many: the same share as
    the loop."""
    rng = np.random.default_rng(7)
    compared = []
    for case in range(48):
        n = int(rng.integers(2, 1500))
        pred, actual = shop(n, rng)
        if case % 3 == 1:
            pred[rng.random(n) < 0.6] = 0.0
        if case % 2 == 1:  # a mass of equal forecasts above a few lower ones: some groups hold
            # forecasts below every calibration customer's, where the lowest edge is their minimum
            pred = np.where(rng.random(n) < 0.5, 2.0, pred + 2.0)
            pred[rng.random(n) < 0.01] = 0.0
        if case % 3 == 2:
            pred, actual = np.round(pred / 10), np.round(actual)
        group, level, splits = int(rng.integers(1, n + 1)), (0.5, 0.9, 0.99)[case % 3], 60
        if case % 4 == 0:
            monkeypatch.setattr(forecast, "COVERAGE_BLOCK", n)  # one split per block
        else:
            monkeypatch.setattr(forecast, "COVERAGE_BLOCK", 2_000_000)
        got = forecast.coverage("T", pred, actual, group, level, case, splits)
        want = _coverage_one_split_at_a_time(pred, actual, group, level, case, splits)
        assert got.share == want, (case, n, group)
        compared.append(want)
    assert 0 < np.mean(compared) < 1 and len(set(compared)) > 10
    with pytest.raises(ValueError, match="no calibration customers"):
        forecast.coverage("T", np.ones(1), np.ones(1), 1, 0.9, 0)
