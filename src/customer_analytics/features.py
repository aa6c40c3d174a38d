"""Per-customer features as of a cut-off, and labels over the following horizon (Snowpark).

Definitions (``c`` = cut-off date at 00:00, ``H`` = ``horizon_days``):

* population: customers whose ``SIGNUP_DATE < c``;
* features use only rows with ``TS < c`` (orders, order lines, reviews, call transcripts) —
  leak-free by construction (a test changes every order after ``c`` and checks that nothing
  but the labels moves); "last period" is ``[c - H, c)``, "previous period" ``[c - 2H, c - H)``;
* labels are what happened in ``[c, c + H)``: total spend (``SPEND_NEXT``) and quantity per
  product type (``QTY_NEXT_<PRODUCT>``).

Feature groups (column lists defined once below):

* profile: ``CHANNEL``, ``COUNTRY`` ('unknown' when missing), tenure and age at ``c``;
* orders (RFM): has ordered, recency, days since the first order, number of orders, spend,
  average and largest order value, orders and spend per 30 days of tenure;
* inter-purchase time: mean, standard deviation and largest gap between consecutive orders
  (calendar days), and recency divided by the mean gap ("how overdue is the next order");
* trend: orders and spend in the last and the previous period, and their differences;
* coupons: orders with a coupon, and their share;
* products: quantity ever and in the last period, and share of all units, per product type;
* reviews: number of reviews, of call transcripts (0 without a ``KIND`` column) and mean rating;
* text sentiment (only when a sentiment model exists, see :mod:`customer_analytics.text`): mean
  and lowest sentiment of the customer's texts and the number of negative ones;
* buy-till-you-die summaries (:func:`btyd_summaries`), in calendar days: a *purchase day* is a
  day with at least one order of positive net total (return-only days are not purchases); the
  customer's repeat purchase days ``BTYD_X``, days from the first to the last purchase day
  ``BTYD_TX``, days from the first purchase day to the cut-off ``BTYD_T`` (the customer's "age"),
  the mean net spend of the repeat purchase days ``BTYD_VALUE`` (returns made on those days
  netted); and two relative features that, unlike tenure or recency, do not grow with the
  calendar: ``RECENCY_OVER_AGE`` = (T - t_x) / T and ``PURCHASE_DAYS_PER_30D`` = (x + 1) * 30 / T.
  All null for customers without a purchase before the cut-off;
* buy-till-you-die outputs (when :func:`build` is asked for them, the default): BG/NBD or MBG/NBD
  (whichever fits better) and Gamma-Gamma, fitted by :mod:`customer_analytics.btyd` **per cut-off
  on every customer's summaries as of that cut-off** (no labels, nothing after the cut-off):
  probability alive, expected purchase days in the horizon, expected value per purchase, expected
  spend, median days to the next purchase if active. The fit runs on the client from one row
  per customer and cut-off (:func:`btyd_table`); the outputs go back to the warehouse
  (``BTYD_SCORES``) and are joined in; the fitted parameters are kept in ``BTYD_PARAMS``.

Spend of an order line is ``QUANTITY * UNIT_PRICE`` (shipping excluded); a return line has a
negative quantity, so every spend figure and label is **net** of returns, while order counts,
recency and the gaps between orders count purchases only (``CLEAN_ORDERS.IS_RETURN``). Everything
here is a
Snowpark DataFrame: on Snowflake it runs in the warehouse and only per-customer rows and small
aggregates come back. ``tests/reference.py`` holds an independent pandas version of the same
definitions, and the tests compare the two on every column.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd
import snowflake.snowpark.functions as F
from snowflake.snowpark import Column, DataFrame, Session
from snowflake.snowpark.window import Window

from customer_analytics import btyd, text
from customer_analytics import portable as pt
from customer_analytics import topics as tp
from customer_analytics import warehouse as wh
from customer_analytics.config import Params

log = logging.getLogger(__name__)

TABLE = "FEATURES"
KEY = "CUSTOMER_ID"
META = [KEY, "CUTOFF", "ROLE"]
ROLES = ("train", "holdout", "score")
CATEGORICAL = ["CHANNEL", "COUNTRY"]
UNKNOWN = "unknown"
PROFILE = ["TENURE_DAYS", "AGE"]
ORDERS = [
    "HAS_ORDERED",
    "RECENCY_DAYS",
    "DAYS_SINCE_FIRST_ORDER",
    "N_ORDERS",
    "SPEND",
    "AVG_ORDER_VALUE",
    "MAX_ORDER_VALUE",
    "ORDERS_PER_30D",
    "SPEND_PER_30D",
]
GAPS = ["MEAN_GAP_DAYS", "STD_GAP_DAYS", "MAX_GAP_DAYS", "RECENCY_OVER_GAP"]
TREND = [
    "N_ORDERS_LAST",
    "SPEND_LAST",
    "N_ORDERS_PREV",
    "SPEND_PREV",
    "ORDERS_TREND",
    "SPEND_TREND",
]
COUPONS = ["N_COUPON_ORDERS", "COUPON_SHARE"]
REVIEWS = ["N_REVIEWS", "N_CALLS", "AVG_RATING"]
SENTIMENT = ["AVG_SENTIMENT", "MIN_SENTIMENT", "N_NEGATIVE_TEXTS"]
BTYD_SUMMARY = [
    "BTYD_X",
    "BTYD_TX",
    "BTYD_T",
    "BTYD_VALUE",
    "RECENCY_OVER_AGE",
    "PURCHASE_DAYS_PER_30D",
]
BTYD_OUTPUTS = list(btyd.OUTPUTS)
#: BTYD outputs that are model inputs (the median days to the next purchase grows with the
#: customer's age, so it is kept for the outlook in PREDICTIONS only)
BTYD_INPUTS = [c for c in BTYD_OUTPUTS if c != "BTYD_NEXT_DAYS"]
BTYD_SCORES = "BTYD_SCORES"
BTYD_PARAMS = "BTYD_PARAMS"
#: features measured in days since a fixed event: for a customer they grow with the calendar, so
#: a closed cohort's scoring rows lie beyond the training range; relative features carry their
#: information
ABSOLUTE_TIME = [
    "TENURE_DAYS",
    "DAYS_SINCE_FIRST_ORDER",
    "RECENCY_DAYS",
    "MAX_GAP_DAYS",
    "BTYD_T",
    "BTYD_TX",
]
#: numeric features that do not depend on the product types or on a sentiment model
BASE_NUMERIC = PROFILE + ORDERS + GAPS + TREND + COUPONS + REVIEWS + BTYD_SUMMARY
PRODUCT_PREFIXES = ("QTY", "QTY_LAST", "SHARE")
LABEL_SPEND = "SPEND_NEXT"
LABEL_QTY_PREFIX = "QTY_NEXT"
#: non-integer columns, rounded to :data:`DECIMALS` places: a sum of doubles depends (in its last
#: bits) on the order the warehouse adds rows in, which parallel engines do not fix; rounding makes
#: every value, and so every model fitted on them, identical from one run to the next.
FRACTIONAL = [
    "SPEND",
    "AVG_ORDER_VALUE",
    "MAX_ORDER_VALUE",
    "ORDERS_PER_30D",
    "SPEND_PER_30D",
    "MEAN_GAP_DAYS",
    "STD_GAP_DAYS",
    "RECENCY_OVER_GAP",
    "SPEND_LAST",
    "SPEND_PREV",
    "SPEND_TREND",
    "COUPON_SHARE",
    "AVG_RATING",
    "AVG_SENTIMENT",
    "MIN_SENTIMENT",
    LABEL_SPEND,
    "BTYD_VALUE",
    "RECENCY_OVER_AGE",
    "PURCHASE_DAYS_PER_30D",
    *BTYD_OUTPUTS,
]
DECIMALS = 9
#: Version of the feature and label definitions above. Bump it whenever a definition changes: a
#: registered model records it, and scoring refuses a model built on other definitions.
DEFINITIONS_VERSION = "2"  # 2: net spend of returns, buy-till-you-die summaries and outputs
#: feature groups as the report lists them
GROUPS = {
    "profile": CATEGORICAL + PROFILE,
    "orders (RFM)": ORDERS,
    "inter-purchase time": GAPS,
    "trend": TREND,
    "coupons": COUPONS,
    "reviews": REVIEWS,
    "text sentiment": SENTIMENT,
    "buy-till-you-die summaries": BTYD_SUMMARY,
    "buy-till-you-die outputs": BTYD_INPUTS,
}


def product_types(session: Session) -> list[str]:
    """Product types, sorted: the keys of PRODUCT_TYPES (made safe and unique at ingest, rare
    types grouped as 'other'), else those present in CLEAN_ORDER_LINES (a small aggregate)."""
    if wh.table_exists(session, "PRODUCT_TYPES"):
        rows = session.table("PRODUCT_TYPES").select("PRODUCT").collect()
        return sorted(r["PRODUCT"] for r in rows)
    rows = session.table("CLEAN_ORDER_LINES").select("PRODUCT").distinct().collect()
    return sorted(r["PRODUCT"] for r in rows)


def product_column(prefix: str, product: str) -> str:
    """Column name for a product type, e.g. ``QTY_NEXT_CHOCOLATE_CHIP``."""
    return wh.column_name(f"{prefix}_{product}")


def _timestamp(d: dt.date) -> str:
    return dt.datetime.combine(d, dt.time()).isoformat(sep=" ")


def cutoff_frame(
    session: Session,
    cutoffs: list[dt.date],
    horizon_days: int,
    roles: dict[dt.date, str] | None = None,
) -> DataFrame:
    """A small table of cut-offs: ``CUTOFF`` (date), ``ROLE`` and the window bounds as timestamps.

    ``T0`` = the cut-off, ``T_LAST`` / ``T_PREV`` = start of the last / previous period, ``T_NEXT``
    = end of the label window. Built from validated dates (never from user strings).
    """
    h = dt.timedelta(days=horizon_days)
    rows = [
        f"SELECT CAST('{c.isoformat()}' AS DATE) AS CUTOFF, '{(roles or {}).get(c, '')}' AS ROLE, "
        f"CAST('{_timestamp(c)}' AS TIMESTAMP_NTZ) AS T0, "
        f"CAST('{_timestamp(c - h)}' AS TIMESTAMP_NTZ) AS T_LAST, "
        f"CAST('{_timestamp(c - 2 * h)}' AS TIMESTAMP_NTZ) AS T_PREV, "
        f"CAST('{_timestamp(c + h)}' AS TIMESTAMP_NTZ) AS T_NEXT"
        for c in sorted(set(cutoffs))
    ]
    if any(r not in ROLES for r in (roles or {}).values()):
        raise ValueError(f"roles must be among {ROLES}")
    return session.sql(" UNION ALL ".join(rows))


def _before(df: DataFrame, cuts: DataFrame, bound: str) -> DataFrame:
    """One copy of each row of ``df`` per cut-off whose ``bound`` is after the row's ``TS``."""
    return df.join(
        cuts.select("CUTOFF", "T0", "T_LAST", "T_PREV", "T_NEXT"), F.col("TS") < F.col(bound)
    )


