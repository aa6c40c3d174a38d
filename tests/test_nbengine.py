"""A cell whose kernel stops under it is saved as failed (customer_analytics.nbengine).

Found by CI: a Ctrl-C test's notebook, whose kernel had to be killed after the interrupt grace,
was saved with the cell it stopped in marked "completed" (Papermill's cell loop marks every cell
that did not end with the kernel's own error reply as completed).
"""

from __future__ import annotations

import nbformat
import papermill as pm
import pytest
from nbclient.exceptions import DeadKernelError

from customer_analytics import nbengine
from customer_analytics.report_html import ReportExporter

pytestmark = pytest.mark.slow


def _notebook(path, middle: str):
    nb = nbformat.v4.new_notebook()
    spec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["kernelspec"] = spec
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell(middle),
        nbformat.v4.new_code_cell("y = 2"),
    ]
    nbformat.write(nb, path)


def _statuses(path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [c.metadata["papermill"]["status"] for c in nb.cells if c.cell_type == "code"]


def test_a_cell_whose_kernel_is_killed_is_saved_failed_with_the_reason(tmp_path):
    nbengine.install()
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    _notebook(src, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    with pytest.raises(DeadKernelError):  # the run still fails, as before
        pm.execute_notebook(str(src), str(out), progress_bar=False, kernel_name="python3")
    assert _statuses(out) == ["completed", "failed", "pending"]
    killed = [c for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"][1]
    errors = [o for o in killed.outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["DeadKernelError"]
    assert "kernel stopped while this cell ran" in errors[0].evalue
    assert nbformat.read(out, as_version=4).metadata["papermill"]["exception"] is True
    body, _ = ReportExporter().from_filename(str(out))  # the report says so too
    assert "kernel stopped while this cell ran" in body


def test_an_error_the_kernel_reports_is_recorded_by_papermill_alone(tmp_path):
    nbengine.install()
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    _notebook(src, "raise ValueError('bad input')")
    with pytest.raises(pm.PapermillExecutionError):
        pm.execute_notebook(str(src), str(out), progress_bar=False, kernel_name="python3")
    assert _statuses(out)[-3:] == ["completed", "failed", "pending"]  # after Papermill's banner
    cells = [c for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"]
    errors = [o.ename for o in cells[-2].outputs if o.output_type == "error"]
    assert errors == ["ValueError"]  # the kernel's own error, nothing added
