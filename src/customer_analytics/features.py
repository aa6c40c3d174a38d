"""Per-customer features as of a cut-off, and labels over the following horizon (Snowpark).

Definitions (``c`` = cut-off date at 00:00, ``H`` = ``horizon_days``):

* population: customers whose ``SIGNUP_DATE < c``;
* features use only rows with ``TS < c`` (orders, order lines, reviews) — leak-free by
  construction; "last period" is ``[c - H, c)``, "previous period" ``[c - 2H, c - H)``;
* labels are what happened in ``[c, c + H)``: total spend (``SPEND_NEXT``) and quantity per
  product type (``QTY_NEXT_<PRODUCT>``).

Spend of an order line is ``QUANTITY * UNIT_PRICE`` (shipping excluded). Everything here is a
Snowpark DataFrame: on Snowflake it runs in the warehouse and only the per-customer rows come
back. ``reference.py`` holds an independent pandas version of the same definitions for tests.
"""

from __future__ import annotations

import datetime as dt
import logging

import snowflake.snowpark.functions as F
from snowflake.snowpark import Column, DataFrame, Session

from customer_analytics import warehouse as wh
from customer_analytics.config import Params

log = logging.getLogger(__name__)

KEY = "CUSTOMER_ID"
CATEGORICAL = ["CHANNEL", "COUNTRY"]
BASE_NUMERIC = [
    "TENURE_DAYS", "AGE", "HAS_ORDERED", "RECENCY_DAYS", "N_ORDERS", "SPEND", "AVG_ORDER_VALUE",
    "MEAN_GAP_DAYS", "N_ORDERS_LAST", "SPEND_LAST", "N_ORDERS_PREV", "SPEND_PREV", "COUPON_SHARE",
    "N_REVIEWS", "AVG_RATING", "SENTIMENT",
]
LABEL_SPEND = "SPEND_NEXT"
POSITIVE_WORDS = ("love", "delicious", "fresh", "great", "perfect", "again", "fast")
NEGATIVE_WORDS = ("broken", "stale", "dry", "late", "disappointed", "expensive", "never")


def product_types(session: Session) -> list[str]:
    """Product types present in CLEAN_ORDER_LINES, sorted (a small aggregate)."""
    rows = session.table("CLEAN_ORDER_LINES").select("PRODUCT").distinct().collect()
    return sorted(r["PRODUCT"] for r in rows)


def product_column(prefix: str, product: str) -> str:
    """Column name for a product type, e.g. ``QTY_NEXT_CHOCOLATE_CHIP``."""
    return wh.column_name(f"{prefix}_{product}")


def sentiment_score(text: Column) -> Column:
    """Lexicon sentiment of one text: positive minus negative word hits."""
    low = F.lower(F.coalesce(text, F.lit("")))
    pos = [F.iff(F.contains(low, F.lit(w)), F.lit(1), F.lit(0)) for w in POSITIVE_WORDS]
    neg = [F.iff(F.contains(low, F.lit(w)), F.lit(1), F.lit(0)) for w in NEGATIVE_WORDS]
    total = pos[0]
    for term in pos[1:]:
        total = total + term
    for term in neg:
        total = total - term
    return total


def _ts(d: dt.date) -> Column:
    return F.lit(dt.datetime.combine(d, dt.time()))


def _window_sum(value: Column, ts: Column, lo: dt.date, hi: dt.date) -> Column:
    return F.sum(F.iff((ts >= _ts(lo)) & (ts < _ts(hi)), value, F.lit(0)))


