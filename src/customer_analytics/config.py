"""Run parameters: one place that reads ``env.yaml``, applies overrides and validates.

Notebooks call :func:`load` with the values of their ``parameters`` cell. A value of ``None``
means "use ``env.yaml``", so a notebook opened in JupyterLab and run as it is resolves to
exactly the values (and paths) a ``ploomber build`` passes in.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from customer_analytics import contract

log = logging.getLogger(__name__)

ENV_FILE = "env.yaml"
ROOT_ENV_VAR = "CUSTOMER_ANALYTICS_ROOT"
ENV_FILE_VAR = "CUSTOMER_ANALYTICS_ENV"
MODEL_NAMES = (
    "zero",
    "last_period",
    "mean",
    "segment_mean",
    "btyd",
    "ridge",
    "random_forest",
    "hist_gradient_boosting",
    "hybrid_boosting",
)
METRICS = ("rmse", "mae", "r2")
SCORING_SETS = ("new", "active", "all")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")


class ConfigError(ValueError):
    """A parameter is missing or has a value the pipeline cannot use."""


def project_root(start: Path | None = None) -> Path:
    """Return the project folder: ``$CUSTOMER_ANALYTICS_ROOT`` or the nearest parent with ``env.yaml``.

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
        f"from {here}. Run from inside the project or set {ROOT_ENV_VAR}."
    )


@dataclass(frozen=True)
class Params:
    """Validated run parameters. Paths are absolute."""

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
    text_max_rows: int = 20_000
    calibration_tolerance: float = 0.10
    database: str = "ANALYTICS"
    schema: str = "SHOP"
    # ingest: source files inside data_dir (None = no such source), column mapping, reject threshold
    orders_file: str = contract.ORDERS.default_file
    customers_file: str | None = contract.CUSTOMERS.default_file
    reviews_file: str | None = contract.REVIEWS.default_file
    calls_dir: str | None = contract.CALLS.default_file
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    max_reject_share: float = contract.DEFAULT_MAX_REJECT_SHARE
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        return self.connection == "local"

    def cutoffs(self) -> list[dt.date]:
        """Training/evaluation cut-offs, oldest first; the last one is the held-out window.

        The held-out cut-off is ``run_date - horizon_days`` (its labels are fully observed by
        ``run_date``); earlier ones step back by ``horizon_days`` so label windows never overlap.
        """
        step = dt.timedelta(days=self.horizon_days)
        last = self.run_date - step
        return [last - step * k for k in range(self.n_cutoffs, -1, -1)]

    def summary(self) -> dict[str, Any]:
        """Parameters safe to print in a report (no paths, no connection details)."""
        d = asdict(self)
        for k in ("data_dir", "warehouse_dir", "reports_dir", "extra"):
            d.pop(k)
        d["run_date"] = self.run_date.isoformat()
        d["connection"] = "local (embedded)" if self.is_local else "snowflake"
        d["models"] = ", ".join(self.models)
        return d


def read_env(root: Path | None = None) -> dict[str, Any]:
    """Read ``env.yaml`` (or the file named by ``$CUSTOMER_ANALYTICS_ENV``) as a dict."""
    root = root or project_root()
    path = Path(os.environ.get(ENV_FILE_VAR) or root / ENV_FILE)
    if not path.is_absolute():
        path = root / path
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as e:
        raise ConfigError(f"Parameter file {path} is missing.") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of parameter names to values.")
    return raw


def load(root: Path | None = None, **overrides: Any) -> Params:
    """Build validated :class:`Params` from ``env.yaml`` plus non-``None`` overrides.

    Args:
        root: project folder (default: :func:`project_root`).
        **overrides: parameter values, e.g. from a notebook's ``parameters`` cell.

    Raises:
        ConfigError: a value is missing or invalid; the message names the parameter.
    """
    root = root or project_root()
    values = read_env(root)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return _validate(values, root)


def _path(values: dict[str, Any], key: str, root: Path) -> Path:
    p = Path(str(_required(values, key))).expanduser()
    return (p if p.is_absolute() else root / p).resolve()


