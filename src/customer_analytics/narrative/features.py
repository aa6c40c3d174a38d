"""What the 03 report says: the customer profiles the models learn from, the tone model, the
topics."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from customer_analytics.config import Params
from customer_analytics.narrative import fmt, words

TERMS = ["feature", "held-out window", "sentiment", "topic", "buy-till-you-die model", "net spend"]
ROLES = {"train": "learning", "holdout": "held-out check", "score": "forecast"}


def heading(params: Params) -> str:
    return f"# Customer profiles for the forecast, {fmt.day(params.run_date)}: summary"


def summary(
    table: pd.DataFrame, params: Params, n_features: int | None = None, text_model: Any = None
) -> str:
    """The 03 summary from :func:`customer_analytics.features.summary`: profiles per role, the
    held-out customers' behaviour, whether the texts' tone is in."""
    c = params.currency
    by_role = table.groupby("role")["customers"].sum()
    past = int((table["role"] == "train").sum())
    holdout = table[table["role"] == "holdout"].iloc[0]
    out = (
        f"Each customer is described by {fmt.count(n_features, 'fact')} known before a date "
        "(recency, frequency, spend, time between orders, products bought, reviews, …). The "
        f"models learn from **{fmt.count(by_role.get('train', 0), 'past profile')}** taken at "
        f"{fmt.count(past, 'date')}, each with what the customer then spent over the next "
        f"{params.horizon_days} days; **{fmt.count(by_role.get('holdout', 0), 'profile')}** as of "
        f"{fmt.day(holdout.name)} are kept apart to check them "
        f"({fmt.percent(holdout['share_buying_next'])} of those customers bought in the following "
        f"{params.horizon_days} days, {fmt.money(holdout['mean_spend_next'], c, 2)} each on "
        f"average); **{fmt.count(by_role.get('score', 0), 'customer')}** are profiled as of "
        f"{fmt.day(params.run_date)} for the forecast."
    )
    if text_model is not None:
        out += (
            " The tone of reviews and calls is included."
            if text_model.available
            else f" **The tone of reviews and calls is not included**: {text_model.reason}."
        )
    return f"{heading(params)}\n\n{out}"


def text_summary(model: Any, quality: pd.DataFrame | None) -> str:
    """A sentence on the tone (sentiment) model, or why there is none."""
    if not model.available:
        return f"**No tone (sentiment) features** in this run: {model.reason}."
    q = quality.iloc[:, 0] if quality is not None else None
    if q is None or not q["rated reviews tested"]:
        return (
            f"A tone model was trained on {fmt.count(model.n_train, 'rated review')} written "
            f"before {fmt.day(model.trained_before)}; no later rated review was available to test "
            "it."
        )
    return (
        f"The tone model (trained on {fmt.count(model.n_train, 'rated review')} written before "
        f"{fmt.day(model.trained_before)}) reads **{fmt.percent(q['accuracy'], 1)}** of the "
        f"{fmt.count(int(q['rated reviews tested']))} later rated reviews right (always guessing "
        f"the most common kind: {fmt.percent(q['majority-class accuracy'], 1)})."
    )


def text_quality(quality: pd.DataFrame) -> Any:
    q = quality.iloc[:, 0]
    rows = [
        ("rated reviews tested", fmt.count(q["rated reviews tested"])),
        ("read right", fmt.percent(q["accuracy"], 1)),
        ("always guessing the most common kind", fmt.percent(q["majority-class accuracy"], 1)),
        (
            "negative reviews among those flagged negative (precision)",
            fmt.percent(q["precision (negative)"], 1),
        ),
        ("negative reviews found (recall)", fmt.percent(q["recall (negative)"], 1)),
    ]
    return fmt.table(pd.DataFrame(rows, columns=["", quality.columns[0]]))


def top_words(frame: pd.DataFrame, n: int = 5) -> Any:
    """The few words that weigh most (the full list is in the executed notebook)."""
    return fmt.table(frame.head(n), decimals={"weight (+)": 2, "weight (-)": 2})


def by_kind(frame: pd.DataFrame) -> Any:
    out = frame.reset_index()
    out.columns = [str(c).replace("_", " ") for c in out.columns]
    return fmt.table(out, decimals={c: 3 for c in out.columns if "sentiment" in c})


def topics_line(model: Any) -> str:
    if model.available:
        return f"Topics: {', '.join(model.labels().values())}."
    return f"**No text topics** in this run: {model.reason}."


def cutoffs_table(frame: pd.DataFrame, params: Params) -> Any:
    h = dt.timedelta(days=params.horizon_days)
    rows = []
    for c, r in frame.iterrows():
        rows.append(
            {
                "as of": fmt.day(c),
                "used for": ROLES.get(r["role"], r["role"]),
                "facts from the data before": fmt.day(r["features from data before"]),
                "spend measured over": (
                    "the future (this run's forecast)"
                    if r["role"] == "score"
                    else fmt.period(c, c + h - dt.timedelta(days=1))
                ),
            }
        )
    return fmt.table(pd.DataFrame(rows))


def profiles_table(table: pd.DataFrame, params: Params) -> Any:
    out = pd.DataFrame(
        {
            "as of": [fmt.day(c) for c in table.index],
            "used for": [ROLES.get(r, r) for r in table["role"]],
            "customers": table["customers"].to_numpy(),
            "average spend in the next window": table["mean_spend_next"].to_numpy(),
            "share who bought": table["share_buying_next"].to_numpy(),
        }
    )
    return fmt.table(
        out,
        currency=params.currency,
        money_cols=["average spend in the next window"],
        decimals={"average spend in the next window": 2},
        percent_cols=["share who bought"],
        count_cols=["customers"],
        na="not known yet",
    )


def groups_table(frame: pd.DataFrame) -> Any:
    """The feature groups with a few examples, in words."""
    out = frame.copy()
    out["examples"] = [
        ", ".join(
            words.feature(e.strip().upper())
            for e in str(v).replace(" …", "").split(",")
            if e.strip()
        )
        + (" …" if "…" in str(v) else "")
        for v in frame["examples"]
    ]
    out.index = [str(i) for i in out.index]
    out.index.name = "group"
    return fmt.table(out.rename(columns={"columns": "facts"}), count_cols=["facts"])


def labels_series(table: pd.DataFrame) -> pd.Series:
    spend = table["mean_spend_next"].dropna()
    return pd.Series(spend.to_numpy(), index=[fmt.day(c) for c in spend.index], name="spend")


def glossary() -> str:
    return words.glossary(TERMS)