def _in(lo: str, hi: str) -> Column:
    return (F.col("TS") >= F.col(lo)) & (F.col("TS") < F.col(hi))


def _sum_if(cond: Column, value: Column) -> Column:
    return F.sum(F.iff(cond, value, F.lit(0)))


def _ratio(num: Column, den: Column) -> Column:
    """``num / den``, null when ``den`` is null or not positive."""
    return F.iff(den > F.lit(0), num / den, F.lit(None))


BY = [KEY, "CUTOFF"]


def _purchase(orders: DataFrame) -> Column:
    """Orders that are purchases, not returns only (CLEAN_ORDERS.IS_RETURN, when present)."""
    return ~F.col("IS_RETURN") if "IS_RETURN" in orders.columns else F.lit(True)


def _order_aggregates(session: Session, cuts: DataFrame) -> DataFrame:
    """Per customer and cut-off: RFM, period and coupon counts before it, the spend label after it.

    Spend sums are net (ORDER_TOTAL is negative for return orders); order counts, first/last order
    and the largest order count purchases only.
    """
    orders = _before(session.table("CLEAN_ORDERS"), cuts, "T_NEXT")
    ts, total, one, buy = F.col("TS"), F.col("ORDER_TOTAL"), F.lit(1), _purchase(orders)
    past = ts < F.col("T0")
    return orders.group_by(*BY).agg(
        _sum_if(past & buy, one).alias("N_ORDERS"),
        _sum_if(past, total).alias("SPEND"),
        F.max(F.iff(past & buy, total, F.lit(None))).alias("MAX_ORDER_VALUE"),
        F.min(F.iff(past & buy, ts, F.lit(None))).alias("FIRST_TS"),
        F.max(F.iff(past & buy, ts, F.lit(None))).alias("LAST_TS"),
        _sum_if(_in("T_LAST", "T0") & buy, one).alias("N_ORDERS_LAST"),
        _sum_if(_in("T_LAST", "T0"), total).alias("SPEND_LAST"),
        _sum_if(_in("T_PREV", "T_LAST") & buy, one).alias("N_ORDERS_PREV"),
        _sum_if(_in("T_PREV", "T_LAST"), total).alias("SPEND_PREV"),
        _sum_if(past & buy & F.col("COUPON").is_not_null(), one).alias("N_COUPON_ORDERS"),
        _sum_if(_in("T0", "T_NEXT"), total).alias(LABEL_SPEND),
    )


