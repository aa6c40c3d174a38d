"""One run at a time, held by the process that does the work; a full reports disk is reported, not
crashed on.

Issue 15, items 9 and 21: killing only the `customer-analytics` process used to free the lock while
Ploomber and a notebook kernel ran on, and `run --force` beside a plain `ploomber build --force`
made both fail half-way; a full disk under reports_dir ended in a traceback, a run.json stuck at
"running" and a temporary file left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import project_env, scratch_project
from customer_analytics import config, pipeline, synthetic
from customer_analytics import warehouse as wh

pytestmark = pytest.mark.slow
QUICK = "last_period,mean"


def start(project: Path, *args: str, tool: str = "customer-analytics") -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).with_name(tool)), *args],
        cwd=project,
        env=project_env(project),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(predicate, timeout: float = 300, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def kernels_of(pid: int) -> list[int]:
    """Notebook kernels started by process ``pid`` (its children running ipykernel)."""
    import psutil

    try:
        return [
            c.pid
            for c in psutil.Process(pid).children(recursive=True)
            if "ipykernel" in " ".join(c.cmdline())
        ]
    except psutil.NoSuchProcess:
        return []


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("locks")
    project = scratch_project(
        root,
        data_dir=str(root / "raw"),
        warehouse_dir=str(root / "warehouse"),
        reports_dir=str(root / "reports"),
        models=QUICK,
    )
    synthetic.write(synthetic.generate(600, seed=29), root / "raw")
    yield project
    wh.stop_local_server(root / "warehouse")


def test_a_run_waits_for_the_kernels_of_a_killed_run_and_never_runs_beside_them(project):
    first = start(project, "run", "--force")
    wait_for(lambda: kernels_of(first.pid), what="the first run's notebook kernel")
    orphans = kernels_of(first.pid)
    os.kill(first.pid, signal.SIGKILL)  # the command only: its kernel is still at work
    first.wait()
    second = start(project, "run", "--force")
    out, err = second.communicate(timeout=900)
    assert second.returncode == 0, err[-3000:]
    import psutil

    assert not any(
        psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in orphans
    )
    status = json.loads((config.load(project).reports_dir / "2026-11-01" / "run.json").read_text())
    assert status["status"] == "succeeded" and status["pid"] == second.pid


def test_the_lock_waits_for_a_kernel_that_still_works(tmp_path):
    """A process holding the work lock (a kernel of a run whose command was killed) delays the next
    run."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import time; from pathlib import Path; from customer_analytics import fsutil, "
                f"runs\nfsutil.hold_lock(Path({str(tmp_path)!r}) / runs.WORK_LOCK, "
                "shared=True)\nprint('held', flush=True); time.sleep(4)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    with pipeline.acquire_run(tmp_path):
        waited = time.monotonic() - started
    assert waited > 3  # it only got the lock once the "kernel" (4 s of work) had let it go
    assert holder.wait(timeout=30) == 0


