"""The stakeholder HTML exporter (nbconvert): what :func:`customer_analytics.reports.export_html`
uses.

Registered as the nbconvert exporter ``ca_report`` (``customer_analytics.reports:ReportExporter``
resolves here). Kept apart from :mod:`customer_analytics.reports` so that notebook kernels, which
only record headline figures, do not import nbconvert (about 0.9 s per kernel); the HTML export
runs in the pipeline's process.
"""

from __future__ import annotations

import re

from nbconvert.exporters import HTMLExporter
from nbconvert.preprocessors import Preprocessor, TagRemovePreprocessor

from customer_analytics.reports import BANNER_KEY, HIDDEN_TAGS, NOTEBOOK_ONLY_TAGS, SUMMARY_TAG

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


class TitlePreprocessor(Preprocessor):
    """Take the page title from the first heading and keep the run's banners, before any cell is
    removed.

    The notebooks' set-up cell displays the banner in its output metadata (``ca_banner``, see
    :meth:`customer_analytics.runs.Run.banner`); the set-up cell itself is notebook-only.
    """

    def preprocess(self, nb, resources):
        first = next((c for c in nb.cells if c.cell_type == "markdown"), None)
        if first is not None and (m := re.match(r"#\s+(.+)", first.source.strip())):
            nb.metadata["title"] = m.group(1).strip()
        notes: list[str] = []
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                for note in out.get("metadata", {}).get(BANNER_KEY, []) or []:
                    if isinstance(note, str) and note not in notes:
                        notes.append(note)
        resources[BANNER_KEY] = notes
        return nb, resources


def _title_at(nb) -> int:
    """Index of a visible title cell (markdown starting with ``# ``) at the top, or -1."""
    first = next(
        (i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" or c.get("outputs")), -1
    )
    if (
        first >= 0
        and nb.cells[first].cell_type == "markdown"
        and nb.cells[first].source.startswith("# ")
    ):
        return first
    return -1


class SummaryFirstPreprocessor(Preprocessor):
    """Move cells tagged ``summary`` to the top: right after a visible title, else first.

    A notebook whose introduction is notebook-only has no visible title: its summary's own heading
    is
    then the report's first heading.
    """

    def preprocess(self, nb, resources):
        summary = [c for c in nb.cells if SUMMARY_TAG in c.get("metadata", {}).get("tags", [])]
        nb.cells = [c for c in nb.cells if c not in summary]
        title_at = _title_at(nb)
        nb.cells = nb.cells[: title_at + 1] + summary + nb.cells[title_at + 1 :]
        return nb, resources


class BannerPreprocessor(Preprocessor):
    """Show the run's banner (an experiment's label, data ending before the run date) where a
    reader looks
    first: right under a visible title, else at the very top."""

    def preprocess(self, nb, resources):
        import nbformat

        notes = resources.get(BANNER_KEY) or []
        if not notes:
            return nb, resources
        text = "\n>\n".join(f"> ⚠ {n}" for n in notes)
        banner = nbformat.v4.new_markdown_cell(text, metadata={"tags": ["banner"]})
        title_at = _title_at(nb)
        if title_at < 0:
            nb.cells.insert(0, banner)
            return nb, resources
        title = nb.cells[title_at]
        head, _, rest = title.source.partition("\n")
        nb.cells[title_at] = nbformat.v4.new_markdown_cell(head, metadata=title.metadata)
        nb.cells.insert(title_at + 1, banner)
        if rest.strip():
            nb.cells.insert(title_at + 2, nbformat.v4.new_markdown_cell(rest))
        return nb, resources


_HEADING = re.compile(r"^(#{1,6})\s+\S")


def _heading_level(cell) -> int | None:
    """The level of a markdown cell made of headings only (``## Set-up``), else ``None``."""
    if cell.cell_type != "markdown":
        return None
    lines = [ln for ln in cell.source.splitlines() if ln.strip()]
    if not lines or not all(_HEADING.match(ln) for ln in lines):
        return None
    return min(len(m.group(1)) for ln in lines if (m := _HEADING.match(ln)))


def _shows_something(cell) -> bool:
    if cell.cell_type == "markdown":
        return bool(cell.source.strip())
    return any(
        o.get("output_type") in ("stream", "error") or o.get("data")
        for o in cell.get("outputs", [])
    )


class EmptySectionPreprocessor(Preprocessor):
    """Drop headings with nothing under them (a section whose cells are notebook-only or showed
    nothing),
    and code cells that show nothing."""

    def preprocess(self, nb, resources):
        cells = [c for c in nb.cells if c.cell_type == "markdown" or _shows_something(c)]
        keep = []
        for i, cell in enumerate(cells):
            level = _heading_level(cell)
            if level is not None:
                nxt = next((c for c in cells[i + 1 :]), None)
                nxt_level = _heading_level(nxt) if nxt is not None else 0
                if nxt is None or (nxt_level is not None and nxt_level <= level):
                    continue
            keep.append(cell)
        nb.cells = keep
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
    """HTML without code cells' input, prompts, parameter cells or notebook-only cells; the summary
    comes
    first; offline."""

    export_from_notebook = "Customer analytics report"

    def __init__(self, config=None, **kw):
        super().__init__(config=config, **kw)
        self.exclude_input = True
        self.exclude_input_prompt = True
        self.exclude_output_prompt = True
        self.embed_images = True
        self.raw_template = _OFFLINE_TEMPLATE
        self.register_preprocessor(TitlePreprocessor(), enabled=True)  # before any cell goes
        self.register_preprocessor(
            TagRemovePreprocessor(remove_cell_tags=HIDDEN_TAGS | NOTEBOOK_ONLY_TAGS), enabled=True
        )
        self.register_preprocessor(SummaryFirstPreprocessor(), enabled=True)
        self.register_preprocessor(BannerPreprocessor(), enabled=True)
        self.register_preprocessor(EmptySectionPreprocessor(), enabled=True)
        self.register_preprocessor(FigureAltPreprocessor(), enabled=True)