def _gap_aggregates(session: Session, cuts: DataFrame) -> DataFrame:
    """Per customer and cut-off: statistics of the calendar days between consecutive orders before
    it.

    The gap of an order (days since the customer's previous order) involves that order and an
    earlier one only, so it is computed once over all orders and then kept for the orders before
    each cut-off.
    """
    w = Window.partition_by(KEY).order_by(F.col("TS"), F.col("ORDER_ID"))
    orders = session.table("CLEAN_ORDERS")
    gaps = orders.filter(_purchase(orders)).select(
        KEY, "TS", F.datediff("day", F.lag(F.col("TS")).over(w), F.col("TS")).alias("GAP")
    )
    return (
        _before(gaps, cuts, "T0")
        .group_by(*BY)
        .agg(
            pt.mean(F.col("GAP")).alias("MEAN_GAP_DAYS"),
            pt.stddev(F.col("GAP")).alias("STD_GAP_DAYS"),
            F.max("GAP").alias("MAX_GAP_DAYS"),
        )
    )


def _product_aggregates(session: Session, cuts: DataFrame, products: list[str]) -> DataFrame:
    """Per customer, cut-off and product type: quantity ever, in the last period, and the label
    window."""
    lines = _before(session.table("CLEAN_ORDER_LINES"), cuts, "T_NEXT")
    qty = F.col("QUANTITY")
    past = F.col("TS") < F.col("T0")
    aggs = [_sum_if(past, qty).alias("QTY_TOTAL")]
    for p in products:
        is_p = F.col("PRODUCT") == F.lit(p)
        aggs += [
            _sum_if(past & is_p, qty).alias(product_column("QTY", p)),
            _sum_if(is_p & _in("T_LAST", "T0"), qty).alias(product_column("QTY_LAST", p)),
            _sum_if(is_p & _in("T0", "T_NEXT"), qty).alias(product_column(LABEL_QTY_PREFIX, p)),
        ]
    return lines.group_by(*BY).agg(*aggs)


def _review_aggregates(session: Session, cuts: DataFrame) -> DataFrame:
    """Per customer and cut-off: reviews, call transcripts and mean rating before it."""
    is_review = text.kind_column(session) == F.lit(text.DEFAULT_KIND)
    reviews = session.table(text.SOURCE_TABLE).select(
        KEY, "TS", "RATING", is_review.alias("IS_REVIEW")
    )
    return (
        _before(reviews, cuts, "T0")
        .group_by(*BY)
        .agg(
            _sum_if(F.col("IS_REVIEW"), F.lit(1)).alias("N_REVIEWS"),
            _sum_if(~F.col("IS_REVIEW"), F.lit(1)).alias("N_CALLS"),
            pt.mean(F.iff(F.col("IS_REVIEW"), F.col("RATING"), F.lit(None))).alias("AVG_RATING"),
        )
    )


def _sentiment_aggregates(session: Session, cuts: DataFrame) -> DataFrame:
    """Per customer and cut-off: mean and lowest sentiment of texts before it, and how many were
    negative."""
    scores = session.table(text.SCORES_TABLE).select(KEY, "TS", "SENTIMENT", "SENTIMENT_LOGIT")
    return (
        _before(scores, cuts, "T0")
        .group_by(*BY)
        .agg(
            pt.mean(F.col("SENTIMENT")).alias("AVG_SENTIMENT"),
            F.min(F.col("SENTIMENT")).alias("MIN_SENTIMENT"),
            _sum_if(F.col("SENTIMENT_LOGIT") < F.lit(0.0), F.lit(1)).alias("N_NEGATIVE_TEXTS"),
        )
    )


def _purchase_days(session: Session) -> DataFrame:
    """Per customer and calendar day: net total of the day's orders, whether it is a purchase day
    (an order of positive total), and the customer's first purchase day ever."""
    orders = session.table("CLEAN_ORDERS").select(
        KEY, F.to_date(F.col("TS")).alias("DAY"), "ORDER_TOTAL"
    )
    days = orders.group_by(KEY, "DAY").agg(
        F.sum(F.col("ORDER_TOTAL")).alias("DAY_NET"),
        F.max(F.iff(F.col("ORDER_TOTAL") > F.lit(0), F.lit(1), F.lit(0))).alias("DAY_BUY"),
    )
    first = F.min(F.iff(F.col("DAY_BUY") == F.lit(1), F.col("DAY"), F.lit(None))).over(
        Window.partition_by(KEY)
    )
    return days.select(KEY, "DAY", "DAY_NET", "DAY_BUY", first.alias("FIRST_DAY"))


