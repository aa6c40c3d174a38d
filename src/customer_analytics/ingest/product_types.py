"""Product types as identifiers: names from the data become safe, unique keys; rare ones are
grouped.

Downstream, every product type becomes columns (``QTY_<key>``, ``QTY_NEXT_<key>``, …), so the key
must be a valid identifier whatever the shop calls its products. At ingest:

* each product name (lower-cased) gets a key: transliterated to ASCII (:mod:`anyascii`: ``crème
  brûlée`` -> ``creme_brulee``, ``Straße`` -> ``strasse``, CJK -> its romanisation), every other
  character run as ``_``, at most :data:`MAX_KEY` characters, ``p_`` before a leading digit;
* names that end up with the same key (``choc-chip``, ``choc chip``) are told apart, never merged:
  the most frequent keeps the key, the next get ``_2``, ``_3``, …;
* only the ``max_product_types`` most frequent types (by order lines) keep a key of their own; the
  rest are grouped as ``other``, so one-off products cannot multiply the feature columns.

The mapping is the table ``PRODUCT_TYPES`` (key, name, lines, units, note); ``CLEAN_ORDER_LINES``
carries the key in ``PRODUCT`` and the name in ``PRODUCT_NAME``. Only the top names and one count
come to the client, so the work stays bounded whatever the number of distinct names.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from pathlib import Path

import pandas as pd
import snowflake.snowpark.functions as F
from anyascii import anyascii
from snowflake.snowpark import DataFrame, Session

from customer_analytics import warehouse as wh

#: Longest key (the column prefixes add at most 10 characters).
MAX_KEY = 40
#: The key of the group of product types beyond ``max_product_types``.
OTHER = "other"
#: Default of ``max_product_types``.
DEFAULT_MAX_TYPES = 25
TABLE = "PRODUCT_TYPES"
COLUMNS = ["PRODUCT", "NAME", "LINES", "UNITS", "NAMES", "NOTE"]


def product_key(name: str) -> str:
    """A product name as an identifier suffix: ASCII, lower case, ``_`` between words."""
    text = re.sub(r"[^a-z0-9]+", "_", anyascii(name or "").lower()).strip("_")
    text = text or "product"
    if text[0].isdigit():
        text = "p_" + text
    return text[:MAX_KEY].rstrip("_")


def assign_keys(names: list[str], reserved: AbstractSet[str] = frozenset()) -> dict[str, str]:
    """Unique keys for ``names`` (most important first): a clash gets ``_2``, ``_3``, … in that
    order."""
    taken, out = set(reserved), {}
    for name in names:
        base = product_key(name)
        key, k = base, 1
        while key in taken:
            k += 1
            key = f"{base[: MAX_KEY - len(str(k)) - 1]}_{k}"
        taken.add(key)
        out[name] = key
    return out


def _note(name: str, key: str) -> str:
    if key == product_key(name) and key == name:
        return ""
    return "renamed" if key == product_key(name) else "told apart from a name with the same key"


def build(
    session: Session, lines: DataFrame, max_types: int, table: str, staging: Path
) -> DataFrame:
    """Write the mapping of product names (``lines.PRODUCT``) to keys into ``table``; return it.

    Args:
        lines: the accepted order lines (PRODUCT = the name, QUANTITY).
        max_types: product types that keep a key of their own; the others are grouped as ``other``.
    """
    per = lines.group_by("PRODUCT").agg(
        F.count(F.lit(1)).alias("LINES"), F.sum(F.abs("QUANTITY")).alias("UNITS")
    )
    n = per.count()
    top = wh.to_pandas(
        per.sort(F.col("LINES").desc(), F.col("PRODUCT")).limit(max_types), "ingest:product_types"
    )
    grouped = n > max_types
    keys = assign_keys(list(top["PRODUCT"]), {OTHER} if grouped else set())
    rows = [
        {
            "PRODUCT": keys[r.PRODUCT],
            "NAME": r.PRODUCT,
            "LINES": int(r.LINES),
            "UNITS": int(r.UNITS or 0),
            "NAMES": 1,
            "NOTE": _note(r.PRODUCT, keys[r.PRODUCT]),
        }
        for r in top.itertuples()
    ]
    if grouped:  # the rest: totals minus the top
        tot = per.agg(F.sum("LINES").alias("L"), F.sum("UNITS").alias("U")).collect()[0]
        rest = (
            n - len(top),
            int(tot["L"]) - int(top["LINES"].sum()),
            int(tot["U"] or 0) - int(top["UNITS"].sum()),
        )
        rows.append(
            {
                "PRODUCT": OTHER,
                "NAME": None,
                "LINES": rest[1],
                "UNITS": rest[2],
                "NAMES": rest[0],
                "NOTE": f"the {rest[0]:,} least frequent product types",
            }
        )
    wh.write_pandas(session, pd.DataFrame(rows, columns=COLUMNS), table, staging)
    return session.table(table)


def with_keys(lines: DataFrame, mapping: DataFrame) -> DataFrame:
    """``lines`` with PRODUCT = the key and PRODUCT_NAME = the name (unmapped: ``other``)."""
    m = mapping.filter(F.col("NAME").is_not_null()).select(
        F.col("NAME").alias("_NAME"), F.col("PRODUCT").alias("_KEY")
    )
    joined = lines.join(m, F.col("PRODUCT") == F.col("_NAME"), "left")
    cols = [
        F.coalesce(F.col("_KEY"), F.lit(OTHER)).alias("PRODUCT") if c == "PRODUCT" else F.col(c)
        for c in lines.columns
    ]
    return joined.select(*cols, F.col("PRODUCT").alias("PRODUCT_NAME"))


def frame(session: Session) -> pd.DataFrame:
    """The mapping for the report: every key with its name, lines and units, and what was done to
    it."""
    out = wh.to_pandas(
        session.table(TABLE).sort(F.col("LINES").desc()), "ingest:product_types_frame"
    )
    out.columns = [c.lower() for c in out.columns]
    return out.set_index("product")
