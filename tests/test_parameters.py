"""One declaration per parameter: env.yaml, pipeline.yaml and the notebooks' parameter cells follow
from it."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import REPO, scratch_project
from customer_analytics import config, parameters, pipeline


def test_the_files_agree_with_the_declaration():
    """pipeline.yaml, every notebook's parameters cell and env.yaml's keys and comments (run --write
    to fix)."""
    assert pipeline.sync(REPO, write=False) == []


def test_params_fields_are_the_declared_parameters():
    assert [f.name for f in dataclasses.fields(config.Params)] != []
    assert {f.name for f in dataclasses.fields(config.Params)} == set(parameters.BY_NAME)
    env = yaml.safe_load((REPO / "env.yaml").read_text())
    assert list(env) == [p.name for p in parameters.PARAMETERS]
    config.validate(env, REPO)  # the committed production profile is valid


def test_every_parameter_a_notebook_declares_reaches_it_from_the_pipeline():
    spec = yaml.safe_load((REPO / "pipeline.yaml").read_text())
    for task in spec["tasks"]:
        passed = set(task["params"]) - {"run_context"}
        assert passed == {p.name for p in parameters.for_notebook(task["name"])}, task["name"]
        context = task["params"]["run_context"]
        assert (
            context["dotted_path"] == "customer_analytics.pipeline::run_context"
            and context["task"] == task["name"]
        )
        assert set(parameters.BY_NAME) <= set(
            context
        )  # the namespace is computed from every parameter
        nb = nbformat.read(REPO / task["source"], as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        declared = {line.split(" = ")[0] for line in cell.source.splitlines() if " = None" in line}
        assert declared == passed | set(parameters.INJECTED), task["name"]


def test_a_parameter_added_in_the_declaration_reaches_every_file(tmp_path, monkeypatch):
    project = scratch_project(tmp_path / "p")
    new = parameters.Parameter(
        "currency_code",
        "EUR",
        "currency of every money figure",
        parameters.text,
        ("02_eda", "05_batch_prediction"),
    )
    monkeypatch.setattr(parameters, "PARAMETERS", (*parameters.PARAMETERS, new))
    monkeypatch.setattr(parameters, "BY_NAME", {**parameters.BY_NAME, new.name: new})
    assert set(pipeline.sync(project, write=False)) == {
        "pipeline.yaml",
        "env.yaml",
        "notebooks/02_eda.ipynb",
        "notebooks/05_batch_prediction.ipynb",
    }
    pipeline.sync(project, write=True)
    assert pipeline.sync(project, write=False) == []
    env = (project / "env.yaml").read_text()
    assert "currency_code: EUR" in env and "# currency of every money figure" in env
    spec = yaml.safe_load((project / "pipeline.yaml").read_text())
    takes = {t["name"] for t in spec["tasks"] if "currency_code" in t["params"]}
    assert takes == {"02_eda", "05_batch_prediction"}
    cell = next(
        c
        for c in nbformat.read(
            project / "notebooks" / "05_batch_prediction.ipynb", as_version=4
        ).cells
        if "parameters" in c.metadata.get("tags", [])
    )
    assert "currency_code = None" in cell.source


def test_a_hand_edit_of_a_generated_file_is_caught(tmp_path):
    project = scratch_project(tmp_path / "p")
    text = (project / "pipeline.yaml").read_text().replace("      seed: '{{seed}}'\n", "", 1)
    (project / "pipeline.yaml").write_text(text)
    shutil.copy(project / "env.yaml", tmp_path / "env.yaml")
    (project / "env.yaml").write_text(
        (project / "env.yaml").read_text().replace("# prediction horizon in days", "# horizon")
    )
    assert set(pipeline.sync(project, write=False)) == {"pipeline.yaml", "env.yaml"}


def test_notebooks_with_outputs_or_definitions_are_caught_and_outputs_stripped(tmp_path):
    """Notebooks are committed without outputs and without logic (the pre-commit hook runs this)."""
    project = scratch_project(tmp_path / "p")
    path = project / "notebooks" / "04_model_comparison.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    code[2].outputs = [nbformat.v4.new_output("stream", text="a figure of last run\n")]
    code[2].execution_count = 7
    code[3].source += "\n\ndef helper(x):\n    return x\n"
    nbformat.write(nb, path)
    assert pipeline.sync(project, write=False) == ["notebooks/04_model_comparison.ipynb (outputs)"]
    problems = pipeline.notebook_problems(project)
    assert len(problems) == 1 and "04_model_comparison.ipynb cell" in problems[0]
    assert "defines a function" in problems[0]
    pipeline.sync(project, write=True)
    assert pipeline.sync(project, write=False) == []
    again = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert again[2].outputs == [] and again[2].execution_count is None
    assert pipeline.notebook_problems(REPO) == []


def test_no_parameter_is_named_like_a_jinja_global():
    """Ploomber renders pipeline.yaml with Jinja: `{{namespace}}` would stay `{{namespace}}` (seen
    here)."""
    import jinja2

    assert not set(jinja2.Environment().globals) & set(parameters.BY_NAME)


def test_every_nested_parameter_can_be_set_from_plain_ploomber():
    """Ploomber adds one --env--a--b argument per leaf of env.yaml: every column of the mapping is
    one."""
    from ploomber.cli.parsers import _flatten_dict

    flat = _flatten_dict(yaml.safe_load((REPO / "env.yaml").read_text()))
    assert "columns--orders--ts" in flat and "columns--customers--signup_date" in flat
    assert {k for k in flat if k.startswith("columns--")} == {
        f"columns--{src}--{f}"
        for src, s in parameters.contract.MAPPABLE.items()
        for f in s.field_names
    }


@pytest.mark.parametrize(
    "task,expected",
    [
        ("02_eda", {"eda", "plots", "runs"}),
        ("05_batch_prediction", {"predict", "drift", "registry", "models", "features"}),
    ],
)
def test_the_library_digest_follows_the_modules_a_notebook_uses(task, expected):
    used = {Path(f).with_suffix("").as_posix() for f in pipeline.library_modules(task, REPO)}
    assert expected <= used and {"__init__", "reports", "config", "parameters"} <= used
    if task == "02_eda":
        assert not {"models", "registry", "predict"} & used  # editing them does not re-run the EDA


def test_a_sub_package_counts_whole_and_relative_imports_are_followed(tmp_path):
    project = scratch_project(tmp_path / "p")
    pkg = project / "src" / "customer_analytics"
    (pkg / "sub").mkdir()
    (pkg / "sub" / "__init__.py").write_text("from .part import x\n")
    (pkg / "sub" / "part.py").write_text("from .. import drift\nx = 1\n")
    (pkg / "eda.py").write_text(
        (pkg / "eda.py").read_text() + "\nfrom customer_analytics import sub  # noqa\n"
    )
    used = pipeline.library_modules("02_eda", project)
    assert {"sub/__init__.py", "sub/part.py", "drift.py"} <= set(used)
    before = pipeline.library_digest("02_eda", project)
    (pkg / "sub" / "part.py").write_text("from .. import drift\nx = 2\n")
    assert pipeline.library_digest("02_eda", project) != before
    assert pipeline.library_digest("01_ingest", project) == pipeline.library_digest(
        "01_ingest", REPO
    )


def test_the_parsed_imports_kept_on_disk_follow_every_edit_and_survive_a_broken_cache(tmp_path):
    project = scratch_project(tmp_path / "p")
    pkg = project / "src" / "customer_analytics"
    cache = pkg / pipeline._ParseCache.FILE
    cache.unlink(missing_ok=True)
    first = pipeline.library_modules("02_eda", project)
    assert cache.is_file() and "models.py" not in first

    pipeline._ParseCache._open.clear()  # as a new process would: read from disk
    assert pipeline.library_modules("02_eda", project) == first
    (pkg / "eda.py").write_text(
        (pkg / "eda.py").read_text() + "\n\ndef _later():\n    from . import models  # noqa\n"
    )
    pipeline._ParseCache._open.clear()
    assert "models.py" in pipeline.library_modules("02_eda", project)

    cache.write_text("{not json")
    pipeline._ParseCache._open.clear()
    assert "models.py" in pipeline.library_modules("02_eda", project)
    assert pipeline.library_modules("01_ingest", project) == pipeline.library_modules(
        "01_ingest", REPO
    )


def test_the_dag_has_no_artificial_edges():
    """02_eda is a report only: nothing downstream waits for it, so editing eda.py re-runs 02
    alone."""
    assert not any("02_eda" in t.upstream for t in pipeline.TASKS)


def test_the_shipped_env_yaml_holds_the_declared_defaults():
    """env.yaml is production's profile; as shipped it is the declaration's defaults, so a merge
    that loses a line (the BTYD candidates once dropped out of `models`) is caught here."""
    env = yaml.safe_load((REPO / "env.yaml").read_text())
    differ = {
        p.name: (env.get(p.name), p.default)
        for p in parameters.PARAMETERS
        if p.name in env and str(env[p.name]) != str(p.default)
    }
    assert differ == {}


#: A process that loads the pipeline's executor (as ``ploomber build`` does), leaves a reference
#: cycle whose ``__del__`` leaves a mark, logs a last line, and exits.
EXIT_PROBE = """
import logging, sys
from pathlib import Path
out = Path(sys.argv[1])
logging.basicConfig(filename=out / "run.log", level=logging.INFO)
if sys.argv[2] == "pipeline":
    from customer_analytics import pipeline
    pipeline.executor(str(out / "warehouse"), str(out))
class Cycle:
    def __del__(self):
        (out / "collected").write_text("yes")
c = Cycle()
c.me = c
del c
logging.getLogger("probe").info("last words")
"""


@pytest.mark.parametrize("load", ["plain", "pipeline"])
def test_a_process_that_loaded_the_pipeline_exits_without_collecting_but_flushes_its_log(
    tmp_path, load
):
    """The exit skips the interpreter's last collection (~0.6 s of a no-op build, see
    gcwork.exit_without_collecting): garbage cycles are left to the exit, the log is complete."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", EXIT_PROBE, str(tmp_path), load], check=True)
    assert (tmp_path / "run.log").read_text().strip().endswith("last words")
    # a plain interpreter collects the cycle on its way out; after loading the pipeline it does not
    assert (tmp_path / "collected").exists() == (load == "plain")