def _btyd_aggregates(session: Session, cuts: DataFrame) -> DataFrame:
    """Per customer and cut-off: purchase days before it, the first, the last, repeat net spend."""
    days = _purchase_days(session).join(cuts.select("CUTOFF"), F.col("DAY") < F.col("CUTOFF"))
    buy = F.col("DAY_BUY") == F.lit(1)
    return days.group_by(*BY).agg(
        _sum_if(buy, F.lit(1)).alias("N_BUY_DAYS"),
        F.min(F.iff(buy, F.col("DAY"), F.lit(None))).alias("FIRST_BUY"),
        F.max(F.iff(buy, F.col("DAY"), F.lit(None))).alias("LAST_BUY"),
        _sum_if(buy & (F.col("DAY") > F.col("FIRST_DAY")), F.col("DAY_NET")).alias("REPEAT_NET"),
    )


def _btyd_exprs() -> dict[str, Column]:
    """The :data:`BTYD_SUMMARY` columns from :func:`_btyd_aggregates` (null without a purchase)."""
    nb = F.coalesce(F.col("N_BUY_DAYS"), F.lit(0))
    age = F.datediff("day", F.col("FIRST_BUY"), F.col("CUTOFF"))
    bought = nb > F.lit(0)
    return {
        "BTYD_X": F.iff(bought, nb - F.lit(1), F.lit(None)),
        "BTYD_TX": F.iff(
            bought, F.datediff("day", F.col("FIRST_BUY"), F.col("LAST_BUY")), F.lit(None)
        ),
        "BTYD_T": F.iff(bought, age, F.lit(None)),
        "BTYD_VALUE": F.iff(
            nb > F.lit(1), F.col("REPEAT_NET").cast("double") / (nb - F.lit(1)), F.lit(None)
        ),
        "RECENCY_OVER_AGE": F.iff(
            bought,
            F.datediff("day", F.col("LAST_BUY"), F.col("CUTOFF")).cast("double") / age,
            F.lit(None),
        ),
        "PURCHASE_DAYS_PER_30D": F.iff(bought, nb.cast("double") * F.lit(30.0) / age, F.lit(None)),
    }


def btyd_summaries(session: Session, cutoffs: list[dt.date], horizon_days: int) -> DataFrame:
    """The BTYD inputs per customer with a purchase before each cut-off.

    Columns ``CUSTOMER_ID, CUTOFF, X, TX, T, VALUE`` (see the module doc).
    """
    cuts = cutoff_frame(session, cutoffs, horizon_days)
    e = _btyd_exprs()
    return (
        _btyd_aggregates(session, cuts)
        .filter(F.col("N_BUY_DAYS") > F.lit(0))
        .select(
            KEY,
            "CUTOFF",
            e["BTYD_X"].alias("X"),
            e["BTYD_TX"].alias("TX"),
            e["BTYD_T"].alias("T"),
            F.round(e["BTYD_VALUE"], DECIMALS).alias("VALUE"),
        )
    )


#: Gamma-Gamma is fitted on at most this many repeat buyers per cut-off, a seeded sample drawn in
#: the warehouse (all of them below it); BG/NBD and MBG/NBD on the distinct ``(x, t_x, T)`` triples
#: with their counts, which is exactly their likelihood. So what reaches the client does not grow
#: with the number of customers beyond these bounds.
BTYD_VALUE_SAMPLE = 100_000


