"""The pipeline's wiring: what Ploomber loads, computed from the parameter declaration.

``pipeline.yaml`` is generated from :data:`TASKS` and :mod:`customer_analytics.parameters`
(``python -m customer_analytics.pipeline --write``; ``--check`` and a test say when it, a notebook's
parameters cell or ``env.yaml``'s comments disagree with the declaration). Ploomber calls back
into this module while it loads and builds the pipeline:

* :func:`run_context` — a computed task parameter (Ploomber calls ``module::function`` values in
  ``params``). From all the run's parameters it resolves the run's namespace (production or an
  experiment, see :mod:`customer_analytics.runs`), so the products land in the right report
  folder even for a plain ``ploomber build --env--horizon_days 30``; it carries the digest of the
  library modules the notebook uses (a change re-runs exactly the notebooks that use it) and,
  for the ingest, a fingerprint of the input files (a changed file re-runs the ingest); and it
  hands the full parameters to the notebook kernels (:data:`runs.RUN_PARAMS_VAR`).
* :func:`executor` — builds independent notebooks at the same time, their kernels started ahead
  (:mod:`customer_analytics.executor`), holding the run lock while it builds.
* :func:`on_finish` / :func:`on_failure` — record the run's outcome in ``run.json``, write the
  HTML of a failed notebook (marked failed) and refresh the run index.

Notebooks stay plain Papermill notebooks; nothing here is needed to run one by hand.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import functools
import hashlib
import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from customer_analytics import config, contract, fsutil, gcwork, runs
from customer_analytics import parameters as P

log = logging.getLogger(__name__)

PIPELINE_FILE = "pipeline.yaml"
RUN_LOCK = "run.lock"
#: How long a new run waits for the kernels of a killed one to notice and exit.
WORK_LOCK_WAIT_S = 60.0
UNUSED_PARAMS_WARNING = "These parameters are not used in the task's source code"


@dataclass(frozen=True)
class Task:
    """One notebook of the pipeline."""

    name: str
    upstream: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return f"notebooks/{self.name}.ipynb"


#: The five notebooks, in order. 02_eda is a report only: nothing waits for it.
TASKS: tuple[Task, ...] = tuple(Task(name, P.UPSTREAM[name]) for name in P.NOTEBOOKS)
TASK_NAMES = tuple(t.name for t in TASKS)
#: Library modules every notebook depends on without importing them (the HTML exporter, the
#: package).
ALWAYS = ("__init__", "reports", "report_html")
#: Of those, the modules only the pipeline's process loads (the HTML export), never a notebook's
#: kernel.
EXPORT_ONLY = ("report_html.py",)


# --------------------------------------------------------------------------- computed parameters
def library_modules(task: str, root: Path) -> list[str]:
    """The ``customer_analytics`` modules a notebook uses, directly or through other modules.

    A module is named by its file relative to the package (``models.py``, or ``ingest/plan.py``
    inside a sub-package; a sub-package counts whole, unless only its modules are imported by name:
    then its ``__init__`` and those modules). Imports anywhere in a file count, function bodies
    included.
    """
    pkg = root / "src" / "customer_analytics"
    import nbformat

    nb = nbformat.read(root / "notebooks" / f"{task}.ipynb", as_version=4)
    code = "\n".join(
        c.source
        for c in nb.cells
        if c.cell_type == "code" and not c.source.lstrip().startswith(("%", "!"))
    )
    seen: set[str] = set()
    todo = [f for name in sorted(_imported(code, pkg, ()) | set(ALWAYS)) for f in _files(pkg, name)]
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        parts = tuple(Path(rel).parts[:-1])
        todo += [
            f
            for name in _imported((pkg / rel).read_text(encoding="utf-8"), pkg, parts)
            for f in _files(pkg, name)
        ]
    _ParseCache.of(pkg).save()
    return sorted(seen)


def _files(pkg: Path, name: str) -> list[str]:
    """The files of module ``name`` (dotted, relative to the package): one file, or a whole
    sub-package."""
    path = pkg.joinpath(*name.split("."))
    if path.is_dir():
        return sorted(p.relative_to(pkg).as_posix() for p in path.rglob("*.py"))
    file = path.with_suffix(".py")
    return [file.relative_to(pkg).as_posix()] if file.is_file() else []


def _imported(code: str, pkg: Path, package: tuple[str, ...]) -> set[str]:
    """Modules of the package imported anywhere in ``code`` (``package``: where ``code`` lives, for
    relative imports).

    "from customer_analytics import features" names modules; so does "from
    customer_analytics.narrative import eda", which runs the sub-package's ``__init__`` and that
    module only (a name that is not a module counts the sub-package whole). Which names are modules
    (files) is decided here, at every call; only the parsing is cached.
    """
    out: set[str] = set()
    for module, names in _ParseCache.of(pkg).statements(code, package):
        if names is None:  # import customer_analytics.x
            out.add(".".join(module))
            continue
        dotted = [".".join([*module, n]) for n in names]
        found = {n for n in dotted if _files(pkg, n)}
        if module and len(found) == len(dotted) and pkg.joinpath(*module).is_dir():
            out.add(".".join([*module, "__init__"]))
        elif module:
            out.add(".".join(module))
        out |= found
    return {m for m in out if m and _files(pkg, m)}


_Statements = tuple[tuple[tuple[str, ...], tuple[str, ...] | None], ...]


class _ParseCache:
    """:func:`_import_statements` of each module text, kept on disk beside Python's own bytecode
    cache (``<package>/__pycache__/import_statements.json``), keyed by a digest of the text.

    Parsing the package's 56 modules took ~0.35 s of every no-op rebuild (Ploomber computes
    ``run_context`` while it loads the pipeline); a text's imports are looked up by its digest,
    so an edited module is parsed again and nothing stale is ever used. A cache that cannot be
    read or written is ignored.
    """

    FILE = Path("__pycache__") / "import_statements.json"
    MAX_ENTRIES = 2000
    _open: dict[Path, _ParseCache] = {}

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, _Statements] = {}
        self.dirty = False
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            self.entries = {
                k: tuple((tuple(m), None if n is None else tuple(n)) for m, n in v)
                for k, v in raw.items()
            }
        except (OSError, ValueError, TypeError):
            self.entries = {}

    @classmethod
    def of(cls, pkg: Path) -> _ParseCache:
        path = pkg / cls.FILE
        if path not in cls._open:
            cls._open[path] = cls(path)
        return cls._open[path]

    def statements(self, code: str, package: tuple[str, ...]) -> _Statements:
        key = hashlib.sha256(("/".join(package) + "\0" + code).encode()).hexdigest()[:32]
        found = self.entries.get(key)
        if found is None:
            found = self.entries[key] = _import_statements(code, package)
            self.dirty = True
        return found

    def save(self) -> None:
        if not self.dirty:
            return
        entries = self.entries
        if len(entries) > self.MAX_ENTRIES:  # old texts pile up as modules are edited
            entries = dict(list(entries.items())[-self.MAX_ENTRIES // 2 :])
        try:
            self.path.parent.mkdir(exist_ok=True)
            fsutil.atomic_write(self.path, json.dumps(entries))
            self.dirty = False
        except OSError:
            pass


@functools.lru_cache(maxsize=512)
def _import_statements(
    code: str, package: tuple[str, ...]
) -> tuple[tuple[tuple[str, ...], tuple[str, ...] | None], ...]:
    """The package's imports in ``code``: (module parts relative to the package, imported names or
    ``None`` for a plain ``import``); parsed once per text.

    Ploomber computes ``run_context`` for every task while it loads the pipeline, and every task
    walks the same modules: parsing each text once keeps that off the no-op rebuild's time.
    """
    out: list[tuple[tuple[str, ...], tuple[str, ...] | None]] = []
    for node in _statements(ast.parse(code)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = (
                    list(package[: len(package) - node.level + 1])
                    if node.level <= len(package) + 1
                    else []
                )
            elif node.module and node.module.split(".")[0] == "customer_analytics":
                base = []
            else:
                continue
            module = (
                [*base, *((node.module or "").split(".")[1 if not node.level else 0 :])]
                if node.module
                else base
            )
            out.append((tuple(m for m in module if m), tuple(alias.name for alias in node.names)))
        elif isinstance(node, ast.Import):
            out += [
                (tuple(a.name.split(".")[1:]), None)
                for a in node.names
                if a.name.startswith("customer_analytics.")
            ]
    return tuple(out)


#: The fields of a statement that hold statements (imports are statements: no expression is
#: entered).
_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(tree: ast.AST):
    """Every statement of ``tree``, nested ones included (function and class bodies, branches)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for name in _BLOCKS:
            block = getattr(node, name, None)
            if isinstance(block, list):
                todo.extend(block)


