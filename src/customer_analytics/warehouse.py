"""Warehouse access: Snowpark sessions and table I/O for both backends.

* ``connection="local"``: the real Snowpark client talking to the embedded fakesnow/DuckDB
  server (see :mod:`customer_analytics.warehouse_server`), files under ``warehouse_dir``.
* any other name: a real Snowflake session from ``~/.snowflake/connections.toml`` (or the
  ``SNOWFLAKE_*`` environment variables the connector reads). No credentials live here.

All table work elsewhere is Snowpark DataFrame code; only loading files and writing pandas
frames differ by backend, and both are here.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
import weakref
from collections import Counter
from pathlib import Path

import pandas as pd
from snowflake.snowpark import DataFrame, Session

from customer_analytics import warehouse_server as _srv
from customer_analytics.config import Params, check_identifier
from customer_analytics.portable import local_only

log = logging.getLogger(__name__)

#: Rows materialised on the client, per caller label; lets tests audit pushdown.
ROWS_PULLED: Counter[str] = Counter()

_TELEMETRY_OFF = {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False, "CLIENT_TELEMETRY_ENABLED": False}


class WarehouseError(RuntimeError):
    """The warehouse could not be reached or used; the message says why and what to do."""


LOCAL = "local"
SNOWFLAKE = "snowflake"
BACKENDS = (LOCAL, SNOWFLAKE)
#: The backend of each session, recorded from the run's parameters when :func:`connect` opens it.
_BACKEND: weakref.WeakKeyDictionary[Session, str] = weakref.WeakKeyDictionary()


def register_backend(session: Session, backend: str) -> Session:
    """Record which backend ``session`` talks to (:func:`connect` does it; tests and tools may too)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    _BACKEND[session] = backend
    return session


def backend(session: Session) -> str:
    """``local`` or ``snowflake``: the backend recorded for ``session`` by :func:`connect`.

    Raises:
        WarehouseError: the session was not opened by :func:`connect` (nor registered).
    """
    try:
        return _BACKEND[session]
    except (KeyError, TypeError):
        raise WarehouseError("This Snowpark session was not opened by customer_analytics.warehouse.connect, so "
                             "its backend is unknown: open it with connect(params), or call "
                             "register_backend(session, 'local' | 'snowflake').") from None


def is_local(session: Session) -> bool:
    """Whether ``session`` talks to the embedded local warehouse (see :func:`backend`)."""
    return backend(session) == LOCAL


# --------------------------------------------------------------------------- sessions
def connect(params: Params) -> Session:
    """Open a Snowpark session for ``params.connection``.

    ``local`` starts (or reuses) the embedded warehouse server for ``params.warehouse_dir``;
    the database and schema are created on first use. Any other value is the name of a
    Snowflake connection in ``connections.toml``.
    """
    if params.is_local:
        port = ensure_local_server(params.warehouse_dir, params.database, params.schema)
        cfg = {
            "user": "local",
            "password": "local",
            "account": "fakesnow",
            "host": "127.0.0.1",
            "port": port,
            "protocol": "http",
            "database": params.database,
            "schema": params.schema,
            "session_parameters": _TELEMETRY_OFF,
            "network_timeout": 600,
        }
        session = register_backend(Session.builder.configs(cfg).create(), LOCAL)
        # Session.close()/cancel_all() send SYSTEM$CANCEL_ALL_QUERIES: the server answers it
        # (warehouse_server.shim_sql)
        clients = params.warehouse_dir / _srv.CLIENTS_DIR
        clients.mkdir(exist_ok=True)
        (clients / str(os.getpid())).touch()  # keeps the server up while this process lives
    else:
        try:
            session = (
                Session.builder.config("connection_name", params.connection)
                .config("session_parameters", _TELEMETRY_OFF)
                .create()
            )
        except Exception as e:  # the connector's own message says what is missing
            raise WarehouseError(
                f"Could not open Snowflake connection '{params.connection}': {e}. "
                "Check ~/.snowflake/connections.toml (or SNOWFLAKE_* variables), or use connection=local."
            ) from e
        register_backend(session, SNOWFLAKE)
        session.sql(f"CREATE SCHEMA IF NOT EXISTS {params.database}.{params.schema}").collect()
        session.use_schema(f"{params.database}.{params.schema}")
    session.telemetry_enabled = False
    return session


#: Servers started by this process, by pid: polled so that a stopped one is reaped, not a zombie.
_CHILDREN: dict[int, subprocess.Popen] = {}


