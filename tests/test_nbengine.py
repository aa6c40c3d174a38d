"""A cell whose kernel stops under it is saved as failed (customer_analytics.nbengine).

Found by CI: a Ctrl-C test's notebook, whose kernel had to be killed after the interrupt grace,
was saved with the cell it stopped in marked "completed" (Papermill's cell loop marks every cell
that did not end with the kernel's own error reply as completed).
"""

from __future__ import annotations

import sys
import threading
import time

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


def _write_opens(path):
    """A list that fills with one entry each time this process opens ``path`` for writing (a
    Python audit hook: the real ``open`` calls, counted; inert once the test has its figure)."""
    opened: list[str] = []
    target = str(path)

    def hook(event, args):
        if event == "open" and opened is not None and str(args[0]) == target and args[1]:
            if any(m in str(args[1]) for m in "wax+"):
                opened.append(str(args[1]))

    sys.addaudithook(hook)
    return opened


def test_a_notebook_of_quick_cells_is_written_at_its_start_and_end(tmp_path):
    """Papermill's engine writes the notebook when each cell starts and ends (63 writes for 30
    cells, with its start and end and Papermill's last write); here quick cells are written with
    the notebook's end, and the result is the same."""
    nbengine.install()
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(f"x{i} = {i}\nx{i}") for i in range(30)]
    nbformat.write(nb, src)
    opens = _write_opens(out)
    started = time.monotonic()
    pm.execute_notebook(str(src), str(out), progress_bar=False, kernel_name="python3")
    seconds = time.monotonic() - started
    writes = len(opens)
    assert writes <= 3 + seconds / nbengine.SAVE_EVERY, (writes, seconds)  # + papermill's own
    assert writes < 30
    assert _statuses(out) == ["completed"] * 30
    cells = nbformat.read(out, as_version=4).cells
    assert [c.outputs[0]["data"]["text/plain"] for c in cells] == [str(i) for i in range(30)]
    assert all(c.metadata["papermill"]["duration"] is not None for c in cells)


def test_a_long_cell_shows_as_running_while_it_runs(tmp_path):
    """The notebook on disk says which cell a run is in, SAVE_EVERY seconds after it started."""
    nbengine.install()
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    marker = tmp_path / "release"
    _notebook(
        src,
        "import pathlib, time\n"
        f"while not pathlib.Path({str(marker)!r}).exists():\n    time.sleep(0.05)",
    )
    failure: list[BaseException] = []

    def run():
        try:
            pm.execute_notebook(str(src), str(out), progress_bar=False, kernel_name="python3")
        except BaseException as e:  # noqa: BLE001 - reported by the test
            failure.append(e)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if _statuses(out) == ["completed", "running", "pending"]:
                    break
            except (OSError, ValueError, KeyError, AttributeError):  # not there yet
                pass
            time.sleep(0.1)
        else:
            pytest.fail(f"the running cell never showed in {out}")
    finally:
        marker.touch()
        worker.join(timeout=120)
    assert not worker.is_alive() and not failure
    assert _statuses(out) == ["completed", "completed", "completed"]
