"""Benchmark harness: the full pipeline at several sizes, beside the references a user could pick
instead.

Usage (from the project folder; `make bench` runs the default sizes)::

    .venv/bin/python bench/run.py [--sizes 10000,100000,1000000] [--out bench/out]

For each size (number of orders, i.e. lines of ``orders.jsonl``; each order holds about two
order lines) it generates seeded demo data, then measures in the same run:

* the pipeline: ``ploomber build --force`` on the embedded warehouse — wall time per notebook,
  and inside each notebook the time of its cells tagged ``bench-warehouse`` (warehouse work)
  and ``bench-model`` (model fitting and scoring on the client), from Papermill's per-cell
  durations; the peak resident memory of each notebook kernel and of the warehouse server
  (sampled with psutil every 0.1 s); then the no-op rebuild (nothing changed), three times (the
  median is reported; the first, right after the build, finds a cold page cache);
* the floor: ``bench/floor.py``, the same work in plain pandas + scikit-learn, one process;
* the limit: ``bench/limit.py``, ingest + features as DuckDB's own readers and SQL, timed per
  stage and checked against the warehouse the pipeline has just built (identical accepted rows
  and features, text-model features aside; any difference stops the benchmark);
* Snowpark's ``local_testing`` mode running the feature stage (``bench/local_testing.py``),
  at the sizes where it finishes within ``--local-testing-timeout`` (default 10 minutes).

The floor, the limit and ``local_testing`` hold all the data in one process (at 989,779 orders
the floor peaked at 5.1 GiB and the limit at 3.0 GiB, growing with the data), so above
``--in-memory-max-orders`` (default 2,000,000) they are not run and the results say so; the
pipeline, whose warehouse server spills to disk, is measured at any size (e.g.
``make bench BENCH_ARGS="--sizes 10000000"``).

Results go to ``<out>/results.json``, then ``bench/RESULTS.md`` and ``bench/scaling.png`` (for the
default sizes; other sizes write them into ``<out>`` unless ``--report-dir`` says otherwise).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from customer_analytics import config, synthetic  # noqa: E402
from customer_analytics.kernelfork import ZYGOTE_MARK  # noqa: E402

log = logging.getLogger("bench")
NOTEBOOKS = ["01_ingest", "02_eda", "03_features", "04_model_comparison", "05_batch_prediction"]
ORDERS_PER_CUSTOMER = (
    4.66  # of the demo generator with its defaults (measured; the real count is recorded)
)
DEFAULT_SIZES = "10000,100000,1000000"
#: above this many orders the in-memory references (floor, limit, local_testing) are not run
IN_MEMORY_MAX_ORDERS = 2_000_000
#: no-op rebuilds timed after the build (the median is reported, see bench_size)
NOOP_RUNS = 3
STAGE_TAGS = {"bench-warehouse": "warehouse_s", "bench-model": "model_s"}
BIN = Path(sys.executable).parent


class PeakMemory:
    """Samples the resident memory of a process tree; keeps the peak per process."""

    def __init__(self, root_pid: int, warehouse: Path | None = None, interval: float = 0.1):
        self.root = psutil.Process(root_pid)
        self.state_file = warehouse / "server.json" if warehouse else None
        self.interval = interval
        self.peaks: dict[int, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self, proc: psutil.Process) -> None:
        try:  # read everything first: a process may end between two reads
            rss, started = proc.memory_info().rss, proc.create_time()
            # re-read each time: a child forked by a kernel carries the kernel's command line until
            # it execs
            cmdline, ppid = " ".join(proc.cmdline()), proc.ppid()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return
        entry = self.peaks.setdefault(proc.pid, {"started": started, "peak_rss": 0})
        entry.update(cmdline=cmdline, ppid=ppid, peak_rss=max(entry["peak_rss"], rss))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                procs = []
            for p in procs:
                self._sample(p)
            if (
                self.state_file is not None
            ):  # the warehouse server outlives the kernel that started it
                try:
                    self._sample(psutil.Process(json.loads(self.state_file.read_text())["pid"]))
                except (OSError, ValueError, KeyError, psutil.NoSuchProcess):
                    pass
            self._stop.wait(self.interval)

    def kernels(self) -> list[dict]:
        """Notebook kernels, in the order they started (= the order the serial executor ran the
        tasks)."""
        kernels = {pid: v for pid, v in self.peaks.items() if "ipykernel" in v["cmdline"]}
        # the zygote kernels are forked from (customer_analytics.kernelfork) names ipykernel too:
        # it is the one whose parent is not a zygote
        forked = {pid for pid, v in kernels.items() if ZYGOTE_MARK in v["cmdline"]}
        zygotes = {pid for pid in forked if kernels[pid]["ppid"] not in forked}
        # a kernel's own children (forked before exec, joblib workers) are not kernels
        return sorted(
            (
                v
                for pid, v in kernels.items()
                if pid not in zygotes and (v["ppid"] not in kernels or v["ppid"] in zygotes)
            ),
            key=lambda v: v["started"],
        )

    def server_peak(self) -> int:
        return max(
            (v["peak_rss"] for v in self.peaks.values() if "warehouse_server" in v["cmdline"]),
            default=0,
        )


def timed_run(
    cmd: list[str],
    env: dict,
    cwd: Path,
    timeout: float | None = None,
    warehouse: Path | None = None,
) -> dict:
    """Run ``cmd``; return wall seconds, return code, output tail and per-process memory peaks."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    with PeakMemory(proc.pid, warehouse) as mem:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            return {"seconds": None, "returncode": "timeout", "output": out[-3000:], "memory": mem}
    return {
        "seconds": time.perf_counter() - started,
        "returncode": proc.returncode,
        "output": out[-6000:],
        "memory": mem,
    }


