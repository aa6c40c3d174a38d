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
import uuid
import weakref
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
from snowflake.snowpark import DataFrame, Session

from customer_analytics import contract, fsutil
from customer_analytics import warehouse_server as _srv
from customer_analytics.config import LOCAL_DATABASE, LOCAL_SCHEMA, Params, check_identifier
from customer_analytics.portable import local_only
from customer_analytics.warehouse_process import (
    ALIVE_TIMEOUT,
    WarehouseError,
    local_server,
)
from customer_analytics.warehouse_process import (  # re-exported: callers use wh.<name>
    ensure_local_server as ensure_local_server,
)
from customer_analytics.warehouse_process import (
    stop_local_server as stop_local_server,
)


def _enums_as_string_literals(*enums: type) -> None:
    """Let Snowpark take the contract's string enums as literals (``F.lit``, ``==``, ``isin``).

    Snowpark infers a literal's type by looking up ``type(value)`` exactly, so it refuses ``str``
    subclasses such as :class:`enum.StrEnum` members; this maps each enum to ``StringType`` in that
    table (the value's SQL is then the member's string, tested in tests/test_ingest.py).
    """
    from snowflake.snowpark._internal.type_utils import PYTHON_TO_SNOW_TYPE_MAPPINGS
    from snowflake.snowpark.types import StringType

    for enum in enums:
        PYTHON_TO_SNOW_TYPE_MAPPINGS.setdefault(enum, StringType)


_enums_as_string_literals(contract.Reason, contract.Excluded, contract.SourceStatus)

log = logging.getLogger(__name__)

#: Rows materialised on the client, per caller label; lets tests audit pushdown.
ROWS_PULLED: Counter[str] = Counter()

_TELEMETRY_OFF = {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False, "CLIENT_TELEMETRY_ENABLED": False}


LOCAL = "local"
SNOWFLAKE = "snowflake"
BACKENDS = (LOCAL, SNOWFLAKE)
#: The backend of each session, recorded from the run's parameters when :func:`connect` opens it.
_BACKEND: weakref.WeakKeyDictionary[Session, str] = weakref.WeakKeyDictionary()


def register_backend(session: Session, backend: str) -> Session:
    """Record which backend ``session`` talks to (:func:`connect` does it; tests and tools may
    too)."""
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
        raise WarehouseError(
            "This Snowpark session was not opened by customer_analytics.warehouse.connect, so "
            "its backend is unknown: open it with connect(params), or call "
            "register_backend(session, 'local' | 'snowflake')."
        ) from None


def is_local(session: Session) -> bool:
    """Whether ``session`` talks to the embedded local warehouse (see :func:`backend`)."""
    return backend(session) == LOCAL


# --------------------------------------------------------------------------- sessions
def connect(params: Params) -> Session:
    """Open a Snowpark session on production's database and schema for ``params.connection``.

    * ``local``: the embedded warehouse server for ``params.warehouse_dir`` (started when
      needed), database ``params.database`` or ANALYTICS, schema ``params.schema`` or SHOP.
    * ``default``: Snowflake, through the connector's default connection (``connections.toml``'s
      ``default_connection_name``, or ``SNOWFLAKE_DEFAULT_CONNECTION_NAME``).
    * any other name: that connection of ``connections.toml`` (found in ``$SNOWFLAKE_HOME`` or
      ``~/.snowflake``; the TOML text may also come in ``$SNOWFLAKE_CONNECTIONS``). Database and
      schema are the connection's unless the parameters name them; a schema that does not exist
      is created when the role may, otherwise the error names the privilege.

    Notebooks call this once, through :func:`customer_analytics.runs.start`; experiments and
    scratch runs then switch to their own schema with :func:`enter_schema`.

    Raises:
        WarehouseError: the warehouse cannot be reached, or database/schema are unknown.
    """
    if params.is_local:
        database = params.database or LOCAL_DATABASE
        schema = params.schema or LOCAL_SCHEMA
        server = local_server(params.warehouse_dir, database, schema)
        cfg = {
            "user": "local",
            "password": "local",
            "account": "fakesnow",
            "host": "127.0.0.1",
            "port": int(server["port"]),
            "protocol": "http",
            "database": database,
            "schema": schema,
            "session_parameters": _TELEMETRY_OFF | _owner_parameter(),
            **LOCAL_TIMEOUTS,
        }
        session = register_backend(Session.builder.configs(cfg).create(), LOCAL)
        # Session.close()/cancel_all() send SYSTEM$CANCEL_ALL_QUERIES: the server answers it
        # (warehouse_server.shim_sql)
        guard_local_session(session, params.warehouse_dir, server)
        clients = params.warehouse_dir / _srv.CLIENTS_DIR
        clients.mkdir(exist_ok=True)
        (clients / str(os.getpid())).touch()  # keeps the server up while this process lives
        return _tuned(session)
    session = _tuned(register_backend(_snowflake_session(params.connection), SNOWFLAKE))
    found_db = params.database or _unquote(session.get_current_database())
    found_schema = params.schema or _unquote(session.get_current_schema())
    if not found_db or not found_schema:
        session.close()
        missing = " and ".join(
            n for n, v in (("database", found_db), ("schema", found_schema)) if not v
        )
        raise WarehouseError(
            f"Snowflake connection '{params.connection}' names no {missing}. Fix: add `database = "
            "...` and `schema = ...` to that connection in connections.toml, or set the "
            "parameters database and schema (env.yaml, or --set database=... --set schema=...)."
        )
    enter_schema(session, found_db, found_schema)
    return session


