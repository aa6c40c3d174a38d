"""The headline records a notebook leaves for the run index: one typed record per notebook.

The notebook's summary cell builds the record (``run.record(headlines.Scoring(...))``) and
:mod:`customer_analytics.reports` reads it back into the same class to build ``index.html``: a
field renamed on one side fails loudly on the other (in the tests), instead of showing "—".
Records hold aggregates only: counts, money totals, model names, metric values — never a
customer's row, a path or a connection detail.

Standard library only.
"""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from typing import Any, ClassVar

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Record:
    """Base of every headline record."""

    notebook: ClassVar[str] = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """The record from its JSON form; a value of the wrong type is dropped (with a warning), not
        trusted."""
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if _fits(value, hints[f.name]):
                values[f.name] = value
            else:
                log.warning(
                    "%s: ignoring %s=%r (not a %s)", cls.notebook, f.name, value, hints[f.name]
                )
        return cls(**values)


def _fits(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        return isinstance(value, list | tuple)
    if origin is dict:
        return isinstance(value, dict)
    if hint is Any:
        return True
    return isinstance(value, hint)


@dataclasses.dataclass
class SourceCount:
    """Row accounting of one input source."""

    source: str
    unit: str
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    excluded: int = 0
    sampled_out: int = 0
    status: str = "loaded"


@dataclasses.dataclass
class Ingest(Record):
    """01_ingest: what was read, accepted, rejected per source."""

    notebook: ClassVar[str] = "01_ingest"
    sources: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    last_order: str | None = None

    def counts(self) -> list[SourceCount]:
        names = {f.name for f in dataclasses.fields(SourceCount)}
        out = []
        for s in self.sources:
            if isinstance(s, dict) and isinstance(s.get("source"), str):
                out.append(SourceCount(**{k: v for k, v in s.items() if k in names}))
        return out


@dataclasses.dataclass
class Eda(Record):
    """02_eda: the size of the clean data."""

    notebook: ClassVar[str] = "02_eda"
    customers: int | None = None
    orders: int | None = None
    revenue: float | None = None
    first_order: str | None = None
    last_order: str | None = None


@dataclasses.dataclass
class Features(Record):
    """03_features: rows per role and model inputs."""

    notebook: ClassVar[str] = "03_features"
    train_rows: int | None = None
    holdout_rows: int | None = None
    score_rows: int | None = None
    n_features: int | None = None


@dataclasses.dataclass
class Model(Record):
    """04_model_comparison: the version trained here, how it compares, and whether it became the
    default."""

    notebook: ClassVar[str] = "04_model_comparison"
    candidate: str = ""
    version: str = ""
    model_name: str = ""
    metric: str = "rmse"
    error: float | None = None
    baseline: str = ""
    improvement: float | None = None
    promoted: bool | None = None
    decision: str = ""
    default_version: str = ""
    default_error: float | None = None


@dataclasses.dataclass
class Scoring(Record):
    """05_batch_prediction: who was scored, with which version, and what it predicts in total."""

    notebook: ClassVar[str] = "05_batch_prediction"
    customers_scored: int = 0
    scoring_set: str = ""
    predicted_spend: float = 0.0
    mean_predicted_spend: float | None = None
    model_name: str = ""
    model_version: str = ""
    candidate: str = ""
    metric: str = ""
    error: float | None = None
    horizon_days: int | None = None
    table_rows: int = 0
    chunks: int = 0
    scored_in: str = ""  # "warehouse" (Snowflake, through the registry) or "client" (in chunks)
    scoring_note: str = ""
    alternatives: dict[str, Any] | None = (
        None  # no one scored: how many other scoring sets would hold
    )
    drift: dict[str, Any] | None = (
        None  # drift.Findings.record(): large shifts, counts, predictions' shift
    )
    drift_assessed: bool = False
    # the forecast (forecast.py): expected spend over the horizon with its measured range
    currency: str = ""
    expected_spend: float | None = None
    spend_low: float | None = None
    spend_high: float | None = None
    level: float | None = None
    coverage: float | None = (
        None  # measured on the held-out window (groups of coverage_group customers)
    )
    coverage_group: int | None = None
    window_end: str | None = None
    buyers: float | None = None  # expected number of scored customers who buy
    top_decile_share: float | None = None  # share of the expected spend from the top 10% of them
    track: list[dict[str, Any]] = dataclasses.field(
        default_factory=list
    )  # earlier forecasts vs actual
    changes: dict[str, Any] | None = (
        None  # forecast.Change.record(): this run against the previous one
    )


RECORDS: dict[str, type[Record]] = {c.notebook: c for c in (Ingest, Eda, Features, Model, Scoring)}


def parse(notebook: str, data: dict[str, Any]) -> Record | None:
    """The typed record of ``notebook`` from its JSON form (``None`` for an unknown notebook)."""
    cls = RECORDS.get(notebook)
    return cls.from_dict(data) if cls else None


def ingest_record(counts: list[Any], last_order: str | None = None) -> Ingest:
    """01's record from the ingest's per-source counts (only their totals: no examples, no
    values)."""
    names = [f.name for f in dataclasses.fields(SourceCount)]
    sources = [{n: getattr(c, n) for n in names if hasattr(c, n)} for c in counts]
    return Ingest(sources=sources, last_order=last_order)
