"""One ingest run: plan, load and check every source, then publish all tables together or none."""

from __future__ import annotations

import logging
from pathlib import Path

import snowflake.snowpark.functions as F
from snowflake.snowpark import Session

from customer_analytics import contract
from customer_analytics import warehouse as wh
from customer_analytics.config import Params
from customer_analytics.contract import CUSTOMERS
from customer_analytics.ingest import publish as pub
from customer_analytics.ingest import stage as st
from customer_analytics.ingest.common import NEW, STAGE, UNIT, SourceCounts, SourcePlan
from customer_analytics.ingest.plan import plan_sources

log = logging.getLogger(__name__)


def run(session: Session, params: Params) -> list[SourceCounts]:
    """Ingest every configured source; replace the CLEAN_*/REJECTED_*/RAW_* tables only if all of it succeeded.

    Returns:
        Row accounting per source (customers, orders, reviews, calls), missing sources included.

    Raises:
        IngestError: unusable input (see the package docstring); the previous tables are unchanged.
    """
    plans = {p.source.name: p for p in plan_sources(params)}
    staging = params.warehouse_dir / "staging"
    pub.drop(session, pub.staged_names())  # leftovers of an interrupted run
    try:
        counts = stage_all(session, params, plans, staging)
        pub.publish(session)
    finally:
        pub.drop(session, pub.staged_names())
    for c in counts:
        log.info("%s: %s read, %s accepted, %s rejected", c.source, c.read, c.accepted, c.rejected)
    return counts


#: How each optional source is staged after the orders (customers come first: orders are checked against them).
_LATER = {"reviews": st.stage_reviews, "calls": st.stage_calls}


def stage_all(
    session: Session, params: Params, plans: dict[str, SourcePlan], staging: Path
) -> list[SourceCounts]:
    """Load, check and account for every present source, then write the ``__NEW`` tables."""
    f, limit = params.sample, params.max_reject_share
    counts: dict[str, SourceCounts] = {}

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
    for name, build in _LATER.items():
        if plans[name].present:
            build(session, *st.load(session, plans[name], staging), plans[name], customers)
            account(name)
    pub.write_clean(session, plans, f)
    result = [
        counts.get(src.name) or _not_loaded(session, plans[src.name]) for src in contract.SOURCES
    ]
    pub.write_log(session, result, staging)
    return result


def _not_loaded(session: Session, plan: SourcePlan) -> SourceCounts:
    """Accounting of a source that was not loaded (missing or disabled; customers: derived from the orders)."""
    name = plan.source.name
    pub.missing_raw(session, name)
    c = SourceCounts(
        name, UNIT[name], 0, 0, 0, file=plan.name, status="missing" if plan.name else "disabled"
    )
    if plan.source is CUSTOMERS:
        c.status, c.derived = "derived", wh.row_count(session, "CLEAN_CUSTOMERS" + NEW)
    return c