def _tuned(session: Session) -> Session:
    """``session`` with telemetry off and Snowpark's local schema inference on.

    ``reduce_describe_query_enabled``: Snowpark infers a DataFrame's columns from its plan where it
    can instead of sending a describe query for them (one round trip each; 366 of a 10k run's 744
    statements were describes).
    """
    session.telemetry_enabled = False
    _no_resource_sampling()
    # its setter logs "experimental since 1.24.0" once per process: documented, default off
    snowpark_log = logging.getLogger("snowflake.snowpark")  # snowpark._internal.utils._logger
    level = snowpark_log.level
    snowpark_log.setLevel(logging.ERROR)
    try:
        session.reduce_describe_query_enabled = True  # type: ignore[misc]  # decorated setter
    finally:
        snowpark_log.setLevel(level)
    return session


def _no_resource_sampling() -> None:
    """Stop Snowpark's per-action resource readings, which only its telemetry uses.

    Around every action (``collect``, ``count``, ``to_pandas``...) Snowpark reads, through psutil,
    the process's memory and the machine's network counters (files under ``/proc``), even with
    telemetry off, when the figures go nowhere: about 1.5 ms of each statement's round trip. Its
    module flag ``PS_UTIL_AVAILABLE`` (internal; process-wide) turns the readings off; wall and
    CPU time are still taken. A Snowpark without the flag keeps its readings.
    """
    from snowflake.snowpark._internal import telemetry

    if getattr(telemetry, "PS_UTIL_AVAILABLE", False):
        telemetry.PS_UTIL_AVAILABLE = False


def _snowflake_session(name: str) -> Session:
    options: dict = {"session_parameters": _TELEMETRY_OFF}
    try:
        if name == "default":
            from snowflake.connector.config_manager import _get_default_connection_params

            options = {**_get_default_connection_params(), **options}
        else:
            options["connection_name"] = name
        return Session.builder.configs(options).create()
    except Exception as e:  # the connector's own message says what is missing
        raise WarehouseError(
            f"Could not open Snowflake connection '{name}': {e}. The connector reads connections "
            "from connections.toml in $SNOWFLAKE_HOME or ~/.snowflake (or TOML text in "
            "$SNOWFLAKE_CONNECTIONS); README, Snowflake, shows an example. Or use "
            "connection=local."
        ) from e


def _unquote(name: str | None) -> str | None:
    """A name as Snowpark returns it (``'"SHOP"'``) without the quotes; ``None`` stays ``None``."""
    if not name:
        return None
    return name[1:-1].replace('""', '"') if name.startswith('"') and name.endswith('"') else name


