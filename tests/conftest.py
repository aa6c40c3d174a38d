"""Shared fixtures: small generated data and a real embedded warehouse per test session."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from customer_analytics import config, ingest, parameters, synthetic, text
from customer_analytics import features as ft
from customer_analytics import models as md
from customer_analytics import warehouse as wh

REPO = Path(__file__).resolve().parents[1]
SMALL_CUSTOMERS = 1500
TESTS = Path(__file__).resolve().parent
_CONFIG: pytest.Config | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _CONFIG
    _CONFIG = config
    config.addinivalue_line(
        "markers", "warehouse: starts the embedded warehouse (deselected by make test-fast)"
    )


def progress(text: str) -> None:
    """A line on the terminal now, while a long fixture works (pytest captures everything else)."""
    reporter = _CONFIG.pluginmanager.get_plugin("terminalreporter") if _CONFIG else None
    if reporter is not None:
        reporter.write_line(f"  ... {text}")


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """Say when a shared fixture of these tests starts and how long it took: some run whole
    pipelines for minutes, and pytest is otherwise silent until the first test of the module."""
    code = getattr(fixturedef.func, "__code__", None)
    path = Path(code.co_filename) if code is not None else None
    shared = (
        fixturedef.scope in ("session", "module") and path is not None and TESTS in path.parents
    )
    started = time.perf_counter()
    if shared:
        progress(
            f"{fixturedef.argname} ({fixturedef.scope} fixture, {request.node.name}): setting up"
        )
    yield
    if shared:
        progress(f"{fixturedef.argname}: ready after {time.perf_counter() - started:.0f} s")


#: fixtures that start the embedded warehouse (directly or through another)
WAREHOUSE_FIXTURES = {
    "session",
    "params",
    "fresh_warehouse",
    "labelled",
    "comparison",
    "closed_cohort",
    "closed_comparison",
    "scheduled_runs",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tier marker: a test that uses the embedded warehouse (through these fixtures or by
    connecting itself) is ``warehouse``; ``make test-fast`` deselects it and ``slow``."""
    connects: dict[str, bool] = {}
    for item in items:
        source = getattr(getattr(item, "module", None), "__file__", None) or ""
        if source not in connects:
            connects[source] = bool(source) and "wh.connect(" in Path(source).read_text(
                encoding="utf-8"
            )
        uses = WAREHOUSE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses or connects[source]:
            item.add_marker(pytest.mark.warehouse)


@pytest.fixture(scope="session")
def raw_dir(tmp_path_factory) -> Path:
    """Demo data for ~1,500 customers (seeded), written once per test session."""
    out = tmp_path_factory.mktemp("raw")
    synthetic.write(synthetic.generate(SMALL_CUSTOMERS, seed=7), out)
    return out


def make_params(raw: Path, warehouse: Path, **over) -> config.Params:
    """Parameters from the repository's env.yaml, pointed at test folders."""
    p = config.load(
        REPO,
        data_dir=str(raw),
        warehouse_dir=str(warehouse),
        reports_dir=str(warehouse / "reports"),
    )
    return dataclasses.replace(p, **over) if over else p


def ingest_and_read(p: config.Params, *tables: str):
    """Ingest with ``p`` into its own warehouse (server stopped afterwards): the counts by source
    and each of ``tables`` as a pandas frame."""
    s = wh.connect(p)
    try:
        counts = {c.source: c for c in ingest.run(s, p)}
        return counts, *[s.table(t).to_pandas() for t in tables]
    finally:
        s.close()
        wh.stop_local_server(p.warehouse_dir)


@pytest.fixture(scope="session")
def params(raw_dir, tmp_path_factory) -> config.Params:
    return make_params(raw_dir, tmp_path_factory.mktemp("warehouse"))


@pytest.fixture(scope="session")
def session(params):
    """A Snowpark session on the embedded warehouse, with the small data ingested."""
    s = wh.connect(params)
    ingest.run(s, params)
    yield s
    s.close()
    wh.stop_local_server(params.warehouse_dir)


@pytest.fixture
def fresh_warehouse(tmp_path, raw_dir):
    """Params for an empty warehouse of this test alone (server stopped afterwards)."""
    p = make_params(raw_dir, tmp_path / "wh")
    yield p
    wh.stop_local_server(p.warehouse_dir)


def copy_raw(raw_dir: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in raw_dir.iterdir():
        shutil.copy(f, dest / f.name)
    return dest


CUTOFF = dt.date(2026, 6, 1)


#: What a scratch copy of the project leaves out: environments, data, generated files. Byte code
#: (``__pycache__``) is copied: the copy keeps the sources' times, so it stays valid, and the
#: scratch project's kernels do not compile the library again (see Makefile, PYC).
SCRATCH_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "data",
    "reports",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
    "bench",
    "logs",
)


