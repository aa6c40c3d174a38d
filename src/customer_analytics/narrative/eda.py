"""What the 02 report says: the size of the data, revenue with guest orders, partial months,
retention, topics; absent sources as sentences, not empty charts."""

from __future__ import annotations

from typing import Any

import pandas as pd

from customer_analytics.config import Params
from customer_analytics.narrative import fmt, words

TERMS = ["net spend", "guest orders", "cohort", "churn", "topic"]


def heading(params: Params) -> str:
    return f"# The shop's data at a glance, {fmt.day(params.run_date)}: summary"


def summary(
    head: dict,
    params: Params,
    guests: dict | None = None,
    monthly: pd.DataFrame | None = None,
    suspects: pd.DataFrame | None = None,
) -> str:
    """The 02 summary: customers, orders, revenue (net, in the currency) over the period, guest
    orders, a partial last month, likely placeholder customers."""
    c = params.currency
    if not head.get("orders"):
        return (
            f"{heading(params)}\n\nThe checked data holds **no order**: there is nothing to "
            "explore yet."
        )
    out = (
        f"The checked data holds **{fmt.count(head['customers'], 'customer')}** and "
        f"**{fmt.count(head['orders'], 'order')}** from {fmt.day(head['first_order'])} to "
        f"{fmt.day(head['last_order'])}, for a net revenue of **{fmt.money(head['revenue'], c)}**"
    )
    if guests and guests.get("lines"):
        out += (
            f", plus {fmt.money(guests['revenue'], c)} from "
            f"{fmt.count(guests['orders'], 'guest order')} ({fmt.percent(guests['share'], 1)} of "
            "all revenue)"
        )
    reviews = head.get("reviews") or 0
    out += (
        f"; {fmt.count(reviews, 'review')} and support calls."
        if reviews
        else "; no review or support call."
    )
    note = partial_note(monthly)
    if note:
        out += " " + note
    if suspects is not None and len(suspects):
        out += (
            f" **{fmt.count(len(suspects), 'customer id')} hold an implausible share of the "
            "orders or the "
            'spend and are likely placeholders for guest orders** (see "Guest orders").'
        )
    return f"{heading(params)}\n\n{out}"


def partial_note(monthly: pd.DataFrame | None) -> str:
    """A sentence naming the months the data covers only in part ('' when none)."""
    if monthly is None or monthly.empty or "partial" not in monthly or not monthly["partial"].any():
        return ""
    parts = [
        f"{fmt.month(m)} ({fmt.count(r['days'], 'day')} of data)"
        for m, r in monthly[monthly["partial"]].iterrows()
    ]
    return (
        "Partial months, drawn hatched in the chart and not to be read as a drop: "
        f"{fmt.listing(parts)}."
    )


def headline_table(head: dict, params: Params, guests: dict | None = None) -> Any:
    rows = [
        ("customers", fmt.count(head.get("customers"))),
        ("orders", fmt.count(head.get("orders"))),
        ("net revenue", fmt.money(head.get("revenue"), params.currency)),
        ("first order", fmt.day(head.get("first_order"))),
        ("last order", fmt.day(head.get("last_order"))),
        ("reviews and support calls", fmt.count(head.get("reviews"))),
    ]
    if guests and guests.get("lines"):
        rows.insert(
            3,
            (
                "guest orders' revenue (not in the customers' revenue)",
                fmt.money(guests["revenue"], params.currency),
            ),
        )
    return fmt.table(pd.DataFrame(rows, columns=["", "value"]))


def monthly_title(params: Params) -> str:
    return "Orders and net revenue per month"


def revenue_label(params: Params) -> str:
    return f"net revenue ({fmt.symbol(params.currency).strip()})"


def order_values_title(width: float, cap: float, params: Params) -> str:
    return (
        f"Order value of purchases ({fmt.money(width, params.currency, 0 if width >= 1 else 2)} "
        f"bins; last bar: {fmt.money(cap, params.currency)} and more, the top 1%)"
    )


def value_bins(counts: pd.Series, width: float, cap: float, params: Params) -> pd.Series:
    """The histogram's bins labelled with the currency: "€5–€10", the last "≥ €150"."""
    d = 0 if float(width).is_integer() else 2
    labels = [
        f"≥ {fmt.money(b, params.currency, d)}"
        if b >= cap
        else f"{fmt.money(b, params.currency, d)}–{fmt.money(b + width, params.currency, d)}"
        for b in counts.index
    ]
    return pd.Series(counts.to_numpy(), index=labels, name="orders")


def per_customer_bins(counts: pd.Series, cap: int) -> pd.Series:
    labels = [f"{int(n)}+" if n >= cap else str(int(n)) for n in counts.index]
    return pd.Series(counts.to_numpy(), index=labels, name="customers")