def current_names(session: Session) -> tuple[str, str]:
    """The session's current database and schema, unquoted."""
    return _unquote(session.get_current_database()) or "", _unquote(
        session.get_current_schema()
    ) or ""


def schema_exists(session: Session, database: str, schema: str) -> bool:
    """Whether ``database.schema`` exists."""
    database, schema = check_identifier(database), check_identifier(schema)
    rows = session.sql(
        f"SELECT COUNT(*) AS N FROM {database}.INFORMATION_SCHEMA.SCHEMATA "
        f"WHERE SCHEMA_NAME = '{schema}'"
    ).collect()
    return rows[0]["N"] > 0


def enter_schema(session: Session, database: str, schema: str) -> None:
    """Make ``database.schema`` the session's schema, creating it when it is missing (and allowed).

    Raises:
        WarehouseError: it is missing and cannot be created; the message names the privilege.
    """
    database, schema = check_identifier(database), check_identifier(schema)
    if not schema_exists(session, database, schema):
        try:
            session.sql(f"CREATE SCHEMA IF NOT EXISTS {database}.{schema}").collect()
        except Exception as e:
            raise WarehouseError(
                f"Schema {database}.{schema} does not exist and could not be created "
                f"({_first_line(e)}). Creating it needs the CREATE SCHEMA privilege on database "
                f"{database}: `GRANT CREATE SCHEMA ON DATABASE {database} TO ROLE <your role>;`, "
                "or ask an administrator to create it."
            ) from e
        log.info("created schema %s.%s", database, schema)
    session.use_schema(f"{database}.{schema}")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def list_tables(session: Session, database: str, schema: str) -> dict[str, str]:
    """Tables and views of ``database.schema``: name -> ``BASE TABLE`` or ``VIEW``."""
    database, schema = check_identifier(database), check_identifier(schema)
    where = f"FROM {database}.INFORMATION_SCHEMA.{{}} WHERE TABLE_SCHEMA = '{schema}'"
    rows = session.sql(f"SELECT TABLE_NAME, TABLE_TYPE {where.format('TABLES')}").collect()
    out = {
        r["TABLE_NAME"]: ("VIEW" if "VIEW" in str(r["TABLE_TYPE"]).upper() else "BASE TABLE")
        for r in rows
    }
    # Snowflake lists views in TABLES too; fakesnow only in VIEWS
    out.update(
        {
            r["TABLE_NAME"]: "VIEW"
            for r in session.sql(f"SELECT TABLE_NAME {where.format('VIEWS')}").collect()
        }
    )
    return out


def create_view(
    session: Session, database: str, schema: str, table: str, source_schema: str
) -> None:
    """``database.schema.table`` as a live view onto ``database.source_schema.table``."""
    d, s, t, src = (check_identifier(x) for x in (database, schema, table, source_schema))
    session.sql(f"CREATE OR REPLACE VIEW {d}.{s}.{t} AS SELECT * FROM {d}.{src}.{t}").collect()


def drop_view(session: Session, database: str, schema: str, table: str) -> None:
    """Drop the view ``database.schema.table`` if there is one."""
    d, s, t = (check_identifier(x) for x in (database, schema, table))
    session.sql(f"DROP VIEW IF EXISTS {d}.{s}.{t}").collect()


# -------------------------------------------------------------------- liveness of the local server
#: Client-side bounds for the local warehouse (README, "Reliability"). Its server answers every
#: request within a few seconds however long the query runs (a long one is polled, see
#: :mod:`customer_analytics.warehouse_front`), so a request with no answer for ``socket_timeout``
#: seconds, or still failing after :data:`REQUEST_RETRY_SECONDS` of retries, means a dead or stuck
#: server, never a long query. ``network_timeout`` stays unset: the connector would also use it as
#: every statement's time limit (and cancel long queries).
LOCAL_TIMEOUTS = {"login_timeout": 30, "socket_timeout": 15}
REQUEST_RETRY_SECONDS = 25


def _owner_parameter() -> dict[str, int]:
    """The session parameter by which the local server knows which process owns a session."""
    from customer_analytics.warehouse_front import PID_PARAMETER

    return {PID_PARAMETER: os.getpid()}


