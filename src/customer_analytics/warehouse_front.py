"""The local warehouse server's front: an ASGI layer in front of fakesnow's app.

fakesnow's server runs every statement inside the HTTP request that sent it, answers a failure
with HTTP 500 (which the Snowflake connector retries for up to ten minutes), forgets the owner of
a session, and never closes a session's DuckDB connection. So a killed client could leave a
transaction open that blocked every later writer, and a dead or full server looked like a slow one.
This layer adds, speaking only the Snowflake protocol the connector already knows:

1. **Sessions have owners.** A client announces its pid at login (session parameter
   :data:`PID_PARAMETER`). :meth:`Sessions.reap` — every second and before each login — closes
   (rolling back any open transaction) the sessions whose process has died, those the client
   closed, and those whose transaction has been left idle for longer than :data:`TXN_IDLE_VAR`
   seconds. A running statement of a dead client is interrupted first.
2. **No request is held for long.** Each statement runs on a worker thread (one at a time per
   session); if it has not finished after :data:`HOLD_VAR` seconds the answer is Snowflake's
   "query in progress" (code 333333) with a result URL the connector polls. So every HTTP request
   is answered within seconds however long the query runs, and the client can bound each request
   tightly (see ``warehouse.connect``). Retries of a request (same ``requestId``) join the first.
3. **Failures are answered, not retried.** An unhandled error becomes an ordinary failed-query
   answer carrying its cause: :data:`FAILED_CODE` when the machine ran out of something (disk,
   memory), :data:`STOPPED_CODE` (and the server stops) when DuckDB cannot go on, otherwise an SQL
   error. A statement that only met another transaction's change of the same table (DuckDB's
   "write-write conflict") is run again until :data:`LOCK_WAIT_VAR` seconds have passed, as
   Snowflake waits for a lock. ``abort-request`` interrupts the statement.
4. **Liveness.** ``GET`` :data:`ALIVE_PATH` is answered by the event loop alone, never behind a
   query, so a client tells a dead or stuck server from a long query.

fakesnow internals relied on (pre-1.0; each covered by ``tests/test_warehouse_server.py``):
``fakesnow.server.sessions`` (token -> ``FakeSnowflakeConnection``; ``close()`` closes its DuckDB
connection, which rolls back), ``FakeSnowflakeConnection._duck_conn`` (interrupt, transaction
probe), fakesnow logging unhandled query errors with ``exc_info`` on the ``fakesnow.server``
logger (how the cause is found), and the login answer's ``data.token``. In
:func:`customer_analytics.warehouse_server.serve` also: ``fakesnow.server.shared_fs`` and
``FakeSnow.results_cache`` (replaced by a bounded one before any session exists),
``fakesnow.server.run_in_threadpool`` (wrapped by :func:`inline_on_workers`) and
``FakeSnowflakeCursor._describe_last_sql`` with the cursor's ``_last_sql``, ``_last_params`` and
``_duck_conn`` (wrapped by :func:`customer_analytics.warehouse_server.describe_directly`), and
``FakeSnowflakeCursor._transform`` (replaced by :mod:`customer_analytics.warehouse_transforms`
only while its source is the one that module copies; ``tests/test_warehouse_transforms.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import gzip
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from customer_analytics.fsutil import pid_alive as process_alive
from customer_analytics.fsutil import process_started

log = logging.getLogger("customer_analytics.warehouse_server")

ALIVE_PATH = "/ca/alive"
LOGIN_PATH = "/session/v1/login-request"
QUERY_PATH = "/queries/v1/query-request"
ABORT_PATH = "/queries/v1/abort-request"
RESULT_PATH = re.compile(r"^/queries/([0-9a-f]{32})/result$")
#: Session parameter in which a client announces its process id at login.
PID_PARAMETER = "CA_CLIENT_PID"
#: Snowflake's "query in progress": the connector then polls ``data.getResultUrl``.
IN_PROGRESS = "333333"
STOPPED_CODE = (
    "299001"  # the engine cannot go on: the server stops, the next client starts a new one
)
FAILED_CODE = (
    "299002"  # the machine ran out of disk or memory for this statement; the server goes on
)
INTERNAL_CODE = "000603"  # any other unhandled error, answered as an SQL error
SESSION_CLOSED_CODE = "299003"  # the server closed this session (see Sessions.reap)
HOLD_VAR = "CA_WAREHOUSE_HOLD_SECONDS"
TXN_IDLE_VAR = "CA_WAREHOUSE_TXN_IDLE_SECONDS"
#: How long a statement waits for a table another transaction changes (default: idle bound + 15 s).
LOCK_WAIT_VAR = "CA_WAREHOUSE_LOCK_WAIT_SECONDS"
HOLD_SECONDS = 5.0
TXN_IDLE_SECONDS = 120.0
#: How long a login waits for the interrupted statement of a dead client before going on.
REAP_WAIT = 10.0
#: Answers kept for retries of their request (the connector retries one it got no answer for):
#: the last :data:`ANSWERS_KEPT`, each at most :data:`ANSWER_KEPT_BYTES` (DDL/DML answers; a large
#: result belongs to a query, which may simply run again).
ANSWERS_KEPT, ANSWER_KEPT_BYTES = 500, 64 << 10
#: Finished results nobody fetched (their client died) are dropped after this many seconds.
UNCLAIMED_SECONDS = 600.0
_RESOURCE = re.compile(
    r"No space left|Disk quota|File too large|Could not write file|Out of Memory", re.I
)
_RESOURCE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.ENOMEM}
#: The unhandled errors fakesnow logs while a job runs are appended to this job's list.
_ERRORS: contextvars.ContextVar[list[BaseException]] = contextvars.ContextVar("ca_query_errors")


class _CaptureErrors(logging.Filter):
    """Keeps the exception of each unhandled query error fakesnow logs (it answers only "500")."""

    def filter(self, record: logging.LogRecord) -> bool:
        errors = _ERRORS.get(None)
        if errors is not None and record.exc_info and record.exc_info[1] is not None:
            errors.append(record.exc_info[1])
        return True


def env_seconds(name: str, default: float) -> float:
    """Seconds from the environment variable ``name`` (``default`` if unset or invalid)."""
    try:
        value = float(os.environ.get(name) or default)
    except ValueError:
        log.warning(
            "%s=%r is not a number of seconds; using %s", name, os.environ.get(name), default
        )
        return default
    return value if value > 0 else default


# --------------------------------------------------------------------------- sessions
@dataclass
class Session:
    """One fakesnow session and who owns it."""

    token: str
    conn: Any  # fakesnow's FakeSnowflakeConnection
    pid: int | None
    #: the owner's process start time: a later process with the same pid is not the owner
    started: str | None
    #: held while one of its statements runs
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)
    probed: float = 0.0
    closing: str | None = None  # why the server closes it
    interrupted: bool = False  # a statement of it was interrupted


def in_transaction(duck_conn: Any) -> bool:
    """Whether a DuckDB connection holds an open transaction (two reads see one transaction id).

    Outside a transaction each statement is its own, with a new id. A connection whose
    transaction failed answers with an error: it holds an (aborted) transaction too.
    """
    try:
        first = duck_conn.execute("SELECT txid_current()").fetchone()[0]
        return first == duck_conn.execute("SELECT txid_current()").fetchone()[0]
    except Exception:  # noqa: BLE001 - an aborted transaction refuses every statement
        return True


def _interrupt(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn._duck_conn.interrupt()  # noqa: SLF001 - documented patch point


class Sessions:
    """The sessions of fakesnow's ``sessions`` map, with their owners; closes the abandoned ones."""

    def __init__(self, registry: dict[str, Any], txn_idle: float):
        self._registry = registry  # fakesnow.server.sessions: token -> connection
        self._mine: dict[str, Session] = {}
        self._reaping = threading.Lock()
        self.txn_idle = txn_idle
        #: token -> why the server closed it (the recent ones), told to a client that comes back
        self.closed: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._mine)

    def add(self, token: str, pid: int | None) -> None:
        """Record the session ``token`` fakesnow has just opened for process ``pid``."""
        if (conn := self._registry.get(token)) is not None:
            self._mine[token] = Session(token, conn, pid, process_started(pid) if pid else None)

    def get(self, token: str | None) -> Session | None:
        return self._mine.get(token) if token else None

    def _reason(self, s: Session, now: float) -> str | None:
        if s.token not in self._registry:
            return "closed by its client"
        if s.pid is not None and not process_alive(s.pid, s.started):
            return f"its client process {s.pid} has ended"
        if (
            now - s.last_used > self.txn_idle
            and now - s.probed > self.txn_idle
            and s.lock.acquire(blocking=False)
        ):
            try:
                s.probed = now
                idle_transaction = in_transaction(s.conn._duck_conn)  # noqa: SLF001
            finally:
                s.lock.release()
            if idle_transaction:
                return f"its transaction was left idle for more than {self.txn_idle:.0f} s"
        return None

    def reap(self, wait: float = 0.0) -> int:
        """Close every session that can no longer be used; return how many were closed.

        Closing a session closes its DuckDB connection, which rolls its transaction back. A
        session still running a statement has it interrupted; with ``wait`` > 0 this waits that
        long for it to stop, otherwise a later call closes it.
        """
        closed = 0
        with self._reaping:
            now = time.monotonic()
            for s in list(self._mine.values()):
                s.closing = s.closing or self._reason(s, now)
                if s.closing is None:
                    continue
                self._registry.pop(s.token, None)  # no new statement on it
                busy = not s.lock.acquire(blocking=False)
                if busy:
                    s.interrupted = True
                    _interrupt(s.conn)
                    if not (wait > 0 and s.lock.acquire(timeout=wait)):
                        continue
                try:
                    open_txn = in_transaction(s.conn._duck_conn)  # noqa: SLF001
                    s.conn.close()
                except Exception as e:  # noqa: BLE001 - it is gone either way
                    open_txn = True
                    log.warning("closing a session raised %s", e)
                finally:
                    s.lock.release()
                del self._mine[s.token]
                closed += 1
                self._report(s, open_txn)
        return closed

    def _report(self, s: Session, open_txn: bool) -> None:
        """Log a closed session: a warning when something was rolled back or interrupted."""
        if s.closing != "closed by its client":
            self.closed[s.token] = s.closing or ""
            while len(self.closed) > 1000:
                self.closed.popitem(last=False)
        undone = [
            w
            for w, yes in (
                ("a statement interrupted", s.interrupted),
                ("an open transaction rolled back", open_txn),
            )
            if yes
        ]
        if undone:
            log.warning("closed a session (%s): %s", " and ".join(undone), s.closing)
        else:
            log.info("closed a session: %s", s.closing)

    def interrupt_all(self) -> None:
        for s in list(self._mine.values()):
            _interrupt(s.conn)


