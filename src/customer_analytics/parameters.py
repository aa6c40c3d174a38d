"""Every run parameter, declared once: its name, default, validation, meaning and notebooks.

This list is the single source of truth for parameters. Everything else follows from it:

* ``env.yaml`` (the production profile) has one key per parameter, in this order, with the
  ``help`` text as its comment (:func:`render_env` writes it; a test checks keys and comments);
* every notebook's tagged ``parameters`` cell holds exactly the parameters whose ``notebooks``
  name it (:func:`parameters_cell`);
* ``pipeline.yaml`` passes each task those parameters (:mod:`customer_analytics.pipeline`);
* :func:`customer_analytics.config.load` validates every value with the parameter's ``check``.

``python -m customer_analytics.pipeline --write`` regenerates ``pipeline.yaml``, the notebooks'
parameter cells and ``env.yaml``'s comments after a change here; ``--check`` (and the tests) say
where they disagree. To add a parameter: declare it below (and add its field to
:class:`customer_analytics.config.Params`), run ``--write``, use it through ``params.<name>``.

A parameter with ``identity=True`` changes what a run computes; a run whose identity differs
from ``env.yaml`` is an *experiment* (see :mod:`customer_analytics.runs`).

Standard library and PyYAML only: Ploomber imports this while it loads the pipeline.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from customer_analytics import contract

NOTEBOOKS = ("01_ingest", "02_eda", "03_features", "04_model_comparison", "05_batch_prediction")
ALL = NOTEBOOKS
#: The pipeline's DAG: each notebook's upstream notebooks (02_eda is a report only: nothing waits
#: for it).
UPSTREAM: dict[str, tuple[str, ...]] = {
    "01_ingest": (),
    "02_eda": ("01_ingest",),
    "03_features": ("01_ingest",),
    "04_model_comparison": ("03_features",),
    "05_batch_prediction": ("03_features", "04_model_comparison"),
}


def ancestors(notebook: str) -> set[str]:
    """Every notebook ``notebook`` depends on, directly or not."""
    out: set[str] = set()
    todo = list(UPSTREAM[notebook])
    while todo:
        nb = todo.pop()
        if nb not in out:
            out.add(nb)
            todo += UPSTREAM[nb]
    return out


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
#: values of ``run_namespace`` with a meaning of their own; any other value names an experiment
NAMESPACE_AUTO, NAMESPACE_PRODUCTION, NAMESPACE_SCRATCH = "auto", "production", "scratch"
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")


class ConfigError(ValueError):
    """A parameter is missing or has a value the pipeline cannot use; the message names it."""


Check = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Parameter:
    """One run parameter.

    Attributes:
        name: the key in ``env.yaml``, the notebook variable and the ``Params`` field.
        default: value in the committed ``env.yaml``.
        help: one line for ``env.yaml`` and ``--help``.
        check: ``check(name, value) -> normalised value``; raises :class:`ConfigError`.
        notebooks: the notebooks that take it (their parameters cell declares it).
        identity: whether it changes what a run computes (a different value = an experiment).
        label: how an experiment's label says the value (e.g. ``"horizon 30 d"``).
    """

    name: str
    default: Any
    help: str
    check: Check
    notebooks: tuple[str, ...] = ()
    identity: bool = False
    label: Callable[[Any], str] | None = None

    def describe(self, value: Any) -> str:
        """The value as an experiment label says it."""
        if self.label is not None:
            return self.label(value)
        return f"{self.name.replace('_', ' ')} {_short(value)}"


# --------------------------------------------------------------------------- checks
def _short(value: Any) -> str:
    if isinstance(value, Mapping | list | tuple):
        text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    else:
        text = str(value)
    return text if len(text) <= 24 else text[:23] + "…"


def text(name: str, value: Any) -> str:
    if (
        not isinstance(value, str | int | float)
        or isinstance(value, bool)
        or not str(value).strip()
    ):
        raise ConfigError(f"Parameter '{name}' must be a non-empty text, got {_short(value)!r}.")
    return str(value).strip()


def integer(lo: int, hi: int) -> Check:
    def check(name: str, value: Any) -> int:
        try:
            n = int(value)
            if isinstance(value, bool) or (
                not isinstance(value, int) and str(value).strip() != str(n)
            ):
                raise ValueError
        except (TypeError, ValueError) as e:
            raise ConfigError(
                f"Parameter '{name}' must be a whole number, got {_short(value)!r}."
            ) from e
        if not lo <= n <= hi:
            raise ConfigError(f"Parameter '{name}' must be between {lo:,} and {hi:,}, got {n:,}.")
        return n

    return check


def number(lo: float, hi: float, *, lo_open: bool = False) -> Check:
    def check(name: str, value: Any) -> float:
        try:
            x = float(value)
            if isinstance(value, bool) or not math.isfinite(x):
                raise ValueError
        except (TypeError, ValueError) as e:
            raise ConfigError(f"Parameter '{name}' must be a number, got {_short(value)!r}.") from e
        if x < lo or x > hi or (lo_open and x == lo):
            interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
            raise ConfigError(f"Parameter '{name}' must be in {interval}, got {x:g}.")
        return x

    return check


def date(name: str, value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        d = value
    else:
        try:
            d = dt.date.fromisoformat(str(value).strip())
        except ValueError as e:
            raise ConfigError(
                f"Parameter '{name}' must be a date like 2026-11-01, got {_short(value)!r}."
            ) from e
    if not contract.MIN_DATE <= d <= contract.MAX_DATE:
        raise ConfigError(
            f"Parameter '{name}' must be between {contract.MIN_DATE} and "
            f"{contract.MAX_DATE} (the dates the data contract accepts), got {d}."
        )
    return d


def currency(name: str, value: Any) -> str:
    """An ISO 4217 currency code (``EUR``, ``usd``): upper-cased, checked against Babel's list when
    installed."""
    code = str(value).strip().upper() if isinstance(value, str) else ""
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise ConfigError(
            f"Parameter '{name}' must be a three-letter currency code such as EUR, USD or GBP, "
            f"got {_short(value)!r}."
        )
    try:
        from babel.numbers import list_currencies
    except ImportError:  # pragma: no cover - Babel comes with the reports' dependencies
        return code
    if code not in list_currencies():
        raise ConfigError(
            f"Parameter '{name}': {code} is not a currency code (ISO 4217), e.g. EUR, USD or GBP."
        )
    return code


def choice(options: tuple[str, ...]) -> Check:
    def check(name: str, value: Any) -> str:
        v = str(value).strip() if isinstance(value, str | int) else value
        if v not in options:
            raise ConfigError(
                f"Parameter '{name}' must be one of {list(options)}, got {_short(value)!r}."
            )
        return v

    return check


def choices(options: tuple[str, ...]) -> Check:
    def check(name: str, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            items = [s.strip() for s in value.split(",") if s.strip()]
        elif isinstance(value, list | tuple):
            items = [str(s).strip() for s in value]
        else:
            raise ConfigError(
                f"Parameter '{name}' must be a comma-separated list, got {_short(value)!r}."
            )
        bad = [m for m in items if m not in options]
        if bad or not items:
            raise ConfigError(
                f"Parameter '{name}' has unknown value(s) {bad}; choose from {list(options)}."
            )
        if len(set(items)) != len(items):
            raise ConfigError(f"Parameter '{name}' names a value twice: {items}.")
        return tuple(items)

    return check


def path(name: str, value: Any) -> str:
    """A folder or file path (relative paths are taken from the project folder by config)."""
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise ConfigError(f"Parameter '{name}' must be a path, got {_short(value)!r}.")
    return value.strip()


def file_name(optional: bool) -> Check:
    """A file or folder name inside ``data_dir``: relative, no '..'; empty/null disables an optional
    one."""

    def check(name: str, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            if optional:
                return None
            raise ConfigError(f"Parameter '{name}' is required (a file name inside data_dir).")
        if not isinstance(value, str) or "\x00" in value:
            raise ConfigError(
                f"Parameter '{name}' must be a file name inside data_dir, got {_short(value)!r}."
            )
        p = value.strip().replace("\\", "/")
        parts = [x for x in p.split("/") if x]
        if p.startswith("/") or ".." in parts or not parts or re.match(r"^[A-Za-z]:", p):
            raise ConfigError(
                f"Parameter '{name}' must be a path relative to data_dir without '..', got "
                f"{_short(value)!r}; point data_dir at the folder instead."
            )
        return "/".join(parts)

    return check


def identifier_or_none(name: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or not IDENTIFIER.match(value.strip()):
        raise ConfigError(
            f"Parameter '{name}' must be a plain identifier (letters, digits, _), "
            f"got {_short(value)!r}."
        )
    return value.strip().upper()


def connection(name: str, value: Any) -> str:
    v = text(name, value)
    if not IDENTIFIER.match(v):
        raise ConfigError(
            f"Parameter '{name}' must be 'local', 'default' or a connection name from "
            f"connections.toml (letters, digits, _), got {_short(value)!r}."
        )
    return v


def namespace(name: str, value: Any) -> str:
    if value is None:
        return NAMESPACE_AUTO
    v = str(value).strip().lower()
    if not NAME.match(v):
        raise ConfigError(
            f"Parameter '{name}' must be 'auto', 'production', 'scratch' or an experiment name "
            f"(lower-case letters, digits, '-', '_', '.'; at most 40), got {_short(value)!r}."
        )
    return v


def column_mapping(name: str, raw: Any) -> dict[str, dict[str, str]]:
    """``{source: {contract field: column name in the file}}``; a null column = the contract's
    name."""
    if raw is None:
        return {}
    if isinstance(raw, str):  # from the command line: JSON or YAML flow mapping
        try:
            raw = yaml.safe_load(raw) or {}
        except yaml.YAMLError as e:
            raise ConfigError(
                f"Parameter '{name}' is not a valid mapping: {str(e).splitlines()[0]}"
            ) from e
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"Parameter '{name}' must be a mapping like {{orders: {{customer_id: Kunde}}}}, "
            f"got {_short(raw)!r}."
        )
    out: dict[str, dict[str, str]] = {}
    for src, mapping in raw.items():
        if src not in contract.MAPPABLE:
            raise ConfigError(
                f"Parameter '{name}' has an unknown source {src!r}; "
                f"choose from {sorted(contract.MAPPABLE)}."
            )
        if mapping is None:
            continue
        if not isinstance(mapping, Mapping):
            raise ConfigError(
                f"Parameter '{name}.{src}' must map contract fields to your column names, "
                f"got {_short(mapping)!r}."
            )
        fields = contract.MAPPABLE[src].field_names
        cols = {}
        for fld, col in mapping.items():
            if fld not in fields:
                raise ConfigError(
                    f"Parameter '{name}.{src}' has an unknown field {fld!r}; the {src} fields "
                    f"are {list(fields)} (see docs/data_contract.md)."
                )
            if col is None:
                continue
            if not isinstance(col, str | int) or isinstance(col, bool) or not str(col).strip():
                raise ConfigError(
                    f"Parameter '{name}.{src}.{fld}' must be a column name, got {_short(col)!r}."
                )
            cols[str(fld)] = str(col).strip()
        if cols:
            out[str(src)] = cols
    return out


def _null_text(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in ("", "None", "null", "~"))


def _mapping_value(name: str, raw: Any, example: str) -> Mapping[str, Any]:
    """A mapping parameter, also given as a YAML/JSON string (e.g. from the command line)."""
    if _null_text(raw):
        return {}
    if isinstance(raw, str):
        try:
            raw = yaml.safe_load(raw) or {}
        except yaml.YAMLError as e:
            raise ConfigError(
                f"Parameter '{name}' is not a valid mapping: {str(e).splitlines()[0]}"
            ) from e
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"Parameter '{name}' must be a mapping like {example}, got {_short(raw)!r}."
        )
    return raw


def date_formats(name: str, raw: Any) -> dict[str, dict[str, tuple[str, ...]]]:
    """``{source: {date field: shortcut, Snowflake format, or a list of them}}``; null =
    detected."""
    example = '{orders: {ts: "MM/DD/YYYY HH24:MI"}} or {orders: {ts: us}}'
    sources = {s.name: s for s in contract.SOURCES}
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for src, mapping in _mapping_value(name, raw, example).items():
        if src not in sources:
            raise ConfigError(
                f"Parameter '{name}' has an unknown source {src!r}; choose from {sorted(sources)}."
            )
        if mapping is None:
            continue
        dated = [f.name for f in sources[src].fields if f.kind in ("date", "timestamp")]
        if not isinstance(mapping, Mapping):
            raise ConfigError(
                f"Parameter '{name}.{src}' must map date fields ({dated}) to layouts, "
                f"got {_short(mapping)!r}."
            )
        for fld, value in mapping.items():
            if fld not in dated:
                raise ConfigError(
                    f"Parameter '{name}.{src}' has {fld!r}, which is not a date field of {src}; "
                    f"its date fields are {dated}."
                )
            if _null_text(value):
                continue
            try:
                out.setdefault(str(src), {})[str(fld)] = contract.layout_parts(value)
            except ValueError as e:
                raise ConfigError(f"Parameter '{name}.{src}.{fld}': {e}.") from e
    return out


def _file_sources(name: str, raw: Any, example: str) -> list[tuple[str, Any]]:
    """The ``(source, value)`` pairs of a per-file-source mapping (:data:`contract.MAPPABLE`),
    null values left out; an unknown source is a :class:`ConfigError`."""
    out = []
    for src, value in _mapping_value(name, raw, example).items():
        if src not in contract.MAPPABLE:
            raise ConfigError(
                f"Parameter '{name}' has an unknown source {src!r}; choose from "
                f"{sorted(contract.MAPPABLE)}."
            )
        if not _null_text(value):
            out.append((str(src), value))
    return out


def encodings(name: str, raw: Any) -> dict[str, str]:
    """``{source: encoding}`` (a Python codec name: utf-8, cp1252, latin-1, utf-16, cp1250, …);
    null = detected (UTF-8; UTF-16/32 by their byte-order mark; an 8-bit file as Windows-1252)."""
    out: dict[str, str] = {}
    for src, value in _file_sources(name, raw, "{orders: cp1252}"):
        if str(value).strip().lower() == "auto":
            continue
        try:
            info = codecs.lookup(str(value).strip())
        except LookupError:
            info = None
        if info is None or not getattr(info, "_is_text_encoding", True):
            raise ConfigError(
                f"Parameter '{name}.{src}': {_short(value)!r} is not a text encoding; e.g. utf-8, "
                "cp1252 (Windows-1252), latin-1, cp1250, cp1251, utf-16, shift_jis, or null to "
                "detect it."
            )
        out[str(src)] = info.name
    return out


def column_names(name: str, raw: Any) -> dict[str, tuple[str, ...]]:
    """``{source: [name, …]}``: the columns, in order, of a CSV file without a header line (its
    first line is then a record); null = the file's first line names them."""
    out: dict[str, tuple[str, ...]] = {}
    for src, value in _file_sources(name, raw, "{orders: [customer_id, ts, quantity, amount]}"):
        if isinstance(value, str):  # "a, b, c" from the command line
            value = [v.strip() for v in value.split(",")]
        if not isinstance(value, list | tuple) or not 1 <= len(value) <= 1000:
            raise ConfigError(
                f"Parameter '{name}.{src}' must list the file's column names in order, e.g. "
                f"[customer_id, ts, quantity, amount]; got {_short(value)!r}."
            )
        names = [str(v).strip() if v is not None else "" for v in value]
        seen: set[str] = set()
        for i, n in enumerate(names, 1):
            key = n.casefold()  # as readers.normalise compares names
            if not n or len(n) > 200 or key in seen:
                what = "is empty" if not n else "is too long" if len(n) > 200 else "is repeated"
                raise ConfigError(
                    f"Parameter '{name}.{src}': name {i} {what}; give each column its own name "
                    "(a column the run does not read may be called anything, e.g. skip_1)."
                )
            seen.add(key)
        out[str(src)] = tuple(names)
    return out


