"""Stakeholder HTML: an nbconvert exporter that hides code and the parameter cells.

Registered as the nbconvert exporter ``ca_report`` (see ``pyproject.toml``), so Ploomber uses
it through ``nbconvert_exporter_name`` and a Papermill-only user can run
``jupyter nbconvert --to ca_report reports/<date>/01_ingest.ipynb``. Parameter cells are
removed because they show paths; the figures are embedded, so each file opens from disk.
"""

from __future__ import annotations

from nbconvert.exporters import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

HIDDEN_TAGS = {"parameters", "injected-parameters"}


class ReportExporter(HTMLExporter):
    """HTML without code cells' input, prompts or parameter cells."""

    export_from_notebook = "Customer analytics report"

    def __init__(self, config=None, **kw):
        super().__init__(config=config, **kw)
        self.exclude_input = True
        self.exclude_input_prompt = True
        self.exclude_output_prompt = True
        self.register_preprocessor(TagRemovePreprocessor(remove_cell_tags=HIDDEN_TAGS), enabled=True)