# --------------------------------------------------------------------------- ASGI helpers
async def _read_body(receive: Callable) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


_WORKER = threading.local()


def run_on_worker_loop(coro: Any) -> Any:
    """Run ``coro`` to completion on this worker thread's own event loop, kept for its next
    statements.

    ``asyncio.run`` per statement made a new event loop each time, and with it a new thread for
    fakesnow's ``run_in_threadpool`` (anyio keeps its worker threads per loop). With
    :func:`inline_on_workers` and the server's other savings a statement's round trip went from
    18.5 to 13.4 ms (bench/results/round_trip.md).
    """
    loop = getattr(_WORKER, "loop", None)
    if loop is None or loop.is_closed():
        loop = _WORKER.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coro)


def inline_on_workers(run_in_threadpool: Callable) -> Callable:
    """fakesnow's ``run_in_threadpool`` (starlette's), except on a statement's worker thread.

    There the statement already has a thread of its own, which waits for nothing else: running
    the blocking call in place saves a hand-over to another thread and back per statement. On the
    server's event loop (any other request) the call still goes to a thread, so the loop never
    blocks.
    """

    async def run(func: Callable, *args: Any, **kwargs: Any) -> Any:
        if asyncio.get_running_loop() is getattr(_WORKER, "loop", None):
            return func(*args, **kwargs)
        return await run_in_threadpool(func, *args, **kwargs)

    return run