_ATTRIBUTE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


def customer_attributes(name: str, raw: Any) -> dict[str, str]:
    """``{attribute: column of the orders file}``; country and channel fill COUNTRY and CHANNEL."""
    out = {}
    for attr, col in _mapping_value(name, raw, "{country: Country, segment: CustomerType}").items():
        key = contract.ATTRIBUTE_ALIASES.get(str(attr).lower(), str(attr).lower())
        if not _ATTRIBUTE.match(key) or key in contract.RESERVED_ATTRIBUTES:
            raise ConfigError(
                f"Parameter '{name}' has the name {attr!r}: use lower-case letters, digits and _ "
                f"(not {sorted(contract.RESERVED_ATTRIBUTES)})."
            )
        if _null_text(col):
            continue
        if not isinstance(col, str | int) or isinstance(col, bool) or not str(col).strip():
            raise ConfigError(
                f"Parameter '{name}.{attr}' must be a column of the orders file, got "
                f"{_short(col)!r}."
            )
        out[key] = str(col).strip()
    return out


_RECOGNIZER = re.compile(r"^(pocketsphinx|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$")


def recognizer_spec(name: str, value: Any) -> str:
    """``pocketsphinx`` or ``package.module:factory`` (see :mod:`customer_analytics.audio`)."""
    if not isinstance(value, str) or not _RECOGNIZER.match(value.strip()):
        raise ConfigError(
            f"Parameter '{name}' must be 'pocketsphinx' or 'package.module:factory' "
            f"(a callable returning a recognizer), got {_short(value)!r}."
        )
    return value.strip()


