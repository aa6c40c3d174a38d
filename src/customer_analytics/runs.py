"""Runs and their namespaces: production, experiments and scratch, kept apart.

A run's *identity* is the set of parameters that change what it computes (declared with
``identity=True`` in :mod:`customer_analytics.parameters`: data and column mapping, sample,
horizon, cut-offs, models, seed, ...). The run date is not part of it: production runs every day.

* **production** — the identity of ``env.yaml`` as it is. Its tables live in the production
  schema, its reports in ``reports/<run_date>/``, its models in the production registry.
* **experiment** — a pipeline run whose identity differs (``--set horizon_days=30``), or one
  given a name (``--set run_namespace=my-test``). Everything it writes goes to its own schema
  (``<SCHEMA>__X_<NAME>``), its own report folder (``reports/experiments/<name>/<run_date>/``)
  and its own registry, so it can never overwrite production's tables, reports, predictions or
  default model. Its name is given, or derived from what differs (``horizon_days-30``); its
  label says it for people ("horizon 30 d; 10% sample").
* **scratch** — a notebook run on its own (JupyterLab "Run All", Papermill on one notebook):
  it writes into ``<SCHEMA>__SCRATCH`` and reads what it does not produce itself from
  production (live views onto production's tables, refreshed at every set-up); it writes no
  report. Setting ``run_namespace = "production"`` in the parameters cell writes production instead
  (allowed only with production's parameters).

Every notebook's set-up cell is ``run = runs.start("<notebook>", globals())``: it validates the
parameters, resolves the namespace, opens the notebook's one warehouse session and says where
the notebook reads and writes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from customer_analytics import config
from customer_analytics import parameters as P
from customer_analytics.config import ConfigError, Params

log = logging.getLogger(__name__)

PRODUCTION, EXPERIMENT, SCRATCH = "production", "experiment", "scratch"
#: Environment variable through which a pipeline run hands its full parameters to the notebook
#: kernels it starts (Ploomber passes each notebook only the parameters it declares).
RUN_PARAMS_VAR = "CA_RUN_PARAMS"
EXPERIMENTS_DIR = "experiments"
SCRATCH_SUFFIX = "__SCRATCH"
EXPERIMENT_INFIX = "__X_"

#: Which notebook writes each table (by name or prefix). In scratch, the tables a notebook does
#: not write are read through views onto production's; its own are real tables.
TABLE_OWNERS: tuple[tuple[str, str], ...] = (  # first match wins
    ("RAW_", "01_ingest"),
    ("STAGE_", "01_ingest"),
    ("CLEAN_", "01_ingest"),
    ("REJECTED_", "01_ingest"),
    ("INGEST_", "01_ingest"),
    ("PRODUCT_", "01_ingest"),
    ("EXCLUDED_", "01_ingest"),
    ("TEXT_SENTIMENT", "03_features"),
    ("TEXT_", "02_eda"),
    ("EMBEDDING_", "02_eda"),
    ("TOPIC_", "02_eda"),
    ("BTYD_SCORES_AT_", "05_batch_prediction"),
    ("FEATURE", "03_features"),
    ("BTYD_", "03_features"),
    ("SENTIMENT_", "03_features"),
    ("PREDICTIONS", "05_batch_prediction"),
    ("SCORING_", "05_batch_prediction"),
    ("TARGETS", "05_batch_prediction"),
    ("FORECASTS", "05_batch_prediction"),
)


def table_owner(table: str) -> str | None:
    """The notebook that writes ``table`` (``None``: not a table of the pipeline)."""
    name = table.upper()
    return next((nb for prefix, nb in TABLE_OWNERS if name.startswith(prefix)), None)


# --------------------------------------------------------------------------- namespaces
@dataclasses.dataclass(frozen=True)
class Namespace:
    """Where a run writes: production, an experiment, or scratch.

    Attributes:
        kind: ``production``, ``experiment`` or ``scratch``.
        name: ``production``, ``scratch`` or the experiment's name.
        label: what differs from production, for people ("" for production).
        differences: identity parameter -> (production's value, this run's value).
    """

    kind: str
    name: str
    label: str = ""
    differences: tuple[tuple[str, Any, Any], ...] = ()

    def schema(self, production_schema: str) -> str:
        """The warehouse schema of this namespace, derived from production's."""
        if self.kind == PRODUCTION:
            return production_schema
        if self.kind == SCRATCH:
            return config.check_identifier(production_schema + SCRATCH_SUFFIX)
        slug = re.sub(r"[^A-Z0-9]", "_", self.name.upper())
        if not re.fullmatch(r"[a-z0-9_]+", self.name):  # 'a.b' and 'a-b' must not share a schema
            slug += "_" + hashlib.sha1(self.name.encode()).hexdigest()[:6].upper()
        return config.check_identifier(production_schema + EXPERIMENT_INFIX + slug)

    def folder(self, run_date: dt.date | str) -> str:
        """This namespace's report folder for ``run_date``, relative to ``reports_dir``."""
        day = run_date.isoformat() if isinstance(run_date, dt.date) else str(run_date)
        if self.kind == PRODUCTION:
            return day
        if self.kind == SCRATCH:
            return f"{SCRATCH}/{day}"
        return f"{EXPERIMENTS_DIR}/{self.name}/{day}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "label": self.label}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Namespace:
        return cls(str(d["kind"]), str(d["name"]), str(d.get("label") or ""))