async def _call_buffered(app: Callable, scope: dict, body: bytes) -> list[dict]:
    """Run ``app`` on a request with ``body``; return the messages it sent, unsent."""
    messages: list[dict] = []
    delivered = False

    async def receive() -> dict:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        messages.append(message)

    await app(scope, receive, send)
    return messages


def _json_messages(status: int, content: Any) -> list[dict]:
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


def _response(messages: list[dict]) -> tuple[int, Any]:
    status = next((m["status"] for m in messages if m["type"] == "http.response.start"), 500)
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, None


async def _replay(messages: list[dict], send: Callable) -> None:
    for message in messages:
        await send(message)


def _header(scope: dict, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name), "")


def _token(scope: dict) -> str | None:
    m = re.search(r'Token="([^"]*)"', _header(scope, b"authorization"))
    return m.group(1) if m else None


def _json_body(scope: dict, body: bytes) -> dict:
    try:
        if _header(scope, b"content-encoding") == "gzip":
            body = gzip.decompress(body)
        data = json.loads(body)
    except (OSError, ValueError, EOFError):
        return {}
    return data if isinstance(data, dict) else {}


def announced_pid(scope: dict, body: bytes) -> int | None:
    """The process id a client announced in its login request, if any."""
    data = _json_body(scope, body).get("data") or {}
    value = (data.get("SESSION_PARAMETERS") or {}).get(PID_PARAMETER)
    if value is None:
        return None
    try:
        pid = int(value)
    except (TypeError, ValueError):
        return None
    return pid if pid > 0 else None