def short_text_or_none(limit: int) -> Check:
    def check(name: str, value: Any) -> str | None:
        if _null_text(value):
            return None
        if (
            not isinstance(value, str | int)
            or isinstance(value, bool)
            or len(str(value).strip()) > limit
        ):
            raise ConfigError(
                f"Parameter '{name}' must be a short text (at most {limit} characters), "
                f"got {_short(value)!r}."
            )
        return str(value).strip()

    return check


def guest_ids(name: str, raw: Any) -> tuple[str, ...]:
    """Customer ids meaning "no customer" (null: the contract's default list)."""
    if _null_text(raw):
        return contract.DEFAULT_GUEST_IDS
    if isinstance(raw, str):
        try:
            raw = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(
                f"Parameter '{name}' is not a valid list: {str(e).splitlines()[0]}"
            ) from e
        raw = [raw] if isinstance(raw, str | int) else raw
    if not isinstance(raw, list | tuple) or not all(
        isinstance(x, str | int) and not isinstance(x, bool) for x in raw
    ):
        raise ConfigError(
            f"Parameter '{name}' must be a list of ids such as [0, guest, '(blank)'], "
            f"got {_short(raw)!r}."
        )
    return tuple(dict.fromkeys(str(x).strip().lower() for x in raw if str(x).strip()))


