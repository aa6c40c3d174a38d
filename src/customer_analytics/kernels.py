"""Notebook kernels for a pipeline run: started ahead of their notebook, shut down without waiting.

Each notebook of a run used to pay, one after the other, a kernel start (~0.8 s), the imports of
Snowpark, pandas, scikit-learn, matplotlib and nbconvert in its first cells (1-4 s) and, after its
last cell, the kernel's shutdown (0.5-2.5 s). None of that is work, and on two cores most of it
can happen while the previous notebook runs:

* :class:`KernelService` (one per pipeline build, started by the executor in
  :mod:`customer_analytics.pipeline`) starts the kernel of the next notebooks in the background,
  each with its notebook's library modules already imported (:func:`warm_code`: ``import`` only,
  executed silently — the notebook's namespace stays empty, execution counts start at 1; then
  the garbage collector is set for one notebook, :mod:`customer_analytics.gcwork`), and
  shuts finished kernels down in the background; the build waits for them before it returns.
* :class:`PooledKernelManager` is the kernel manager Papermill/nbclient create for a notebook
  (``executor_params: {kernel_manager_class: ...}`` in ``pipeline.yaml``). When the service has a
  kernel ready for the task being built in this thread, it adopts that kernel; otherwise it starts
  one as nbclient always did. Its shutdown hands the kernel back to the service.

A kernel is adopted only if it was started with the same kernel name, working folder and
environment as the one nbclient would start, so a notebook cannot tell the difference, except that
its imports are already done. Outside a pipeline build (``customer-analytics score``, Papermill
by hand, JupyterLab) nothing here is active.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jupyter_client import AsyncKernelManager

from customer_analytics import kernelfork

log = logging.getLogger(__name__)

#: What nbclient passes to ipykernel so that kernels write no IPython history file.
KERNEL_ARGUMENTS = ("--HistoryManager.hist_file=:memory:",)
#: Environment variable naming the notebook a service-started kernel is meant for (tools, tests).
TASK_VAR = "CA_KERNEL_TASK"
STARTUP_TIMEOUT = 60.0
#: Seconds a warm-up (the imports) may take before the kernel is handed over anyway.
WARM_TIMEOUT = 120.0

_current = threading.local()


def warm_code(modules: Sequence[str]) -> str:
    """Code that imports ``modules`` and binds no name in the kernel's namespace, the garbage
    collector off meanwhile and then set for the one notebook this kernel runs
    (:func:`gcwork.warm`)."""
    names = sorted(dict.fromkeys(modules))
    return f"__import__('customer_analytics.gcwork', fromlist=['warm']).warm({names!r})"


def module_names(files: Sequence[str]) -> list[str]:
    """Dotted module names of the package files :func:`pipeline.library_modules` returns."""
    out = []
    for rel in files:
        parts = rel.removesuffix(".py").split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(["customer_analytics", *parts]))
    return out


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != TASK_VAR}


class _Warm:
    """A kernel started (and warmed) for one task, and what it was started with."""

    def __init__(self, task: str, km: AsyncKernelManager, cwd: str, env: dict[str, str]):
        self.task, self.km, self.cwd, self.env = task, km, cwd, env


class KernelService:
    """Starts the kernels of upcoming notebooks ahead of time; shuts finished ones down.

    Args:
        tasks: the tasks in the order they will run (topological), each with the modules to import
            in its kernel before its notebook starts.
        kernel_name: the notebooks' kernel (all of the pipeline's use the same).
        ahead: how many kernels are kept started but not yet taken.
    """

    def __init__(
        self,
        tasks: Sequence[tuple[str, Sequence[str]]],
        kernel_name: str = "python3",
        ahead: int = 2,
    ):
        self.order = [name for name, _ in tasks]
        self.modules = {name: list(mods) for name, mods in tasks}
        self.kernel_name, self.ahead = kernel_name, ahead
        self._starts: dict[str, concurrent.futures.Future] = {}
        self._taken: set[str] = set()
        self._stops: list[concurrent.futures.Future] = []
        self._lock = threading.Lock()
        self._launches = 0
        self._zygote: kernelfork.Zygote | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="kernel-service", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------------ used by the executor
    def skip(self, task: str) -> None:
        """``task`` will not run (up to date, or aborted): start no kernel for it."""
        with self._lock:
            self._taken.add(task)
            start = self._starts.get(task)
        if start is not None:
            self._stops.append(self._submit(self._stop_started(start)))
        self.prepare()

    def prepare(self, ahead: int | None = None) -> None:
        """Start kernels for the next ``ahead`` (default :attr:`ahead`) tasks that have none yet, in
        run order."""
        with self._lock:
            waiting = [t for t in self.order if t not in self._taken]
            for task in waiting[: self.ahead if ahead is None else ahead]:
                if task not in self._starts:
                    self._starts[task] = self._submit(self._start(task))

    def close(self) -> None:
        """Stop the kernels nobody took and wait until every kernel has exited."""
        with self._lock:
            unused = [f for t, f in self._starts.items() if t not in self._taken]
            self._taken.update(self.order)
        for start in unused:
            self._stops.append(self._submit(self._stop_started(start)))
        for stop in list(self._stops):
            try:
                stop.result(timeout=60)
            except Exception as e:  # noqa: BLE001 - a kernel that would not stop is killed by the OS later
                log.warning("a notebook kernel did not shut down cleanly: %s", e)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if self._zygote is not None:
            self._zygote.close()

    # ------------------------------------------------------------------ used by PooledKernelManager
    def take(self, task: str) -> _Warm | None:
        """The kernel started for ``task`` (waiting for its warm-up), or ``None`` if there is
        none."""
        with self._lock:
            start = self._starts.get(task) if task not in self._taken else None
            self._taken.add(task)
        try:
            return start.result(timeout=STARTUP_TIMEOUT + WARM_TIMEOUT) if start else None
        except Exception as e:  # noqa: BLE001 - the notebook then starts its own kernel
            log.warning(
                "the kernel prepared for %s could not start (%s): starting another", task, e
            )
            return None
        finally:  # the next kernels start once this one is ready: they do not slow it down
            self.prepare()

    def release(self, km: AsyncKernelManager) -> None:
        """Shut ``km`` down in the background (:meth:`close` waits for it)."""
        self._stops.append(self._submit(self._stop(km)))

    # ------------------------------------------------------------------ on the service's loop
    def _submit(self, coro) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _zygote_for_launch(self) -> kernelfork.Zygote | None:
        """The zygote to fork the next kernel from: from the second kernel of the build on
        (:mod:`customer_analytics.kernelfork`), started with every task's modules."""
        with self._lock:
            self._launches += 1
            if self._launches < 2 or not kernelfork.enabled():
                return None
            if self._zygote is None:
                modules = [m for mods in self.modules.values() for m in mods]
                try:
                    self._zygote = kernelfork.Zygote(modules)
                except OSError as e:  # kernels are launched as jupyter_client does
                    log.warning("could not start the kernel zygote (%s)", e)
                    self._launches = -1_000_000
                    return None
            return self._zygote

    async def _start(self, task: str) -> _Warm:
        env = _environment()
        cwd = os.getcwd()
        km = kernelfork.ForkingKernelManager(kernel_name=self.kernel_name)
        km.zygote = self._zygote_for_launch()
        await km.start_kernel(extra_arguments=list(KERNEL_ARGUMENTS), env={**env, TASK_VAR: task})
        kc: Any = km.client()  # an AsyncKernelClient (typed as the sync one)
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
            msg_id = kc.execute(
                warm_code(self.modules[task]), silent=True, store_history=False, allow_stdin=False
            )
            reply = await asyncio.wait_for(self._reply(kc, msg_id), WARM_TIMEOUT)
            if reply["content"].get("status") != "ok":  # the notebook will meet the error itself
                log.debug("warm-up of %s's kernel: %s", task, reply["content"].get("ename"))
        except Exception:
            kc.stop_channels()
            await self._stop(km)
            raise
        kc.stop_channels()
        log.debug("kernel for %s ready", task)
        return _Warm(task, km, cwd, env)

    @staticmethod
    async def _reply(kc, msg_id: str) -> dict:
        while True:
            msg = await kc.get_shell_msg()
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return msg

    async def _stop(self, km: AsyncKernelManager) -> None:
        try:
            if await km.is_alive():
                await km.shutdown_kernel(now=False)
            else:
                await km.cleanup_resources()
        except Exception as e:  # noqa: BLE001
            log.warning("could not shut a notebook kernel down cleanly (%s): killing it", e)
            await km.shutdown_kernel(now=True)

    async def _stop_started(self, start: concurrent.futures.Future) -> None:
        try:
            warm = await asyncio.wrap_future(start)
        except Exception:  # noqa: BLE001 - it never started
            return
        await self._stop(warm.km)