def classify(error: BaseException | None, fallback: str) -> tuple[str, str]:
    """The answer code and message for an unhandled query error (see the module docstring, 3)."""
    text = " ".join(str(error if error is not None else fallback).replace("\x00", ".").split())[
        :600
    ]
    name = type(error).__name__ if error is not None else ""
    if name == "FatalException" or "database has been invalidated" in text:
        return STOPPED_CODE, f"DuckDB cannot go on ({text})"
    resource = (
        isinstance(error, MemoryError)
        or name == "OutOfMemoryException"
        or bool(_RESOURCE.search(text))
    )
    if resource or (isinstance(error, OSError) and error.errno in _RESOURCE_ERRNOS):
        return FAILED_CODE, f"the machine ran out of disk or memory for this statement ({text})"
    return INTERNAL_CODE, f"{name}: {text}" if name else text


def _failure(code: str, message: str, query_id: str) -> list[dict]:
    return _json_messages(
        200,
        {
            "data": {"errorCode": code, "sqlState": "XX000", "queryId": query_id},
            "code": code,
            "message": message,
            "success": False,
        },
    )


# --------------------------------------------------------------------------- the front
@dataclass
class Job:
    """One statement, run on a worker thread; its answer is kept until the client fetches it."""

    id: str
    token: str | None
    request_id: str | None
    future: asyncio.Future | None = None
    messages: list[dict] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    finished: float | None = None


