"""Acceptance (issue 15): the pipeline killed at ten points; after each, the next run succeeds.

The ``customer-analytics run`` command runs for real, in its own process group, on small data
whose files change between runs (two seeded data sets, swapped in place as a daily export would
be). Each case kills the run at one moment with :mod:`customer_analytics.faults` — the kernel that
reaches the moment SIGKILLs the whole run (CLI, Ploomber, itself), or the warehouse server kills
itself — then checks, before anything repairs it:

* every table holds the content of the last good run or of the killed run's data, never a mix,
  and the ingest's tables (published together) all come from the same one;
* the registry's default version loads;

and then runs ``customer-analytics run`` again, unchanged (no ``--force``, no manual step): it must
succeed, and its tables are the new data's.

The cases share one warehouse and run in order (each case's final state is the next one's "old").
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO
from customer_analytics import config, faults, parameters, registry, reports, synthetic
from customer_analytics import warehouse as wh

pytestmark = pytest.mark.slow

CUSTOMERS = 1000  # enough rated reviews in both data sets for a sentiment model
MODELS = "last_period,mean,ridge"
#: Tables an ingest publishes together (one transaction): all old or all new.
INGEST = re.compile(r"^(RAW|CLEAN|REJECTED)_|^INGEST_(LOG|REASONS)$")
#: Work tables of a run, not published results.
TRANSIENT = re.compile(r"(__NEW|__MERGED|__STAGE|_PART)$|__RUN_|^STAGE_")


@dataclass(frozen=True)
class Point:
    """One moment to kill the run at."""

    name: str
    spec: str  # the value of faults.KILL_VAR
    server: bool = False  # the warehouse server dies, not the run


POINTS = [
    Point("01 ingest: loading the first input file", r"sql:read_parquet"),
    Point(
        "01 ingest: publish transaction open, first table dropped",
        r"sql:^ALTER TABLE \w+__NEW RENAME TO",
    ),
    Point("01 ingest: publish transaction complete, before COMMIT", r"sql:^COMMIT"),
    Point("03 features: FEATURES being written", r"sql-sent:^CREATE OR REPLACE TABLE FEATURES AS"),
    Point(
        "03 features: sentiment model being stored",
        r"sql:^CREATE OR REPLACE TABLE SENTIMENT_WEIGHTS",
    ),
    Point(
        "04 models: registry, model file written, no meta.json yet", "point:registry.model_written"
    ),
    Point(
        "04 models: registry, new version complete, default not decided",
        "point:registry.registered",
    ),
    Point(
        "05 prediction: this run's scores being staged",
        r"sql:^CREATE OR REPLACE TABLE PREDICTIONS__RUN_",
    ),
    Point(
        "05 prediction: PREDICTIONS being swapped",
        r"sql-sent:^CREATE OR REPLACE TABLE PREDICTIONS AS",
    ),
    Point(
        "server: killed while 03 writes FEATURES",
        r"server:^CREATE OR REPLACE TABLE FEATURES AS",
        server=True,
    ),
]


@dataclass
class State:
    """What a run left: a fingerprint per published table, and the registry's default."""

    tables: dict[str, str]
    default: str | None
    transient: list[str] = field(default_factory=list)

    def ingest(self) -> dict[str, str]:
        return {t: f for t, f in self.tables.items() if INGEST.search(t)}


@dataclass
class Rig:
    work: Path
    data: Path  # the input folder the runs read; its files are replaced between runs
    sets: dict[str, Path]
    params: config.Params
    env_file: Path
    current: str = "A"
    last: State | None = None

    def use(self, name: str) -> None:
        for f in self.sets[name].iterdir():
            shutil.copy(f, self.data / f.name)
        self.current = name

    def flip(self) -> None:
        self.use("B" if self.current == "A" else "A")

    def run(self, fault: str | None = None) -> subprocess.CompletedProcess:
        exe = Path(sys.executable).with_name("customer-analytics")
        args = [str(exe), "run", "--log-dir", str(self.work / "logs")]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CA_FAULT")}
        env[config.ENV_FILE_VAR] = str(self.env_file)  # this shop's production profile
        if fault:
            env |= {faults.KILL_VAR: fault, faults.MARK_VAR: str(self.work / "killed.txt")}
        # its own process group, whose id the fault hook kills: like `kill -9 -<pgid>` of a cron job
        cmd = ["sh", "-c", f'export {faults.GROUP_VAR}=$$; exec "$0" "$@"', *args]
        return subprocess.run(
            cmd,
            cwd=REPO,
            capture_output=True,
            text=True,
            env=env,
            timeout=1200,
            start_new_session=True,
        )

    def state(self) -> State:
        s = wh.connect(self.params)
        try:
            schema = s.get_current_schema().strip('"')
            names = [
                r[0]
                for r in s.sql(
                    "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES "
                    f"WHERE TABLE_SCHEMA = '{schema}'"
                ).collect()
            ]
            tables = {
                n: fingerprint(s.table(n).to_pandas()) for n in names if not TRANSIENT.search(n)
            }
        finally:
            s.close()
        reg, name = (
            registry.open_registry(self.params),
            registry.model_name(self.params.horizon_days),
        )
        default = reg.default_version(name)
        if default:
            reg.load(name, version=default)  # the default must load (raises otherwise)
        return State(tables, default, sorted(n for n in names if TRANSIENT.search(n)))

    def status(self) -> dict:
        return reports.read_status(self.params.reports_dir / str(self.params.run_date))


