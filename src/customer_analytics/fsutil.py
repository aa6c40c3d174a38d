"""Small file-system utilities used across the package: atomic writes, process liveness, file locks.

Standard library only (imported while Ploomber loads the pipeline and by the warehouse server).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["LockedError", "atomic_write", "file_lock", "hold_lock", "pid_alive", "process_started"]


class LockedError(RuntimeError):
    """A lock is held by another process; the message says by whom."""


def atomic_write(path: Path, data: bytes | str, *, fsync: bool = False) -> Path:
    """Replace ``path`` with ``data`` atomically (write a temporary file beside it, then rename).

    Readers see the old content or the new one, never a part. If writing fails (disk full, a
    kill), the temporary file is removed where possible and ``path`` is left as it was.

    Args:
        path: the file to write; its folder is created when missing.
        data: text (written as UTF-8) or bytes.
        fsync: flush the data to disk before the rename (registry files: survive a power cut).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (state first), ``None`` if there is no such process.

    Raises:
        OSError: ``/proc`` cannot be read (not Linux): the caller falls back to ``kill(pid, 0)``.
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if not Path("/proc/self/stat").exists():
            raise
        return None
    except ProcessLookupError:
        return None
    return text.rsplit(")", 1)[1].split()


def process_started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, as text), ``None`` if unknown or gone.

    Recorded with a pid, it tells a process from a later one that got the same pid.
    """
    try:
        fields = _proc_stat(pid)
    except OSError:
        return None
    return fields[19] if fields and len(fields) > 19 else None


def pid_alive(pid: object, started: str | None = None) -> bool:
    """Whether process ``pid`` runs (a zombie does not: it is dead, only not yet reaped; a process
    of another user counts as alive; anything that is not a pid is not alive).

    Args:
        started: its :func:`process_started` value when it was seen alive; a process with the same
            pid but another start time is another process, so the recorded one is dead.
    """
    try:
        number = int(pid)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False
    if number <= 0:
        return False
    try:
        fields = _proc_stat(number)
    except OSError:  # no /proc: ask the kernel whether the pid exists
        try:
            os.kill(number, 0)
        except PermissionError:
            return True
        except OSError:
            return False
        return True
    if not fields or fields[0] in ("Z", "X", "x"):
        return False
    return started is None or len(fields) <= 19 or fields[19] == started


#: Locks this process holds, by resolved path: taking one again is a no-op (re-entrant per process).
_HELD: dict[Path, tuple[IO[str], bool]] = {}


@contextlib.contextmanager
def file_lock(
    path: Path, *, shared: bool = False, timeout: float = 0.0, owner: str = ""
) -> Iterator[None]:
    """Hold an OS lock (``flock``) on ``path`` for the ``with`` block.

    The lock belongs to this process: it is released when the block ends or the process dies,
    whatever the way. Re-entrant within one process (a nested ``with`` on the same path does
    nothing), so a library function can take the lock its caller already holds.

    Args:
        path: the lock file (created when missing).
        shared: a shared lock (many holders) instead of an exclusive one.
        timeout: seconds to wait for the lock; 0 = fail at once.
        owner: what to write into an exclusive lock file for whoever is refused (e.g. "pid 42 since
            ...").

    Raises:
        LockedError: the lock is held elsewhere (after ``timeout``); the message names the holder.
    """
    key = path.resolve()
    if key in _HELD:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - closed below
    mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(f, mode)
            break
        except OSError as e:
            if time.monotonic() >= deadline:
                f.seek(0)
                holder = f.read().strip() or "another process"
                f.close()
                raise LockedError(f"{path.name} is held by {holder}") from e
            time.sleep(0.2)
    if not shared and owner:
        f.seek(0)
        f.truncate()
        f.write(owner)
        f.flush()
    _HELD[key] = (f, shared)
    try:
        yield
    finally:
        _HELD.pop(key, None)
        with contextlib.suppress(OSError):
            fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def holds(path: Path) -> bool:
    """Whether this process holds the lock on ``path`` (through :func:`file_lock`)."""
    return path.resolve() in _HELD


def hold_lock(path: Path, *, shared: bool = False, timeout: float = 0.0) -> None:
    """Take the lock on ``path`` for the rest of this process's life (released when it exits).

    For processes that cannot hold a ``with`` block open, e.g. a notebook kernel.
    """
    cm = file_lock(path, shared=shared, timeout=timeout)
    cm.__enter__()  # the OS releases the lock with the process, however it ends
    # atexit keeps ``cm`` alive until then and, on a normal exit, leaves the ``with`` block while
    # the module still exists: left to the interpreter's shutdown, the generator is closed after
    # this module's globals are gone and prints "Exception ignored in: <generator object
    # file_lock ...>" to stderr
    atexit.register(cm.__exit__, None, None, None)
