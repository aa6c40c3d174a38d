"""``customer-analytics``: the commands for scheduled runs (cron, CI) and the run index.

::

    customer-analytics run   --run-date today          # whole pipeline (ploomber build) for that date
    customer-analytics score --run-date today          # re-score only: 05_batch_prediction with Papermill
    customer-analytics score --run-date today --ingest #   ... after loading the latest files (01_ingest)
    customer-analytics index                           # rebuild reports/index.html

Every run writes a log file (``logs/<run_date>_<kind>_<started>.log`` unless ``--log-dir``
says otherwise), records its status in ``reports/<run_date>/run.json`` and refreshes
``reports/index.html``. On failure it exits non-zero, and the log names the failing notebook,
the error and where its partially executed copy is (``reports/<run_date>/<notebook>.ipynb``).
Parameters are overridden with ``--set key=value`` or Ploomber's spelling ``--env--key value``.

Exit codes: 0 success, 1 the run failed, 2 bad arguments or parameters, 3 another run holds the lock.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import logging
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from customer_analytics import config, reports

log = logging.getLogger("customer_analytics.cli")
_output = logging.getLogger("customer_analytics.cli.output")  # the pipeline's own output, to the log file

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3
SCORE_NOTEBOOK = "05_batch_prediction"
INGEST_NOTEBOOK = "01_ingest"


class UsageError(ValueError):
    """Bad command-line arguments; the message says which."""


class LockedError(RuntimeError):
    """Another run holds the lock."""


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
        raise UsageError(f"--run-date must be 'today', 'yesterday' or a date like 2026-11-02, got {text!r}.") from e


def parse_overrides(sets: list[str], extra: list[str], known: set[str]) -> dict[str, str]:
    """Parameter overrides from ``--set k=v`` and Ploomber-style ``--env--k v`` arguments."""
    pairs: list[tuple[str, str]] = []
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set expects key=value, got {item!r}.")
        pairs.append((key.strip(), value.strip()))
    rest = list(extra)
    while rest:
        arg = rest.pop(0)
        if not arg.startswith("--env--"):
            raise UsageError(f"Unknown argument {arg!r}.")
        key, sep, value = arg[len("--env--"):].partition("=")
        if not sep:
            if not rest:
                raise UsageError(f"{arg} needs a value.")
            value = rest.pop(0)
        pairs.append((key, value))
    unknown = sorted(k for k, _ in pairs if k not in known)
    if unknown:
        raise UsageError(f"Unknown parameter(s) {unknown}; known: {sorted(known)}.")
    return dict(pairs)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="customer-analytics", description=__doc__.split("::")[0].strip(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a parameter of env.yaml (repeatable); --env--KEY VALUE works too")
        p.add_argument("--log-dir", type=Path, help="folder for the log file (default: logs/ in the project)")
        p.add_argument("--echo", action="store_true", help="also show the pipeline's own output on stderr")
        p.add_argument("--quiet", action="store_true", help="print only failures (cron then mails only those)")

    run = sub.add_parser("run", help="run the whole pipeline for a date (ploomber build)")
    run.add_argument("--run-date", help="today, yesterday or YYYY-MM-DD (default: run_date of env.yaml)")
    run.add_argument("--force", action="store_true", help="re-execute every notebook, even those up to date")
    common(run)
    score = sub.add_parser("score", help="re-score only: 05_batch_prediction with the registered default model")
    score.add_argument("--run-date", help="today, yesterday or YYYY-MM-DD (default: run_date of env.yaml)")
    score.add_argument("--ingest", action="store_true", help="load the latest input files first (01_ingest)")
    score.add_argument("--chunk-rows", type=int, help="customers scored per chunk (default: predict.CHUNK_ROWS)")
    common(score)
    index = sub.add_parser("index", help="rebuild reports/index.html from the run folders")
    index.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. reports_dir=/share/reports")
    return ap


# --------------------------------------------------------------------------- logging and locking
def _setup_logging(logfile: Path | None, echo: bool, quiet: bool = False) -> list[logging.Handler]:
    pkg = logging.getLogger("customer_analytics")
    pkg.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    handlers: list[logging.Handler] = [console]
    pkg.addHandler(console)
    _output.propagate = False
    _output.setLevel(logging.INFO)
    if echo:
        _output.addHandler(console)
    if logfile:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(logfile, encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        pkg.addHandler(fh)
        raw = logging.FileHandler(logfile, encoding="utf-8")
        raw.setFormatter(logging.Formatter("%(asctime)s | %(message)s"))
        _output.addHandler(raw)
        handlers += [fh, raw]
    return handlers


def _teardown_logging(handlers: list[logging.Handler]) -> None:
    for h in handlers:
        for lg in (logging.getLogger("customer_analytics"), _output):
            lg.removeHandler(h)
        h.close()


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """One scheduled run at a time per warehouse (an OS lock: released even if the process dies)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "run.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise LockedError(f"Another run is in progress ({holder}); try again when it has finished.") from e
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} since {dt.datetime.now():%Y-%m-%d %H:%M:%S}")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- runs
def pipeline_tasks(root: Path) -> list[str]:
    """Task names of ``pipeline.yaml``, in order."""
    spec = yaml.safe_load((root / "pipeline.yaml").read_text(encoding="utf-8"))
    return [t.get("name") or Path(t["source"]).stem for t in spec.get("tasks", [])]


def _ploomber() -> str:
    exe = Path(sys.executable).with_name("ploomber")
    return str(exe) if exe.exists() else "ploomber"


