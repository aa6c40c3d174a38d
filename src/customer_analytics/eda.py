"""Aggregates for exploratory analysis, computed in the warehouse (only small tables come back).

Reports are shared widely: every function here returns aggregates, never a customer's row.
"""

from __future__ import annotations

import pandas as pd
import snowflake.snowpark.functions as F
from snowflake.snowpark import Session

from customer_analytics import warehouse as wh

CLEAN_TABLES = ("CLEAN_CUSTOMERS", "CLEAN_ORDERS", "CLEAN_ORDER_LINES", "CLEAN_REVIEWS")


def _pull(df, label: str) -> pd.DataFrame:
    out = wh.to_pandas(df, f"eda:{label}")
    out.columns = [c.lower() for c in out.columns]
    return out


def monthly_orders(session: Session) -> pd.DataFrame:
    """Orders, revenue and active customers per calendar month."""
    month = F.date_trunc("month", F.col("TS")).alias("MONTH")
    df = session.table("CLEAN_ORDERS").group_by(month).agg(
        F.count(F.lit(1)).alias("ORDERS"), F.sum("ORDER_TOTAL").alias("REVENUE"),
        F.count_distinct("CUSTOMER_ID").alias("CUSTOMERS")).sort("MONTH")
    return _pull(df, "monthly").set_index("month")


def product_mix(session: Session) -> pd.DataFrame:
    """Quantity and revenue per product type."""
    df = session.table("CLEAN_ORDER_LINES").group_by("PRODUCT").agg(
        F.sum("QUANTITY").alias("QUANTITY"), F.sum(F.col("QUANTITY") * F.col("UNIT_PRICE")).alias("REVENUE"))
    return _pull(df, "products").set_index("product").sort_values("revenue", ascending=False)


def counts_by(session: Session, table: str, column: str) -> pd.Series:
    """Row counts per value of ``column`` (missing values shown as 'missing')."""
    df = session.table(table).group_by(column).count()
    out = _pull(df, f"{table}.{column}")
    out[column.lower()] = out[column.lower()].astype(object).where(out[column.lower()].notna(), "missing")
    return out.set_index(column.lower())["count"].sort_index(key=lambda s: s.astype(str))


def binned(session: Session, table: str, column: str, width: float, cap: float) -> pd.Series:
    """Histogram of ``column`` with bins of ``width``; values above ``cap`` go to the last bin."""
    b = F.least(F.floor(F.col(column) / width) * width, F.lit(cap)).alias("BIN")
    out = _pull(session.table(table).group_by(b).count(), f"{table}.{column}:bins")
    return out.set_index("bin")["count"].sort_index()


def orders_per_customer(session: Session, cap: int = 30) -> pd.Series:
    """How many customers placed 0, 1, 2, … orders (``cap`` = cap or more)."""
    per = session.table("CLEAN_ORDERS").group_by("CUSTOMER_ID").agg(F.count(F.lit(1)).alias("N"))
    out = _pull(per.group_by(F.least(F.col("N"), F.lit(cap)).alias("ORDERS")).count(), "orders_per_customer")
    return out.set_index("orders")["count"].sort_index()


def missing_values(session: Session, tables: tuple[str, ...] = CLEAN_TABLES) -> pd.DataFrame:
    """Share of missing values per column of each clean table (columns with none are omitted)."""
    rows = []
    for t in tables:
        df = session.table(t)
        agg = df.agg(*[F.count(F.lit(1)).alias("N")] + [F.count(F.col(c)).alias(c) for c in df.columns]).collect()[0]
        n = agg["N"] or 1
        rows += [{"table": t, "column": c, "missing_share": 1 - agg[c] / n} for c in df.columns]
    out = pd.DataFrame(rows)
    return out[out["missing_share"] > 0].set_index(["table", "column"])


def headline(session: Session) -> dict[str, float]:
    """A few headline figures for the report summary."""
    o = session.table("CLEAN_ORDERS").agg(
        F.count(F.lit(1)).alias("ORDERS"), F.sum("ORDER_TOTAL").alias("REVENUE"),
        F.min("TS").alias("FIRST"), F.max("TS").alias("LAST")).collect()[0]
    return {"customers": wh.row_count(session, "CLEAN_CUSTOMERS"), "orders": o["ORDERS"],
            "revenue": float(o["REVENUE"] or 0), "first_order": str(o["FIRST"])[:10], "last_order": str(o["LAST"])[:10],
            "reviews": wh.row_count(session, "CLEAN_REVIEWS")}


def summary(head: dict) -> str:
    """Markdown sentence with the headline figures."""
    return (f"The clean data holds **{head['customers']:,} customers**, **{head['orders']:,} orders** "
            f"(revenue {head['revenue']:,.0f}) from {head['first_order']} to {head['last_order']}, "
            f"and **{head['reviews']:,} reviews**.")


def headline_frame(head: dict) -> pd.DataFrame:
    """The headline figures as a small two-column table."""
    return pd.Series(head, name="value").to_frame()