def fingerprint(df: pd.DataFrame) -> str:
    """Rows and an order-independent hash of a table's content."""
    df = df.reindex(sorted(df.columns), axis=1)
    rows = pd.util.hash_pandas_object(df.astype(str), index=False).sort_values().to_numpy()
    digest = hashlib.sha256(rows.tobytes() + ",".join(df.columns).encode()).hexdigest()[:12]
    return f"{len(df)} rows, {digest}"


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    work = tmp_path_factory.mktemp("crash")
    sets = {}
    for name, seed in (("A", 7), ("B", 8)):
        sets[name] = work / f"set_{name}"
        synthetic.write(synthetic.generate(CUSTOMERS, seed=seed), sets[name])
    data = work / "data"
    data.mkdir()
    values = {
        **config.read_env(REPO),
        "data_dir": str(data),
        "warehouse_dir": str(work / "warehouse"),
        "reports_dir": str(work / "reports"),
        "models": MODELS,
    }
    env_file = work / "env.yaml"
    env_file.write_text(parameters.render_env(values))
    params = config.validate(values, REPO)
    r = Rig(work, data, sets, params, env_file)
    r.use("A")
    first = r.run()
    assert first.returncode == 0, first.stderr[-3000:]
    r.last = r.state()
    yield r
    wh.stop_local_server(params.warehouse_dir)


@pytest.mark.parametrize(
    "point",
    POINTS,
    ids=[f"{i}-{p.name.split(':')[0].replace(' ', '-')}" for i, p in enumerate(POINTS, 1)],
)
def test_a_run_killed_at_any_point_leaves_old_or_new_tables_and_the_next_run_succeeds(rig, point):
    old = rig.last
    rig.flip()  # the killed run reads other data, so old and new tables differ
    marks = rig.work / "killed.txt"
    marks.unlink(missing_ok=True)
    if point.server:  # a server started by this run, so that it carries the fault
        wh.stop_local_server(rig.params.warehouse_dir)
    killed = rig.run(fault=point.spec)
    assert marks.is_file(), f"the run was not killed at {point.name}:\n{killed.stderr[-3000:]}"
    if point.server:
        assert killed.returncode == 1, killed.stderr[-3000:]
        reason = rig.status().get("reason", "")
        assert "The local warehouse stopped" in reason and "HTTPConnectionPool" not in reason, (
            reason
        )
    else:
        assert killed.returncode == -9, killed.stderr[-3000:]
    mid = rig.state()  # what any reader sees now, before anything repairs it

    again = rig.run()  # the next (scheduled) run, as it is: no --force, no manual step
    assert again.returncode == 0, (
        f"the run after a kill at {point.name} failed:\n{again.stderr[-4000:]}"
    )
    assert rig.status().get("status") == "succeeded"
    new = rig.state()
    rig.last = new

    assert old.ingest() != new.ingest(), "the two data sets must give different tables"
    assert mid.ingest() in (old.ingest(), new.ingest()), (
        "the ingest's tables mix old and new content"
    )
    for table in sorted(set(old.tables) | set(new.tables) | set(mid.tables)):
        assert mid.tables.get(table) in (old.tables.get(table), new.tables.get(table)), (
            f"{table} after the kill at {point.name} is neither the old nor the new table"
        )
    assert mid.default in (old.default, new.default)
    assert set(new.tables) >= set(old.tables)