def run_pipeline(root: Path, run_date: str, overrides: dict[str, str], force: bool) -> tuple[int, list[str]]:
    """``ploomber build`` for ``run_date``; its output goes to the log. Returns the exit code and the last lines."""
    cmd = [_ploomber(), "build", "--entry-point", "pipeline.yaml", "--env--run_date", run_date]
    for k, v in overrides.items():
        cmd += [f"--env--{k}", v]
    if force:
        cmd.append("--force")
    log.info("running: %s", " ".join(cmd[1:]))
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", stdin=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n").split("\r")[-1]
            if line.strip():
                _output.info(line)
                tail.append(line)
    return proc.returncode, list(tail)


def find_failure(folder: Path, tasks: list[str], since: float, tail: list[str]) -> Outcome:
    """The first notebook of this run that raised (its partial copy and error), else the last error line."""
    for task in tasks:
        nb = folder / f"{task}.ipynb"
        if nb.is_file() and nb.stat().st_mtime >= since and (err := reports.notebook_error(nb)):
            return Outcome(False, task, err, nb)
    errors = [ln for ln in tail if "Error" in ln or "error" in ln]
    return Outcome(False, "", (errors or tail or ["the pipeline failed before running any notebook"])[-1].strip())


def score_notebooks(root: Path, folder: Path, steps: list[str], run_date: str, overrides: dict[str, str],
                    chunk_rows: int | None) -> Outcome:
    """Execute ``steps`` with Papermill into ``folder`` and export each to HTML; stop at the first failure."""
    import papermill as pm

    for step in steps:
        src, out, html = root / "notebooks" / f"{step}.ipynb", folder / f"{step}.ipynb", folder / f"{step}.html"
        declared = set(pm.inspect_notebook(str(src)))
        values = {"run_date": run_date, "chunk_rows": chunk_rows, **overrides,
                  "product": {"nb": str(out), "html": str(html)}}
        parameters = {k: v for k, v in values.items() if k in declared and v is not None}
        log.info("executing %s with Papermill", step)
        try:
            pm.execute_notebook(str(src), str(out), parameters=parameters, cwd=str(src.parent),
                                progress_bar=False, log_output=False)
        except pm.PapermillExecutionError as e:
            return Outcome(False, step, f"{e.ename}: {e.evalue}", out)
        except Exception as e:  # noqa: BLE001 - kernel died, bad notebook...: reported, never hidden
            return Outcome(False, step, f"{type(e).__name__}: {e}", out if out.exists() else None)
        reports.export_html(out, html)
        _output.info("%s: done, report %s", step, html)
    return Outcome(True)


def execute(args: argparse.Namespace, extra: list[str]) -> int:
    """Run one command; return the process exit code."""
    root = config.project_root()
    known = set(config.read_env(root)) | {"database", "schema"}
    overrides = parse_overrides(args.set, extra, known)
    if args.command == "index":
        params = config.load(root, **overrides)
        print(reports.build_index(params.reports_dir))  # noqa: T201 - the command's output
        return EXIT_OK
    if args.run_date:
        overrides.pop("run_date", None)
        run_date = resolve_date(args.run_date)
    else:
        run_date = resolve_date(str(overrides.pop("run_date", None) or config.read_env(root)["run_date"]))
    params = config.load(root, run_date=run_date, **overrides)  # validates every value, early
    kind = "pipeline" if args.command == "run" else "score"
    started = dt.datetime.now()
    log_dir = (args.log_dir or root / "logs").resolve()
    logfile = log_dir / f"{run_date}_{kind}_{started:%Y%m%dT%H%M%S}.log"
    handlers = _setup_logging(logfile, args.echo, args.quiet)
    try:
        with run_lock(params.warehouse_dir):
            return _execute_run(args, root, params, run_date, kind, overrides, started, logfile)
    except LockedError as e:
        log.error("%s", e)
        return EXIT_LOCKED
    finally:
        _teardown_logging(handlers)


def _execute_run(args, root: Path, params: config.Params, run_date: str, kind: str, overrides: dict[str, str],
                 started: dt.datetime, logfile: Path) -> int:
    folder = params.reports_dir / run_date
    since = time.time() - 1
    status = {"run_date": run_date, "kind": kind, "started": started.isoformat(timespec="seconds"),
              "log": logfile.name, "pid": os.getpid()}
    reports.write_status(folder, status="running", **status)
    reports.build_index(params.reports_dir)
    log.info("%s for %s started; log: %s", "pipeline run" if kind == "pipeline" else "re-scoring", run_date, logfile)
    try:
        if kind == "pipeline":
            code, tail = run_pipeline(root, run_date, overrides, args.force)
            outcome = Outcome(True) if code == 0 else find_failure(folder, pipeline_tasks(root), since, tail)
        else:
            steps = ([INGEST_NOTEBOOK] if args.ingest else []) + [SCORE_NOTEBOOK]
            outcome = score_notebooks(root, folder, steps, run_date, overrides, args.chunk_rows)
    except Exception as e:  # noqa: BLE001 - recorded as a failed run, with the reason
        log.exception("the run could not complete")
        outcome = Outcome(False, "", f"{type(e).__name__}: {e}")
    finished = dt.datetime.now().isoformat(timespec="seconds")
    if outcome.ok:
        reports.write_status(folder, status="succeeded", finished=finished, **status)
        log.info("run %s succeeded; reports in %s", run_date, folder)
    else:
        reports.write_status(folder, status="failed", finished=finished, failed_step=outcome.failed_step,
                             reason=outcome.reason, **status)
        where = f" at {outcome.failed_step}" if outcome.failed_step else ""
        log.error("run %s FAILED%s: %s", run_date, where, outcome.reason)
        if outcome.partial_notebook:
            log.error("partially executed notebook (for debugging): %s", outcome.partial_notebook)
        log.error("the reports of earlier runs are kept; full log: %s", logfile)
    reports.build_index(params.reports_dir)
    return EXIT_OK if outcome.ok else EXIT_FAILED


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