def _required(values: dict[str, Any], key: str) -> Any:
    if values.get(key) is None:
        raise ConfigError(f"Parameter '{key}' is missing (set it in {ENV_FILE} or pass it).")
    return values[key]


def _int(values: dict[str, Any], key: str, lo: int, hi: int) -> int:
    v = _required(values, key)
    try:
        n = int(v)
        if str(v).strip() != str(n) and not isinstance(v, int):
            raise ValueError
    except (TypeError, ValueError) as e:
        raise ConfigError(f"Parameter '{key}' must be a whole number, got {v!r}.") from e
    if not lo <= n <= hi:
        raise ConfigError(f"Parameter '{key}' must be between {lo} and {hi}, got {n}.")
    return n


def _optional_int(values: dict[str, Any], key: str, lo: int, hi: int, default: int) -> int:
    return _int(values, key, lo, hi) if values.get(key) is not None else default


def _choices(values: dict[str, Any], key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    v = _required(values, key)
    items = [s.strip() for s in v.split(",")] if isinstance(v, str) else list(v)
    bad = [m for m in items if m not in allowed]
    if bad or not items:
        raise ConfigError(f"Parameter '{key}' has unknown value(s) {bad}; choose from {list(allowed)}.")
    return tuple(items)


def _validate(values: dict[str, Any], root: Path) -> Params:
    connection = str(_required(values, "connection"))
    if not _IDENT.match(connection):
        raise ConfigError(
            f"Parameter 'connection' must be 'local' or a connection name from "
            f"connections.toml (letters, digits, _), got {connection!r}."
        )
    try:
        run_date = dt.date.fromisoformat(str(_required(values, "run_date")))
    except ValueError as e:
        raise ConfigError(f"Parameter 'run_date' must be a date like 2026-11-01, got {values['run_date']!r}.") from e
    try:
        sample = float(_required(values, "sample"))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"Parameter 'sample' must be a fraction in (0, 1], got {values['sample']!r}.") from e
    if not 0 < sample <= 1:
        raise ConfigError(f"Parameter 'sample' must be a fraction in (0, 1], got {sample}.")
    primary = _choices(values, "primary_metric", METRICS)[0]
    scoring = _choices(values, "scoring_set", SCORING_SETS)[0]
    for key in ("database", "schema"):
        if key in values and not _IDENT.match(str(values[key])):
            raise ConfigError(f"Parameter '{key}' must be a plain identifier, got {values[key]!r}.")
    n_cutoffs = _int(values, "n_cutoffs", 1, 24)
    # more folds than n_cutoffs - 1 cannot each train on earlier cut-offs: models.fold_cutoffs uses fewer
    cv_folds = _optional_int(values, "cv_folds", 1, 12, Params.cv_folds)
    tolerance = values.get("calibration_tolerance", Params.calibration_tolerance)
    try:
        tolerance = float(tolerance)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"Parameter 'calibration_tolerance' must be a fraction in (0, 1], got {tolerance!r}."
        ) from e
    if not 0 < tolerance <= 1:
        raise ConfigError(
            f"Parameter 'calibration_tolerance' must be a fraction in (0, 1], got {tolerance}."
        )
    known = {f for f in Params.__dataclass_fields__}
    ingest = _ingest_values(values)
    return Params(
        connection=connection,
        data_dir=_path(values, "data_dir", root),
        warehouse_dir=_path(values, "warehouse_dir", root),
        reports_dir=_path(values, "reports_dir", root),
        run_date=run_date,
        horizon_days=_int(values, "horizon_days", 7, 365),
        seed=_int(values, "seed", 0, 2**31 - 1),
        sample=sample,
        n_cutoffs=n_cutoffs,
        new_customer_days=_int(values, "new_customer_days", 1, 3650),
        models=_choices(values, "models", MODEL_NAMES),
        primary_metric=primary,
        scoring_set=scoring,
        cv_folds=cv_folds,
        max_train_rows=_optional_int(values, "max_train_rows", 1_000, 10_000_000, Params.max_train_rows),
        text_max_rows=_optional_int(values, "text_max_rows", 100, 1_000_000, Params.text_max_rows),
        calibration_tolerance=tolerance,
        database=str(values.get("database", "ANALYTICS")).upper(),
        schema=str(values.get("schema", "SHOP")).upper(),
        **ingest,
        extra={k: v for k, v in values.items() if k not in known},
    )


