"""What the 05 report (and the index) say about the forecast: plain sentences, money in the
currency."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from customer_analytics import forecast as fcm
from customer_analytics import headlines
from customer_analytics.config import Params
from customer_analytics.narrative import fmt, words
from customer_analytics.narrative.runs import changes_text, check_text, drift_flags

TERMS = [
    "forecast window",
    "90% range",
    "held-out window",
    "decile",
    "probability of buying",
    "net spend",
    "buy-till-you-die model",
    "shift (PSI)",
    "feature",
]


def who(params: Params, scoring_set: str | None = None) -> str:
    """The scored customers in words."""
    kind = scoring_set or params.scoring_set
    return {
        "new": f"new customers (signed up in the {params.new_customer_days} days before "
        f"{fmt.day(params.run_date)})",
        "active": f"active customers (ordered in the {params.horizon_days} days before "
        f"{fmt.day(params.run_date)})",
        "all": f"customers (everyone signed up before {fmt.day(params.run_date)})",
    }[kind]


def _level(level: float) -> str:
    return fmt.percent(level)


def heading(params: Params) -> str:
    return f"# Spend forecast, {fmt.day(params.run_date)}: summary"


def forecast_sentence(head: headlines.Scoring, params: Params) -> str:
    """The headline forecast: who, how much, between what, and how the range was tested."""
    c = head.currency or params.currency
    end = (
        head.window_end
        or (params.run_date + dt.timedelta(days=params.horizon_days - 1)).isoformat()
    )
    out = (
        f"**The {fmt.count(head.customers_scored)} {who(params)} are expected to spend "
        f"{fmt.money(head.expected_spend, c)} from {fmt.day(params.run_date)} to {fmt.day(end)}: "
        f"between {fmt.money(head.spend_low, c)} and {fmt.money(head.spend_high, c)} "
        f"({_level(head.level or params.forecast_level)}).**"
    )
    if head.coverage is not None:
        out += (
            " Tested on the latest period whose outcome is known, ranges made this way held the "
            f"actual spend of {fmt.percent(head.coverage)} of {fmt.count(fcm.SPLITS)} random "
            f"groups of {fmt.count(head.coverage_group, 'customer')} like these."
        )
    return out


def summary(head: headlines.Scoring, params: Params) -> str:
    """The 05 summary: heading, what changed, the forecast with its range, who to target, the track
    record, drift warnings."""
    c = head.currency or params.currency
    parts = [heading(params)]
    alert = drift_alert(head)
    if alert:
        parts.append(alert)
    if not head.customers_scored:
        parts.append(
            f"**No customer to score**: there are no {who(params)}. "
            + what_would_score(head.alternatives, params)
        )
        parts.append(changes_text(head.changes, c))
        return "\n\n".join(parts)
    parts.append(changes_text(head.changes, c))
    parts.append(forecast_sentence(head, params))
    target = []
    if head.top_decile_share is not None:
        target.append(
            "The tenth of them expected to spend most should bring "
            f"{fmt.percent(head.top_decile_share)} "
            'of it (see "Who to target")'
        )
    if head.buyers is not None:
        target.append(
            f"about {fmt.number(head.buyers)} of the {fmt.count(head.customers_scored)} are "
            "expected to buy at all"
        )
    if target:
        parts.append("; ".join(target) + ".")
    if head.track:
        parts.append("Last forecast that can be checked: " + check_text(head.track[0], c) + ".")
    else:
        parts.append("No earlier forecast can be checked yet (none whose window has ended).")
    if head.scoring_note:
        parts.append(
            f"Scoring in the warehouse was not possible ({head.scoring_note}), so the customers "
            f"were scored on this machine in {fmt.count(head.chunks, 'chunk')}."
        )
    return "\n\n".join(parts)


def drift_alert(head: headlines.Scoring) -> str:
    """A warning line when the scored customers or the forecast moved a lot ('' otherwise)."""
    flags = drift_flags(head.drift)
    if not flags:
        return ""
    return (
        f"> ⚠ **Large shifts since the model learned**: {'; '.join(flags)}. Read the drift "
        "section before acting on this forecast."
    )


def drift_note(d: dict[str, Any] | None) -> str:
    """Everything the drift checks found, in one or two sentences."""
    if not d:
        return "Drift was not checked."
    out = []
    if d.get("reason") == "no reference":
        out.append(
            "The scored customers could not be compared with the training customers (none of the "
            "same kind in the training window)."
        )
    elif d.get("reason") == "too few rows":
        out.append(
            f"Only {fmt.count(d['rows'], 'customer')} scored: too few to measure shifts reliably "
            "(at least 100 needed)."
        )
    else:
        largest = d.get("largest")
        out.append(
            "Against the customers the model learned from, "
            f"{fmt.count(len(d.get('large') or []))} of {fmt.count(d.get('features'))} features "
            f"shifted a lot and {fmt.count(d.get('moderate'))} moderately"
            + (
                f"; the largest shift is in {words.feature(largest[0])} (PSI "
                f"{fmt.number(largest[1], 2)})"
                if largest
                else ""
            )
            + "."
        )
    if d.get("previous"):
        lvl = d.get("prediction_level")
        out.append(
            f"Expected spend per customer against the run of {fmt.day(d['previous'])}: "
            + (
                f"{lvl} shift (PSI {fmt.number(d['prediction_psi'], 2)})."
                if d.get("prediction_psi") is not None
                else "not assessed (too few customers)."
            )
        )
    else:
        out.append("No earlier run to compare the forecast with.")
    return " ".join(out)


def what_would_score(alt: dict[str, Any] | None, params: Params) -> str:
    """The settings that would score someone (an empty scoring set)."""
    if not alt:
        return ""
    if not alt["all"]:
        return (
            f"Nobody had signed up before {fmt.day(params.run_date)}: no setting scores anyone on "
            "this date; choose a later run date."
        )
    options = []
    if params.scoring_set != "active" and alt["active"]:
        options.append(
            f"`scoring_set: active` would score {fmt.count(alt['active'])} (ordered in the last "
            f"{params.horizon_days} days)"
        )
    if params.scoring_set != "all":
        options.append(f"`scoring_set: all` would score {fmt.count(alt['all'])}")
    if params.scoring_set == "new" and alt["newest_days"] is not None:
        options.append(
            f"`new_customer_days: {alt['newest_days']}` would score the latest sign-ups (the "
            f"newest customer signed up {alt['newest_days']} days before "
            f"{fmt.day(params.run_date)})"
        )
    return ("Settings that would score someone: " + "; ".join(options) + ".") if options else ""


# --------------------------------------------------------------------------- sections
def model_used(mv: Any, params: Params) -> str:
    """Which model made the forecast, in words."""
    p, w, m = (
        mv.meta.get("params") or {},
        mv.meta.get("data_window") or {},
        mv.meta.get("metrics") or {},
    )
    err = m.get(params.primary_metric)
    name = (
        f'The forecast comes from the model "{words.model(str(p.get("candidate", "")))}" '
        f"({words.version(mv.version)}"
    )
    out = name + (f", chosen in the run of {fmt.day(w['run_date'])})" if w.get("run_date") else ")")
    if isinstance(err, int | float) and params.primary_metric != "r2":
        out += (
            f"; on its held-out window its {words.metric(params.primary_metric)} per customer was "
            f"{fmt.money(err, params.currency, 2)}"
        )
    return out + "."


def range_note(fc: fcm.Forecast, params: Params) -> str:
    """How the ranges were made and tested, and what they leave out."""
    cal, c = fc.calibration, params.currency
    cov = cal.coverage[list(cal.targets)[0]]
    pop = (
        "customers of the same kind (" + who(params).split(" (")[0] + ")"
        if cal.population == "scoring set"
        else "all customers (too few of the scored kind)"
    )
    out = (
        "Each customer's expected spend is the model's forecast corrected by how far off it was "
        f"for {pop} on the latest period whose outcome is known "
        f"({fmt.period(cal.window_start, cal.window_end)}, "
        f"{fmt.count(cal.customers, 'customer')}): there the model's total was "
        f"{fmt.percent(cal.model_total_ratio)} of the actual. Before that correction the model's "
        f"own total for this run is {fmt.money(fc.model_total, c)}."
    )
    out += (
        f" The {_level(fc.level)} ranges add up how much single customers vary around their "
        f"forecast. Tried on that period ({fmt.count(cov.splits)} times: a random group of "
        f"{fmt.count(cov.group, 'customer')} set aside, the correction learned from the others), "
        f"the range held the group's actual spend {fmt.percent(cov.share)} of the time."
    )
    out += (
        " The ranges do not cover a change of season or of the shop between that period and the "
        "next: the track record below shows how past forecasts did."
    )
    return out


def products_table(fc: fcm.Forecast, names: dict[str, str], currency: str) -> pd.DataFrame:
    """Per product type: expected units and spend with their ranges, expected buyers, measured
    coverage."""
    cov = fc.calibration.coverage
    rows = []
    for g in sorted(fc.by(fcm.PRODUCT), key=lambda g: -(g.spend.expected if g.spend else 0)):
        t, s = g.total, g.spend
        rows.append(
            {
                "product type": words.product(names.get(g.group, g.group)),
                "expected units": fmt.units(t.expected),
                f"{_level(fc.level)} range (units)": f"{fmt.number(t.low)}–{fmt.number(t.high)}",
                "expected spend": fmt.money(s.expected, currency) if s else fmt.MISSING,
                "spend range": fmt.money_range(s.low, s.high, currency) if s else fmt.MISSING,
                "customers likely to buy it": fmt.number(g.expected_buyers),
                "range held (tested)": fmt.percent(cov[fcm.qty_target(g.group)].share)
                if fcm.qty_target(g.group) in cov
                else fmt.MISSING,
            }
        )
    return pd.DataFrame(rows)


def groups_table(fc: fcm.Forecast, kind: str, currency: str) -> pd.DataFrame:
    """Per channel or country: customers, expected spend, range, per customer."""
    rows = []
    for g in sorted(fc.by(kind), key=lambda g: -g.total.expected):
        t = g.total
        rows.append(
            {
                kind: words.group(g.group),
                "customers": fmt.count(t.customers),
                "expected spend": fmt.money(t.expected, currency),
                f"{_level(fc.level)} range": fmt.money_range(t.low, t.high, currency),
                "per customer": fmt.money(
                    t.expected / t.customers if t.customers else None, currency, 2
                ),
            }
        )
    return pd.DataFrame(rows)


def deciles_table(fc: fcm.Forecast, currency: str) -> pd.DataFrame:
    """Customers by expected-spend decile: customers, expected spend (range), share and cumulative
    share."""
    total = fc.overall.expected
    rows, cum = [], 0.0
    for g in sorted(fc.by(fcm.DECILE), key=lambda g: int(g.group)):
        t = g.total
        cum += t.expected
        rows.append(
            {
                "decile": f"{int(g.group)}" + (" (highest)" if g.group == "1" else ""),
                "customers": fmt.count(t.customers),
                "expected spend": fmt.money(t.expected, currency),
                f"{_level(fc.level)} range": fmt.money_range(t.low, t.high, currency),
                "per customer": fmt.money(
                    t.expected / t.customers if t.customers else None, currency, 2
                ),
                "share of the total": fmt.percent(t.expected / total if total else None),
                "cumulative share": fmt.percent(cum / total if total else None),
            }
        )
    return pd.DataFrame(rows)


def top_decile_share(fc: fcm.Forecast) -> float | None:
    top = [g for g in fc.by(fcm.DECILE) if g.group == "1"]
    return top[0].total.expected / fc.overall.expected if top and fc.overall.expected else None


def targets_note(params: Params, rows: int) -> str:
    """Where the per-customer list is and how to export it (no personal data in the report)."""
    return (
        f"The list of the {fmt.count(rows, 'customer')} with their expected spend, units and "
        "probability of buying per product type is kept in the warehouse, not in this report. To "
        f"hand it to the CRM: `customer-analytics export-targets --run-date {params.run_date} "
        "--out targets.csv --top 100` (or `--product <type>` for one product type's best "
        "prospects); every export is logged."
    )


def track_table(checks: list[fcm.Check], currency: str) -> pd.DataFrame:
    rows = []
    for ch in checks:
        rows.append(
            {
                "forecast of": fmt.day(ch.run_date),
                "window": fmt.period(ch.run_date, ch.window_end),
                "customers": fmt.count(ch.customers),
                "forecast": fmt.money(ch.forecast, currency),
                "range": fmt.money_range(ch.low, ch.high, currency)
                if ch.low is not None
                else "not recorded",
                "actual": fmt.money(ch.actual, currency),
                "error": fmt.percent(
                    (ch.forecast - ch.actual) / ch.actual if ch.actual else None, 0, signed=True
                ),
                "inside the range": (
                    "yes ✓" if ch.inside is True else "no ✗" if ch.inside is False else "no range"
                ),
            }
        )
    return pd.DataFrame(rows)


def track_note(checks: list[fcm.Check], currency: str) -> str:
    if not checks:
        return (
            "No earlier forecast can be checked yet: a forecast is checked once its window has "
            "ended and the data covers it."
        )
    inside = [c for c in checks if c.inside is not None]
    out = (
        f"{fmt.count(len(checks), 'earlier forecast')} can be checked against what the same "
        "customers spent."
    )
    if inside:
        out += (
            f" {fmt.count(sum(c.inside for c in inside))} of {fmt.count(len(inside))} fell inside "
            "their range."
        )
    return out


def track_deciles(check: fcm.Check, currency: str) -> pd.DataFrame:
    d = check.deciles
    if d.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "decile": [str(int(i)) for i in d.index],
            "customers": [fmt.count(v) for v in d["CUSTOMERS"]],
            "forecast": [fmt.money(v, currency) for v in d["FORECAST"]],
            "actual": [fmt.money(v, currency) for v in d["ACTUAL"]],
        }
    )


def changes_table(change: fcm.Change | None, currency: str) -> pd.DataFrame:
    if change is None:
        return pd.DataFrame()
    total = "expected spend" if change.basis == "expected" else "the model's own total"
    rows = [
        ("customers scored", fmt.count(change.customers_before), fmt.count(change.customers_now)),
        (total, fmt.money(change.total_before, currency), fmt.money(change.total_now, currency)),
        (
            "forecast model",
            words.version(change.version_before) if change.version_before else fmt.MISSING,
            words.version(change.version_now) if change.version_now else fmt.MISSING,
        ),
    ]
    for s in change.shifts:
        kind, group, before, now = s
        label = {
            "channel": f"{words.group(group)} channel",
            "country": f"customers in {group}",
            "product": words.product(group),
            "units": f"units of {words.product(group)}",
        }.get(kind, group)
        f = (lambda v: fmt.units(v)) if kind == "units" else (lambda v: fmt.money(v, currency))
        rows.append((label, f(before), f(now)))
    return pd.DataFrame(rows, columns=["", f"run of {fmt.day(change.previous)}", "this run"])


def outlook_table(table: pd.DataFrame) -> pd.DataFrame:
    """The buy-till-you-die outlook with formatted values."""
    if table.empty:
        return table
    out = []
    for k, v in table.iloc[:, 0].items():
        shown = (
            fmt.percent(v)
            if k.startswith("mean probability")
            else fmt.number(v, 1 if isinstance(v, float) and not float(v).is_integer() else 0)
        )
        out.append({"": k, "value": shown})
    return pd.DataFrame(out)


def drift_table(table: pd.DataFrame | None, currency: str, top: int = 5) -> pd.DataFrame:
    """The few largest shifts of the drift table, in words, money in ``currency`` (the full table
    stays in the notebook)."""
    if table is None or table.empty or table["psi"].isna().all():
        return pd.DataFrame()
    shown = table[table["psi"].notna()].sort_values("psi", ascending=False).head(top)

    def mean(f: str, v: float) -> str:
        return fmt.money(v, currency, 2) if words.is_money(f) else fmt.number(v, 2)

    return pd.DataFrame(
        {
            "feature": [words.feature(f) for f in shown.index],
            "shift (PSI)": [fmt.number(v, 2) for v in shown["psi"]],
            "level": [str(v) for v in shown["level"]],
            "average, training customers": [mean(f, v) for f, v in shown["reference mean"].items()],
            "average, scored customers": [mean(f, v) for f, v in shown["current mean"].items()],
        }
    )


def spend_bands(bands: pd.DataFrame, currency: str) -> pd.Series:
    """Customers per band of expected spend, labelled with the currency (for the chart)."""
    labels = [
        f"{fmt.money(lo, currency)}–{fmt.money(hi, currency)}"
        if pd.notna(hi)
        else f"≥ {fmt.money(lo, currency)}"
        for lo, hi in zip(bands["low"], bands["high"], strict=True)
    ]
    return pd.Series(bands["customers"].to_numpy(), index=labels, name="customers")


def glossary() -> str:
    return words.glossary(TERMS)


def track_deciles_intro(check: fcm.Check) -> str:
    if check.deciles.empty:
        return (
            f"The forecast of {fmt.day(check.run_date)} has no per-decile record (it was made "
            "before the target list existed)."
        )
    return (
        f"Per decile, the forecast of {fmt.day(check.run_date)} against what each tenth of its "
        "customers actually spent (decile 1 = the tenth expected to spend most):"
    )
