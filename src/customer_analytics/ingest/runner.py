"""One ingest run: plan, load and check every source, then publish all tables together or none."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import snowflake.snowpark.functions as F
from snowflake.snowpark import Session

from customer_analytics import contract
from customer_analytics import warehouse as wh
from customer_analytics.config import Params
from customer_analytics.contract import CUSTOMERS, SourceStatus
from customer_analytics.ingest import publish as pub
from customer_analytics.ingest import stage as st
from customer_analytics.ingest.common import (
    NEW,
    STAGE,
    UNIT,
    IngestError,
    SourceCounts,
    SourcePlan,
    public_text,
)
from customer_analytics.ingest.plan import drop_copies, plan_sources

log = logging.getLogger(__name__)


class IngestResult(list):
    """The row accounting of a run, one :class:`SourceCounts` per source (a list), and whether it
    succeeded.

    A failed run (``ok`` False; only with ``run(..., on_error="return")``) holds the counts of the
    sources checked before it stopped, the stop's ``message`` and the source that stopped it, so a
    report can show the reasons and examples before raising with :meth:`raise_if_failed`.
    """

    def __init__(
        self,
        counts: Iterable[SourceCounts] = (),
        message: str | None = None,
        source: str | None = None,
        public: str | None = None,
    ):
        super().__init__(counts)
        self.message, self.source = message, source
        self.public = (
            public or message
        )  # the message without the data folder's location, for reports

    @property
    def ok(self) -> bool:
        return self.message is None

    def raise_if_failed(self) -> None:
        """Raise the run's :class:`IngestError` if it failed (the message alone, no traceback in
        notebooks). The message names files relative to data_dir: it reaches the report, the
        run's status, the index and the log, which must not reveal where the data lives."""
        if not self.ok:
            raise IngestError(self.public)


def run(session: Session, params: Params, on_error: str = "raise") -> IngestResult:
    """Ingest every configured source; replace the CLEAN_*/REJECTED_*/RAW_* tables only if all of it
    succeeded.

    Args:
        on_error: ``raise`` (default): unusable input raises :class:`IngestError`. ``return``: the
            run returns a failed :class:`IngestResult` instead (counts so far, message), for a
            report that shows why before raising.

    Returns:
        Row accounting per source (customers, orders, reviews, calls), missing sources included.

    Raises:
        IngestError: unusable input (see the package docstring); the previous tables are unchanged.
    """
    counts: dict[str, SourceCounts] = {}
    try:
        plans = {p.source.name: p for p in plan_sources(params)}
        staging = params.warehouse_dir / "staging"
        try:
            pub.drop(session, pub.staged_names())  # leftovers of an interrupted run
            result = stage_all(session, params, plans, staging, counts)
            pub.publish(session)
        finally:
            drop_copies(plans.values())
            pub.drop(session, pub.staged_names())
    except IngestError as e:
        if on_error != "return":
            raise
        failed = getattr(e, "counts", None)
        public = public_text(str(e), params.data_dir)
        log.warning("ingest stopped: %s", public)
        return IngestResult(
            list(counts.values()), str(e), failed.source if failed else None, public
        )
    for c in result:
        log.info(
            "%s: %s read, %s accepted, %s rejected, %s excluded",
            c.source,
            c.read,
            c.accepted,
            c.rejected,
            c.excluded,
        )
    return IngestResult(result)


#: How each optional source is staged after the orders (customers come first: orders are checked
#: against them).
_LATER = {"reviews": st.stage_reviews, "calls": st.stage_calls}


def stage_all(
    session: Session,
    params: Params,
    plans: dict[str, SourcePlan],
    staging: Path,
    counts: dict[str, SourceCounts] | None = None,
) -> list[SourceCounts]:
    """Load, check and account for every present source, then write the ``__NEW`` tables.

    ``counts`` (filled as sources are checked) keeps what was counted when a check stops the run.
    """
    f, limit = params.sample, params.max_reject_share
    counts = {} if counts is None else counts

    def account(name: str) -> None:
        counts[name] = st.account(session, STAGE[name], plans[name], UNIT[name], f)
        st.check_threshold(counts[name], plans[name], limit)

    customers = None
    if plans["customers"].present:
        st.stage_customers(
            session, *st.load(session, plans["customers"], staging), plans["customers"]
        )
        account("customers")
        customers = session.table(STAGE["customers"]).filter(F.col("REASON").is_null())
    st.stage_orders(
        session, *st.load(session, plans["orders"], staging), plans["orders"], customers
    )
    account("orders")
    _require_accepted(counts["orders"], plans["orders"])
    for name, build in _LATER.items():
        if plans[name].present:
            build(session, *st.load(session, plans[name], staging), plans[name], customers)
            account(name)
    pub.write_clean(session, plans, f, staging)
    result = [
        counts.get(src.name) or _not_loaded(session, plans[src.name]) for src in contract.SOURCES
    ]
    pub.write_log(session, result, staging)
    return result


def _require_accepted(c: SourceCounts, plan: SourcePlan) -> None:
    """No order line accepted at all (every one excluded, say): nothing to learn from, stop and say
    why."""
    if c.accepted + c.sampled_out > 0:
        return
    why = (
        ", ".join(f"{n:,} {r}" for r, n in {**c.reasons, **c.excluded_reasons}.items())
        or "none read"
    )
    raise IngestError(
        f"{plan.path}: no order line was accepted ({why}). Nothing was replaced. Fix: check "
        "columns: {orders: {customer_id: …}} (a column of placeholders makes every order a guest "
        "order) and guest_ids."
    )


def _not_loaded(session: Session, plan: SourcePlan) -> SourceCounts:
    """Accounting of a source that was not loaded (missing or disabled; customers: derived from the
    orders)."""
    name = plan.source.name
    pub.missing_raw(session, name)
    c = SourceCounts(
        name,
        UNIT[name],
        0,
        0,
        0,
        file=plan.name,
        status=SourceStatus.MISSING if plan.name else SourceStatus.DISABLED,
        skipped=dict(plan.skipped),
    )
    if plan.source is CUSTOMERS:
        c.status, c.derived = SourceStatus.DERIVED, wh.row_count(session, "CLEAN_CUSTOMERS" + NEW)
    return c
