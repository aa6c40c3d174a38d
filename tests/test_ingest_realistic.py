"""Realistic exports (tests/realistic_corpus.py) ingested through settings alone: accounting, dates,
returns
(net spend against an independent pandas computation), guest orders, customer attributes, report
statements."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
import snowflake.snowpark.functions as F
from realistic_corpus import CASES, write

from conftest import REPO, ingest_and_read
from customer_analytics import config, contract, ingest
from customer_analytics import warehouse as wh
from customer_analytics.contract import Excluded, Reason
from customer_analytics.ingest import checks as ck
from customer_analytics.ingest.plan import plan_source
from customer_analytics.narrative import ingest as story


def settings_params(case: str, data, warehouse, **extra) -> config.Params:
    """Parameters exactly as a user sets them: env.yaml plus the case's settings as overrides."""
    return config.load(
        REPO,
        data_dir=str(data),
        warehouse_dir=str(warehouse),
        reports_dir=str(warehouse / "r"),
        **{**CASES[case], **extra},
    )


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """Every case written once and ingested into its own warehouse: (params, session, counts) by
    case."""
    out = {}
    for case in CASES:
        data = write(case, tmp_path_factory.mktemp(case), seed=11)
        p = settings_params(case, data, tmp_path_factory.mktemp(f"{case}_wh"))
        s = wh.connect(p)
        out[case] = (p, s, {c.source: c for c in ingest.run(s, p)})
    yield out
    for p, s, _ in out.values():
        s.close()
        wh.stop_local_server(p.warehouse_dir)


def gift_frame(data) -> pd.DataFrame:
    """The gift retailer's file read with pandas alone (the independent computation)."""
    df = pd.read_csv(
        data / "online_retail.csv",
        dtype={"CustomerID": str, "InvoiceNo": str},
        keep_default_na=False,
    )
    df["ts"] = pd.to_datetime(df["InvoiceDate"], format="%m/%d/%Y %H:%M")
    df["guest"] = df["CustomerID"].str.strip().str.lower().isin(("", *contract.DEFAULT_GUEST_IDS))
    df["is_return"] = df["InvoiceNo"].str.startswith("C") | (df["Quantity"] < 0)
    df["qty"] = np.where(df["is_return"], -df["Quantity"].abs(), df["Quantity"])
    df["amount"] = df["qty"] * df["UnitPrice"]
    return df


@pytest.mark.parametrize("case", list(CASES))
def test_every_case_ingests_through_settings_alone_and_balances(shop, case):
    p, s, counts = shop[case]
    for c in counts.values():
        assert c.read == c.accepted + c.rejected + c.excluded + c.sampled_out, c
    o = counts["orders"]
    assert o.accepted > 0 and o.rejected == 0, o.reasons
    # only the export that writes order fields once per order has lines to fill (the invoices'
    # guest lines have no customer on any line of their invoice: nothing to take)
    assert bool(o.filled) == (case == "shop_export"), o.filled
    assert wh.row_count(s, "CLEAN_ORDER_LINES") == o.accepted
    assert wh.row_count(s, "EXCLUDED_ORDER_LINES") == o.excluded
    log = s.table("INGEST_LOG").to_pandas().set_index("SOURCE")
    assert (
        log.loc["orders", "EXCLUDED"] == o.excluded and log.loc["orders", "ACCEPTED"] == o.accepted
    )


@pytest.mark.parametrize(
    "case,layout,how",
    [
        ("cd_log", "iso", "detected"),
        ("gift_invoices", "us", "detected"),
        ("eu_shop", "", "declared"),
        ("epoch_events", "epoch_s", "detected"),
        ("shop_export", "iso", "detected"),
    ],
)
def test_each_date_layout_is_detected_or_declared_and_said(shop, case, layout, how):
    _, _, counts = shop[case]
    (choice,) = counts["orders"].layouts
    assert (choice["name"], choice["how"]) == (layout, how)
    note = story.layouts_note(list(counts.values()))
    line = next(x for x in note.splitlines() if f"`{choice['column']}`: " in x)
    assert ("detected" in line) == (how == "detected") and ("declared" in line) == (
        how == "declared"
    )


