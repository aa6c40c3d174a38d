"""Experiments never touch production (issue 13's acceptance), run for real in a scratch project.

The sequence a user follows from the README: ``make run`` (production); ``ploomber build
--env--horizon_days 30``; ``make run RUN_ARGS="--env--sample 0.1"``; 03 and 05 run in JupyterLab
style with another horizon; ``customer-analytics score``. Production's default model, PREDICTIONS,
CLEAN_* tables (row for row) and ``reports/<run_date>/`` (byte for byte) must end as the first
run left them, and the index must list the experiments apart, each labelled.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from nbclient.exceptions import CellExecutionError

from conftest import outputs_text, project_env, run_interactively, scratch_project
from customer_analytics import config, registry, reports, synthetic
from customer_analytics import warehouse as wh

pytestmark = pytest.mark.slow
RUN_DATE = "2026-11-01"
TABLES = ("CLEAN_CUSTOMERS", "CLEAN_ORDERS", "CLEAN_ORDER_LINES", "CLEAN_REVIEWS", "PREDICTIONS")


def command(
    project: Path, *args: str, tool: str = "customer-analytics"
) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [str(Path(sys.executable).with_name(tool)), *args],
        cwd=project,
        capture_output=True,
        text=True,
        env=project_env(project),
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-6000:]
    return out


def production_state(project: Path) -> dict:
    """What production holds: tables row for row, the registry's files and default, the report
    folder's bytes."""
    params = config.load(project)
    s = wh.connect(params)
    try:
        tables = {
            t: s.table(t).to_pandas().sort_values(list(s.table(t).columns), ignore_index=True)
            for t in TABLES
        }
    finally:
        s.close()
    reg_dir = params.warehouse_dir / "registry" / "shop"
    digest = {
        p.relative_to(reg_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(reg_dir.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }
    folder = params.reports_dir / RUN_DATE
    files = {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
    default = registry.open_registry(params).default_version(
        registry.model_name(params.horizon_days)
    )
    return {"tables": tables, "registry": digest, "default": default, "reports": files}


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiments")
    project = scratch_project(
        root,
        data_dir=str(root / "raw"),
        warehouse_dir=str(root / "warehouse"),
        reports_dir=str(root / "reports"),
        models="last_period,mean,ridge",
    )
    synthetic.write(synthetic.generate(1000, seed=23), root / "raw")
    steps = {"make run": command(project, "run", "--echo")}
    first = production_state(project)
    steps["horizon 30"] = command(project, "build", "--env--horizon_days", "30", tool="ploomber")
    steps["sample 0.1"] = command(project, "run", "--env--sample", "0.1")
    interactive = {"03": run_interactively(project, "03_features", horizon_days=30)}
    try:
        run_interactively(project, "05_batch_prediction", horizon_days=30)
    except CellExecutionError as e:
        interactive["05 error"] = str(e)
    steps["score"] = command(project, "score")
    yield project, first, steps, interactive
    wh.stop_local_server(root / "warehouse")


def test_production_is_exactly_as_the_first_run_left_it(sequence):
    project, first, _, _ = sequence
    now = production_state(project)
    assert now["default"] == first["default"] == "v1"
    assert now["registry"] == first["registry"]
    for table in TABLES:
        pd.testing.assert_frame_equal(
            now["tables"][table], first["tables"][table], check_exact=True
        )
    assert now["reports"].keys() == first["reports"].keys()
    changed = [name for name in first["reports"] if now["reports"][name] != first["reports"][name]]
    assert changed == []


def test_every_table_a_run_leaves_has_the_notebook_that_writes_it(sequence):
    """Scratch runs read upstream tables through views by owner (runs.TABLE_OWNERS): a table
    without one would be invisible to a notebook run on its own."""
    from customer_analytics import runs

    project, _, _, _ = sequence
    params = config.load(project)
    s = wh.connect(params)
    try:
        tables = wh.list_tables(
            s, s.get_current_database().strip('"'), s.get_current_schema().strip('"')
        )
    finally:
        s.close()
    assert {"FEATURES", "BTYD_PARAMS", "TEXT_TOPICS", "PREDICTIONS"} <= set(tables)
    assert [t for t in tables if runs.table_owner(t) is None] == []
    assert (
        runs.table_owner("TEXT_TOPICS") == "02_eda"
        and runs.table_owner("BTYD_PARAMS") == "03_features"
    )


def test_the_experiments_ran_in_their_own_namespaces(sequence):
    project, _, steps, _ = sequence
    params = config.load(project)
    folders = {p.name for p in (params.reports_dir / "experiments").iterdir()}
    assert folders == {"horizon_days-30", "sample-0.1"}
    for name in folders:
        html = (
            params.reports_dir / "experiments" / name / RUN_DATE / "05_batch_prediction.html"
        ).read_text()
        assert html.index(f"Experiment <code>{name}</code>") < html.index(": summary")  # said first
    s = wh.connect(params)
    try:
        schemas = {
            r["SCHEMA_NAME"]
            for r in s.sql(
                "SELECT SCHEMA_NAME FROM ANALYTICS.INFORMATION_SCHEMA.SCHEMATA"
            ).collect()
        }
        sample = next(x for x in schemas if x.startswith("SHOP__X_SAMPLE"))
        n_sample = s.table(f"ANALYTICS.{sample}.CLEAN_CUSTOMERS").count()
        assert 0 < n_sample < 0.3 * s.table("CLEAN_CUSTOMERS").count()
    finally:
        s.close()
    # the 30-day experiment trained and promoted a 30-day model, in its own registry only
    exp_regs = [
        p
        for p in (params.warehouse_dir / "registry").iterdir()
        if p.name.startswith("shop__x_horizon")
    ]
    assert [sorted(q.name for q in p.iterdir()) for p in exp_regs] == [["customer_spend_30d"]]
    assert not (params.warehouse_dir / "registry" / "shop" / "customer_spend_30d").exists()
    assert "experiment sample-0.1 (10% sample)" in steps["sample 0.1"].stderr


def test_the_index_lists_the_experiments_apart_with_what_differs(sequence):
    project, _, _, _ = sequence
    rows = reports.collect_runs(config.load(project).reports_dir)
    assert [(r.namespace, r.label, r.status) for r in rows] == [
        ("production", "", "succeeded"),
        ("horizon_days-30", "horizon 30 d", "succeeded"),
        ("sample-0.1", "10% sample", "succeeded"),
    ]
    sample = rows[2]
    assert (
        sample.customers_scored is not None and sample.customers_scored < rows[0].customers_scored
    )
    html = (config.load(project).reports_dir / "index.html").read_text()
    assert (
        html.index("<h2>Production</h2>")
        < html.index("<h2>Experiments</h2>")
        < html.index("10% sample")
    )


def test_notebooks_run_on_their_own_say_where_they_write_and_refuse_a_model_of_another_horizon(
    sequence,
):
    _, _, steps, interactive = sequence
    said = outputs_text(interactive["03"])
    assert "**Scratch run**" in said and "writes schema `SHOP__SCRATCH`, not production" in said
    error = interactive["05 error"]
    assert (
        "customer_spend_30d has no default version yet" in error
    )  # production's 60-day model is never used
    assert (
        "nothing to re-score" in steps["score"].stderr
    )  # production's scores were already up to date
