"""An independent pandas implementation of the ingest and feature definitions.

Nothing here touches the warehouse: files are parsed with the standard library and pandas.
Tests compare the Snowpark results (run on fakesnow/DuckDB, which translates Snowflake SQL
through sqlglot and can mistranslate) against these numbers, on small generated data.
The same code is the "floor" a benchmark can compare the pipeline with.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

from customer_analytics import features as ft


def order_lines(path: Path) -> pd.DataFrame:
    """Flatten ``orders.jsonl`` into one row per valid order line (same checks as ingest)."""
    rows = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            o = json.loads(line)
            for item in o.get("items") or []:
                rows.append({"ORDER_ID": o.get("order_id"), "CUSTOMER_ID": o.get("customer_id"),
                             "TS": pd.to_datetime(o.get("ts"), errors="coerce"), "COUPON": o.get("coupon"),
                             "PRODUCT": (item.get("product") or "all").strip().lower(),
                             "QUANTITY": pd.to_numeric(item.get("quantity"), errors="coerce"),
                             "UNIT_PRICE": pd.to_numeric(item.get("unit_price"), errors="coerce"),
                             "LINE_NO": line_no})
    df = pd.DataFrame(rows)
    ok = (df["ORDER_ID"].notna() & df["CUSTOMER_ID"].notna() & df["TS"].notna() & (df["QUANTITY"] > 0)
          & (df["UNIT_PRICE"] >= 0))
    return df[ok].reset_index(drop=True)


def customers(path: Path) -> pd.DataFrame:
    """Customers with a valid id and signup date (first occurrence of each id)."""
    df = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
    df["SIGNUP_DATE"] = pd.to_datetime(df["signup_date"], errors="coerce", format="%Y-%m-%d")
    df["BIRTH_YEAR"] = pd.to_numeric(df["birth_year"], errors="coerce")
    df = df[df["customer_id"].notna() & df["SIGNUP_DATE"].notna()].drop_duplicates("customer_id")
    return df.rename(columns={"customer_id": "CUSTOMER_ID", "acquisition_channel": "CHANNEL", "country": "COUNTRY"})


def reviews(path: Path) -> pd.DataFrame:
    """Reviews with id and timestamp; ratings outside 1-5 become missing."""
    df = pd.read_json(path, lines=True, dtype={"customer_id": str})
    df["TS"] = pd.to_datetime(df["ts"], errors="coerce")
    r = pd.to_numeric(df.get("rating"), errors="coerce")
    df["RATING"] = r.where(r.between(1, 5))
    return df.rename(columns={"customer_id": "CUSTOMER_ID", "text": "TEXT"})


def text_scores(revs: pd.DataFrame, pipeline) -> pd.DataFrame:
    """Sentiment of every text with scikit-learn's own ``decision_function`` / ``predict_proba``.

    The warehouse scores texts by joining exported word weights; this is the client-side model
    it must agree with. Adds ``SENTIMENT_LOGIT`` and ``SENTIMENT`` to the rows with a text.
    """
    out = revs[revs["TEXT"].notna()].copy()
    out["SENTIMENT_LOGIT"] = pipeline.decision_function(out["TEXT"]) if len(out) else []
    out["SENTIMENT"] = pipeline.predict_proba(out["TEXT"])[:, 1] if len(out) else []
    return out


def _days(later: pd.Series, earlier: pd.Series) -> pd.Series:
    """Calendar days between two timestamps (day boundaries crossed, like SQL ``DATEDIFF('day', …)``)."""
    return (later.dt.normalize() - earlier.dt.normalize()).dt.days


def features_at(cust: pd.DataFrame, lines: pd.DataFrame, revs: pd.DataFrame, cutoff: dt.date,
                horizon_days: int, products: list[str], scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """Same definitions as :func:`customer_analytics.features.features_at`, in pandas.

    Args:
        cust, lines, revs: outputs of :func:`customers`, :func:`order_lines`, :func:`reviews`
            (``revs`` may carry a ``KIND`` column; without one every text is a review).
        scores: output of :func:`text_scores`; ``None`` = no sentiment features.
    """
    c0 = pd.Timestamp(cutoff)
    h = pd.Timedelta(days=horizon_days)
    pop = cust[cust["SIGNUP_DATE"] < c0].set_index("CUSTOMER_ID")
    ln = lines[lines["CUSTOMER_ID"].isin(pop.index)].copy()
    ln["AMOUNT"] = ln["QUANTITY"] * ln["UNIT_PRICE"]
    orders = ln.groupby(["ORDER_ID", "CUSTOMER_ID", "TS"], as_index=False).agg(
        ORDER_TOTAL=("AMOUNT", "sum"), COUPON=("COUPON", "max"))
    past = orders[orders["TS"] < c0].sort_values(["CUSTOMER_ID", "TS", "ORDER_ID"])
    g = past.groupby("CUSTOMER_ID")

    def window(df, lo, hi, col=None):
        sel = df[(df["TS"] >= lo) & (df["TS"] < hi)].groupby("CUSTOMER_ID")
        return sel.size() if col is None else sel[col].sum()

    out = pd.DataFrame(index=pop.index)
    out["N_ORDERS"] = g.size()
    out["SPEND"] = g["ORDER_TOTAL"].sum()
    first, last = g["TS"].min(), g["TS"].max()
    out["N_ORDERS_LAST"] = window(orders, c0 - h, c0)
    out["SPEND_LAST"] = window(orders, c0 - h, c0, "ORDER_TOTAL")
    out["N_ORDERS_PREV"] = window(orders, c0 - 2 * h, c0 - h)
    out["SPEND_PREV"] = window(orders, c0 - 2 * h, c0 - h, "ORDER_TOTAL")
    out["N_COUPON_ORDERS"] = past[past["COUPON"].notna()].groupby("CUSTOMER_ID").size()
    out[ft.LABEL_SPEND] = window(orders, c0, c0 + h, "ORDER_TOTAL")
    out["QTY_TOTAL"] = ln[ln["TS"] < c0].groupby("CUSTOMER_ID")["QUANTITY"].sum()
    for p in products:
        lp = ln[ln["PRODUCT"] == p]
        out[ft.product_column("QTY", p)] = lp[lp["TS"] < c0].groupby("CUSTOMER_ID")["QUANTITY"].sum()
        out[ft.product_column("QTY_LAST", p)] = window(lp, c0 - h, c0, "QUANTITY")
        out[ft.product_column("QTY_NEXT", p)] = window(lp, c0, c0 + h, "QUANTITY")
    revs = revs if "KIND" in revs.columns else revs.assign(KIND="review")
    rv = revs[(revs["TS"] < c0) & revs["CUSTOMER_ID"].isin(pop.index)]
    is_review = rv["KIND"].fillna("review") == "review"
    out["N_REVIEWS"] = rv[is_review].groupby("CUSTOMER_ID").size()
    out["N_CALLS"] = rv[~is_review].groupby("CUSTOMER_ID").size()
    out = out.fillna(0)
    out["AVG_RATING"] = rv[is_review].groupby("CUSTOMER_ID")["RATING"].mean()
    if scores is not None:
        sc = scores[(scores["TS"] < c0) & scores["CUSTOMER_ID"].isin(pop.index)]
        out["AVG_SENTIMENT"] = sc.groupby("CUSTOMER_ID")["SENTIMENT"].mean()
        out["MIN_SENTIMENT"] = sc.groupby("CUSTOMER_ID")["SENTIMENT"].min()
        out["N_NEGATIVE_TEXTS"] = (sc["SENTIMENT_LOGIT"] < 0).groupby(sc["CUSTOMER_ID"]).sum()
        out["N_NEGATIVE_TEXTS"] = out["N_NEGATIVE_TEXTS"].fillna(0)

    tenure = (c0 - pop["SIGNUP_DATE"]).dt.days
    out["TENURE_DAYS"] = tenure
    out["AGE"] = cutoff.year - pop["BIRTH_YEAR"]
    n = out["N_ORDERS"]
    out["HAS_ORDERED"] = (n > 0).astype(int)
    out["RECENCY_DAYS"] = _days(pd.Series(c0, index=last.index), last).reindex(out.index).fillna(tenure)
    out["DAYS_SINCE_FIRST_ORDER"] = _days(pd.Series(c0, index=first.index), first).reindex(out.index)
    out["AVG_ORDER_VALUE"] = np.where(n > 0, out["SPEND"] / n.where(n > 0, 1), 0.0)
    out["MAX_ORDER_VALUE"] = g["ORDER_TOTAL"].max().reindex(out.index).fillna(0)
    out["ORDERS_PER_30D"] = n * 30.0 / tenure
    out["SPEND_PER_30D"] = out["SPEND"] * 30.0 / tenure
    gaps = _days(past["TS"], g["TS"].shift(1)).groupby(past["CUSTOMER_ID"])
    out["MEAN_GAP_DAYS"] = gaps.mean().reindex(out.index).where(n > 1)
    out["STD_GAP_DAYS"] = gaps.std(ddof=1).reindex(out.index).where(n > 2)
    out["MAX_GAP_DAYS"] = gaps.max().reindex(out.index).where(n > 1)
    mg = out["MEAN_GAP_DAYS"]
    out["RECENCY_OVER_GAP"] = (out["RECENCY_DAYS"] / mg).where(mg > 0)
    out["ORDERS_TREND"] = out["N_ORDERS_LAST"] - out["N_ORDERS_PREV"]
    out["SPEND_TREND"] = out["SPEND_LAST"] - out["SPEND_PREV"]
    out["COUPON_SHARE"] = np.where(n > 0, out["N_COUPON_ORDERS"] / n.where(n > 0, 1), 0.0)
    total = out["QTY_TOTAL"]
    for p in products:
        q = out[ft.product_column("QTY", p)]
        out[ft.product_column("SHARE", p)] = np.where(total > 0, q / total.where(total > 0, 1), 0.0)
    for c in ft.CATEGORICAL:
        out[c] = pop[c].fillna(ft.UNKNOWN)
    return out.drop(columns="QTY_TOTAL").reset_index()