def differences(params: Params, production: Params) -> list[tuple[str, Any, Any]]:
    """The identity parameters whose values differ from production's, in declaration order."""
    mine, prod = params.identity(), production.identity()
    return [(k, prod[k], mine[k]) for k in mine if _norm(mine[k]) != _norm(prod[k])]


def _norm(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _derived_name(diffs: list[tuple[str, Any, Any]]) -> str:
    parts = []
    for name, _, value in diffs:
        v = value if isinstance(value, str | int | float) else None
        parts.append(f"{name}-{v}" if v is not None and len(str(v)) <= 16 else name)
    slug = re.sub(r"[^a-z0-9_.-]+", "-", "+".join(parts).lower()).strip("-.")
    if (
        len(slug) <= 40
        and P.NAME.match(slug)
        and all(isinstance(d[2], str | int | float) for d in diffs)
    ):
        return slug
    return "exp-" + hashlib.sha1(_norm(diffs).encode()).hexdigest()[:8]


def resolve(params: Params, production: Params, pipeline: bool) -> Namespace:
    """The namespace of a run with ``params`` (``pipeline``: a pipeline run, else a notebook on its
    own).

    Raises:
        ConfigError: ``run_namespace: production`` was asked with parameters that are not
            production's.
    """
    diffs = differences(params, production)
    label = "; ".join(P.get(n).describe(v) for n, _, v in diffs)
    requested = params.run_namespace
    if requested == P.NAMESPACE_PRODUCTION or (
        requested == P.NAMESPACE_AUTO and pipeline and not diffs
    ):
        if diffs:
            what = ", ".join(f"{n} ({_short(v)} instead of {_short(p)})" for n, p, v in diffs)
            raise ConfigError(
                "run_namespace 'production' runs with production's parameters (env.yaml), but "
                f"these differ: {what}. Change env.yaml to change production, or run this as an "
                "experiment (run_namespace auto or a name)."
            )
        return Namespace(PRODUCTION, PRODUCTION)
    if requested == P.NAMESPACE_SCRATCH or (requested == P.NAMESPACE_AUTO and not pipeline):
        return Namespace(SCRATCH, SCRATCH, label or "same parameters as production", tuple(diffs))
    name = requested if requested != P.NAMESPACE_AUTO else _derived_name(diffs)
    return Namespace(EXPERIMENT, name, label or "same parameters as production", tuple(diffs))


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else _norm(value)
    return text if len(text) <= 30 else text[:29] + "…"


def production_params(root: Path | None = None) -> Params:
    """Production's parameters: the parameter file (``env.yaml``) as it is."""
    return config.load(root)


def pipeline_params(root: Path) -> dict[str, Any] | None:
    """The parameters a pipeline run handed to this kernel (``None`` outside a pipeline run)."""
    raw = os.environ.get(RUN_PARAMS_VAR)
    if not raw:
        return None
    try:
        values = json.loads(raw)
    except ValueError as e:
        raise ConfigError(f"{RUN_PARAMS_VAR} does not hold the run's parameters as JSON.") from e
    return values if isinstance(values, dict) else None


def export_params(params: Params) -> None:
    """Hand ``params`` to the notebook kernels this process starts (see :data:`RUN_PARAMS_VAR`)."""
    os.environ[RUN_PARAMS_VAR] = json.dumps(params.values(), sort_keys=True)


# --------------------------------------------------------------------------- a notebook's run
WORK_LOCK = "work.lock"
#: Output metadata key of the set-up cell's banner (the report exporter shows it first).
BANNER_KEY = "ca_banner"


@dataclasses.dataclass(repr=False)
class Run:
    """What a notebook's set-up cell resolved: parameters, namespace, its one session, where it
    reports.

    Attributes:
        notebook: the notebook's name (e.g. ``03_features``).
        params: the validated parameters.
        namespace: production, an experiment or scratch.
        session: the notebook's warehouse session (one per notebook), in the namespace's schema.
        database, schema: where this run's tables live; ``production_schema``: production's.
        folder: the run's report folder, or ``None`` for a notebook run on its own.
        product: the notebook's ``product`` parameter as Ploomber/Papermill passed it.
    """

    notebook: str
    params: Params
    namespace: Namespace
    session: Any
    database: str
    schema: str
    production_schema: str
    folder: Path | None = None
    product: Any = None
    views: tuple[str, ...] = ()
    context: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def interactive(self) -> bool:
        """A notebook run on its own (no pipeline): writes scratch, records no report."""
        return self.folder is None

    def record(self, record: Any = None, **figures: Any) -> Path | None:
        """Save this notebook's headline record for the run index (pipeline runs only; aggregates
        only).

        Args:
            record: the notebook's typed record (:mod:`customer_analytics.headlines`).
            **figures: further values.
        """
        from customer_analytics import reports

        if self.folder is None:
            log.info("%s run on its own: no headline record for the run index", self.notebook)
            return None
        made = {k: self.context[k] for k in ("library", "params", "inputs") if k in self.context}
        return reports.record(
            self.params,
            self.folder,
            self.notebook,
            record,
            namespace=self.namespace.as_dict(),
            context=made,
            banner=self.banner(),
            **figures,
        )

    def describe(self) -> str:
        """Markdown: which namespace and run date this notebook reads and writes."""
        p, ns = self.params, self.namespace
        where = f"schema `{self.schema}`"
        if ns.kind == PRODUCTION:
            head = f"**Production run** for {p.run_date}: reads and writes {where}"
        elif ns.kind == EXPERIMENT:
            head = (
                f"**Experiment `{ns.name}`** ({ns.label}) for {p.run_date}: reads and writes its "
                f"own {where}; production (`{self.production_schema}`) is not touched"
            )
        else:
            head = (
                f"**Scratch run** of this notebook on its own, for {p.run_date}: writes {where}, "
                "not production"
            )
            if self.views:
                head += (
                    f"; reads {_table_list(self.views)} from production "
                    f"(`{self.production_schema}`) where this namespace has not computed them "
                    "itself"
                )
            head += f". Differences from production: {ns.label}"
        text = head + "."
        if self.folder is not None:
            text += f" Reports: `{self.folder.relative_to(p.reports_dir)}/` in the reports folder."
        elif ns.kind != PRODUCTION:
            text += (
                ' To write production\'s tables instead, set `run_namespace = "production"` in '
                "the parameters cell."
            )
        return text

    def banner(self) -> list[str]:
        """What every report of this run must say first: an experiment's label, data that ends
        before run_date.

        Computed when asked (after 01_ingest, the freshness is the new data's).
        """
        notes = []
        if self.namespace.kind == EXPERIMENT:
            notes.append(
                f"**Experiment `{self.namespace.name}`** ({self.namespace.label}): not production; "
                "its tables, model and reports are kept apart."
            )
        elif self.namespace.kind == SCRATCH:
            notes.append(
                f"**Scratch run** of {self.notebook} on its own ({self.namespace.label}): not "
                "production."
            )
        note = self.freshness_note()
        if note:
            notes.append(note)
        return notes

    def freshness_note(self) -> str:
        """The warning when run_date lies beyond the data (see :mod:`customer_analytics.freshness`),
        or ''."""
        from customer_analytics import freshness
        from customer_analytics import warehouse as wh

        if not wh.table_exists(self.session, "INGEST_LOG"):
            return ""
        try:
            fresh = freshness.freshness(self.session)
        except Exception as e:  # noqa: BLE001 - a note, never a reason to fail the notebook
            log.warning("could not read how fresh the data is: %s", e)
            return ""
        from customer_analytics.narrative import runs as words

        return words.run_date_note(
            fresh.last_day,
            self.params.run_date,
            fresh.days_after(self.params.run_date),
            self.params.freshness_tolerance_days,
        )

    def _repr_markdown_(self) -> str:
        return self.describe()

    def _repr_mimebundle_(
        self, include=None, exclude=None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """The set-up cell's output: where the notebook reads and writes, plus the banner the report
        shows first."""
        banner = (
            self.banner()
            if self.notebook != "01_ingest"
            else [n for n in self.banner() if not n.startswith("**The run date")]
        )
        return {"text/markdown": self.describe(), "text/plain": repr(self)}, {BANNER_KEY: banner}

    def __repr__(self) -> str:  # no paths or parameter dumps in a notebook's output
        return (
            f"<Run {self.notebook}: {self.namespace.kind} {self.namespace.name}, "
            f"{self.params.run_date}>"
        )


def _table_list(names: tuple[str, ...]) -> str:
    groups = sorted(
        {
            re.sub(r"_.*$", "_*", n)
            if n.startswith(("CLEAN_", "RAW_", "REJECTED_", "INGEST_"))
            else n
            for n in names
        }
    )
    return ", ".join(f"`{g}`" for g in groups)


def start(notebook: str, cell: Mapping[str, Any]) -> Run:
    """The set-up of every notebook: parameters, namespace, one warehouse session.

    Called as ``run = runs.start("03_features", globals())`` right after the ``parameters`` cell:
    it takes the notebook's declared parameters from ``cell`` (``None`` = ``env.yaml``'s value;
    in a pipeline run, the run's own values), resolves the namespace (see the module doc),
    connects once, prepares scratch's read-through views, and says where it reads and writes.

    Raises:
        ConfigError: a parameter is invalid, or production was asked with other parameters.
    """
    from customer_analytics import fsutil
    from customer_analytics import warehouse as wh

    root = config.project_root()
    context = cell.get("run_context")
    values = {p.name: cell.get(p.name) for p in P.for_notebook(notebook)}
    base = pipeline_params(root) if context else None
    params = config.load(root, base=base, **values)
    config.setup_logging()
    if context:
        namespace = Namespace.from_dict(context["namespace"])
        folder: Path | None = params.reports_dir / str(context["folder"])
        # the run lock's companion: a new run waits until this kernel has finished (see cli)
        fsutil.hold_lock(params.warehouse_dir / WORK_LOCK, shared=True)
    else:
        namespace = resolve(params, production_params(root), pipeline=False)
        folder = None
    session = wh.connect(params)
    database, production_schema = wh.current_names(session)
    schema = namespace.schema(production_schema)
    if schema != production_schema:
        wh.enter_schema(session, database, schema)
    views: tuple[str, ...] = ()
    if namespace.kind == SCRATCH:
        views = prepare_scratch(session, notebook, database, production_schema, schema)
    run = Run(
        notebook,
        params,
        namespace,
        session,
        database,
        schema,
        production_schema,
        folder,
        cell.get("product"),
        views,
        dict(context or {}),
    )
    log.info("%s", run.describe())
    return run


def prepare_scratch(
    session: Any, notebook: str, database: str, source: str, scratch: str
) -> tuple[str, ...]:
    """Read-through views in ``scratch`` onto ``source``'s tables that ``notebook`` reads but does
    not write.

    A table the notebook writes is never a view (an old one is dropped); one it reads is a view
    onto the source schema unless an earlier scratch run of its owner made a real table.
    Returns the tables read through views.
    """
    from customer_analytics import warehouse as wh

    in_source = wh.list_tables(session, database, source)
    in_scratch = wh.list_tables(session, database, scratch)
    reads = P.ancestors(notebook)
    views = []
    for table in sorted(set(in_source) | set(in_scratch)):
        owner = table_owner(table)
        if owner is None or "__" in table or table.startswith("STAGE_"):
            continue
        mine = in_scratch.get(table)
        if owner == notebook or owner not in reads:
            if mine == "VIEW":  # written here (a view would refuse the write), or not read: no view
                wh.drop_view(session, database, scratch, table)
        elif mine in (None, "VIEW") and in_source.get(table) == "BASE TABLE":
            wh.create_view(session, database, scratch, table, source)
            views.append(table)
    return tuple(views)