def features_at(session: Session, cutoff: dt.date, horizon_days: int, products: list[str]) -> DataFrame:
    """Features and labels for every customer signed up before ``cutoff``.

    Returns one row per customer: ``CUSTOMER_ID``, ``CUTOFF``, :data:`CATEGORICAL`,
    :data:`BASE_NUMERIC`, ``QTY_<P>``, ``QTY_LAST_<P>`` and the labels.
    """
    h = dt.timedelta(days=horizon_days)
    c0, c_last, c_prev, c_next = cutoff, cutoff - h, cutoff - 2 * h, cutoff + h
    cust = session.table("CLEAN_CUSTOMERS").filter(F.col("SIGNUP_DATE") < F.lit(c0))
    orders = session.table("CLEAN_ORDERS").filter(F.col("TS") < _ts(c_next))
    lines = session.table("CLEAN_ORDER_LINES").filter(F.col("TS") < _ts(c_next))
    reviews = session.table("CLEAN_REVIEWS").filter(F.col("TS") < _ts(c0))
    ts, past = F.col("TS"), F.col("TS") < _ts(c0)
    one = F.lit(1)

    o = orders.group_by(KEY).agg(
        F.sum(F.iff(past, one, F.lit(0))).alias("N_ORDERS"),
        F.sum(F.iff(past, F.col("ORDER_TOTAL"), F.lit(0))).alias("SPEND"),
        F.min(F.iff(past, ts, F.lit(None))).alias("FIRST_TS"),
        F.max(F.iff(past, ts, F.lit(None))).alias("LAST_TS"),
        _window_sum(one, ts, c_last, c0).alias("N_ORDERS_LAST"),
        _window_sum(F.col("ORDER_TOTAL"), ts, c_last, c0).alias("SPEND_LAST"),
        _window_sum(one, ts, c_prev, c_last).alias("N_ORDERS_PREV"),
        _window_sum(F.col("ORDER_TOTAL"), ts, c_prev, c_last).alias("SPEND_PREV"),
        F.sum(F.iff(past & F.col("COUPON").is_not_null(), one, F.lit(0))).alias("N_COUPON"),
        _window_sum(F.col("ORDER_TOTAL"), ts, c0, c_next).alias(LABEL_SPEND),
    )
    qty = F.col("QUANTITY")
    per_product = []
    for p in products:
        is_p = F.col("PRODUCT") == F.lit(p)
        per_product += [
            F.sum(F.iff(past & is_p, qty, F.lit(0))).alias(product_column("QTY", p)),
            F.sum(F.iff(is_p & (ts >= _ts(c_last)) & past, qty, F.lit(0))).alias(product_column("QTY_LAST", p)),
            F.sum(F.iff(is_p & (ts >= _ts(c0)), qty, F.lit(0))).alias(product_column("QTY_NEXT", p)),
        ]
    li = lines.group_by(KEY).agg(*per_product)
    r = reviews.group_by(KEY).agg(
        F.count(one).alias("N_REVIEWS"),
        F.avg(F.col("RATING")).alias("AVG_RATING"),
        F.avg(sentiment_score(F.col("TEXT"))).alias("SENTIMENT"),
    )
    df = cust.join(o, KEY, "left").join(li, KEY, "left").join(r, KEY, "left")
    tenure = F.datediff("day", F.col("SIGNUP_DATE"), F.lit(c0))
    zero_filled = ["N_ORDERS", "SPEND", "N_ORDERS_LAST", "SPEND_LAST", "N_ORDERS_PREV", "SPEND_PREV", "N_REVIEWS",
                   LABEL_SPEND] + [product_column(k, p) for p in products for k in ("QTY", "QTY_LAST", "QTY_NEXT")]
    n_orders = F.coalesce(F.col("N_ORDERS"), F.lit(0))
    cols = [
        F.col(KEY), F.lit(c0).alias("CUTOFF"), F.col("CHANNEL"), F.col("COUNTRY"),
        tenure.alias("TENURE_DAYS"),
        (F.lit(c0.year) - F.col("BIRTH_YEAR")).alias("AGE"),
        F.iff(n_orders > 0, F.lit(1), F.lit(0)).alias("HAS_ORDERED"),
        F.coalesce(F.datediff("day", F.col("LAST_TS"), F.lit(c0)), tenure).alias("RECENCY_DAYS"),
        F.iff(n_orders > 0, F.col("SPEND") / n_orders, F.lit(0.0)).alias("AVG_ORDER_VALUE"),
        F.iff(n_orders > 1, F.datediff("day", F.col("FIRST_TS"), F.col("LAST_TS")) / (n_orders - 1),
              F.lit(None)).alias("MEAN_GAP_DAYS"),
        F.iff(n_orders > 0, F.coalesce(F.col("N_COUPON"), F.lit(0)) / n_orders, F.lit(0.0)).alias("COUPON_SHARE"),
        F.col("AVG_RATING"), F.col("SENTIMENT"),
    ] + [F.coalesce(F.col(c), F.lit(0)).alias(c) for c in zero_filled]
    return df.select(*cols)


def build(session: Session, params: Params, products: list[str] | None = None) -> str:
    """Write FEATURES: one block per cut-off, with ``ROLE`` = train / holdout / score.

    Train and holdout cut-offs come from :meth:`Params.cutoffs`; the ``score`` block is as of
    ``run_date`` (its labels are not observed yet and are left null).
    """
    products = products or product_types(session)
    cutoffs = params.cutoffs()
    blocks = []
    for i, c in enumerate(cutoffs):
        role = "holdout" if i == len(cutoffs) - 1 else "train"
        blocks.append(features_at(session, c, params.horizon_days, products).with_column("ROLE", F.lit(role)))
    score = features_at(session, params.run_date, params.horizon_days, products)
    label_cols = label_columns(products)
    score = score.select(*[F.lit(None).cast("double").alias(c) if c in label_cols else F.col(c)
                           for c in score.columns]).with_column("ROLE", F.lit("score"))
    df = blocks[0]
    for b in blocks[1:] + [score]:
        df = df.union_all_by_name(b)
    return wh.replace_table(df, "FEATURES")


