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
"""

from __future__ import annotations

from typing import Any

import nbformat
from nbclient.exceptions import CellExecutionError
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.log import logger
from papermill.utils import merge_kwargs, remove_args

#: The name it is also registered under (``engine_name=NAME`` selects it explicitly).
NAME = "customer_analytics"


def stopped_output(error: BaseException) -> nbformat.NotebookNode:
    """The error output of a cell whose kernel stopped while it ran."""
    name = type(error).__name__
    why = (
        "the notebook's kernel stopped while this cell ran (the run was interrupted, or the "
        f"kernel was killed or ran out of memory): {error}"
    )  # notebooks and HTML show an error output's traceback: the one line is it
    return nbformat.v4.new_output("error", ename=name, evalue=why, traceback=[f"{name}: {why}"])


class Client(PapermillNotebookClient):
    """Papermill's notebook client; a cell ended by anything but the kernel's own error reply is
    marked failed, with :func:`stopped_output`. It tells a
    :class:`~customer_analytics.kernels.PooledKernelManager` which cell runs (an interrupted
    build sends SIGINT once per cell)."""

    def execute_cell(self, cell: Any, cell_index: int, *args: Any, **kwargs: Any) -> Any:
        if started := getattr(self.km, "cell_started", None):  # kernels.PooledKernelManager
            started(cell_index)
        try:
            return super().execute_cell(cell, cell_index, *args, **kwargs)
        except CellExecutionError:  # the kernel answered: Papermill records it
            raise
        except BaseException as e:
            failed = self.nb.cells[cell_index]
            failed.setdefault("outputs", []).append(stopped_output(e))
            self.nb_man.cell_exception(failed, cell_index=cell_index, exception=e)
            raise


class Engine(NBClientEngine):
    """Papermill's ``nbclient`` engine, executing with :class:`Client`."""

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
