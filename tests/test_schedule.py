"""Scheduled runs (issue 5 acceptance): the `customer-analytics` command run for real, as cron
would."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from scheduled import D1, D2, D_BAD

from conftest import REPO
from customer_analytics import cli, config, pipeline, reports
from customer_analytics.narrative import words

NOTEBOOKS = ["01_ingest", "02_eda", "03_features", "04_model_comparison", "05_batch_prediction"]


def index_rows(sched) -> dict[str, reports.RunRow]:
    return {r.run_date: r for r in reports.collect_runs(sched.reports)}


@pytest.mark.slow
def test_two_scheduled_runs_leave_two_report_folders_an_index_and_predictions_for_both_dates(
    scheduled_runs,
):
    sched = scheduled_runs
    for step in ("run D1", "run D2"):
        assert sched.results[step].returncode == 0, sched.results[step].stderr[-3000:]
    for d in (D1, D2):
        assert sorted(p.name for p in (sched.reports / d).glob("*.html")) == [
            f"{n}.html" for n in NOTEBOOKS
        ]
    counts = sched.snapshots["run D2"].counts
    assert set(counts) == {D1, D2} and min(counts.values()) > 0
    html = (sched.reports / "index.html").read_text()
    assert html.index(f'id="run-production-{D2}"') < html.index(
        f'id="run-production-{D1}"'
    )  # newest first
    rows = index_rows(sched)
    for d in (D1, D2):
        assert rows[d].status == "succeeded"
        assert [href for _, href in rows[d].links] == [f"{d}/{n}.html" for n in NOTEBOOKS]
    # headline figures come from the notebooks' own records
    heads = reports.read_headlines(sched.reports / D2)
    assert (
        rows[D2].customers_scored == heads["05_batch_prediction"]["customers_scored"] == counts[D2]
    )
    loaded = [c for c in heads["01_ingest"]["sources"] if c.get("status", "loaded") == "loaded"]
    # what each source delivered, never added up across units
    assert [x.split(" (")[0] for x in rows[D2].sources] == [
        f"{c['accepted']:,} {c['unit']}" for c in loaded
    ]
    trained = heads["04_model_comparison"]
    assert rows[D2].trained.startswith(
        f"{words.model(trained['candidate'])} ({words.version(trained['version'])})"
    )
    scored = heads["05_batch_prediction"]
    assert (
        rows[D2].model
        == f"{words.model(scored['candidate'])} ({words.version(scored['model_version'])})"
    )
    assert rows[D2].predicted_spend == scored["expected_spend"] > 0  # the forecast, with its range
    spend = (
        sched.snapshots["re-score D2"].rows[D2]["PRED_SPEND"].sum()
    )  # the index shows D2's latest scores
    assert scored["predicted_spend"] == pytest.approx(spend, abs=0.01)


@pytest.mark.slow
def test_rerunning_the_first_date_leaves_row_counts_unchanged(scheduled_runs):
    sched = scheduled_runs
    assert sched.results["re-run D1"].returncode == 0, sched.results["re-run D1"].stderr[-3000:]
    before, after = sched.snapshots["run D2"], sched.snapshots["re-run D1"]
    assert after.counts == before.counts
    # it really ran again: a new model version was registered (the promotion guard decides whether
    # it becomes the default) and D1 was scored again with the default ...
    assert len(after.versions) == len(before.versions) + 1
    assert set(after.rows[D1]["MODEL_VERSION"]) == {after.default_version}
    assert list(after.rows[D1]["CUSTOMER_ID"]) == list(before.rows[D1]["CUSTOMER_ID"])
    # ... and the other date's rows were not touched
    pd.testing.assert_frame_equal(after.rows[D2], before.rows[D2])


@pytest.mark.slow
def test_a_run_with_broken_input_fails_and_says_where_and_why(scheduled_runs):
    sched = scheduled_runs
    result = sched.results["broken run"]
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()  # --quiet: only the failure, as cron would mail it
    assert lines and all(" ERROR " in ln for ln in lines) and "FAILED at 01_ingest" in lines[0]
    log = sched.log_of("broken run")
    assert re.search(
        rf"run {D_BAD} FAILED at 01_ingest: IngestError: orders\.jsonl: [\d,]+ of [\d,]+ order "
        r"lines rejected \([\d.]+%\), more than max_reject_share = 5%",
        log,
    )
    partial = Path(re.search(r"partially executed notebook \(for debugging\): (\S+)", log).group(1))
    assert partial == sched.reports / D_BAD / "01_ingest.ipynb"
    assert "IngestError" in (reports.notebook_error(partial) or "")
    failed_html = (
        sched.reports / D_BAD / "01_ingest.html"
    ).read_text()  # written, marked failed, no traceback
    assert "This step FAILED" in failed_html and "Traceback" not in failed_html
    # the index marks the run failed, keeps the earlier runs, and names no local path
    rows = index_rows(sched)
    assert rows[D_BAD].status == "failed" and rows[D_BAD].failed_step == "01_ingest"
    assert re.fullmatch(
        r"IngestError: orders\.jsonl: .* rejected .*more than max_reject_share.*",
        rows[D_BAD].reason,
    )
    assert rows[D_BAD].links == [("01 ingest (failed)", f"{D_BAD}/01_ingest.html")]
    assert rows[D_BAD].customers_scored is None
    assert rows[D1].status == rows[D2].status == "succeeded"
    assert str(sched.work) not in (sched.reports / "index.html").read_text()
    # and nothing that earlier runs produced was lost
    before, after = sched.snapshots["re-run D1"], sched.snapshots["broken run"]
    assert after.counts == before.counts and after.default_version == before.default_version
    for d in (D1, D2):
        pd.testing.assert_frame_equal(after.rows[d], before.rows[d])
        assert len(list((sched.reports / d).glob("*.html"))) == len(NOTEBOOKS)


@pytest.mark.slow
def test_rescoring_uses_the_default_model_and_replaces_only_that_dates_rows(scheduled_runs):
    sched = scheduled_runs
    result = sched.results["re-score D2"]
    assert result.returncode == 0, result.stderr[-3000:]
    before, after = sched.snapshots["broken run"], sched.snapshots["re-score D2"]
    assert after.counts == before.counts
    # D2's features were computed for D2 (FEATURES now holds D1's): the same customers as the full
    # run of D2
    assert list(after.rows[D2]["CUSTOMER_ID"]) == list(before.rows[D2]["CUSTOMER_ID"])
    assert set(after.rows[D2]["MODEL_VERSION"]) == {after.default_version}
    if set(before.rows[D2]["MODEL_VERSION"]) == {
        after.default_version
    }:  # same model, same features: same scores
        pd.testing.assert_frame_equal(after.rows[D2], before.rows[D2])
    pd.testing.assert_frame_equal(after.rows[D1], before.rows[D1])
    status = json.loads((sched.reports / D2 / "run.json").read_text())
    assert (status["kind"], status["status"]) == ("score", "succeeded")
    assert "re-scored with the registry's default model" in index_rows(sched)[D2].error
    head = reports.read_headlines(sched.reports / D2)["05_batch_prediction"]
    assert head["model_version"] == after.default_version
    html = (sched.reports / D2 / "05_batch_prediction.html").read_text()
    assert f"({words.version(after.default_version)}, chosen in the run of" in html


def customer_analytics(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("customer-analytics")
    return subprocess.run([str(exe), *args], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--run-date", "2026-13-45"], "--run-date must be"),
        (["run", "--set", "smaple=0.1"], "Unknown parameter(s) ['smaple']"),
        (["score", "--env--sample", "2"], "Parameter 'sample' must be in [0.0001, 1], got 2."),
        (["run", "--set", "columns.orders.colour=x"], "has an unknown field 'colour'"),
        (["run", "--set", "horizon_days.x=1"], "Parameter 'horizon_days' has no keys"),
        (["run", "--bogus"], "Unknown argument '--bogus'"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args, message):
    out = customer_analytics(*args)
    assert out.returncode == cli.EXIT_USAGE and message in out.stderr


def test_only_one_run_at_a_time(tmp_path):
    """The lock belongs to the process that runs: another process is refused, the same one may nest
    it."""
    child = (
        f"from pathlib import Path; from customer_analytics import pipeline\n"
        f"with pipeline.acquire_run(Path({str(tmp_path)!r})): pass"
    )
    with pipeline.acquire_run(tmp_path):
        with pipeline.acquire_run(
            tmp_path
        ):  # re-entrant in this process (the CLI, then Ploomber's executor)
            out = subprocess.run(
                [sys.executable, "-c", child], capture_output=True, text=True, timeout=60
            )
    assert out.returncode != 0 and "Another run is in progress on this warehouse" in out.stderr
    assert (
        subprocess.run([sys.executable, "-c", child], timeout=60).returncode == 0
    )  # released again


def test_run_dates_and_overrides_are_parsed_like_the_docs_say():
    today = dt.date(2026, 11, 2)
    assert (
        cli.resolve_date("today", today) == "2026-11-02"
        and cli.resolve_date("yesterday", today) == "2026-11-01"
    )
    env_args = [
        "--env--seed",
        "7",
        "--env--horizon_days=30",
        "--env--columns--orders--quantity",
        "Qty",
    ]
    assert cli.parse_overrides(
        ["sample=0.1", "columns.orders.ts=InvoiceDate", "customers_file=null"], env_args
    ) == {
        ("sample",): "0.1",
        ("columns", "orders", "ts"): "InvoiceDate",
        ("customers_file",): None,
        ("seed",): "7",
        ("horizon_days",): "30",
        ("columns", "orders", "quantity"): "Qty",
    }
    env = config.read_env(REPO)
    values = cli.apply_overrides(env, cli.parse_overrides(["columns.orders.ts=InvoiceDate"], []))
    assert (
        values["columns"]["orders"]["ts"] == "InvoiceDate"
        and env["columns"]["orders"]["ts"] is None
    )
    whole = cli.apply_overrides(
        env, cli.parse_overrides(['columns={"orders": {"ts": "InvoiceDate"}}'], [])
    )
    assert config.validate(whole, REPO).columns == {"orders": {"ts": "InvoiceDate"}}
    with pytest.raises(cli.UsageError, match="has no keys"):
        cli.parse_overrides(["sample.x=1"], [])
    assert cli.pipeline_tasks(REPO) == NOTEBOOKS
