"""Notebook kernels forked from one process that has done the imports (Linux).

Every notebook kernel of a run imported the same libraries (Snowpark, pandas, scikit-learn, SciPy,
matplotlib, skops, IPython): 2.5-4 CPU-seconds per kernel, five times per run on a machine with two
cores. A :class:`Zygote` does those imports once, in a process of its own, and then forks each
kernel from itself: the child starts ipykernel exactly as ``python -m ipykernel_launcher`` would,
with the kernel's own command-line arguments, environment and working folder, its imports already
in memory (shared with the zygote's until written).

* The zygote is started by :class:`kernels.KernelService` when a build needs a second kernel (a
  run of one notebook does not pay for it), with the union of the run's notebooks' modules, in a
  session of its own (a Ctrl-C in the terminal reaches neither it nor the kernels, as for kernels
  jupyter_client starts). It talks to the build over a socket pair; when the build's end closes
  (it exited, or was killed), the zygote kills its kernels and exits.
* :class:`ForkingKernelManager` is the kernel manager the service starts kernels with: its launch
  asks the zygote for the kernel and falls back to jupyter_client's own launch when the zygote is
  not there or refuses (another interpreter or launcher in the kernel's command). The provisioner
  gets a :class:`ForkedProcess`, which behaves as the ``Popen`` it would have held: ``poll``,
  ``wait`` (the exit status comes from the zygote, which reaps the kernel), ``send_signal``,
  ``kill``. The kernel leads its own process group, so interrupts and kills reach it as before.
* A kernel dies with the zygote (``PR_SET_PDEATHSIG``); ipykernel's own parent watch sees the
  zygote as its parent.

What differs from a launched kernel: ``/proc/<pid>/cmdline`` is the zygote's (it names
``ipykernel`` so that tools looking for kernels find them; :data:`ZYGOTE_MARK` tells the zygote
itself apart) and ``/proc/<pid>/environ`` shows the zygote's environment (``os.environ`` in the
kernel is the kernel's own). NumPy's global random state is re-seeded in each kernel (Python's
``random`` is by Python itself); the pipeline draws no number without an explicit seed anyway.
``CA_KERNEL_FORK=0`` turns forking off.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import importlib
import importlib.util
import json
import logging
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jupyter_client import AsyncKernelManager

log = logging.getLogger(__name__)

#: Set to ``0`` to start every kernel as jupyter_client does.
FORK_VAR = "CA_KERNEL_FORK"
#: In the zygote's (and so its kernels') command line: ``ipykernel`` for tools that look for
#: kernels by command line, the mark to tell the zygote from its kernels (its parent is no zygote).
ZYGOTE_MARK = "customer_analytics.kernelfork"
LAUNCHER = "ipykernel_launcher"
#: Seconds the zygote may take to start and do its imports before kernels are launched without it.
READY_TIMEOUT = 120.0
_HEADER = struct.Struct("!I")
_STATUS = struct.Struct("!i")


def enabled() -> bool:
    """Whether kernels may be forked here (Linux, and not turned off with :data:`FORK_VAR`)."""
    return (
        sys.platform.startswith("linux")
        and hasattr(socket, "send_fds")
        and os.environ.get(FORK_VAR, "1") != "0"
    )


class ZygoteError(RuntimeError):
    """The zygote could not fork a kernel (it is gone, or refused the command)."""


# --------------------------------------------------------------------------------------- framing
def _send(sock: socket.socket, payload: dict, fds: Sequence[int] = ()) -> None:
    data = json.dumps(payload).encode()
    message = _HEADER.pack(len(data)) + data
    sent = socket.send_fds(sock, [message], list(fds)) if fds else sock.send(message)
    if sent < len(message):
        sock.sendall(message[sent:])


def _receive(sock: socket.socket, with_fds: int = 0) -> tuple[dict | None, list[int]]:
    """One message (``None`` at the end of the stream) and the descriptors that came with it."""
    fds: list[int] = []
    if with_fds:
        data, fds, _flags, _addr = socket.recv_fds(sock, 65536, with_fds)
    else:
        data = sock.recv(65536)
    if not data:
        return None, fds
    while len(data) < _HEADER.size:
        more = sock.recv(65536)
        if not more:
            return None, fds
        data += more
    (size,) = _HEADER.unpack_from(data)
    while len(data) < _HEADER.size + size:
        more = sock.recv(65536)
        if not more:
            return None, fds
        data += more
    return json.loads(data[_HEADER.size : _HEADER.size + size]), fds


# ------------------------------------------------------------------------------- in the build
class ForkedProcess:
    """What ``subprocess.Popen`` is to jupyter_client's provisioner, for a kernel forked by the
    zygote (not a child of this process: its exit status arrives on ``status``)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, status: socket.socket):
        self.pid, self._status = pid, status
        self.returncode: int | None = None
        self._lock = threading.Lock()

    def _read_status(self, timeout: float | None) -> None:
        with self._lock:
            if self.returncode is not None:
                return
            self._status.settimeout(timeout)
            try:
                data = self._status.recv(_STATUS.size)
            except (TimeoutError, BlockingIOError):
                return
            except OSError:
                data = b""
            if len(data) == _STATUS.size:
                self.returncode = os.waitstatus_to_exitcode(_STATUS.unpack(data)[0])
            else:  # the zygote went away: the kernel died with it (PR_SET_PDEATHSIG)
                self.returncode = -signal.SIGKILL
            self._status.close()

    def poll(self) -> int | None:
        self._read_status(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._read_status(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout or 0)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:  # never a signal to a pid the system may have given away since
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class Zygote:
    """The process kernels are forked from, started with ``modules`` to import (see module doc).

    :meth:`spawn` waits until the imports are done (:data:`READY_TIMEOUT`), then forks; several
    threads may call it.
    """

    def __init__(self, modules: Sequence[str]):
        self.modules = sorted(dict.fromkeys(modules))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = ours
        self._lock = threading.Lock()
        self._ready = False
        self._failed = ""
        self.process = subprocess.Popen(
            [sys.executable, "-m", ZYGOTE_MARK, str(theirs.fileno()), "ipykernel"],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "CA_ZYGOTE_MODULES": json.dumps(self.modules)},
        )
        theirs.close()

    def _wait_ready(self) -> None:
        if self._ready:
            return
        if self._failed:
            raise ZygoteError(self._failed)
        self._sock.settimeout(READY_TIMEOUT)
        try:
            message, _ = _receive(self._sock)
        except (OSError, ValueError) as e:
            message, self._failed = None, f"the kernel zygote did not start: {e}"
        if not message or not message.get("ready"):
            self._failed = self._failed or "the kernel zygote exited while it started"
            self.process.kill()  # one that hangs in its imports is not waited for again
            raise ZygoteError(self._failed)
        self._sock.settimeout(None)
        self._ready = True
        if message.get("failed"):
            log.debug("kernel zygote: could not import %s", message["failed"])

    def spawn(self, cmd: Sequence[str], env: dict[str, str], cwd: str | None) -> ForkedProcess:
        """A kernel forked for the launch command ``cmd`` (``python -m ipykernel_launcher ...``),
        with ``env`` as its environment and ``cwd`` as its working folder.

        Raises:
            ZygoteError: the zygote is gone or cannot launch this command.
        """
        if len(cmd) < 3 or list(cmd[1:3]) != ["-m", LAUNCHER]:
            raise ZygoteError(f"not an ipykernel launch: {cmd[:3]}")
        if not os.path.samefile(cmd[0], sys.executable):
            raise ZygoteError("the kernel runs another Python")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._lock:
                self._wait_ready()
                request = {"argv": list(cmd[3:]), "env": dict(env), "cwd": cwd or os.getcwd()}
                try:
                    _send(self._sock, request, [theirs.fileno()])
                    answer, _ = _receive(self._sock)
                except OSError as e:
                    raise ZygoteError(f"the kernel zygote is gone: {e}") from e
        finally:
            theirs.close()
        if not answer or "pid" not in answer:
            ours.close()
            raise ZygoteError(f"the kernel zygote did not fork: {(answer or {}).get('error')}")
        return ForkedProcess(int(answer["pid"]), ours)

    def close(self) -> None:
        """Stop the zygote (its kernels too: stop them first) and wait for it."""
        with contextlib.suppress(OSError):
            self._sock.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ForkingKernelManager(AsyncKernelManager):
    """An :class:`AsyncKernelManager` whose kernel is forked by :attr:`zygote` when it can be."""

    zygote: Zygote | None = None

    async def _launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        zygote = self.zygote
        if zygote is not None and self.provisioner is not None:
            env = kw.get("env") or dict(os.environ)
            try:
                process = await asyncio.get_running_loop().run_in_executor(
                    None, zygote.spawn, kernel_cmd, env, kw.get("cwd")
                )
            except ZygoteError as e:
                log.debug("kernel not forked (%s): launching it", e)
            else:
                prov: Any = self.provisioner
                prov.process, prov.pid, prov.pgid = process, process.pid, process.pid
                self._reconcile_connection_info(prov.connection_info)
                return
        await super()._launch_kernel(kernel_cmd, **kw)