def product_mix(mix: pd.DataFrame) -> pd.Series:
    """Revenue per product type, product types as words."""
    return pd.Series(
        mix["revenue"].to_numpy(), index=[words.product(p) for p in mix.index], name="revenue"
    )


def segment_counts(counts: pd.Series) -> pd.Series:
    return pd.Series(
        counts.to_numpy(), index=[words.group(v) for v in counts.index], name=counts.name
    )


def no_reviews(params: Params) -> str:
    return (
        "**No reviews in this run's data** (no reviews file, or it held no row): there are no "
        "ratings to show, and the customer profiles carry no review or sentiment information."
    )


def no_texts() -> str:
    return "**No review or call texts** in this run's data: there are no topics to show."


def missing_table(frame: pd.DataFrame) -> Any:
    """Share of missing values per table and column, in words."""
    if frame.empty:
        return None
    out = frame.reset_index()
    out = pd.DataFrame(
        {
            "data": [words.table(t) for t in out["table"]],
            "field": [str(c).lower().replace("_", " ") for c in out["column"]],
            "missing": out["missing_share"].to_numpy(),
        }
    )
    return fmt.table(out, percent_cols=["missing"], decimals={"missing": 1})


def retention_summary(
    retention: pd.DataFrame, churn: pd.DataFrame, repeat: pd.DataFrame, churn_days: int = 90
) -> str:
    """The definitions and the headline retention, churn and repeat-purchase figures."""
    m1 = retention[1].mean() if 1 in retention.columns else None
    m3 = retention[3].mean() if 3 in retention.columns else None
    churn_text = (
        f"{fmt.percent(churn['churn rate'].iloc[-1])} in the last fully observed month "
        f"({fmt.month(churn.index[-1])}), {fmt.percent(churn['churn rate'].mean())} on average"
        if len(churn)
        else "not observable yet"
    )
    rate = repeat.loc["all", "repeat-purchase rate"] if "all" in repeat.index else None
    return (
        "A sign-up cohort's **retention** N months later is the share of its customers who "
        f"bought in that month: on average {fmt.percent(m1)} one month and {fmt.percent(m3)} "
        f"three months after signing up. A customer who bought in the {churn_days} days before a "
        f"month starts **churns** that month when they buy nothing in the next {churn_days} days: "
        f"{churn_text}. **Repeat purchase:** {fmt.percent(rate)} of the customers who bought once "
        "bought again."
    )


def repeat_table(repeat: pd.DataFrame) -> Any:
    return fmt.table(
        repeat,
        percent_cols=["repeat-purchase rate"],
        decimals={"repeat-purchase rate": 1},
        count_cols=["customers", "buyers", "repeat buyers"],
    )


def revenue_heatmap_title(params: Params) -> str:
    return (
        "Cumulative net revenue per customer by sign-up cohort "
        f"({fmt.symbol(params.currency).strip()})"
    )


def topics_summary(model: Any, table: pd.DataFrame | None, recent_days: int = 90) -> str:
    """A sentence on the topics (or why there are none)."""
    if not model.available or table is None:
        return f"**No text topics** in this run: {model.reason}."
    top = table.sort_values("share", ascending=False).iloc[0]
    rising = table.sort_values("trend (pp)", ascending=False).iloc[0]
    return (
        f"The {fmt.count(int(table['texts'].sum()))} review and call texts fall into "
        f"**{model.n_topics} topics**; the largest is *{top['label']}* "
        f"({fmt.percent(top['share'])} of the texts), and the one growing most over the last "
        f"{recent_days} days is *{rising['label']}* ({fmt.number(rising['trend (pp)'], 1)} "
        "percentage points)."
    )


def topics_table(table: pd.DataFrame) -> Any:
    return fmt.table(
        table,
        percent_cols=["share"],
        decimals={"share": 1, "mean rating": 2, "trend (pp)": 1},
        count_cols=["texts"],
    )


def guests_note(guests: dict, suspects: pd.DataFrame, params: Params) -> str:
    """Guest orders (kept out of the customers) and likely placeholder customers, for the 02
    report."""
    from customer_analytics.narrative import ingest as ingest_words

    return (
        ingest_words.guest_note(guests, params.currency)
        + "\n\n"
        + ingest_words.suspects_note(suspects)
    )


def suspects_table(suspects: pd.DataFrame, params: Params) -> Any:
    if suspects.empty:
        return None
    return fmt.table(
        suspects,
        currency=params.currency,
        money_cols=["spend"],
        count_cols=["orders"],
        percent_cols=["order share", "spend share"],
        decimals={"order share": 1, "spend share": 1},
    )


def glossary() -> str:
    return words.glossary(TERMS)
