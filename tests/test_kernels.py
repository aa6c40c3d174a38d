"""The kernels a pipeline run starts ahead of their notebook (customer_analytics.kernels)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import nbformat
import papermill as pm
import pytest
from jupyter_client import BlockingKernelClient

from customer_analytics import gcwork, kernels, nbengine
from customer_analytics.kernels import KernelService

pytestmark = pytest.mark.slow

PROBE = (
    "import gc, json, sys; print(json.dumps({'threshold': gc.get_threshold(), "
    "'frozen': gc.get_freeze_count(), 'imported': 'customer_analytics.fsutil' in sys.modules, "
    "'names': [n for n in globals() if not n.startswith('_')]}))"
)


def test_a_warm_kernel_has_its_imports_done_set_aside_from_the_collector_and_no_name_bound():
    service = KernelService([("01_ingest", ["customer_analytics.fsutil"])], ahead=1)
    try:
        service.prepare()
        warm = service.take("01_ingest")
        assert warm is not None
        kc = BlockingKernelClient()
        kc.load_connection_info(warm.km.get_connection_info())
        kc.start_channels()
        try:
            out: list[str] = []
            reply = kc.execute_interactive(
                PROBE,
                timeout=60,
                output_hook=lambda m: out.append(m["content"].get("text", "")),
            )
        finally:
            kc.stop_channels()
        assert reply["content"]["status"] == "ok"
        seen = json.loads("".join(out))
        assert seen["imported"]
        # the warm-up's objects (the imported modules) are out of the collector's reach, and young
        # collections wait for gcwork.THRESHOLDS new objects, not CPython's 700
        assert seen["frozen"] > 10_000
        assert tuple(seen["threshold"]) == gcwork.THRESHOLDS
        # the probe's own imports are the only names in the notebook's namespace
        assert set(seen["names"]) <= {
            "gc",
            "json",
            "sys",
            "In",
            "Out",
            "exit",
            "quit",
            "open",
            "get_ipython",
        }
        service.release(warm.km)
    finally:
        service.close()


@pytest.mark.parametrize("handler", ["SIG_IGN", "default_int_handler"])
def test_catches_sigint_tells_a_process_that_ignores_sigint_from_one_that_handles_it(handler):
    code = (
        f"import signal, time; signal.signal(signal.SIGINT, signal.{handler}); "
        "print('ready', flush=True); time.sleep(30)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        assert kernels.catches_sigint(child.pid) is (handler == "default_int_handler")
    finally:
        child.kill()
        child.wait()


def test_an_interrupted_cell_gets_no_second_sigint_while_it_is_still_running(tmp_path):
    """The build's interrupt calls signal_running every quarter second; a cell that got SIGINT and
    is still at work (as a kernel writing its traceback) must not get another: after the cell, in
    ipykernel's own code, it would swallow the cell's reply and the notebook would wait for ever.
    A kernel between cells gets its SIGINT once its next cell runs."""
    marks = tmp_path / "marks"
    marks.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import pathlib, time\n"
            f"marks = pathlib.Path({str(marks)!r})\n"
            "(marks / 'in').touch()\n"
            "try:\n"
            "    time.sleep(600)\n"
            "except KeyboardInterrupt:\n"
            "    (marks / 'first').touch()\n"
            "    try:\n"
            "        time.sleep(3 * kernels_RESEND_S)\n"
            "    except KeyboardInterrupt:\n"
            "        (marks / 'second').touch()\n".replace(
                "kernels_RESEND_S", repr(kernels.RESEND_S)
            )
        ),
        nbformat.v4.new_code_cell("(marks / 'next').touch(); time.sleep(600)"),
    ]
    nbformat.write(nb, tmp_path / "in.ipynb")
    failure: list[BaseException] = []

    def execute():
        try:
            pm.execute_notebook(
                str(tmp_path / "in.ipynb"),
                str(tmp_path / "out.ipynb"),
                progress_bar=False,
                kernel_manager_class="customer_analytics.kernels.PooledKernelManager",
            )
        except BaseException as e:  # noqa: BLE001 - looked at below
            failure.append(e)

    nbengine.install()  # it tells the kernel manager which cell runs
    thread = threading.Thread(target=execute)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not (marks / "in").exists():
            assert time.monotonic() < deadline, "the first cell never ran"
            time.sleep(0.1)
        while thread.is_alive() and time.monotonic() < deadline:
            kernels.signal_running(signal.SIGINT)
            time.sleep(0.25)
    finally:
        if thread.is_alive():
            kernels.signal_running(signal.SIGKILL)
        thread.join(60)
        kernels.reset()
    assert (marks / "first").exists() and not (marks / "second").exists()
    assert (marks / "next").exists()  # the next cell ran, and was interrupted in its turn
    assert failure and isinstance(failure[0], pm.PapermillExecutionError)
    assert failure[0].ename == "KeyboardInterrupt"
