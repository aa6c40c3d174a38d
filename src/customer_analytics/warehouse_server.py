"""The embedded local warehouse: one fakesnow server per warehouse folder.

DuckDB allows one writing *process* per database file. So that a JupyterLab kernel and a
pipeline run can both use the local warehouse at the same time, neither opens the files: the
first :func:`customer_analytics.warehouse.connect` starts this small server in the background
(``python -m customer_analytics.warehouse_server DIR``); it owns the DuckDB files and every
Snowpark session, from any process, talks to it over HTTP on 127.0.0.1 exactly as it would talk
to Snowflake. It writes ``server.json`` (pid, port) beside the files. Each process that opens
a session registers its pid under ``clients/``; the server stops by itself once no registered
process is alive and no request came for ``--idle-minutes`` (so a JupyterLab kernel that sits
idle for hours keeps its warehouse, and nothing lingers after the last kernel exits).

Reliability (README, "Reliability"): :mod:`customer_analytics.warehouse_front` sits in front of
fakesnow's app (sessions owned by client processes and closed when those die, queries answered
within seconds while they run, failures answered instead of retried, a liveness endpoint);
:func:`resource_settings` bounds DuckDB's memory and threads and sends spills to
``<warehouse_dir>/tmp``; fakesnow's result cache is bounded (:class:`BoundedResults`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

from customer_analytics import fsutil, gcwork

STATE_FILE = "server.json"
LOCK_FILE = "server.lock"
LOG_FILE = "server.log"
CLIENTS_DIR = "clients"
#: When set at server start: a JSON-lines file recording every query (its duration, its SQL in full,
#: as sent, and the shape of the result sent; see ``pushdown`` and ``sqlcheck``). ``bench/`` uses
#: the durations to profile.
AUDIT_VAR = "CA_WAREHOUSE_AUDIT"
KEY = "CUSTOMER_ID"
GRAIN = (KEY, "CUTOFF")

log = logging.getLogger("customer_analytics.warehouse_server")
#: ``SYSTEM$CANCEL_ALL_QUERIES(<session id>)``, which Snowpark's ``Session.close``/``cancel_all``
#: send (the id is ``None`` here: fakesnow's login gives none)
CANCEL_ALL = re.compile(
    r"^\s*select\s+system\$cancel_all_queries\([^()]*\)\s*;?\s*$", re.IGNORECASE
)
CANCEL_ANSWER = "SELECT 'no running statement to cancel' AS \"SYSTEM$CANCEL_ALL_QUERIES\""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def live_clients(warehouse_dir: Path) -> int:
    """Count registered client processes that are still alive; forget the dead ones."""
    live = 0
    for f in (warehouse_dir / CLIENTS_DIR).glob("*"):
        if f.name.isdigit() and fsutil.pid_alive(int(f.name)):
            live += 1
        else:
            f.unlink(missing_ok=True)
    return live


# --------------------------------------------------------------------------- resource bounds
#: Environment variables read when the server starts (README, "Reliability").
MEMORY_VAR = "CA_WAREHOUSE_MEMORY_LIMIT"  # DuckDB's memory limit: "4GiB", "2500MB" or "25%" of RAM
THREADS_VAR = "CA_WAREHOUSE_THREADS"  # DuckDB's threads (default: the CPUs this process may use)
TEMP_VAR = "CA_WAREHOUSE_TEMP_DIR"  # where DuckDB spills (default: <warehouse_dir>/tmp)
MAX_TEMP_VAR = "CA_WAREHOUSE_MAX_TEMP_SIZE"  # cap on spilled data (default: 90% of free disk)
TEMP_DIR = "tmp"
#: Folder of fakesnow's stage bucket (``tempfile.mkdtemp`` when fakesnow is imported), emptied at
#: each server start: without it every start left a folder in the system's temporary folder.
BUCKET_DIR = "stage_bucket"
#: Default memory limit: this share of the machine's memory, at most :data:`MEMORY_CAP`.
MEMORY_SHARE, MEMORY_CAP, MEMORY_FLOOR = 0.25, 4 << 30, 256 << 20
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


class SettingsError(ValueError):
    """A resource setting of the warehouse server has a value it cannot use."""


def _cgroup_value(name: str) -> str | None:
    try:
        return Path("/sys/fs/cgroup", name).read_text().strip()
    except OSError:
        return None


def machine_memory() -> int:
    """Bytes of memory this process may use: physical memory, or a lower cgroup limit."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = _cgroup_value("memory.max")
    return min(total, int(limit)) if limit and limit.isdigit() else total