def test_iso_basic_dates_of_the_cd_log_and_customers_derived_without_a_customers_file(shop):
    p, s, counts = shop["cd_log"]
    raw = pd.read_csv(p.data_dir / "cdnow.csv", dtype={"user_id": str, "date": str})
    got = s.table("CLEAN_ORDER_LINES").select("CUSTOMER_ID", "TS", "QUANTITY").to_pandas()
    want = raw.assign(TS=pd.to_datetime(raw["date"], format="%Y%m%d"))
    assert sorted(zip(got["CUSTOMER_ID"], got["TS"], strict=True)) == sorted(
        zip(want["user_id"], want["TS"], strict=True)
    )
    assert (
        counts["customers"].status == "derived"
        and counts["customers"].derived == raw["user_id"].nunique()
    )


def test_gift_invoices_net_spend_equals_an_independent_pandas_computation(shop):
    p, s, counts = shop["gift_invoices"]
    df = gift_frame(p.data_dir)
    known = df[~df["guest"]]
    got = (
        s.table("CLEAN_ORDERS")
        .group_by("CUSTOMER_ID")
        .agg(F.sum("ORDER_TOTAL").alias("NET"))
        .to_pandas()
    )
    want = known.groupby("CustomerID")["amount"].sum()
    got = got.set_index("CUSTOMER_ID")["NET"].sort_index()
    assert list(got.index) == list(want.sort_index().index)
    np.testing.assert_allclose(got.values, want.sort_index().values, rtol=1e-9)
    assert (
        want < known[known["qty"] > 0].groupby("CustomerID")["amount"].sum()
    ).any()  # returns made it net
    lines = s.table("CLEAN_ORDER_LINES")
    assert lines.filter(F.col("IS_RETURN")).count() == int(known["is_return"].sum()) > 0
    assert lines.filter(F.col("IS_RETURN") & (F.col("QUANTITY") >= 0)).count() == 0
    summary = ingest.returns_summary(s)
    sold = known.loc[~known["is_return"], "amount"].sum()
    returned = -known.loc[known["is_return"], "amount"].sum()
    assert summary["return_lines"] == int(known["is_return"].sum())
    assert summary["rate"] == pytest.approx(returned / sold, rel=1e-9)
    note = story.returns_note(summary)
    assert f"a **return rate of {returned / sold:.1%}**" in note and "**net** of returns" in note


