"""Where the fixed cost of a pipeline run goes: the parts of a run that do not grow with the data.

Usage (from the project folder; ``--project`` may name another checkout, e.g. an older commit)::

    .venv/bin/python bench/fixed_cost.py DATA_DIR [--project .] [--out bench/out/fixed_cost.json]

Measures, on the given data (a small size shows the fixed cost best):

* ``imports``: per notebook, a fresh interpreter importing the library modules the notebook uses
  (Snowpark, pandas, scikit-learn, matplotlib, nbconvert come with them);
* ``kernel``: starting an empty Jupyter kernel until it answers, and shutting it down;
* ``session``: ``warehouse.connect`` with the warehouse server stopped (starts it) and again with it
  running (the connection alone);
* ``pipeline``: ``ploomber build --force`` once, and from the executed notebooks and the files'
  times its timeline: start-up before the first notebook runs, per notebook the wait for its
  kernel, the set-up cell, the other cells, the wait for the kernel to exit and the HTML export;
  and the end (hooks, index) after the last export;
* ``noop``: ``ploomber build`` again with nothing changed, and ``customer-analytics run`` twice
  with the same parameters (the second one is the no-op rebuild a user sees).

Prints a table and writes the figures as JSON. Wall seconds on a shared machine are noisy: the
machine's load average is recorded with them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

NOTEBOOKS = ["01_ingest", "02_eda", "03_features", "04_model_comparison", "05_batch_prediction"]
HERE = Path(__file__).resolve().parents[1]


def _python(project: Path) -> tuple[str, dict]:
    env = {
        **os.environ,
        "PYTHONPATH": str(project / "src"),
        "CUSTOMER_ANALYTICS_ROOT": str(project),
        "PLOOMBER_STATS_ENABLED": "false",
        "PLOOMBER_VERSION_CHECK_DISABLED": "1",
    }
    env.pop(
        "PYTHONDONTWRITEBYTECODE", None
    )  # measure as a user's environment runs: bytecode cached
    return sys.executable, env


def _run(cmd: list[str], env: dict, cwd: Path, timeout: float = 3600) -> tuple[float, str]:
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(
            f"{' '.join(cmd[:3])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    return time.perf_counter() - t, done.stdout + done.stderr


def imports(project: Path) -> dict[str, float]:
    """Seconds a fresh interpreter takes to import each notebook's library modules."""
    py, env = _python(project)
    code = (
        "import sys, time; from pathlib import Path; from customer_analytics import pipeline\n"
        "files = pipeline.library_modules(sys.argv[1], Path(sys.argv[2]))\n"
        "parts = [f[:-3].split('/') for f in files "
        "if f not in getattr(pipeline, 'EXPORT_ONLY', ())]\n"
        "mods = ['.'.join(['customer_analytics', *(p[:-1] if p[-1] == '__init__' else p)]) "
        "for p in parts]\n"
        "t = time.perf_counter()\n"
        "[__import__(m) for m in ['IPython.display', *mods]]\n"
        "print(time.perf_counter() - t)"
    )
    out = {}
    for nb in NOTEBOOKS:  # twice: the first run writes the bytecode
        runs = [
            subprocess.run(
                [py, "-c", code, nb, str(project)],
                env=env,
                cwd=project,
                capture_output=True,
                text=True,
                check=True,
            )
            for _ in range(2)
        ]
        out[nb] = float(runs[-1].stdout.strip().splitlines()[-1])
    return out


def kernel(project: Path) -> dict[str, float]:
    """Seconds to start an empty kernel (until it answers) and to shut it down."""
    from jupyter_client.manager import start_new_kernel

    _, env = _python(project)
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        t = time.perf_counter()
        km, kc = start_new_kernel(kernel_name="python3")
        started = time.perf_counter() - t
        kc.stop_channels()
        t = time.perf_counter()
        km.shutdown_kernel(now=False)
        return {"start": started, "shutdown": time.perf_counter() - t}
    finally:
        os.environ.clear()
        os.environ.update(old)