def btyd_table(
    session: Session,
    cutoffs: list[dt.date],
    horizon_days: int,
    staging_dir: Path,
    name: str = BTYD_SCORES,
    seed: int = 0,
) -> tuple[str, pd.DataFrame]:
    """Fit the BTYD models per cut-off and write their per-customer outputs to table ``name``.

    The per-customer summaries (:func:`btyd_summaries`) stay in the warehouse. Pulled to the
    client: per cut-off, the distinct ``(x, t_x, T)`` triples with their counts (BG/NBD and MBG/NBD
    are fitted on them, and probability alive, expected purchases and days to the next purchase
    are computed per triple) and at most :data:`BTYD_VALUE_SAMPLE` repeat buyers' ``(x, value)``
    (Gamma-Gamma, sampled with ``seed``). The per-triple outputs go back as a small table and the
    warehouse joins them to every customer, computing the Gamma-Gamma expected value there.
    Columns of ``name``: ``CUSTOMER_ID, CUTOFF`` + :data:`BTYD_OUTPUTS`.

    Returns:
        The table name and the fitted parameters, one row per cut-off (:func:`btyd.params_row`).
    """
    name = wh.check_identifier(name)
    summary_table = wh.replace_table(
        btyd_summaries(session, cutoffs, horizon_days), f"{name}_SUMMARIES"
    )
    summ = session.table(summary_table)
    triples = wh.to_pandas(  # a compressed per-customer summary (pushdown.COMPRESSED_COLUMN)
        summ.group_by("CUTOFF", "X", "TX", "T").agg(F.count(F.lit(1)).alias("N_CUSTOMERS")),
        "features:btyd_triples",
    ).rename(columns={"N_CUSTOMERS": "N"})
    repeat = summ.filter((F.col("X") > F.lit(0)) & (F.col("VALUE") > F.lit(0)))
    stats = (
        summ.filter(F.col("X") > F.lit(0))
        .group_by("CUTOFF")
        .agg(
            _sum_if(F.col("VALUE") > F.lit(0), F.lit(1)).alias("N"),
            pt.mean(F.col("VALUE")).alias("M"),
        )
        .collect()
    )
    counts = {r["CUTOFF"]: r["N"] or 0 for r in stats}
    pooled = {r["CUTOFF"]: r["M"] for r in stats}
    hashed = pt.with_stable_hash(
        repeat, "_HASH", F.col(KEY), pt.epoch_days(F.col("CUTOFF")), F.lit(seed)
    )
    bucket = F.col("_HASH") % F.lit(1_000_000)
    share = F.lit(0.0)
    for cutoff, n in counts.items():  # per cut-off: the share that keeps at most the cap
        share = F.iff(
            F.col("CUTOFF") == pt.timestamp_literal(cutoff).cast("date"),
            F.lit(min(1.0, BTYD_VALUE_SAMPLE / max(n, 1))),
            share,
        )
    values = wh.to_pandas(
        hashed.filter(bucket < share * F.lit(1_000_000)).select(
            "CUTOFF",
            "X",
            "VALUE",
            bucket.alias("_ORDER"),  # a declared sample (pushdown.SAMPLE_COLUMN)
        ),
        "features:btyd_value_sample",
    ).drop(columns="_ORDER")
    params, parts, gg = [], [], {}
    for cutoff in sorted(set(cutoffs)):
        tri = triples[triples["CUTOFF"] == cutoff].sort_values(["X", "TX", "T"])
        val = values[values["CUTOFF"] == cutoff].sort_values(["X", "VALUE"], kind="stable")
        fits = btyd.fit_cutoff_compressed(tri, val)
        params.append(btyd.params_row(cutoff, fits))
        parts.append(
            pd.concat(
                [
                    tri[["X", "TX", "T"]].reset_index(drop=True).assign(CUTOFF=cutoff),
                    btyd.score_triples(tri.reset_index(drop=True), fits, horizon_days),
                ],
                axis=1,
            )
        )
        gg[cutoff] = btyd.value_rule(fits, pooled.get(cutoff))
        log.info(
            "BTYD fit for cut-off %s: %s on %d customers (%d distinct histories)",
            cutoff,
            params[-1]["MODEL"],
            int(tri["N"].sum()),
            len(tri),
        )
    cols = ["X", "TX", "T", "CUTOFF", *btyd.TRIPLE_OUTPUTS]
    out = pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)
    out = out.astype({c: "float64" for c in ("X", "TX", "T", *btyd.TRIPLE_OUTPUTS)})
    out["CUTOFF"] = pd.to_datetime(out["CUTOFF"]).dt.date
    per_triple = wh.write_pandas(session, out, f"{name}_TRIPLES", staging_dir)
    t = session.table(per_triple)
    joined = summ.join(
        t,
        (summ["CUTOFF"] == t["CUTOFF"])
        & (summ["X"] == t["X"])
        & (summ["TX"] == t["TX"])
        & (summ["T"] == t["T"]),
        "left",
    )
    value = _btyd_value(gg, summ["CUTOFF"], summ["X"], summ["VALUE"])
    purchases = t["BTYD_EXP_PURCHASES"]
    result = joined.select(
        summ[KEY].alias(KEY),
        summ["CUTOFF"].alias("CUTOFF"),
        t["BTYD_P_ALIVE"].alias("BTYD_P_ALIVE"),
        purchases.alias("BTYD_EXP_PURCHASES"),
        value.alias("BTYD_EXP_VALUE"),
        (purchases * value).alias("BTYD_EXP_SPEND"),
        t["BTYD_NEXT_DAYS"].alias("BTYD_NEXT_DAYS"),
    )
    wh.replace_table(result, name)
    return name, pd.DataFrame(params)


def _btyd_value(rules: dict, cutoff: Column, x: Column, value: Column) -> Column:
    """Expected value per purchase, per cut-off's rule (:func:`btyd.value_rule`), in SQL.

    Gamma-Gamma: ``p (gamma + x m) / (p x + q - 1)`` with ``m`` the customer's mean repeat value
    (non-positive or missing: 0), NULL where not positive; without a usable Gamma-Gamma fit: the
    customer's own mean where positive, else the pooled mean of repeat buyers.
    """
    out: Column = F.lit(None).cast("double")
    for c, rule in rules.items():
        if rule[0] == "none":
            continue
        if rule[0] == "gamma_gamma":
            p, q, g = (F.lit(float(v)) for v in rule[1])
            m = F.iff(value > F.lit(0), value.cast("double"), F.lit(0.0))
            v = p * (g + x * m) / (p * x + q - F.lit(1.0))
            expr = F.iff(v > F.lit(0), v, F.lit(None).cast("double"))
        else:
            pooled = F.lit(None).cast("double") if rule[1] is None else F.lit(float(rule[1]))
            expr = F.iff(value > F.lit(0), value.cast("double"), pooled)
        out = F.iff(cutoff == pt.timestamp_literal(c).cast("date"), expr, out)
    return out


def features_at(
    session: Session,
    cutoff: dt.date,
    horizon_days: int,
    products: list[str],
    sentiment: bool = False,
    btyd_staging: Path | None = None,
    topics: int = 0,
    seed: int = 0,
) -> DataFrame:
    """Features and labels for every customer signed up before ``cutoff`` (see the module doc).

    Args:
        session: Snowpark session holding the CLEAN_* tables.
        cutoff: features use data strictly before this date; labels cover ``[cutoff, cutoff +
            horizon)``.
        horizon_days: label window (and period) length.
        products: product types (one set of product columns each).
        sentiment: add the text-sentiment features from :data:`text.SCORES_TABLE`.
        btyd_staging: fit the BTYD models as of ``cutoff`` (staging folder for the upload) and
            add their outputs; ``None`` = no BTYD outputs.
        seed: the BTYD fit's sample of repeat buyers (:func:`btyd_table`).
        topics: number of text topics: add each topic's share of the customer's texts
            (:func:`customer_analytics.topics.customer_shares`, from ``FEATURE_TEXT_TOPICS``); 0 =
            none.

    Returns:
        One row per customer: the columns of :func:`output_columns`.
    """
    table = None
    if btyd_staging is not None:
        table, _ = btyd_table(
            session,
            [cutoff],
            horizon_days,
            btyd_staging,
            wh.check_identifier(f"{BTYD_SCORES}_AT_{cutoff:%Y%m%d}"),
            seed=seed,
        )
    return features_for(
        session, [cutoff], horizon_days, products, sentiment, btyd_table=table, topics=topics
    )


