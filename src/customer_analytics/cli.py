"""``customer-analytics``: scheduled runs, re-scoring and the run index, from the command line.

Usage::

    customer-analytics run   --run-date today          # whole pipeline (Ploomber) for that date
    customer-analytics score --run-date today          # re-score only: 05_batch_prediction
                                                       # with Papermill
    customer-analytics score --run-date today --ingest #   ... after loading the latest files
                                                       # (01_ingest)
    customer-analytics index                           # rebuild reports/index.html
    customer-analytics similar "parcel arrived broken" # the review/call texts most like this one
    (-n 10)
    customer-analytics export-targets --run-date 2026-11-01 --out ~/crm/targets.csv [--top 500]
    [--product gift_box]                               # the target list for the CRM (TARGETS)

Parameters are overridden with ``--set key=value`` (nested ones with dots:
``--set columns.orders.ts=InvoiceDate``; a whole mapping as JSON:
``--set 'columns={"orders": {...}}'``) or Ploomber's spelling ``--env--key value`` /
``--env--columns--orders--ts value``. A run whose
parameters differ from ``env.yaml`` is an experiment: its tables, reports and models are kept
apart from production's (README, "Experiments and production").

Every run writes a log file (``logs/<run_date>_<kind>_<started>.log`` unless ``--log-dir`` says
otherwise), records its status in the run folder's ``run.json`` and refreshes
``reports/index.html``.
On failure it exits non-zero; the log names the failing notebook, the error, and where its
partially executed copy is; its HTML report is written, marked failed.

Exit codes: 0 success, 1 the run failed, 2 bad arguments or parameters, 3 another run holds the
lock.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from customer_analytics import config, fsutil, pipeline, redaction, reports, runs
from customer_analytics import parameters as P

log = logging.getLogger("customer_analytics.cli")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
SCORE_NOTEBOOK = "05_batch_prediction"
INGEST_NOTEBOOK = "01_ingest"
LockedError = fsutil.LockedError


class UsageError(ValueError):
    """Bad command-line arguments; the message says which."""


@dataclass
class Outcome:
    """How a run ended."""

    ok: bool
    failed_step: str = ""
    reason: str = ""
    partial_notebook: Path | None = None


# --------------------------------------------------------------------------- arguments
def resolve_date(text: str, today: dt.date | None = None) -> str:
    """``today`` / ``yesterday`` / ``YYYY-MM-DD`` as an ISO date string."""
    today = today or dt.date.today()
    named = {"today": today, "yesterday": today - dt.timedelta(days=1)}
    if text.lower() in named:
        return named[text.lower()].isoformat()
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError as e:
        raise UsageError(
            f"--run-date must be 'today', 'yesterday' or a date like 2026-11-02, got {text!r}."
        ) from e


def _value(text: str) -> Any:
    """A command-line value: ``null``/``none``/empty -> None, otherwise the text (checks parse
    it)."""
    return None if text.strip().lower() in ("", "null", "none", "~") else text


def parse_overrides(sets: list[str], extra: list[str]) -> dict[tuple[str, ...], Any]:
    """Overrides from ``--set key=value`` and ``--env--key value``, by key path (``("columns",
    "orders", "ts")``).

    Raises:
        UsageError: malformed argument, unknown parameter, or a nested key of a parameter that is
            not a mapping.
    """
    pairs: list[tuple[list[str], str]] = []
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects key=value, got {item!r}.")
        pairs.append((key.strip().split("."), value))
    rest = list(extra)
    while rest:
        arg = rest.pop(0)
        if not arg.startswith("--env--"):
            raise UsageError(f"Unknown argument {arg!r}.")
        key, sep, value = arg[len("--env--") :].partition("=")
        if not sep:
            if not rest:
                raise UsageError(f"{arg} needs a value.")
            value = rest.pop(0)
        pairs.append((key.split("--"), value))
    out: dict[tuple[str, ...], Any] = {}
    unknown = sorted({path[0] for path, _ in pairs if path[0] not in P.BY_NAME})
    if unknown:
        raise UsageError(f"Unknown parameter(s) {unknown}; known: {sorted(P.BY_NAME)}.")
    for path, value in pairs:
        if len(path) > 1 and not isinstance(P.get(path[0]).default, Mapping):
            raise UsageError(f"Parameter '{path[0]}' has no keys: set it as {path[0]}=value.")
        if any(not part for part in path):
            raise UsageError(f"Empty key in {'.'.join(path)!r}.")
        out[tuple(path)] = _value(value)
    return out


def apply_overrides(
    values: dict[str, Any], overrides: Mapping[tuple[str, ...], Any]
) -> dict[str, Any]:
    """``values`` with ``overrides`` set (nested keys into a copy of the mapping they belong to)."""
    out = copy.deepcopy(values)
    for path, value in overrides.items():
        if len(path) == 1:
            out[path[0]] = value
            continue
        node = out.get(path[0])
        if isinstance(node, str):  # a mapping given as text earlier on the command line
            node = yaml.safe_load(node)
        node = dict(copy.deepcopy(node)) if isinstance(node, Mapping) else {}
        out[path[0]] = node
        for part in path[1:-1]:
            child = dict(node[part]) if isinstance(node.get(part), Mapping) else {}
            node[part] = child
            node = child
        node[path[-1]] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="customer-analytics",
        description=__doc__.split("::")[0].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a parameter of env.yaml (repeatable; KEY may be dotted: "
            "columns.orders.ts); --env--KEY VALUE works too",
        )
        p.add_argument(
            "--log-dir", type=Path, help="folder for the log file (default: logs/ in the project)"
        )
        p.add_argument(
            "--echo", action="store_true", help="also show the pipeline's own log on stderr"
        )
        p.add_argument(
            "--quiet", action="store_true", help="print only failures (cron then mails only those)"
        )

    run = sub.add_parser("run", help="run the whole pipeline for a date (Ploomber)")
    run.add_argument(
        "--run-date", help="today, yesterday or YYYY-MM-DD (default: run_date of env.yaml)"
    )
    run.add_argument(
        "--force", action="store_true", help="re-execute every notebook, even those up to date"
    )
    run.add_argument("--connection", help="the connection to run on (the connection parameter)")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the Snowflake SQL this run would send, without connecting (the run goes to a "
        "throw-away embedded warehouse; use --set sample=... for a quicker one)",
    )
    common(run)
    score = sub.add_parser(
        "score", help="re-score only: 05_batch_prediction with the registered default model"
    )
    score.add_argument(
        "--run-date", help="today, yesterday or YYYY-MM-DD (default: run_date of env.yaml)"
    )
    score.add_argument(
        "--ingest", action="store_true", help="load the latest input files first (01_ingest)"
    )
    score.add_argument(
        "--chunk-rows", type=int, help="customers scored per chunk (the chunk_rows parameter)"
    )
    score.add_argument(
        "--force",
        action="store_true",
        help="re-score even when nothing changed since the last time",
    )
    common(score)
    index = sub.add_parser("index", help="rebuild reports/index.html from the run folders")
    index.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="e.g. reports_dir=/share/reports",
    )
    similar = sub.add_parser(
        "similar", help="the review and call texts most similar to a query (built by 02_eda)"
    )
    similar.add_argument("query", help='what to look for, e.g. "parcel arrived broken"')
    similar.add_argument("-n", type=int, default=10, help="how many texts (default 10)")
    similar.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the run whose texts to search (an experiment's parameters; default production)",
    )
    export = sub.add_parser(
        "export-targets",
        help="write a run date's target list (TARGETS: customer id, expected spend, units and "
        "probability of buying per product type, decile, channel, country) to a CSV for the CRM",
    )
    export.add_argument(
        "--run-date", help="today, yesterday or YYYY-MM-DD (default: run_date of env.yaml)"
    )
    export.add_argument(
        "--out", type=Path, required=True, help="the CSV file to write (never under reports/)"
    )
    export.add_argument("--top", type=int, help="only the N customers expected to spend most")
    export.add_argument(
        "--product", help="rank by the expected spend on this product type (key or name)"
    )
    export.add_argument(
        "--log-dir", type=Path, help="folder of the export log (default: logs/ in the project)"
    )
    export.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the run whose targets to export (an experiment's parameters; default production)",
    )
    return ap


# --------------------------------------------------------------------------- logging
#: Log lines without paths outside the project: library paths shortened, data paths made relative.
#: The run's own folders (project, reports, logs) stay as they are, so the log still says where the
#: partial notebook of a failed run is.
RedactingFormatter = redaction.RedactingFormatter


_PATHS: dict[str, tuple[Path, ...]] = {"keep": (), "inside": ()}


def _setup_logging(logfile: Path | None, echo: bool, quiet: bool = False) -> list[logging.Handler]:
    pkg = logging.getLogger("customer_analytics")
    pkg.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    console.setFormatter(
        RedactingFormatter(
            "%(asctime)s %(levelname)s %(message)s",
            "%H:%M:%S",
            keep=_PATHS["keep"],
            inside=_PATHS["inside"],
        )
    )
    console.addFilter(lambda r: echo or r.name.startswith("customer_analytics.cli"))
    handlers: list[logging.Handler] = [console]
    pkg.addHandler(console)
    if logfile:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(logfile, encoding="utf-8")
        fh.setFormatter(
            RedactingFormatter(
                "%(asctime)s %(levelname)s %(name)s: %(message)s",
                keep=_PATHS["keep"],
                inside=_PATHS["inside"],
            )
        )
        pkg.addHandler(fh)
        ploomber_log = logging.getLogger("ploomber")
        ploomber_log.addHandler(fh)
        ploomber_log.setLevel(logging.WARNING)
        handlers.append(fh)
    return handlers


def _teardown_logging(handlers: list[logging.Handler]) -> None:
    for h in handlers:
        for lg in (logging.getLogger("customer_analytics"), logging.getLogger("ploomber")):
            lg.removeHandler(h)
        h.close()


# --------------------------------------------------------------------------- runs
def pipeline_tasks(root: Path | None = None) -> list[str]:
    """Task names of the pipeline, in order."""
    return list(pipeline.TASK_NAMES)


def run_pipeline(root: Path, values: dict[str, Any], force: bool) -> Outcome:
    """Build the pipeline in this process (Ploomber's Python API); the DAG hooks record the
    outcome."""
    from ploomber.exceptions import DAGBuildError
    from ploomber.spec import DAGSpec

    dag = DAGSpec(str(root / pipeline.PIPELINE_FILE), env=values).to_dag()
    try:
        report = dag.build(force=force, show_progress=False)
    except DAGBuildError as e:
        return _failure(dag, e)
    if report is not None:
        for row in str(report).splitlines():
            log.info("%s", row)
    return Outcome(True)


def _failure(dag, error: BaseException) -> Outcome:
    from ploomber.constants import TaskStatus

    for name in dag:
        task = dag[name]
        if task.exec_status == TaskStatus.Errored:
            nb = Path(str(task.product))
            reason = reports.notebook_error(nb) or pipeline._last_line(str(error))
            return Outcome(False, name, reason, nb if nb.is_file() else None)
    return Outcome(False, "", pipeline._last_line(str(error)) or "the pipeline failed")


def score_notebooks(
    root: Path,
    folder: Path,
    steps: list[str],
    values: dict[str, Any],
    force: bool = False,
    default_version: str | None = None,
    on_start: Any = None,
) -> tuple[Outcome, list[str]]:
    """Execute ``steps`` with Papermill into ``folder`` and export each to HTML; stop at the first
    failure.

    A step whose last run in ``folder`` used the same library code, parameters, input files and
    (05) default model version is up to date and skipped, unless ``force``: like ``run``, re-scoring
    redoes only what changed. Returns the outcome and the steps executed.
    """
    import papermill as pm

    from customer_analytics import nbengine

    nbengine.install()
    heads = reports.read_headlines(folder)
    executed: list[str] = []
    for step in steps:
        src, out, html = (
            root / "notebooks" / f"{step}.ipynb",
            folder / f"{step}.ipynb",
            folder / f"{step}.html",
        )
        context = pipeline.run_context(step, str(root), **values)
        extra = (
            {"model_version": default_version} if step == SCORE_NOTEBOOK and default_version else {}
        )
        if (
            not force
            and not executed
            and html.is_file()
            and pipeline.up_to_date(heads.get(step), context, **extra)
        ):
            log.info(
                "%s is up to date (same code, parameters, input files%s): not run again; --force "
                "re-runs it",
                step,
                " and model version" if extra else "",
            )
            continue
        if not executed and on_start is not None:
            on_start()
        executed.append(step)
        parameters = {p.name: values.get(p.name) for p in P.for_notebook(step)}
        parameters.update(run_context=context, product=str(out))
        log.info("executing %s with Papermill", step)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            pm.execute_notebook(
                str(src),
                str(out),
                parameters=parameters,
                cwd=str(src.parent),
                progress_bar=False,
                log_output=False,
            )
        except Exception as e:  # noqa: BLE001 - kernel died, bad notebook...: reported, never hidden
            reason = (
                f"{e.ename}: {e.evalue}"
                if isinstance(e, pm.PapermillExecutionError)
                else f"{type(e).__name__}: {e}"
            )
            if out.is_file():
                reports.export_failed_html(out, html, reason)
            return Outcome(False, step, reason, out if out.exists() else None), executed
        reports.export_html(out, html)
        log.info("%s: done", step)
    return Outcome(True), executed


def _default_version(params: config.Params, namespace: runs.Namespace) -> str | None:
    """The default model version 05 would score with (local registry only; ``None`` when
    unknown)."""
    if not params.is_local:
        return None
    from customer_analytics import registry

    schema = namespace.schema(params.schema or config.LOCAL_SCHEMA)
    reg = registry.LocalRegistry(params.warehouse_dir / "registry" / schema.lower())
    return reg.default_version(registry.model_name(params.horizon_days))


def _resolve(
    args: argparse.Namespace, extra: list[str], root: Path
) -> tuple[dict[str, Any], config.Params]:
    overrides = parse_overrides(args.set, extra)
    if getattr(args, "run_date", None):
        overrides[("run_date",)] = resolve_date(args.run_date)
    elif ("run_date",) in overrides and overrides[("run_date",)]:
        overrides[("run_date",)] = resolve_date(str(overrides[("run_date",)]))
    if getattr(args, "chunk_rows", None) is not None:
        overrides[("chunk_rows",)] = args.chunk_rows
    if getattr(args, "connection", None):
        overrides[("connection",)] = args.connection
    values = apply_overrides(config.read_env(root), overrides)
    params = config.validate(values, root)  # every value checked, early
    # what Ploomber and the kernels receive: the validated values in their plain form
    return {**values, "run_date": params.run_date.isoformat()}, params


def execute(args: argparse.Namespace, extra: list[str]) -> int:
    """Run one command; return the process exit code."""
    root = config.project_root()
    values, params = _resolve(args, extra, root)
    if args.command == "index":
        print(reports.build_index(params.reports_dir))  # noqa: T201 - the command's output
        return EXIT_OK
    if getattr(args, "dry_run", False):
        return _dry_run(root, values, params)
    if args.command == "similar":
        return similar_texts(args.query, args.n, params, root)
    if args.command == "export-targets":
        return export_targets(args, params, root)
    namespace = runs.resolve(params, runs.production_params(root), pipeline=True)
    folder = params.reports_dir / namespace.folder(params.run_date)
    kind = "pipeline" if args.command == "run" else "score"
    started = dt.datetime.now()
    log_dir = (args.log_dir or root / "logs").resolve()
    tag = "" if namespace.kind == runs.PRODUCTION else f"{namespace.name}_"
    logfile = log_dir / f"{params.run_date}_{tag}{kind}_{started:%Y%m%dT%H%M%S}.log"
    _PATHS.update(keep=(root, params.reports_dir, log_dir), inside=(params.data_dir,))
    handlers = _setup_logging(logfile, args.echo, args.quiet)
    try:
        with pipeline.acquire_run(params.warehouse_dir):
            return _execute_run(
                args, root, values, params, namespace, folder, kind, started, logfile
            )
    except LockedError as e:
        log.error("%s", e)
        return EXIT_LOCKED
    finally:
        _teardown_logging(handlers)


def _dry_run(root: Path, values: dict[str, Any], params: config.Params) -> int:
    """``run --dry-run``: print the Snowflake SQL of the run (see
    :mod:`customer_analytics.dryrun`)."""
    from customer_analytics import dryrun

    if params.is_local:
        raise UsageError(
            "--dry-run shows what a run would send to Snowflake: name the connection "
            "(--connection NAME)."
        )
    log.info(
        "dry run for Snowflake connection %s: running on a throw-away embedded warehouse",
        params.connection,
    )
    result = dryrun.dry_run(root, values, params.connection)
    print(result.script(), end="")  # noqa: T201 - the command's output
    if result.returncode:
        log.error(
            "the local run behind the dry run failed: %s",
            reports.redact(result.output.strip().splitlines()[-1] if result.output.strip() else ""),
        )
    return EXIT_OK if result.returncode == 0 else EXIT_FAILED


def similar_texts(query: str, n: int, params: config.Params, root: Path) -> int:
    """Print the ``n`` texts most similar to ``query`` in the run's search index (see
    :mod:`topics`):
    similarity, date, kind, rating, topic and text, never who wrote it."""
    from customer_analytics import topics
    from customer_analytics import warehouse as wh

    if not query.strip() or n < 1:
        raise UsageError("similar needs a non-empty query and -n of at least 1.")
    namespace = runs.resolve(params, runs.production_params(root), pipeline=True)
    session = wh.connect(params)
    try:
        database, production_schema = wh.current_names(session)
        schema = namespace.schema(production_schema)
        if schema != production_schema:
            wh.enter_schema(session, database, schema)
        if not (
            wh.table_exists(session, topics.SEARCH.embeddings)
            and wh.table_exists(session, topics.SEARCH.words)
        ):
            print(
                f"No search index in {namespace.name}: run the pipeline first (02_eda builds it).",  # noqa: T201
                file=sys.stderr,
            )
            return EXIT_FAILED
        try:
            found = topics.similar(session, query, n, vectors=not params.is_local)
        except ValueError as e:
            print(e, file=sys.stderr)  # noqa: T201
            return EXIT_FAILED
        labels = session.table(topics.SEARCH.words).to_pandas().set_index("TOPIC")["LABEL"]
    finally:
        session.close()
    found["topic"] = found["topic"].map(labels).fillna("-")
    found["rating"] = found["rating"].map(lambda r: "-" if r != r or r is None else f"{int(r)}")
    found["text"] = found["text"].str.replace(r"\s+", " ", regex=True).str.slice(0, 120)
    print(found.to_string(float_format=lambda x: f"{x:.3f}"))  # noqa: T201 - the command's output
    return EXIT_OK


def export_targets(args: argparse.Namespace, params: config.Params, root: Path) -> int:
    """``export-targets``: the run date's TARGETS rows to a CSV; personal data leaves only this way.

    Refuses a path under the reports folders; logs who exported how many rows, when (no customer
    data).
    """
    from customer_analytics import forecast
    from customer_analytics import warehouse as wh

    forbidden = [params.reports_dir, root / "reports"]
    try:
        forecast.refuse_report_path(args.out, forbidden)  # before connecting
    except forecast.ExportError as e:
        raise UsageError(str(e)) from None
    namespace = runs.resolve(params, runs.production_params(root), pipeline=True)
    log_dir = (args.log_dir or root / "logs").resolve()
    handlers = _setup_logging(None, echo=False)
    session = wh.connect(params)
    try:
        database, production_schema = wh.current_names(session)
        schema = namespace.schema(production_schema)
        if schema != production_schema:
            wh.enter_schema(session, database, schema)
        rows = forecast.export_targets(
            session, params, args.out, forbidden, log_dir, args.top, args.product
        )
    except forecast.ExportError as e:
        print(f"customer-analytics export-targets: {e}", file=sys.stderr)  # noqa: T201
        return EXIT_FAILED
    finally:
        session.close()
        _teardown_logging(handlers)
    print(f"{rows:,} customers of run {params.run_date} written to {args.out.name}")  # noqa: T201
    return EXIT_OK


def _execute_run(
    args,
    root: Path,
    values: dict[str, Any],
    params: config.Params,
    namespace: runs.Namespace,
    folder: Path,
    kind: str,
    started: dt.datetime,
    logfile: Path,
) -> int:
    what = "pipeline run" if kind == "pipeline" else "re-scoring"
    status = {
        "run_date": params.run_date.isoformat(),
        "kind": kind,
        "started": started.isoformat(timespec="seconds"),
        "log": logfile.name,
        "pid": os.getpid(),
        "namespace": namespace.as_dict(),
    }

    def mark_running() -> None:
        reports.write_status(folder, status="running", **status)
        reports.build_index(params.reports_dir)

    where = (
        "production"
        if namespace.kind == runs.PRODUCTION
        else f"experiment {namespace.name} ({namespace.label})"
    )
    log.info("%s for %s started (%s); log: %s", what, params.run_date, where, logfile)
    runs.export_params(params)
    try:
        if kind == "pipeline":
            mark_running()
            outcome = run_pipeline(root, values, args.force)
        else:
            steps = ([INGEST_NOTEBOOK] if args.ingest else []) + [SCORE_NOTEBOOK]
            outcome, executed = score_notebooks(
                root,
                folder,
                steps,
                values,
                args.force,
                _default_version(params, namespace),
                on_start=mark_running,
            )
            if not executed:
                log.info(
                    "nothing to re-score for %s: the reports and predictions are up to date",
                    params.run_date,
                )
                return EXIT_OK
            reports.finish_run(
                folder,
                {"namespace": namespace.as_dict()},
                ok=outcome.ok,
                ran=executed,
                failed_step=outcome.failed_step,
                reason=outcome.reason,
            )
    except OSError as e:
        log.error(
            "cannot write the reports folder (%s): %s", type(e).__name__, reports.redact(str(e))
        )
        outcome = Outcome(False, "", f"{type(e).__name__}: the reports folder could not be written")
        _record_failure(folder, namespace, outcome)
    except Exception as e:  # noqa: BLE001 - recorded as a failed run, with the reason
        log.exception("the run could not complete")
        outcome = Outcome(False, "", f"{type(e).__name__}: {e}")
        _record_failure(folder, namespace, outcome)
    return _report(params, folder, outcome, logfile)


def _record_failure(folder: Path, namespace: runs.Namespace, outcome: Outcome) -> None:
    try:
        reports.finish_run(
            folder,
            {"namespace": namespace.as_dict()},
            ok=False,
            ran=[],
            failed_step=outcome.failed_step,
            reason=outcome.reason,
        )
    except OSError as e:
        log.error("could not record the failure in the reports folder: %s", reports.redact(str(e)))


def _report(params: config.Params, folder: Path, outcome: Outcome, logfile: Path) -> int:
    try:
        reports.build_index(params.reports_dir)
    except OSError as e:
        log.error("could not refresh the run index: %s", reports.redact(str(e)))
        outcome = (
            outcome if not outcome.ok else Outcome(False, "", "the run index could not be written")
        )
    if outcome.ok:
        log.info("run %s succeeded; reports in %s", params.run_date, folder)
        return EXIT_OK
    where = f" at {outcome.failed_step}" if outcome.failed_step else ""
    log.error("run %s FAILED%s: %s", params.run_date, where, reports.redact(outcome.reason))
    if outcome.partial_notebook:
        log.error("partially executed notebook (for debugging): %s", outcome.partial_notebook)
    log.error("the tables, model and reports of earlier runs are kept; full log: %s", logfile)
    return EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``customer-analytics`` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        return execute(args, extra)
    except (UsageError, config.ConfigError) as e:
        parser.exit(EXIT_USAGE, f"customer-analytics: {e}\n")
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
