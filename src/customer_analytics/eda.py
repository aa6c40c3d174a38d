"""Aggregates for exploratory analysis, computed in the warehouse (only small tables come back).

Reports are shared widely: every function here returns aggregates, never a customer's row.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import snowflake.snowpark.functions as F
from snowflake.snowpark import Column, DataFrame, Session

from customer_analytics import portable as pt
from customer_analytics import warehouse as wh

CLEAN_TABLES = ("CLEAN_CUSTOMERS", "CLEAN_ORDERS", "CLEAN_ORDER_LINES", "CLEAN_REVIEWS")


def _pull(df, label: str) -> pd.DataFrame:
    out = wh.to_pandas(df, f"eda:{label}")
    out.columns = [c.lower() for c in out.columns]
    return out


def monthly_orders(session: Session) -> pd.DataFrame:
    """Orders, net revenue and active customers per calendar month, with how much of each month the
    data covers (``days``, ``partial``: the first and last month of the data are usually partial, so
    a low last month is not a collapse)."""
    month = F.date_trunc("month", F.col("TS")).alias("MONTH")
    orders = session.table("CLEAN_ORDERS")
    df = (
        orders.group_by(month)
        .agg(
            F.count(F.lit(1)).alias("ORDERS"),
            F.sum("ORDER_TOTAL").alias("REVENUE"),
            F.count_distinct("CUSTOMER_ID").alias("CUSTOMERS"),
        )
        .sort("MONTH")
    )
    out = _pull(df, "monthly").set_index("month")
    span = orders.agg(F.min("TS").alias("FIRST"), F.max("TS").alias("LAST")).collect()[0]
    return with_coverage(out, span["FIRST"], span["LAST"])


def with_coverage(
    monthly: pd.DataFrame, first: dt.datetime | None, last: dt.datetime | None
) -> pd.DataFrame:
    """``monthly`` (indexed by month start) with ``days`` covered by the data ``[first, last]`` and
    ``partial``."""
    out = monthly.copy()
    if first is None or last is None or out.empty:
        out["days"], out["partial"] = pd.Series(dtype=int), pd.Series(dtype=bool)
        return out
    lo, hi = pd.Timestamp(first).normalize(), pd.Timestamp(last).normalize()
    starts = pd.to_datetime(pd.Series(out.index, index=out.index))
    ends = starts + pd.offsets.MonthEnd(0)
    covered = (ends.clip(upper=hi) - starts.clip(lower=lo)).dt.days + 1
    out["days"] = covered.clip(lower=0).astype(int)
    out["partial"] = out["days"] < (ends - starts).dt.days + 1
    return out


def product_mix(session: Session) -> pd.DataFrame:
    """Quantity and revenue per product type."""
    df = (
        session.table("CLEAN_ORDER_LINES")
        .group_by("PRODUCT")
        .agg(
            F.sum("QUANTITY").alias("QUANTITY"),
            F.sum(F.col("QUANTITY") * F.col("UNIT_PRICE")).alias("REVENUE"),
        )
    )
    return _pull(df, "products").set_index("product").sort_values("revenue", ascending=False)


def counts_by(session: Session, table: str, column: str) -> pd.Series:
    """Row counts per value of ``column`` (missing values shown as 'missing')."""
    df = session.table(table).group_by(column).count()
    out = _pull(df, f"{table}.{column}")
    out[column.lower()] = (
        out[column.lower()].astype(object).where(out[column.lower()].notna(), "missing")
    )
    return out.set_index(column.lower())["count"].sort_index(key=lambda s: s.astype(str))


def binned(
    session: Session, table: str, column: str, width: float, cap: float, where: Column | None = None
) -> pd.Series:
    """Histogram of ``column`` with bins of ``width``; values at or above ``cap`` go to the last
    bin."""
    rows: DataFrame = session.table(table)
    if where is not None:
        rows = rows.filter(where)
    b = F.least(F.floor(F.col(column) / width) * width, F.lit(cap)).alias("BIN")
    out = _pull(rows.group_by(b).count(), f"{table}.{column}:bins")
    return out.set_index("bin")["count"].sort_index()


def quantile(
    session: Session, table: str, column: str, q: float, where: Column | None = None
) -> float | None:
    """The ``q`` quantile of ``column`` (``None`` without rows)."""
    rows: DataFrame = session.table(table)
    if where is not None:
        rows = rows.filter(where)
    v = rows.agg(F.percentile_cont(q).within_group(F.col(column)).alias("Q")).collect()[0]["Q"]
    return None if v is None else float(v)


def nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at least ``raw`` (readable bin edges)."""
    if raw <= 0:
        return 1.0
    power = 10 ** np.floor(np.log10(raw))
    return float(next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw))


