"""Run parameters: read ``env.yaml``, apply overrides, validate each value against its declaration.

The parameters themselves (name, default, check, help, notebooks) are declared once in
:mod:`customer_analytics.parameters`. Notebooks do not call this directly: their set-up cell
calls :func:`customer_analytics.runs.start`, which passes the values of the ``parameters`` cell
here. A value of ``None`` means "use ``env.yaml``", so a notebook opened in JupyterLab and run as
it is resolves to exactly the values (and paths) a ``ploomber build`` passes in.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from customer_analytics import contract
from customer_analytics import parameters as P
from customer_analytics.parameters import IDENTIFIER, ConfigError

__all__ = [
    "ConfigError",
    "Params",
    "check_identifier",
    "load",
    "project_root",
    "read_env",
    "setup_logging",
]

log = logging.getLogger(__name__)

ENV_FILE = "env.yaml"
ROOT_ENV_VAR = "CUSTOMER_ANALYTICS_ROOT"
ENV_FILE_VAR = "CUSTOMER_ANALYTICS_ENV"
#: local warehouse names when the parameters leave them open
LOCAL_DATABASE, LOCAL_SCHEMA = "ANALYTICS", "SHOP"
# kept for callers of the old names
MODEL_NAMES, METRICS, SCORING_SETS = P.MODEL_NAMES, P.METRICS, P.SCORING_SETS


def project_root(start: Path | None = None) -> Path:
    """Return the project folder: ``$CUSTOMER_ANALYTICS_ROOT`` or the nearest parent with
    ``env.yaml``.

    Args:
        start: folder to search upwards from (default: the current directory).
    """
    if os.environ.get(ROOT_ENV_VAR):
        return Path(os.environ[ROOT_ENV_VAR]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ENV_FILE).is_file() and (folder / "pipeline.yaml").is_file():
            return folder
    raise ConfigError(
        f"Could not find the project folder (a folder holding {ENV_FILE} and pipeline.yaml) "
        f"from {here.name}. Run from inside the project or set {ROOT_ENV_VAR}."
    )


@dataclass(frozen=True)
class Params:
    """Validated run parameters (one field per declared parameter). Paths are absolute."""

    connection: str
    data_dir: Path
    warehouse_dir: Path
    reports_dir: Path
    run_date: dt.date
    horizon_days: int
    seed: int
    sample: float
    n_cutoffs: int
    new_customer_days: int
    models: tuple[str, ...]
    primary_metric: str
    scoring_set: str
    cv_folds: int = 3
    max_train_rows: int = 60_000
    max_holdout_rows: int = 250_000
    text_max_rows: int = 20_000
    text_topics: int = 8  # topics of the review/call texts (topics.py)
    max_audio_minutes: float = 10.0  # new call audio transcribed per run at most (audio.py)
    audio_recognizer: str = "pocketsphinx"  # or package.module:factory
    chunk_rows: int = 50_000
    forecast_level: float = 0.9  # level of 05's forecast ranges (forecast.py)
    currency: str = "EUR"  # ISO 4217 code of every money figure in the reports (narrative/fmt.py)
    freshness_tolerance_days: int = 3
    calibration_tolerance: float = 0.10
    database: str | None = None
    schema: str | None = None
    run_namespace: str = P.NAMESPACE_AUTO
    orders_file: str = contract.ORDERS.default_file
    customers_file: str | None = contract.CUSTOMERS.default_file
    reviews_file: str | None = contract.REVIEWS.default_file
    calls_dir: str | None = contract.CALLS.default_file
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    max_reject_share: float = contract.DEFAULT_MAX_REJECT_SHARE
    # date layouts per source and field: {orders: {ts: ("MM/DD/YYYY HH24:MI",)}}
    # (contract.layout_parts)
    date_formats: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    # text encodings per source file (Python codec names); absent = detected (readers.scan_utf8)
    encodings: dict[str, str] = field(default_factory=dict)
    # column names of a CSV without a header line, per source (its first line is a record)
    column_names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    returns: str = "net"  # net | exclude | reject: what return/cancellation lines become
    return_order_prefix: str | None = None  # an order id starting with this is a cancellation ("C")
    guest_ids: tuple[str, ...] = contract.DEFAULT_GUEST_IDS  # customer ids meaning "no customer"
    customer_attributes: dict[str, str] = field(
        default_factory=dict
    )  # orders-only: {name: orders column}
    orders_table: str | None = (
        None  # sources already in the warehouse (DB.SCHEMA.NAME), instead of files
    )
    customers_table: str | None = None
    reviews_table: str | None = None
    max_product_types: int = 25  # product types with own columns; rarer ones are grouped as 'other'

    @property
    def is_local(self) -> bool:
        """Whether this run uses the embedded local warehouse (else Snowflake)."""
        return self.connection == "local"

    def cutoffs(self) -> list[dt.date]:
        """Training/evaluation cut-offs, oldest first; the last one is the held-out window.

        The held-out cut-off is ``run_date - horizon_days`` (its labels are fully observed by
        ``run_date``); earlier ones step back by ``horizon_days`` so label windows never overlap.
        """
        step = dt.timedelta(days=self.horizon_days)
        last = self.run_date - step
        return [last - step * k for k in range(self.n_cutoffs, -1, -1)]

    def values(self) -> dict[str, Any]:
        """Every parameter's value, JSON-friendly (dates as ISO text, paths as text, tuples as
        lists)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = (
                v.isoformat()
                if isinstance(v, dt.date)
                else str(v)
                if isinstance(v, Path)
                else list(v)
                if isinstance(v, tuple)
                else v
            )
        return out

    def identity(self) -> dict[str, Any]:
        """The values of the parameters that change what a run computes (see :mod:`runs`)."""
        values = self.values()
        return {name: values[name] for name in P.identity_names()}

    def summary(self) -> dict[str, Any]:
        """Parameters safe to print in a report (no paths, no connection details)."""
        d = self.values()
        for k in ("data_dir", "warehouse_dir", "reports_dir", "database", "schema"):
            d.pop(k)
        d["connection"] = "local (embedded)" if self.is_local else "snowflake"
        d["models"] = ", ".join(self.models)
        if self.guest_ids == contract.DEFAULT_GUEST_IDS:
            d["guest_ids"] = f"the contract's {len(self.guest_ids)} placeholder ids"
        return d


