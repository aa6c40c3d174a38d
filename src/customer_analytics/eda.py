"""Aggregates for exploratory analysis, computed in the warehouse (only small tables come back).

Reports are shared widely: every function here returns aggregates, never a customer's row.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import snowflake.snowpark.functions as F
from snowflake.snowpark import Column, Session

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


# --------------------------------------------------------------------------- retention (issue 20)
#: A customer who bought in the CHURN_DAYS before a month starts churns in that month when they buy
#: nothing in the CHURN_DAYS from its start.
CHURN_DAYS = 90
#: Sign-up cohorts (and months) shown: the last this many before the run date.
MAX_MONTHS = 24


def _month_number(col: Column) -> Column:
    """Months since year 0 (year * 12 + month - 1): month arithmetic that means the same
    everywhere."""
    return F.year(col) * F.lit(12) + F.month(col) - F.lit(1)


def _month_start(n: int) -> dt.date:
    return dt.date(n // 12, n % 12 + 1, 1)


def _as_of(as_of: dt.date) -> Column:
    return F.lit(dt.datetime.combine(as_of, dt.time()))


def cohort_frame(session: Session, as_of: dt.date, months: int = MAX_MONTHS) -> pd.DataFrame:
    """Per sign-up cohort (calendar month) and months since sign-up: customers, active, revenue.

    Only complete months before ``as_of`` are counted, for the last ``months`` cohorts. ``active``
    = the cohort's customers with at least one purchase (an order that is not a return) in that
    month; ``revenue`` = the cohort's net order totals in that month (returns subtracted).
    Computed in the warehouse; one row per cell comes back.
    """
    last = as_of.year * 12 + as_of.month - 1  # the month of as_of: partial, left out
    cust = session.table("CLEAN_CUSTOMERS").select(
        "CUSTOMER_ID", _month_number(F.col("SIGNUP_DATE")).alias("COHORT")
    )
    cust = cust.filter((F.col("COHORT") >= F.lit(last - months)) & (F.col("COHORT") < F.lit(last)))
    sizes = cust.group_by("COHORT").agg(F.count(F.lit(1)).alias("CUSTOMERS"))
    orders = (
        session.table("CLEAN_ORDERS")
        .filter(F.col("TS") < _as_of(as_of))
        .select(
            "CUSTOMER_ID",
            _month_number(F.col("TS")).alias("M"),
            "ORDER_TOTAL",
            F.iff(
                F.coalesce(F.col("IS_RETURN"), F.lit(False)), F.lit(None), F.col("CUSTOMER_ID")
            ).alias("BUYER"),
        )
    )
    cells = (
        orders.join(cust, "CUSTOMER_ID")
        .with_column("OFFSET", F.col("M") - F.col("COHORT"))
        .filter((F.col("OFFSET") >= F.lit(0)) & (F.col("M") < F.lit(last)))
        .group_by("COHORT", "OFFSET")
        .agg(
            F.count_distinct(F.col("BUYER")).alias("ACTIVE"),
            F.sum(F.col("ORDER_TOTAL")).alias("REVENUE"),
        )
    )
    out = _pull(sizes.join(cells, "COHORT", "left").sort("COHORT", "OFFSET"), "cohorts")
    out = out.fillna({"offset": 0, "active": 0, "revenue": 0.0})  # a cohort without any order
    out["cohort"] = [_month_start(int(n)) for n in out["cohort"]]
    out = out.astype({"offset": int, "active": int, "customers": int, "revenue": float})
    return out[["cohort", "offset", "customers", "active", "revenue"]]


def _grid(frame: pd.DataFrame, values: pd.Series, as_of: dt.date) -> pd.DataFrame:
    """Cohort x months-since-sign-up table; cells not observed yet (after as_of's month) are NaN."""
    wide = values.groupby([frame["cohort"], frame["offset"]]).sum().unstack("offset")
    last = as_of.year * 12 + as_of.month - 1
    cols = range(0, int(frame["offset"].max()) + 1) if len(frame) else range(0)
    wide = wide.reindex(columns=cols).fillna(0.0)
    for cohort in wide.index:
        seen = last - (cohort.year * 12 + cohort.month - 1)
        wide.loc[cohort, [c for c in wide.columns if c >= seen]] = np.nan
    wide.index.name, wide.columns.name = "sign-up month", "months since sign-up"
    return wide


def retention_matrix(frame: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Share of each sign-up cohort buying N months after signing up (the cohort heat map)."""
    return _grid(frame, frame["active"] / frame["customers"], as_of)


def revenue_matrix(frame: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Cumulative net revenue per customer of each cohort, N months after signing up."""
    return _grid(frame, frame["revenue"] / frame["customers"], as_of).cumsum(axis=1, skipna=False)


def churn_rates(session: Session, as_of: dt.date, months: int = MAX_MONTHS) -> pd.DataFrame:
    """Monthly churn (see :data:`CHURN_DAYS`): per month start, the active base and the share that
    churned.

    Only months whose following :data:`CHURN_DAYS` end by ``as_of`` (fully observed) are shown.
    """
    h = dt.timedelta(days=CHURN_DAYS)
    starts: list[dt.date] = []
    m = as_of.year * 12 + as_of.month - 1
    while len(starts) < months and m > 0:
        d = _month_start(m)
        if d + h <= as_of:
            starts.append(d)
        m -= 1
    if not starts:
        return pd.DataFrame(columns=["active customers", "churned", "churn rate"])
    rows = " UNION ALL ".join(
        f"SELECT CAST('{d.isoformat()}' AS DATE) AS MONTH, CAST('{d.isoformat()} 00:00:00' AS "
        f"TIMESTAMP_NTZ) AS M0, "
        f"CAST('{(d - h).isoformat()} 00:00:00' AS TIMESTAMP_NTZ) AS M_BEFORE, "
        f"CAST('{(d + h).isoformat()} 00:00:00' AS TIMESTAMP_NTZ) AS M_AFTER"
        for d in sorted(starts)
    )
    months_df = session.sql(rows)
    buys = (
        session.table("CLEAN_ORDERS")
        .filter(~F.coalesce(F.col("IS_RETURN"), F.lit(False)))
        .select("CUSTOMER_ID", "TS")
    )
    per = (
        buys.join(months_df, (F.col("TS") >= F.col("M_BEFORE")) & (F.col("TS") < F.col("M_AFTER")))
        .group_by("MONTH", "CUSTOMER_ID")
        .agg(
            F.max(F.iff(F.col("TS") < F.col("M0"), F.lit(1), F.lit(0))).alias("BEFORE"),
            F.max(F.iff(F.col("TS") >= F.col("M0"), F.lit(1), F.lit(0))).alias("AFTER"),
        )
    )
    agg = (
        per.filter(F.col("BEFORE") == F.lit(1))
        .group_by("MONTH")
        .agg(
            F.count(F.lit(1)).alias("BASE"),
            F.sum(F.iff(F.col("AFTER") == F.lit(0), F.lit(1), F.lit(0))).alias("CHURNED"),
        )
    )
    out = _pull(agg.sort("MONTH"), "churn").set_index("month")
    out.index = [pd.Timestamp(i).date() for i in out.index]
    out.index.name = "month"
    return pd.DataFrame(
        {
            "active customers": out["base"],
            "churned": out["churned"],
            "churn rate": out["churned"] / out["base"],
        }
    )


def repeat_purchase(session: Session, as_of: dt.date) -> pd.DataFrame:
    """Per sign-up year: customers, buyers (at least one purchase before ``as_of``), repeat buyers
    (two
    or more) and the repeat-purchase rate (repeat buyers / buyers); the last row is every
    customer."""
    per = (
        session.table("CLEAN_ORDERS")
        .filter((F.col("TS") < _as_of(as_of)) & ~F.coalesce(F.col("IS_RETURN"), F.lit(False)))
        .group_by("CUSTOMER_ID")
        .agg(F.count(F.lit(1)).alias("N"))
    )
    cust = (
        session.table("CLEAN_CUSTOMERS")
        .filter(F.col("SIGNUP_DATE") < F.lit(as_of))
        .select("CUSTOMER_ID", F.year(F.col("SIGNUP_DATE")).alias("YEAR"))
    )
    agg = (
        cust.join(per, "CUSTOMER_ID", "left")
        .group_by("YEAR")
        .agg(
            F.count(F.lit(1)).alias("CUSTOMERS"),
            F.count(F.col("N")).alias("BUYERS"),
            F.sum(F.iff(F.col("N") >= F.lit(2), F.lit(1), F.lit(0))).alias("REPEAT_BUYERS"),
        )
    )
    out = _pull(agg.sort("YEAR"), "repeat").set_index("year")
    out.loc["all"] = out.sum()
    out.index = out.index.astype(str)
    out.index.name = "sign-up year"
    out["repeat-purchase rate"] = out["repeat_buyers"] / out["buyers"].where(out["buyers"] > 0)
    return out.rename(columns={"repeat_buyers": "repeat buyers"})


def retention_summary(retention: pd.DataFrame, churn: pd.DataFrame, repeat: pd.DataFrame) -> str:
    """Markdown: the definitions and the headline retention, churn and repeat-purchase figures."""
    m1 = retention[1].mean() if 1 in retention.columns else float("nan")
    m3 = retention[3].mean() if 3 in retention.columns else float("nan")
    churn_text = (
        f"{churn['churn rate'].iloc[-1]:.0%} in the last fully observed month ({churn.index[-1]}), "
        f"{churn['churn rate'].mean():.0%} on average"
        if len(churn)
        else "not observable yet"
    )
    return (
        f"A sign-up cohort's **retention** N months later is the share of its customers who bought "
        f"in that "
        f"month: on average {m1:.0%} one month and {m3:.0%} three months after signing up. A "
        f"customer who "
        f"bought in the {CHURN_DAYS} days before a month starts **churns** that month when they "
        f"buy nothing in "
        f"the next {CHURN_DAYS} days: {churn_text}. **Repeat purchase:** "
        f"{repeat.loc['all', 'repeat-purchase rate']:.0%} of the customers who bought once bought "
        f"again."
    )
