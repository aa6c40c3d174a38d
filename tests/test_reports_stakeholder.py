"""Reports a marketing manager acts on (issue 17), on two real runs a horizon apart.

``customer-analytics run --run-date 2026-09-01`` and then ``--run-date 2026-11-01`` in a scratch
copy of the project on generated demo data. Checked: each report opens with its summary, in words,
with the currency, without NaN or raw identifiers; 05 states the forecast's range and the coverage
measured on the held-out window; the second run checks the first run's forecast against what its
customers actually spent (recomputed here from the raw orders file with pandas), in 05 and in the
index; ``export-targets`` writes the documented columns and never under ``reports/``; no personal
data in any report; in headless Chromium, the first screen (1400×900) of every report holds its
summary (screenshots saved as test artefacts).
"""

from __future__ import annotations

import csv
import datetime as dt
import html as htmllib
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import reference
from conftest import project_env, scratch_project
from customer_analytics import config, synthetic
from customer_analytics import warehouse as wh
from customer_analytics.narrative import fmt

pytestmark = pytest.mark.slow

FIRST, SECOND = "2026-09-01", "2026-11-01"  # a horizon (60 days) apart: the first window has ended
NOTEBOOKS = ["01_ingest", "02_eda", "03_features", "04_model_comparison", "05_batch_prediction"]
CUSTOMERS = 1200
PREFIX = [
    "CUSTOMER_ID",
    "RUN_DATE",
    "MODEL_NAME",
    "MODEL_VERSION",
    "DECILE",
    "CHANNEL",
    "COUNTRY",
    "P_BUY",
    "EXPECTED_SPEND",
]


def cli() -> str:
    return str(Path(sys.executable).with_name("customer-analytics"))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("stakeholder")
    project = scratch_project(
        root,
        data_dir=str(root / "raw"),
        warehouse_dir=str(root / "warehouse"),
        reports_dir=str(root / "reports"),
    )
    synthetic.write(synthetic.generate(CUSTOMERS, seed=11), root / "raw")
    for day in (FIRST, SECOND):
        out = subprocess.run(
            [cli(), "run", "--run-date", day],
            cwd=project,
            env=project_env(project),
            capture_output=True,
            text=True,
            timeout=1500,
        )
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    yield project, config.load(project)
    wh.stop_local_server(root / "warehouse")


def record(params: config.Params, day: str, notebook: str) -> dict:
    return json.loads((params.reports_dir / day / "headlines" / f"{notebook}.json").read_text())


def visible(path: Path) -> str:
    """The text a reader sees: the body without styles, scripts, images and tags."""
    page = path.read_text(encoding="utf-8")
    body = page[page.index("<body") :]
    body = re.sub(r"<(style|script)\b.*?</\1>", " ", body, flags=re.S)
    body = re.sub(r"<img[^>]*>", " ", body)
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", body)))


#: identifiers of models and tables, and upper-case column names, that a report must say in words
RAW = [
    re.compile(rf"\b{re.escape(m)}(?:_recalibrated)?\b") for m in config.MODEL_NAMES if "_" in m
] + [
    re.compile(r"\b(?:CLEAN|REJECTED|RAW|EXCLUDED)_[A-Z_]+\b"),
    re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b"),
    re.compile(r"\b(?:PREDICTIONS|TARGETS|FORECASTS|FEATURES|PRODUCT_TYPES)\b"),
    re.compile(r"_recalibrated\b"),
]
#: a money word followed by a bare number (no currency symbol)
BARE_MONEY = re.compile(
    r"\b(?:revenue|spend|spent|sales)(?: of| is| was| were|:)?\s+-?\d[\d,]*(?:\.\d+)?\b"
    r"(?!\s?%| units| customers| days)",
    re.I,
)
MISSING = re.compile(r"\b(?:NaN|nan|None|NaT|inf)\b")


def around(text: str, m: re.Match) -> str:
    return text[max(0, m.start() - 50) : m.end() + 20]


