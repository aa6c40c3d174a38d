"""Plain words for the project's identifiers: models, features, tables, metrics; and the glossary.

A report never shows a raw identifier (``last_period``, ``CLEAN_ORDERS``,
``DAYS_SINCE_FIRST_ORDER``): it shows the words here. The glossary explains the few technical
words that remain.
"""

from __future__ import annotations

import re

#: model candidates (config.MODEL_NAMES) as people say them
MODELS = {
    "zero": "nobody buys",
    "last_period": "same as last period",
    "mean": "overall average",
    "segment_mean": "average per acquisition channel",
    "btyd": "buy-till-you-die model",
    "ridge": "linear model (ridge)",
    "random_forest": "random forest",
    "hist_gradient_boosting": "gradient boosting",
    "hybrid_boosting": "gradient boosting on the buy-till-you-die forecast",
}
RECALIBRATED = "_recalibrated"

METRICS = {
    "rmse": "typical error (RMSE)",
    "mae": "average error (MAE)",
    "r2": "share of variation explained (R²)",
    "top_decile_mae": "average error on the top 10% spenders",
    "qty_mae": "average error in units",
}

#: what the pipeline's tables hold, for the few places that must name one
TABLES = {
    "CLEAN_CUSTOMERS": "customers (checked)",
    "CLEAN_ORDERS": "orders (checked)",
    "CLEAN_ORDER_LINES": "order lines (checked)",
    "CLEAN_REVIEWS": "reviews and calls (checked)",
    "REJECTED_CUSTOMERS": "rejected customer rows",
    "REJECTED_ORDER_LINES": "rejected order lines",
    "REJECTED_REVIEWS": "rejected review and call rows",
    "EXCLUDED_ORDER_LINES": "excluded order lines (guest orders)",
    "RAW_CUSTOMERS": "customer records as read",
    "RAW_ORDERS": "order records as read",
    "RAW_REVIEWS": "review records as read",
    "RAW_CALLS": "call records as read",
    "PRODUCT_TYPES": "product types",
    "PREDICTIONS": "the forecast table",
    "TARGETS": "the target list",
    "FORECASTS": "the forecast totals",
    "FEATURES": "the customer profiles",
}

_FEATURES = {
    "CHANNEL": "acquisition channel",
    "COUNTRY": "country",
    "TENURE_DAYS": "days since sign-up",
    "AGE": "age",
    "HAS_ORDERED": "has ordered",
    "RECENCY_DAYS": "days since the last order",
    "DAYS_SINCE_FIRST_ORDER": "days since the first order",
    "N_ORDERS": "number of orders",
    "SPEND": "spend so far",
    "AVG_ORDER_VALUE": "average order value",
    "MAX_ORDER_VALUE": "largest order",
    "ORDERS_PER_30D": "orders per month",
    "SPEND_PER_30D": "spend per month",
    "MEAN_GAP_DAYS": "average days between orders",
    "STD_GAP_DAYS": "spread of the days between orders",
    "MAX_GAP_DAYS": "longest gap between orders",
    "RECENCY_OVER_GAP": "how overdue the next order is",
    "N_ORDERS_LAST": "orders in the last period",
    "SPEND_LAST": "spend in the last period",
    "N_ORDERS_PREV": "orders in the period before",
    "SPEND_PREV": "spend in the period before",
    "ORDERS_TREND": "change in orders",
    "SPEND_TREND": "change in spend",
    "N_COUPON_ORDERS": "orders with a coupon",
    "COUPON_SHARE": "share of orders with a coupon",
    "N_REVIEWS": "number of reviews",
    "N_CALLS": "number of support calls",
    "AVG_RATING": "average rating",
    "AVG_SENTIMENT": "average tone of the texts",
    "MIN_SENTIMENT": "most negative text",
    "N_NEGATIVE_TEXTS": "negative texts",
    "BTYD_X": "repeat purchase days",
    "BTYD_TX": "days from first to last purchase",
    "BTYD_T": "days since the first purchase",
    "BTYD_VALUE": "average value of repeat purchases",
    "RECENCY_OVER_AGE": "share of the customer's life since the last purchase",
    "PURCHASE_DAYS_PER_30D": "purchase days per month",
    "BTYD_P_ALIVE": "chance still active (buy-till-you-die)",
    "BTYD_EXP_PURCHASES": "expected purchases (buy-till-you-die)",
    "BTYD_EXP_VALUE": "expected value per purchase (buy-till-you-die)",
    "BTYD_EXP_SPEND": "expected spend (buy-till-you-die)",
    "BTYD_NEXT_DAYS": "days to the next purchase",
    "SPEND_NEXT": "spend in the next window",
    "PRED_SPEND": "predicted spend",
}
#: features that are amounts of money (shown with the currency)
MONEY_FEATURES = {
    "SPEND",
    "AVG_ORDER_VALUE",
    "MAX_ORDER_VALUE",
    "SPEND_PER_30D",
    "SPEND_LAST",
    "SPEND_PREV",
    "BTYD_VALUE",
    "BTYD_EXP_VALUE",
    "BTYD_EXP_SPEND",
    "SPEND_NEXT",
    "PRED_SPEND",
}
_PRODUCT_FEATURES = (
    ("QTY_LAST_", "units of {} in the last period"),
    ("QTY_NEXT_", "units of {} in the next window"),
    ("PRED_QTY_", "predicted units of {}"),
    ("QTY_", "units of {} bought"),
    ("SHARE_", "share of {} in the units bought"),
)