def machine_cpus() -> int:
    """CPUs this process may use: its CPU affinity, or a lower cgroup CPU quota."""
    if hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0))
    else:
        cpus = os.cpu_count() or 1
    quota = (_cgroup_value("cpu.max") or "").split()
    if len(quota) == 2 and quota[0].isdigit() and quota[1].isdigit() and int(quota[1]):
        cpus = min(cpus, max(1, -(-int(quota[0]) // int(quota[1]))))
    return max(1, cpus)


def _size(text: str, what: str) -> str:
    if m := _PERCENT.match(text):
        share = float(m.group(1)) / 100
        if not 0 < share <= 1:
            raise SettingsError(f"{what}: a share of memory must be in (0%, 100%], got {text!r}.")
        return f"{max(1, int(machine_memory() * share) >> 20)}MiB"
    if not _SIZE.match(text):
        raise SettingsError(f"{what}: expected a size like 4GiB, 2500MB or 25%, got {text!r}.")
    return text.strip().replace(" ", "")


def resource_settings(warehouse_dir: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The DuckDB settings that bound the server's memory, threads and spill space.

    Defaults: memory limit 25% of the machine's memory, at most 4 GiB (at least 256 MiB); one
    thread per CPU this process may use; spills to ``<warehouse_dir>/tmp``. The variables
    :data:`MEMORY_VAR`, :data:`THREADS_VAR`, :data:`TEMP_VAR`, :data:`MAX_TEMP_VAR` override them.

    Raises:
        SettingsError: a variable has a value DuckDB could not use; the message names it.
    """
    env = os.environ if environ is None else environ
    memory = min(max(int(machine_memory() * MEMORY_SHARE), MEMORY_FLOOR), MEMORY_CAP)
    limit = _size(env[MEMORY_VAR], MEMORY_VAR) if env.get(MEMORY_VAR) else f"{memory >> 20}MiB"
    settings = {
        "memory_limit": limit,
        "threads": str(machine_cpus()),
        "temp_directory": str(Path(env.get(TEMP_VAR) or warehouse_dir / TEMP_DIR).resolve()),
    }
    if raw := env.get(THREADS_VAR):
        if not raw.strip().isdigit() or int(raw) < 1:
            raise SettingsError(f"{THREADS_VAR}: expected a whole number >= 1, got {raw!r}.")
        settings["threads"] = str(int(raw))
    if raw := env.get(MAX_TEMP_VAR):
        settings["max_temp_directory_size"] = _size(raw, MAX_TEMP_VAR)
    return settings


def apply_settings(duck_conn: Any, settings: dict[str, str]) -> dict[str, str]:
    """Apply :func:`resource_settings` to a DuckDB connection; return the values now in force."""
    Path(settings["temp_directory"]).mkdir(parents=True, exist_ok=True)
    for name, value in settings.items():
        literal = value if name == "threads" else "'" + value.replace("'", "''") + "'"
        duck_conn.execute(f"SET GLOBAL {name} = {literal}")
    names = "'memory_limit', 'threads', 'temp_directory', 'max_temp_directory_size'"
    query = f"SELECT name, value FROM duckdb_settings() WHERE name IN ({names})"
    rows = duck_conn.execute(query).fetchall()
    return dict(rows)


class BoundedResults(OrderedDict):
    """fakesnow's per-query result cache (kept for ``RESULT_SCAN``), bounded in entries and bytes.

    fakesnow keeps every result it ever sent, so the server's memory would grow with every
    query of every run; only recent results can be asked for again (a single result larger
    than ``max_bytes`` is not kept at all: ``RESULT_SCAN`` is for small ones, e.g. of ``SHOW``).
    """

    def __init__(self, max_entries: int = 64, max_bytes: int = 64 << 20):
        super().__init__()
        self.max_entries, self.max_bytes, self._bytes = max_entries, max_bytes, 0
        self._lock = threading.Lock()

    @staticmethod
    def _size(value: Any) -> int:
        table = value[0] if isinstance(value, tuple) and value else None
        return int(getattr(table, "nbytes", 0) or 0)

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._lock:
            if key in self:
                self._bytes -= self._size(super().pop(key))
            super().__setitem__(key, value)
            self._bytes += self._size(value)
            while self and (len(self) > self.max_entries or self._bytes > self.max_bytes):
                _, old = self.popitem(last=False)
                self._bytes -= self._size(old)


# -------------------------------------------------------------------- health, seen from a client
def check_alive(port: int, pid: int, timeout: float = 5.0) -> bool:
    """Whether server ``pid`` answers its liveness endpoint on ``port`` within ``timeout`` seconds.

    The endpoint is served apart from queries, so a long query does not make the server look stuck.
    """
    import urllib.request

    from customer_analytics.warehouse_front import ALIVE_PATH

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        with opener.open(f"http://127.0.0.1:{port}{ALIVE_PATH}", timeout=timeout) as r:
            return int(json.loads(r.read()).get("pid", -1)) == pid
    except (OSError, ValueError):
        return False


#: How the server writes why it stops (see :func:`log_stop`), so that clients can quote it.
STOP_MARK = "the local warehouse is stopping: "
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b")


def log_stop(cause: str) -> None:
    """Log why the server stops, in the form :func:`stopped_cause` reads back."""
    log.critical("%s%s", STOP_MARK, " ".join(cause.split()))


def stopped_cause(warehouse_dir: Path, pid: int) -> str:
    """Why server ``pid`` stopped, from its log (redacted), or what can be said without one."""
    from customer_analytics.reports import redact

    try:
        text = (warehouse_dir / LOG_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    lines = text.splitlines()
    mark = f"warehouse server pid {pid} "
    start = max((i for i, ln in enumerate(lines) if mark in ln), default=None)
    if start is not None:
        section = [ln.strip() for ln in lines[start:] if ln.strip()]
        stops = [ln.split(STOP_MARK, 1)[1] for ln in section if STOP_MARK in ln]
        if stops:
            return redact(stops[-1], limit=300)
        if section and _EXCEPTION_LINE.match(section[-1]):  # died of an uncaught exception
            return redact(section[-1], limit=300)
    return (
        f"its process (pid {pid}) ended without writing a reason in its log: it was killed "
        "(by a person, or by the system, e.g. when memory ran out) or could not write its log "
        "(disk full?)"
    )


def describe_result(request_body: bytes, gzipped: bool, response_body: bytes) -> dict:
    """One audit record for a query response of the embedded server (``rows`` 0: no result set)."""
    import base64
    import gzip

    import pyarrow as pa
    import pyarrow.compute as pc

    data = (json.loads(response_body) or {}).get("data") or {}
    body = json.loads(gzip.decompress(request_body) if gzipped else request_body)
    sql = str(body.get("sqlText", ""))  # in full and unchanged: sqlcheck parses it
    # a describe-only request (Snowpark asking for a result's columns) is marked as one
    extra = {"describe": True} if body.get("describeOnly") else {}
    if data.get("queryResultFormat") != "arrow" or not data.get("rowsetBase64"):
        return {"rows": 0, "columns": [], "sql": sql, **extra}
    table = pa.ipc.open_stream(base64.b64decode(data["rowsetBase64"])).read_all()
    record = {"rows": table.num_rows, "columns": table.column_names, "sql": sql, **extra}
    if KEY in table.column_names and table.num_rows:
        grain = [c for c in GRAIN if c in table.column_names]
        counts = table.select(grain).group_by(grain).aggregate([([], "count_all")])
        record["max_rows_per_customer"] = int(pc.max(counts["count_all"]).as_py())
    return record


def shim_sql(sql: str) -> str:
    """The statement fakesnow runs for ``sql``: Snowflake system functions it lacks are answered
    here.

    ``SYSTEM$CANCEL_ALL_QUERIES``: the Snowflake connector waits for each statement it sends, so
    when a session asks, none of its statements runs on this server; the answer says so (one row).
    """
    return CANCEL_ANSWER if CANCEL_ALL.match(sql) else sql


def describe_directly(original: Any) -> Any:
    """fakesnow's ``FakeSnowflakeCursor._describe_last_sql`` without its trip through sqlglot.

    After each statement fakesnow describes the DuckDB SQL it ran, for the result's column types:
    it parses ``DESCRIBE <that SQL>`` with sqlglot and writes it out again before DuckDB runs it,
    which for the pipeline's long generated statements (up to ~40 KB of SQL) costs as much as
    parsing the statement did. DuckDB is given the same text directly; the rows are DuckDB's own
    either way. SQL of several statements (fakesnow prefixes ``SELECT setseed(...);`` to a seeded
    ``RANDOM``) still goes the original way.
    """

    def describe(cursor: Any) -> list:
        sql = cursor._last_sql  # noqa: SLF001 - fakesnow internal, see warehouse_front
        if not sql or ";" in sql:
            return original(cursor)
        return cursor._duck_conn.execute(f"DESCRIBE {sql}", cursor._last_params).fetchall()  # noqa: SLF001

    return describe


def _with_shims(endpoint):
    """``endpoint`` (fakesnow's query handler) with the statements of :func:`shim_sql` rewritten."""
    import gzip

    from starlette.requests import Request

    async def shimmed(request):
        body = await request.body()
        gzipped = request.headers.get("Content-Encoding") == "gzip"
        try:
            data = json.loads(gzip.decompress(body) if gzipped else body)
            sql = str(data.get("sqlText", ""))
        except Exception:  # noqa: BLE001 - fakesnow answers a malformed request itself
            return await endpoint(request)
        if (new := shim_sql(sql)) == sql:
            return await endpoint(request)
        raw = json.dumps({**data, "sqlText": new}).encode()
        raw = gzip.compress(raw) if gzipped else raw

        async def receive():
            return {"type": "http.request", "body": raw, "more_body": False}

        return await endpoint(Request(request.scope, receive))

    return shimmed


def _route_queries(app, endpoint, audit_file: Path | None) -> None:
    """Serve queries through :func:`_with_shims`, recorded in ``audit_file`` when one is given."""
    from starlette.routing import request_response

    handler = _with_shims(endpoint)
    if audit_file is not None:
        handler = _audited(handler, audit_file)
    for route in app.routes:
        if getattr(route, "endpoint", None) is endpoint:
            route.app = request_response(handler)


def _audited(endpoint, audit_file: Path):
    """``endpoint`` recording every query result it sends in ``audit_file`` (see
    :mod:`customer_analytics.pushdown`)."""

    async def audited(request):
        started = time.perf_counter()
        response = await endpoint(request)
        seconds = round(time.perf_counter() - started, 4)
        try:
            record = describe_result(
                await request.body(),
                request.headers.get("Content-Encoding") == "gzip",
                response.body,
            )
            with audit_file.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"time": time.time(), "seconds": seconds, **record}) + "\n")
        except Exception as e:  # noqa: BLE001 - the audit must never break a query
            log.warning("pushdown audit: could not record a result: %s", e)
        return response

    log.info("recording query results in %s", audit_file)
    return audited


#: Seconds a server that hit a fatal engine error waits for its answers to leave before it exits.
FATAL_GRACE = 3.0
EXIT_FATAL = 70


@contextlib.contextmanager
def _bucket_in(folder: Path):
    """Temporary folders made meanwhile (fakesnow's stage bucket, at its import) go in ``folder``,
    emptied first: the server holds the warehouse's lock, so no other process uses it."""
    import shutil
    import tempfile

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    before, tempfile.tempdir = tempfile.tempdir, str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = before


def serve(warehouse_dir: Path, database: str, schema: str, idle_minutes: float) -> int:
    """Run the server until idle for ``idle_minutes``; return a process exit code."""
    warehouse_dir.mkdir(parents=True, exist_ok=True)
    try:  # held for the process lifetime
        fsutil.hold_lock(warehouse_dir / LOCK_FILE)
    except fsutil.LockedError:
        log.error("another warehouse server already serves %s", warehouse_dir)
        return 3

    gc.disable()  # the imports and the set-up make few cycles; gcwork.settle() below collects once
    import importlib

    import uvicorn

    with _bucket_in(warehouse_dir / BUCKET_DIR):
        from fakesnow.cursor import FakeSnowflakeCursor
        from fakesnow.instance import FakeSnow

    from customer_analytics import faults, warehouse_transforms
    from customer_analytics.warehouse_front import Front, inline_on_workers

    fs_server = importlib.import_module(
        "fakesnow.server"
    )  # the package's `server` name is a function

    try:
        settings = resource_settings(warehouse_dir)
    except SettingsError as e:
        log.error("%s", e)
        return 2
    fs = FakeSnow(db_path=warehouse_dir)
    fs.results_cache = BoundedResults()  # patch point: every connection made from now on uses it
    try:  # attach the database files now, so a lock held by another process fails here, clearly
        in_force = apply_settings(fs.duck_conn, settings)
        fs.connect(database, schema).close()
    except Exception as e:  # noqa: BLE001 - reported to the client through the log
        log.error("cannot open the warehouse files in %s: %s", warehouse_dir, e)
        return 4
    shown = ", ".join(f"{k}={v}" for k, v in sorted(in_force.items()))
    log.info("DuckDB resource settings: %s", shown)
    fs_server.shared_fs = fs  # type: ignore[attr-defined]  # fakesnow <0.13 internal (pinned)
    # a statement runs on a worker thread of the front; fakesnow's hand-over to another is not
    # needed there (a module global, looked up at each call)
    fs_server.run_in_threadpool = inline_on_workers(fs_server.run_in_threadpool)  # type: ignore[attr-defined]
    FakeSnowflakeCursor._describe_last_sql = describe_directly(  # type: ignore[method-assign]
        FakeSnowflakeCursor._describe_last_sql  # noqa: SLF001
    )
    warehouse_transforms.install(FakeSnowflakeCursor)  # skips the rewrites that cannot apply

    app = fs_server.app
    audit = os.environ.get(AUDIT_VAR)
    _route_queries(app, fs_server.query_request, Path(audit) if audit else None)  # shims, audit
    front = Front(app, fs_server.sessions, settings=in_force, fault=faults.server_point())

    class Server(uvicorn.Server):
        """uvicorn re-raises SIGTERM after shutting down, which would skip the clean-up below."""

        @contextlib.contextmanager
        def capture_signals(self):
            def stop(signum, frame):
                self.should_exit = True

            previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    port = _free_port()
    server = Server(uvicorn.Config(front, host="127.0.0.1", port=port, log_level="warning"))
    fatal: list[str] = []

    def stop_fatally(cause: str) -> None:  # DuckDB cannot go on: stop; the next client starts anew
        if not fatal:
            fatal.append(cause)
            log_stop(cause)
            server.should_exit = True
            threading.Timer(FATAL_GRACE * 2, os._exit, (EXIT_FATAL,)).start()  # if shutdown hangs

    front.on_fatal = stop_fatally

    def watchdog() -> None:
        while not server.started:
            time.sleep(0.05)
        state = warehouse_dir / STATE_FILE
        tmp = state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "port": port, "started": time.time()}))
        tmp.replace(state)
        log.info("warehouse server pid %s listening on 127.0.0.1:%s", os.getpid(), port)
        idle_seconds = idle_minutes * 60
        while time.monotonic() - front.last_request < idle_seconds or live_clients(warehouse_dir):
            time.sleep(1)
            try:
                front.tick()
            except Exception:  # noqa: BLE001 - the watchdog must go on
                log.exception("warehouse server: session check failed")
        log.info("idle for %s minutes and no client process left, stopping", idle_minutes)
        server.should_exit = True

    threading.Thread(target=watchdog, daemon=True).start()
    gcwork.settle()  # the modules and the open warehouse live as long as this process
    try:
        server.run()
    finally:
        try:
            state = json.loads((warehouse_dir / STATE_FILE).read_text())
            if state.get("pid") == os.getpid():
                (warehouse_dir / STATE_FILE).unlink()
        except (OSError, ValueError):
            pass
        front.close()
        fs.duck_conn.close()
    if fatal:
        logging.shutdown()
        os._exit(EXIT_FATAL)  # statements of other sessions may still run: do not wait for them
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("warehouse_dir", type=Path)
    p.add_argument("--database", default="ANALYTICS")
    p.add_argument("--schema", default="SHOP")
    p.add_argument(
        "--idle-minutes", type=float, default=float(os.environ.get("CA_WAREHOUSE_IDLE_MINUTES", 10))
    )
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    warnings.filterwarnings(
        "ignore", message="Arrow output on a DB-API result"
    )  # fakesnow's own note
    return serve(a.warehouse_dir.resolve(), a.database, a.schema, a.idle_minutes)


if __name__ == "__main__":
    sys.exit(main())