def label_columns(products: list[str]) -> list[str]:
    """Label columns: spend first, then quantity per product type."""
    return [LABEL_SPEND] + [product_column("QTY_NEXT", p) for p in products]


def feature_columns(products: list[str]) -> list[str]:
    """Model inputs: categorical + numeric features (no labels, no keys)."""
    return CATEGORICAL + BASE_NUMERIC + [product_column(k, p) for p in products for k in ("QTY", "QTY_LAST")]


def products_from_columns(columns: list[str]) -> list[str]:
    """Recover the product column suffixes from FEATURES' ``QTY_NEXT_*`` columns."""
    return sorted(c[len("QTY_NEXT_"):].lower() for c in columns if c.startswith("QTY_NEXT_"))


def cutoff_table(params: Params):
    """The cut-offs of this run with their role and label window (for the report)."""
    import pandas as pd

    h = dt.timedelta(days=params.horizon_days)
    cutoffs = params.cutoffs()
    rows = [{"cutoff": c, "role": "holdout" if i == len(cutoffs) - 1 else "train",
             "features from data before": c, "labels over": f"{c} .. {c + h - dt.timedelta(days=1)}"}
            for i, c in enumerate(cutoffs)]
    rows.append({"cutoff": params.run_date, "role": "score", "features from data before": params.run_date,
                 "labels over": "(future)"})
    return pd.DataFrame(rows).set_index("cutoff")


def summary(session: Session):
    """Customers, mean next-window spend and share of buyers per cut-off (aggregates)."""
    df = session.table("FEATURES").group_by("CUTOFF", "ROLE").agg(
        F.count(F.lit(1)).alias("CUSTOMERS"),
        F.avg(F.col(LABEL_SPEND)).alias("MEAN_SPEND_NEXT"),
        F.avg(F.iff(F.col(LABEL_SPEND) > 0, F.lit(1.0), F.lit(0.0))).alias("SHARE_BUYING_NEXT"),
    ).sort("CUTOFF")
    out = wh.to_pandas(df, "features:summary")
    out.columns = [c.lower() for c in out.columns]
    out["share_buying_next"] = out["share_buying_next"].mask(out["role"] == "score")
    return out.set_index("cutoff")


def describe(session: Session):
    """Mean, min and max of the numeric features on the training rows (aggregates)."""
    import pandas as pd

    df = session.table("FEATURES").filter(F.col("ROLE") == "train")
    aggs = []
    for c in BASE_NUMERIC:
        aggs += [F.avg(F.col(c)).alias(f"{c}__MEAN"), F.min(F.col(c)).alias(f"{c}__MIN"),
                 F.max(F.col(c)).alias(f"{c}__MAX")]
    row = df.agg(*aggs).collect()[0].as_dict()
    return pd.DataFrame({s: {c.lower(): row[f"{c}__{s.upper()}"] for c in BASE_NUMERIC} for s in ("mean", "min", "max")})


def load_labelled(session: Session):
    """Training and holdout rows of FEATURES as pandas (per-customer rows), in a stable order."""
    df = session.table("FEATURES").filter(F.col("ROLE") != "score").sort("CUTOFF", KEY)
    frame = wh.to_pandas(df, "features:labelled")
    return frame[frame["ROLE"] == "train"].reset_index(drop=True), frame[frame["ROLE"] == "holdout"].reset_index(drop=True)


def window_table(train, holdout):
    """Rows and cut-offs of the training and held-out sets."""
    import pandas as pd

    return pd.DataFrame({
        "rows": [len(train), len(holdout)],
        "cut-offs": [", ".join(str(c) for c in sorted(set(train["CUTOFF"]))), str(holdout["CUTOFF"].iloc[0])],
    }, index=["train", "holdout"])


def summary_text(summary) -> str:
    """Markdown sentence describing the FEATURES table from :func:`summary`'s output."""
    by_role = summary.groupby("role")["customers"].sum()
    train_cutoffs = (summary["role"] == "train").sum()
    holdout = summary[summary["role"] == "holdout"].iloc[0]
    return (f"FEATURES holds **{by_role.get('train', 0):,} training rows** from {train_cutoffs} past cut-offs, "
            f"**{by_role.get('holdout', 0):,} held-out rows** (cut-off {holdout.name}: "
            f"{holdout['share_buying_next']:.0%} of customers bought in the following window, "
            f"{holdout['mean_spend_next']:,.2f} spent on average) and **{by_role.get('score', 0):,} rows to score**.")