def features_for(
    session: Session,
    cutoffs: list[dt.date],
    horizon_days: int,
    products: list[str],
    sentiment: bool = False,
    roles: dict[dt.date, str] | None = None,
    btyd_table: str | None = None,
    topics: int = 0,
) -> DataFrame:
    """:func:`features_at` for several cut-offs in one query: one row per customer and cut-off.

    Every row is joined with the small table of cut-offs (:func:`cutoff_frame`) and aggregated per
    (customer, cut-off), so the work is one pass over the data whatever the number of cut-offs.
    With ``roles`` the output also has a ``ROLE`` column, and the labels of ``score`` rows are null.
    With ``btyd_table`` (from :func:`btyd_table`, covering these cut-offs) the BTYD outputs are
    joined in.
    """
    cuts = cutoff_frame(session, cutoffs, horizon_days, roles)
    cust = session.table("CLEAN_CUSTOMERS").join(
        cuts.select("CUTOFF", "ROLE"), F.col("SIGNUP_DATE") < F.col("CUTOFF")
    )
    df = (
        cust.join(_order_aggregates(session, cuts), BY, "left")
        .join(_gap_aggregates(session, cuts), BY, "left")
        .join(_product_aggregates(session, cuts, products), BY, "left")
        .join(_review_aggregates(session, cuts), BY, "left")
        .join(_btyd_aggregates(session, cuts), BY, "left")
    )
    if btyd_table:
        df = df.join(session.table(btyd_table).select(KEY, "CUTOFF", *BTYD_OUTPUTS), BY, "left")
    if sentiment:
        df = df.join(_sentiment_aggregates(session, cuts), BY, "left")
    if topics:
        df = df.join(tp.customer_shares(session, cuts, topics), BY, "left")

    def zero(name: str) -> Column:
        return F.coalesce(F.col(name), F.lit(0))

    c0 = F.col("CUTOFF")
    tenure = F.datediff("day", F.col("SIGNUP_DATE"), c0)
    n = zero("N_ORDERS")
    recency = F.coalesce(F.datediff("day", F.col("LAST_TS"), c0), tenure)
    mean_gap = F.iff(n > 1, F.col("MEAN_GAP_DAYS"), F.lit(None))
    exprs: dict[str, Column] = {
        KEY: F.col(KEY),
        "CUTOFF": c0,
        **{c: F.coalesce(F.col(c), F.lit(UNKNOWN)) for c in CATEGORICAL},
        "TENURE_DAYS": tenure,
        "AGE": F.year(c0) - F.col("BIRTH_YEAR"),
        "HAS_ORDERED": F.iff(n > 0, F.lit(1), F.lit(0)),
        "RECENCY_DAYS": recency,
        "DAYS_SINCE_FIRST_ORDER": F.datediff("day", F.col("FIRST_TS"), c0),
        "N_ORDERS": n,
        "SPEND": zero("SPEND"),
        "AVG_ORDER_VALUE": F.iff(n > 0, zero("SPEND") / n, F.lit(0.0)),
        "MAX_ORDER_VALUE": zero("MAX_ORDER_VALUE"),
        "ORDERS_PER_30D": n * F.lit(30.0) / tenure,
        "SPEND_PER_30D": zero("SPEND") * F.lit(30.0) / tenure,
        "MEAN_GAP_DAYS": mean_gap,
        "STD_GAP_DAYS": F.iff(n > 2, F.col("STD_GAP_DAYS"), F.lit(None)),
        "MAX_GAP_DAYS": F.iff(n > 1, F.col("MAX_GAP_DAYS"), F.lit(None)),
        "RECENCY_OVER_GAP": _ratio(recency, mean_gap),
        **{c: zero(c) for c in ("N_ORDERS_LAST", "SPEND_LAST", "N_ORDERS_PREV", "SPEND_PREV")},
        "ORDERS_TREND": zero("N_ORDERS_LAST") - zero("N_ORDERS_PREV"),
        "SPEND_TREND": zero("SPEND_LAST") - zero("SPEND_PREV"),
        "N_COUPON_ORDERS": zero("N_COUPON_ORDERS"),
        "COUPON_SHARE": F.iff(n > 0, zero("N_COUPON_ORDERS").cast("double") / n, F.lit(0.0)),
        "N_REVIEWS": zero("N_REVIEWS"),
        "N_CALLS": zero("N_CALLS"),
        "AVG_RATING": F.col("AVG_RATING"),
        **_btyd_exprs(),
    }
    if btyd_table:
        exprs.update({c: F.col(c) for c in BTYD_OUTPUTS})
    if sentiment:
        exprs.update(
            {
                "AVG_SENTIMENT": F.col("AVG_SENTIMENT"),
                "MIN_SENTIMENT": F.col("MIN_SENTIMENT"),
                "N_NEGATIVE_TEXTS": zero("N_NEGATIVE_TEXTS"),
            }
        )
    exprs.update({c: zero(c) for c in tp.share_columns(topics)})  # no text before the cut-off: 0
    total_qty = zero("QTY_TOTAL")
    for p in products:
        q = product_column("QTY", p)
        exprs[q] = zero(q)
        exprs[product_column("QTY_LAST", p)] = zero(product_column("QTY_LAST", p))
        exprs[product_column("SHARE", p)] = F.iff(
            total_qty > 0, zero(q).cast("double") / total_qty, F.lit(0.0)
        )
    is_score = F.col("ROLE") == F.lit("score")
    exprs.update(
        {c: F.iff(is_score, F.lit(None).cast("double"), zero(c)) for c in label_columns(products)}
    )
    if roles:
        exprs["ROLE"] = F.col("ROLE")
    fractional = (
        set(FRACTIONAL)
        | {product_column("SHARE", p) for p in products}
        | set(tp.share_columns(topics))
    ) & set(exprs)
    return df.select(
        *[(F.round(e, DECIMALS) if k in fractional else e).alias(k) for k, e in exprs.items()]
    )