def _file_name(values: dict[str, Any], key: str, default: str | None, optional: bool) -> str | None:
    """A file (or folder) name inside data_dir: relative, no '..'; empty/null disables an optional source."""
    v = values.get(key, default)
    if v is None or (isinstance(v, str) and not v.strip()):
        if optional:
            return None
        raise ConfigError(f"Parameter '{key}' is missing (set it in {ENV_FILE} or pass it).")
    if not isinstance(v, str):
        raise ConfigError(f"Parameter '{key}' must be a file name inside data_dir, got {v!r}.")
    path = Path(v.strip())
    if path.is_absolute() or ".." in path.parts:
        raise ConfigError(f"Parameter '{key}' must be a path relative to data_dir without '..', got {v!r}; "
                          "point data_dir at the folder instead.")
    return path.as_posix()


def _column_mapping(raw: Any) -> dict[str, dict[str, str]]:
    """Validate ``columns``: {source: {contract field: column name in the file}}."""
    if raw is None:
        return {}
    if isinstance(raw, str):  # e.g. from the command line: "{orders: {customer_id: Kunde}}"
        try:
            raw = yaml.safe_load(raw) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"Parameter 'columns' is not a valid mapping: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"Parameter 'columns' must be a mapping like {{orders: {{customer_id: Kunde}}}}, got {raw!r}.")
    out: dict[str, dict[str, str]] = {}
    for src, mapping in raw.items():
        if src not in contract.MAPPABLE:
            raise ConfigError(f"Parameter 'columns' has an unknown source {src!r}; "
                              f"choose from {sorted(contract.MAPPABLE)}.")
        fields = contract.MAPPABLE[src].field_names
        if mapping is None:
            continue
        if not isinstance(mapping, dict):
            raise ConfigError(f"Parameter 'columns.{src}' must map contract fields to your column names, "
                              f"got {mapping!r}.")
        for fld, col in mapping.items():
            if fld not in fields:
                raise ConfigError(f"Parameter 'columns.{src}' has an unknown field {fld!r}; "
                                  f"the {src} fields are {list(fields)} (see docs/data_contract.md).")
            if not isinstance(col, str | int) or not str(col).strip():
                raise ConfigError(f"Parameter 'columns.{src}.{fld}' must be a column name, got {col!r}.")
        out[src] = {str(f): str(c).strip() for f, c in mapping.items()}
    return out


def _ingest_values(values: dict[str, Any]) -> dict[str, Any]:
    """The ingest parameters of ``values``, validated (names as in :class:`Params`)."""
    share = values.get("max_reject_share", contract.DEFAULT_MAX_REJECT_SHARE)
    try:
        share = float(share)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"Parameter 'max_reject_share' must be a fraction in [0, 1], got {share!r}.") from e
    if not 0 <= share <= 1:
        raise ConfigError(f"Parameter 'max_reject_share' must be a fraction in [0, 1], got {share}.")
    return {
        "orders_file": _file_name(values, "orders_file", contract.ORDERS.default_file, optional=False),
        "customers_file": _file_name(values, "customers_file", contract.CUSTOMERS.default_file, optional=True),
        "reviews_file": _file_name(values, "reviews_file", contract.REVIEWS.default_file, optional=True),
        "calls_dir": _file_name(values, "calls_dir", contract.CALLS.default_file, optional=True),
        "columns": _column_mapping(values.get("columns")),
        "max_reject_share": share,
    }


def check_identifier(name: str) -> str:
    """Return ``name`` upper-cased if it is a plain SQL identifier, else raise :class:`ConfigError`."""
    if not _IDENT.match(name):
        raise ConfigError(f"{name!r} is not a valid table or column name.")
    return name.upper()


def setup_logging(level: int = logging.WARNING) -> None:
    """Send this package's log records to stderr (notebooks: warnings only, to keep reports clean)."""
    logger = logging.getLogger("customer_analytics")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
