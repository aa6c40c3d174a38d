"""Stakeholder HTML: the report exporter, per-run headline records and the run index.

**Report exporter** (:mod:`customer_analytics.report_html`, loaded on first use: kernels that only
record headlines do not import nbconvert). Registered as the nbconvert exporter ``ca_report`` (see
``pyproject.toml``),
so Ploomber uses it through ``nbconvert_exporter_name`` and a Papermill-only user can run
``jupyter nbconvert --to ca_report reports/<date>/01_ingest.ipynb``. Code, prompts and the
parameter cells are removed (they show paths); figures are embedded; the page loads nothing
from the network (nbconvert's lab template would fetch require.js, MathJax and Mermaid from a
CDN; those blocks are left out), so each file opens from disk or a file share, offline.

Report conventions for notebooks (cell tags; the notebook keeps every cell, the HTML shows what a
stakeholder reads):

* the first markdown cell starts with ``# <title>``: it becomes the page title;
* cells tagged ``intro`` (the developer's introduction), ``setup``, ``recap`` and ``details`` (full
  diagnostic tables) stay in the executed notebook and are removed from the HTML (nbconvert's
  ``TagRemovePreprocessor``); a heading left with nothing under it is dropped;
* a code cell tagged ``summary`` (usually the last one, written from the run's own numbers, its
  Markdown opening with the summary's heading) is moved to the top, so the report's first heading
  is its summary; the run's banner (experiment, data ending before the run date) goes above it;
* a cell tagged ``glossary`` ends the report.

**Run records and index.** Each run writes ``reports/<run_date>/``. A notebook's summary cell calls
:func:`record` to leave its headline figures in ``reports/<run_date>/headlines/<notebook>.json``;
the scheduled-run command (:mod:`customer_analytics.cli`) writes the run's status to
``reports/<run_date>/run.json``. :func:`build_index` turns those files into ``reports/index.html``:
one row per run, newest first, with headline figures and links to the reports. A missing or
unreadable record shows as "—"; it never breaks the index. Only aggregates go into these files (no
customer rows, no paths, no connection details).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from customer_analytics import fsutil, headlines, redaction
from customer_analytics.config import Params
from customer_analytics.narrative import fmt as numbers

log = logging.getLogger(__name__)

HIDDEN_TAGS = {"parameters", "injected-parameters"}
DEFAULT_CURRENCY = (
    "EUR"  # = the currency parameter's default, for records written before it existed
)
#: cells that stay in the executed notebook but not in the stakeholder HTML: the developer's
#: introduction (``intro``), the set-up (``setup``), the recap (``recap``) and full diagnostic
#: tables (``details``)
NOTEBOOK_ONLY_TAGS = {"intro", "setup", "recap", "details"}
BANNER_KEY = (
    "ca_banner"  # = runs.BANNER_KEY (runs imports this module's callers, not the other way)
)
SUMMARY_TAG = "summary"
HEADLINES_DIR = "headlines"
STATUS_FILE = "run.json"
INDEX_FILE = "index.html"
DATE_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: What :mod:`customer_analytics.report_html` defines, importable from here as before (loaded on
#: use:
#: a notebook kernel records headlines without importing nbconvert).
_EXPORTER_NAMES = (
    "ReportExporter",
    "TitlePreprocessor",
    "SummaryFirstPreprocessor",
    "BannerPreprocessor",
    "EmptySectionPreprocessor",
    "FigureAltPreprocessor",
)


def __getattr__(name: str) -> Any:
    if name in _EXPORTER_NAMES:
        from customer_analytics import report_html

        return getattr(report_html, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def export_html(notebook: Path, html: Path) -> Path:
    """Write the stakeholder HTML of an executed notebook (what Ploomber does for each task)."""
    from customer_analytics.report_html import ReportExporter

    body, _ = ReportExporter().from_filename(str(notebook))
    fsutil.atomic_write(html, body)
    return html


# --------------------------------------------------------------------------- run records
def export_failed_html(notebook: Path, html: Path, reason: str) -> Path:
    """The HTML of a notebook that failed: what it showed up to the failure, marked failed at the
    top.

    Error outputs (tracebacks, with paths and code) are replaced by the one-line, redacted reason.
    """
    import nbformat

    from customer_analytics.report_html import ReportExporter

    nb = nbformat.read(notebook, as_version=4)
    banner = nbformat.v4.new_markdown_cell(
        f"> **This step FAILED** — {redact(reason)}\n>\n> What follows is what it showed before "
        "it stopped; the previous run's tables and model are unchanged."
    )
    for cell in nb.cells:
        outs = cell.get("outputs", [])
        if any(o.get("output_type") == "error" for o in outs):
            cell.outputs = [o for o in outs if o.get("output_type") != "error"] + [
                nbformat.v4.new_output("stream", name="stderr", text=f"FAILED: {redact(reason)}\n")
            ]
    title_at = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
    nb.cells.insert(title_at + 1, banner)
    body, _ = ReportExporter().from_notebook_node(nb)
    fsutil.atomic_write(html, body)
    return html


def record(
    params: Params,
    folder: Path | None,
    notebook: str,
    record: headlines.Record | None = None,
    **figures: Any,
) -> Path | None:
    """Save a notebook's headline record for the run index (aggregates only).

    Called through :meth:`customer_analytics.runs.Run.record` from a notebook's summary cell.

    Args:
        params: the run's parameters (their run date is recorded).
        folder: the run's report folder (``None``: a notebook run on its own records nothing).
        notebook: the notebook's name.
        record: the typed headline record; ``figures`` adds (or, without a record, gives) values.

    Returns:
        The JSON file written, ``<folder>/headlines/<notebook>.json``, or ``None``.
    """
    if not re.fullmatch(r"[A-Za-z0-9_]+", notebook):
        raise ValueError(f"notebook name {notebook!r}: letters, digits and _ only")
    if folder is None:
        return None
    values = {**(record.as_dict() if record is not None else {}), **figures}
    payload = {
        "notebook": notebook,
        "recorded": _now(),
        "run_date": params.run_date.isoformat(),
        **values,
    }
    path = folder / HEADLINES_DIR / f"{notebook}.json"
    fsutil.atomic_write(path, json.dumps(payload, indent=2, default=_jsonable))
    return path


def read_headlines(folder: Path) -> dict[str, dict[str, Any]]:
    """Every headline record of a run folder, by notebook (unreadable files are skipped with a
    warning)."""
    out = {}
    for path in sorted((folder / HEADLINES_DIR).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable headline record %s/%s: %s", folder.name, path.name, e)
            continue
        if isinstance(data, dict):
            out[path.stem] = data
    return out


def write_status(folder: Path, **status: Any) -> Path:
    """Write (replace) the run's status file ``run.json``."""
    if status.get("reason"):
        status["reason"] = redact(str(status["reason"]))
    return fsutil.atomic_write(
        folder / STATUS_FILE, json.dumps(status, indent=2, default=_jsonable)
    )