class Front:
    """The ASGI app the server runs: fakesnow's ``app`` behind the additions of this module."""

    def __init__(
        self,
        app: Callable,
        registry: dict[str, Any],
        settings: dict[str, str] | None = None,
        fault: re.Pattern[str] | None = None,
        on_fatal: Callable[[str], None] | None = None,
    ):
        self.app = app
        self.sessions = Sessions(registry, env_seconds(TXN_IDLE_VAR, TXN_IDLE_SECONDS))
        self.hold = env_seconds(HOLD_VAR, HOLD_SECONDS)
        self.lock_wait = env_seconds(LOCK_WAIT_VAR, self.sessions.txn_idle + 15)
        self.settings = settings or {}
        self.fault = fault
        self.on_fatal = on_fatal or (lambda cause: None)
        self.last_request = time.monotonic()
        self._jobs: dict[str, Job] = {}
        self._by_request: dict[str, Job] = {}
        self._answered: OrderedDict[str, list[dict]] = OrderedDict()  # requestId -> answer
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="query")
        logging.getLogger("fakesnow.server").addFilter(_CaptureErrors())

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.last_request = time.monotonic()
        path, method = scope["path"], scope["method"]
        if path == ALIVE_PATH:
            return await _replay(_json_messages(200, self.alive()), send)
        if method == "POST" and path == LOGIN_PATH:
            return await self._login(scope, receive, send)
        if method == "POST" and path == QUERY_PATH:
            return await self._query(scope, receive, send)
        if method == "POST" and path == ABORT_PATH:
            return await self._abort(scope, receive, send)
        if method == "GET" and (m := RESULT_PATH.match(path)):
            return await self._result(m.group(1), scope, send)
        return await self.app(scope, receive, send)

    def alive(self) -> dict[str, Any]:
        """What the liveness endpoint answers."""
        running = sum(1 for j in list(self._jobs.values()) if j.finished is None)
        return {
            "pid": os.getpid(),
            "sessions": len(self.sessions),
            "running": running,
            "settings": self.settings,
        }

    def tick(self) -> None:
        """Periodic upkeep: close abandoned sessions, drop results nobody fetched."""
        self.sessions.reap()
        now = time.monotonic()
        for job in list(self._jobs.values()):
            gone = job.token is not None and self.sessions.get(job.token) is None  # session closed
            if job.finished is not None and (gone or now - job.finished > UNCLAIMED_SECONDS):
                self._forget(job)

    def close(self) -> None:
        """Interrupt what still runs and let the workers go (the server is stopping)."""
        self.sessions.interrupt_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _login(self, scope: dict, receive: Callable, send: Callable) -> None:
        body = await _read_body(receive)
        loop = asyncio.get_running_loop()
        # a dead client's sessions and locks go first
        await loop.run_in_executor(self._pool, self.sessions.reap, REAP_WAIT)
        messages = await _call_buffered(self.app, scope, body)
        status, content = _response(messages)
        token = ((content or {}).get("data") or {}).get("token") if status == 200 else None
        if token:
            self.sessions.add(token, announced_pid(scope, body))
        await _replay(messages, send)

    async def _query(self, scope: dict, receive: Callable, send: Callable) -> None:
        body = await _read_body(receive)
        if self.fault is not None and self.fault.search(
            str(_json_body(scope, body).get("sqlText", ""))
        ):
            from customer_analytics import faults

            faults.kill("a statement received by the warehouse server", whole_run=False)
        if (why := self.sessions.closed.get(_token(scope) or "")) is not None:
            message = (
                f"The local warehouse closed this session ({why}); any open transaction was "
                "rolled back. "
                "Connect again."
            )
            return await _replay(_failure(SESSION_CLOSED_CODE, message, ""), send)
        request_id = (
            parse_qs(scope.get("query_string", b"").decode("latin-1")).get("requestId") or [None]
        )[0]
        if request_id and (answered := self._answered.get(request_id)) is not None:
            # a retry of a statement already answered: not run again
            return await _replay(answered, send)
        job = self._by_request.get(request_id) if request_id else None
        if job is None:  # not a retry of a request already running: start it
            job = Job(uuid.uuid4().hex, _token(scope), request_id)
            self._jobs[job.id] = job
            if request_id:
                self._by_request[request_id] = job
            ctx = contextvars.Context()
            job.future = asyncio.get_running_loop().run_in_executor(
                self._pool, ctx.run, self._run, job, dict(scope), body
            )
        await self._answer(job, send)

    async def _result(self, job_id: str, scope: dict, send: Callable) -> None:
        job = self._jobs.get(job_id)
        if job is None or job.token != _token(scope):
            return await _replay(
                _failure(
                    INTERNAL_CODE,
                    f"no result for query {job_id} (fetched already, or "
                    "the warehouse server restarted)",
                    job_id,
                ),
                send,
            )
        await self._answer(job, send)

    async def _abort(self, scope: dict, receive: Callable, send: Callable) -> None:
        body = await _read_body(receive)
        job = self._by_request.get(str(_json_body(scope, body).get("requestId")))
        if job is not None and job.token == _token(scope) and (s := self.sessions.get(job.token)):
            _interrupt(s.conn)
            log.info("interrupted a statement at its client's request")
        await _replay(
            _json_messages(200, {"success": True, "data": None, "code": None, "message": None}),
            send,
        )

    def _run(self, job: Job, scope: dict, body: bytes) -> None:  # on a worker thread
        session = self.sessions.get(job.token)
        with session.lock if session else contextlib.nullcontext():
            _ERRORS.set(job.errors)
            deadline, pause = time.monotonic() + self.lock_wait, 0.2
            try:
                while True:
                    job.errors.clear()
                    job.messages = run_on_worker_loop(_call_buffered(self.app, scope, body))
                    if not (self._must_wait(job, session) and time.monotonic() < deadline):
                        break
                    # another transaction holds the table: wait for it, as Snowflake does
                    time.sleep(pause)
                    pause = min(pause * 2, 2.0)
            finally:
                job.finished = time.monotonic()
                if session:
                    session.last_used = job.finished

    @staticmethod
    def _must_wait(job: Job, session: Session | None) -> bool:
        """Whether a statement failed only because another transaction holds what it writes.

        Only a statement that ran on its own (autocommit) is run again; one inside a transaction
        has aborted that transaction, and its client must roll back.
        """
        conflict = any(
            type(e).__name__ == "TransactionException" and "conflict" in str(e).lower()
            for e in job.errors
        )
        return conflict and session is not None and not in_transaction(session.conn._duck_conn)  # noqa: SLF001

    async def _answer(self, job: Job, send: Callable) -> None:
        assert job.future is not None
        try:
            await asyncio.wait_for(asyncio.shield(job.future), self.hold)
        except TimeoutError:
            progress = {
                "code": IN_PROGRESS,
                "message": "Query execution in progress",
                "success": True,
                "data": {"queryId": job.id, "getResultUrl": f"/queries/{job.id}/result"},
            }
            return await _replay(_json_messages(200, progress), send)
        except Exception as e:  # noqa: BLE001 - a failure of this layer, answered like any other
            log.exception("warehouse server: a statement could not be run")
            messages = _failure(INTERNAL_CODE, f"{type(e).__name__}: {e}", job.id)
        else:
            messages = self._outcome(job)
        self._forget(job)
        if job.request_id and sum(len(m.get("body", b"")) for m in messages) <= ANSWER_KEPT_BYTES:
            self._answered[job.request_id] = (
                messages  # in case the answer is lost on the way and retried
            )
            while len(self._answered) > ANSWERS_KEPT:
                self._answered.popitem(last=False)
        await _replay(messages, send)

    def _outcome(self, job: Job) -> list[dict]:
        status, content = _response(job.messages)
        if status < 500:
            return job.messages
        fallback = str((content or {}).get("message") or f"HTTP {status}")
        code, message = classify(job.errors[-1] if job.errors else None, fallback)
        if code == STOPPED_CODE:
            self.on_fatal(message)
        return _failure(code, message, job.id)

    def _forget(self, job: Job) -> None:
        self._jobs.pop(job.id, None)
        if job.request_id and self._by_request.get(job.request_id) is job:
            del self._by_request[job.request_id]