def test_each_report_opens_with_its_summary_in_words_with_the_currency(two_runs):
    _, params = two_runs
    folder = params.reports_dir / SECOND
    for name in NOTEBOOKS:
        path = folder / f"{name}.html"
        page = path.read_text(encoding="utf-8")
        first = re.search(r"<h([1-6])[^>]*>(.*?)</h\1>", page[page.index("<body") :], re.S)
        assert first and re.sub(r"<[^>]+>|¶", "", first.group(2)).strip().endswith("summary"), name
        text = visible(path)
        assert "In this notebook we" not in text and "Set-up" not in text and "Recap" not in text, (
            name
        )
        assert "(shown first in the report)" not in text, name
        problems = [f"missing value: {around(text, m)}" for m in MISSING.finditer(text)]
        problems += [f"raw identifier: {around(text, m)}" for rx in RAW for m in rx.finditer(text)]
        problems += [
            f"money without currency: {around(text, m)}" for m in BARE_MONEY.finditer(text)
        ]
        assert not problems, f"{name}: {problems[:5]}"
        if name != "01_ingest":  # 01 names money only for returns and guest orders, absent here
            assert "€" in text, name
    # the headline money figures appear with the currency, never bare
    eda = record(params, SECOND, "02_eda")
    text = visible(folder / "02_eda.html")
    assert fmt.money(eda["revenue"], "EUR") in text and f" {eda['revenue']:,.0f}" not in text
    index = visible(params.reports_dir / "index.html")
    assert not [m.group(0) for rx in RAW for m in rx.finditer(index)]
    assert not MISSING.search(index)


def test_05_states_the_forecast_range_and_its_coverage_measured_on_the_held_out_window(two_runs):
    _, params = two_runs
    head = record(params, SECOND, "05_batch_prediction")
    assert head["currency"] == "EUR" and head["level"] == 0.9 and head["customers_scored"] > 0
    assert head["spend_low"] < head["expected_spend"] < head["spend_high"]
    assert 0.85 <= head["coverage"] <= 0.95, head["coverage"]
    text = visible(params.reports_dir / SECOND / "05_batch_prediction.html")
    low, high = fmt.money(head["spend_low"], "EUR"), fmt.money(head["spend_high"], "EUR")
    summary = text[: text.index("Forecast by product type")]
    assert f"between {low} and {high} (90%)" in summary
    assert (
        f"held the actual spend of {fmt.percent(head['coverage'])} of 1,000 random groups"
        in summary
    )
    assert "Since the run of 1 Sep 2026" in summary  # what changed, at the top
    # the totals per decile add up to the forecast (aggregates only: no customer id in the report)
    assert "Who to target" in text and not re.search(r"\bC\d{6}\b", text)


