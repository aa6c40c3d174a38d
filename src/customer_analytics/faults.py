"""Fault injection for the crash tests: a process kills itself, and its run, at a chosen moment.

Set :data:`KILL_VAR` in the environment of a run; every process of the run inherits it (the CLI,
Ploomber, each notebook kernel, and the local warehouse server when the run starts it). The point
is one of:

* ``point:<name>`` — a named moment in the library, where it calls :func:`point`:
  ``registry.model_written`` (a new version's model file is written in its private folder, its
  ``meta.json`` is not), ``registry.meta_written`` (both written, not yet renamed to ``vN``),
  ``registry.registered`` (the version is complete, the default not decided);
* ``sql:<regex>`` — a client process, just before it sends a statement that matches ``regex``
  (searched, case-insensitive) to the local warehouse (:func:`before_statement`);
* ``sql-sent:<regex>`` — a client process, :data:`DELAY_VAR` seconds (default 0.3) after it sent
  such a statement, usually while the warehouse still runs it;
* ``server:<regex>`` — the local warehouse server, when it receives such a statement (it kills
  only itself; the run then meets a dead server).

A client process then SIGKILLs the process group named by :data:`GROUP_VAR`, if set (a test starts
the run in its own group, so the whole run dies at once, as with ``kill -9`` of a job), and itself.
Without :data:`KILL_VAR` every check is one dictionary look-up. Nothing here is used in normal runs.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading

log = logging.getLogger(__name__)

KILL_VAR = "CA_FAULT_KILL"
GROUP_VAR = "CA_FAULT_PGID"
DELAY_VAR = "CA_FAULT_DELAY"
#: If set: a file to which the killing process appends where it killed (tests check the kill).
MARK_VAR = "CA_FAULT_MARK"


def _raw_spec(kind: str) -> str | None:
    value = os.environ.get(KILL_VAR, "")
    prefix = f"{kind}:"
    return value[len(prefix) :] if value.startswith(prefix) else None


def _spec(kind: str) -> re.Pattern[str] | None:
    rest = _raw_spec(kind)
    return None if rest is None else re.compile(rest, re.IGNORECASE | re.DOTALL)


def kill(where: str, whole_run: bool = True) -> None:
    """SIGKILL this process; first the run's process group (:data:`GROUP_VAR`) if ``whole_run``."""
    log.critical(
        "fault injection: killing %s at %s", "the run" if whole_run else "this process", where
    )
    if mark := os.environ.get(MARK_VAR):
        fd = os.open(mark, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {where}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    group = os.environ.get(GROUP_VAR, "")
    if whole_run and group.isdigit():
        try:
            os.killpg(int(group), signal.SIGKILL)
        except OSError:
            pass
    os.kill(os.getpid(), signal.SIGKILL)


def point(name: str) -> None:
    """A named moment: kill the run here if :data:`KILL_VAR` is ``point:<name>``."""
    if os.environ.get(KILL_VAR) and _raw_spec("point") == name:
        kill(f"point {name}")


_LEADING_TAGS = re.compile(r"^\s*(?:/\*.*?\*/\s*)+", re.DOTALL)


def before_statement(sql: str) -> None:
    """Called before a client sends ``sql``: kill now (``sql:``) or soon after (``sql-sent:``)."""
    if not os.environ.get(KILL_VAR):
        return
    sql = _LEADING_TAGS.sub(
        "", sql
    )  # patterns match the statement, not its tags (/* ca:local-only */)
    if (pattern := _spec("sql")) is not None and pattern.search(sql):
        kill(f"statement {sql[:80]!r} (before sending it)")
    if (pattern := _spec("sql-sent")) is not None and pattern.search(sql):
        delay = float(os.environ.get(DELAY_VAR) or 0.3)
        threading.Timer(
            delay, kill, (f"statement {sql[:80]!r} ({delay} s after sending it)",)
        ).start()


def server_point() -> re.Pattern[str] | None:
    """The ``server:`` pattern in force for a warehouse server starting now, if any."""
    return _spec("server") if os.environ.get(KILL_VAR) else None
