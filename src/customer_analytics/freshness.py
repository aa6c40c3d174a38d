"""How fresh the data is: the first and last order of the clean data, and what a run date may
assume.

The ingest records the date range of each source's accepted rows in ``INGEST_LOG`` (``FIRST_TS``,
``LAST_TS``). Reports put :func:`customer_analytics.narrative.runs.run_date_note` at the top when
``run_date`` lies beyond the data; model comparison calls :func:`check_holdout` first, so a
held-out window that reaches past the data (half empty: the model would be judged on customers
who simply have no data yet) stops the run instead of promoting a model on it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import snowflake.snowpark.functions as F
from snowflake.snowpark import Session

from customer_analytics import warehouse as wh

log = logging.getLogger(__name__)

#: Days a run date may lie after the last order's day before reports warn and 04 stops. A run
#: date is the first day *not* in the data, so 1 means "data up to yesterday"; 3 lets a Monday run
#: use an export that ends on Friday (two days of the held-out window without data).
DEFAULT_TOLERANCE_DAYS = 3


class FreshnessError(RuntimeError):
    """The data does not cover the window a step needs; the message names both dates and the fix."""

    def _render_traceback_(self) -> list[str]:
        return [f"FreshnessError: {self}"]


@dataclass(frozen=True)
class Freshness:
    """First and last order (timestamps) of the clean data; ``None`` when there is no order."""

    first: dt.datetime | None
    last: dt.datetime | None

    @property
    def last_day(self) -> dt.date | None:
        return self.last.date() if self.last else None

    def days_after(self, run_date: dt.date) -> int | None:
        """Days from the last order's date to ``run_date`` (negative: the data goes beyond it)."""
        return (run_date - self.last.date()).days if self.last else None


def freshness(session: Session, source: str = "orders") -> Freshness:
    """The date range of a source's clean rows, as the last ingest recorded it in INGEST_LOG.

    Falls back to CLEAN_ORDERS (a small aggregate) for a warehouse ingested before INGEST_LOG had
    the columns.
    """
    if wh.table_exists(session, "INGEST_LOG"):
        t = session.table("INGEST_LOG")
        if {"FIRST_TS", "LAST_TS"} <= set(t.columns):
            rows = (
                t.filter(F.col("SOURCE") == F.lit(source))
                .select("ACCEPTED", "FIRST_TS", "LAST_TS")
                .collect()
            )
            if rows:
                r = rows[0]
                return (
                    Freshness(r["FIRST_TS"], r["LAST_TS"])
                    if r["ACCEPTED"]
                    else Freshness(None, None)
                )
    row = (
        session.table("CLEAN_ORDERS")
        .agg(F.count(F.lit(1)).alias("N"), F.min("TS").alias("FIRST"), F.max("TS").alias("LAST"))
        .collect()[0]
    )
    return (
        Freshness(row["FIRST"], row["LAST"]) if row["N"] else Freshness(None, None)
    )  # NULL shows as 1970


def check_holdout(
    fresh: Freshness,
    run_date: dt.date,
    horizon_days: int,
    tolerance_days: int = DEFAULT_TOLERANCE_DAYS,
) -> None:
    """Stop when the held-out window ``[run_date - horizon, run_date)`` reaches past the data.

    Raises:
        FreshnessError: naming the window, the last order date and the fix.
    """
    start = run_date - dt.timedelta(days=horizon_days)
    if fresh.last is None:
        raise FreshnessError(
            "The clean data holds no order: there is nothing to evaluate a model on. Fix: "
            "ingest order data (01_ingest)."
        )
    gap = fresh.days_after(run_date)
    if gap is not None and gap > tolerance_days:
        latest = fresh.last.date() + dt.timedelta(days=tolerance_days)
        raise FreshnessError(
            f"The held-out window {start} to {run_date - dt.timedelta(days=1)} reaches past the "
            f"data, which ends {fresh.last_day}: its last {gap - 1} days have no order at all, so "
            "no model can be judged (or promoted) on it. Fix: an earlier run_date (at most "
            f"{latest}) or newer data."
        )
