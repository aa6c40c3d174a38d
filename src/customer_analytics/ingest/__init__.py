"""Ingest: input files -> RAW_* -> CLEAN_* (+ REJECTED_*), checked against the data contract.

The contract (formats, fields, rejection reasons) is :mod:`customer_analytics.contract`; the
human-readable version is ``docs/data_contract.md``. A run (:func:`run`) goes through four phases,
one module each:

1. **Plan** (:mod:`.plan`): find the configured files, check what can be checked without reading
   them all (existence, size, format, CSV header, first JSON lines) and stop with one
   :class:`IngestError` naming the file, the problem and the fix. Nothing has been written yet.
2. **Load** (:mod:`.stage`) each file into ``RAW_<SOURCE>__NEW``, one row per physical record, by
   the streaming readers (:mod:`customer_analytics.readers`, bounded memory): unreadable records
   (encoding, JSON/CSV syntax) are flagged there, never dropped.
3. **Check** (:mod:`.checks`, generated from the contract's field definitions) every row in the
   warehouse (Snowpark, identical on both backends): the first failing check of each row gives its
   ``FIELD`` and ``REASON``; then duplicates, then unknown customers. Row accounting (read =
   accepted + rejected + sampled out) is asserted per source, and a source with more than
   ``max_reject_share`` rejected stops the run.
4. **Publish** (:mod:`.publish`): ``CLEAN_*``, ``REJECTED_*``, ``RAW_*``, ``INGEST_LOG`` and
   ``INGEST_REASONS`` are written as ``*__NEW`` tables and only then put in place together
   (:func:`warehouse.publish`). Any failure before that leaves every previous table as it was.

:mod:`.report` holds the numbers the 01_ingest notebook shows (its words are in
:mod:`customer_analytics.narrative.ingest`). Names and e-mails are never typed into a
column: they stay inside ``RECORD`` in ``RAW_CUSTOMERS`` (and ``REJECTED_CUSTOMERS``); no clean
table and no report carries them. Sampling (``sample`` < 1) keeps the accepted rows of customers
whose id hashes into the sample, after every check ran.
"""

from __future__ import annotations

from customer_analytics.ingest.common import (
    CLEAN_COLUMNS,
    CLEAN_TYPES,
    RAW,
    STEM,
    IngestError,
    SourceCounts,
    SourcePlan,
)
from customer_analytics.ingest.plan import drop_copies, load_raw_file, plan_sources
from customer_analytics.ingest.report import (
    counts_frame,
    guest_monthly,
    guest_orders,
    product_types_table,
    reasons_frame,
    returns_summary,
    shown_id,
    source_paths,
    sources_frame,
    suspect_customers,
    table_counts,
)
from customer_analytics.ingest.runner import IngestResult, run
from customer_analytics.ingest.stage import in_sample

__all__ = [
    "CLEAN_COLUMNS",
    "CLEAN_TYPES",
    "IngestError",
    "IngestResult",
    "RAW",
    "STEM",
    "SourceCounts",
    "SourcePlan",
    "counts_frame",
    "drop_copies",
    "guest_monthly",
    "guest_orders",
    "in_sample",
    "load_raw_file",
    "plan_sources",
    "product_types_table",
    "reasons_frame",
    "returns_summary",
    "run",
    "shown_id",
    "source_paths",
    "sources_frame",
    "suspect_customers",
    "table_counts",
]
