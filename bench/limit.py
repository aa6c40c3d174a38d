"""The limit: the pipeline's ingest + features as DuckDB's own readers and SQL, one process.

Usage: ``.venv/bin/python bench/limit.py DATA_DIR [--out FOLDER] [--check WAREHOUSE.db]``
(``bench/run.py`` calls it with ``--check`` on the warehouse the pipeline has just built).

No Snowpark, no warehouse server, no notebooks and none of ``customer_analytics``' ingest or
feature code: ``read_csv`` / ``read_json`` read the demo files written by
:func:`customer_analytics.synthetic.write` into an in-memory DuckDB (spilling to ``--out`` if it
must), and SQL does the checks and the features. What it shares with the pipeline: the run's
parameters (``env.yaml`` via :mod:`customer_analytics.config`), the contract's constants (ranges,
guest ids) and the buy-till-you-die *fitting* (:mod:`customer_analytics.btyd`, scipy on the same
per-cut-off triples the pipeline pulls; the per-customer summaries and outputs are SQL here).

1. **ingest** (timed as ``ingest_s``): customers (ids, sign-up date in range, whole birth year in
   range, first of a duplicated id), order lines (order id, customer id, timestamp in range,
   a non-empty items list of at most ``MAX_ITEMS``, product, whole quantity other than 0 — below
   0 a return, kept net —, unit price and shipping cost in range, guest ids excluded, an order
   id seen on an earlier line rejected, unknown customers rejected), orders (one row per order,
   net total), product types (the ``max_product_types`` most frequent keep a key, the rest are
   ``other``) and reviews (customer, timestamp, whole rating 1-5, a rating or a text, exact
   repeats and unknown customers rejected). Every check is a set-based SQL expression.
2. **features** (``features_s``): every definition of :mod:`customer_analytics.features` for
   every training / held-out cut-off and the scoring date (``run_date``) in one query per group,
   rounded as the pipeline rounds them, with the BTYD fit per cut-off and its outputs (the fit's
   own seconds, scipy on the client as in the pipeline, are also recorded as ``btyd_fit_s``).
   Python start-up and imports are not timed; nor is the check.

Limits of the limit (the demo data has none of these; the check would show a difference):
a line that is not a JSON object of the demo's shape stops the read (DuckDB's reader raises,
naming the file and line) instead of being rejected with its reason; strict-JSON details
(duplicate keys, lone surrogates, depth), CSV records over several lines, time-zone suffixes,
basic-format dates, ``amount`` instead of ``unit_price``, ``cancelled`` flags, the return-order
prefix, ``returns`` other than ``net``, non-ASCII product names, column mappings, ``sample`` < 1
and support-call transcripts are not handled.

**Not compared** (``--check``): the text-model features — sentiment (``AVG_SENTIMENT``,
``MIN_SENTIMENT``, ``N_NEGATIVE_TEXTS``) and topic shares (``TOPIC_SHARE_*``) — which come from
models trained on review texts (03's text and topic models); the limit does not build them.
Everything computed from orders, customers and reviews' ratings and counts, the BTYD summaries
and the BTYD outputs included, must match: ``--check`` compares the limit's accepted customers,
order lines, orders, reviews, product types and FEATURES with the warehouse's CLEAN_* /
PRODUCT_TYPES / FEATURES tables by key (row counts, keys on both sides, every value; floats
within 1e-9 relative + 2e-9 absolute, the last digit of the pipeline's 9-decimal rounding) and
exits 1 listing every difference.

Writes ``timings.json`` into ``--out`` (seconds per step, row counts, the check's outcome).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from customer_analytics import btyd, config, contract, features  # noqa: E402

#: rounded to DECIMALS places: the pipeline's own list of fractional columns (definitions, not
#: work; the per-product shares are added where the products are known)
DECIMALS, FRACTIONAL = features.DECIMALS, features.FRACTIONAL
#: FEATURES columns from the text models: not built by the limit, not compared
TEXT_MODEL_COLUMNS = ("AVG_SENTIMENT", "MIN_SENTIMENT", "N_NEGATIVE_TEXTS")
TEXT_MODEL_PREFIX = "TOPIC_SHARE_"
#: Gamma-Gamma's sample cap and the hash it is drawn with (portable.stable_hash: the first 8 hex
#: digits of md5('customer|epoch days|seed'))
BTYD_VALUE_SAMPLE = features.BTYD_VALUE_SAMPLE
HASH_DIGITS = 8
MAX_KEY = 40
OTHER = "other"
RTOL, ATOL = 1e-9, 2e-9


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ts_ok(col: str) -> str:
    """A timestamp that parses and lies in the contract's date range."""
    lo, hi = contract.MIN_DATE, contract.MAX_DATE + dt.timedelta(days=1)
    return f"({col} >= TIMESTAMP '{lo}' AND {col} < TIMESTAMP '{hi}')"


def _text(col: str) -> str:
    """The warehouses' TRIM (spaces only); empty = missing."""
    return f"NULLIF(TRIM({col}, ' '), '')"


def _num(col: str) -> str:
    """A finite number (NULL when missing or not one)."""
    return f"(CASE WHEN isfinite(TRY_CAST({col} AS DOUBLE)) THEN TRY_CAST({col} AS DOUBLE) END)"