def scratch_project(dest: Path, **env: object) -> Path:
    """A copy of the project (sources, notebooks, pipeline, env.yaml) in ``dest``, for tests that
    edit it.

    ``env`` changes its ``env.yaml`` (the copy's production profile), e.g. ``data_dir=...``.
    """
    shutil.copytree(REPO, dest, ignore=SCRATCH_IGNORE, dirs_exist_ok=True)
    if env:
        values = yaml.safe_load((REPO / "env.yaml").read_text(encoding="utf-8"))
        (dest / "env.yaml").write_text(parameters.render_env({**values, **env}), encoding="utf-8")
    return dest


def project_env(project: Path, **extra: str) -> dict[str, str]:
    """Environment for a process working in a scratch project: its sources, its env.yaml, no
    telemetry."""
    return {
        **os.environ,
        "PLOOMBER_STATS_ENABLED": "false",
        "PLOOMBER_VERSION_CHECK_DISABLED": "1",
        "PYTHONPATH": str(project / "src"),
        config.ROOT_ENV_VAR: str(project),
        **extra,
    }


def run_interactively(project: Path, notebook: str, timeout: int = 600, **cell: object):
    """Run a committed notebook the way JupyterLab's "Run All" does, with ``cell`` typed into its
    parameters cell.

    The kernel starts in ``project/notebooks`` with no pipeline around it (no ``run_context``, no
    ``product``). Returns the executed notebook; raises nbclient's CellExecutionError on an error.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(project / "notebooks" / f"{notebook}.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for name, value in cell.items():
        assert f"{name} = None" in params.source, name
        params.source = params.source.replace(f"{name} = None", f"{name} = {value!r}")
    old = {k: os.environ.get(k) for k in ("PYTHONPATH", config.ROOT_ENV_VAR, config.ENV_FILE_VAR)}
    os.environ.update(PYTHONPATH=str(project / "src"), **{config.ROOT_ENV_VAR: str(project)})
    os.environ.pop(config.ENV_FILE_VAR, None)
    try:
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(project / "notebooks")}},
        )
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def outputs_text(nb) -> str:
    """All text, Markdown and HTML (formatted tables) an executed notebook showed."""
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            out.append(o.get("text", ""))
            out += [
                str(v)
                for k, v in o.get("data", {}).items()
                if k in ("text/plain", "text/markdown", "text/html")
            ]
            if o.get("output_type") == "error":
                out.append(f"{o.get('ename')}: {o.get('evalue')}")
    return "\n".join(out)


@pytest.fixture(scope="session")
def scheduled_runs(tmp_path_factory):
    """Scheduled runs of the `customer-analytics` command for real (see tests/scheduled.py); once
    per session."""
    from scheduled import run_schedule

    sched = run_schedule(tmp_path_factory.mktemp("scheduled"))
    yield sched
    wh.stop_local_server(sched.params.warehouse_dir)


#: every model candidate, for the model and registry tests
NAMES = config.MODEL_NAMES
CLOSED_CUSTOMERS = 5000


@pytest.fixture(scope="session")
def closed_cohort(tmp_path_factory):
    """The closed-cohort demo world (5,000 customers, seed 42): params, a warehouse with FEATURES.

    Everyone joined in the first twelve weeks, so env.yaml's ``scoring_set: new`` finds nobody.
    """
    raw = tmp_path_factory.mktemp("closed_raw")
    synthetic.write(synthetic.generate_closed_cohort(CLOSED_CUSTOMERS, seed=42), raw)
    p = make_params(raw, tmp_path_factory.mktemp("closed_wh"))
    s = wh.connect(p)
    ingest.run(s, p)
    model, _ = text.build(s, p.cutoffs()[0], p.seed, p.text_max_rows, p.warehouse_dir / "staging")
    ft.build(s, p, sentiment=model.available)
    yield p, s
    s.close()
    wh.stop_local_server(p.warehouse_dir)


@pytest.fixture(scope="session")
def closed_comparison(closed_cohort):
    """env.yaml's candidates compared on the closed cohort, and the selection."""
    p, s = closed_cohort
    train, holdout = ft.load_labelled(s, p.max_train_rows, p.seed)
    comparison = md.compare(train, holdout, p.models, p.seed, p.cv_folds, p.calibration_tolerance)
    return train, holdout, comparison, md.select(comparison, p.primary_metric, p.seed)


@pytest.fixture(scope="module")
def labelled(session, params):
    """(train, holdout) FEATURES rows, built (text model + features) in each module that asks for
    them."""
    model, _ = text.build(
        session,
        params.cutoffs()[0],
        params.seed,
        params.text_max_rows,
        params.warehouse_dir / "staging",
    )
    ft.build(session, params, sentiment=model.available)
    return ft.load_labelled(session, params.max_train_rows, params.seed)


@pytest.fixture(scope="module")
def comparison(labelled, params):
    """Every candidate compared on ``labelled``."""
    return md.compare(*labelled, NAMES, params.seed, params.cv_folds)