def test_the_second_run_checks_the_first_forecast_against_what_happened(two_runs, tmp_path):
    project, params = two_runs
    out = tmp_path / "first.csv"
    done = subprocess.run(
        [cli(), "export-targets", "--run-date", FIRST, "--out", str(out)],
        cwd=project,
        env=project_env(project),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    targets = pd.read_csv(out)
    # what those customers actually spent in the first forecast's window, from the raw file, in
    # pandas
    lines = reference.order_lines(params.data_dir / params.orders_file)
    start = pd.Timestamp(FIRST)
    window = lines[
        (lines["TS"] >= start) & (lines["TS"] < start + pd.Timedelta(days=params.horizon_days))
    ]
    spent = (window["QUANTITY"] * window["UNIT_PRICE"]).groupby(window["CUSTOMER_ID"]).sum()
    actual = float(spent.reindex(targets["CUSTOMER_ID"]).fillna(0).sum())
    assert actual > 0
    first = record(params, FIRST, "05_batch_prediction")
    check = record(params, SECOND, "05_batch_prediction")["track"][0]
    assert (
        check["run_date"] == FIRST
        and check["customers"] == len(targets) == first["customers_scored"]
    )
    assert check["actual"] == pytest.approx(actual, abs=0.01)
    assert check["forecast"] == pytest.approx(first["expected_spend"], rel=1e-9)
    assert (check["low"], check["high"]) == pytest.approx((first["spend_low"], first["spend_high"]))
    assert check["inside"] == (check["low"] <= actual <= check["high"])
    mark = "✓" if check["inside"] else "✗"
    report = visible(params.reports_dir / SECOND / "05_batch_prediction.html")
    said = (
        f"forecast {fmt.money(check['forecast'], 'EUR')} "
        f"({fmt.money_range(check['low'], check['high'], 'EUR')}), actual "
        f"{fmt.money(actual, 'EUR')} {mark}"
    )
    assert f"1 Sep 2026: {said}" in report
    index = visible(params.reports_dir / "index.html")
    assert f"{FIRST}: {said}" in index  # the later run's row
    assert (
        f"actual {fmt.money(actual, 'EUR')} {mark}" in index and f"(checked on {SECOND})" in index
    )


def test_export_targets_writes_the_documented_columns_and_never_under_reports(two_runs, tmp_path):
    project, params = two_runs
    env = project_env(project)
    out = tmp_path / "top.csv"
    done = subprocess.run(
        [cli(), "export-targets", "--run-date", SECOND, "--out", str(out), "--top", "10"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0])
    products = sorted(
        c.removeprefix("EXPECTED_UNITS_").lower() for c in header if c.startswith("EXPECTED_UNITS_")
    )
    assert len(products) >= 2
    assert header == PREFIX + [
        f"{k}_{p.upper()}" for p in products for k in ("EXPECTED_UNITS", "EXPECTED_SPEND", "P_BUY")
    ]
    spend = [float(r["EXPECTED_SPEND"]) for r in rows]
    assert len(rows) == 10 and spend == sorted(spend, reverse=True)
    deciles = [int(r["DECILE"]) for r in rows]
    assert (
        {r["RUN_DATE"] for r in rows} == {SECOND} and deciles[0] == 1 and deciles == sorted(deciles)
    )
    entry = json.loads((project / "logs" / "exports.jsonl").read_text().splitlines()[-1])
    assert (
        entry["rows"] == 10
        and entry["run_date"] == SECOND
        and entry["file"] == "top.csv"
        and entry["who"]
    )
    assert dt.datetime.fromisoformat(entry["when"]) > dt.datetime.now(dt.UTC) - dt.timedelta(
        minutes=10
    )
    assert str(tmp_path) not in json.dumps(entry)  # the file's name, not where it went
    # never under reports/: neither directly, nor through .. or a link
    link = tmp_path / "to-reports"
    link.symlink_to(params.reports_dir)
    for bad in (
        params.reports_dir / SECOND / "targets.csv",
        params.reports_dir / SECOND / ".." / "t.csv",
        link / "t.csv",
    ):
        refused = subprocess.run(
            [cli(), "export-targets", "--run-date", SECOND, "--out", str(bad)],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert (
            refused.returncode == 2 and "does not write under the reports folder" in refused.stderr
        ), bad
    assert not list(params.reports_dir.rglob("*.csv"))


def test_no_report_holds_personal_data(two_runs):
    _, params = two_runs
    names, emails = set(), set()
    with (params.data_dir / "customers.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            names.add(row["name"].strip().lower())
            emails.add(row["email"].strip().lower())
    ids = set(pd.read_csv(params.data_dir / "customers.csv")["customer_id"].astype(str))
    pages = sorted(params.reports_dir.rglob("*.html"))
    assert len(pages) == 11
    for page in pages:
        text = visible(page).lower()
        assert not [n for n in names if n in text], page
        assert not emails & set(re.findall(r"[\w.+-]+@[\w.-]+", text)), page
        assert not ids & set(re.findall(r"\b\w+\b", visible(page))), page  # no customer id either


def test_the_first_screen_of_every_report_holds_its_summary_in_chromium(two_runs):
    from playwright.sync_api import sync_playwright
    from test_browser import ARTIFACTS, CHROMIUM, FLAGS

    _, params = two_runs
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} not found: install chromium or set CA_CHROMIUM"
    shots = ARTIFACTS / "first-screens"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            for name in [*NOTEBOOKS, "index"]:
                path = params.reports_dir / (
                    f"{SECOND}/{name}.html" if name != "index" else "index.html"
                )
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(path.as_uri(), wait_until="load")
                boxes = page.evaluate("""() => {
                    const h = document.querySelector('h1, h2');
                    let p = h && h.nextElementSibling, n = 0;
                    while (p && !p.textContent.trim() && n++ < 5) p = p.nextElementSibling;
                    const r = e => e ? e.getBoundingClientRect() : null;
                    const box = b => b && {top: b.top, bottom: b.bottom, h: b.height};
                    return {heading: h ? h.textContent : '', h: box(r(h)), text: box(r(p))};
                }""")
                page.screenshot(path=str(shots / f"{name}.png"))  # the first screen only
                page.close()
                assert boxes["h"] and boxes["h"]["bottom"] <= 900, (name, boxes)
                if name != "index":
                    assert boxes["heading"].rstrip("¶").strip().endswith("summary"), (
                        name,
                        boxes["heading"],
                    )
                    assert (
                        boxes["text"] and boxes["text"]["h"] > 0 and boxes["text"]["top"] < 900
                    ), (name, boxes)
                assert (shots / f"{name}.png").stat().st_size > 10_000
        finally:
            browser.close()
