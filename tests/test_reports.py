"""Report exporter (offline, summary first) and the run index (headline records, status,
robustness)."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from conftest import REPO
from customer_analytics import config, headlines, reports


def png() -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1))
    fig.subplots().plot([0, 1], [1, 0])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def executed_notebook(path: Path, error: str | None = None) -> Path:
    """A small executed notebook the way Papermill leaves it (outputs, tags, maybe an error)."""
    cells = [
        new_markdown_cell("# 09 · Example\nIn this notebook we test."),
        new_code_cell("x = '/secret/path'", metadata={"tags": ["parameters"]}),
        new_code_cell(
            "import secret_module", outputs=[new_output("stream", name="stdout", text="working\n")]
        ),
        new_code_cell(
            "fig",
            outputs=[
                new_output("display_data", data={"image/png": png(), "text/plain": "<Figure>"})
            ],
        ),
        new_markdown_cell("## Recap\nDone."),
        new_code_cell(
            "Markdown(s)",
            metadata={"tags": ["summary"]},
            outputs=[new_output("display_data", data={"text/markdown": "**What this run found**"})],
        ),
    ]
    if error:
        cells.insert(
            3,
            new_code_cell(
                "boom()",
                outputs=[
                    new_output("error", ename="IngestError", evalue=error, traceback=["Traceback"])
                ],
            ),
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=cells), path)
    return path


def test_report_html_is_offline_hides_code_and_puts_the_summary_first(tmp_path):
    nb = executed_notebook(tmp_path / "09_example.ipynb")
    html = reports.export_html(nb, tmp_path / "09_example.html").read_text()
    assert "<title>09 · Example</title>" in html
    assert (
        html.index("In this notebook we test")
        < html.index("What this run found")
        < html.index("Recap")
    )
    assert "secret_module" not in html and "/secret/path" not in html
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', html)) == 1
    assert 'alt="Figure: 09 · Example"' in html
    assert not re.search(
        r"<script[^>]+src=|<link[^>]+href=[\"']?https?:|@import|cdnjs|unpkg|mathjax", html, re.I
    )


def test_the_runs_banner_is_shown_right_after_the_title(tmp_path):
    nb = nbformat.read(executed_notebook(tmp_path / "09_example.ipynb"), as_version=4)
    nb.cells[2].outputs = [
        new_output(
            "display_data",
            data={"text/markdown": "set-up"},
            metadata={"ca_banner": ["**Experiment `x`** (10% sample): not production"]},
        )
    ]
    nbformat.write(nb, tmp_path / "09_example.ipynb")
    html = reports.export_html(
        tmp_path / "09_example.ipynb", tmp_path / "09_example.html"
    ).read_text()
    assert (
        html.index("09 · Example")
        < html.index("Experiment <code>x</code>")
        < html.index("In this notebook we")
    )


def params_for(tmp_path: Path, run_date: str = "2026-11-01") -> config.Params:
    p = config.load(REPO, reports_dir=str(tmp_path / "reports"))
    return dataclasses.replace(p, run_date=dt.date.fromisoformat(run_date))


def test_record_writes_typed_headlines_into_the_run_folder(tmp_path):
    p = params_for(tmp_path)
    folder = tmp_path / "elsewhere" / "2026-11-05"
    record = headlines.Scoring(customers_scored=3, predicted_spend=12.5, model_version="v2")
    path = reports.record(p, folder, "05_batch_prediction", record, when=dt.date(2026, 1, 2))
    assert path == folder / "headlines" / "05_batch_prediction.json"
    data = json.loads(path.read_text())
    assert (
        data["customers_scored"] == 3
        and data["when"] == "2026-01-02"
        and data["run_date"] == "2026-11-01"
    )
    back = headlines.parse("05_batch_prediction", data)
    assert back == record  # what the index reads is what the notebook wrote
    assert (
        reports.record(p, None, "05_batch_prediction", record) is None
    )  # run on its own: no record
    assert not (tmp_path / "reports").exists()
    with pytest.raises(TypeError, match="paths are not recorded"):
        reports.record(p, folder, "02_eda", where=tmp_path)
    with pytest.raises(TypeError):  # a renamed field fails where the record is written
        headlines.Scoring(customers=3)


def test_a_record_of_the_wrong_shape_is_not_trusted(caplog):
    got = headlines.parse("05_batch_prediction", {"customers_scored": "many", "predicted_spend": 3})
    assert got.customers_scored == 0 and got.predicted_spend == 3
    assert "ignoring customers_scored='many'" in caplog.text


def make_run(
    root: Path,
    date: str,
    steps: list[str],
    status: dict | None = None,
    error_at: str | None = None,
    heads: dict | None = None,
) -> Path:
    folder = root / date
    for step in steps:
        executed_notebook(folder / f"{step}.ipynb", error="boom" if step == error_at else None)
        if step != error_at:
            (folder / f"{step}.html").write_text("<html></html>")
    for name, figures in (heads or {}).items():
        (folder / "headlines").mkdir(parents=True, exist_ok=True)
        (folder / "headlines" / f"{name}.json").write_text(
            figures if isinstance(figures, str) else json.dumps(figures)
        )
    if status:
        reports.write_status(folder, **status)
    return folder


def test_index_lists_runs_newest_first_with_figures_status_and_links(tmp_path):
    root = tmp_path / "reports"
    steps = ["01_ingest", "02_eda", "05_batch_prediction"]
    heads = {
        "01_ingest": {
            "sources": [
                {"source": "customers", "unit": "customers", "accepted": 1200, "rejected": 3},
                {"source": "orders", "unit": "order lines", "accepted": 800, "rejected": 7},
            ]
        },
        "04_model_comparison": {
            "candidate": "random_forest",
            "version": "v4",
            "baseline": "last_period",
            "improvement": 0.25,
            "metric": "rmse",
            "error": 11.0,
            "promoted": False,
            "decision": "not_better",
            "default_version": "v3",
        },
        "05_batch_prediction": {
            "customers_scored": 42,
            "predicted_spend": 1234.5,
            "candidate": "ridge",
            "model_version": "v3",
            "metric": "rmse",
            "error": 12.345,
            "currency": "USD",
            "expected_spend": 1300.0,
            "spend_low": 1100.0,
            "spend_high": 1500.0,
            "level": 0.9,
            "window_end": "2026-12-30",
            "drift": {"large": [["SPEND", 0.41]], "features": 30},
            "drift_assessed": True,
        },
    }
    make_run(root, "2026-11-01", steps, {"status": "succeeded", "kind": "pipeline"}, heads=heads)
    later = {
        **heads,
        "05_batch_prediction": {
            **heads["05_batch_prediction"],
            "track": [
                {
                    "run_date": "2026-11-01",
                    "forecast": 1300.0,
                    "low": 1100.0,
                    "high": 1500.0,
                    "actual": 1450.25,
                    "inside": True,
                }
            ],
        },
    }
    make_run(root, "2027-01-01", steps, {"status": "succeeded", "kind": "pipeline"}, heads=later)
    make_run(
        root,
        "2026-11-02",
        steps,
        {
            "status": "failed",
            "failed_step": "02_eda",
            "log": "x.log",
            "reason": "IngestError: /very/private/dir/orders.jsonl: <empty> file",
        },
        error_at="02_eda",
        heads=heads,
    )
    (root / "not-a-run").mkdir()
    runs = reports.collect_runs(root)
    assert [r.run_date for r in runs] == ["2027-01-01", "2026-11-02", "2026-11-01"]
    checker, failed, ok = runs
    assert (ok.status, ok.rejected, ok.customers_scored, ok.predicted_spend) == (
        "succeeded",
        10,
        42,
        1300.0,
    )
    # what was received is said per source, never added up across customers and order lines
    assert ok.sources == ["1,200 customers (3 rejected)", "800 order lines (7 rejected)"]
    # one story, in words: the version trained here (not promoted) and the version that scored
    assert ok.trained == (
        "random forest (version 4): typical error (RMSE) $11.00 per customer, 25% better than "
        '"same as last period"; not made the default (version 3 stays)'
    )
    assert ok.model == "linear model (ridge) (version 3)"
    assert ok.forecast == "$1,300 ($1,100–$1,500, 90%) from 42 customers"
    assert ok.drift == ["spend so far (PSI 0.41)"]
    # a later run checked this forecast against what happened: both rows say so
    assert ok.outcome == "actual $1,450 ✓ inside the range (checked on 2027-01-01)"
    assert checker.track == ["2026-11-01: forecast $1,300 ($1,100–$1,500), actual $1,450 ✓"]
    assert [href for _, href in ok.links] == [f"2026-11-01/{s}.html" for s in steps]
    # a failed run: reason without the path, links and figures only from the steps before the
    # failure
    assert failed.status == "failed" and failed.failed_step == "02_eda"
    assert failed.reason == "IngestError: orders.jsonl: <empty> file"
    assert [href for _, href in failed.links] == ["2026-11-02/01_ingest.html"]
    assert failed.sources and failed.customers_scored is None
    html = reports.build_index(root).read_text()
    assert html.index('id="run-production-2026-11-02"') < html.index(
        'id="run-production-2026-11-01"'
    )
    assert "&lt;empty&gt;" in html and "<empty>" not in html and "/very/private" not in html
    assert "failed at 02_eda" in html and "$1,300 ($1,100–$1,500, 90%)" in html
    assert "⚠ spend so far (PSI 0.41)" in html and "actual $1,450 ✓" in html
    for raw in ("random_forest", "last_period", "SPEND", "nan", "None"):
        assert not re.search(rf"\b{raw}\b", re.sub(r"<[^>]+>", " ", html)), raw


def test_index_survives_missing_and_broken_records(tmp_path):
    root = tmp_path / "reports"
    make_run(
        root, "2026-10-01", ["01_ingest", "02_eda"]
    )  # plain ploomber build: no run.json, no headlines
    make_run(
        root,
        "2026-10-02",
        ["01_ingest", "02_eda"],
        error_at="02_eda",
        heads={"01_ingest": "{not json", "05_batch_prediction": {"customers_scored": "many"}},
    )
    make_run(
        root, "2026-10-03", [], {"status": "running", "pid": 999_999_999}
    )  # its process is gone
    runs = {r.run_date: r for r in reports.collect_runs(root)}
    assert runs["2026-10-01"].status == "succeeded" and runs["2026-10-01"].sources == []
    assert (runs["2026-10-02"].status, runs["2026-10-02"].failed_step) == ("failed", "02_eda")
    assert (
        runs["2026-10-02"].reason == "IngestError: boom"
        and runs["2026-10-02"].customers_scored is None
    )
    assert runs["2026-10-03"].status == "interrupted"
    html = reports.build_index(root).read_text()
    assert html.count("<tr id=") == 3


def test_experiments_are_listed_apart_with_what_differs(tmp_path):
    root = tmp_path / "reports"
    prod = {
        "status": "succeeded",
        "namespace": {"kind": "production", "name": "production", "label": ""},
    }
    make_run(root, "2026-11-01", ["01_ingest"], prod)
    exp = {
        "status": "succeeded",
        "namespace": {"kind": "experiment", "name": "horizon_days-30", "label": "horizon 30 d"},
    }
    make_run(root / "experiments" / "horizon_days-30", "2026-11-01", ["01_ingest"], exp)
    make_run(
        root / "experiments" / "sample-0.1",
        "2026-11-01",
        ["01_ingest"],
        {**exp, "namespace": {"kind": "experiment", "name": "sample-0.1", "label": "10% sample"}},
    )
    rows = reports.collect_runs(root)
    assert [(r.namespace, r.label) for r in rows] == [
        ("production", ""),
        ("horizon_days-30", "horizon 30 d"),
        ("sample-0.1", "10% sample"),
    ]
    html = reports.build_index(root).read_text()
    order = [
        "<h2>Production</h2>",
        'id="run-production-2026-11-01"',
        "<h2>Experiments</h2>",
        "horizon 30 d",
        'id="run-horizon_days-30-2026-11-01"',
        "10% sample",
    ]
    assert [html.index(x) for x in order] == sorted(html.index(x) for x in order)
    assert 'href="experiments/horizon_days-30/2026-11-01/01_ingest.html"' in html


def test_redact_shortens_absolute_paths():
    assert reports.redact(
        "FileNotFoundError: /home/ana/data/raw/orders.jsonl: file not found."
    ) == ("FileNotFoundError: orders.jsonl: file not found.")
    assert reports.redact("see C:\\Users\\ana\\orders.jsonl now") == "see orders.jsonl now"
    assert reports.redact("ratio 3/4 and a/b stay") == "ratio 3/4 and a/b stay"
    assert len(reports.redact("x" * 1000)) == 400