def _shown(path: Path) -> str:
    """``path`` as messages show it: relative to the project folder, else its last two parts."""
    from customer_analytics.config import ConfigError, project_root

    try:
        return str(path.resolve().relative_to(project_root()))
    except (ConfigError, ValueError, OSError):
        return str(Path(path.parent.name, path.name))


def stopped_error(warehouse_dir: Path, pid: int, cause: str | None = None) -> WarehouseError:
    """The error of a client whose local server ``pid`` stopped (``cause``: the server's words)."""
    from customer_analytics.reports import redact

    cause = redact(cause, limit=300) if cause else _srv.stopped_cause(warehouse_dir, pid)
    shown = _shown(warehouse_dir / _srv.LOG_FILE)
    return WarehouseError(
        f"The local warehouse stopped: {cause}, see {shown}. "
        "The next run (or connect) starts it again."
    )


def guard_local_session(session: Session, warehouse_dir: Path, server: dict) -> None:
    """Make a dead, stuck or failing local server fail this session's statements at once, clearly.

    Wraps the connector's request function of this session (``rest.fetch``): before each
    statement, a dead server is a :class:`WarehouseError` at once; each request is retried for at
    most :data:`REQUEST_RETRY_SECONDS` (the statement itself may run for hours), and one that
    still fails is explained by checking the server
    (dead, or not answering its liveness endpoint); an answer saying the server stopped or ran out
    of disk or memory becomes a :class:`WarehouseError` with its cause. SQL errors are unchanged.
    """
    from customer_analytics import faults
    from customer_analytics.warehouse_front import FAILED_CODE, STOPPED_CODE

    rest = session._conn._conn.rest  # noqa: SLF001 - the connector's REST client of this session
    assert rest is not None, "a connected session has a REST client"
    fetch = rest.fetch
    pid, port = int(server["pid"]), int(server["port"])
    started = fsutil.process_started(pid)
    log_shown = _shown(warehouse_dir / _srv.LOG_FILE)

    def guarded(
        method: str,
        full_url: str,
        headers: dict,
        data: Any = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> Any:
        if "/queries/" not in full_url:
            return fetch(method, full_url, headers, data=data, timeout=timeout, **kwargs)
        if os.environ.get(faults.KILL_VAR) and "query-request" in full_url and data:
            faults.before_statement(str(json.loads(data).get("sqlText", "")))
        if not fsutil.pid_alive(pid, started):
            raise stopped_error(warehouse_dir, pid)
        budget = REQUEST_RETRY_SECONDS if timeout is None else min(timeout, REQUEST_RETRY_SECONDS)
        try:
            ret = fetch(method, full_url, headers, data=data, timeout=budget, **kwargs)
        except Exception as e:
            if not fsutil.pid_alive(pid, started):
                raise stopped_error(warehouse_dir, pid) from e
            if not _srv.check_alive(port, pid, ALIVE_TIMEOUT):
                raise WarehouseError(
                    f"The local warehouse stopped answering: its server (pid {pid}) runs but does "
                    f"not respond, see {log_shown}. The next run (or connect) replaces it."
                ) from e
            raise
        code = ret.get("code") if isinstance(ret, dict) else None
        if code == STOPPED_CODE:
            raise stopped_error(warehouse_dir, pid, str(ret.get("message")))
        if code == FAILED_CODE:
            from customer_analytics.reports import redact

            raise WarehouseError(
                f"The local warehouse could not complete a statement: "
                f"{redact(str(ret.get('message')), limit=300)}, see {log_shown}."
            )
        return ret

    rest.fetch = guarded  # type: ignore[method-assign]  # this session's client only


# --------------------------------------------------------------------------- tables
def replace_table(df: DataFrame, name: str, temporary: bool = False) -> str:
    """Atomically replace table ``name`` with the result of ``df``; return the table name.

    One ``CREATE OR REPLACE TABLE … AS SELECT`` statement: if it fails, the old table is left as
    it was (true on Snowflake and on DuckDB). Snowpark's ``save_as_table`` is not used because
    fakesnow mis-translates the column-list form it emits. ``temporary``: a TEMPORARY table, which
    lives as long as the session (working tables; on the embedded warehouse it is kept in memory,
    spilled to the warehouse's ``tmp`` folder, not written to the database file).
    """
    name = check_identifier(name)
    queries = df.queries
    if len(queries["queries"]) != 1 or queries["post_actions"]:
        df.write.save_as_table(
            name, mode="overwrite", table_type="temporary" if temporary else ""
        )  # multi-statement plans (rare)
    else:
        kind = "TEMPORARY TABLE" if temporary else "TABLE"
        df.session.sql(f"CREATE OR REPLACE {kind} {name} AS {queries['queries'][0]}").collect()
    return name


def table_exists(session: Session, name: str) -> bool:
    """Whether a table ``name`` exists in the current schema."""
    name = check_identifier(name)
    rows = session.sql(
        "SELECT COUNT(*) AS N FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = "
        f"'{(session.get_current_schema() or '').strip(chr(34))}' AND TABLE_NAME = '{name}'"
    ).collect()
    return rows[0]["N"] > 0


def row_count(session: Session, name: str) -> int:
    """Number of rows in table ``name``."""
    return session.table(check_identifier(name)).count()


def to_pandas(df: DataFrame, label: str) -> pd.DataFrame:
    """Materialise ``df`` on the client, counting the rows under ``label`` in
    :data:`ROWS_PULLED`."""
    out = df.to_pandas()
    ROWS_PULLED[label] += len(out)
    return out


def write_pandas(
    session: Session, pdf: pd.DataFrame, name: str, staging_dir: Path | None = None
) -> str:
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
            session.sql(
                local_only(
                    f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM "
                    f"read_parquet('{_sql_path(path)}')"
                )
            ).collect()
        finally:
            path.unlink(missing_ok=True)
    else:
        stage_name = f"{name}__STAGE"
        session.write_pandas(
            pdf, stage_name, auto_create_table=True, overwrite=True, use_logical_type=True
        )
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


def load_staged(session: Session, parquet: Path | list[Path], table: str) -> int:
    """Replace ``table`` with the rows of the Parquet file(s) written by :mod:`readers` (several:
    one file read in parts, rows in the order given); return the row count.

    Local: DuckDB reads the files directly (the embedded server runs on this machine). Snowflake:
    ``PUT`` to a temporary stage, then ``COPY INTO`` by column name with ``ON_ERROR =
    ABORT_STATEMENT``: the readers have already quarantined every bad record, so any load error
    is a bug and must fail loudly rather than drop rows; the rows loaded are checked against the
    files. (Not exercised offline, see README.)
    """
    table = check_identifier(table)
    files = [parquet] if isinstance(parquet, Path) else list(parquet)
    if is_local(session):
        paths = ", ".join(f"'{_sql_path(f)}'" for f in files)
        session.sql(
            local_only(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_parquet([{paths}])")
        ).collect()
        return row_count(session, table)
    import pyarrow.parquet as pq

    schema = pq.read_schema(files[0])
    cols = ", ".join(
        f"{check_identifier(f.name)} {'NUMBER(38,0)' if f.name == 'LINE_NO' else 'VARCHAR'}"
        for f in schema
    )
    session.sql(f"CREATE TEMPORARY STAGE IF NOT EXISTS {INGEST_STAGE}").collect()
    prefix = f"@{INGEST_STAGE}/{table}"
    session.sql(f"REMOVE {prefix}/").collect()
    for f in files:
        session.file.put(str(f), prefix, auto_compress=False, overwrite=True)
    session.sql(f"CREATE OR REPLACE TABLE {table} ({cols})").collect()
    result = session.sql(
        f"COPY INTO {table} FROM {prefix}/ FILE_FORMAT = (TYPE = PARQUET) "
        "MATCH_BY_COLUMN_NAME = CASE_SENSITIVE ON_ERROR = ABORT_STATEMENT PURGE = TRUE"
    ).collect()
    loaded = sum(
        int({k.lower(): v for k, v in r.as_dict().items()}.get("rows_loaded") or 0) for r in result
    )
    if loaded != row_count(session, table):
        raise WarehouseError(
            f"COPY INTO {table} reported {loaded:,} rows but the table holds another number."
        )
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