#: bins of the value histograms: equal bins up to the 99th percentile, the rest in the last bin
HIST_BINS, HIST_QUANTILE = 30, 0.99


def order_values(session: Session) -> tuple[pd.Series, float, float]:
    """Purchases (not returns) by order value: bins up to the 99th percentile, the rest in the last
    bin.

    Returns the counts per bin (indexed by the bin's lower edge), the bin width and where the last
    bin starts (the range comes from the data, not from a fixed cap).
    """
    buy = ~F.coalesce(F.col("IS_RETURN"), F.lit(False))
    top = quantile(session, "CLEAN_ORDERS", "ORDER_TOTAL", HIST_QUANTILE, buy) or 0.0
    width = nice_step(top / HIST_BINS)
    cap = width * np.ceil(top / width) if top > 0 else width
    return binned(session, "CLEAN_ORDERS", "ORDER_TOTAL", width, cap, buy), width, float(cap)


def orders_per_customer(session: Session, cap: int | None = None) -> tuple[pd.Series, int]:
    """How many customers placed 1, 2, … orders; from the 99th percentile (or ``cap``) on, one last
    bar.

    Returns the counts and where the last bar starts.
    """
    per = session.table("CLEAN_ORDERS").group_by("CUSTOMER_ID").agg(F.count(F.lit(1)).alias("N"))
    if cap is None:
        q = per.agg(F.percentile_cont(HIST_QUANTILE).within_group(F.col("N")).alias("Q")).collect()[
            0
        ]["Q"]
        cap = max(int(np.ceil(q or 1)), 2)
    out = _pull(
        per.group_by(F.least(F.col("N"), F.lit(cap)).alias("ORDERS")).count(), "orders_per_customer"
    )
    return out.set_index("orders")["count"].sort_index(), cap


def ratings(session: Session) -> pd.Series:
    """Reviews per rating (calls, which carry no rating, are not reviews); "no rating" for unrated
    ones."""
    if not wh.table_exists(session, "CLEAN_REVIEWS"):
        return pd.Series(dtype=int, name="reviews")
    rows: DataFrame = session.table("CLEAN_REVIEWS")
    if "KIND" in rows.columns:
        rows = rows.filter(F.coalesce(F.col("KIND"), F.lit("review")) != F.lit("call"))
    out = _pull(rows.group_by("RATING").count(), "ratings")
    out["rating"] = [("no rating" if pd.isna(v) else str(int(v))) for v in out["rating"]]
    return out.set_index("rating")["count"].sort_index().rename("reviews")


def has_rows(session: Session, table: str) -> bool:
    """Whether ``table`` exists and holds at least one row."""
    return wh.table_exists(session, table) and session.table(table).limit(1).count() > 0


def missing_values(session: Session, tables: tuple[str, ...] = CLEAN_TABLES) -> pd.DataFrame:
    """Share of missing values per column of each clean table (columns with none are omitted)."""
    rows = []
    for t in tables:
        df = session.table(t)
        agg = df.agg(
            *[F.count(F.lit(1)).alias("N")] + [F.count(F.col(c)).alias(c) for c in df.columns]
        ).collect()[0]
        n = agg["N"] or 1
        rows += [{"table": t, "column": c, "missing_share": 1 - agg[c] / n} for c in df.columns]
    out = pd.DataFrame(rows)
    return out[out["missing_share"] > 0].set_index(["table", "column"])


def headline(session: Session) -> dict[str, float]:
    """A few headline figures for the report summary."""
    o = (
        session.table("CLEAN_ORDERS")
        .agg(
            F.count(F.lit(1)).alias("ORDERS"),
            F.sum("ORDER_TOTAL").alias("REVENUE"),
            F.min("TS").alias("FIRST"),
            F.max("TS").alias("LAST"),
        )
        .collect()[0]
    )
    return {
        "customers": wh.row_count(session, "CLEAN_CUSTOMERS"),
        "orders": o["ORDERS"],
        "revenue": float(o["REVENUE"] or 0),
        "first_order": str(o["FIRST"])[:10] if o["FIRST"] else None,
        "last_order": str(o["LAST"])[:10] if o["LAST"] else None,
        "reviews": wh.row_count(session, "CLEAN_REVIEWS")
        if wh.table_exists(session, "CLEAN_REVIEWS")
        else 0,
    }


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
    return pt.timestamp_literal(as_of)


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