def session(project: Path, data: Path, work: Path) -> dict[str, float]:
    """Seconds of ``warehouse.connect``: cold (the server starts) and warm (it runs)."""
    py, env = _python(project)
    code = (
        "import sys, time, json; from pathlib import Path\n"
        "from customer_analytics import config, warehouse as wh\n"
        "p = config.load(Path(sys.argv[1]), data_dir=sys.argv[2], warehouse_dir=sys.argv[3])\n"
        "wh.stop_local_server(p.warehouse_dir)\n"
        "t = time.perf_counter(); s = wh.connect(p); cold = time.perf_counter() - t; s.close()\n"
        "t = time.perf_counter(); s = wh.connect(p); warm = time.perf_counter() - t; s.close()\n"
        "wh.stop_local_server(p.warehouse_dir)\n"
        "print(json.dumps({'cold': cold, 'warm': warm}))"
    )
    done = subprocess.run(
        [py, "-c", code, str(project), str(data), str(work / "warehouse_session")],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _when(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def timeline(folder: Path, launched: float, ended: float) -> dict:
    """The run's timeline from its executed notebooks (Papermill's times) and the files' times."""
    import nbformat

    per = {}
    for nb in NOTEBOOKS:
        path = folder / f"{nb}.ipynb"
        book = nbformat.read(path, as_version=4)
        pm = book.metadata.papermill
        cells = [
            c for c in book.cells if c.get("metadata", {}).get("papermill", {}).get("start_time")
        ]
        first = min(_when(c.metadata.papermill["start_time"]) for c in cells)
        last = max(_when(c.metadata.papermill["end_time"]) for c in cells)
        setup = sum(
            c.metadata.papermill.get("duration") or 0 for c in cells if "runs.start(" in c.source
        )
        work = sum(c.metadata.papermill.get("duration") or 0 for c in cells) - setup
        start, end = _when(pm["start_time"]), _when(pm["end_time"])
        html = folder / f"{nb}.html"
        per[nb] = {
            "start": start - launched,
            "kernel_start": first - start,
            "setup_cell": setup,
            "cells": work,
            "kernel_exit": end - last,
            "export": html.stat().st_mtime - path.stat().st_mtime,
            "end": html.stat().st_mtime - launched,
        }
    first_start = min(v["start"] for v in per.values())
    last_end = max(v["end"] for v in per.values())
    return {
        "notebooks": per,
        "before_first_notebook": first_start,
        "after_last_export": ended - launched - last_end,
        "wall": ended - launched,
    }


def pipeline(project: Path, data: Path, work: Path) -> dict:
    """``ploomber build --force`` (timeline), then the no-op rebuilds."""
    py, env = _python(project)
    bin_dir = Path(py).parent
    args = [
        "--env--data_dir",
        str(data),
        "--env--warehouse_dir",
        str(work / "warehouse"),
        "--env--reports_dir",
        str(work / "reports"),
    ]
    subprocess.run(
        [
            py,
            "-c",
            "from pathlib import Path; from customer_analytics import warehouse as wh; "
            f"wh.stop_local_server(Path({str(work / 'warehouse')!r}))",
        ],
        env=env,
        check=True,
    )
    # a first build so that the timed one finds the demo audio transcribed (cached) like any later
    # run
    _run(
        [str(bin_dir / "ploomber"), "build", "--entry-point", "pipeline.yaml", *args], env, project
    )
    launched = time.time()
    seconds, out = _run(
        [str(bin_dir / "ploomber"), "build", "--entry-point", "pipeline.yaml", "--force", *args],
        env,
        project,
    )
    ended = time.time()
    folder = next(
        iter(sorted((work / "reports").glob("**/01_ingest.ipynb"), key=lambda p: p.stat().st_mtime))
    ).parent
    result = {"build_s": seconds, "timeline": timeline(folder, launched, ended)}
    result["noop_ploomber_s"], _ = _run(
        [str(bin_dir / "ploomber"), "build", "--entry-point", "pipeline.yaml", *args], env, project
    )
    sets = [
        "--set",
        f"data_dir={data}",
        "--set",
        f"warehouse_dir={work / 'warehouse'}",
        "--set",
        f"reports_dir={work / 'reports'}",
        "--log-dir",
        str(work / "logs"),
    ]
    cli = str(bin_dir / "customer-analytics")
    result["cli_first_s"], _ = _run(
        [cli, "run", *sets], env, project
    )  # writes the run's status and index
    result["noop_cli_s"] = [_run([cli, "run", *sets], env, project)[0] for _ in range(3)]
    subprocess.run(
        [
            py,
            "-c",
            "from pathlib import Path; from customer_analytics import warehouse as wh; "
            f"wh.stop_local_server(Path({str(work / 'warehouse')!r}))",
        ],
        env=env,
        check=True,
    )
    return result


def table(r: dict) -> str:
    """The breakdown as a Markdown table (seconds)."""
    t = r["pipeline"]["timeline"]
    nbs = t["notebooks"]
    rows = [
        (
            "start-up before the first notebook (Python, Ploomber, DAG, run_context)",
            t["before_first_notebook"],
        ),
        ("waiting for each notebook's kernel (sum)", sum(v["kernel_start"] for v in nbs.values())),
        (
            "set-up cells: imports, session, namespace (sum)",
            sum(v["setup_cell"] for v in nbs.values()),
        ),
        ("waiting for each kernel to exit (sum)", sum(v["kernel_exit"] for v in nbs.values())),
        ("HTML exports (sum)", sum(v["export"] for v in nbs.values())),
        ("after the last export (hooks, index)", t["after_last_export"]),
        (
            "all other cells (sum; work, and imports inside them)",
            sum(v["cells"] for v in nbs.values()),
        ),
        ("wall time of `ploomber build --force`", t["wall"]),
    ]
    lines = ["| part | seconds |", "|---|---:|"] + [f"| {k} | {v:.1f} |" for k, v in rows]
    lines += ["", "| measured alone | seconds |", "|---|---:|"]
    lines += [
        f"| imports of {nb}'s modules (fresh process) | {s:.2f} |" for nb, s in r["imports"].items()
    ]
    lines += [
        f"| empty kernel: start / shutdown | {r['kernel']['start']:.2f} / "
        f"{r['kernel']['shutdown']:.2f} |",
        f"| warehouse session: cold (server start) / warm | {r['session']['cold']:.2f} / "
        f"{r['session']['warm']:.2f} |",
        f"| no-op `ploomber build` | {r['pipeline']['noop_ploomber_s']:.2f} |",
        "| no-op `customer-analytics run` (median of 3) | "
        f"{sorted(r['pipeline']['noop_cli_s'])[1]:.2f} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="a data folder (demo data)")
    ap.add_argument("--project", type=Path, default=HERE)
    ap.add_argument("--work", type=Path, default=HERE / "bench" / "out" / "fixed_cost")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    project, data, work = a.project.resolve(), a.data.resolve(), a.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    result = {
        "project": str(project),
        "load_before": load,
        "imports": imports(project),
        "kernel": kernel(project),
        "session": session(project, data, work),
        "pipeline": pipeline(project, data, work),
        "load_after": os.getloadavg(),
    }
    (a.out or work / "fixed_cost.json").write_text(json.dumps(result, indent=2))
    print(table(result))  # noqa: T201 - the tool's output
    print(f"\nload average before / after: {load[0]:.1f} / {result['load_after'][0]:.1f}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
