"""The offline Snowflake SQL lint: each rule catches a planted statement, and lets the right form
pass."""

from __future__ import annotations

import pytest

from customer_analytics import portable, sqlcheck

#: (rule, a statement it must flag, the same statement written the portable way)
PLANTED = [
    (
        "reserved-word",
        "CREATE OR REPLACE TABLE INGEST_REASONS__NEW (SOURCE VARCHAR, FIELD VARCHAR, REASON "
        "VARCHAR, ROWS INT, EXAMPLE_LINES VARCHAR)",
        "CREATE OR REPLACE TABLE INGEST_REASONS__NEW (SOURCE VARCHAR, FIELD VARCHAR, REASON "
        "VARCHAR, N_ROWS INT, EXAMPLE_LINES VARCHAR)",
    ),
    (
        "reserved-word",
        'SELECT "A" AS "SAMPLE", "B" AS START FROM T',
        'SELECT "A" AS "SAMPLED", "B" AS STARTED FROM T',
    ),
    (
        "duckdb-only",
        "CREATE OR REPLACE TABLE X AS SELECT * FROM read_parquet('/tmp/x.parquet')",
        portable.local_only(
            "CREATE OR REPLACE TABLE X AS SELECT * FROM read_parquet('/tmp/x.parquet')"
        ),
    ),
    ("duckdb-only", "SELECT string_agg(A, ',') FROM T", "SELECT LISTAGG(A, ',') FROM T"),
    ("duckdb-only", "SELECT * FROM '/tmp/x.parquet'", "SELECT * FROM X"),
    (
        "avg-not-double",
        "SELECT avg(DATEDIFF('day', A, B)) AS G FROM T",
        "SELECT avg(CAST(DATEDIFF('day', A, B) AS DOUBLE)) AS G FROM T",
    ),
    (
        "avg-not-double",
        'SELECT avg(iff("X" IS NULL, 1.0, 0.0)) AS M FROM T',
        'SELECT avg(CAST(iff("X" IS NULL, 1.0, 0.0) AS DOUBLE)) AS M FROM T',
    ),
    (
        "avg-not-double",
        'SELECT stddev_samp("GAP") AS S FROM T',
        'SELECT stddev_samp(CAST("GAP" AS DOUBLE)) AS S FROM T',
    ),
    (
        "timestamp-mapping",
        "SELECT CAST('2026-01-01 00:00:00' AS TIMESTAMP) AS T0",
        "SELECT CAST('2026-01-01 00:00:00' AS TIMESTAMP_NTZ) AS T0",
    ),
    (
        "timestamp-mapping",
        "SELECT * FROM T WHERE \"TS\" < TIMESTAMP '2025-09-07 00:00:00'",
        "SELECT * FROM T WHERE \"TS\" < CAST('2025-09-07 00:00:00' AS TIMESTAMP_NTZ)",
    ),
    (
        "timestamp-mapping",
        "CREATE OR REPLACE TABLE X (TS TIMESTAMP)",
        "CREATE OR REPLACE TABLE X (TS TIMESTAMP_NTZ)",
    ),
    (
        "timestamp-mapping",
        "SELECT TO_TIMESTAMP(A) AS T FROM X",
        "SELECT TO_TIMESTAMP_NTZ(A) AS T FROM X",
    ),
    (
        "hash-sampling",
        'SELECT * FROM T WHERE (abs(hash("CUSTOMER_ID")) % 10000 :: INT) < 3000 :: INT',
        "SELECT * FROM T WHERE (md5(\"CUSTOMER_ID\") < 'f')",
    ),
    ("hash-sampling", "SELECT * FROM T SAMPLE (10)", "SELECT * FROM T LIMIT 10"),
    ("parse", "SELEC A FROM", "SELECT A FROM T"),
]


@pytest.mark.parametrize(
    "rule,bad,good", PLANTED, ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(PLANTED)]
)
def test_each_rule_catches_its_planted_statement_and_passes_the_portable_form(rule, bad, good):
    found = sqlcheck.check_statement(bad)
    assert rule in {f.rule for f in found}, found
    assert sqlcheck.check_statement(good) == []


def test_the_local_only_tag_exempts_duckdb_functions_only():
    tagged = portable.local_only("SELECT avg(\"N\") AS M FROM read_parquet('/tmp/x.parquet')")
    assert [f.rule for f in sqlcheck.check_statement(tagged)] == ["avg-not-double"]


def test_findings_name_the_rule_and_show_the_statement_briefly():
    sql = "SELECT " + ", ".join(f"A{i}" for i in range(200)) + " FROM T SAMPLE (10)"
    (finding,) = sqlcheck.check([sql, sql])  # each distinct statement once
    assert finding.rule == "hash-sampling" and finding.sql.endswith("…") and len(finding.sql) < 200
    assert "hash-sampling: 1" in sqlcheck.summary([finding])


def test_snowflake_commands_the_branches_send_parse():
    for sql in (
        "PUT 'file:///tmp/a b.parquet' @CA_INGEST_STAGE/RAW_ORDERS__NEW AUTO_COMPRESS=FALSE "
        "OVERWRITE=TRUE",
        "REMOVE @CA_INGEST_STAGE/RAW_ORDERS__NEW/",
        "ALTER TABLE A SWAP WITH A__NEW",
        "select system$cancel_all_queries(12)",
        "CREATE TEMPORARY STAGE IF NOT EXISTS CA_INGEST_STAGE",
    ):
        assert sqlcheck.check_statement(sql) == [], sql


def test_the_audit_file_is_read_in_full(tmp_path):
    long_sql = "SELECT " + ", ".join(f"A{i}" for i in range(300)) + " FROM T WHERE HASH(A1) > 0"
    (tmp_path / "audit.jsonl").write_text(f'{{"sql": "{long_sql}", "rows": 0}}\n')
    assert [f.rule for f in sqlcheck.check_audit(tmp_path / "audit.jsonl")] == ["hash-sampling"]
    assert sqlcheck.main([str(tmp_path / "audit.jsonl")]) == 1