def _server_state(warehouse_dir: Path) -> dict | None:
    try:
        state = json.loads((warehouse_dir / _srv.STATE_FILE).read_text())
        pid = int(state["pid"])
        if pid in _CHILDREN and _CHILDREN[pid].poll() is not None:
            return None
        os.kill(pid, 0)
        return state
    except (OSError, ValueError, KeyError):
        return None


def ensure_local_server(warehouse_dir: Path, database: str = "ANALYTICS", schema: str = "SHOP") -> int:
    """Return the port of the warehouse server for ``warehouse_dir``, starting it if needed."""
    warehouse_dir.mkdir(parents=True, exist_ok=True)
    if state := _server_state(warehouse_dir):
        return int(state["port"])
    log.info("starting the embedded warehouse server for %s", warehouse_dir)
    logfile = open(warehouse_dir / _srv.LOG_FILE, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "customer_analytics.warehouse_server", str(warehouse_dir),
         "--database", database, "--schema", schema],
        stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
        start_new_session=True, close_fds=True,
    )
    logfile.close()
    _CHILDREN[proc.pid] = proc
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if state := _server_state(warehouse_dir):
            return int(state["port"])
        code = proc.poll()
        if code == 3:  # another server won the race to start: use it
            time.sleep(0.2)
            continue
        if code is not None:
            tail = (warehouse_dir / _srv.LOG_FILE).read_text(errors="replace").strip().splitlines()[-3:]
            raise WarehouseError(
                f"The local warehouse in {warehouse_dir} could not start: {' '.join(tail)} "
                "If another program (a DuckDB shell, an old server) holds the files, stop it and retry."
            )
        time.sleep(0.1)
    raise WarehouseError(f"The local warehouse server for {warehouse_dir} did not start within 60 s.")


def stop_local_server(warehouse_dir: Path, timeout: float = 10) -> None:
    """Stop the warehouse server for ``warehouse_dir`` if one runs (tests and `make clean`)."""
    if not (state := _server_state(warehouse_dir)):
        return
    os.kill(int(state["pid"]), 15)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _server_state(warehouse_dir):
        time.sleep(0.1)


# --------------------------------------------------------------------------- tables
def replace_table(df: DataFrame, name: str) -> str:
    """Atomically replace table ``name`` with the result of ``df``; return the table name.

    One ``CREATE OR REPLACE TABLE … AS SELECT`` statement: if it fails, the old table is left as
    it was (true on Snowflake and on DuckDB). Snowpark's ``save_as_table`` is not used because
    fakesnow mis-translates the column-list form it emits.
    """
    name = check_identifier(name)
    queries = df.queries
    if len(queries["queries"]) != 1 or queries["post_actions"]:
        df.write.save_as_table(name, mode="overwrite")  # multi-statement plans (rare)
    else:
        df.session.sql(f"CREATE OR REPLACE TABLE {name} AS {queries['queries'][0]}").collect()
    return name


def table_exists(session: Session, name: str) -> bool:
    """Whether a table ``name`` exists in the current schema."""
    name = check_identifier(name)
    rows = session.sql(
        "SELECT COUNT(*) AS N FROM INFORMATION_SCHEMA.TABLES "
        f"WHERE TABLE_SCHEMA = '{session.get_current_schema().strip(chr(34))}' AND TABLE_NAME = '{name}'"
    ).collect()
    return rows[0]["N"] > 0


def row_count(session: Session, name: str) -> int:
    """Number of rows in table ``name``."""
    return session.table(check_identifier(name)).count()


def to_pandas(df: DataFrame, label: str) -> pd.DataFrame:
    """Materialise ``df`` on the client, counting the rows under ``label`` in :data:`ROWS_PULLED`."""
    out = df.to_pandas()
    ROWS_PULLED[label] += len(out)
    return out


