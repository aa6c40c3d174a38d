"""The cost of one statement's round trip to the embedded warehouse, old code against new.

Usage (from the project folder; ``--project`` may name another checkout, e.g. ``git worktree add
/tmp/old HEAD~1``)::

    .venv/bin/python bench/round_trip.py [--project .] [--vs /tmp/old] [--pairs 3]

Each measurement is a fresh process with the checkout's ``src`` first on ``PYTHONPATH`` and its
own warehouse folder (so its own server, started with that checkout's code): it opens a session,
makes a 5,000-row temporary table, then sends ``--statements`` (300) small statements, half
``SELECT <n>`` and half a filtered group-by on that table, as Snowpark actions (``collect``),
and reports milliseconds per statement. With ``--vs`` the two checkouts run in turn, A B A B,
and the medians are compared. Small statements are most of what a 10k-order pipeline run sends
(~560 statements; their median took 14 ms inside the server), so this is the fixed cost a run
pays per statement: HTTP, the connector, fakesnow's parse and transforms, the server's threads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

CLIENT = """
import sys, time
from pathlib import Path
from customer_analytics import config, warehouse as wh
p = config.load(Path(sys.argv[1]), warehouse_dir=sys.argv[2])
s = wh.connect(p)
s.sql("CREATE OR REPLACE TEMPORARY TABLE T AS SELECT SEQ4() AS ID, SEQ4() % 100 AS C "
      "FROM TABLE(GENERATOR(ROWCOUNT => 5000))").collect()
n = int(sys.argv[3]) // 2
t = time.perf_counter()
for i in range(n):
    s.sql(f"SELECT {i} AS N").collect()
    s.table("T").filter(f"C = {i % 100}").group_by("C").count().collect()
print((time.perf_counter() - t) / (2 * n) * 1000)
s.close()
wh.stop_local_server(p.warehouse_dir)
"""


def measure(project: Path, statements: int) -> float:
    """Milliseconds per statement in a fresh process running ``project``'s code."""
    env = {
        **os.environ,
        "PYTHONPATH": str(project / "src"),
        "CUSTOMER_ANALYTICS_ROOT": str(project),
    }
    with tempfile.TemporaryDirectory(prefix="round_trip_") as tmp:
        done = subprocess.run(
            [sys.executable, "-c", CLIENT, str(project), str(Path(tmp) / "wh"), str(statements)],
            env=env,
            cwd=project,
            capture_output=True,
            text=True,
            timeout=600,
        )
    if done.returncode:
        raise RuntimeError(f"the client failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--project", type=Path, default=HERE)
    p.add_argument("--vs", type=Path, help="another checkout, measured in turn with --project")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--statements", type=int, default=300)
    a = p.parse_args(argv)
    runs: dict[Path, list[float]] = {a.project: []}
    if a.vs:
        runs[a.vs] = []
    for _ in range(a.pairs):
        for project, times in runs.items():
            times.append(measure(project.resolve(), a.statements))
            print(f"{project}: {times[-1]:.2f} ms per statement", flush=True)
    medians = {project: statistics.median(times) for project, times in runs.items()}
    for project, median in medians.items():
        print(f"median {median:.2f} ms per statement ({project})")
    if a.vs:
        print(f"ratio {a.project} / {a.vs}: {medians[a.project] / medians[a.vs]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
