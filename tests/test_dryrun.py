"""``customer-analytics run --dry-run``'s library function: the Snowflake SQL of a whole run,
without connecting."""

from __future__ import annotations

import pytest

from conftest import scratch_project
from customer_analytics import config, dryrun, synthetic

pytestmark = pytest.mark.slow


def test_a_dry_run_records_the_snowflake_statements_of_a_whole_run_and_touches_nothing(tmp_path):
    project = scratch_project(tmp_path / "project")
    synthetic.write(synthetic.generate(400, seed=3), project / "raw")
    values = {
        **config.read_env(project),
        "data_dir": str(project / "raw"),
        "models": "last_period,ridge",
    }
    result = dryrun.dry_run(project, values, "prod", folder=tmp_path / "dry")
    assert result.returncode == 0, result.output
    script = result.script()
    assert script.startswith("-- customer-analytics dry run for Snowflake connection 'prod'")
    assert "offline Snowflake SQL check: no findings" in script and result.findings == []
    assert "read_parquet" not in script  # local-only loads are shown as Snowflake loads them
    assert "COPY INTO RAW_ORDERS__NEW FROM @CA_INGEST_STAGE/RAW_ORDERS__NEW/" in script
    assert (
        "PUT 'file://" in script
        and "-- write_pandas INGEST_LOG__NEW__STAGE (SOURCE, FILE_NAME" in script
    )
    assert "CREATE OR REPLACE TABLE FEATURES AS SELECT" in script
    assert (
        "CREATE OR REPLACE TABLE PREDICTIONS AS" in script
        or "CREATE OR REPLACE TABLE PREDICTIONS__MERGED" in script
    )
    assert (
        not (project / "data").exists() and not (project / "reports").exists()
    )  # the project's own are untouched


def test_the_command_prints_the_script_without_connecting(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from conftest import project_env

    project = scratch_project(tmp_path / "project", data_dir=str(tmp_path / "raw"))
    synthetic.write(synthetic.generate(300, seed=4), tmp_path / "raw")
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("customer-analytics")),
            "run",
            "--dry-run",
            "--connection",
            "prod",
            "--set",
            "models=last_period,mean",
        ],
        cwd=project,
        env=project_env(project),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith(
        "-- customer-analytics dry run for Snowflake connection 'prod', run date 2026-11-01"
    )
    assert "CREATE OR REPLACE TABLE FEATURES AS SELECT" in out.stdout
    assert (
        not (tmp_path / "reports").exists() and not (project / "data").exists()
    )  # nothing of the project's