def write_pandas(session: Session, pdf: pd.DataFrame, name: str, staging_dir: Path | None = None) -> str:
    """Atomically replace table ``name`` with a pandas frame (small, per-customer frames only).

    Local: via a Parquet file read by DuckDB (fakesnow has no PUT). Snowflake: the connector's
    ``write_pandas`` into a staging table, then one ``CREATE OR REPLACE … AS SELECT``.
    """
    name = check_identifier(name)
    pdf = pdf.copy()
    pdf.columns = [check_identifier(str(c)) for c in pdf.columns]
    if is_local(session):
        staging_dir = staging_dir or Path.cwd()
        staging_dir.mkdir(parents=True, exist_ok=True)
        path = staging_dir / f"{name}_{uuid.uuid4().hex}.parquet"
        pdf.to_parquet(path, index=False)
        try:
            session.sql(local_only(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM read_parquet('{_sql_path(path)}')")
                        ).collect()
        finally:
            path.unlink(missing_ok=True)
    else:
        stage_name = f"{name}__STAGE"
        session.write_pandas(pdf, stage_name, auto_create_table=True, overwrite=True, use_logical_type=True)
        session.sql(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {stage_name}").collect()
        session.sql(f"DROP TABLE IF EXISTS {stage_name}").collect()
    return name


def _sql_path(path: Path) -> str:
    return str(path.resolve()).replace("'", "''")


def column_name(field: str) -> str:
    """A file's field name as a warehouse column name: upper case, non-alphanumerics as ``_``."""
    return check_identifier(re.sub(r"\W+", "_", field.strip()).strip("_") or "COLUMN")


# --------------------------------------------------------------------------- loading files
#: Snowflake stage used to upload staged Parquet files (temporary: dropped with the session).
INGEST_STAGE = "CA_INGEST_STAGE"


def load_staged(session: Session, parquet: Path, table: str) -> int:
    """Replace ``table`` with the rows of a Parquet file written by :mod:`readers`; return the row count.

    Local: DuckDB reads the file directly (the embedded server runs on this machine). Snowflake:
    ``PUT`` to a temporary stage, then ``COPY INTO`` by column name with ``ON_ERROR =
    ABORT_STATEMENT``: the readers have already quarantined every bad record, so any load error
    is a bug and must fail loudly rather than drop rows; the rows loaded are checked against the
    file. (Not exercised offline, see README.)
    """
    table = check_identifier(table)
    if is_local(session):
        session.sql(local_only(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_parquet('{_sql_path(parquet)}')")
                    ).collect()
        return row_count(session, table)
    import pyarrow.parquet as pq

    schema = pq.read_schema(parquet)
    cols = ", ".join(f"{check_identifier(f.name)} {'NUMBER(38,0)' if f.name == 'LINE_NO' else 'VARCHAR'}"
                     for f in schema)
    session.sql(f"CREATE TEMPORARY STAGE IF NOT EXISTS {INGEST_STAGE}").collect()
    prefix = f"@{INGEST_STAGE}/{table}"
    session.sql(f"REMOVE {prefix}/").collect()
    session.file.put(str(parquet), prefix, auto_compress=False, overwrite=True)
    session.sql(f"CREATE OR REPLACE TABLE {table} ({cols})").collect()
    result = session.sql(
        f"COPY INTO {table} FROM {prefix}/ FILE_FORMAT = (TYPE = PARQUET) "
        "MATCH_BY_COLUMN_NAME = CASE_SENSITIVE ON_ERROR = ABORT_STATEMENT PURGE = TRUE"
    ).collect()
    loaded = sum(int({k.lower(): v for k, v in r.as_dict().items()}.get("rows_loaded") or 0) for r in result)
    if loaded != row_count(session, table):
        raise WarehouseError(f"COPY INTO {table} reported {loaded:,} rows but the table holds another number.")
    return loaded


def publish(session: Session, tables: dict[str, str]) -> None:
    """Put staged tables in place: for each ``new -> target``, ``target`` becomes ``new``'s content.

    Local (DuckDB): all renames in one transaction, so readers see either every old table or every
    new one, and a failure part-way rolls everything back. Snowflake: each table is swapped
    atomically (``ALTER TABLE … SWAP WITH``); DDL there commits on its own, so the set of tables is
    not switched as one unit — call this only after every check has passed.
    """
    pairs = [(check_identifier(n), check_identifier(t)) for n, t in tables.items()]
    if is_local(session):
        session.sql("BEGIN TRANSACTION").collect()
        try:
            for new, target in pairs:
                session.sql(f"DROP TABLE IF EXISTS {target}").collect()
                session.sql(f"ALTER TABLE {new} RENAME TO {target}").collect()
        except BaseException:
            session.sql("ROLLBACK").collect()
            raise
        session.sql("COMMIT").collect()
        return
    for new, target in pairs:
        if table_exists(session, target):
            session.sql(f"ALTER TABLE {target} SWAP WITH {new}").collect()
            session.sql(f"DROP TABLE IF EXISTS {new}").collect()
        else:
            session.sql(f"ALTER TABLE {new} RENAME TO {target}").collect()