def library_digest(task: str, root: Path) -> str:
    """A digest of the library modules ``task`` uses: it changes when any of them changes."""
    pkg = root / "src" / "customer_analytics"
    h = hashlib.sha256()
    for rel in library_modules(task, root):
        h.update(rel.encode() + b"\0" + (pkg / rel).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _stat(path: Path) -> dict[str, Any]:
    try:
        st = path.stat()
    except OSError:
        return {"present": False}
    return {"present": True, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def input_fingerprint(params: config.Params) -> str:
    """A digest of the configured input files' names, sizes and modification times.

    Cheap (no file is read): the ingest re-runs when an input file is added, removed, replaced or
    touched, and only then.
    """
    out: dict[str, Any] = {"data_dir": str(params.data_dir), "exists": params.data_dir.is_dir()}
    for src in contract.SOURCES:
        name = getattr(params, src.setting)
        if not name:
            out[src.name] = None
        elif src is contract.CALLS:
            folder = params.data_dir / name
            entries = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
            out[src.name] = {p.name: _stat(p) for p in entries}
        else:
            out[src.name] = {p.name: _stat(p) for p in contract.candidates(params.data_dir, name)}
    return hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest()[:16]


def run_context(task: str, root: str, **values: Any) -> dict[str, Any]:
    """The ``run_context`` parameter of ``task`` (Ploomber calls this while loading the pipeline).

    Args:
        task: the notebook.
        root: the project folder.
        **values: every run parameter, as Ploomber rendered them from ``env.yaml`` and overrides.

    Returns:
        ``namespace`` (kind, name, label), ``folder`` (the run's report folder inside
        ``reports_dir``), ``library`` (digest of the modules the notebook uses) and, for
        ``01_ingest``, ``inputs``.
    """
    # parameters reach the notebooks through runs.start(globals()), which Ploomber cannot see
    warnings.filterwarnings("ignore", message=UNUSED_PARAMS_WARNING)
    project = Path(root)
    params = config.validate(values, project)
    namespace = runs.resolve(params, runs.production_params(project), pipeline=True)
    runs.export_params(params)
    context: dict[str, Any] = {
        "namespace": namespace.as_dict(),
        "folder": namespace.folder(params.run_date),
        "library": library_digest(task, project),
        "params": params_digest(task, params),
    }
    if task in READS_FILES:
        context["inputs"] = input_fingerprint(params)
    return context


#: Notebooks that read the input files (01) or may recompute from the freshest data (05,
#: re-scoring).
READS_FILES = ("01_ingest", "05_batch_prediction")


def params_digest(task: str, params: config.Params) -> str:
    """A digest of the values of the parameters ``task`` declares (what it was run with)."""
    values = params.values()
    mine = {p.name: values[p.name] for p in P.for_notebook(task)}
    return hashlib.sha256(json.dumps(mine, sort_keys=True, default=str).encode()).hexdigest()[:16]


def up_to_date(record: dict[str, Any] | None, context: dict[str, Any], **extra: Any) -> bool:
    """Whether a notebook's last headline ``record`` was made with this ``context`` (and ``extra``
    values).

    Used by re-scoring, which runs outside Ploomber: same library code, parameters and input files
    (and, for 05, the same model version) give the same result, so there is nothing to redo.
    """
    if not record:
        return False
    made = record.get("context") or {}
    same = all(made.get(k) == context.get(k) for k in ("library", "params", "inputs"))
    return same and all(record.get(k) == v for k, v in extra.items())


# --------------------------------------------------------------------------- executor and hooks
def run_lock_path(warehouse_dir: Path) -> Path:
    return warehouse_dir / RUN_LOCK


def acquire_run(warehouse_dir: Path) -> Any:
    """Context manager: this process holds the warehouse's run lock (one run at a time).

    Also waits (up to :data:`WORK_LOCK_WAIT_S`) until notebook kernels of a killed earlier run have
    exited: they hold the work lock while they run.

    Raises:
        fsutil.LockedError: another run holds the lock.
    """
    import contextlib

    @contextlib.contextmanager
    def held():
        owner = f"pid {os.getpid()} since {dt.datetime.now():%Y-%m-%d %H:%M:%S}"
        try:
            with fsutil.file_lock(run_lock_path(warehouse_dir), owner=owner):
                with fsutil.file_lock(warehouse_dir / runs.WORK_LOCK, timeout=WORK_LOCK_WAIT_S):
                    pass
                yield
        except fsutil.LockedError as e:
            raise fsutil.LockedError(
                f"Another run is in progress on this warehouse ({e}); try again when it "
                "has finished."
            ) from e

    return held()


def executor(warehouse_dir: str, root: str | None = None):
    """The pipeline's executor (:mod:`customer_analytics.executor`): independent notebooks at the
    same time, each kernel started ahead with its imports done, while this process holds the run
    lock. Loading it also makes this process's exit quick
    (:func:`gcwork.exit_without_collecting`)."""
    from customer_analytics.executor import ConcurrentExecutor

    gcwork.exit_without_collecting()

    folder = Path(warehouse_dir)
    if not folder.is_absolute() and root:
        folder = Path(root) / folder
    return ConcurrentExecutor(folder.resolve(), Path(root or config.project_root()).resolve())


def export_report(product) -> None:
    """Task hook: the stakeholder HTML of the executed notebook, beside it (``<notebook>.html``)."""
    from customer_analytics import reports
    from customer_analytics.executor import EXPORT_LOCK

    nb = Path(str(product))
    with EXPORT_LOCK:  # two notebooks may finish at the same time
        reports.export_html(nb, nb.with_suffix(".html"))


def _run_folders(dag) -> dict[Path, list]:
    folders: dict[Path, list] = {}
    for name in dag:
        task = dag[name]
        folders.setdefault(Path(str(task.product)).parent, []).append(task)
    return folders


def on_finish(dag, report=None) -> None:
    """DAG hook: the build succeeded — record it in each run folder's ``run.json`` and refresh the
    index."""
    from ploomber.constants import TaskStatus

    from customer_analytics import reports

    for folder, tasks in _run_folders(dag).items():
        ran = [t.name for t in tasks if t.exec_status == TaskStatus.Executed]
        reports.finish_run(folder, _task_context(tasks[0]), ok=True, ran=ran)
        reports.build_index(_reports_dir(folder, tasks[0]))


def on_failure(dag, traceback=None) -> None:
    """DAG hook: a notebook failed — its HTML (marked failed), ``run.json`` and the index say so."""
    from ploomber.constants import TaskStatus

    from customer_analytics import reports

    for folder, tasks in _run_folders(dag).items():
        failed = next((t for t in tasks if t.exec_status == TaskStatus.Errored), None)
        ran = [t.name for t in tasks if t.exec_status == TaskStatus.Executed]
        step, reason = "", ""
        if failed is not None:
            step = failed.name
            nb = Path(str(failed.product))
            html = nb.with_suffix(".html")
            reason = reports.notebook_error(nb) or _last_line((traceback or {}).get("build", ""))
            if nb.is_file():
                reports.export_failed_html(nb, html, reason)
        else:
            reason = _last_line((traceback or {}).get("build", "")) or "the pipeline failed"
        reports.finish_run(
            folder, _task_context(tasks[0]), ok=False, ran=ran, failed_step=step, reason=reason
        )
        reports.build_index(_reports_dir(folder, tasks[0]))


def _task_context(task) -> dict[str, Any]:
    return dict(task.params.get("run_context") or {})


def _reports_dir(folder: Path, task) -> Path:
    depth = len(Path(str(_task_context(task).get("folder", folder.name))).parts)
    return folder.parents[depth - 1] if depth else folder


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


# --------------------------------------------------------------------------- generated files
HEADER = """\
# The pipeline: five notebooks, ingest -> EDA (a report only) and ingest -> features -> models -> \
prediction.
# GENERATED from customer_analytics/pipeline.py and parameters.py: do not edit by hand; after a \
change there run
#   python -m customer_analytics.pipeline --write     (a test checks this file, the notebooks' \
parameter cells
#                                                     and env.yaml's comments against the \
declaration)
# Each task gets the parameters its notebook declares, plus run_context, computed by Python while \
Ploomber
# loads this file: the run's namespace (production, or an experiment kept apart), its report \
folder, a digest
# of the library modules the notebook uses and, for the ingest, a fingerprint of the input files.
"""


#: The kernel manager Papermill uses for the notebooks: adopts the kernel the executor started
#: ahead.
KERNEL_MANAGER = "customer_analytics.kernels.PooledKernelManager"


def _placeholder(name: str) -> str:
    return "'{{" + name + "}}'"


def render_pipeline() -> str:
    """The text of ``pipeline.yaml``."""
    lines = [
        HEADER.rstrip("\n"),
        "meta:",
        "  extract_upstream: false",
        "  extract_product: false",
        "",
        "executor:",
        "  dotted_path: customer_analytics.pipeline.executor",
        f"  warehouse_dir: {_placeholder('warehouse_dir')}",
        f"  root: {_placeholder('root')}",
        "on_finish: customer_analytics.pipeline.on_finish",
        "on_failure: customer_analytics.pipeline.on_failure",
        "",
        "tasks:",
    ]
    folder = "{{reports_dir}}/{{ '{{' }}run_context.folder{{ '}}' }}"
    for i, task in enumerate(TASKS):
        lines += [f"  - source: {task.source}", f"    name: {task.name}"]
        if task.upstream:
            lines.append(f"    upstream: [{', '.join(task.upstream)}]")
        lines += [
            "    static_analysis: disable",
            f'    product: "{folder}/{task.name}.ipynb"',
            f"    executor_params: {{progress_bar: false, kernel_manager_class: {KERNEL_MANAGER}}}",
            "    on_finish: customer_analytics.pipeline.export_report",
            "    params:",
        ]
        if i == 0:
            lines += [
                "      run_context: &run_context",
                "        dotted_path: customer_analytics.pipeline::run_context",
                f"        task: {task.name}",
                f"        root: {_placeholder('root')}",
            ]
            lines += [f"        {p.name}: {_placeholder(p.name)}" for p in P.PARAMETERS]
        else:
            lines.append(f"      run_context: {{<<: *run_context, task: {task.name}}}")
        lines += [f"      {p.name}: {_placeholder(p.name)}" for p in P.for_notebook(task.name)]
    return "\n".join(lines) + "\n"


def _set_parameters_cell(path: Path, source: str, write: bool) -> bool:
    """Make the notebook's ``parameters`` cell hold ``source``; return whether it differed."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cell = next(
        (c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None
    )
    if cell is None:
        raise ValueError(f"{path.name} has no cell tagged 'parameters'")
    if cell.source == source:
        return False
    if write:
        cell.source = source
        fsutil.atomic_write(path, nbformat.writes(nb) + "\n")
    return True


def _strip_outputs(path: Path, write: bool) -> bool:
    """Notebooks are committed without outputs: clear them (``write``); return whether any."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    dirty = [
        c
        for c in nb.cells
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))
    ]
    if dirty and write:
        for c in dirty:
            c.outputs, c.execution_count = [], None
        fsutil.atomic_write(path, nbformat.writes(nb) + "\n")
    return bool(dirty)