def ingest(con: duckdb.DuckDBPyConnection, data_dir: Path, params) -> dict[str, int]:
    """CUSTOMERS, ORDER_LINES, ORDERS, PRODUCT_TYPES and REVIEWS from the files; rejected counts."""
    rejected = {}
    by_lo, by_hi = contract.BIRTH_YEARS
    con.execute(
        f"""
        CREATE OR REPLACE TABLE RAW_C AS
        SELECT row_number() OVER () + 1 AS LINE_NO, {_text("customer_id")} AS CUSTOMER_ID,
               TRY_CAST({_text("signup_date")} AS TIMESTAMP) AS SIGNUP,
               {_text("country")} AS COUNTRY, {_text("acquisition_channel")} AS CHANNEL,
               {_text("birth_year")} AS BY_TEXT, {_num(_text("birth_year"))} AS BY_NUM
        FROM read_csv({_lit(str(data_dir / params.customers_file))}, header = true,
                      all_varchar = true, quote = '"', escape = '"')
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE CUSTOMERS AS
        WITH v AS (
            SELECT *, CUSTOMER_ID IS NOT NULL AND {_ts_ok("SIGNUP")}
                   AND (BY_TEXT IS NULL OR (BY_NUM = floor(BY_NUM)
                        AND BY_NUM BETWEEN {by_lo} AND {by_hi})) AS OK
            FROM RAW_C),
        d AS (
            SELECT *, OK AND row_number() OVER (PARTITION BY CUSTOMER_ID, OK ORDER BY LINE_NO) = 1
                   AS KEEP
            FROM v)
        SELECT CUSTOMER_ID, CAST(SIGNUP AS DATE) AS SIGNUP_DATE,
               COALESCE(upper(COUNTRY), '{contract.UNKNOWN}') AS COUNTRY,
               COALESCE(lower(CHANNEL), '{contract.UNKNOWN}') AS CHANNEL,
               CAST(BY_NUM AS BIGINT) AS BIRTH_YEAR, LINE_NO
        FROM d WHERE KEEP
        """
    )
    rejected["customers"] = _count(con, "RAW_C") - _count(con, "CUSTOMERS")

    items = "STRUCT(product VARCHAR, quantity VARCHAR, unit_price VARCHAR)[]"
    con.execute(
        f"""
        CREATE OR REPLACE TABLE RAW_O AS
        SELECT row_number() OVER () AS LINE_NO, *
        FROM read_json({_lit(str(data_dir / params.orders_file))}, format = 'newline_delimited',
                       columns = {{order_id: 'VARCHAR', customer_id: 'VARCHAR', ts: 'VARCHAR',
                                  coupon: 'VARCHAR', items: '{items}',
                                  shipping: 'STRUCT(method VARCHAR, cost VARCHAR)'}})
        """
    )
    guests = ", ".join(_lit(g) for g in (params.guest_ids or contract.DEFAULT_GUEST_IDS))
    q, price, cost = _num("QTY_TEXT"), _num("PRICE_TEXT"), _num("COST_TEXT")
    con.execute(
        f"""
        CREATE OR REPLACE TABLE LINES_ALL AS
        WITH o AS (
            SELECT LINE_NO, {_text("order_id")} AS ORDER_ID, {_text("customer_id")} AS CUSTOMER_ID,
                   TRY_CAST({_text("ts")} AS TIMESTAMP) AS TS, {_text("coupon")} AS COUPON,
                   {_text("shipping.method")} AS SHIP_METHOD,
                   {_text("shipping.cost")} AS COST_TEXT, items
            FROM RAW_O),
        h AS (
            SELECT *, ORDER_ID IS NOT NULL AND {_ts_ok("TS")} AND len(items) > 0
                      AND len(items) <= {contract.MAX_ITEMS} AS HEAD_OK
            FROM o),
        l AS (
            SELECT h.* EXCLUDE (items), 0 AS ITEM_NO, NULL::VARCHAR AS PRODUCT_TEXT,
                   NULL::VARCHAR AS QTY_TEXT, NULL::VARCHAR AS PRICE_TEXT
            FROM h WHERE NOT HEAD_OK
            UNION ALL
            SELECT h.* EXCLUDE (items), it.ITEM_NO, it.PRODUCT_TEXT, it.QTY_TEXT, it.PRICE_TEXT
            FROM h, LATERAL (
                SELECT generate_subscripts(h.items, 1) - 1 AS ITEM_NO,
                       {_text("unnest(h.items).product")} AS PRODUCT_TEXT,
                       {_text("unnest(h.items).quantity")} AS QTY_TEXT,
                       {_text("unnest(h.items).unit_price")} AS PRICE_TEXT) AS it
            WHERE HEAD_OK)
        SELECT LINE_NO, ITEM_NO, ORDER_ID, CUSTOMER_ID, TS, COUPON, SHIP_METHOD,
               {cost} AS SHIP_COST, lower(PRODUCT_TEXT) AS PRODUCT_NAME, {q} AS Q,
               {price} AS UNIT_PRICE,
               HEAD_OK AND PRODUCT_TEXT IS NOT NULL
               AND {q} = floor({q}) AND {q} <> 0 AND abs({q}) <= {contract.MAX_QUANTITY}
               AND {price} BETWEEN 0 AND {contract.MAX_AMOUNT}
               AND (COST_TEXT IS NULL OR {cost} BETWEEN 0 AND {contract.MAX_AMOUNT}) AS OK,
               CUSTOMER_ID IS NULL OR lower(CUSTOMER_ID) IN ({guests}) AS GUEST
        FROM l
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TABLE LINES_KEPT AS
        WITH v AS (
            SELECT *, min(LINE_NO) OVER (PARTITION BY ORDER_ID) AS FIRST_LINE
            FROM LINES_ALL WHERE OK AND NOT GUEST)
        SELECT v.* FROM v SEMI JOIN CUSTOMERS c ON v.CUSTOMER_ID = c.CUSTOMER_ID
        WHERE LINE_NO = FIRST_LINE
        """
    )
    excluded = _count(con, "LINES_ALL", "OK AND GUEST")  # guest orders: kept out, not errors
    rejected["orders"] = _count(con, "LINES_ALL") - excluded - _count(con, "LINES_KEPT")
    _product_types(con, params.max_product_types)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE ORDER_LINES AS
        SELECT l.ORDER_ID, l.CUSTOMER_ID, l.TS, l.COUPON, l.SHIP_METHOD, l.SHIP_COST,
               COALESCE(p.PRODUCT, '{OTHER}') AS PRODUCT, l.PRODUCT_NAME,
               CAST(l.Q AS BIGINT) AS QUANTITY, l.UNIT_PRICE, l.Q < 0 AS IS_RETURN,
               l.LINE_NO, l.ITEM_NO
        FROM LINES_KEPT l LEFT JOIN PRODUCT_TYPES p ON p.NAME = l.PRODUCT_NAME
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TABLE ORDERS AS
        SELECT ORDER_ID, CUSTOMER_ID, TS, max(COUPON) AS COUPON, max(SHIP_COST) AS SHIP_COST,
               count(*) AS N_LINES, sum(QUANTITY * UNIT_PRICE) AS ORDER_TOTAL,
               -sum(CASE WHEN IS_RETURN THEN QUANTITY * UNIT_PRICE ELSE 0.0 END) AS RETURN_TOTAL,
               bool_and(IS_RETURN) AS IS_RETURN
        FROM ORDER_LINES GROUP BY ORDER_ID, CUSTOMER_ID, TS
        """
    )

    r_lo, r_hi = contract.RATINGS
    con.execute(
        f"""
        CREATE OR REPLACE TABLE RAW_R AS
        SELECT row_number() OVER () AS LINE_NO, {_text("customer_id")} AS CUSTOMER_ID,
               {_text("ts")} AS TS_TEXT, {_text("rating")} AS RATING_TEXT,
               {_text("text")} AS TEXT
        FROM read_json({_lit(str(data_dir / params.reviews_file))}, format = 'newline_delimited',
                       columns = {{customer_id: 'VARCHAR', ts: 'VARCHAR', rating: 'VARCHAR',
                                  text: 'VARCHAR'}})
        """
    )
    rating = _num("RATING_TEXT")
    con.execute(
        f"""
        CREATE OR REPLACE TABLE REVIEWS AS
        WITH v AS (
            SELECT *, TRY_CAST(TS_TEXT AS TIMESTAMP) AS TS, {rating} AS RATING_NUM
            FROM RAW_R),
        c AS (
            SELECT *, CUSTOMER_ID IS NOT NULL AND {_ts_ok("TS")}
                   AND (RATING_TEXT IS NULL OR (RATING_NUM = floor(RATING_NUM)
                        AND RATING_NUM BETWEEN {r_lo} AND {r_hi}))
                   AND (TEXT IS NOT NULL OR RATING_TEXT IS NOT NULL) AS OK
            FROM v),
        d AS (
            SELECT *, row_number() OVER (PARTITION BY CUSTOMER_ID, TS_TEXT, RATING_TEXT, TEXT
                                         ORDER BY LINE_NO) = 1 AS FIRST
            FROM c WHERE OK)
        SELECT d.CUSTOMER_ID, d.TS, CAST(d.RATING_NUM AS BIGINT) AS RATING, d.TEXT, d.LINE_NO,
               'review' AS KIND
        FROM d SEMI JOIN CUSTOMERS k ON d.CUSTOMER_ID = k.CUSTOMER_ID
        WHERE FIRST
        """
    )
    rejected["reviews"] = _count(con, "RAW_R") - _count(con, "REVIEWS")
    return rejected


def _count(con: duckdb.DuckDBPyConnection, table: str, where: str = "TRUE") -> int:
    return int(con.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0])


def product_key(name: str) -> str:
    """A product name as an identifier suffix (ASCII names: lower case, ``_`` between words)."""
    text = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "product"
    if text[0].isdigit():
        text = "p_" + text
    return text[:MAX_KEY].rstrip("_")


def _product_types(con: duckdb.DuckDBPyConnection, max_types: int) -> None:
    """PRODUCT_TYPES: the ``max_types`` most frequent names (by lines) keep a key; the rest
    ``other``. Only the top names come to Python (for the keys); the counts stay in SQL."""
    per = "SELECT PRODUCT_NAME AS NAME, count(*) AS LINES FROM LINES_KEPT GROUP BY 1"
    n = int(con.execute(f"SELECT count(*) FROM ({per})").fetchone()[0])
    top = con.execute(f"{per} ORDER BY LINES DESC, NAME LIMIT {int(max_types)}").fetchall()
    taken = {OTHER} if n > max_types else set()
    rows = []
    for name, _ in top:
        base = key = product_key(name)
        k = 1
        while key in taken:
            k += 1
            key = f"{base[: MAX_KEY - len(str(k)) - 1]}_{k}"
        taken.add(key)
        rows.append((key, name))
    if n > max_types:
        rows.append((OTHER, None))
    frame = pd.DataFrame(rows, columns=["PRODUCT", "NAME"])  # noqa: F841 (read by DuckDB)
    con.execute("CREATE OR REPLACE TABLE PRODUCT_TYPES AS SELECT * FROM frame")


def column_name(prefix: str, product: str) -> str:
    """``QTY_NEXT_CHOCOLATE_CHIP`` (keys are identifier-safe already)."""
    return f"{prefix}_{product}".upper()


def _cuts_sql(params) -> tuple[str, list[dt.date]]:
    cutoffs = params.cutoffs()
    roles = {c: "train" for c in cutoffs[:-1]} | {cutoffs[-1]: "holdout", params.run_date: "score"}
    h = dt.timedelta(days=params.horizon_days)
    rows = [
        f"(DATE '{c}', '{role}', TIMESTAMP '{c}', TIMESTAMP '{c - h}', TIMESTAMP '{c - 2 * h}', "
        f"TIMESTAMP '{c + h}')"
        for c, role in sorted(roles.items())
    ]
    sql = (
        "CREATE OR REPLACE TABLE CUTS AS SELECT * FROM (VALUES "
        + ", ".join(rows)
        + ") AS t(CUTOFF, ROLE, T0, T_LAST, T_PREV, T_NEXT)"
    )
    return sql, sorted(roles)


def features(con: duckdb.DuckDBPyConnection, params) -> tuple[list[str], float]:
    """FEATURES (one row per customer and cut-off) as features.build defines it.

    Returns:
        The product types and the seconds spent in the BTYD fits (scipy, on the client).
    """
    cuts_sql, cutoffs = _cuts_sql(params)
    con.execute(cuts_sql)
    products = sorted(r[0] for r in con.execute("SELECT PRODUCT FROM PRODUCT_TYPES").fetchall())
    fit_s = _btyd_outputs(con, cutoffs, params.horizon_days, params.seed)
    past, buy = "o.TS < c.T0", "NOT o.IS_RETURN"

    def in_(lo: str, hi: str) -> str:
        return f"(o.TS >= c.{lo} AND o.TS < c.{hi})"

    prod_aggs = ",\n".join(
        f"sum(CASE WHEN o.PRODUCT = {_lit(p)} AND {past} THEN o.QUANTITY ELSE 0 END) AS "
        f"{column_name('QTY', p)}, "
        f"sum(CASE WHEN o.PRODUCT = {_lit(p)} AND {in_('T_LAST', 'T0')} THEN o.QUANTITY ELSE 0 "
        f"END) AS {column_name('QTY_LAST', p)}, "
        f"sum(CASE WHEN o.PRODUCT = {_lit(p)} AND {in_('T0', 'T_NEXT')} THEN o.QUANTITY ELSE 0 "
        f"END) AS {column_name('QTY_NEXT', p)}"
        for p in products
    )
    n = "COALESCE(oa.N_ORDERS, 0)"
    spend = "COALESCE(oa.SPEND, 0)"
    tenure = "date_diff('day', k.SIGNUP_DATE, k.CUTOFF)"
    recency = f"COALESCE(date_diff('day', oa.LAST_TS, k.CUTOFF), {tenure})"
    mean_gap = f"CASE WHEN {n} > 1 THEN ga.MEAN_GAP_DAYS END"
    nb = "COALESCE(ba.N_BUY_DAYS, 0)"
    age = "date_diff('day', ba.FIRST_BUY, k.CUTOFF)"
    total_qty = "COALESCE(pa.QTY_TOTAL, 0)"
    score = "k.ROLE = 'score'"
    exprs = {
        "CUSTOMER_ID": "k.CUSTOMER_ID",
        "CUTOFF": "k.CUTOFF",
        "CHANNEL": "COALESCE(k.CHANNEL, 'unknown')",
        "COUNTRY": "COALESCE(k.COUNTRY, 'unknown')",
        "TENURE_DAYS": tenure,
        "AGE": "year(k.CUTOFF) - k.BIRTH_YEAR",
        "HAS_ORDERED": f"CASE WHEN {n} > 0 THEN 1 ELSE 0 END",
        "RECENCY_DAYS": recency,
        "DAYS_SINCE_FIRST_ORDER": "date_diff('day', oa.FIRST_TS, k.CUTOFF)",
        "N_ORDERS": n,
        "SPEND": spend,
        "AVG_ORDER_VALUE": f"CASE WHEN {n} > 0 THEN {spend} / {n} ELSE 0.0 END",
        "MAX_ORDER_VALUE": "COALESCE(oa.MAX_ORDER_VALUE, 0)",
        "ORDERS_PER_30D": f"{n} * 30.0 / {tenure}",
        "SPEND_PER_30D": f"{spend} * 30.0 / {tenure}",
        "MEAN_GAP_DAYS": mean_gap,
        "STD_GAP_DAYS": f"CASE WHEN {n} > 2 THEN ga.STD_GAP_DAYS END",
        "MAX_GAP_DAYS": f"CASE WHEN {n} > 1 THEN ga.MAX_GAP_DAYS END",
        "RECENCY_OVER_GAP": f"CASE WHEN ({mean_gap}) > 0 THEN {recency} / ({mean_gap}) END",
        **{c: f"COALESCE(oa.{c}, 0)" for c in ("N_ORDERS_LAST", "SPEND_LAST")},
        **{c: f"COALESCE(oa.{c}, 0)" for c in ("N_ORDERS_PREV", "SPEND_PREV")},
        "ORDERS_TREND": "COALESCE(oa.N_ORDERS_LAST, 0) - COALESCE(oa.N_ORDERS_PREV, 0)",
        "SPEND_TREND": "COALESCE(oa.SPEND_LAST, 0) - COALESCE(oa.SPEND_PREV, 0)",
        "N_COUPON_ORDERS": "COALESCE(oa.N_COUPON_ORDERS, 0)",
        "COUPON_SHARE": f"CASE WHEN {n} > 0 THEN COALESCE(oa.N_COUPON_ORDERS, 0)::DOUBLE / {n} "
        "ELSE 0.0 END",
        "N_REVIEWS": "COALESCE(ra.N_REVIEWS, 0)",
        "N_CALLS": "COALESCE(ra.N_CALLS, 0)",
        "AVG_RATING": "ra.AVG_RATING",
        "BTYD_X": f"CASE WHEN {nb} > 0 THEN {nb} - 1 END",
        "BTYD_TX": f"CASE WHEN {nb} > 0 THEN date_diff('day', ba.FIRST_BUY, ba.LAST_BUY) END",
        "BTYD_T": f"CASE WHEN {nb} > 0 THEN {age} END",
        "BTYD_VALUE": f"CASE WHEN {nb} > 1 THEN ba.REPEAT_NET::DOUBLE / ({nb} - 1) END",
        "RECENCY_OVER_AGE": f"CASE WHEN {nb} > 0 THEN "
        f"date_diff('day', ba.LAST_BUY, k.CUTOFF)::DOUBLE / {age} END",
        "PURCHASE_DAYS_PER_30D": f"CASE WHEN {nb} > 0 THEN {nb}::DOUBLE * 30.0 / {age} END",
        **{c: f"bo.{c}" for c in btyd.OUTPUTS},
    }
    for p in products:
        q = column_name("QTY", p)
        exprs[q] = f"COALESCE(pa.{q}, 0)"
        exprs[column_name("QTY_LAST", p)] = f"COALESCE(pa.{column_name('QTY_LAST', p)}, 0)"
        exprs[column_name("SHARE", p)] = (
            f"CASE WHEN {total_qty} > 0 THEN COALESCE(pa.{q}, 0)::DOUBLE / {total_qty} ELSE 0.0 END"
        )
    for label in ["SPEND_NEXT", *(column_name("QTY_NEXT", p) for p in products)]:
        src = f"oa.{label}" if label == "SPEND_NEXT" else f"pa.{label}"
        exprs[label] = f"CASE WHEN {score} THEN NULL::DOUBLE ELSE COALESCE({src}, 0) END"
    exprs["ROLE"] = "k.ROLE"
    fractional = set(FRACTIONAL) | {column_name("SHARE", p) for p in products}
    select = ",\n".join(
        f"round({e}, {DECIMALS}) AS {k}" if k in fractional else f"{e} AS {k}"
        for k, e in exprs.items()
    )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE FEATURES AS
        WITH k AS (
            SELECT cu.*, c.CUTOFF, c.ROLE FROM CUSTOMERS cu JOIN CUTS c
            ON cu.SIGNUP_DATE < c.CUTOFF),
        oa AS (
            SELECT o.CUSTOMER_ID, c.CUTOFF,
                sum(CASE WHEN {past} AND {buy} THEN 1 ELSE 0 END) AS N_ORDERS,
                sum(CASE WHEN {past} THEN o.ORDER_TOTAL ELSE 0 END) AS SPEND,
                max(CASE WHEN {past} AND {buy} THEN o.ORDER_TOTAL END) AS MAX_ORDER_VALUE,
                min(CASE WHEN {past} AND {buy} THEN o.TS END) AS FIRST_TS,
                max(CASE WHEN {past} AND {buy} THEN o.TS END) AS LAST_TS,
                sum(CASE WHEN {in_("T_LAST", "T0")} AND {buy} THEN 1 ELSE 0 END) AS N_ORDERS_LAST,
                sum(CASE WHEN {in_("T_LAST", "T0")} THEN o.ORDER_TOTAL ELSE 0 END) AS SPEND_LAST,
                sum(CASE WHEN {in_("T_PREV", "T_LAST")} AND {buy} THEN 1 ELSE 0 END)
                    AS N_ORDERS_PREV,
                sum(CASE WHEN {in_("T_PREV", "T_LAST")} THEN o.ORDER_TOTAL ELSE 0 END)
                    AS SPEND_PREV,
                sum(CASE WHEN {past} AND {buy} AND o.COUPON IS NOT NULL THEN 1 ELSE 0 END)
                    AS N_COUPON_ORDERS,
                sum(CASE WHEN {in_("T0", "T_NEXT")} THEN o.ORDER_TOTAL ELSE 0 END) AS SPEND_NEXT
            FROM ORDERS o JOIN CUTS c ON o.TS < c.T_NEXT GROUP BY 1, 2),
        gaps AS (
            SELECT CUSTOMER_ID, TS, date_diff('day', lag(TS) OVER (PARTITION BY CUSTOMER_ID
                                                 ORDER BY TS, ORDER_ID), TS) AS GAP
            FROM ORDERS WHERE NOT IS_RETURN),
        ga AS (
            SELECT g.CUSTOMER_ID, c.CUTOFF, avg(GAP) AS MEAN_GAP_DAYS,
                   stddev_samp(GAP) AS STD_GAP_DAYS, max(GAP) AS MAX_GAP_DAYS
            FROM gaps g JOIN CUTS c ON g.TS < c.T0 GROUP BY 1, 2),
        pa AS (
            SELECT o.CUSTOMER_ID, c.CUTOFF,
                sum(CASE WHEN {past} THEN o.QUANTITY ELSE 0 END) AS QTY_TOTAL,
                {prod_aggs}
            FROM ORDER_LINES o JOIN CUTS c ON o.TS < c.T_NEXT GROUP BY 1, 2),
        ra AS (
            SELECT r.CUSTOMER_ID, c.CUTOFF,
                sum(CASE WHEN r.KIND = 'review' THEN 1 ELSE 0 END) AS N_REVIEWS,
                sum(CASE WHEN r.KIND <> 'review' THEN 1 ELSE 0 END) AS N_CALLS,
                avg(CASE WHEN r.KIND = 'review' THEN r.RATING END) AS AVG_RATING
            FROM REVIEWS r JOIN CUTS c ON r.TS < c.T0 GROUP BY 1, 2)
        SELECT {select}
        FROM k
        LEFT JOIN oa ON oa.CUSTOMER_ID = k.CUSTOMER_ID AND oa.CUTOFF = k.CUTOFF
        LEFT JOIN ga ON ga.CUSTOMER_ID = k.CUSTOMER_ID AND ga.CUTOFF = k.CUTOFF
        LEFT JOIN pa ON pa.CUSTOMER_ID = k.CUSTOMER_ID AND pa.CUTOFF = k.CUTOFF
        LEFT JOIN ra ON ra.CUSTOMER_ID = k.CUSTOMER_ID AND ra.CUTOFF = k.CUTOFF
        LEFT JOIN BTYD_AGG ba ON ba.CUSTOMER_ID = k.CUSTOMER_ID AND ba.CUTOFF = k.CUTOFF
        LEFT JOIN BTYD_OUT bo ON bo.CUSTOMER_ID = k.CUSTOMER_ID AND bo.CUTOFF = k.CUTOFF
        """
    )
    return products, fit_s