_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}(\.[A-Za-z_][A-Za-z0-9_$]{0,254}){0,2}$")


def table_or_none(name: str, value: Any) -> str | None:
    """A table or view (``NAME``, ``SCHEMA.NAME`` or ``DATABASE.SCHEMA.NAME``) a source is read
    from."""
    if _null_text(value):
        return None
    if not isinstance(value, str) or not _TABLE.match(value.strip()):
        raise ConfigError(
            f"Parameter '{name}' must be a table or view name such as RAW.SHOP.ORDERS (plain "
            f"identifiers, dot-separated), got {_short(value)!r}."
        )
    return value.strip().upper()


def cross_check(values: Mapping[str, Any]) -> None:
    """Checks between parameters (each value already checked on its own).

    Raises:
        ConfigError: e.g. a source given both as a table and as a file.
    """
    for src in (contract.ORDERS, contract.CUSTOMERS, contract.REVIEWS):
        table, given = values.get(f"{src.name}_table"), values.get(src.setting)
        if table and given not in (None, src.default_file):
            raise ConfigError(
                f"Parameters '{src.name}_table' and '{src.setting}' are both set ({table!r}, "
                f"{given!r}): read {src.name} from one place; set {src.setting} to null."
            )


def _default_columns() -> dict[str, dict[str, None]]:
    """Every mappable field, unmapped: env.yaml lists them so each can be set on the command
    line."""
    return {name: {f: None for f in src.field_names} for name, src in contract.MAPPABLE.items()}