def output_columns(
    products: list[str], sentiment: bool = False, btyd_outputs: bool = False, topics: int = 0
) -> list[str]:
    """The columns of :func:`features_at`, in order."""
    outlook = [c for c in BTYD_OUTPUTS if c not in BTYD_INPUTS] if btyd_outputs else []
    return (
        [KEY, "CUTOFF"]
        + feature_columns(products, sentiment, btyd_outputs, topics)
        + outlook
        + label_columns(products)
    )


def build(
    session: Session,
    params: Params,
    products: list[str] | None = None,
    sentiment: bool = False,
    btyd_outputs: bool = True,
    topics: int = 0,
) -> str:
    """Write FEATURES: one block per cut-off, with ``ROLE`` = train / holdout / score.

    Train and holdout cut-offs come from :meth:`Params.cutoffs`; the ``score`` block is as of
    ``run_date`` (its labels are not observed yet and are left null). All cut-offs are computed in
    one query (:func:`features_for`) and written in one statement. With ``btyd_outputs`` the BTYD
    models are first fitted per cut-off (:func:`btyd_table`; parameters in ``BTYD_PARAMS``).
    """
    products = products or product_types(session)
    cutoffs = params.cutoffs()
    roles = {c: "train" for c in cutoffs[:-1]} | {cutoffs[-1]: "holdout", params.run_date: "score"}
    table = None
    if btyd_outputs:
        staging = params.warehouse_dir / "staging"
        table, fitted = btyd_table(
            session, list(roles), params.horizon_days, staging, seed=params.seed
        )
        wh.write_pandas(session, fitted, BTYD_PARAMS, staging)
    df = features_for(
        session,
        list(roles),
        params.horizon_days,
        products,
        sentiment,
        roles,
        btyd_table=table,
        topics=topics,
    )
    log.info("building FEATURES for %d cut-offs and run_date %s", len(cutoffs), params.run_date)
    return wh.replace_table(df, TABLE)


def label_columns(products: list[str]) -> list[str]:
    """Label columns: spend first, then quantity per product type."""
    return [LABEL_SPEND] + [product_column(LABEL_QTY_PREFIX, p) for p in products]


def feature_columns(
    products: list[str], sentiment: bool = False, btyd_outputs: bool = False, topics: int = 0
) -> list[str]:
    """Model inputs: categorical + numeric features (no labels, no keys)."""
    return (
        CATEGORICAL
        + BASE_NUMERIC
        + (SENTIMENT if sentiment else [])
        + (BTYD_INPUTS if btyd_outputs else [])
        + tp.share_columns(topics)
        + [product_column(k, p) for p in products for k in PRODUCT_PREFIXES]
    )


def model_columns(columns: list[str]) -> tuple[list[str], list[str]]:
    """``(features, targets)`` present in a FEATURES frame's ``columns``, in their canonical
    order."""
    products = products_from_columns(columns)
    feats = feature_columns(
        products,
        sentiment=all(c in columns for c in SENTIMENT),
        btyd_outputs=all(c in columns for c in BTYD_OUTPUTS),
        topics=sum(c.startswith(tp.SHARE_PREFIX) for c in columns),
    )
    return [c for c in feats if c in columns], label_columns(products)


def products_from_columns(columns: list[str]) -> list[str]:
    """Recover the product column suffixes from FEATURES' ``QTY_NEXT_*`` columns."""
    prefix = LABEL_QTY_PREFIX + "_"
    return sorted(c[len(prefix) :].lower() for c in columns if c.startswith(prefix))


def cutoff_table(params: Params) -> pd.DataFrame:
    """The cut-offs of this run with their role and label window (for the report)."""
    h = dt.timedelta(days=params.horizon_days)
    cutoffs = params.cutoffs()
    rows = [
        {
            "cutoff": c,
            "role": "holdout" if i == len(cutoffs) - 1 else "train",
            "features from data before": c,
            "labels over": f"{c} .. {c + h - dt.timedelta(days=1)}",
        }
        for i, c in enumerate(cutoffs)
    ]
    rows.append(
        {
            "cutoff": params.run_date,
            "role": "score",
            "features from data before": params.run_date,
            "labels over": "(future)",
        }
    )
    return pd.DataFrame(rows).set_index("cutoff")


def summary(session: Session) -> pd.DataFrame:
    """Customers, mean next-window spend and share of buyers per cut-off (aggregates)."""
    df = (
        session.table(TABLE)
        .group_by("CUTOFF", "ROLE")
        .agg(
            F.count(F.lit(1)).alias("CUSTOMERS"),
            pt.mean(F.col(LABEL_SPEND)).alias("MEAN_SPEND_NEXT"),
            pt.mean(F.iff(F.col(LABEL_SPEND) > 0, F.lit(1.0), F.lit(0.0))).alias(
                "SHARE_BUYING_NEXT"
            ),
        )
        .sort("CUTOFF")
    )
    out = wh.to_pandas(df, "features:summary")
    out.columns = [c.lower() for c in out.columns]
    out["share_buying_next"] = out["share_buying_next"].mask(out["role"] == "score")
    return out.set_index("cutoff")


def describe(session: Session) -> pd.DataFrame:
    """Mean, min, max and share missing of every numeric feature on the training rows
    (aggregates)."""
    df = session.table(TABLE).filter(F.col("ROLE") == "train")
    feats, _ = model_columns(df.columns)
    numeric = [c for c in feats if c not in CATEGORICAL]
    aggs = []
    for c in numeric:
        aggs += [
            pt.mean(F.col(c)).alias(f"{c}__MEAN"),
            F.min(F.col(c)).alias(f"{c}__MIN"),
            F.max(F.col(c)).alias(f"{c}__MAX"),
            pt.mean(F.iff(F.col(c).is_null(), F.lit(1.0), F.lit(0.0))).alias(f"{c}__MISSING"),
        ]
    row = df.agg(*aggs).collect()[0].as_dict()
    stats = ("mean", "min", "max", "missing")
    return pd.DataFrame(
        {s: {c.lower(): row[f"{c}__{s.upper()}"] for c in numeric} for s in stats}
    ).astype(float)