def test_run_beside_a_plain_ploomber_build_is_refused_and_the_build_completes(project):
    build = start(project, "build", "--force", tool="ploomber")
    lock = config.load(project).warehouse_dir / pipeline.RUN_LOCK
    wait_for(lambda: kernels_of(build.pid), what="ploomber's first notebook kernel")
    assert "pid" in lock.read_text()
    other = subprocess.run(
        [str(Path(sys.executable).with_name("customer-analytics")), "run", "--force"],
        cwd=project,
        env=project_env(project),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert other.returncode == 3 and "Another run is in progress on this warehouse" in other.stderr
    out, err = build.communicate(timeout=900)
    assert build.returncode == 0, err[-3000:]


def test_ctrl_c_stops_the_notebooks_being_built_at_once_and_frees_the_warehouse(project):
    """Issue 19: 02_eda and 03_features run at the same time, in threads; Ctrl-C (SIGINT to Ploomber
    alone, as a terminal sends it: kernels run in sessions of their own) must stop both notebooks
    where they are, not wait for them to finish, and leave no kernel behind.

    Both notebooks get a long cell right after their parameters, so that the interrupt reaches them
    in a cell however fast the machine is (on a fast one, 02 used to finish before 03 had begun).
    03's long cell ignores SIGINT, as a cell stuck in native code does: its kernel is killed after
    the executor's grace, and the cell must still be saved as failed, with the reason (CI once saw
    such a cell saved as "completed": Papermill's cell loop marks so every cell that did not end
    with the kernel's own error).
    """
    import nbformat
    import psutil

    folder = config.load(project).reports_dir / "2026-11-01"
    originals = {}
    deaf = project / "deaf.marker"  # 03's cell ignores SIGINT from now on
    deaf.unlink(missing_ok=True)
    long = {
        "02_eda": "import time; time.sleep(600)  # long",
        "03_features": "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        f"open({str(deaf)!r}, 'w').close(); time.sleep(600)  # long, deaf to Ctrl-C",
    }
    for name, code in long.items():
        path = project / "notebooks" / f"{name}.ipynb"
        originals[path] = path.read_bytes()
        nb = nbformat.read(path, as_version=4)
        at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        nb.cells.insert(at + 1, nbformat.v4.new_code_cell(code))
        nbformat.write(nb, path)

    def in_long_cell(name: str) -> bool:  # this build's notebook is in the long cell (Papermill
        path = folder / f"{name}.ipynb"  # saves the notebook as each cell starts)
        try:
            return path.stat().st_mtime > started and any(
                "time.sleep(600)" in "".join(c["source"])
                and c["metadata"]["papermill"]["status"] == "running"
                for c in json.loads(path.read_text())["cells"]
            )
        except (OSError, ValueError, KeyError):  # not there yet, or being written
            return False

    try:
        started = time.time()
        build = start(project, "build", "--force", tool="ploomber")
        wait_for(
            lambda: in_long_cell("02_eda") and in_long_cell("03_features") and deaf.is_file(),
            what="02 and 03 working together",
        )
        kernels = kernels_of(build.pid)
        assert len(kernels) >= 2
        interrupted = time.monotonic()
        os.kill(build.pid, signal.SIGINT)
        build.communicate(timeout=120)
        assert build.returncode != 0
        assert time.monotonic() - interrupted < 60
    finally:
        for path, content in originals.items():
            path.write_bytes(content)
    for name in ("02_eda", "03_features"):  # stopped in the cell: later cells never run, no report
        cells = [
            c
            for c in json.loads((folder / f"{name}.ipynb").read_text())["cells"]
            if c["cell_type"] == "code"
        ]
        status = [c["metadata"]["papermill"]["status"] for c in cells]
        stopped = next(i for i, c in enumerate(cells) if "time.sleep(600)" in "".join(c["source"]))
        assert status[stopped] == "failed", (name, status)
        assert set(status[stopped + 1 :]) == {"pending"}, (name, status)
        errors = [o["ename"] for o in cells[stopped]["outputs"] if o["output_type"] == "error"]
        assert errors == ["KeyboardInterrupt" if name == "02_eda" else "DeadKernelError"], name
        html = folder / f"{name}.html"
        assert not html.is_file() or html.stat().st_mtime < started, name
    wait_for(
        lambda: (
            not any(
                psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                for p in kernels
            )
        ),
        timeout=30,
        what="the kernels to exit",
    )
    with pipeline.acquire_run(
        config.load(project).warehouse_dir
    ):  # free at once: no kernel holds the work lock
        pass
    assert not (folder / "04_model_comparison.ipynb").is_file() or (
        (folder / "04_model_comparison.ipynb").stat().st_mtime < started
    )


@pytest.fixture
def full_disk(tmp_path):
    """A tiny filesystem, filled up: what reports_dir looks like on a full disk."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here ({done.stderr.decode().strip()})")
    try:
        (mount / "reports").mkdir()
        with open(mount / "filler", "wb") as f:
            try:
                f.write(b"\0" * 200_000)
            except OSError:
                pass
        yield mount / "reports"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_reports_disk_fails_cleanly(project, full_disk):
    env = {**project_env(project)}
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("customer-analytics")),
            "run",
            "--set",
            f"reports_dir={full_disk}",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "No space left on device" in out.stderr
    leftovers = [p.name for p in full_disk.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    statuses = [json.loads(p.read_text())["status"] for p in full_disk.rglob("run.json")]
    assert "running" not in statuses
