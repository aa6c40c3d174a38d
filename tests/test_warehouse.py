import json
import logging
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import snowflake.snowpark.functions as F
from snowflake.snowpark.exceptions import SnowparkSQLException

from conftest import REPO
from customer_analytics import warehouse as wh


def test_local_connect_creates_database_files_and_schema(fresh_warehouse):
    s = wh.connect(fresh_warehouse)
    row = s.sql("SELECT CURRENT_DATABASE() AS D, CURRENT_SCHEMA() AS S").collect()[0]
    assert (row["D"], row["S"]) == ("ANALYTICS", "SHOP")
    assert (fresh_warehouse.warehouse_dir / "ANALYTICS.db").is_file()
    state = json.loads((fresh_warehouse.warehouse_dir / "server.json").read_text())
    assert state["port"] > 0
    s.close()


def test_replace_table_is_atomic_when_the_new_query_fails(fresh_warehouse):
    s = wh.connect(fresh_warehouse)
    s.sql("CREATE OR REPLACE TABLE T AS SELECT 1 AS A UNION ALL SELECT 2").collect()
    bad = s.table("T").select(
        (F.col("A") / F.lit(0)).cast("int").alias("A"), F.call_function("NO_SUCH_FN", F.col("A"))
    )
    with pytest.raises(SnowparkSQLException):
        wh.replace_table(bad, "T")
    assert sorted(r["A"] for r in s.table("T").collect()) == [1, 2]
    wh.replace_table(s.table("T").filter(F.col("A") > 1), "T")
    assert [r["A"] for r in s.table("T").collect()] == [2]
    s.close()


def test_tables_persist_across_server_restarts(fresh_warehouse):
    s = wh.connect(fresh_warehouse)
    s.sql("CREATE OR REPLACE TABLE KEEP AS SELECT 42 AS X").collect()
    s.close()
    wh.stop_local_server(fresh_warehouse.warehouse_dir)
    s = wh.connect(fresh_warehouse)
    assert s.table("KEEP").collect()[0]["X"] == 42
    s.close()


def test_a_second_process_uses_the_warehouse_while_a_session_is_open(fresh_warehouse):
    """A JupyterLab kernel and a pipeline run at once: both read and write the same tables."""
    s = wh.connect(fresh_warehouse)
    s.sql("CREATE OR REPLACE TABLE SHARED AS SELECT 1 AS X").collect()
    code = textwrap.dedent(f"""
        from customer_analytics import config, warehouse as wh
        p = config.load(
            warehouse_dir={str(fresh_warehouse.warehouse_dir)!r},
            data_dir={str(fresh_warehouse.data_dir)!r},
        )
        s = wh.connect(p)
        s.sql("CREATE OR REPLACE TABLE FROM_OTHER AS SELECT COUNT(*) AS N FROM SHARED").collect()
        print(s.table("FROM_OTHER").collect()[0]["N"])
    """)
    env = {**os.environ, "CUSTOMER_ANALYTICS_ROOT": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
    assert s.table("FROM_OTHER").collect()[0]["N"] == 1  # this session sees the other's write
    s.close()


def test_a_foreign_lock_on_the_files_gives_a_clear_message(fresh_warehouse, tmp_path):
    import duckdb

    fresh_warehouse.warehouse_dir.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import duckdb, time
        c = duckdb.connect({str(fresh_warehouse.warehouse_dir / "ANALYTICS.db")!r})
        print("locked", flush=True)
        time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(wh.WarehouseError, match="could not start.*(lock|Conflicting)"):
            wh.connect(fresh_warehouse)
    finally:
        holder.kill()
    del duckdb


def test_write_pandas_round_trip(fresh_warehouse):
    s = wh.connect(fresh_warehouse)
    pdf = pd.DataFrame({"customer_id": ["C1", "C2"], "value": [1.5, 2.5]})
    wh.write_pandas(s, pdf, "SMALL", fresh_warehouse.warehouse_dir / "staging")
    back = s.table("SMALL").sort("CUSTOMER_ID").to_pandas()
    assert back["VALUE"].tolist() == [1.5, 2.5] and back["CUSTOMER_ID"].tolist() == ["C1", "C2"]
    assert not list((fresh_warehouse.warehouse_dir / "staging").iterdir())  # staging file removed
    s.close()


def test_table_helpers(session):
    assert wh.table_exists(session, "CLEAN_ORDERS")
    assert not wh.table_exists(session, "NO_SUCH_TABLE")
    assert wh.row_count(session, "CLEAN_CUSTOMERS") > 0


def test_another_process_is_served_while_a_long_query_runs(fresh_warehouse):
    """A kernel stays usable while the pipeline runs a long query (queries do not queue behind each
    other)."""
    import threading

    s = wh.connect(fresh_warehouse)
    s.sql("CREATE OR REPLACE TABLE SHARED AS SELECT 7 AS X").collect()
    long_result = []
    heavy = threading.Thread(
        target=lambda: long_result.extend(
            s.sql(
                "SELECT SUM(SEQ4() % 7) AS N FROM TABLE(GENERATOR(ROWCOUNT => 2000000000))"
            ).collect()
        )
    )
    code = textwrap.dedent(f"""
        from customer_analytics import config, warehouse as wh
        p = config.load(
            warehouse_dir={str(fresh_warehouse.warehouse_dir)!r},
            data_dir={str(fresh_warehouse.data_dir)!r},
        )
        print(wh.connect(p).table("SHARED").collect()[0]["X"])
    """)
    env = {**os.environ, "CUSTOMER_ANALYTICS_ROOT": str(REPO)}
    heavy.start()
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    still_running = heavy.is_alive()
    heavy.join()
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == "7"
    assert still_running, "the other process was only served after the long query ended"
    assert long_result and long_result[0]["N"] > 0
    s.close()


def test_sessions_infer_schemas_locally_and_say_nothing_about_it(session, caplog):
    """``reduce_describe_query_enabled`` is on; its setter's "experimental" warning (once per
    process, on the ``snowflake.snowpark`` logger) stays out of logs and notebook reports."""
    from snowflake.snowpark._internal import utils as snowpark_utils

    session.reduce_describe_query_enabled = False
    snowpark_utils.warning_dict.pop("reduce_describe_query_enabled", None)  # as in a new process
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        wh._tuned(session)
    assert session.reduce_describe_query_enabled
    assert not [r for r in caplog.records if "experimental" in r.getMessage()]


def test_actions_do_not_read_the_machines_counters_for_telemetry(session, monkeypatch):
    """Telemetry is off, so Snowpark's per-action psutil readings (network counters, memory) are
    not taken: each cost ~1.5 ms of a statement's round trip."""
    import psutil

    calls = []
    real = psutil.net_io_counters
    monkeypatch.setattr(psutil, "net_io_counters", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert session.sql("SELECT 7 AS N").collect()[0][0] == 7
    assert session.sql("SELECT 1 AS A UNION ALL SELECT 2").count() == 2
    assert not calls, f"{len(calls)} readings of the network counters for two actions"
