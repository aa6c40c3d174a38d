"""The embedded warehouse server's process: find it, start it, check it answers, stop it.

Kept apart from :mod:`customer_analytics.warehouse` so that a process can start the server without
importing Snowpark: the pipeline's own process starts it while the first notebook's kernel starts
(:mod:`customer_analytics.executor`), so the first notebook finds it running. Which process starts
it does not matter: it keeps running while a client process lives or a request came in its idle
time (:mod:`customer_analytics.warehouse_server`), and two starting it at once end up with one.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from customer_analytics import fsutil
from customer_analytics import warehouse_server as _srv

log = logging.getLogger("customer_analytics.warehouse")


class WarehouseError(RuntimeError):
    """The warehouse could not be reached or used; the message says why and what to do."""


#: Servers started by this process, by pid: polled so that a stopped one is reaped, not a zombie.
CHILDREN: dict[int, subprocess.Popen] = {}


def server_state(warehouse_dir: Path) -> dict | None:
    try:
        state = json.loads((warehouse_dir / _srv.STATE_FILE).read_text())
        pid = int(state["pid"])
        if pid in CHILDREN and CHILDREN[pid].poll() is not None:
            return None
        return state if fsutil.pid_alive(pid) else None
    except (OSError, ValueError, KeyError):
        return None


def ensure_local_server(
    warehouse_dir: Path, database: str = "ANALYTICS", schema: str = "SHOP"
) -> int:
    """Return the port of the warehouse server for ``warehouse_dir``, starting it if needed."""
    return int(local_server(warehouse_dir, database, schema)["port"])


def local_server(warehouse_dir: Path, database: str = "ANALYTICS", schema: str = "SHOP") -> dict:
    """State (``pid``, ``port``) of the live server of ``warehouse_dir``, started if needed.

    A server that runs but does not answer its liveness check is stuck: it is replaced.
    """
    warehouse_dir.mkdir(parents=True, exist_ok=True)
    if state := server_state(warehouse_dir):
        if answers(state):
            return state
        kill_server(warehouse_dir, state, "does not answer: replacing it")
    log.info("starting the embedded warehouse server for %s", warehouse_dir)
    logfile = open(warehouse_dir / _srv.LOG_FILE, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "customer_analytics.warehouse_server",
            str(warehouse_dir),
            "--database",
            database,
            "--schema",
            schema,
        ],
        stdin=subprocess.DEVNULL,
        stdout=logfile,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
    )
    logfile.close()
    CHILDREN[proc.pid] = proc
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if state := server_state(warehouse_dir):
            return state
        code = proc.poll()
        if code == 3:  # another server won the race to start: use it
            time.sleep(0.2)
            continue
        if code is not None:
            tail = (
                (warehouse_dir / _srv.LOG_FILE)
                .read_text(errors="replace")
                .strip()
                .splitlines()[-3:]
            )
            raise WarehouseError(
                f"The local warehouse in {warehouse_dir} could not start: {' '.join(tail)} If "
                "another program (a DuckDB shell, an old server) holds the files, stop it and "
                "retry."
            )
        time.sleep(0.1)
    raise WarehouseError(
        f"The local warehouse server for {warehouse_dir} did not start within 60 s."
    )


def stop_local_server(warehouse_dir: Path, timeout: float = 10) -> None:
    """Stop the warehouse server for ``warehouse_dir`` if one runs (tests and `make clean`)."""
    if not (state := server_state(warehouse_dir)):
        return
    pid = int(state["pid"])
    os.kill(pid, 15)
    deadline = time.monotonic() + timeout
    # until the process is gone, not only its state file: it holds the DuckDB files' lock to the end
    while time.monotonic() < deadline and (server_state(warehouse_dir) or fsutil.pid_alive(pid)):
        time.sleep(0.1)
    if server_state(warehouse_dir):  # it did not stop (stuck, or stopped with SIGSTOP)
        kill_server(warehouse_dir, state, f"did not stop within {timeout} s: killing it")


#: Seconds the liveness endpoint may take to answer before a server counts as stuck.
ALIVE_TIMEOUT = 5.0


def answers(state: dict) -> bool:
    """Whether the server of ``state`` answers its liveness endpoint (asked 3 times)."""
    port, pid = int(state["port"]), int(state["pid"])
    return any(_srv.check_alive(port, pid, ALIVE_TIMEOUT) for _ in range(3))


def kill_server(warehouse_dir: Path, state: dict, why: str) -> None:
    """SIGKILL the server of ``state`` (it does not answer, or does not stop); log ``why``."""
    pid = int(state["pid"])
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        cmdline = b"customer_analytics.warehouse_server"  # no /proc: trust the state file
    if b"customer_analytics.warehouse_server" not in cmdline:
        return  # the pid is another program's now: the server is gone
    log.warning("the local warehouse server (pid %s) %s", pid, why)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and fsutil.pid_alive(pid):
        if pid in CHILDREN:
            CHILDREN[pid].poll()
        time.sleep(0.05)
    (warehouse_dir / _srv.STATE_FILE).unlink(missing_ok=True)
