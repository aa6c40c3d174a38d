"""Pushdown audit: what left the warehouse, query by query.

On Snowflake the only data that may come back to the client is per-customer rows (features,
predictions), bounded samples (the text model's training reviews, the capped training rows) and
small aggregates for figures and tables. With ``CA_WAREHOUSE_AUDIT=<file>`` set when the embedded
warehouse server starts, the server records every query result it sends (rows, columns, the most
rows any one customer has in it, the start of the SQL) as one JSON line; :func:`violations` then
lists the results that break the rule, e.g. an order-level table pulled to the client.

Rules, per result:

* with a ``CUSTOMER_ID`` column: at most one row per customer (and ``CUTOFF``, where present),
  unless it is a declared bounded sample (it carries the ``_ORDER`` sampling column) of at most
  ``sample_limit`` rows;
* without one: at most ``aggregate_limit`` rows, unless it is a declared bounded sample (``_ORDER``)
  or a compressed per-customer summary (``N_CUSTOMERS``: the customers each row stands for, so at
  most one row per customer) of at most ``sample_limit`` rows.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from customer_analytics.warehouse_server import AUDIT_VAR, describe_result  # noqa: F401 - part of this API

log = logging.getLogger(__name__)

SAMPLE_COLUMN = "_ORDER"
COMPRESSED_COLUMN = "N_CUSTOMERS"
AGGREGATE_LIMIT = 2000
SAMPLE_LIMIT = 60_000


def read(path: Path) -> list[dict]:
    """The audit records of ``path`` (empty when nothing was recorded)."""
    if not path.is_file():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def violations(
    records: list[dict], aggregate_limit: int = AGGREGATE_LIMIT, sample_limit: int = SAMPLE_LIMIT
) -> list[dict]:
    """The records that brought more than per-customer rows, bounded samples or small aggregates."""
    out = []
    for r in records:
        if "max_rows_per_customer" in r:
            sample = SAMPLE_COLUMN in r["columns"] and r["rows"] <= sample_limit
            if r["max_rows_per_customer"] > 1 and not sample:
                out.append({**r, "why": f"up to {r['max_rows_per_customer']} rows per customer"})
        elif r["rows"] > aggregate_limit and not (
            {SAMPLE_COLUMN, COMPRESSED_COLUMN} & set(r["columns"]) and r["rows"] <= sample_limit
        ):
            out.append(
                {
                    **r,
                    "why": f"{r['rows']:,} rows without a customer key "
                    f"(aggregate limit {aggregate_limit:,})",
                }
            )
    return out