def build_env() -> dict:
    return {
        **os.environ,
        "PLOOMBER_STATS_ENABLED": "false",
        "PLOOMBER_VERSION_CHECK_DISABLED": "1",
        "CUSTOMER_ANALYTICS_ROOT": str(ROOT),
    }


def ploomber(work: Path, *extra: str) -> list[str]:
    return [
        str(BIN / "ploomber"),
        "build",
        "--entry-point",
        "pipeline.yaml",
        "--env--data_dir",
        str(work / "raw"),
        "--env--warehouse_dir",
        str(work / "warehouse"),
        "--env--reports_dir",
        str(work / "reports"),
        *extra,
    ]


def task_seconds(output: str) -> dict[str, float]:
    """Per-task elapsed seconds from Ploomber's build summary."""
    out = {}
    for line in output.splitlines():
        parts = line.split()
        if parts[:1] and parts[0] in NOTEBOOKS and len(parts) >= 3:
            out[parts[0]] = float(parts[2])
    return out


def stage_split(report_dir: Path) -> dict[str, dict[str, float]]:
    """Seconds of the cells tagged bench-warehouse / bench-model in each executed notebook."""
    out = {}
    for name in NOTEBOOKS:
        nb = nbformat.read(report_dir / f"{name}.ipynb", as_version=4)
        split = dict.fromkeys(STAGE_TAGS.values(), 0.0)
        for cell in nb.cells:
            duration = cell.metadata.get("papermill", {}).get("duration") or 0.0
            for tag in cell.metadata.get("tags", []):
                if tag in STAGE_TAGS:
                    split[STAGE_TAGS[tag]] += duration
        out[name] = split
    return out


def chosen_model(report_dir: Path) -> dict:
    """The chosen model and its gain over the best baseline, from 04's headline record."""
    try:
        head = json.loads((report_dir / "headlines" / "04_model_comparison.json").read_text())
    except (OSError, ValueError):
        return {}
    # the headline names the chosen candidate ``candidate`` (``model`` before the typed records)
    return {
        "model": head.get("candidate", head.get("model")),
        "baseline": head.get("baseline"),
        "improvement": head.get("improvement"),
    }


