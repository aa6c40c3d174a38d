"""The pipeline's Ploomber executor: independent notebooks at the same time, kernels started ahead.

Ploomber's ``Serial`` executor builds one notebook after the other; its ``Parallel`` one forks a
process per task and polls them in a loop without pausing (a busy wait that takes one of two
cores). This executor builds every task whose upstream tasks are done, at most ``workers`` at
once, each in a thread of this process (a task's work happens in its notebook's kernel: the thread
only waits for it), and sleeps until one finishes. With the pipeline's DAG that means ``02_eda``
(a report only) runs beside ``03_features`` -> ``04`` -> ``05``.

While it builds it holds the warehouse's run lock (:func:`pipeline.acquire_run`), and a
:class:`kernels.KernelService` starts each notebook's kernel ahead of time with its imports done
and shuts finished kernels down in the background; the build returns only once every kernel
has exited. With the embedded warehouse (``connection: local``) it also starts the warehouse
server in the background while the first kernel starts (:func:`start_warehouse`), so the first
notebook connects to a running server instead of starting one. Task statuses, task hooks (the HTML
export), the DAG hooks and the collected error message are Ploomber's own, as with ``Serial``;
notebooks are executed with :class:`nbengine.Engine` (a cell whose kernel was killed is saved as
failed).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from ploomber.constants import TaskStatus
from ploomber.exceptions import DAGBuildEarlyStop, DAGBuildError
from ploomber.executors import _format
from ploomber.executors.abc import Executor
from ploomber.messagecollector import BuildExceptionsCollector

from customer_analytics import gcwork, kernels

log = logging.getLogger(__name__)

#: Notebooks built at the same time at most.
WORKERS = 2
#: Seconds interrupted notebooks get to stop before their kernels are killed.
INTERRUPT_GRACE_S = 20.0
_READY = (TaskStatus.WaitingExecution, TaskStatus.WaitingDownload)


class ConcurrentExecutor(Executor):
    """Builds ready tasks concurrently (threads), under the run lock, with kernels started ahead.

    Args:
        lock_dir: the warehouse folder whose run lock is held while building.
        root: the project folder (to find the library modules each notebook imports).
        workers: tasks built at the same time at most.
        ahead: kernels started ahead of their notebook (0: none, every notebook starts its own).
    """

    def __init__(self, lock_dir: Path, root: Path, workers: int = WORKERS, ahead: int = 2):
        self.lock_dir, self.root = lock_dir, root
        self.workers = max(1, min(workers, os.cpu_count() or 1))
        self.ahead = ahead

    def __repr__(self) -> str:
        return f"ConcurrentExecutor(workers={self.workers}, ahead={self.ahead})"

    def __call__(self, dag, show_progress) -> list:
        super().__call__(dag)
        from customer_analytics.pipeline import acquire_run

        with acquire_run(self.lock_dir), gcwork.fewer_collections():
            kernels.reset()
            return self._build(dag)

    def _service(self, tasks: list) -> kernels.KernelService | None:
        from customer_analytics.pipeline import EXPORT_ONLY, library_modules

        notebooks = [t for t in tasks if type(t).__name__ == "NotebookRunner"]
        if not self.ahead or not notebooks:
            return None
        plan = []
        for t in notebooks:
            files = [f for f in library_modules(t.name, self.root) if f not in EXPORT_ONLY]
            modules = kernels.module_names(files)
            plan.append((t.name, ["IPython.display", *modules]))
        return kernels.KernelService(plan, ahead=self.ahead)

    def _build(self, dag) -> list:
        tasks = [dag[name] for name in dag]  # topological order
        todo = [t for t in tasks if t.exec_status != TaskStatus.Skipped]
        errors = BuildExceptionsCollector()
        messages: list[str] = []
        reports: list = []
        started: set[str] = set()
        if todo:  # a cell whose kernel stops under it is saved as failed, not completed
            from customer_analytics import nbengine

            nbengine.install()
        service = self._service(todo)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("ignore", DeprecationWarning)
                if service is not None:
                    service.prepare(ahead=1)  # the others once it is ready
                start_warehouse(self.lock_dir, todo)
                with cf.ThreadPoolExecutor(self.workers, thread_name_prefix="task") as pool:
                    running: dict[cf.Future, Any] = {}
                    try:
                        self._loop(todo, started, running, pool, service, reports, errors)
                    except KeyboardInterrupt:
                        _interrupt(running)
                        raise
            messages = list(dict.fromkeys(str(w.message) for w in caught))
        finally:
            if service is not None:
                service.close()
        if messages:  # as Serial does: the warnings of the build, shown once at its end
            warnings.warn("\n".join(messages), stacklevel=2)
        if errors:
            if any(isinstance(m.obj, DAGBuildEarlyStop) for m in errors):
                raise DAGBuildEarlyStop(
                    f"Early stopping DAG execution, at least one of the tasks that failed "
                    f"raised a DAGBuildEarlyStop exception:\n{errors}"
                )
            raise DAGBuildError(str(errors))
        return reports

    def _loop(
        self,
        todo: list,
        started: set[str],
        running: dict,
        pool: cf.ThreadPoolExecutor,
        service: kernels.KernelService | None,
        reports: list,
        errors: BuildExceptionsCollector,
    ) -> None:
        """Submit every ready task (at most :attr:`workers` at once) and collect results until
        done."""
        while True:
            for t in todo:
                if t.name not in started and t.exec_status not in (
                    *_READY,
                    TaskStatus.WaitingUpstream,
                ):
                    started.add(t.name)  # aborted: an upstream task failed
                    if service is not None:
                        service.skip(t.name)
            ready = [t for t in todo if t.name not in started and t.exec_status in _READY]
            for t in ready[: self.workers - len(running)]:
                started.add(t.name)
                running[pool.submit(_build_task, t, service)] = t
            if not running:
                return
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)  # sleeps: no busy wait
            for future in done:
                task = running.pop(future)
                try:
                    reports.append(future.result())
                except Exception as e:  # noqa: BLE001 - collected, raised below as Ploomber does
                    log.exception("%s", e)
                    errors.append(task=task, message=_format.exception(e), obj=e)


def _interrupt(running: dict) -> None:
    """Ctrl-C: the notebooks being built stop in their current cell, as they would under ``Serial``.

    Their kernels get SIGINT (the cell raises ``KeyboardInterrupt``; Papermill saves the partial
    notebook; a kernel between two cells gets it in its next, see :func:`kernels.signal_running`);
    a kernel still busy after :data:`INTERRUPT_GRACE_S`, or a second Ctrl-C, gets SIGKILL (its cell
    is saved as failed, :mod:`customer_analytics.nbengine`).
    The caller re-raises ``KeyboardInterrupt`` once the threads have ended.
    """
    log.warning("interrupted: stopping the %d notebook(s) being built", len(running))
    left = set(running)
    deadline = time.monotonic() + INTERRUPT_GRACE_S
    try:
        while left and time.monotonic() < deadline:
            # a kernel that started meanwhile gets it too; one between two cells (it would ignore
            # SIGINT) gets it in its next cell, see kernels.signal_running
            kernels.signal_running(signal.SIGINT)
            _, left = cf.wait(left, timeout=0.25)
    except KeyboardInterrupt:  # pressed again: no more waiting
        pass
    if left:
        kernels.signal_running(signal.SIGKILL)
        cf.wait(left)


def _build_task(task, service: kernels.KernelService | None):
    """Build one task in this thread (its notebook gets the kernel the service prepared)."""
    kernels.active(service, task.name)
    try:
        report, _ = task._build(catch_exceptions=True)  # noqa: SLF001 - what Ploomber's executors call
        return report
    finally:
        kernels.active(None, None)


#: Serialises the HTML exports of notebooks that finish at the same time (nbconvert's templates).
EXPORT_LOCK = threading.Lock()


def start_warehouse(warehouse_dir: Path, tasks: list) -> threading.Thread | None:
    """Start the embedded warehouse server for ``warehouse_dir`` in a background thread, if the
    first notebook of ``tasks`` runs on it (``connection: local``) and it is not running yet.

    The first notebook would otherwise start it in its set-up cell, after its kernel has started:
    here both start at the same time. Any failure is left to that notebook, whose set-up cell
    starts (or reports) the server as it always did.
    """
    from customer_analytics import config
    from customer_analytics import parameters as P

    first = next((t for t in tasks if type(t).__name__ == "NotebookRunner"), None)
    if first is None:
        return None
    try:
        values = first.params.to_dict()
        if P.get("connection").check("connection", values.get("connection")) != "local":
            return None
        database = P.get("database").check("database", values.get("database"))
        schema = P.get("schema").check("schema", values.get("schema"))
    except (P.ConfigError, KeyError):  # the notebook reports its parameters itself
        return None

    def start() -> None:
        from customer_analytics import warehouse_process

        try:
            warehouse_process.local_server(
                warehouse_dir, database or config.LOCAL_DATABASE, schema or config.LOCAL_SCHEMA
            )
        except Exception as e:  # noqa: BLE001 - the first notebook starts or reports it
            log.debug("the warehouse server was not started ahead: %s", e)

    thread = threading.Thread(target=start, name="warehouse-ahead", daemon=True)
    thread.start()
    return thread
