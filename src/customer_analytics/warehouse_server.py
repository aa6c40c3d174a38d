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
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
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
from pathlib import Path

STATE_FILE = "server.json"
LOCK_FILE = "server.lock"
LOG_FILE = "server.log"
CLIENTS_DIR = "clients"
#: When set at server start: a JSON-lines file recording every query (its duration, its SQL in full, as
#: sent, and the shape of the result sent; see ``pushdown`` and ``sqlcheck``). ``bench/`` uses the
#: durations to profile.
AUDIT_VAR = "CA_WAREHOUSE_AUDIT"
KEY = "CUSTOMER_ID"
GRAIN = (KEY, "CUTOFF")

log = logging.getLogger("customer_analytics.warehouse_server")
#: ``SYSTEM$CANCEL_ALL_QUERIES(<session id>)``, which Snowpark's ``Session.close``/``cancel_all`` send
#: (the id is ``None`` here: fakesnow's login gives none)
CANCEL_ALL = re.compile(r"^\s*select\s+system\$cancel_all_queries\([^()]*\)\s*;?\s*$", re.IGNORECASE)
CANCEL_ANSWER = "SELECT 'no running statement to cancel' AS \"SYSTEM$CANCEL_ALL_QUERIES\""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def live_clients(warehouse_dir: Path) -> int:
    """Count registered client processes that are still alive; forget the dead ones."""
    live = 0
    for f in (warehouse_dir / CLIENTS_DIR).glob("*"):
        try:
            os.kill(int(f.name), 0)
            live += 1
        except PermissionError:  # alive, owned by another user
            live += 1
        except (ValueError, ProcessLookupError):
            f.unlink(missing_ok=True)
    return live


def describe_result(request_body: bytes, gzipped: bool, response_body: bytes) -> dict:
    """One audit record for a query response of the embedded server (``rows`` 0: no result set)."""
    import base64
    import gzip

    import pyarrow as pa
    import pyarrow.compute as pc

    data = (json.loads(response_body) or {}).get("data") or {}
    body = gzip.decompress(request_body) if gzipped else request_body
    sql = str(json.loads(body).get("sqlText", ""))  # in full and unchanged: sqlcheck parses it
    if data.get("queryResultFormat") != "arrow" or not data.get("rowsetBase64"):
        return {"rows": 0, "columns": [], "sql": sql}
    table = pa.ipc.open_stream(base64.b64decode(data["rowsetBase64"])).read_all()
    record = {"rows": table.num_rows, "columns": table.column_names, "sql": sql}
    if KEY in table.column_names and table.num_rows:
        grain = [c for c in GRAIN if c in table.column_names]
        counts = table.select(grain).group_by(grain).aggregate([([], "count_all")])
        record["max_rows_per_customer"] = int(pc.max(counts["count_all"]).as_py())
    return record


def shim_sql(sql: str) -> str:
    """The statement fakesnow runs for ``sql``: Snowflake system functions it lacks are answered here.

    ``SYSTEM$CANCEL_ALL_QUERIES``: the Snowflake connector waits for each statement it sends, so
    when a session asks, none of its statements runs on this server; the answer says so (one row).
    """
    return CANCEL_ANSWER if CANCEL_ALL.match(sql) else sql


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
    """``endpoint`` recording every query result it sends in ``audit_file`` (see :mod:`customer_analytics.pushdown`)."""

    async def audited(request):
        started = time.perf_counter()
        response = await endpoint(request)
        seconds = round(time.perf_counter() - started, 4)
        try:
            record = describe_result(await request.body(), request.headers.get("Content-Encoding") == "gzip",
                                     response.body)
            with audit_file.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"time": time.time(), "seconds": seconds, **record}) + "\n")
        except Exception as e:  # noqa: BLE001 - the audit must never break a query
            log.warning("pushdown audit: could not record a result: %s", e)
        return response

    log.info("recording query results in %s", audit_file)
    return audited


def serve(warehouse_dir: Path, database: str, schema: str, idle_minutes: float) -> int:
    """Run the server until idle for ``idle_minutes``; return a process exit code."""
    warehouse_dir.mkdir(parents=True, exist_ok=True)
    lock = open(warehouse_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held for the process lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.error("another warehouse server already serves %s", warehouse_dir)
        return 3

    import importlib

    import uvicorn
    from fakesnow.instance import FakeSnow

    fs_server = importlib.import_module("fakesnow.server")  # the package's `server` name is a function

    fs = FakeSnow(db_path=warehouse_dir)
    try:  # attach the database files now, so a lock held by another process fails here, clearly
        fs.connect(database, schema).close()
    except Exception as e:  # noqa: BLE001 - reported to the client through the log
        log.error("cannot open the warehouse files in %s: %s", warehouse_dir, e)
        return 4
    fs_server.shared_fs = fs

    last_request = [time.monotonic()]
    app = fs_server.app
    audit = os.environ.get(AUDIT_VAR)
    _route_queries(app, fs_server.query_request, Path(audit) if audit else None)

    async def tracked(scope, receive, send):  # ASGI wrapper that records activity
        last_request[0] = time.monotonic()
        await app(scope, receive, send)

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
    server = Server(uvicorn.Config(tracked, host="127.0.0.1", port=port, log_level="warning"))

    def watchdog() -> None:
        while not server.started:
            time.sleep(0.05)
        state = warehouse_dir / STATE_FILE
        tmp = state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "port": port, "started": time.time()}))
        tmp.replace(state)
        log.info("warehouse server pid %s listening on 127.0.0.1:%s", os.getpid(), port)
        while time.monotonic() - last_request[0] < idle_minutes * 60 or live_clients(warehouse_dir):
            time.sleep(1)
        log.info("idle for %s minutes and no client process left, stopping", idle_minutes)
        server.should_exit = True

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        server.run()
    finally:
        try:
            state = json.loads((warehouse_dir / STATE_FILE).read_text())
            if state.get("pid") == os.getpid():
                (warehouse_dir / STATE_FILE).unlink()
        except (OSError, ValueError):
            pass
        fs.duck_conn.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("warehouse_dir", type=Path)
    p.add_argument("--database", default="ANALYTICS")
    p.add_argument("--schema", default="SHOP")
    p.add_argument("--idle-minutes", type=float, default=float(os.environ.get("CA_WAREHOUSE_IDLE_MINUTES", 10)))
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")  # fakesnow's own note
    return serve(a.warehouse_dir.resolve(), a.database, a.schema, a.idle_minutes)


if __name__ == "__main__":
    sys.exit(main())
