"""``customer-analytics run --dry-run``'s library function: the Snowflake SQL of a whole run, without connecting."""

from __future__ import annotations

import pytest

from conftest import scratch_project
from customer_analytics import dryrun, synthetic

pytestmark = pytest.mark.slow


def test_a_dry_run_records_the_snowflake_statements_of_a_whole_run_and_touches_nothing(tmp_path):
    project = scratch_project(tmp_path / "project")
    synthetic.write(synthetic.generate(400, seed=3), project / "raw")
    result = dryrun.dry_run(
        project, "2026-11-01", {"data_dir": str(project / "raw")}, "prod", folder=tmp_path / "dry"
    )
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