def feature_groups(columns: list[str]) -> pd.DataFrame:
    """The feature groups and how many columns each has in FEATURES (for the report)."""
    feats, _ = model_columns(columns)
    rows = {g: [c for c in cols if c in feats] for g, cols in GROUPS.items()}
    rows["text topics"] = [c for c in feats if c.startswith(tp.SHARE_PREFIX)]
    rows["per product type"] = [
        c for c in feats if c.startswith(tuple(f"{p}_" for p in PRODUCT_PREFIXES))
    ]
    return pd.DataFrame(
        {
            "columns": [len(v) for v in rows.values()],
            "examples": [
                ", ".join(v[:4]).lower() + (" …" if len(v) > 4 else "") for v in rows.values()
            ],
        },
        index=list(rows),
    )


def btyd_params(session: Session) -> pd.DataFrame:
    """The BTYD parameters fitted per cut-off (``BTYD_PARAMS``), for the report; empty without."""
    if not wh.table_exists(session, BTYD_PARAMS):
        return pd.DataFrame()
    out = wh.to_pandas(session.table(BTYD_PARAMS).sort("CUTOFF"), "features:btyd_params").set_index(
        "CUTOFF"
    )
    out.columns = [c.lower() for c in out.columns]
    return out


def outside_range(session: Session, train: pd.DataFrame, margin: float) -> dict[str, float]:
    """Share of FEATURES' ``score`` rows outside each numeric feature's range on ``train``.

    "Outside" = beyond the training minimum or maximum by more than ``margin`` x the range's width
    (one aggregate query; nulls are not counted). Features without score rows or bounds are left
    out.
    """
    feats, _ = model_columns(list(train.columns))
    numeric = [c for c in feats if c not in CATEGORICAL and train[c].notna().any()]
    score = session.table(TABLE).filter(F.col("ROLE") == "score")
    numeric = [c for c in numeric if c in score.columns]
    if not numeric:
        return {}
    aggs = []
    for c in numeric:
        lo, hi = float(train[c].min()), float(train[c].max())
        pad = margin * (hi - lo)
        out = (F.col(c) < F.lit(lo - pad)) | (F.col(c) > F.lit(hi + pad))
        aggs += [
            F.sum(F.iff(out, F.lit(1), F.lit(0))).alias(f"{c}__OUT"),
            F.count(F.col(c)).alias(f"{c}__N"),
        ]
    row = score.agg(*aggs).collect()[0].as_dict()
    return {c: row[f"{c}__OUT"] / row[f"{c}__N"] for c in numeric if row[f"{c}__N"]}


def sample_fraction(n_rows: int, cap: int) -> float:
    """Fraction of ``n_rows`` to keep so that about ``cap`` rows remain (1.0 when under the cap)."""
    return 1.0 if n_rows <= cap else cap / n_rows


#: buckets of the ``max_train_rows`` sample
TRAIN_BUCKETS = 1_000_000


def train_sample(df: DataFrame, seed: int, kept: int, exempt: Column | None = None) -> DataFrame:
    """The rows of ``df`` (with ``CUSTOMER_ID`` and ``CUTOFF``) whose sampling bucket (of
    :data:`TRAIN_BUCKETS`, a seeded :func:`portable.stable_hash` of customer and cut-off) is below
    ``kept``, and every row where ``exempt`` holds."""
    hashed = pt.with_stable_hash(
        df, "_HASH", F.col(KEY), pt.epoch_days(F.col("CUTOFF")), F.lit(seed)
    )
    keep = (F.col("_HASH") % F.lit(TRAIN_BUCKETS)) < F.lit(kept)
    return hashed.filter(keep if exempt is None else exempt | keep).drop("_HASH")


def load_labelled(
    session: Session,
    max_train_rows: int | None = None,
    seed: int = 0,
    max_holdout_rows: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and holdout rows of FEATURES as pandas, in a stable order (cut-off, customer).

    Training rows beyond ``max_train_rows``, and held-out rows beyond ``max_holdout_rows``, are
    sampled *in the warehouse* by a seeded hash of (customer, cut-off)
    (:func:`portable.stable_hash`: the same rows on Snowflake, DuckDB and in pandas), so at most
    about that many come to the client (at 10M orders, with the whole held-out window of ~2M
    customers, 04's kernel peaked at 7.7 GiB and the warehouse server at 10.5 GiB).
    """
    df = session.table(TABLE).filter(F.col("ROLE") != "score")
    for role, cap, name in (
        ("train", max_train_rows, "max_train_rows"),
        ("holdout", max_holdout_rows, "max_holdout_rows"),
    ):
        if not cap:
            continue
        n = df.filter(F.col("ROLE") == role).count()
        frac = sample_fraction(n, cap)
        if frac < 1.0:
            df = train_sample(df, seed, int(frac * TRAIN_BUCKETS), exempt=F.col("ROLE") != role)
            log.info("sampling %.1f%% of %d %s rows (%s=%d)", 100 * frac, n, role, name, cap)
    frame = wh.to_pandas(df.sort("CUTOFF", KEY), "features:labelled")
    frame = frame.sort_values(["CUTOFF", KEY], kind="stable")
    train = frame[frame["ROLE"] == "train"].reset_index(drop=True)
    holdout = frame[frame["ROLE"] == "holdout"].reset_index(drop=True)
    return train, holdout


def window_table(train: pd.DataFrame, holdout: pd.DataFrame) -> pd.DataFrame:
    """Rows and cut-offs of the training and held-out sets."""
    return pd.DataFrame(
        {
            "rows": [len(train), len(holdout)],
            "cut-offs": [
                ", ".join(str(c) for c in sorted(set(train["CUTOFF"]))),
                str(holdout["CUTOFF"].iloc[0]),
            ],
        },
        index=["train", "holdout"],
    )