def _percent(x: float) -> str:
    return f"{x:.0%}" if x * 100 == round(x * 100) else f"{x:.2%}"


# --------------------------------------------------------------------------- the declaration
_INGEST = ("01_ingest",)
_FEATURES_ON = ("03_features", "04_model_comparison", "05_batch_prediction")

PARAMETERS: tuple[Parameter, ...] = (
    # where things are
    Parameter(
        "connection",
        "local",
        '"local" = embedded warehouse; "default" or a name in '
        "~/.snowflake/connections.toml = Snowflake",
        connection,
        ALL,
    ),
    Parameter(
        "database",
        None,
        "warehouse database (null: ANALYTICS locally, the connection's on Snowflake)",
        identifier_or_none,
        ALL,
    ),
    Parameter(
        "schema",
        None,
        "production schema (null: SHOP locally, the connection's on Snowflake)",
        identifier_or_none,
        ALL,
    ),
    Parameter(
        "run_namespace",
        NAMESPACE_AUTO,
        "auto | production | scratch | an experiment name (see README, Experiments and production)",
        namespace,
        ALL,
    ),
    Parameter(
        "data_dir",
        "data/raw",
        "folder of the input files (data contract: docs/data_contract.md)",
        path,
        _INGEST,
        identity=True,
        label=lambda v: f"data from {str(v).rstrip('/').split('/')[-1]}",
    ),
    Parameter(
        "warehouse_dir",
        "data/warehouse",
        "local warehouse files and model registry (connection: local)",
        path,
        ALL,
    ),
    Parameter("reports_dir", "reports", "executed notebooks + HTML, one folder per run", path),
    # the run
    Parameter("run_date", "2026-11-01", "scoring date; features use data before it", date, ALL),
    Parameter(
        "horizon_days",
        60,
        "prediction horizon in days",
        integer(7, 365),
        _FEATURES_ON,
        identity=True,
        label=lambda v: f"horizon {v} d",
    ),
    Parameter(
        "n_cutoffs",
        6,
        "training cut-offs before the held-out one (horizon_days apart)",
        integer(1, 24),
        ("03_features", "04_model_comparison"),
        identity=True,
        label=lambda v: f"{v} training cut-offs",
    ),
    Parameter(
        "cv_folds",
        3,
        "time-based CV: validate on each of the last cv_folds training cut-offs",
        integer(1, 12),
        ("04_model_comparison",),
        identity=True,
        label=lambda v: f"{v} CV folds",
    ),
    Parameter(
        "seed",
        42,
        "seed of every random choice",
        integer(0, 2**31 - 1),
        ("02_eda", "03_features", "04_model_comparison", "05_batch_prediction"),
        identity=True,
        label=lambda v: f"seed {v}",
    ),
    Parameter(
        "sample",
        1.0,
        "fraction of customers (by id hash) for fast iterations",
        number(0.0001, 1.0),
        _INGEST,
        identity=True,
        label=lambda v: f"{_percent(float(v))} sample",
    ),
    Parameter(
        "new_customer_days",
        30,
        '"new" = signed up within this many days of run_date',
        integer(1, 3650),
        ("05_batch_prediction",),
        identity=True,
        label=lambda v: f"new = last {v} d",
    ),
    Parameter(
        "scoring_set",
        "new",
        "who is scored: new | active | all",
        choice(SCORING_SETS),
        ("05_batch_prediction",),
        identity=True,
        label=lambda v: f"scoring {v} customers",
    ),
    Parameter(
        "models",
        ",".join(MODEL_NAMES),
        "candidates compared in 04",
        choices(MODEL_NAMES),
        ("04_model_comparison",),
        identity=True,
        label=lambda v: (
            "models " + ", ".join(v if isinstance(v, list | tuple) else str(v).split(","))
        ),
    ),
    Parameter(
        "primary_metric",
        "rmse",
        "rmse | mae | r2 (spend; selection by the mean over the CV folds)",
        choice(METRICS),
        ("04_model_comparison", "05_batch_prediction"),
        identity=True,
        label=lambda v: f"chosen by {str(v).upper()}",
    ),
    Parameter(
        "calibration_tolerance",
        0.10,
        "a candidate whose cross-validated total spend is off by more than "
        "this share is recalibrated (or refused)",
        number(0.0, 1.0, lo_open=True),
        ("04_model_comparison",),
        identity=True,
        label=lambda v: f"calibration tolerance {_percent(float(v))}",
    ),
    Parameter(
        "max_train_rows",
        60000,
        "cap on training rows per fit (seeded sample in the warehouse)",
        integer(1000, 10_000_000),
        ("04_model_comparison",),
        identity=True,
        label=lambda v: f"max {int(v):,} training rows",
    ),
    Parameter(
        "max_holdout_rows",
        250000,
        "cap on held-out rows judged in 04 (seeded sample in the warehouse)",
        integer(1000, 100_000_000),
        ("04_model_comparison",),
        identity=True,
        label=lambda v: f"max {int(v):,} held-out rows",
    ),
    Parameter(
        "text_max_rows",
        20000,
        "cap on texts pulled to train the text sentiment and topic models",
        integer(100, 1_000_000),
        ("02_eda", "03_features"),
        identity=True,
        label=lambda v: f"max {int(v):,} text rows",
    ),
    Parameter(
        "freshness_tolerance_days",
        3,
        "days run_date may lie after the last order's day before every report "
        "warns (and 04 stops: its held-out window would be partly empty)",
        integer(0, 366),
        ALL,
    ),
    Parameter(
        "text_topics",
        8,
        "topics the review and call texts are grouped into (02 report, 03 features)",
        integer(2, 50),
        ("02_eda", "03_features"),
        identity=True,
        label=lambda v: f"{v} text topics",
    ),
    Parameter(
        "forecast_level",
        0.9,
        "level of the forecast ranges in 05 (0.9 = 90%; their coverage is measured on "
        "the held-out window)",
        number(0.5, 0.99),
        ("05_batch_prediction",),
        identity=True,
        label=lambda v: f"{_percent(float(v))} ranges",
    ),
    Parameter(
        "currency",
        "EUR",
        "currency of every money figure in the reports (ISO 4217 code: EUR, USD, GBP, ...)",
        currency,
        ALL,
    ),
    Parameter(
        "chunk_rows",
        50000,
        "customers scored per chunk pulled to the client (05)",
        integer(1, 10_000_000),
        ("05_batch_prediction",),
    ),
    # the input files (inside data_dir); an optional one set to null is not used
    Parameter(
        "orders_file",
        contract.ORDERS.default_file,
        "JSON lines with nested items, or a CSV of order lines (.csv; .tsv, .txt)",
        file_name(optional=False),
        _INGEST,
        identity=True,
        label=lambda v: f"orders from {v}",
    ),
    Parameter(
        "customers_file",
        contract.CUSTOMERS.default_file,
        "optional: null -> customers derived from the orders",
        file_name(optional=True),
        _INGEST,
        identity=True,
        label=lambda v: f"customers from {v}" if v else "no customers file",
    ),
    Parameter(
        "reviews_file",
        contract.REVIEWS.default_file,
        "optional: null -> no review rows",
        file_name(optional=True),
        _INGEST,
        identity=True,
        label=lambda v: f"reviews from {v}" if v else "no reviews",
    ),
    Parameter(
        "calls_dir",
        contract.CALLS.default_file,
        "optional folder of support-call transcripts (*.txt)",
        file_name(optional=True),
        _INGEST,
        identity=True,
        label=lambda v: f"calls from {v}" if v else "no calls",
    ),
    Parameter(
        "max_audio_minutes",
        10,
        "audio calls: minutes of new recordings transcribed per run at most "
        "(transcripts are cached; the rest waits for the next run)",
        number(0.0, 100_000.0),
        _INGEST,
        identity=True,
        label=lambda v: f"max {float(v):g} audio min",
    ),
    Parameter(
        "audio_recognizer",
        "pocketsphinx",
        "speech recognizer for audio calls: pocketsphinx (offline, model in its wheel) "
        "or package.module:factory",
        recognizer_spec,
        _INGEST,
        identity=True,
        label=lambda v: f"recognizer {v}",
    ),
    Parameter(
        "columns",
        _default_columns(),
        "your column names where they differ from the contract's "
        "(field: your column; null = the contract's name)",
        column_mapping,
        _INGEST,
        identity=True,
        label=lambda v: "own column mapping",
    ),
    Parameter(
        "max_reject_share",
        contract.DEFAULT_MAX_REJECT_SHARE,
        "stop when more than this share of a source's rows is rejected",
        number(0.0, 1.0),
        _INGEST,
    ),
    Parameter(
        "date_formats",
        {
            s: {f: None for f in ("ts",) if f in src.field_names}
            | ({"signup_date": None} if s == "customers" else {})
            for s, src in contract.MAPPABLE.items()
        },
        "date layouts per source and field: iso | us | eu | ymd | names | epoch_s | epoch_ms | "
        "excel or a Snowflake format such as MM/DD/YYYY HH24:MI; null = detected",
        date_formats,
        _INGEST,
        identity=True,
        label=lambda v: "own date layouts",
    ),
    Parameter(
        "column_names",
        {s: None for s in contract.MAPPABLE},
        "CSV files without a header line: their column names in order, e.g. "
        "[customer_id, ts, quantity, amount]; null = the first line names the columns",
        column_names,
        _INGEST,
        identity=True,
        label=lambda v: "own column names",
    ),
    Parameter(
        "encodings",
        {s: None for s in contract.MAPPABLE},
        "text encoding per source file, e.g. cp1252, latin-1, utf-16; null = detected (UTF-8, "
        "UTF-16 by its byte-order mark, a file that is not UTF-8 as Windows-1252)",
        encodings,
        _INGEST,
        identity=True,
        label=lambda v: "own encodings",
    ),
    Parameter(
        "returns",
        "net",
        "return/cancellation lines (negative quantity, cancelled flag, order prefix): "
        "net | exclude | reject",
        choice(contract.RETURNS),
        _INGEST,
        identity=True,
        label=lambda v: f"returns {v}",
    ),
    Parameter(
        "return_order_prefix",
        None,
        "an order id starting with this is a cancellation, e.g. C",
        short_text_or_none(20),
        _INGEST,
        identity=True,
        label=lambda v: f"cancellations start with {v}",
    ),
    Parameter(
        "guest_ids",
        None,
        "customer ids meaning a guest checkout (null = the contract's list: empty, 0, -, "
        "null, n/a, guest, unknown, (blank), ...)",
        guest_ids,
        _INGEST,
        identity=True,
        label=lambda v: "own guest ids",
    ),
    Parameter(
        "customer_attributes",
        {"country": None, "channel": None},
        "orders-only files: per-customer attributes on the order lines, e.g. {country: Country}",
        customer_attributes,
        _INGEST,
        identity=True,
        label=lambda v: "attributes from order lines",
    ),
    Parameter(
        "max_product_types",
        25,
        "product types with their own feature columns; rarer ones are grouped as 'other'",
        integer(1, 500),
        _INGEST,
        identity=True,
        label=lambda v: f"max {v} product types",
    ),
    Parameter(
        "orders_table",
        None,
        "read orders from a warehouse table or view instead (e.g. RAW.SHOP.ORDERS; "
        "flat, one row per order line)",
        table_or_none,
        _INGEST,
        identity=True,
        label=lambda v: f"orders from table {v}",
    ),
    Parameter(
        "customers_table",
        None,
        "read customers from a warehouse table or view instead",
        table_or_none,
        _INGEST,
        identity=True,
        label=lambda v: f"customers from table {v}",
    ),
    Parameter(
        "reviews_table",
        None,
        "read reviews from a warehouse table or view instead",
        table_or_none,
        _INGEST,
        identity=True,
        label=lambda v: f"reviews from table {v}",
    ),
)

