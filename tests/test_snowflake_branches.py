"""The Snowflake-only branches of ``warehouse``, run against a recording session: exact statement
sequences.

Snowflake cannot run here; these branches never run on the embedded warehouse. Each test runs the
real function against :class:`recording.RecordingSession` (registered as a Snowflake session),
asserts the statements it sends, in order, and checks them with the offline Snowflake SQL lint.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from customer_analytics import sqlcheck
from customer_analytics import warehouse as wh
from customer_analytics.recording import RecordingSession


def staged_file(path, rows: int = 3):
    table = pa.table(
        {
            "SOURCE_FILE": ["orders.jsonl"] * rows,
            "LINE_NO": list(range(1, rows + 1)),
            "RECORD": ["{}"] * rows,
            "READ_REASON": [None] * rows,
            "READ_FIELD": [None] * rows,
            "CUSTOMER_ID": ["C1"] * rows,
        }
    )
    pq.write_table(table, path)
    return path


def test_load_staged_puts_the_file_on_a_stage_and_copies_it_by_column_name(tmp_path):
    s = RecordingSession(row_counts={"RAW_ORDERS__NEW": 3})
    parquet = staged_file(tmp_path / "orders.parquet")
    assert wh.load_staged(s, parquet, "RAW_ORDERS__NEW") == 3
    assert s.statements == [
        "CREATE TEMPORARY STAGE IF NOT EXISTS CA_INGEST_STAGE",
        "REMOVE @CA_INGEST_STAGE/RAW_ORDERS__NEW/",
        f"PUT 'file://{parquet}' @CA_INGEST_STAGE/RAW_ORDERS__NEW AUTO_COMPRESS=FALSE "
        "OVERWRITE=TRUE",
        "CREATE OR REPLACE TABLE RAW_ORDERS__NEW (SOURCE_FILE VARCHAR, LINE_NO NUMBER(38,0), "
        "RECORD VARCHAR, READ_REASON VARCHAR, READ_FIELD VARCHAR, CUSTOMER_ID VARCHAR)",
        "COPY INTO RAW_ORDERS__NEW FROM @CA_INGEST_STAGE/RAW_ORDERS__NEW/ FILE_FORMAT = (TYPE = "
        "PARQUET) MATCH_BY_COLUMN_NAME = CASE_SENSITIVE ON_ERROR = ABORT_STATEMENT PURGE = TRUE",
    ]
    assert sqlcheck.check(s.statements) == []


def test_a_file_staged_in_parts_is_put_part_by_part_and_copied_once(tmp_path):
    s = RecordingSession(row_counts={"RAW_ORDERS__NEW": 5})
    parts = [staged_file(tmp_path / "o.parquet", 3), staged_file(tmp_path / "o.part1.parquet", 2)]
    assert wh.load_staged(s, parts, "RAW_ORDERS__NEW") == 5
    puts = [q for q in s.statements if q.startswith("PUT")]
    assert puts == [
        f"PUT 'file://{p}' @CA_INGEST_STAGE/RAW_ORDERS__NEW AUTO_COMPRESS=FALSE OVERWRITE=TRUE"
        for p in parts
    ]
    assert sum(q.startswith("COPY INTO RAW_ORDERS__NEW FROM") for q in s.statements) == 1
    assert s.statements.index(puts[-1]) < len(s.statements) - 1  # every part before the COPY
    assert sqlcheck.check(s.statements) == []


def test_load_staged_fails_loudly_when_copy_reports_another_row_count(tmp_path):
    s = RecordingSession(row_counts={"RAW_ORDERS__NEW": 4}, copy_loaded={"RAW_ORDERS__NEW": 3})
    with pytest.raises(wh.WarehouseError, match="reported 3 rows"):
        wh.load_staged(s, staged_file(tmp_path / "orders.parquet"), "RAW_ORDERS__NEW")


def test_publish_swaps_existing_tables_and_renames_new_ones():
    s = RecordingSession(existing={"CLEAN_ORDERS", "CLEAN_ORDERS__NEW", "RAW_ORDERS__NEW"})
    wh.publish(s, {"CLEAN_ORDERS__NEW": "CLEAN_ORDERS", "RAW_ORDERS__NEW": "RAW_ORDERS"})
    exists = (
        "SELECT COUNT(*) AS N FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = 'SHOP' "
        "AND TABLE_NAME = '{}'"
    )
    assert s.statements == [
        exists.format("CLEAN_ORDERS"),
        "ALTER TABLE CLEAN_ORDERS SWAP WITH CLEAN_ORDERS__NEW",
        "DROP TABLE IF EXISTS CLEAN_ORDERS__NEW",
        exists.format("RAW_ORDERS"),
        "ALTER TABLE RAW_ORDERS__NEW RENAME TO RAW_ORDERS",
    ]
    assert sqlcheck.check(s.statements) == []


def test_write_pandas_uses_the_connector_then_one_create_as_select():
    s = RecordingSession()
    frame = pd.DataFrame({"customer_id": ["C1", "C2"], "pred_spend": [1.5, 2.0]})
    assert wh.write_pandas(s, frame, "PREDICTIONS__RUN_20261101") == "PREDICTIONS__RUN_20261101"
    assert s.statements == [
        "-- write_pandas PREDICTIONS__RUN_20261101__STAGE (CUSTOMER_ID, PRED_SPEND): 2 rows, "
        "auto_create_table=True, overwrite=True, use_logical_type=True",
        "CREATE OR REPLACE TABLE PREDICTIONS__RUN_20261101 AS SELECT * FROM "
        "PREDICTIONS__RUN_20261101__STAGE",
        "DROP TABLE IF EXISTS PREDICTIONS__RUN_20261101__STAGE",
    ]
    assert sqlcheck.check(s.statements[1:]) == []


def test_the_backend_comes_from_the_run_not_from_the_connection_object(fresh_warehouse):
    """``connect`` records the backend from the parameters; an unknown session is refused, not
    guessed."""
    session = wh.connect(fresh_warehouse)
    try:
        assert wh.backend(session) == wh.LOCAL and wh.is_local(session)
        assert wh.backend(RecordingSession()) == wh.SNOWFLAKE
        with pytest.raises(wh.WarehouseError, match="not opened by"):
            wh.backend(object())
    finally:
        session.close()  # sends SYSTEM$CANCEL_ALL_QUERIES, which the embedded server answers


def test_session_close_and_cancel_all_work_on_the_embedded_warehouse(fresh_warehouse):
    from snowflake.snowpark import Session

    session = wh.connect(fresh_warehouse)
    assert (
        session.cancel_all.__func__ is Session.cancel_all
    )  # the real method, not replaced by a no-op
    session.cancel_all()
    assert session.sql("SELECT 1 AS X").collect()[0]["X"] == 1
    session.close()  # raised SnowparkSessionException before the server answered the cancel
