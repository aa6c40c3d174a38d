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


FORK_PROBE = (
    "import json, os, sys, numpy; print(json.dumps({'pid': os.getpid(), 'ppid': os.getppid(), "
    "'pgid': os.getpgid(0), 'cwd': os.getcwd(), 'task': os.environ.get('CA_KERNEL_TASK'), "
    "'path': sys.path, 'draw': float(numpy.random.random()), "
    "'imported': 'customer_analytics.fsutil' in sys.modules, "
    "'count': get_ipython().execution_count}))"
)


def _ask(km, code: str) -> dict:
    kc = BlockingKernelClient()
    kc.load_connection_info(km.get_connection_info())
    kc.start_channels()
    try:
        out: list[str] = []
        reply = kc.execute_interactive(
            code, timeout=60, output_hook=lambda m: out.append(m["content"].get("text", ""))
        )
    finally:
        kc.stop_channels()
    assert reply["content"]["status"] == "ok", reply["content"]
    return json.loads("".join(out))


def test_kernels_after_the_first_are_forked_from_one_zygote_and_behave_as_launched_ones(
    tmp_path, monkeypatch
):
    import os

    import psutil

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CA_KERNEL_FORK", raising=False)
    tasks = [(f"0{i}_task", ["customer_analytics.fsutil"]) for i in (1, 2, 3)]
    service = KernelService(tasks, ahead=3)
    try:
        service.prepare()
        warm = {name: service.take(name) for name, _ in tasks}
        seen = {name: _ask(w.km, FORK_PROBE) for name, w in warm.items()}
        zygote = service._zygote
        assert zygote is not None and zygote.process.poll() is None
        launched, *forked = seen.values()
        assert launched["ppid"] == os.getpid()  # the first kernel: no zygote for one notebook
        for s in forked:
            assert s["ppid"] == zygote.process.pid
            # its own process group (interrupts and kills reach it and its children)
            assert s["pgid"] == s["pid"]
            assert "ipykernel" in " ".join(psutil.Process(s["pid"]).cmdline())
        for name, s in seen.items():  # each kernel has its own environment and folder
            assert s["task"] == name and s["cwd"] == str(tmp_path) and s["imported"]
            assert s["path"] == launched["path"] and s["count"] == launched["count"]
        # NumPy's global state is re-seeded in each fork: no two kernels draw the same numbers
        assert len({s["draw"] for s in seen.values()}) == 3

        # a cell is interrupted as in a launched kernel, and the kernel goes on
        km = warm["03_task"].km
        kc = BlockingKernelClient()
        kc.load_connection_info(km.get_connection_info())
        kc.start_channels()
        try:
            msg_id = kc.execute("import time\ntime.sleep(60)")
            time.sleep(1.0)
            t0 = time.monotonic()
            os.killpg(seen["03_task"]["pgid"], signal.SIGINT)  # as kernels.signal_running does
            reply = kc.get_shell_msg(timeout=30)
            assert reply["parent_header"]["msg_id"] == msg_id
            assert reply["content"]["ename"] == "KeyboardInterrupt"
            assert time.monotonic() - t0 < 10
        finally:
            kc.stop_channels()
        assert _ask(km, FORK_PROBE)["pid"] == seen["03_task"]["pid"]

        # a killed kernel is seen dead, with its status, by its manager
        process = warm["02_task"].km.provisioner.process
        process.kill()
        assert process.wait(timeout=30) == -signal.SIGKILL
        for w in warm.values():
            service.release(w.km)
    finally:
        service.close()
    assert zygote.process.returncode == 0
    assert not any(psutil.pid_exists(s["pid"]) for s in seen.values())


def test_the_zygote_and_its_kernels_go_when_the_build_is_killed(tmp_path):
    """A process holding a zygote is killed (SIGKILL): the zygote and the kernels it forked end."""
    import psutil

    script = (
        "import json, sys\n"
        "from customer_analytics import kernelfork\n"
        "from jupyter_client.kernelspec import KernelSpecManager\n"
        "z = kernelfork.Zygote(['customer_analytics.fsutil'])\n"
        "import os\n"
        f"cmd = [sys.executable, '-m', 'ipykernel_launcher', '-f', {str(tmp_path / 'k.json')!r}]\n"
        "p = z.spawn(cmd, dict(os.environ), None)\n"
        "print(json.dumps({'zygote': z.process.pid, 'kernel': p.pid}), flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = json.loads(holder.stdout.readline())
        assert psutil.Process(pids["kernel"]).ppid() == pids["zygote"]
        holder.kill()
        holder.wait()
        deadline = time.monotonic() + 30
        alive = [p for p in pids.values() if psutil.pid_exists(p)]
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [
                p
                for p in alive
                if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
            ]
        assert not alive
    finally:
        holder.kill()


def test_a_command_the_zygote_cannot_launch_is_refused(tmp_path):
    z = kernels.kernelfork.Zygote([])
    try:
        with pytest.raises(kernels.kernelfork.ZygoteError, match="not an ipykernel launch"):
            z.spawn(["/bin/sh", "-c", "true"], {}, None)
        with pytest.raises(kernels.kernelfork.ZygoteError, match="another Python"):
            z.spawn(["/bin/sh", "-m", "ipykernel_launcher"], {}, None)
    finally:
        z.close()
    assert z.process.returncode == 0


def test_a_kernel_is_launched_as_usual_when_the_zygote_dies_in_its_imports(tmp_path, monkeypatch):
    import asyncio
    import os

    (tmp_path / "dies_on_import.py").write_text("import os\nos._exit(3)\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    zygote = kernels.kernelfork.Zygote(["dies_on_import"])

    async def start_and_ask() -> tuple[int, int]:
        km = kernels.kernelfork.ForkingKernelManager(kernel_name="python3")
        km.zygote = zygote
        await km.start_kernel(extra_arguments=list(kernels.KERNEL_ARGUMENTS))
        try:
            return km.provisioner.process.pid, _ask(km, FORK_PROBE)["ppid"]
        finally:
            await km.shutdown_kernel(now=True)

    try:
        pid, ppid = asyncio.run(start_and_ask())
        assert ppid == os.getpid()  # launched by jupyter_client, not forked
        assert zygote.process.wait(timeout=30) == 3
        with pytest.raises(kernels.kernelfork.ZygoteError, match="exited while it started"):
            zygote.spawn([sys.executable, "-m", "ipykernel_launcher"], {}, None)
    finally:
        zygote.close()