def read_status(folder: Path) -> dict[str, Any]:
    """The run's status file, or ``{}`` when there is none or it cannot be read."""
    try:
        data = json.loads((folder / STATUS_FILE).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def finish_run(
    folder: Path,
    context: dict[str, Any],
    *,
    ok: bool,
    ran: list[str],
    failed_step: str = "",
    reason: str = "",
) -> Path:
    """Record how a build ended in ``run.json`` (Ploomber's DAG hooks and the run command call
    this).

    The command's own fields (kind, start, log, pid) are kept when this process wrote them; a plain
    ``ploomber build`` leaves a status of its own, so the index never pairs new figures with an old
    status.
    """
    old = read_status(folder)
    mine = old.get("pid") == os.getpid()
    status: dict[str, Any] = {
        k: old[k] for k in ("kind", "started", "log", "pid") if mine and k in old
    }
    status.setdefault("kind", "pipeline")
    status.update(
        run_date=folder.name,
        namespace=context.get("namespace")
        or {"kind": "production", "name": "production", "label": ""},
        finished=_now(),
        ran=ran,
    )
    if ok:
        status["status"] = (
            "succeeded"
            if ran or not old.get("status")
            else ("succeeded" if old.get("status") == "succeeded" else old.get("status"))
        )
        if not ran:
            status["note"] = "up to date: nothing needed to run again"
    else:
        status.update(status="failed", failed_step=failed_step, reason=reason)
    return write_status(folder, **status)


def notebook_error(path: Path) -> str | None:
    """``"<ErrorName>: <message>"`` of the first cell that raised in an executed notebook, if
    any."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".strip()
    return None


def redact(
    text: str,
    limit: int | None = 400,
    *,
    keep: tuple[Path, ...] = (),
    inside: tuple[Path, ...] = (),
) -> str:
    """The one redaction of messages (see :func:`customer_analytics.redaction.redact`).

    Failure reasons shown in the shared index must not reveal where files live, nor personal data.
    """
    return redaction.redact(text, limit, keep=keep, inside=inside)


# --------------------------------------------------------------------------- index
EXPERIMENTS_DIR = "experiments"


@dataclasses.dataclass
class RunRow:
    """What the index shows for one run folder: one story per run, in words and in the run's
    currency."""

    run_date: str
    status: str  # succeeded | failed | running | interrupted | incomplete
    kind: str = "pipeline"
    namespace: str = "production"
    label: str = ""
    href: str = ""  # the folder, relative to the index
    finished: str = ""
    failed_step: str = ""
    reason: str = ""
    note: str = ""
    log_name: str = ""
    currency: str = DEFAULT_CURRENCY
    sources: list[str] = dataclasses.field(default_factory=list)  # what was received, per source
    rejected: int | None = None  # rows rejected, all sources
    trained: str = ""  # the version 04 trained here, its error and the promotion decision
    model: str = ""  # the version 05 scored with
    error: str = ""
    customers_scored: int | None = None
    predicted_spend: float | None = (
        None  # the forecast total (expected spend; the model's own sum before)
    )
    forecast: str = ""  # the forecast with its range, in words
    outcome: str = ""  # this run's forecast against what happened, once a later run checked it
    track: list[str] = dataclasses.field(default_factory=list)  # earlier forecasts this run checked
    changes: str = ""  # what changed since the previous run
    window_end: str = ""
    drift: list[str] = dataclasses.field(default_factory=list)
    drift_state: str = ""
    banner: list[str] = dataclasses.field(default_factory=list)
    links: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    checks: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # the raw track records


def run_folders(reports_dir: Path) -> list[tuple[Path, str]]:
    """Every run folder with its namespace: production's ``<date>/`` and
    ``experiments/<name>/<date>/``."""
    if not reports_dir.is_dir():
        return []
    out = [
        (p, "production") for p in reports_dir.iterdir() if p.is_dir() and DATE_FOLDER.match(p.name)
    ]
    exp = reports_dir / EXPERIMENTS_DIR
    if exp.is_dir():
        for name in sorted(p for p in exp.iterdir() if p.is_dir()):
            out += [
                (p, name.name) for p in name.iterdir() if p.is_dir() and DATE_FOLDER.match(p.name)
            ]
    return out


def collect_runs(reports_dir: Path) -> list[RunRow]:
    """One :class:`RunRow` per run folder: production first, newest run date first; then
    experiments."""
    rows = [_run_row(folder, ns, reports_dir) for folder, ns in run_folders(reports_dir)]
    rows = sorted(rows, key=lambda r: (r.namespace != "production", r.namespace, _desc(r.run_date)))
    _outcomes(rows)
    return rows


def _outcomes(rows: list[RunRow]) -> None:
    """Give each run's forecast the outcome a later run of its namespace checked (the newest check
    wins)."""
    for row in rows:
        for later in rows:  # newest first within a namespace
            if later.namespace != row.namespace or later.run_date <= row.run_date:
                continue
            found = [c for c in later.checks if c.get("run_date") == row.run_date]
            if found:
                c = found[0]
                inside = c.get("inside")
                mark = (
                    " ✓ inside the range"
                    if inside is True
                    else " ✗ outside the range"
                    if inside is False
                    else ""
                )
                row.outcome = (
                    f"actual {numbers.money(c.get('actual'), later.currency)}{mark} "
                    f"(checked on {later.run_date})"
                )
                break


def _desc(day: str) -> str:
    return "".join(chr(ord("9") - ord(c) + ord("0")) if c.isdigit() else c for c in day)


def build_index(reports_dir: Path) -> Path:
    """Write ``reports_dir/index.html`` from the run folders (atomically) and return its path."""
    rows = collect_runs(reports_dir)
    production = [r for r in rows if r.namespace == "production"]
    experiments: dict[str, list[RunRow]] = {}
    for r in rows:
        if r.namespace != "production":
            experiments.setdefault(r.namespace, []).append(r)
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["num"] = lambda v, d=0: "—" if v is None else f"{v:,.{d}f}"
    html = env.from_string(_INDEX_TEMPLATE).render(
        production=production, experiments=experiments, generated=_now().replace("T", " ")[:16]
    )
    path = reports_dir / INDEX_FILE
    fsutil.atomic_write(path, html)
    log.info("run index: %s (%d runs)", path, len(rows))
    return path


def _run_row(folder: Path, namespace: str, reports_dir: Path) -> RunRow:
    status = read_status(folder)
    heads = read_headlines(folder)

    def text(key: str) -> str:
        return str(status.get(key) or "")

    ns = status.get("namespace")
    ns = ns if isinstance(ns, dict) else {}
    label = str(ns.get("label") or "")
    if not label:
        label = next(
            (
                str(h.get("namespace", {}).get("label") or "")
                for h in heads.values()
                if isinstance(h.get("namespace"), dict)
            ),
            "",
        )
    href = folder.relative_to(reports_dir).as_posix()
    row = RunRow(
        run_date=folder.name,
        status=text("status"),
        kind=text("kind") or "pipeline",
        namespace=namespace,
        label=label,
        href=href,
        finished=text("finished").replace("T", " ")[:16],
        failed_step=text("failed_step"),
        reason=redact(text("reason")),
        note=text("note"),
        log_name=text("log"),
    )
    notebooks = sorted(p.stem for p in folder.glob("*.ipynb"))
    if row.status == "running" and not fsutil.pid_alive(status.get("pid")):
        row.status, row.reason = "interrupted", "the run stopped without recording its result"
    if not row.status:  # no status file: infer it from the products
        row.status = "succeeded" if notebooks else "incomplete"
        for nb in notebooks:
            html = folder / f"{nb}.html"
            if (err := notebook_error(folder / f"{nb}.ipynb")) and (
                not html.exists() or html.stat().st_mtime < (folder / f"{nb}.ipynb").stat().st_mtime
            ):
                row.status, row.failed_step, row.reason = "failed", nb, redact(err)
                break
            if not html.exists():
                row.status = "incomplete"
    valid = [nb for nb in notebooks if not row.failed_step or nb <= row.failed_step]
    if row.status == "failed" and not row.failed_step:
        valid = []
    if row.status == "failed":  # figures of the failed step and later ones would be stale
        heads = {k: v for k, v in heads.items() if row.failed_step and k < row.failed_step}
    row.links = [
        (nb.replace("_", " ") + (" (failed)" if nb == row.failed_step else ""), f"{href}/{nb}.html")
        for nb in valid
        if (folder / f"{nb}.html").is_file()
    ]
    _fill_figures(row, {k: r for k, v in heads.items() if (r := headlines.parse(k, v)) is not None})
    for head in (
        heads.values()
    ):  # what the reports of this run say first (e.g. data ending before run_date)
        for note in head.get("banner") or []:
            plain = re.sub(r"[*`]", "", str(note))
            if plain not in row.banner and not plain.startswith("Experiment "):
                row.banner.append(plain)
    return row


def _fill_figures(row: RunRow, heads: dict[str, headlines.Record]) -> None:
    from customer_analytics.narrative import runs as words

    pred = heads.get("05_batch_prediction")
    if isinstance(pred, headlines.Scoring) and pred.currency:
        row.currency = pred.currency
    ing = heads.get("01_ingest")
    if isinstance(ing, headlines.Ingest) and (counts := ing.counts()):
        row.sources = words.received(counts)
        row.rejected = sum(c.rejected for c in counts)
    comp = heads.get("04_model_comparison")
    if isinstance(comp, headlines.Model) and comp.version:
        row.trained = words.trained(comp, row.currency)
    if isinstance(pred, headlines.Scoring) and pred.model_version:
        row.model = words.scored_with(pred)
        if row.kind == "score":
            row.error = "re-scored with the registry's default model"
        row.customers_scored = pred.customers_scored
        row.predicted_spend = (
            pred.expected_spend if pred.expected_spend is not None else pred.predicted_spend
        )
        row.forecast = words.forecast(pred, row.currency)
        row.window_end = pred.window_end or ""
        row.checks = [c for c in pred.track if isinstance(c, dict) and c.get("run_date")]
        row.track = [words.check_text(c, row.currency, short=True) for c in row.checks]
        row.changes = words.changes_text(pred.changes, row.currency)
        row.drift = words.drift_flags(pred.drift)
        if not row.drift:
            row.drift_state = "no large shift" if pred.drift_assessed else "not assessed"


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # NumPy scalars
        return value.item()
    if hasattr(value, "tolist"):  # NumPy arrays, pandas Series
        return value.tolist()
    if isinstance(value, set | tuple):
        return list(value)
    if isinstance(value, Path):
        raise TypeError("paths are not recorded in reports")
    return str(value)


_INDEX_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Customer analytics: runs</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem; color: \
#2b2b2b; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
p.lead { color: #555; margin-top: 0; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { text-align: left; vertical-align: top; padding: .5rem .6rem; border-bottom: 1px solid \
#e3e3e3; }
th { background: #f6f1ec; font-weight: 600; }
td.num { text-align: right; white-space: nowrap; }
td:first-child strong { white-space: nowrap; }
.status { font-weight: 600; white-space: nowrap; }
.succeeded { color: #1d6b2f; } .failed, .interrupted { color: #a11d1d; } .running, .incomplete { \
color: #8a6d00; }
.small { color: #666; font-size: .82rem; }
.flag { color: #a11d1d; font-weight: 600; }
.outcome { font-weight: 600; margin-top: .3rem; }
td.forecast, td.track { min-width: 12rem; }
.tag { background: #efe7df; border-radius: .3rem; padding: 0 .35rem; font-size: .82rem; }
ul.links { margin: 0; padding-left: 1rem; }
</style>
</head>
<body>
<h1>Customer analytics: runs</h1>
<p class="lead">Production runs first, newest first; experiments (runs with other parameters) are \
listed apart and
never change production's tables, reports or model. Figures are aggregates only; a forecast is \
checked against
what its customers actually spent once its window has ended (✓ inside its range, ✗ outside). Updated
{{ generated }}.</p>
{% macro table(runs) %}
<table>
<thead><tr><th>Run date</th><th>Status</th><th>Data received</th><th>Forecast (expected spend)</th>
<th>Forecast vs actual</th><th>What \
changed</th><th>Models</th><th>Drift</th><th>Reports</th></tr></thead>
<tbody>
{% for r in runs %}<tr id="run-{{ r.namespace }}-{{ r.run_date }}">
<td><strong>{{ r.run_date }}</strong><div class="small">{{ "re-scoring" if r.kind == "score" else \
r.kind }}</div></td>
<td><span class="status {{ r.status }}">{{ r.status }}{% if r.failed_step %} at {{ r.failed_step \
}}{% endif %}</span>
{% if r.reason %}<div class="small">{{ r.reason }}</div>{% endif %}
{% for b in r.banner %}<div class="flag small">⚠ {{ b }}</div>{% endfor %}
{% if r.note %}<div class="small">{{ r.note }}</div>{% endif %}
{% if r.finished %}<div class="small">{{ r.finished }}</div>{% endif %}
{% if r.log_name %}<div class="small">log: {{ r.log_name }}</div>{% endif %}</td>
<td>{% for s in r.sources %}<div>{{ s }}</div>{% endfor %}{% if not r.sources %}—{% endif %}</td>
<td class="forecast">{{ r.forecast or "—" }}
{% if r.window_end %}<div class="small">window up to {{ r.window_end }}</div>{% endif %}
{% if r.outcome %}<div class="outcome">{{ r.outcome }}</div>{% endif %}</td>
<td class="track">{% for t in r.track %}<div>{{ t }}</div>{% endfor %}{% if not r.track %}—{% \
endif %}</td>
<td class="small">{{ r.changes or "—" }}</td>
<td>{% if r.trained %}<div><span class="small">trained:</span> {{ r.trained }}</div>{% endif %}
{% if r.model %}<div><span class="small">forecast by:</span> {{ r.model }}</div>{% endif %}
{% if r.error %}<div class="small">{{ r.error }}</div>{% endif %}{% if not r.trained and not \
r.model %}—{% endif %}</td>
<td>{% for f in r.drift %}<div class="flag">⚠ {{ f }}</div>{% endfor %}
{% if not r.drift %}{{ r.drift_state or "—" }}{% endif %}</td>
<td>{% if r.links %}<ul class="links">
{% for label, href in r.links %}<li><a href="{{ href }}">{{ label }}</a></li>{% endfor %}</ul>
{% else %}—{% endif %}</td>
</tr>
{% endfor %}</tbody>
</table>
{% endmacro %}
<h2>Production</h2>
{% if not production %}<p>No production run yet.</p>{% else %}{{ table(production) }}{% endif %}
{% if experiments %}<h2>Experiments</h2>
{% for name, runs in experiments.items() %}
<h3 id="experiment-{{ name }}">{{ name }}
<span class="tag">{{ runs[0].label or "same parameters as production" }}</span></h3>
{{ table(runs) }}
{% endfor %}{% endif %}
</body>
</html>
"""
