"""The five notebooks, executed headless by Ploomber on a small sample, and their products."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import snowflake.snowpark.functions as F
from conftest import REPO

from customer_analytics import config, registry, synthetic
from customer_analytics import warehouse as wh

NOTEBOOKS = ["01_ingest", "02_eda", "03_features", "04_model_comparison", "05_batch_prediction"]
#: A phrase of each notebook's summary cell, which the report shows right after the title.
SUMMARY = {"01_ingest": "This run ingested", "02_eda": "The clean data holds", "03_features": "FEATURES holds",
           "04_model_comparison": "Selection rule", "05_batch_prediction": "Predicted spend over the next"}
pytestmark = pytest.mark.slow


def ploomber_build(work: Path, *extra: str) -> subprocess.CompletedProcess:
    """`ploomber build` of the repository's pipeline with data, warehouse and reports in ``work``."""
    cmd = [str(Path(sys.executable).with_name("ploomber")), "build", "--entry-point", "pipeline.yaml",
           "--env--data_dir", str(work / "raw"), "--env--warehouse_dir", str(work / "warehouse"),
           "--env--reports_dir", str(work / "reports"), *extra]
    env = {**os.environ, "PLOOMBER_STATS_ENABLED": "false", "PLOOMBER_VERSION_CHECK_DISABLED": "1"}
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-6000:]
    return out


def ran(output: str) -> dict[str, bool]:
    """Which tasks the build summary says ran."""
    rows = [line.split() for line in output.splitlines() if line.split()[:1] and line.split()[0] in NOTEBOOKS]
    return {r[0]: r[1] == "True" for r in rows}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("pipeline")
    synthetic.write(synthetic.generate(1200, seed=11), work / "raw")
    first = ploomber_build(work)
    yield work, first
    wh.stop_local_server(work / "warehouse")


def test_every_notebook_ran_and_wrote_html_with_figures(built):
    work, first = built
    assert ran(first.stdout) == dict.fromkeys(NOTEBOOKS, True)
    folder = work / "reports" / "2026-11-01"
    for name in NOTEBOOKS:
        nb = json.loads((folder / f"{name}.ipynb").read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, name
        html = (folder / f"{name}.html").read_text()
        assert "In this notebook we" in html, name
        assert html.index("In this notebook we") < html.index(SUMMARY[name]) < html.index("Set-up"), name
        assert "customer_analytics import" not in html and "config.load(" not in html, f"{name}: code is visible"
        assert str(work) not in html, f"{name}: a local path leaked into the report"
        if name != "01_ingest":
            assert html.count("data:image/png;base64") >= 1, f"{name}: no embedded figure"


def test_tables_hold_the_expected_columns_and_rows(built):
    work, _ = built
    p = config.load(REPO, data_dir=str(work / "raw"), warehouse_dir=str(work / "warehouse"),
                    reports_dir=str(work / "reports"))
    s = wh.connect(p)
    try:
        clean = s.table("CLEAN_CUSTOMERS")
        assert "EMAIL" not in clean.columns and "NAME" not in clean.columns
        assert clean.count() == 1200
        feats = s.table("FEATURES")
        roles = {r["ROLE"]: r["COUNT"] for r in feats.group_by("ROLE").count().collect()}
        assert set(roles) == {"train", "holdout", "score"} and min(roles.values()) > 0
        preds = s.table("PREDICTIONS")
        assert {"CUSTOMER_ID", "RUN_DATE", "MODEL_NAME", "MODEL_VERSION", "PRED_SPEND"} <= set(preds.columns)
        assert any(c.startswith("PRED_QTY_") for c in preds.columns)
        assert preds.count() > 0
    finally:
        s.close()


def test_second_build_with_nothing_changed_runs_no_notebook(built):
    work, _ = built
    again = ploomber_build(work)
    assert ran(again.stdout) == dict.fromkeys(NOTEBOOKS, False)


def test_another_run_date_adds_a_registry_version_and_its_predictions_name_the_default(built):
    work, _ = built
    ploomber_build(work, "--env--run_date", "2026-10-01")
    p = config.load(REPO, data_dir=str(work / "raw"), warehouse_dir=str(work / "warehouse"),
                    reports_dir=str(work / "reports"), run_date="2026-10-01")
    reg = registry.open_registry(p)
    versions = reg.list_versions()
    assert [v.meta["data_window"]["run_date"] for v in versions] == ["2026-11-01", "2026-10-01"]
    assert all(v.meta["metrics"]["rmse"] > 0 and v.meta["metrics"]["cv_rmse"] > 0 for v in versions)
    s = wh.connect(p)
    try:
        used = s.table("PREDICTIONS").filter(F.col("RUN_DATE") == F.lit(p.run_date)).select("MODEL_VERSION").distinct()
        assert [r["MODEL_VERSION"] for r in used.collect()] == [reg.default_version()]
    finally:
        s.close()
    html = (work / "reports" / "2026-10-01" / "04_model_comparison.html").read_text()
    assert "Selection rule" in html and ("is now the default" in html or "was not promoted" in html)