def test_net_spend_reaches_the_features_while_orders_count_purchases(shop):
    p, s, _ = shop["gift_invoices"]
    from customer_analytics import features as ft

    df = gift_frame(p.data_dir)
    known = df[~df["guest"]]
    cutoff = dt.date(2011, 10, 1)
    got = ft.features_at(s, cutoff, 60, ft.product_types(s)).to_pandas().set_index("CUSTOMER_ID")
    past = known[known["ts"] < pd.Timestamp(cutoff)]
    spend = past.groupby("CustomerID")["amount"].sum()
    purchases = past[~past["is_return"]].groupby("CustomerID")["InvoiceNo"].nunique()
    label = (
        known[
            (known["ts"] >= pd.Timestamp(cutoff))
            & (known["ts"] < pd.Timestamp(cutoff) + pd.Timedelta(days=60))
        ]
        .groupby("CustomerID")["amount"]
        .sum()
    )
    np.testing.assert_allclose(
        got["SPEND"], spend.reindex(got.index).fillna(0).values, rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(got["N_ORDERS"], purchases.reindex(got.index).fillna(0).values)
    np.testing.assert_allclose(
        got[ft.LABEL_SPEND], label.reindex(got.index).fillna(0).values, rtol=1e-9, atol=1e-9
    )


def test_guest_orders_are_excluded_with_their_reason_and_their_revenue_kept(shop):
    p, s, counts = shop["gift_invoices"]
    df = gift_frame(p.data_dir)
    o = counts["orders"]
    assert o.excluded == o.excluded_reasons[Excluded.GUEST] == int(df["guest"].sum()) > 0
    assert o.rejected == 0 and o.reject_share == 0  # guests are not errors
    ids = {
        r["CUSTOMER_ID"]
        for r in s.table("CLEAN_ORDER_LINES").select("CUSTOMER_ID").distinct().collect()
    }
    assert not ids & {"", "(blank)"} and None not in ids
    guests = ingest.guest_orders(s)
    assert guests["lines"] == int(df["guest"].sum())
    assert guests["revenue"] == pytest.approx(df.loc[df["guest"], "amount"].sum(), rel=1e-9)
    assert guests["share"] == pytest.approx(guests["revenue"] / df["amount"].sum(), rel=1e-9)
    monthly = ingest.guest_monthly(s)
    assert monthly["guest_revenue"].sum() == pytest.approx(guests["revenue"], rel=1e-9)
    assert "guest orders, excluded" in story.guest_note(guests, "EUR")
    assert ingest.suspect_customers(
        s
    ).empty  # the placeholders are gone, nobody else is implausible


def test_customer_attributes_on_order_lines_become_the_most_frequent_value(shop):
    p, s, _ = shop["gift_invoices"]
    df = gift_frame(p.data_dir)
    known = df[~df["guest"]]
    counts = known.groupby(["CustomerID", "Country"]).size().reset_index(name="n")
    want = (
        counts.sort_values(["CustomerID", "n", "Country"], ascending=[True, False, True])
        .groupby("CustomerID")["Country"]
        .first()
        .str.upper()
    )
    got = (
        s.table("CLEAN_CUSTOMERS")
        .select("CUSTOMER_ID", "COUNTRY")
        .to_pandas()
        .set_index("CUSTOMER_ID")["COUNTRY"]
    )
    assert got.sort_index().to_dict() == want.sort_index().to_dict()
    assert got.nunique() > 2


def test_eu_dates_of_orders_and_customers(shop):
    p, s, counts = shop["eu_shop"]
    k = pd.read_csv(p.data_dir / "kunden.csv")
    got = s.table("CLEAN_CUSTOMERS").select("CUSTOMER_ID", "SIGNUP_DATE", "CHANNEL").to_pandas()
    want = dict(
        zip(
            k["Kundennummer"],
            pd.to_datetime(k["Anmeldedatum"], format="%d.%m.%Y").dt.date,
            strict=True,
        )
    )
    assert {r.CUSTOMER_ID: r.SIGNUP_DATE for r in got.itertuples()} == want
    assert set(got["CHANNEL"]) == {c.lower() for c in k["Kanal"]}
    assert counts["customers"].layouts[0]["how"] == "declared"


def test_a_shop_export_with_order_fields_on_first_rows_only_is_read_whole(shop):
    p, s, counts = shop["shop_export"]
    raw = pd.read_csv(p.data_dir / "orders_export.csv", dtype=str, keep_default_na=False)
    below = int((raw["Email"] == "").sum())  # rows under an order's first
    o = counts["orders"]
    assert below > 0 and o.filled == {"Created at": below, "Email": below}
    assert (o.accepted, o.rejected, o.excluded) == (len(raw), 0, 0)
    got = s.table("CLEAN_ORDER_LINES").select("ORDER_ID", "CUSTOMER_ID", "TS").to_pandas()
    first = raw[raw["Email"] != ""].set_index("Name")
    want_ts = pd.to_datetime(first["Created at"].str.slice(0, 19))
    assert (got["CUSTOMER_ID"] == got["ORDER_ID"].map(first["Email"])).all()
    assert (got["TS"] == got["ORDER_ID"].map(want_ts)).all()
    countries = s.table("CLEAN_CUSTOMERS").select("CUSTOMER_ID", "COUNTRY").to_pandas()
    home = first.groupby("Email")["Billing Country"].agg(lambda x: x.mode().min())
    assert dict(zip(countries["CUSTOMER_ID"], countries["COUNTRY"], strict=True)) == home.to_dict()


@pytest.mark.parametrize(
    "group,suffix",
    [(".", ""), ("\u202f", "\u00a0€")],  # German: 1.234,50; French: 1 234,50 € (no-break spaces)
)
def test_a_semicolon_export_with_decimal_commas_is_read_like_its_comma_twin(
    shop, tmp_path, group, suffix
):
    """Spreadsheets where the comma is the decimal mark write ';' between fields and prices as
    ``5,10`` (here also ``1.234,50`` or ``1 234,50 €`` with thousands grouped)."""
    p, s, counts = shop["eu_shop"]
    data = tmp_path / "semicolons"
    data.mkdir()
    for f in p.data_dir.glob("*.csv"):
        with f.open(encoding="utf-8", newline="") as src:
            rows = list(csv.reader(src))
        if f.name == "bestellungen.csv":
            price = rows[0].index("Einzelpreis")
            for row in rows[1:]:  # scaled x1000 so that thousands occur (compared scaled back)
                whole, cents = f"{1000 * float(row[price]):.2f}".split(".")
                row[price] = f"{int(whole):,}".replace(",", group) + "," + cents + suffix
            assert any(group in row[price] for row in rows[1:])
        with (data / f.name).open("w", encoding="utf-8", newline="") as out:
            csv.writer(out, delimiter=";").writerows(rows)
    twin = settings_params("eu_shop", data, tmp_path / "wh")
    s2 = wh.connect(twin)
    try:
        got = {c.source: c for c in ingest.run(s2, twin)}
        assert got["orders"].decimal_comma == ["Einzelpreis"] and not counts["orders"].decimal_comma
        assert got["orders"].currency_signs == ({"Einzelpreis": "€"} if suffix else {})
        assert "decimal comma in 'Einzelpreis'" in story.summary(list(got.values()))
        for source in ("orders", "customers"):
            assert (got[source].read, got[source].accepted, got[source].rejected) == (
                counts[source].read,
                counts[source].accepted,
                counts[source].rejected,
            )
        for table in ("CLEAN_ORDER_LINES", "CLEAN_CUSTOMERS"):
            want, have = s.table(table).to_pandas(), s2.table(table).to_pandas()
            money = [
                c for c in ("UNIT_PRICE", "AMOUNT") if c in want and table != "CLEAN_CUSTOMERS"
            ]
            assert money or table == "CLEAN_CUSTOMERS"
            have[money] = have[money] / 1000
            key = [c for c in want.columns if c not in money]
            have = have[list(want.columns)].sort_values(key, ignore_index=True)
            want = want.sort_values(key, ignore_index=True)
            pd.testing.assert_frame_equal(have[key], want[key])
            pd.testing.assert_frame_equal(have[money], want[money], rtol=1e-9)
    finally:
        s2.close()
        wh.stop_local_server(twin.warehouse_dir)


def test_an_invoice_export_through_pandas_and_a_spreadsheet_is_read_like_the_original(
    shop, tmp_path
):
    """The invoice log as it often arrives: customer ids written as floats by pandas (``12346.0``)
    and prices formatted by a spreadsheet with a currency sign and thousands separators
    (``$2,550.00``; the prices are scaled ×1000 so that thousands occur)."""
    p, s, counts = shop["gift_invoices"]
    data = tmp_path / "spreadsheet"
    data.mkdir()
    with (p.data_dir / "online_retail.csv").open(encoding="utf-8", newline="") as src:
        rows = list(csv.reader(src))
    cid, price = rows[0].index("CustomerID"), rows[0].index("UnitPrice")
    for row in rows[1:]:
        row[cid] = f"{row[cid]}.0" if row[cid].isdigit() else row[cid]
        x = 1000 * float(row[price])
        row[price] = ("-" if x < 0 else "") + f"${abs(x):,.2f}"
    with (data / "online_retail.csv").open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows(rows)
    assert any("," in r[price] for r in rows[1:]) and any(r[cid].endswith(".0") for r in rows[1:])
    twin = settings_params("gift_invoices", data, tmp_path / "wh")
    s2 = wh.connect(twin)
    try:
        got = {c.source: c for c in ingest.run(s2, twin)}["orders"]
        assert (got.thousands, got.currency_signs) == (["UnitPrice"], {"UnitPrice": "$"})
        o = counts["orders"]
        assert (got.read, got.accepted, got.rejected, got.excluded) == (
            o.read,
            o.accepted,
            o.rejected,
            o.excluded,
        )
        text = story.summary([got])
        assert "thousands separators in 'UnitPrice'" in text
        assert "Currency signs removed from the amounts in 'UnitPrice' ($)." in text
        assert twin.currency == "EUR"  # env.yaml's: the corpus case does not set it
        assert "written with $, the run's currency is EUR (€)" in story.summary([got], params=twin)
        usd = dataclasses.replace(twin, currency="USD")
        assert "Check the currency" not in story.summary([got], params=usd)
        want = s.table("CLEAN_ORDER_LINES").to_pandas()
        have = s2.table("CLEAN_ORDER_LINES").to_pandas()
        money = [c for c in ("UNIT_PRICE", "AMOUNT") if c in want.columns]
        assert money
        have[money] = have[money] / 1000
        key = ["LINE_NO"]
        have, want = (
            have.sort_values(key, ignore_index=True),
            want.sort_values(key, ignore_index=True),
        )
        pd.testing.assert_frame_equal(have.drop(columns=money), want.drop(columns=money))
        pd.testing.assert_frame_equal(have[money], want[money], rtol=1e-9)
    finally:
        s2.close()
        wh.stop_local_server(twin.warehouse_dir)


def test_numbers_with_a_decimal_comma_thousands_or_a_currency_sign(shop):
    _, s, _ = shop["eu_shop"]
    # value -> read as plain, in a decimal-comma column, in a column grouping thousands with commas
    values = {
        "3,50": (None, 3.5, None),
        "1.234,5": (None, 1234.5, None),
        "1.234": (1.234, 1234.0, 1.234),  # in a decimal-comma column the dot groups thousands
        "-12,75": (None, -12.75, None),
        "12.5": (12.5, 12.5, 12.5),  # a plain number stays one
        "7": (7.0, 7.0, 7.0),
        "1.23,4": (None, None, None),
        "1,234.50": (None, None, 1234.5),
        "-12,345,678.5": (None, None, -12345678.5),
        "1,234": (None, 1.234, 1234.0),
        "1,23.5": (None, None, None),
        "12,3456.5": (None, None, None),
        "3,": (None, None, None),
        "€3,50": (None, 3.5, None),  # the sign is dropped
        "$1,234.50": (None, None, 1234.5),
        "-$3.50": (-3.5, -3.5, -3.5),
        "$ -3.50": (-3.5, -3.5, -3.5),
        "3,50 €": (None, 3.5, None),
        "3,50\u00a0€": (None, 3.5, None),  # a no-break space (French and German spreadsheets)
        "1.234,50\u202f€": (None, 1234.5, None),
        "£12": (12.0, 12.0, 12.0),
        "$$3": (None, None, None),
        "3$5": (None, None, None),
        "€": (None, None, None),
        # ISO codes and local signs written with letters (multi-currency shops, payment exports)
        "USD 3.50": (3.5, 3.5, 3.5),
        "3,50 EUR": (None, 3.5, None),
        "EUR1.234,50": (None, 1234.5, None),
        "-R$ 3,50": (None, -3.5, None),  # Brazil
        "US$1,234.50": (None, None, 1234.5),
        "3,50\u00a0zł": (None, 3.5, None),  # Poland
        "1 234 kr": (1234.0, 1234.0, 1234.0),  # Sweden, Norway, Denmark
        "usd 3.50": (None, None, None),  # codes in capitals only
        "USDX 3.50": (None, None, None),
        "XYZ 3.50": (None, None, None),  # not a currency
        "USD": (None, None, None),
        "USD 3.50 EUR": (None, None, None),  # one sign per amount
        "1e3 EUR": (None, None, None),
        # accounting negatives: a spreadsheet's Accounting format, accounting software
        "(3.50)": (-3.5, -3.5, -3.5),
        "($1,234.50)": (None, None, -1234.5),
        "(3,50 €)": (None, -3.5, None),
        "(-3.50)": (None, None, None),  # a sign inside: which one is meant?
        "(3.50": (None, None, None),
        "(n/a)": (None, None, None),
        # thousands grouped by spaces (French) or apostrophes (Swiss), never a decimal mark
        "1 234,50": (None, 1234.5, None),
        "1\u202f234\u202f567,5": (None, 1234567.5, None),
        "1'234.50": (1234.5, 1234.5, 1234.5),  # one dot after the groups: a decimal dot
        "-12\u2019345": (-12345.0, -12345.0, -12345.0),
        "1 234,50\u00a0€": (None, 1234.5, None),
        "1 23": (None, None, None),
        "1  234": (None, None, None),
        "1 234 5": (None, None, None),
    }
    rows = ", ".join("('" + v.replace("'", "''") + "')" for v in values)
    t = s.sql(f"SELECT * FROM (VALUES {rows}) AS V(S_X)")
    x = ck.unspaced(ck.unsigned(ck.negated(F.col("S_X"))))
    got = t.select(
        "S_X",
        ck.number(x).alias("P"),
        ck.number(x, comma=True).alias("C"),
        ck.number(x, grouped=True).alias("G"),
    )
    for r in got.collect():
        assert (r["P"], r["C"], r["G"]) == values[r["S_X"]], r


@pytest.mark.parametrize(
    "signs,currency,flagged",
    [
        ({"Price": "$"}, "CAD", []),  # '$' is the Canadian dollar's sign too
        ({"Price": "$"}, "EUR", ["$"]),
        ({"Price": "USD"}, "USD", []),
        ({"Price": "USD"}, "EUR", ["USD"]),
        ({"Price": "kr"}, "SEK", []),  # a local sign of several currencies
        ({"Price": "kr"}, "PLN", ["kr"]),
        ({"Price": "R$", "Frete": "R$"}, "BRL", []),
        ({"Price": "$ USD"}, "USD", []),  # two signs seen in one column
        ({"Price": "US$ €"}, "USD", ["€"]),
    ],
)
def test_the_currency_warning_knows_codes_and_local_signs(signs, currency, flagged):
    text = story.signs_text(signs, currency)
    if flagged:
        assert (
            f"**Check the currency**: the amounts are written with {' and '.join(flagged)}" in text
        )
    else:
        assert "Check the currency" not in text


@pytest.mark.parametrize(
    "values,forms",
    [
        (["3,50", "12,99", "7"], {"comma"}),
        (["1.234,50", "2.000", "5"], {"comma"}),
        (["3.50", "12,99", "7.25"], set()),  # mostly plain: '12,99' stays rejected
        (["1,000", "2,500", "7"], set()),  # US thousands or decimal commas: nothing says which
        (["7", "12", ""], set()),  # whole numbers read both ways: plain
        (["1,234.50", "12", "7"], {"grouped"}),  # a grouped number with a fraction
        (["1,234", "3.50", "7"], {"grouped"}),  # a decimal dot elsewhere in the column
        (["1,234", "1.234", "7"], set()),  # '1.234' may be a European thousand: undecided
        (["$3.50", "$1,234.50", "7"], {"grouped", "signs"}),  # a point-of-sale export
        (["3,50 €", "12,99 €", "1.234,00 €"], {"comma", "signs"}),
        (["USD 3.50", "USD 1,234.50", "7"], {"grouped", "signs"}),
        (["3,50 zł", "12,99 zł", "7"], {"comma", "signs"}),
        (["(3.50)", "12.99", "7"], {"negated"}),
        (["3.50-", "12.99", "7"], {"negated"}),  # SAP's trailing minus
        (["1.234,50-", "12,99", "7"], {"comma", "negated"}),
        (["-3.50-", "(-3.50)", "7"], set()),  # two signs: not numbers
        (["($1,234.50)", "$12.99", "7"], {"grouped", "signs", "negated"}),
        (["1 234,50", "12,99", "7"], {"comma", "spaced"}),  # a French export
        (["1'234.50", "12.99", "7"], {"spaced"}),  # a Swiss one: the dot is plain
        (["1 234", "12", "7"], {"spaced"}),
    ],
)
def test_a_column_is_read_with_a_decimal_comma_or_thousands_only_when_its_values_say_so(
    shop, values, forms
):
    p, s, _ = shop["eu_shop"]
    rows = ", ".join("('" + v.replace("'", "''") + "')" if v else "(NULL)" for v in values)
    t = s.sql(f"SELECT * FROM (VALUES {rows}) AS V(S_UNIT_PRICE)")
    plan = dataclasses.replace(plan_source(contract.ORDERS, p), decimal_comma=[])
    price = next(f for f in contract.ORDERS.fields if f.name == "unit_price")
    got = ck.number_forms(t, plan, [price])
    field = frozenset({"unit_price"})
    kinds = ("comma", "grouped", "signs", "spaced", "negated")
    assert got == ck.NumberForms(*(field if k in forms else frozenset() for k in kinds))
    column = ["Einzelpreis"]
    assert (
        plan.decimal_comma,
        plan.thousands,
        list(plan.currency_signs),
        plan.parentheses,
    ) == (
        column if "comma" in forms else [],
        column if forms & {"grouped", "spaced"} else [],
        column if "signs" in forms else [],
        column if "negated" in forms else [],
    )


def test_refunds_written_in_accounting_notation_are_return_lines(tmp_path):
    """A CD log whose line totals come from a spreadsheet's Accounting format: a refund is
    ``($31.80)`` beside a negative quantity. It was 'not a number', so every refund was rejected."""
    d = tmp_path / "shop"
    d.mkdir()
    (d / "cdnow.csv").write_text(
        "user_id,date,num_cds,amount\n"
        "00001,19970101,2,$31.80\n"
        "00001,19970105,-2,($31.80)\n"
        '00002,19970103,1,"$1,011.77"\n'
        "00003,19970106,-1,12.00-\n"  # an ERP's trailing minus in the same column
    )
    p = dataclasses.replace(
        config.load(REPO, data_dir=str(d), warehouse_dir=str(tmp_path / "wh")),
        orders_file="cdnow.csv",
        customers_file=None,
        reviews_file=None,
        calls_dir=None,
        columns={
            "orders": {
                "customer_id": "user_id",
                "ts": "date",
                "quantity": "num_cds",
                "amount": "amount",
            }
        },
    )
    counts, lines = ingest_and_read(p, "CLEAN_ORDER_LINES")
    o = counts["orders"]
    assert (o.accepted, o.rejected, o.parentheses) == (4, 0, ["amount"])
    lines["SPEND"] = (lines["QUANTITY"] * lines["UNIT_PRICE"]).round(2)
    got = sorted(zip(lines["QUANTITY"], lines["SPEND"], lines["IS_RETURN"], strict=True))
    assert got == [(-2, -31.8, True), (-1, -12.0, True), (1, 1011.77, False), (2, 31.8, False)]
    text = story.summary([o])
    assert "with a trailing minus, (3.50) or 3.50-, read as negative in 'amount'" in text


def test_epoch_seconds(shop):
    p, s, _ = shop["epoch_events"]
    lines = [pd.read_json(p.data_dir / "events.jsonl", lines=True)]
    want = sorted(
        dt.datetime(1970, 1, 1) + dt.timedelta(seconds=int(x)) for x in lines[0]["created"]
    )
    got = sorted(r["TS"] for r in s.table("CLEAN_ORDERS").select("TS").collect())
    assert got == want


@pytest.mark.parametrize("mode", ["exclude", "reject"])
def test_returns_exclude_or_reject(mode, tmp_path):
    data = write("gift_invoices", tmp_path / "data", seed=11, customers=120)
    p = settings_params("gift_invoices", data, tmp_path / "wh", returns=mode, max_reject_share=0.5)
    s = wh.connect(p)
    try:
        o = {c.source: c for c in ingest.run(s, p)}["orders"]
        df = gift_frame(data)
        n_returns = int((df["is_return"] & ~df["guest"]).sum())
        assert s.table("CLEAN_ORDER_LINES").filter(F.col("IS_RETURN")).count() == 0
        if mode == "exclude":
            assert o.excluded_reasons == {
                Excluded.GUEST: int(df["guest"].sum()),
                Excluded.RETURN: n_returns,
            }
            assert o.rejected == 0
            assert "returns: exclude" in story.returns_note(ingest.returns_summary(s))
        else:
            assert o.reasons == {Reason.RETURN_REJECTED: n_returns} and o.rejected == n_returns
    finally:
        s.close()
        wh.stop_local_server(p.warehouse_dir)


def test_a_customer_holding_an_implausible_share_is_named_as_a_likely_placeholder(tmp_path):
    data = write("cd_log", tmp_path / "data", seed=3)
    raw = pd.read_csv(data / "cdnow.csv", dtype=str)
    raw.loc[raw.index % 4 == 0, "user_id"] = (
        "99999"  # a placeholder the shop used, not in the default list
    )
    raw.to_csv(data / "cdnow.csv", index=False)
    p = settings_params("cd_log", data, tmp_path / "wh")
    s = wh.connect(p)
    try:
        ingest.run(s, p)
        sus = ingest.suspect_customers(s)
        assert list(sus.index) == ["99999"] and sus["order share"].iloc[0] > 0.2
        assert "`99999`" in story.suspects_note(sus) and "guest_ids" in story.suspects_note(sus)
        p2 = settings_params("cd_log", data, tmp_path / "wh", guest_ids=["99999"])
        o = {c.source: c for c in ingest.run(s, p2)}["orders"]
        assert (
            o.excluded == int((raw["user_id"] == "99999").sum())
            and ingest.suspect_customers(s).empty
        )
    finally:
        s.close()
        wh.stop_local_server(p.warehouse_dir)


def test_ids_are_masked_unless_they_look_like_placeholders():
    assert ingest.shown_id("(blank)") == "(blank)" and ingest.shown_id("0000") == "0000"
    assert ingest.shown_id("17850") == "1***0" and ingest.shown_id("C000123") == "C*****3"
    # placeholders that read as such, shown as they are (to be added to guest_ids)
    for placeholder in ("Cash Customer", "WALKIN", "Walk-in", "POS", "-", "xxxx", "#N/A"):
        assert ingest.shown_id(placeholder) == placeholder
    # e-mail addresses and names used as ids are personal data: masked, digits or not
    # ids with digits too, whatever words they carry
    for person in (
        "anna@example.com",
        "guest@example.com",
        "Anna Schmidt",
        "Positano",
        "Customer",
        "Customer 4711",
        "A12345",
        "Guest 4711",
    ):
        shown = ingest.shown_id(person)
        assert shown != person and shown[1:-1] == "*" * (len(person) - 2)