def stable_hash_sql(key: str, day: str, seed: int) -> str:
    """portable.stable_hash(key, epoch_days(day), seed) in DuckDB SQL: the first
    :data:`HASH_DIGITS` hex digits of ``md5('key|days since 1970-01-01|seed')`` as an integer."""
    text = (
        f"md5({key} || '|' || CAST(date_diff('day', DATE '1970-01-01', {day}) AS VARCHAR) "
        f"|| '|{int(seed)}')"
    )
    return f"CAST(('0x' || left({text}, {HASH_DIGITS}))::UBIGINT AS BIGINT)"


def _btyd_outputs(
    con: duckdb.DuckDBPyConnection, cutoffs: list[dt.date], horizon: int, seed: int
) -> float:
    """BTYD_AGG (purchase days per customer and cut-off) and BTYD_OUT (the fitted outputs).

    As features.btyd_table: per cut-off the distinct (x, t_x, T) triples with their counts and
    (at most BTYD_VALUE_SAMPLE, hash-sampled) repeat buyers' (x, value) go to btyd's fit; the
    per-triple outputs come back as a small table and SQL joins them to every customer.
    Returns the seconds spent fitting and scoring the triples.
    """
    con.execute(
        """
        CREATE OR REPLACE TABLE BTYD_AGG AS
        WITH days AS (
            SELECT CUSTOMER_ID, CAST(TS AS DATE) AS DAY, sum(ORDER_TOTAL) AS DAY_NET,
                   max(CASE WHEN ORDER_TOTAL > 0 THEN 1 ELSE 0 END) AS DAY_BUY
            FROM ORDERS GROUP BY 1, 2),
        f AS (
            SELECT *, min(CASE WHEN DAY_BUY = 1 THEN DAY END) OVER (PARTITION BY CUSTOMER_ID)
                   AS FIRST_DAY
            FROM days)
        SELECT f.CUSTOMER_ID, c.CUTOFF,
               sum(CASE WHEN DAY_BUY = 1 THEN 1 ELSE 0 END) AS N_BUY_DAYS,
               min(CASE WHEN DAY_BUY = 1 THEN DAY END) AS FIRST_BUY,
               max(CASE WHEN DAY_BUY = 1 THEN DAY END) AS LAST_BUY,
               sum(CASE WHEN DAY_BUY = 1 AND DAY > FIRST_DAY THEN DAY_NET ELSE 0 END) AS REPEAT_NET
        FROM f JOIN CUTS c ON f.DAY < c.CUTOFF GROUP BY 1, 2
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE BTYD_SUMM AS
        SELECT CUSTOMER_ID, CUTOFF, N_BUY_DAYS - 1 AS X,
               date_diff('day', FIRST_BUY, LAST_BUY) AS TX,
               date_diff('day', FIRST_BUY, CUTOFF) AS T,
               round(CASE WHEN N_BUY_DAYS > 1 THEN REPEAT_NET::DOUBLE / (N_BUY_DAYS - 1) END,
                     {DECIMALS}) AS VALUE
        FROM BTYD_AGG WHERE N_BUY_DAYS > 0
        """
    )
    triples = con.execute("SELECT CUTOFF, X, TX, T, count(*) AS N FROM BTYD_SUMM GROUP BY ALL").df()
    stats = con.execute(
        "SELECT CUTOFF, sum(CASE WHEN VALUE > 0 THEN 1 ELSE 0 END) AS N, avg(VALUE) AS M "
        "FROM BTYD_SUMM WHERE X > 0 GROUP BY 1"
    ).fetchall()
    counts = {c: n or 0 for c, n, _ in stats}
    pooled = {c: m for c, _, m in stats}
    share = " ".join(
        f"WHEN CUTOFF = DATE '{c}' THEN CAST({min(1.0, BTYD_VALUE_SAMPLE / max(n, 1))!r} AS DOUBLE)"
        for c, n in counts.items()
    )
    values = con.execute(
        f"""
        WITH s AS (
            SELECT *, {stable_hash_sql("CUSTOMER_ID", "CUTOFF", seed)} AS BUCKET,
                   CASE {share or "WHEN FALSE THEN 0.0"} ELSE CAST(0.0 AS DOUBLE) END AS SHARE
            FROM BTYD_SUMM WHERE X > 0 AND VALUE > 0)
        SELECT CUTOFF, X, VALUE FROM s WHERE BUCKET % 1000000 < SHARE * 1000000
        """
    ).df()
    parts, rules = [], []
    started = time.perf_counter()
    for cutoff in cutoffs:
        tri = triples[triples["CUTOFF"].dt.date == cutoff].sort_values(["X", "TX", "T"])
        tri = tri.reset_index(drop=True)
        val = values[values["CUTOFF"].dt.date == cutoff].sort_values(["X", "VALUE"], kind="stable")
        fits = btyd.fit_cutoff_compressed(tri, val)
        scored = btyd.score_triples(tri, fits, horizon)
        parts.append(pd.concat([tri[["X", "TX", "T"]].assign(CUTOFF=cutoff), scored], axis=1))
        kind, arg = btyd.value_rule(fits, pooled.get(cutoff))
        p, q, g = arg if kind == "gamma_gamma" else (None, None, None)
        pool = arg if kind == "own_mean" else None
        rules.append((cutoff, kind, p, q, g, pool))
    fit_s = time.perf_counter() - started
    cols = ["X", "TX", "T", "CUTOFF", *btyd.TRIPLE_OUTPUTS]
    per_triple = pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)
    per_triple = per_triple.astype({c: "float64" for c in cols if c != "CUTOFF"})
    rule_frame = pd.DataFrame(rules, columns=["CUTOFF", "KIND", "P", "Q", "G", "POOLED"])
    rule_frame = rule_frame.astype({c: "float64" for c in ("P", "Q", "G", "POOLED")})
    con.register("per_triple", per_triple)
    con.register("rule_frame", rule_frame)
    value = (
        "CASE WHEN r.KIND = 'gamma_gamma' THEN (CASE WHEN r.P * (r.G + s.X * m.M) / "
        "(r.P * s.X + r.Q - 1.0) > 0 THEN r.P * (r.G + s.X * m.M) / (r.P * s.X + r.Q - 1.0) END) "
        "WHEN r.KIND = 'own_mean' THEN (CASE WHEN s.VALUE > 0 THEN s.VALUE::DOUBLE "
        "ELSE r.POOLED END) END"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE BTYD_OUT AS
        SELECT s.CUSTOMER_ID, s.CUTOFF, t.BTYD_P_ALIVE, t.BTYD_EXP_PURCHASES,
               {value} AS BTYD_EXP_VALUE, t.BTYD_EXP_PURCHASES * ({value}) AS BTYD_EXP_SPEND,
               t.BTYD_NEXT_DAYS
        FROM BTYD_SUMM s
        CROSS JOIN LATERAL (SELECT CASE WHEN s.VALUE > 0 THEN s.VALUE::DOUBLE ELSE 0.0 END AS M) m
        LEFT JOIN (SELECT * REPLACE (CAST(CUTOFF AS DATE) AS CUTOFF) FROM rule_frame) r
            ON r.CUTOFF = s.CUTOFF
        LEFT JOIN (SELECT * REPLACE (CAST(CUTOFF AS DATE) AS CUTOFF) FROM per_triple) t
            ON t.CUTOFF = s.CUTOFF AND t.X = s.X AND t.TX = s.TX AND t.T = s.T
        """
    )
    con.unregister("per_triple")
    con.unregister("rule_frame")
    return fit_s


# ------------------------------------------------------------------------------------- the check
#: limit table -> (warehouse table, key columns, compared columns (None = all the limit's))
CHECKS = {
    "CUSTOMERS": ("CLEAN_CUSTOMERS", ["CUSTOMER_ID"], None),
    "ORDER_LINES": ("CLEAN_ORDER_LINES", ["LINE_NO", "ITEM_NO"], None),
    "ORDERS": ("CLEAN_ORDERS", ["ORDER_ID"], None),
    "REVIEWS": ("CLEAN_REVIEWS", ["LINE_NO"], None),
    "PRODUCT_TYPES": ("PRODUCT_TYPES", ["PRODUCT"], ["NAME"]),
    "FEATURES": ("FEATURES", ["CUSTOMER_ID", "CUTOFF"], None),
}


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {table}").fetchall()}


def _schema(con: duckdb.DuckDBPyConnection) -> str:
    """The warehouse schema holding FEATURES (exactly one, else the check cannot tell which)."""
    found = [
        r[0]
        for r in con.execute(
            "SELECT schema_name FROM duckdb_tables() WHERE database_name = 'WH' "
            "AND table_name = 'FEATURES'"
        ).fetchall()
    ]
    if len(found) != 1:
        raise SystemExit(
            f"--check: expected one schema with FEATURES in the warehouse, got {found}"
        )
    return found[0]


def check(con: duckdb.DuckDBPyConnection, warehouse_db: Path) -> dict:
    """Compare the limit's tables with the warehouse's; return counts and every difference."""
    con.execute(f"ATTACH {_lit(str(warehouse_db))} AS WH (READ_ONLY)")
    try:
        schema = _schema(con)
        out: dict = {"tables": {}, "differences": [], "not_compared": []}
        for mine, (theirs, keys, cols) in CHECKS.items():
            other = f'WH."{schema}"."{theirs}"'
            where = " WHERE KIND = 'review'" if theirs == "CLEAN_REVIEWS" else ""
            rel = f"(SELECT * FROM {other}{where})"
            out["tables"][mine] = _compare(con, mine, rel, theirs, keys, cols, out)
        return out
    finally:
        con.execute("DETACH WH")


def _compare(con, mine: str, rel: str, theirs: str, keys, cols, out: dict) -> dict:
    """Row counts, keys on one side only and, per column, rows whose values differ."""
    a, b = _columns(con, mine), _columns(con, rel)
    if theirs == "FEATURES":
        skipped = [c for c in b if c in TEXT_MODEL_COLUMNS or c.startswith(TEXT_MODEL_PREFIX)]
        out["not_compared"] += [f"{theirs}.{c}" for c in skipped]
        b = {c: t for c, t in b.items() if c not in skipped}
        missing = sorted(set(a) ^ set(b))
        if missing:
            out["differences"].append(f"{theirs}: columns on one side only: {missing}")
    compared = [c for c in (cols or list(a)) if c in b and c not in keys]
    absent = [c for c in (cols or list(a)) if c not in b]
    if absent and theirs != "FEATURES":
        out["differences"].append(f"{theirs}: columns missing in the warehouse: {absent}")
    on = " AND ".join(f"x.{k} = y.{k}" for k in keys)
    both = f"x.{keys[0]} IS NOT NULL AND y.{keys[0]} IS NOT NULL"  # values of matched keys
    diffs = []
    for c in compared:
        numeric = any(t in (a[c] + b[c]) for t in ("DOUBLE", "FLOAT", "DECIMAL"))
        if numeric:
            differ = (
                f"(x.{c} IS NULL) <> (y.{c} IS NULL) OR abs(x.{c} - y.{c}) > "
                f"{ATOL} + {RTOL} * abs(y.{c})"
            )
        else:
            differ = f"x.{c} IS DISTINCT FROM y.{c}"
        diffs.append(f"count(*) FILTER (WHERE {both} AND ({differ})) AS {c}")
    row = con.execute(
        f"""
        SELECT count(*) FILTER (WHERE x.{keys[0]} IS NULL) AS ONLY_WAREHOUSE,
               count(*) FILTER (WHERE y.{keys[0]} IS NULL) AS ONLY_LIMIT,
               (SELECT count(*) FROM {mine}) AS LIMIT_ROWS,
               (SELECT count(*) FROM {rel}) AS WAREHOUSE_ROWS,
               {", ".join(diffs)}
        FROM {mine} x FULL OUTER JOIN {rel} y ON {on}
        """
    ).fetchone()
    names = ["ONLY_WAREHOUSE", "ONLY_LIMIT", "LIMIT_ROWS", "WAREHOUSE_ROWS", *compared]
    res = dict(zip(names, (int(v or 0) for v in row), strict=True))
    if res["LIMIT_ROWS"] != res["WAREHOUSE_ROWS"]:
        out["differences"].append(
            f"{theirs}: {res['LIMIT_ROWS']} rows in the limit, {res['WAREHOUSE_ROWS']} in the "
            "warehouse"
        )
    for k in ("ONLY_WAREHOUSE", "ONLY_LIMIT"):
        if res[k]:
            out["differences"].append(f"{theirs}: {res[k]} keys {k.lower().replace('_', ' ')}")
    bad = {c: res[c] for c in compared if res[c]}
    if bad:
        out["differences"].append(f"{theirs}: rows with a different value, per column: {bad}")
    return {k: res[k] for k in ("LIMIT_ROWS", "WAREHOUSE_ROWS")} | {"columns": len(compared)}


def connect(spill: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that may spill to ``spill``."""
    con = duckdb.connect()
    spill.mkdir(parents=True, exist_ok=True)
    con.execute(f"SET temp_directory = {_lit(str(spill))}")
    con.execute("SET preserve_insertion_order = true")  # LINE_NO = row_number() OVER ()
    con.execute("SET enable_progress_bar = false")
    return con


def run(data_dir: Path, out: Path, warehouse_db: Path | None = None) -> dict:
    """Ingest + features (timed), then the check against ``warehouse_db`` when given."""
    params = config.load(ROOT, data_dir=str(data_dir))
    if params.sample != 1.0 or params.returns != "net":
        raise SystemExit("the limit handles sample = 1.0 and returns = net only")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as spill:
        con = connect(Path(spill))
        t0 = time.perf_counter()
        rejected = ingest(con, data_dir, params)
        t1 = time.perf_counter()
        products, fit_s = features(con, params)
        t2 = time.perf_counter()
        result: dict = {
            "ingest_s": round(t1 - t0, 3),
            "features_s": round(t2 - t1, 3),
            "btyd_fit_s": round(fit_s, 3),  # of features_s: scipy fits on the client
            "total_s": round(t2 - t0, 3),
            "customers": _count(con, "CUSTOMERS"),
            "order_lines": _count(con, "ORDER_LINES"),
            "orders": _count(con, "ORDERS"),
            "reviews": _count(con, "REVIEWS"),
            "rejected": rejected,
            "products": products,
            "feature_rows": _count(con, "FEATURES"),
        }
        if warehouse_db is not None:
            result["check"] = check(con, warehouse_db)
        con.close()
    (out / "timings.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "limit")
    ap.add_argument(
        "--check",
        type=Path,
        default=None,
        metavar="WAREHOUSE_DB",
        help="the pipeline's warehouse file (ANALYTICS.db, server stopped) built from the same "
        "files: compare accepted rows and features, exit 1 on any difference",
    )
    a = ap.parse_args(argv)
    result = run(a.data_dir, a.out, a.check)
    print(json.dumps(result, default=str))
    diffs = result.get("check", {}).get("differences", [])
    for d in diffs:
        print(f"LIMIT CHECK FAILED: {d}", file=sys.stderr)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