BY_NAME: dict[str, Parameter] = {p.name: p for p in PARAMETERS}
#: Ploomber renders pipeline.yaml with Jinja: a parameter named like a Jinja global (``namespace``,
#: ``range``, ...) would never be replaced there.
JINJA_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace"})
assert not JINJA_GLOBALS & set(BY_NAME), "a parameter is named like a Jinja global"


def get(name: str) -> Parameter:
    """The parameter called ``name``.

    Raises:
        ConfigError: there is no such parameter (the message lists the known ones).
    """
    try:
        return BY_NAME[name]
    except KeyError:
        raise ConfigError(f"Unknown parameter {name!r}; known: {sorted(BY_NAME)}.") from None


def for_notebook(notebook: str) -> list[Parameter]:
    """The parameters a notebook takes, in declaration order."""
    if notebook not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {notebook!r}; the notebooks are {list(NOTEBOOKS)}")
    return [p for p in PARAMETERS if notebook in p.notebooks]


def identity_names() -> list[str]:
    """Names of the parameters that make a run's identity."""
    return [p.name for p in PARAMETERS if p.identity]


# --------------------------------------------------------------------------- generated text
#: Variables every parameters cell declares besides the parameters: what Ploomber/Papermill inject.
INJECTED = {
    "upstream": "set by Ploomber: the products of the upstream tasks",
    "product": "set by Ploomber/Papermill: where this notebook's report goes (None when run on "
    "its own)",
    "run_context": "set by the pipeline: which run this is (None: a run of this notebook on its "
    "own)",
}