# ------------------------------------------------------------------------------- in the zygote
def _prepare() -> list[str]:
    """Import ipykernel and the modules named in ``CA_ZYGOTE_MODULES``, the collector off; then set
    everything aside from the collector. Returns the modules that failed to import (a notebook
    meets the error itself)."""
    if sys.path and Path(sys.path[0] or ".").resolve() == Path.cwd():
        del sys.path[0]  # as ipykernel_launcher does: IPython puts '' back in the kernel
    failed = []
    gc.disable()
    try:
        importlib.import_module("ipykernel.kernelapp")
        for name in json.loads(os.environ.pop("CA_ZYGOTE_MODULES", "[]")):
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - reported; the kernel raises it in the notebook
                failed.append(name)
    finally:
        gc.collect()
        gc.freeze()
    return failed


def _child(request: dict, status: int, control: socket.socket, others: Sequence[int]) -> None:
    """In the forked kernel: become ``python -m ipykernel_launcher ARGV``; never returns."""
    code = 1
    try:
        control.close()
        for fd in (status, *others):
            with contextlib.suppress(OSError):
                os.close(fd)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.setsid()
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the zygote died meanwhile
            os._exit(1)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        # ipykernel watches this parent (it exits if it goes) and prints no console banner
        os.environ["JPY_PARENT_PID"] = str(os.getppid())
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        from customer_analytics import gcwork

        gcwork.settle()
        launcher = importlib.util.find_spec(LAUNCHER)
        sys.argv = [launcher.origin if launcher and launcher.origin else LAUNCHER, *request["argv"]]
        # ipykernel read JPY_PARENT_PID when the zygote imported it: the parent is given here
        sys.argv.append(f"--IPKernelApp.parent_handle={os.getppid()}")
        from ipykernel import kernelapp

        kernelapp.launch_new_instance()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - shown on the kernel's stderr, as a launch would
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()  # noqa: SLF001 - what the interpreter's exit would run
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve(control: socket.socket) -> None:
    """The zygote's loop: fork a kernel per request, report each kernel's exit status on its status
    socket; at the end of ``control``, kill the kernels and return."""
    failed = _prepare()
    children: dict[int, int] = {}  # pid -> status descriptor
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _send(control, {"ready": True, "failed": failed})

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            fd = children.pop(pid, None)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.write(fd, _STATUS.pack(status))
                os.close(fd)

    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    try:
        while True:
            for key, _ in selector.select():
                if key.fileobj == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
                    reap()
                    continue
                request, fds = _receive(control, with_fds=1)
                if request is None:
                    return
                if not fds:
                    _send(control, {"error": "no status socket came with the request"})
                    continue
                try:
                    pid = os.fork()
                except OSError as e:
                    os.close(fds[0])
                    _send(control, {"error": f"fork: {e}"})
                    continue
                if pid == 0:
                    selector.close()
                    os.close(wake_r)
                    os.close(wake_w)
                    _child(request, fds[0], control, list(children.values()))
                children[pid] = fds[0]
                _send(control, {"pid": pid})
            reap()
    finally:
        for pid in list(children):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for pid in list(children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    control = socket.socket(fileno=int(args[0]))
    try:
        serve(control)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the build went away
    return 0


if __name__ == "__main__":
    sys.exit(main())
