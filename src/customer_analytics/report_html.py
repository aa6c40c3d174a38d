"""The stakeholder HTML exporter (nbconvert): what :func:`customer_analytics.reports.export_html` uses.

Registered as the nbconvert exporter ``ca_report`` (``customer_analytics.reports:ReportExporter``
resolves here). Kept apart from :mod:`customer_analytics.reports` so that notebook kernels, which
only record headline figures, do not import nbconvert (about 0.9 s per kernel); the HTML export
runs in the pipeline's process.
"""

from __future__ import annotations

import re

from nbconvert.exporters import HTMLExporter
from nbconvert.preprocessors import Preprocessor, TagRemovePreprocessor

from customer_analytics.reports import BANNER_KEY, HIDDEN_TAGS, SUMMARY_TAG

# nbconvert's lab template without the blocks that load scripts from a CDN (require.js, MathJax,
# Mermaid, Jupyter widgets): the reports need none of them and must open offline.
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block data_png scoped -%}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
<img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}"
 alt="{{ output.metadata.get('alt', 'Figure') | escape_html }}">
</div>
{%- endblock data_png -%}
"""


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


class BannerPreprocessor(Preprocessor):
    """Show the run's banner (an experiment's label, data ending before the run date) right after the title.

    The notebooks' set-up cell displays it in its output metadata (``ca_banner``, see
    :meth:`customer_analytics.runs.Run.banner`); this puts it where a reader looks first.
    """

    def preprocess(self, nb, resources):
        import nbformat

        notes: list[str] = []
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                for note in out.get("metadata", {}).get(BANNER_KEY, []) or []:
                    if isinstance(note, str) and note not in notes:
                        notes.append(note)
        if notes:
            text = "\n>\n".join(f"> ⚠ {n}" for n in notes)
            title_at = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
            title = nb.cells[title_at] if title_at >= 0 else None
            if title is not None and title.source.startswith("# "):  # right under the heading
                head, _, rest = title.source.partition("\n")
                nb.cells[title_at] = nbformat.v4.new_markdown_cell(head, metadata=title.metadata)
                nb.cells.insert(title_at + 1, nbformat.v4.new_markdown_cell(text, metadata={"tags": ["banner"]}))
                if rest.strip():
                    nb.cells.insert(title_at + 2, nbformat.v4.new_markdown_cell(rest))
            else:
                nb.cells.insert(title_at + 1, nbformat.v4.new_markdown_cell(text, metadata={"tags": ["banner"]}))
        return nb, resources


class FigureAltPreprocessor(Preprocessor):
    """Give each figure an alternative text: the heading of the section it is in."""

    def preprocess(self, nb, resources):
        heading = nb.metadata.get("title", "Figure")
        for cell in nb.cells:
            if cell.cell_type == "markdown" and (m := re.search(r"^#+\s+(.+)$", cell.source, re.M)):
                heading = m.group(1).strip()
            for out in cell.get("outputs", []):
                if "image/png" in out.get("data", {}):
                    out.setdefault("metadata", {})["alt"] = f"Figure: {heading}"
        return nb, resources


class ReportExporter(HTMLExporter):
    """HTML without code cells' input, prompts or parameter cells; the summary comes first; offline."""

    export_from_notebook = "Customer analytics report"

    def __init__(self, config=None, **kw):
        super().__init__(config=config, **kw)
        self.exclude_input = True
        self.exclude_input_prompt = True
        self.exclude_output_prompt = True
        self.embed_images = True
        self.raw_template = _OFFLINE_TEMPLATE
        self.register_preprocessor(TagRemovePreprocessor(remove_cell_tags=HIDDEN_TAGS), enabled=True)
        self.register_preprocessor(SummaryFirstPreprocessor(), enabled=True)
        self.register_preprocessor(BannerPreprocessor(), enabled=True)
        self.register_preprocessor(FigureAltPreprocessor(), enabled=True)
