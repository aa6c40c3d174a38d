"""Stakeholder HTML: an nbconvert exporter that hides code and the parameter cells.

Registered as the nbconvert exporter ``ca_report`` (see ``pyproject.toml``), so Ploomber uses
it through ``nbconvert_exporter_name`` and a Papermill-only user can run
``jupyter nbconvert --to ca_report reports/<date>/01_ingest.ipynb``. Parameter cells are
removed because they show paths; the figures are embedded, so each file opens from disk.

Report conventions for notebooks:

* the first markdown cell starts with ``# <title>``: it becomes the page title;
* a code cell tagged ``summary`` (usually the last one, written from the run's own numbers)
  is moved right after the title, so a reader sees "what this run found" first.
"""

from __future__ import annotations

import re

from nbconvert.exporters import HTMLExporter
from nbconvert.preprocessors import Preprocessor, TagRemovePreprocessor

HIDDEN_TAGS = {"parameters", "injected-parameters"}
SUMMARY_TAG = "summary"


class SummaryFirstPreprocessor(Preprocessor):
    """Move cells tagged ``summary`` after the title cell; use the title as the page title."""

    def preprocess(self, nb, resources):
        cells = nb.cells
        summary = [c for c in cells if SUMMARY_TAG in c.get("metadata", {}).get("tags", [])]
        rest = [c for c in cells if c not in summary]
        title_at = next((i for i, c in enumerate(rest) if c.cell_type == "markdown"), -1)
        nb.cells = rest[: title_at + 1] + summary + rest[title_at + 1:]
        if title_at >= 0 and (m := re.match(r"#\s+(.+)", rest[title_at].source.strip())):
            nb.metadata["title"] = m.group(1).strip()
        return nb, resources


class ReportExporter(HTMLExporter):
    """HTML without code cells' input, prompts or parameter cells; the summary comes first."""

    export_from_notebook = "Customer analytics report"

    def __init__(self, config=None, **kw):
        super().__init__(config=config, **kw)
        self.exclude_input = True
        self.exclude_input_prompt = True
        self.exclude_output_prompt = True
        self.register_preprocessor(TagRemovePreprocessor(remove_cell_tags=HIDDEN_TAGS), enabled=True)
        self.register_preprocessor(SummaryFirstPreprocessor(), enabled=True)
