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


def imported_modules(code: str) -> set[str]:
    """customer_analytics modules imported by ``code`` (``from customer_analytics import x`` or ``.x``)."""
    out = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("customer_analytics"):
            if node.module == "customer_analytics":
                out |= {a.name for a in node.names if (PKG / f"{a.name}.py").is_file()}
            else:
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("customer_analytics.")}
    return out


def closure(modules: set[str]) -> set[str]:
    seen, todo = set(), list(modules)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += imported_modules((PKG / f"{m}.py").read_text())
    return seen


def notebook_code(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code" and not c.source.lstrip().startswith(("%", "!")))


TASKS = yaml.safe_load((REPO / "pipeline.yaml").read_text())["tasks"]


@pytest.mark.parametrize("task", TASKS, ids=[t["name"] for t in TASKS])
def test_every_library_module_a_notebook_uses_is_a_resource(task):
    used = closure(imported_modules(notebook_code(REPO / task["source"]))) | ALWAYS
    declared = {Path(v).stem for v in task["params"]["resources_"].values() if str(v).startswith("src/")}
    assert used - declared == set(), f"{task['name']}: add these modules to resources_ in pipeline.yaml"
    assert declared - used == set(), f"{task['name']}: resources_ lists modules the notebook does not use"


def test_the_dag_has_no_artificial_edges():
    """02_eda is a report only: nothing downstream waits for it, so editing eda.py re-runs 02 alone."""
    upstream = {t["name"]: set(t.get("upstream", [])) for t in TASKS}
    assert not any("02_eda" in ups for ups in upstream.values())