#: The kernel managers of the notebooks being executed in this process (see :func:`signal_running`).
_running: set[PooledKernelManager] = set()
_running_lock = threading.Lock()
_stopping = threading.Event()


#: Seconds before a kernel that got SIGINT and still runs its notebook gets it again, where
#: :func:`catches_sigint` cannot tell whether it is in a cell (no ``/proc``).
RESEND_S = 5.0


def catches_sigint(pid: int) -> bool | None:
    """Whether process ``pid`` has a handler for SIGINT; ``None`` where ``/proc`` does not tell.

    An ipykernel kernel catches SIGINT only while it handles a request (runs a cell: the cell
    raises ``KeyboardInterrupt``) and ignores it between requests.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1)
    return None


def signal_running(signum: int = signal.SIGINT) -> int:
    """Send ``signum`` to the kernel of every notebook this process is executing; return how many.

    SIGINT is what a kernel's interrupt sends: the running cell raises ``KeyboardInterrupt``, the
    notebook stops there as failed (its partial notebook saved). Used when the build is interrupted,
    called repeatedly: a kernel gets SIGINT when it is in a cell, once per cell (the cell index
    comes from :class:`nbengine.Client`). One between two cells would ignore it: it gets it in its
    next cell. One that got it and is still in the cell (writing its traceback) does not get a
    second one: landing in ipykernel's own code after the cell, it would be swallowed there with the
    cell's reply, and the notebook would wait for a reply that never comes. Without ``/proc``, a
    kernel gets SIGINT again :data:`RESEND_S` after the last.
    """
    now = time.monotonic()
    with _running_lock:
        _stopping.set()  # a notebook about to start its kernel does not start it
        managers = [m for m in _running if signum != signal.SIGINT or m.interruptible(now)]
    return sum(m.send_now(signum) for m in managers)


def reset() -> None:
    """A new build starts: forget an interruption of an earlier one in this process."""
    _stopping.clear()


def active(service: KernelService | None, task: str | None) -> None:
    """Make ``service`` hand its kernel for ``task`` to the notebook built in this thread
    (``None``: none)."""
    _current.service, _current.task = service, task


class PooledKernelManager(AsyncKernelManager):
    """nbclient's kernel manager: adopts the kernel the :class:`KernelService` prepared, if any.

    Without a service for this thread (or when its kernel does not fit), it is
    :class:`jupyter_client.AsyncKernelManager` unchanged.
    """

    _warm: _Warm | None = None
    _service: KernelService | None = None
    signalled: float = float("-inf")  # when signal_running last sent SIGINT
    cell: int = -1  # the cell nbclient executes (nbengine.Client tells)
    interrupted: int | None = None  # the cell signal_running sent SIGINT in

    async def start_kernel(self, **kw: Any) -> None:
        if _stopping.is_set():
            raise RuntimeError("the build was interrupted: this notebook was not started")
        service, task = getattr(_current, "service", None), getattr(_current, "task", None)
        warm = service.take(task) if service is not None and task else None
        if warm is not None and self._fits(warm, kw):
            self._warm, self._service = warm, service
            self.kernel_id = warm.km.kernel_id
        else:
            if warm is not None and service is not None:
                service.release(warm.km)
            await super().start_kernel(**kw)
        with _running_lock:  # either signal_running sees this kernel, or this sees the interruption
            stopping = _stopping.is_set()
            if not stopping:
                _running.add(self)
        if stopping:
            await self.shutdown_kernel(now=True)
            raise RuntimeError("the build was interrupted: this notebook was not started")

    def _provisioner(self) -> Any:
        return (self._warm.km if self._warm is not None else self).provisioner

    def cell_started(self, index: int) -> None:
        """nbclient starts executing cell ``index`` of the notebook (:class:`nbengine.Client`)."""
        self.cell = index

    def interruptible(self, now: float) -> bool:
        """Whether :func:`signal_running` sends SIGINT to this kernel now (it records the send)."""
        process = getattr(self._provisioner(), "process", None)
        in_cell = catches_sigint(process.pid) if process is not None else None
        if in_cell is None:
            send = now - self.signalled >= RESEND_S
        else:  # between two cells SIGINT would be lost; in one, once per cell
            send = in_cell and self.interrupted != self.cell
        if send:
            self.signalled, self.interrupted = now, self.cell
        return send

    def send_now(self, signum: int) -> bool:
        """Send ``signum`` to this notebook's kernel (its process group) from any thread."""
        prov = self._provisioner()
        process = getattr(prov, "process", None)
        if process is None:
            return False
        try:
            if pgid := getattr(prov, "pgid", None):
                os.killpg(pgid, signum)
            else:
                process.send_signal(signum)
        except OSError:  # it has just exited
            return False
        return True

    def _forget(self) -> None:
        with _running_lock:
            _running.discard(self)

    def _fits(self, warm: _Warm, kw: dict[str, Any]) -> bool:
        cwd = kw.get("cwd") or os.getcwd()
        return (
            warm.km.kernel_name == self.kernel_name
            and os.path.samefile(cwd, warm.cwd)
            and warm.env == _environment()
            and not kw.get("env")
            and list(kw.get("extra_arguments") or []) == list(KERNEL_ARGUMENTS)
        )

    @property
    def has_kernel(self) -> bool:
        return self._warm is not None or super().has_kernel

    def client(self, **kwargs: Any):
        return (
            self._warm.km.client(**kwargs) if self._warm is not None else super().client(**kwargs)
        )

    async def is_alive(self) -> bool:
        return await (self._warm.km.is_alive() if self._warm is not None else super().is_alive())

    async def interrupt_kernel(self) -> None:
        if self._warm is not None:
            await self._warm.km.interrupt_kernel()
        else:
            await super().interrupt_kernel()

    async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        self._forget()
        if self._warm is None:
            await super().shutdown_kernel(now=now, restart=restart)
            return
        warm, self._warm = self._warm, None
        assert self._service is not None  # set with _warm
        self._service.release(warm.km)  # the next notebook need not wait for this one to exit

    async def cleanup_resources(self, restart: bool = False) -> None:
        self._forget()
        if self._warm is not None:  # it died: the service cleans up after it
            warm, self._warm = self._warm, None
            assert self._service is not None  # set with _warm
            self._service.release(warm.km)
        else:
            await super().cleanup_resources(restart=restart)
