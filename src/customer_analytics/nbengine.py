"""Papermill's nbclient engine, honest about a cell whose kernel stopped under it.

Papermill marks a cell "failed" only when the kernel answers with an error. When the kernel itself
goes away in the middle of a cell (killed by a second Ctrl-C or after the interrupt grace of
:mod:`customer_analytics.executor`, by the out-of-memory killer, or by a crash in native code),
nbclient raises :class:`nbclient.exceptions.DeadKernelError` and Papermill's cell loop marks the
cell it was running "completed" — the saved notebook then reads as if that cell had finished and
the run stopped for no visible reason.

:class:`Engine` is Papermill's ``nbclient`` engine with one change: such a cell is marked "failed"
and gets an error output saying what happened (the exception's type and message, never data), and
the exception goes on as before. :func:`install` makes it Papermill's default engine in this
process; the pipeline's executor and ``customer-analytics score`` call it (Ploomber accepts no
other ``engine_name`` than ``papermill``). Papermill run by hand or JupyterLab are not affected.

It also saves the output notebook less often. Papermill writes the whole notebook (serialised,
validated, written) when it starts, when each cell starts, when each cell ends and at the end:
about fifty writes of a growing notebook per notebook, figures included, ~7 CPU-seconds of a
10k-order build's process (bench/results/fixed_cost.md). :class:`Manager` writes at the start and
the end, after a failed cell, after a cell when the last write is :data:`SAVE_EVERY` seconds old,
and :class:`Client` writes a cell that is still running :data:`SAVE_EVERY` seconds after it
started, so the notebook on disk still shows, within that delay, which cell a run is in.
"""

from __future__ import annotations

import asyncio
from typing import Any

import nbformat
from nbclient.exceptions import CellExecutionError
from nbclient.util import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
from papermill.log import logger
from papermill.utils import merge_kwargs, remove_args

#: The name it is also registered under (``engine_name=NAME`` selects it explicitly).
NAME = "customer_analytics"
#: Seconds: a running cell is written this long after it started, a finished one when the last
#: write is this old (a failed one at once).
SAVE_EVERY = 2.0


def stopped_output(error: BaseException) -> nbformat.NotebookNode:
    """The error output of a cell whose kernel stopped while it ran."""
    name = type(error).__name__
    why = (
        "the notebook's kernel stopped while this cell ran (the run was interrupted, or the "
        f"kernel was killed or ran out of memory): {error}"
    )  # notebooks and HTML show an error output's traceback: the one line is it
    return nbformat.v4.new_output("error", ename=name, evalue=why, traceback=[f"{name}: {why}"])


class Manager(NotebookExecutionManager):
    """Papermill's execution manager, writing the notebook at a cell's start only through
    :class:`Client` (once the cell has run :data:`SAVE_EVERY` seconds) and at its end only when
    it failed or the last write is :data:`SAVE_EVERY` seconds old. The notebook's start and end
    are written as Papermill writes them."""

    _holding = False

    def save(self, **kwargs: Any) -> None:
        if not self._holding:
            super().save(**kwargs)

    def _held(self, step: Any, *args: Any, **kwargs: Any) -> None:
        self._holding = True
        try:
            step(*args, **kwargs)
        finally:
            self._holding = False

    def cell_start(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        self._held(super().cell_start, cell, cell_index, **kwargs)

    def cell_complete(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        self._held(super().cell_complete, cell, cell_index, **kwargs)
        failed = cell.metadata.papermill.get("status") == self.FAILED
        if failed or (self.now() - self.last_save_time).total_seconds() >= SAVE_EVERY:
            self.save()


class Client(PapermillNotebookClient):
    """Papermill's notebook client; a cell ended by anything but the kernel's own error reply is
    marked failed, with :func:`stopped_output`. It tells a
    :class:`~customer_analytics.kernels.PooledKernelManager` which cell runs (an interrupted
    build sends SIGINT once per cell), and writes the notebook once while a cell runs, when it
    has run :data:`SAVE_EVERY` seconds (see :class:`Manager`)."""

    _save_error: BaseException | None = None

    def execute_cell(self, cell: Any, cell_index: int, *args: Any, **kwargs: Any) -> Any:
        if started := getattr(self.km, "cell_started", None):  # kernels.PooledKernelManager
            started(cell_index)
        try:
            done = run_sync(self._execute_cell_saving)(cell, cell_index, *args, **kwargs)
        except CellExecutionError:  # the kernel answered: Papermill records it
            raise
        except BaseException as e:
            failed = self.nb.cells[cell_index]
            failed.setdefault("outputs", []).append(stopped_output(e))
            self.nb_man.cell_exception(failed, cell_index=cell_index, exception=e)
            raise
        if (error := self._save_error) is not None:  # writing it while it ran failed
            self._save_error = None
            raise error
        return done

    async def _execute_cell_saving(self, cell: Any, cell_index: int, *args: Any, **kwargs: Any):
        """nbclient's ``execute_cell`` (``run_sync(async_execute_cell)``), with the write of a
        cell still running after :data:`SAVE_EVERY` seconds scheduled on the same event loop:
        it happens between two of nbclient's steps, never while one changes the notebook."""
        write = asyncio.get_running_loop().call_later(SAVE_EVERY, self._save_running)
        try:
            return await self.async_execute_cell(cell, cell_index, *args, **kwargs)
        finally:
            write.cancel()

    def _save_running(self) -> None:
        try:
            self.nb_man.save()
        except Exception as e:  # noqa: BLE001 - raised after the cell, not lost in the loop's log
            self._save_error = e


class Engine(NBClientEngine):
    """Papermill's ``nbclient`` engine, executing with :class:`Client` and :class:`Manager`."""

    @classmethod
    def execute_notebook(
        cls,
        nb: Any,
        kernel_name: str,
        output_path: Any = None,
        progress_bar: Any = True,
        log_output: bool = False,
        autosave_cell_every: int = 30,
        **kwargs: Any,
    ) -> Any:
        # papermill.engines.Engine.execute_notebook, with Manager for NotebookExecutionManager
        nb_man = Manager(
            nb,
            output_path=output_path,
            progress_bar=progress_bar,
            log_output=log_output,
            autosave_cell_every=autosave_cell_every,
        )
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
        return nb_man.nb

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man: Any,
        kernel_name: str,
        log_output: bool = False,
        stdout_file: Any = None,
        stderr_file: Any = None,
        start_timeout: int = 60,
        execution_timeout: int | None = None,
        **kwargs: Any,
    ) -> Any:
        # the arguments as NBClientEngine.execute_managed_notebook passes them on
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logger,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        return Client(nb_man, **final_kwargs).execute()


def install() -> None:
    """Make :class:`Engine` Papermill's default engine in this process (idempotent)."""
    papermill_engines.register(None, Engine)
    papermill_engines.register(NAME, Engine)
