"""pipeline.yaml declares, for every notebook, each library module it uses (directly or not) as a
resource, so that editing a module re-runs exactly the notebooks that depend on it."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import REPO

PKG = REPO / "src" / "customer_analytics"
#: Modules every notebook depends on without importing them: the HTML exporter and the package init.
ALWAYS = {"reports", "__init__"}


def module_file(name: str) -> Path | None:
    """The file of a module of the package by dotted name (``ingest``, ``ingest.plan``), if any."""
    base = PKG.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(path: Path) -> str:
    """The dotted name of a module file of the package (``__init__`` for the package's own)."""
    rel = path.relative_to(PKG).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" and len(rel.parts) > 1 else rel.parts
    return ".".join(parts)


def imported_modules(code: str) -> set[str]:
    """customer_analytics modules imported by ``code`` (``from customer_analytics import x``,
    ``.x``).

    A sub-module (``ingest.plan``) brings its package (``ingest``) with it.
    """
    out = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("customer_analytics"):
            base = node.module.split(".", 1)[1] if "." in node.module else ""
            if base:
                out.add(base)
            out |= {f"{base}.{a.name}".strip(".") for a in node.names
                    if module_file(f"{base}.{a.name}".strip("."))}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".", 1)[1] for a in node.names
                    if a.name.startswith("customer_analytics.")}
    parents = {".".join(m.split(".")[:k]) for m in out for k in range(1, m.count(".") + 1)}
    return out | parents


def closure(modules: set[str]) -> set[str]:
    seen, todo = set(), list(modules)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += imported_modules(module_file(m).read_text())
    return seen


def notebook_code(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code" and not c.source.lstrip().startswith(("%", "!")))


TASKS = yaml.safe_load((REPO / "pipeline.yaml").read_text())["tasks"]


@pytest.mark.parametrize("task", TASKS, ids=[t["name"] for t in TASKS])
def test_every_library_module_a_notebook_uses_is_a_resource(task):
    used = closure(imported_modules(notebook_code(REPO / task["source"]))) | ALWAYS
    declared = {module_name(REPO / v) for v in task["params"]["resources_"].values()
                if str(v).startswith("src/")}
    assert used - declared == set(), f"{task['name']}: add these modules to resources_ in pipeline.yaml"
    assert declared - used == set(), f"{task['name']}: resources_ lists modules the notebook does not use"


def test_the_dag_has_no_artificial_edges():
    """02_eda is a report only: nothing downstream waits for it, so editing eda.py re-runs 02 alone."""
    upstream = {t["name"]: set(t.get("upstream", [])) for t in TASKS}
    assert not any("02_eda" in ups for ups in upstream.values())
