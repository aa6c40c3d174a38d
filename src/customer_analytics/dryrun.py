"""The Snowflake SQL a run would send, without connecting (``customer-analytics run --dry-run``).

Nothing can ask Snowflake what it would receive, so the whole pipeline runs on the embedded
warehouse in a folder of its own (never the configured warehouse, registry or reports), with the
server recording every statement in full (``CA_WAREHOUSE_AUDIT``). The script is those statements,
in order, with these differences from a real Snowflake run, each said in the script:

* statements tagged local-only (DuckDB reading a Parquet file) are replaced by what the Snowflake
  branch sends instead, produced by the same functions against a
  :class:`recording.RecordingSession`: ``PUT`` + ``COPY INTO`` for loading a file
  (``warehouse.load_staged``), the connector's ``write_pandas`` + ``CREATE … AS SELECT`` for a
  pandas frame (``warehouse.write_pandas``);
* the statements of opening a Snowflake session and snowflake-ml's own SQL (logging a model,
  ``ModelVersion.run``) are not in it: a comment at the top says so;
* ``connection`` is only named: nothing connects to it.

The run uses the configured data (use ``--set sample=…`` for a quicker, smaller dry run: the
statements depend on the data only through product types, cut-offs and row counts).
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from customer_analytics import sqlcheck
from customer_analytics import warehouse_server as srv
from customer_analytics.portable import LOCAL_ONLY
from customer_analytics.recording import RecordingSession

_LOCAL_LOAD = re.compile(r"CREATE OR REPLACE TABLE (\w+) AS SELECT \* FROM read_parquet\(", re.I)
_HEADER = """-- customer-analytics dry run for Snowflake connection '{connection}', run date \
{run_date}
-- Recorded on the embedded warehouse (nothing connected to Snowflake). Not included: the \
statements of
-- opening the session (database/schema set-up) and snowflake-ml's own SQL (log_model, \
ModelVersion.run).
-- Loads of local files are shown as the Snowflake branch sends them (PUT + COPY INTO, \
write_pandas).
"""


@dataclasses.dataclass
class DryRun:
    """The outcome of :func:`dry_run`.

    Attributes:
        returncode: ``ploomber build``'s exit code (0: the run completed; otherwise the script stops
            where the run stopped).
        statements: the Snowflake statements, in order (local-only ones replaced, see the module
            doc).
        findings: the offline Snowflake SQL check of ``statements`` (:mod:`sqlcheck`).
        folder: where the throw-away warehouse, reports and audit were written.
        output: the last lines of ``ploomber build``'s output.
    """

    returncode: int
    statements: list[str]
    findings: list[sqlcheck.Finding]
    folder: Path
    output: str
    header: str = ""

    def script(self) -> str:
        """The statements as one SQL script (what ``--dry-run`` prints)."""
        body = ";\n\n".join(s.strip().rstrip(";") for s in self.statements)
        lint = "-- offline Snowflake SQL check: " + sqlcheck.summary(self.findings).replace(
            "\n", "\n-- "
        )
        return f"{self.header}{lint}\n\n{body};\n"


def snowflake_statements(sql: str, columns: dict[str, list[str]], folder: Path) -> list[str]:
    """What Snowflake receives instead of a local-only statement (itself when it is not one).

    Args:
        sql: a recorded statement.
        columns: columns of the tables of the dry-run warehouse, by table name.
        folder: where to write the empty Parquet file the loading branch reads its schema from.
    """
    from customer_analytics import warehouse as wh

    m = _LOCAL_LOAD.search(sql)
    if LOCAL_ONLY not in sql or not m:
        return [sql]
    table = m.group(1).upper()
    cols = columns.get(table) or columns.get(table.removesuffix("__NEW")) or []
    session = RecordingSession(row_counts={table: 0})
    if table.startswith("RAW_"):  # files loaded by the ingest: warehouse.load_staged
        path = folder / f"{table}.parquet"
        types = {c: pa.int64() if c == "LINE_NO" else pa.string() for c in cols}
        pq.write_table(pa.table({c: pa.array([], t) for c, t in types.items()}), path)
        wh.load_staged(session, path, table)  # type: ignore[arg-type]  # records as a Session
    else:  # pandas frames: warehouse.write_pandas
        import pandas as pd

        frame = pd.DataFrame(columns=cols or ["COLUMNS_OF_THE_FRAME"])
        wh.write_pandas(session, frame, table, folder)  # type: ignore[arg-type]  # records as a Session
    return session.statements


def _columns(warehouse_dir: Path, database: str, schema: str) -> dict[str, list[str]]:
    """Columns of every table of the dry-run warehouse (read from its files after the server
    stopped)."""
    import duckdb

    out: dict[str, list[str]] = {}
    db = warehouse_dir / f"{database.upper()}.db"
    if not db.exists():
        return out
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE upper(table_schema) = ? ORDER BY table_name, ordinal_position",
            [schema.upper()],
        ).fetchall()
    for table, column in rows:
        out.setdefault(table.upper(), []).append(column.upper())
    return out


def dry_run(
    root: Path,
    values: dict,
    connection: str,
    folder: Path | None = None,
    timeout: float = 3600,
) -> DryRun:
    """Record the Snowflake SQL of a whole run without connecting to ``connection``.

    Args:
        root: the project folder (``pipeline.yaml``).
        values: the run's parameters as ``customer-analytics run`` resolved them (``env.yaml`` plus
            overrides); ``connection``, ``warehouse_dir`` and ``reports_dir`` are replaced by the
            dry run's own.
        connection: the Snowflake connection name the user asked about (only named in the script).
        folder: where to write the throw-away warehouse and reports (default: a new temporary
            folder).
        timeout: seconds the local run may take.

    Returns:
        A :class:`DryRun`; ``script()`` is the text ``--dry-run`` prints.

    The run is a production run of its own throw-away profile (an env file in ``folder``), so its
    statements name the tables and schema a production run on Snowflake would.
    """
    from customer_analytics import config, parameters
    from customer_analytics import warehouse as wh

    folder = Path(folder or tempfile.mkdtemp(prefix="ca-dry-run-"))
    folder.mkdir(parents=True, exist_ok=True)
    own = {
        **values,
        "connection": "local",
        "warehouse_dir": str(folder / "warehouse"),
        "reports_dir": str(folder / "reports"),
    }
    env_file = folder / "env.yaml"
    env_file.write_text(parameters.render_env(own), encoding="utf-8")
    params = config.validate(own, root)
    audit = folder / "audit.jsonl"
    audit.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "customer_analytics.cli",
        "run",
        "--force",
        "--log-dir",
        str(folder / "logs"),
    ]
    env = {
        **os.environ,
        srv.AUDIT_VAR: str(audit),
        config.ENV_FILE_VAR: str(env_file),
        config.ROOT_ENV_VAR: str(root),
        "PLOOMBER_STATS_ENABLED": "false",
        "PLOOMBER_VERSION_CHECK_DISABLED": "1",
    }
    try:
        done = subprocess.run(
            cmd,
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    finally:
        wh.stop_local_server(params.warehouse_dir)
    database, schema = (
        params.database or config.LOCAL_DATABASE,
        params.schema or config.LOCAL_SCHEMA,
    )
    columns = _columns(params.warehouse_dir, database, schema)
    statements = [
        s
        for sql in sqlcheck.audit_statements(audit)
        for s in snowflake_statements(sql, columns, folder)
    ]
    header = _HEADER.format(connection=connection, run_date=params.run_date)
    if done.returncode:
        header += (
            f"-- THE LOCAL RUN FAILED (exit {done.returncode}): the script stops where it "
            "stopped.\n"
        )
    return DryRun(
        done.returncode,
        statements,
        sqlcheck.check(statements),
        folder,
        (done.stdout + done.stderr)[-3000:],
        header,
    )
