"""Date layouts: declared (Snowflake formats, shortcuts), detected, or ambiguous -> a stop that
names the setting.

Parsing runs in the embedded warehouse; every expected value here is computed in Python,
independently.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import snowflake.snowpark.functions as F

from conftest import REPO, make_params
from customer_analytics import config, contract, ingest
from customer_analytics import warehouse as wh
from customer_analytics.contract import Reason
from customer_analytics.ingest import dates
from customer_analytics.narrative import ingest as story

D = dt.datetime
#: text -> what each shortcut must give (None: it must not parse it)
CASES = {
    "12/1/2010 8:26": {"us": D(2010, 12, 1, 8, 26), "eu": D(2010, 1, 12, 8, 26)},
    "12/13/2010 08:26:10": {"us": D(2010, 12, 13, 8, 26, 10)},
    "3/7/2024 1:09 PM": {"us": D(2024, 3, 7, 13, 9)},  # US spreadsheets' 12-hour clock
    "3/7/2024 1:09:05 pm": {"us": D(2024, 3, 7, 13, 9, 5)},
    "12/31/2024 12:00 AM": {"us": D(2024, 12, 31, 0, 0)},
    "12/31/2024 12:30 PM": {"us": D(2024, 12, 31, 12, 30)},
    "20210101": {"iso": D(2021, 1, 1)},
    "20210101T101112": {"iso": D(2021, 1, 1, 10, 11, 12)},
    "2021-03-01T10:00:00.250+02:00": {"iso": D(2021, 3, 1, 10, 0, 0, 250000)},
    "2024-03-07 13:09:00 -0500": {"iso": D(2024, 3, 7, 13, 9)},  # Shopify, Ruby
    "2024-03-07 13:09:00 UTC": {"iso": D(2024, 3, 7, 13, 9)},
    "2024-03-07T13:09+0200": {"iso": D(2024, 3, 7, 13, 9)},
    "2024-03-07 13:09:00 -05:0": {},
    "2024-03-07 13:09:00 EST": {},
    "1.3.2021": {"eu": D(2021, 3, 1)},
    "31.12.2021 23:59": {"eu": D(2021, 12, 31, 23, 59)},
    "31-12-2021": {"eu": D(2021, 12, 31)},
    "2024/03/07": {"ymd": D(2024, 3, 7)},  # year first: East Asian, South African exports
    "2024/3/7 13:09": {"ymd": D(2024, 3, 7, 13, 9)},
    "2024.03.07 13:09:05": {"ymd": D(2024, 3, 7, 13, 9, 5)},
    "2024/02/30": {},
    "2024/13/01": {},
    "7 Mar 2024": {"names": D(2024, 3, 7)},  # English month names, any case
    "07-MAR-2024 13:09": {"names": D(2024, 3, 7, 13, 9)},
    "Mar 7, 2024": {"names": D(2024, 3, 7)},
    "March 7, 2024 13:09": {"names": D(2024, 3, 7, 13, 9)},
    "7 march 2024": {"names": D(2024, 3, 7)},
    "30 Feb 2024": {},
    "Mrz 7, 2024": {},
    "1609459200": {"epoch_s": D(2021, 1, 1)},
    "1609459200.5": {"epoch_s": D(2021, 1, 1, 0, 0, 0, 500000)},
    "1609459200123": {"epoch_ms": D(2021, 1, 1, 0, 0, 0, 123000)},
    "2021-02-30": {},
    "13/13/2021 1:00": {},
    "99999999999999999999": {},  # far outside the range: no overflow, just not a date
    "20211340": {},
    "12/1/1850": {},  # parses, but before the contract's range
    # two-digit years (Excel's m/d/yy h:mm): 00-69 are 2000-2069, 70-99 are 1970-1999; the year
    # 10 of a four-digit reading is not a date of the range
    "12/1/10 8:26": {"us": D(2010, 12, 1, 8, 26), "eu": D(2010, 1, 12, 8, 26)},
    "12/13/10 08:26:10": {"us": D(2010, 12, 13, 8, 26, 10)},
    "3/7/24 1:09 PM": {"us": D(2024, 3, 7, 13, 9)},
    "31.12.99": {"eu": D(1999, 12, 31)},
    "1-3-69 23:59": {"eu": D(2069, 3, 1, 23, 59)},
    "1/3/70": {},  # 1970: before the contract's range
    "12/1/10x": {},
    "12/1/010": {},
    "10/12/01": {"us": D(2001, 10, 12), "eu": D(2001, 12, 10)},  # never year first
    # a spreadsheet's serial dates (a date column saved with the General format)
    "40513": {"excel": D(2010, 12, 1)},
    "40513.35138888889": {"excel": D(2010, 12, 1, 8, 26)},
    "46082.604166666664": {"excel": D(2026, 3, 1, 14, 30)},
    "32874": {"excel": D(1990, 1, 1)},
    "32873.99": {},  # 1989: before the contract's range
    "73416": {},  # 2100
    "4051": {},
    "40513.": {},
}


@pytest.fixture(scope="module")
def wh_session(raw_dir, tmp_path_factory):
    p = make_params(raw_dir, tmp_path_factory.mktemp("dates_wh"))
    s = wh.connect(p)
    yield s, p
    s.close()
    wh.stop_local_server(p.warehouse_dir)


def _values_table(s, values: list[str]):
    rows = ", ".join(f"({i}, '{v}')" for i, v in enumerate(values, start=1))
    s.sql(
        "CREATE OR REPLACE TABLE DATE_VALUES (LINE_NO INT, S VARCHAR) AS SELECT * FROM (VALUES "
        f"{rows})"
    ).collect()
    return s.table("DATE_VALUES")


def test_every_shortcut_parses_its_layout_and_nothing_else(wh_session):
    s, _ = wh_session
    t = _values_table(s, list(CASES))
    cols = [
        F.iff(
            dates.in_range(dates.parse(F.col("S"), parts)),
            F.to_char(dates.parse(F.col("S"), parts), "YYYY-MM-DD HH24:MI:SS.FF6"),
            F.lit(None),
        ).alias(name.upper())
        for name, parts in contract.DATE_LAYOUTS.items()
    ]
    got = t.select("S", *cols).to_pandas().set_index("S")
    for text, want in CASES.items():
        for name in contract.DATE_LAYOUTS:
            value = got.loc[text, name.upper()]
            expected = want.get(name)
            assert (None if pd.isna(value) else value) == (
                None if expected is None else expected.strftime("%Y-%m-%d %H:%M:%S.%f")
            ), (text, name)


def test_detection_counts_the_distinct_values_each_layout_parses(wh_session):
    s, _ = wh_session
    t = _values_table(s, ["12/13/2010 8:26", "12/1/2010 8:26", "12/1/2010 8:26", "1/2/2011 10:00"])
    n, counts = dates.detect_counts(t, "S")
    assert n == 3 and counts == {
        "iso": 0,
        "us": 3,
        "eu": 2,
        "ymd": 0,
        "names": 0,
        "epoch_s": 0,
        "epoch_ms": 0,
        "excel": 0,
    }
    assert dates.choose(counts) == ["us"]
    assert dates.choose({"iso": 0, "us": 2, "eu": 2}) == ["us", "eu"]
    assert dates.choose({"iso": 0, "us": 0}) == []


def test_every_format_element_is_translated_for_the_embedded_warehouse():
    """The elements a declared format may use are exactly ones sqlglot maps from Snowflake to
    strptime."""
    from sqlglot.dialects.snowflake import Snowflake

    assert set(contract.FORMAT_ELEMENTS) <= set(Snowflake.TIME_MAPPING)
    for bad in ("YY/MM/DD", "DD.MM.YYYY TZH:TZM", "HH24:MI", "%d.%m.%Y", "YYYY-MM-DD HH"):
        with pytest.raises(ValueError):
            contract.layout_parts(bad)


@pytest.mark.parametrize(
    "value,message",
    [
        ({"orders": {"ts": "YY-MM-DD"}}, r"date_formats\.orders\.ts.*two-digit year \(YY\) is"),
        ({"orders": {"quantity": "us"}}, r"not a date field of orders"),
        ({"shipments": {"ts": "us"}}, r"unknown source 'shipments'"),
        ("{orders: [us]}", r"must map date fields"),
    ],
)
def test_bad_date_formats_are_named(value, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load(REPO, date_formats=value)


def test_date_formats_from_the_command_line_as_a_string():
    p = config.load(
        REPO,
        date_formats='{orders: {ts: "dd.mm.yyyy hh24:mi"}, customers: {signup_date: [eu, iso]}}',
    )
    assert p.date_formats == {
        "orders": {"ts": ("DD.MM.YYYY HH24:MI",)},
        "customers": {"signup_date": contract.DATE_LAYOUTS["eu"] + ("iso",)},
    }


# --------------------------------------------------------------------------- through the whole
# ingest
def _orders_csv(path, stamps: list[str]) -> None:
    pd.DataFrame(
        {
            "customer": [f"K{i % 7}" for i in range(len(stamps))],
            "when": stamps,
            "qty": 1,
            "total": 2.5,
        }
    ).to_csv(path, index=False)


def _run(wh_session, folder, stamps, **over):
    s, base = wh_session
    folder.mkdir(parents=True, exist_ok=True)
    _orders_csv(folder / "orders.csv", stamps)
    p = make_params(
        folder,
        base.warehouse_dir,
        orders_file="orders.csv",
        customers_file=None,
        reviews_file=None,
        calls_dir=None,
        columns={
            "orders": {
                "customer_id": "customer",
                "ts": "when",
                "quantity": "qty",
                "amount": "total",
            }
        },
        **over,
    )
    return {c.source: c for c in ingest.run(s, p)}


US = [
    f"{m}/{d}/2011 {h}:{mi:02d}"
    for m, d, h, mi in [
        (12, 1, 8, 26),
        (1, 13, 9, 5),
        (2, 28, 17, 0),
        (3, 9, 10, 30),
        (11, 30, 23, 59),
    ]
]


def test_us_dates_are_detected_said_and_parsed_in_the_warehouse(wh_session, tmp_path):
    s, _ = wh_session
    counts = _run(wh_session, tmp_path, US * 3)
    o = counts["orders"]
    assert o.accepted == o.read == 15 and o.rejected == 0
    (layout,) = o.layouts
    assert (layout["field"], layout["column"], layout["how"], layout["name"]) == (
        "ts",
        "when",
        "detected",
        "us",
    )
    got = sorted(r["TS"] for r in s.table("CLEAN_ORDER_LINES").select("TS").distinct().collect())
    assert got == sorted(dt.datetime.strptime(x, "%m/%d/%Y %H:%M") for x in US)
    note = story.layouts_note(list(counts.values()))
    assert "`when`: detected **us**" in note and "100.0% of 5 distinct values" in note


def test_two_digit_years_are_detected_or_declared(wh_session, tmp_path):
    """Excel writes ``m/d/yy h:mm`` when a cell has that format: every line used to be rejected
    (the year 11 is not in the range), with no setting that could read it."""
    s, _ = wh_session
    short = [x.replace("/2011 ", "/11 ") for x in US]
    o = _run(wh_session, tmp_path / "detected", short * 3)["orders"]
    assert o.accepted == o.read == 15 and o.layouts[0]["name"] == "us"
    got = sorted(r["TS"] for r in s.table("CLEAN_ORDER_LINES").select("TS").distinct().collect())
    assert got == sorted(dt.datetime.strptime(x, "%m/%d/%y %H:%M") for x in short)
    eu = ["01/03/21 14:30", "02/03/21 09:05", "28/02/98 10:00", "31/02/21 10:00"]
    o = _run(
        wh_session,
        tmp_path / "declared",
        eu,
        max_reject_share=0.9,
        date_formats={"orders": {"ts": contract.layout_parts("dd/mm/yy hh24:mi")}},
    )["orders"]
    assert (o.accepted, o.rejected, o.reasons) == (3, 1, {Reason.BAD_DATE: 1})
    assert o.layouts[0]["parts"] == ("DD/MM/YYYY HH24:MI",)
    got = sorted(r["TS"] for r in s.table("CLEAN_ORDER_LINES").select("TS").distinct().collect())
    assert got == [D(1998, 2, 28, 10), D(2021, 3, 1, 14, 30), D(2021, 3, 2, 9, 5)]


def test_spreadsheet_serial_dates_are_detected(wh_session, tmp_path):
    """A date column saved with the General format holds serial numbers (40513.35 for
    1 December 2010, 08:24): every line was rejected as 'unparseable date'."""
    s, _ = wh_session
    day0 = dt.datetime(1899, 12, 30)
    stamps = [D(2010, 12, 1, 8, 26), D(2011, 1, 13, 9, 5), D(2011, 2, 28), D(2011, 11, 30, 23, 59)]
    serials = [f"{(t - day0) / dt.timedelta(days=1):.10f}".rstrip("0").rstrip(".") for t in stamps]
    o = _run(wh_session, tmp_path, serials * 2)["orders"]
    assert o.accepted == o.read == 8 and o.layouts[0]["name"] == "excel"
    got = sorted(r["TS"] for r in s.table("CLEAN_ORDER_LINES").select("TS").distinct().collect())
    assert got == stamps


def test_iso_basic_dates_need_no_setting(wh_session, tmp_path):
    s, _ = wh_session
    stamps = ["19970101", "19970212", "19971231", "19980630T101500"]
    o = _run(wh_session, tmp_path, stamps)["orders"]
    assert (o.accepted, o.layouts[0]["name"], o.layouts[0]["how"]) == (4, "iso", "detected")
    got = sorted(r["TS"] for r in s.table("CLEAN_ORDER_LINES").select("TS").collect())
    assert got == [D(1997, 1, 1), D(1997, 2, 12), D(1997, 12, 31), D(1998, 6, 30, 10, 15)]


@pytest.mark.parametrize(
    "stamps,layout,fmt",
    [
        (
            ["2024/03/07 13:09", "2024/3/8 9:05", "2024/12/31 23:59", "2025/01/02 00:00"],
            "ymd",
            "%Y/%m/%d %H:%M",
        ),
        (
            ["Mar 7, 2024", "Mar 8, 2024", "Dec 31, 2024", "Jan 2, 2025"],
            "names",
            "%b %d, %Y",
        ),
    ],
)
def test_year_first_and_month_name_dates_need_no_setting(wh_session, tmp_path, stamps, layout, fmt):
    s, _ = wh_session
    o = _run(wh_session, tmp_path, stamps)["orders"]
    assert (o.accepted, o.rejected) == (4, 0)
    assert (o.layouts[0]["name"], o.layouts[0]["how"]) == (layout, "detected")
    got = sorted(r["TS"] for r in s.table("CLEAN_ORDER_LINES").select("TS").collect())
    assert got == sorted(dt.datetime.strptime(x, fmt) for x in stamps)


def test_ambiguous_dates_stop_with_the_layouts_and_the_setting_then_a_declaration_settles_it(
    wh_session, tmp_path
):
    s, _ = wh_session
    stamps = ["01/02/2021", "03/04/2021", "05/06/2021 10:00"]
    with pytest.raises(
        ingest.IngestError,
        match=r"orders\.csv: the dates in 'when' fit several layouts, e\.g\. "
        r"'01/02/2021', '03/04/2021', '05/06/2021 10:00': us \(.*\); eu \(.*\)\. Nothing was "
        r"replaced\. Fix: .*date_formats: \{orders: \{ts: us\}\}",
    ):
        _run(wh_session, tmp_path / "first", stamps)
    counts = _run(
        wh_session,
        tmp_path / "again",
        stamps,
        date_formats={"orders": {"ts": contract.DATE_LAYOUTS["eu"]}},
    )
    assert counts["orders"].layouts[0]["how"] == "declared"
    got = sorted(r["TS"] for r in s.table("CLEAN_ORDER_LINES").select("TS").collect())
    assert got == [D(2021, 2, 1), D(2021, 4, 3), D(2021, 6, 5, 10)]


def test_a_declared_snowflake_format_rejects_what_does_not_fit_and_names_the_layout(
    wh_session, tmp_path
):
    s, _ = wh_session
    stamps = ["01.03.2021 14:30", "02.03.2021 09:05", "2021-03-03 10:00", "31.02.2021 10:00"]
    o = _run(
        wh_session,
        tmp_path,
        stamps,
        max_reject_share=0.9,
        date_formats={"orders": {"ts": ("DD.MM.YYYY HH24:MI",)}},
    )["orders"]
    assert (o.accepted, o.rejected, o.reasons) == (2, 2, {Reason.BAD_DATE: 2})
    assert o.layouts[0]["parts"] == ("DD.MM.YYYY HH24:MI",) and o.layouts[0]["how"] == "declared"