def env_path(root: Path | None = None) -> Path:
    """The parameter file: ``env.yaml`` in the project, or the file named by
    ``$CUSTOMER_ANALYTICS_ENV``."""
    root = root or project_root()
    path = Path(os.environ.get(ENV_FILE_VAR) or root / ENV_FILE)
    return path if path.is_absolute() else root / path


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_env(root: Path | None = None) -> dict[str, Any]:
    """Read the parameter file (see :func:`env_path`) as a dict."""
    path = env_path(root)
    try:
        # libyaml's loader when PyYAML has it (the same values; ~10x faster, and Ploomber reads
        # this file once per notebook while it loads the pipeline)
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER) or {}
    except FileNotFoundError as e:
        raise ConfigError(f"Parameter file {path.name} is missing from the project folder.") from e
    except yaml.YAMLError as e:
        raise ConfigError(
            f"Parameter file {path.name} is not valid YAML: {str(e).splitlines()[0]}"
        ) from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path.name}: expected a mapping of parameter names to values.")
    unknown = sorted(set(raw) - set(P.BY_NAME))
    if unknown:
        raise ConfigError(
            f"{path.name} has unknown parameter(s) {unknown}; known: {sorted(P.BY_NAME)}."
        )
    return raw


def load(
    root: Path | None = None, *, base: Mapping[str, Any] | None = None, **overrides: Any
) -> Params:
    """Build validated :class:`Params` from ``env.yaml`` (or ``base``) plus non-``None`` overrides.

    Args:
        root: project folder (default: :func:`project_root`); relative paths are taken from it.
        base: values to start from instead of ``env.yaml`` (a pipeline run's resolved parameters).
        **overrides: parameter values, e.g. from a notebook's ``parameters`` cell; ``None`` = keep.

    Raises:
        ConfigError: a value is missing, unknown or invalid; the message names the parameter.
    """
    root = root or project_root()
    values = dict(read_env(root) if base is None else base)
    unknown = sorted(set(overrides) - set(P.BY_NAME))
    if unknown:
        raise ConfigError(f"Unknown parameter(s) {unknown}; known: {sorted(P.BY_NAME)}.")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return validate(values, root)


def validate(values: Mapping[str, Any], root: Path) -> Params:
    """Check every declared parameter of ``values`` (absent ones take their declared default)."""
    checked = {p.name: p.check(p.name, values.get(p.name, p.default)) for p in P.PARAMETERS}
    P.cross_check(checked)
    for key in ("data_dir", "warehouse_dir", "reports_dir"):
        p = Path(checked[key]).expanduser()
        checked[key] = (p if p.is_absolute() else root / p).resolve()
    return Params(**checked)


def check_identifier(name: str) -> str:
    """Return ``name`` upper-cased if it is a plain SQL identifier, else raise
    :class:`ConfigError`."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise ConfigError(f"{name!r} is not a valid table or column name.")
    return name.upper()


def setup_logging(level: int = logging.WARNING) -> None:
    """Send this package's log records to stderr (notebooks: warnings only, to keep reports clean),
    redacted like every message that reaches a report (:mod:`customer_analytics.redaction`)."""
    from customer_analytics.redaction import RedactingFormatter

    logger = logging.getLogger("customer_analytics")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