def model(name: str) -> str:
    """A candidate's name as words: ``last_period`` -> "same as last period" (recalibrated ones say
    so)."""
    base = name.removesuffix(RECALIBRATED)
    words = MODELS.get(base, base.replace("_", " "))
    return words + (", rescaled" if name.endswith(RECALIBRATED) else "")


def version(v: str) -> str:
    """A registry version as words: ``v2`` -> "version 2"."""
    m = re.fullmatch(r"v(\d+)", str(v))
    return f"version {m.group(1)}" if m else f"version {v}"


def group(value: str) -> str:
    """A segment value (channel, country) as words: ``paid_search`` -> "paid search"."""
    return str(value).replace("_", " ")


def metric(name: str) -> str:
    """A metric's name as words."""
    return METRICS.get(name, name.replace("_", " "))


def product(key: str) -> str:
    """A product-type key as words: ``chocolate_chip`` -> "chocolate chip"."""
    return str(key).replace("_", " ").strip()


def table(name: str) -> str:
    """A table's name as words (a prefix such as ``CLEAN_*`` is described)."""
    if name in TABLES:
        return TABLES[name]
    for prefix, words in (
        ("CLEAN_", "checked {}"),
        ("REJECTED_", "rejected {}"),
        ("RAW_", "{} as read"),
        ("EXCLUDED_", "excluded {}"),
    ):
        if name.startswith(prefix):
            return words.format(name[len(prefix) :].lower().replace("_", " "))
    return name.lower().replace("_", " ")


def is_money(name: str) -> bool:
    """Whether feature ``name`` is an amount of money."""
    return str(name).upper() in MONEY_FEATURES


def feature(name: str) -> str:
    """A feature column as words: ``DAYS_SINCE_FIRST_ORDER`` -> "days since the first order"."""
    key = str(name).upper()
    if key in _FEATURES:
        return _FEATURES[key]
    if m := re.fullmatch(r"TOPIC_SHARE_(\d+)", key):
        return f"share of texts on topic {int(m.group(1))}"
    for prefix, words in _PRODUCT_FEATURES:
        if key.startswith(prefix):
            return words.format(product(key[len(prefix) :].lower()))
    return key.lower().replace("_", " ")


#: the glossary: a technical word -> its meaning in one sentence
GLOSSARY = {
    "held-out window": "the most recent past period whose outcome is known; the models never saw "
    "it while learning, so how they do there shows how they will do on the next period.",
    "forecast window": "the period the forecast is about: from the run date, for the horizon "
    "(e.g. 60 days).",
    "90% range": "the range that, with the method used here, held the actual spend nine times out "
    "of ten when tried on the held-out window.",
    "decile": "one tenth of the customers, ranked by expected spend (decile 1 = the tenth "
    "expected to spend most).",
    "baseline": 'a simple rule such as "same as last period"; a model is worth using only if it '
    "beats them.",
    "typical error (RMSE)": "root mean squared error per customer: like an average error, but "
    "large misses count more.",
    "average error (MAE)": "mean absolute error per customer.",
    "share of variation explained (R²)": "how much of the differences between customers the "
    "forecast explains (1 = all, 0 = no better than the average).",
    "cross-validation": "judging a model on several past periods in turn, each time learning only "
    "from the periods before it.",
    "buy-till-you-die model": "a classic model of repeat purchases (BG/NBD with Gamma-Gamma): how "
    "often a customer buys, how much, and the chance they are still active.",
    "shift (PSI)": "population stability index: how much a distribution moved between two groups "
    "(below 0.1 stable, 0.1–0.25 moderate, from 0.25 large).",
    "lift": "how many times more the customers of a group spent than the average customer.",
    "calibration": "whether the forecast totals add up: predicted total divided by actual total "
    "(1 = right).",
    "probability of buying": "the share of past customers with a similar forecast who bought in "
    "the window.",
    "net spend": "purchases minus returns, shipping excluded.",
    "guest orders": "orders without a customer account (a placeholder id); counted in revenue, "
    "not as customers.",
    "rejected rows": "input rows that break the data contract; kept apart with their reason.",
    "sentiment": "how positive a review or call sounds, from 0 (negative) to 1 (positive), "
    "learned from the ratings.",
    "topic": "a group of texts that use similar words.",
    "cohort": "the customers who signed up in the same month.",
    "churn": "a customer who bought in the previous 90 days buys nothing in the next 90.",
    "feature": "one fact about a customer the models learn from (e.g. days since the last order).",
    "importance": "how much worse the forecast gets when one feature is scrambled.",
}


def glossary(terms: list[str]) -> str:
    """Markdown: the glossary section for ``terms`` (each must be in :data:`GLOSSARY`)."""
    lines = ["## Glossary"] + [f"- **{t[0].upper() + t[1:]}**: {GLOSSARY[t]}" for t in terms]
    return "\n".join(lines)