def notebook_problems(root: Path) -> list[str]:
    """What the notebooks' code cells hold that belongs in the library: ``def`` and ``class``."""
    import ast

    import nbformat

    found = []
    for task in TASKS:
        nb = nbformat.read(root / task.source, as_version=4)
        for k, cell in enumerate(nb.cells, 1):
            if cell.cell_type != "code":
                continue
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                found.append(f"{task.source} cell {k}: not valid Python")
                continue
            kinds = {type(n).__name__ for n in ast.walk(tree)}
            for node, what in (("FunctionDef", "a function"), ("ClassDef", "a class")):
                if node in kinds:
                    found.append(f"{task.source} cell {k}: defines {what} (logic belongs in src/)")
    return found


def sync(root: Path, write: bool) -> list[str]:
    """Compare (``write``: update) pipeline.yaml, the notebooks' parameter cells and env.yaml's
    layout.

    Returns:
        The files that differed from the declaration (after ``write`` they no longer do).
    """
    stale = []
    text = render_pipeline()
    target = root / PIPELINE_FILE
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        stale.append(PIPELINE_FILE)
        if write:
            fsutil.atomic_write(target, text)
    for task in TASKS:
        if _set_parameters_cell(root / task.source, P.parameters_cell(task.name), write):
            stale.append(task.source)
        if _strip_outputs(root / task.source, write):
            stale.append(f"{task.source} (outputs)")
    env = root / config.ENV_FILE
    current = env.read_text(encoding="utf-8") if env.is_file() else ""
    import yaml

    raw = (yaml.safe_load(current) or {}) if current else {}
    expected = P.render_env({k: v for k, v in raw.items() if k in P.BY_NAME})
    if list(P.env_comments(current).items()) != list(P.env_comments(expected).items()) or (
        yaml.safe_load(expected) != raw
    ):
        stale.append(config.ENV_FILE)
        if write:
            fsutil.atomic_write(env, expected)
    return stale


def main(argv: list[str] | None = None) -> int:
    """``python -m customer_analytics.pipeline --check | --write``."""
    ap = argparse.ArgumentParser(
        description="Check or regenerate the files that follow the parameter "
        "declaration (pipeline.yaml, parameter cells, env.yaml), "
        "and keep the notebooks free of outputs and definitions."
    )
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true")
    group.add_argument("--write", action="store_true")
    a = ap.parse_args(argv)
    root = config.project_root()
    stale = sync(root, write=a.write)
    for name in stale:
        print(f"{'updated' if a.write else 'out of date'}: {name}")  # noqa: T201 - a command's output
    problems = notebook_problems(root)
    for problem in problems:
        print(f"problem: {problem}")  # noqa: T201
    return 1 if (stale and a.check) or problems else 0


if __name__ == "__main__":
    sys.exit(main())
