"""Freshness: the ingest records the date range of the clean orders; a run date beyond it is said,
and a held-out
window that reaches past the data stops model comparison (issue 12, case 6)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd
import pytest
from realistic_corpus import CASES, write

from conftest import REPO
from customer_analytics import config, freshness, ingest, narrative
from customer_analytics import warehouse as wh
from customer_analytics.narrative import ingest as story


@pytest.fixture(scope="module")
def cd(tmp_path_factory):
    data = write("cd_log", tmp_path_factory.mktemp("cd"), seed=2, customers=80)
    warehouse = tmp_path_factory.mktemp("cd_wh")
    p = config.load(
        REPO,
        data_dir=str(data),
        warehouse_dir=str(warehouse),
        reports_dir=str(warehouse / "r"),
        **CASES["cd_log"],
    )
    s = wh.connect(p)
    ingest.run(s, p)
    yield s, p, pd.to_datetime(pd.read_csv(data / "cdnow.csv", dtype=str)["date"], format="%Y%m%d")
    s.close()
    wh.stop_local_server(warehouse)


def test_the_date_range_of_the_orders_is_recorded_and_read_back(cd):
    s, _, dates = cd
    f = freshness.freshness(s)
    assert (f.first, f.last) == (dates.min().to_pydatetime(), dates.max().to_pydatetime())
    row = s.sql(
        "SELECT COUNT(*) AS N FROM INGEST_LOG WHERE LAST_TS IS NULL AND SOURCE <> 'orders'"
    ).collect()[0]
    assert row["N"] == 3  # customers (derived), reviews, calls: no date range of their own


def test_a_run_date_beyond_the_data_is_said_with_both_dates_and_the_fix(cd):
    s, p, dates = cd
    f = freshness.freshness(s)
    last = dates.max().date()

    def note(run_date: dt.date, tolerance: int = freshness.DEFAULT_TOLERANCE_DAYS) -> str:
        return narrative.runs.run_date_note(f.last_day, run_date, f.days_after(run_date), tolerance)

    assert note(last + dt.timedelta(days=1)) == ""
    late = note(last + dt.timedelta(days=31))
    assert f"is 31 days after the last order in the data ({narrative.fmt.day(last)})" in late
    assert "Use an earlier run date" in late
    within = dataclasses.replace(p, run_date=last + dt.timedelta(days=1))
    assert (
        f"The run date, {narrative.fmt.day(within.run_date)}, is within the data"
        in story.freshness_note(s, ingest.run(s, p), within)
    )


def test_a_held_out_window_past_the_data_stops_with_the_dates_and_the_fix(cd):
    s, _, dates = cd
    f = freshness.freshness(s)
    last = dates.max().date()
    freshness.check_holdout(f, last + dt.timedelta(days=1), 60)  # the window ends with the data
    tolerated = last + dt.timedelta(days=freshness.DEFAULT_TOLERANCE_DAYS)  # a weekend's lag
    freshness.check_holdout(f, tolerated, 60)
    with pytest.raises(freshness.FreshnessError, match="its last 3 days have no order"):
        freshness.check_holdout(f, tolerated + dt.timedelta(days=1), 60)
    late = last + dt.timedelta(days=30)
    with pytest.raises(
        freshness.FreshnessError,
        match=rf"held-out window {late - dt.timedelta(days=60)} to {late - dt.timedelta(days=1)} "
        rf"reaches past the data, which ends {last}: its last 29 days.*at most {tolerated}",
    ):
        freshness.check_holdout(f, late, 60)
    with pytest.raises(freshness.FreshnessError, match="holds no order"):
        freshness.check_holdout(freshness.Freshness(None, None), late, 60)