def report_folder(reports_dir: Path) -> Path:
    """The run's report folder: ``<run_date>/``, or ``experiments/<name>/<run_date>/`` (a data_dir
    other
    than env.yaml's makes the benchmark's run an experiment)."""
    day = str(config.load(ROOT).run_date)
    found = sorted(reports_dir.glob(f"**/{day}/01_ingest.ipynb"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise RuntimeError(f"no executed 01_ingest.ipynb for {day} under {reports_dir}")
    return found[-1].parent


def stop_server(warehouse: Path) -> None:
    from customer_analytics import warehouse as wh

    wh.stop_local_server(warehouse)


def bench_size(
    n_orders: int,
    out: Path,
    lt_timeout: float,
    run_local_testing: bool,
    in_memory_max: int = IN_MEMORY_MAX_ORDERS,
) -> dict:
    work = out / f"orders_{n_orders}"
    customers = max(50, round(n_orders / ORDERS_PER_CUSTOMER))
    result: dict = {
        "target_orders": n_orders,
        "customers": customers,
        "commit": machine()["commit"],
    }
    if not (work / "raw" / "orders.jsonl").is_file():
        log.info("[%s] generating demo data for %s customers", n_orders, customers)
        t = time.perf_counter()
        synthetic.write(synthetic.generate(customers, seed=42), work / "raw")
        result["generate_s"] = time.perf_counter() - t
    with (work / "raw" / "orders.jsonl").open("rb") as f:
        result["orders"] = sum(1 for _ in f)
    log.info("[%s] %s orders; running the pipeline", n_orders, result["orders"])
    stop_server(work / "warehouse")
    env = build_env()
    run = timed_run(ploomber(work, "--force"), env, ROOT, warehouse=work / "warehouse")
    if run["returncode"] != 0:
        raise RuntimeError(f"pipeline failed at {n_orders} orders:\n{run['output']}")
    kernels = run["memory"].kernels()
    result["pipeline_s"] = run["seconds"]
    result["tasks_s"] = task_seconds(run["output"])
    result["kernel_peak_rss_mb"] = {
        name: k["peak_rss"] / 2**20 for name, k in zip(NOTEBOOKS, kernels, strict=False)
    }
    reports = report_folder(work / "reports")
    result["stage_split_s"] = stage_split(reports)
    result["server_peak_rss_mb"] = run["memory"].server_peak() / 2**20
    result["pipeline_model"] = chosen_model(reports)
    log.info("[%s] pipeline %.1f s; no-op rebuild x%d", n_orders, run["seconds"], NOOP_RUNS)
    noops = []
    for _ in range(NOOP_RUNS):
        noop = timed_run(ploomber(work), env, ROOT)
        if noop["returncode"] != 0:
            raise RuntimeError(f"no-op rebuild failed at {n_orders} orders:\n{noop['output']}")
        noops.append(noop["seconds"])
        result["noop_ran"] = sorted(
            set(result.get("noop_ran", []))
            | {name for name, s in task_seconds(noop["output"]).items() if s > 0}
        )  # should be []
    # the first right after the build finds a cold page cache (the build's data pushed the
    # libraries out); a data scientist's re-runs are the later ones: the median is the figure
    result["noop_rebuild_runs_s"] = noops
    result["noop_rebuild_s"] = statistics.median(noops)
    stop_server(work / "warehouse")

    if result["orders"] > in_memory_max:
        reason = (
            f"not run above {in_memory_max:,} orders (--in-memory-max-orders): it holds all the "
            "data in one process, and its memory grows with it"
        )
        result["skipped"] = {"floor": reason, "limit": reason, "local_testing": reason}
        log.info("[%s] floor, limit and local_testing %s", n_orders, reason)
        return result

    log.info("[%s] floor script", n_orders)
    floor = bench_script("floor", work, env, f"floor script failed at {n_orders} orders")
    result["floor_s"] = floor["seconds"]
    result["floor_peak_rss_mb"] = floor["peak_rss_mb"]
    try:
        result["floor_detail"] = json.loads((work / "floor" / "timings.json").read_text())
    except OSError:
        pass

    bench_limit(work, env, result)

    if run_local_testing:
        log.info("[%s] Snowpark local_testing feature stage (timeout %.0f s)", n_orders, lt_timeout)
        lt = timed_run(
            [sys.executable, str(ROOT / "bench" / "local_testing.py"), str(work / "raw")],
            env,
            ROOT,
            timeout=lt_timeout,
        )
        result["local_testing_s"] = lt["seconds"] if lt["returncode"] == 0 else None
        result["local_testing_status"] = "ok" if lt["returncode"] == 0 else str(lt["returncode"])
        if lt["returncode"] not in (0, "timeout"):
            result["local_testing_error"] = lt["output"][-800:]
        try:
            result["local_testing_detail"] = json.loads(lt["output"].strip().splitlines()[-1])
        except (ValueError, IndexError):
            pass
    return result


def bench_script(name: str, work: Path, env: dict, failure: str, *extra: str) -> dict:
    """Run ``bench/<name>.py`` on ``work/raw`` (its output in ``work/<name>``); return
    :func:`timed_run`'s record plus ``peak_rss_mb``, its largest process. Raises ``failure`` with
    the script's output when it fails."""
    run = timed_run(
        [
            sys.executable,
            str(ROOT / "bench" / f"{name}.py"),
            str(work / "raw"),
            "--out",
            str(work / name),
            *extra,
        ],
        env,
        ROOT,
    )
    if run["returncode"] != 0:
        raise RuntimeError(f"{failure}:\n{run['output']}")
    run["peak_rss_mb"] = max(v["peak_rss"] for v in run["memory"].peaks.values()) / 2**20
    return run


def warehouse_file(warehouse: Path) -> Path:
    """The local warehouse's DuckDB file (``<database>.db``; ANALYTICS unless env.yaml says)."""
    found = sorted(warehouse.glob("*.db"))
    if len(found) != 1:
        raise RuntimeError(f"expected one warehouse .db file in {warehouse}, found {found}")
    return found[0]


def bench_limit(work: Path, env: dict, result: dict) -> None:
    """``bench/limit.py`` on the same files, checked against the pipeline's warehouse tables.

    Records its ingest and features seconds (timed inside the script, the check excluded) and
    peak memory; a difference in accepted rows or features stops the benchmark.
    """
    n = result["target_orders"]
    log.info("[%s] limit script (DuckDB readers + SQL), checked against the warehouse", n)
    limit = bench_script(
        "limit",
        work,
        env,
        f"limit script failed or differs from the pipeline at {n} orders",
        "--check",
        str(warehouse_file(work / "warehouse")),
    )
    detail = json.loads((work / "limit" / "timings.json").read_text())
    result["limit_s"] = detail["total_s"]  # ingest + features, without start-up and check
    result["limit_detail"] = {k: v for k, v in detail.items() if k != "check"}
    result["limit_check"] = {
        "differences": detail["check"]["differences"],
        "not_compared": detail["check"]["not_compared"],
        "rows": {t: v["LIMIT_ROWS"] for t, v in detail["check"]["tables"].items()},
    }
    result["limit_peak_rss_mb"] = limit["peak_rss_mb"]


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        "commit": commit.strip() + ("-dirty" if dirty else ""),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="numbers of orders, comma-separated")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--local-testing-timeout", type=float, default=600)
    ap.add_argument("--no-local-testing", action="store_true")
    ap.add_argument(
        "--in-memory-max-orders",
        type=int,
        default=IN_MEMORY_MAX_ORDERS,
        help="above this many orders the floor, the limit and local_testing are not run "
        f"(default {IN_MEMORY_MAX_ORDERS:,}: they hold all the data in one process)",
    )
    ap.add_argument(
        "--report-dir",
        type=Path,
        default=None,
        help="where RESULTS.md and scaling.png go (default: bench/ for the default sizes, else "
        "--out, so a quick run does not overwrite the committed results)",
    )
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sizes = [int(s) for s in a.sizes.split(",")]
    a.out.mkdir(parents=True, exist_ok=True)
    results = {
        "machine": machine(),
        "sizes": [],
        "local_testing_timeout_s": a.local_testing_timeout,
        "local_testing": not a.no_local_testing,
    }
    local_testing = not a.no_local_testing
    for n in sizes:
        r = bench_size(n, a.out, a.local_testing_timeout, local_testing, a.in_memory_max_orders)
        results["sizes"].append(r)
        if local_testing and r.get("local_testing_s") is None:
            local_testing = False  # a larger size would not finish either
        (a.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    from report import write_report  # bench/report.py

    report_dir = a.report_dir or (ROOT / "bench" if a.sizes == DEFAULT_SIZES else a.out)
    write_report(results, report_dir)
    log.info("wrote %s and %s", report_dir / "RESULTS.md", report_dir / "scaling.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
