"""Scheduled runs, for real: the ``customer-analytics`` command as cron would call it (cron's bare
environment).

Shared (once per test session, via the ``scheduled_runs`` fixture in ``conftest.py``) by the
acceptance tests, the personal-data scan and the browser test, because each full pipeline run
costs about a minute. The sequence:

1. ``run --run-date D1`` and ``run --run-date D2`` (two consecutive dates);
2. ``run --run-date D1 --force`` (re-running the first date, every notebook executed again);
3. ``run --run-date D_BAD --quiet`` with orders broken beyond the reject threshold (ingest must
fail);
4. ``score --run-date D2 --force`` (re-scoring only, with the registered default model).

Each step runs as cron would, with the shop's own production profile (an env file named by
``CUSTOMER_ANALYTICS_ENV``), so these are production runs, not experiments.

After each step it snapshots PREDICTIONS (rows per run date, D1 and D2 rows) and the registry's
default version, so tests can compare states.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import snowflake.snowpark.functions as F

from conftest import REPO, progress
from customer_analytics import config, parameters, registry, synthetic
from customer_analytics import warehouse as wh

D1, D2, D_BAD = "2026-11-01", "2026-11-02", "2026-11-03"
CUSTOMERS = 1000
CRON_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}  # what cron gives a job: no venv on PATH
MODELS = "last_period,mean,ridge"  # the pipeline as configured, with the quickest candidates


@dataclass
class Snapshot:
    counts: dict[str, int]
    rows: dict[str, pd.DataFrame]
    default_version: str | None
    versions: tuple[str, ...] = ()


@dataclass
class Schedule:
    work: Path
    raw: Path
    broken: Path
    params: config.Params
    results: dict[str, subprocess.CompletedProcess] = field(default_factory=dict)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)

    @property
    def reports(self) -> Path:
        return self.params.reports_dir

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    def env_file(self, data_dir: Path) -> Path:
        """The production profile of this shop: the project's env.yaml with its own folders and
        quick models."""
        values = {
            **config.read_env(REPO),
            "data_dir": str(data_dir),
            "models": MODELS,
            "warehouse_dir": str(self.params.warehouse_dir),
            "reports_dir": str(self.reports),
        }
        path = self.work / f"env.{data_dir.name}.yaml"
        path.write_text(parameters.render_env(values))
        return path

    def cli(
        self, step: str, *args: str, data_dir: Path | None = None
    ) -> subprocess.CompletedProcess:
        exe = Path(sys.executable).with_name("customer-analytics")
        cmd = [str(exe), *args, "--log-dir", str(self.logs)]
        env = CRON_ENV | {
            k: v for k, v in os.environ.items() if k in ("HOME", "TMPDIR", "LANG", "PYTHONPATH")
        }
        env[config.ENV_FILE_VAR] = str(self.env_file(data_dir or self.raw))
        progress(f"scheduled runs: {step} ({' '.join(args[:3])})")
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=900)
        self.results[step] = out
        self.snapshots[step] = self.snapshot()
        return out

    def snapshot(self) -> Snapshot:
        s = wh.connect(self.params)
        try:
            if not wh.table_exists(s, "PREDICTIONS"):
                return Snapshot({}, {}, None)
            table = s.table("PREDICTIONS")
            counts = {
                str(r["RUN_DATE"]): r["COUNT"] for r in table.group_by("RUN_DATE").count().collect()
            }
            rows = {
                d: table.filter(F.col("RUN_DATE") == F.lit(dt.date.fromisoformat(d)))
                .sort("CUSTOMER_ID")
                .to_pandas()
                for d in (D1, D2)
            }
        finally:
            s.close()
        reg, name = (
            registry.open_registry(self.params),
            registry.model_name(self.params.horizon_days),
        )
        return Snapshot(
            counts,
            rows,
            reg.default_version(name),
            tuple(v.version for v in reg.list_versions(name)),
        )

    def log_of(self, step: str) -> str:
        """The log file the command named on stderr, read."""
        err = self.results[step].stderr
        name = next(w for w in err.split() if w.endswith(".log"))
        return Path(name).read_text()


def run_schedule(work: Path) -> Schedule:
    raw, broken = work / "raw", work / "broken"
    synthetic.write(synthetic.generate(CUSTOMERS, seed=5), raw)
    synthetic.write(synthetic.generate(CUSTOMERS, seed=5), broken)
    orders = (
        broken / "orders.jsonl"
    )  # every fifth line not JSON: ~11% of order lines rejected, beyond max_reject_share (5%)
    lines = orders.read_text(encoding="utf-8").splitlines(keepends=True)
    orders.write_text(
        "".join("{not json\n" if i % 5 == 0 else ln for i, ln in enumerate(lines)), encoding="utf-8"
    )
    params = config.load(
        REPO,
        data_dir=str(raw),
        warehouse_dir=str(work / "warehouse"),
        reports_dir=str(work / "reports"),
        models=MODELS,
    )
    sched = Schedule(work, raw, broken, params)
    sched.cli("run D1", "run", "--run-date", D1)
    sched.cli("run D2", "run", "--run-date", D2)
    sched.cli("re-run D1", "run", "--run-date", D1, "--force")
    sched.cli("broken run", "run", "--run-date", D_BAD, "--quiet", data_dir=broken)
    sched.cli("re-score D2", "score", "--run-date", D2, "--force")
    return sched
