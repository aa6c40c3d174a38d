"""The pipeline's products (executed notebooks and HTML reports), as ``pipeline.yaml`` declares them.

A notebook run outside Ploomber — "Run All" in JupyterLab, or Papermill on one notebook — writes
warehouse tables (and registry versions) but not the pipeline's report files, which Ploomber
does not know about. :func:`note_interactive_run` keeps the next ``ploomber build`` honest: it
removes the Ploomber metadata of that notebook's products for the run date, so the build
re-runs the notebook (and what depends on it) instead of keeping reports that no longer match
the tables, and it says so.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from customer_analytics.config import Params, project_root

log = logging.getLogger(__name__)

PIPELINE_FILE = "pipeline.yaml"


def task_products(task: str, params: Params, root: Path | None = None) -> dict[str, Path]:
    """The product files of ``task`` for ``params`` (its ``reports_dir`` and ``run_date``).

    Raises:
        KeyError: ``pipeline.yaml`` has no task called ``task``.
    """
    root = root or project_root()
    tasks = {t["name"]: t for t in yaml.safe_load((root / PIPELINE_FILE).read_text(encoding="utf-8"))["tasks"]}
    values = {"reports_dir": str(params.reports_dir), "run_date": params.run_date.isoformat()}
    out = {}
    for key, template in tasks[task]["product"].items():
        for name, value in values.items():
            template = template.replace("{{" + name + "}}", value)
        path = Path(template)
        out[key] = path if path.is_absolute() else root / path
    return out


def metadata_file(product: Path) -> Path:
    """Where Ploomber keeps a file product's metadata (source, parameters, timestamp)."""
    return product.with_name(f".{product.name}.metadata")


def note_interactive_run(task: str, product: object, params: Params, root: Path | None = None) -> list[Path]:
    """When ``task`` runs outside Ploomber (``product`` is ``None``), mark its products outdated.

    Args:
        task: the task name in ``pipeline.yaml`` (e.g. ``"03_features"``).
        product: the notebook's ``product`` parameter; Ploomber passes the product paths.
        params: the run parameters (their ``run_date`` and ``reports_dir`` name the products).
        root: the project folder (default: found from the current directory).

    Returns:
        The metadata files removed (empty when run by Ploomber or when there was nothing to mark).
    """
    if product is not None:
        return []
    removed = []
    for path in task_products(task, params, root).values():
        meta = metadata_file(path)
        if meta.is_file():
            meta.unlink()
            removed.append(meta)
    if removed:
        log.warning(
            "Running %s outside the pipeline: it replaces warehouse tables, but not the report in %s. "
            "That report is now marked outdated, so the next `make run` (ploomber build) re-runs %s and "
            "what depends on it.", task, removed[0].parent.name, task)
    else:
        log.info("Running %s outside the pipeline: reports are written by `make run` only.", task)
    return removed