def parameters_cell(notebook: str) -> str:
    """The source of a notebook's tagged ``parameters`` cell (generated: edit this module, not the
    cell)."""
    lines = [
        "# Parameters (generated from customer_analytics/parameters.py). None = the value in "
        "env.yaml;",
        "# Ploomber and Papermill inject real values. A notebook run on its own writes to a "
        "scratch",
        '# namespace: set run_namespace = "production" to write production\'s tables.',
    ]
    lines += [f"{name} = None" for name in INJECTED]
    lines += [f"{p.name} = None" for p in for_notebook(notebook)]
    return "\n".join(lines)


def _yaml_value(value: Any) -> str:
    if isinstance(value, Mapping):
        inner = ", ".join(f"{k}: {_yaml_value(v)}" for k, v in value.items())
        return "{" + inner + "}"
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def render_env(values: Mapping[str, Any] | None = None) -> str:
    """``env.yaml`` for ``values`` (default: the declared defaults), one commented key per
    parameter."""
    values = values or {p.name: p.default for p in PARAMETERS}
    out = [
        "# Run parameters: the production profile (read-only for notebooks). Generated layout: "
        "the keys and",
        "# comments follow customer_analytics/parameters.py (python -m "
        "customer_analytics.pipeline --write).",
        "# Override for one run: customer-analytics run --set key=value (or ploomber build "
        "--env--key value);",
        "# a run whose parameters differ from these is an experiment, kept apart (README: "
        "Experiments).",
    ]
    for p in PARAMETERS:
        value = values.get(p.name, p.default)
        if isinstance(p.default, Mapping) and isinstance(
            value, Mapping
        ):  # every key listed, set or not
            value = _merged(p.default, value)
        if (
            isinstance(value, Mapping)
            and value
            and all(isinstance(v, Mapping) for v in value.values())
        ):
            out.append(f"{p.name}:".ljust(31) + f"# {p.help}")
            out += [f"  {k}: {_yaml_value(v)}" for k, v in value.items()]
        else:
            out.append(f"{p.name}: {_yaml_value(value)}".ljust(30) + f" # {p.help}")
    return "\n".join(out) + "\n"


def _merged(default: Mapping[str, Any], value: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(default)
    for k, v in value.items():
        out[k] = (
            _merged(default[k], v)
            if isinstance(default.get(k), Mapping) and isinstance(v, Mapping)
            else v
        )
    return out


def env_comments(text_: str) -> dict[str, str]:
    """The comment of each top-level key of an ``env.yaml`` text (for the consistency test)."""
    out = {}
    for line in text_.splitlines():
        m = re.match(r"^([a-z_]+):.*?#\s*(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


@dataclass(frozen=True)
class Difference:
    """One identity parameter whose value differs from the production profile."""

    name: str
    production: Any
    value: Any
    label: str = field(default="")
