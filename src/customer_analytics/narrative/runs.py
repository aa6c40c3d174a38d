"""Words of the run index and of the banner every report of a run shows first (light imports
only)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from customer_analytics.narrative import fmt, words


def run_date_note(
    last_day: dt.date | None, run_date: dt.date, gap: int | None, tolerance_days: int
) -> str:
    """Markdown warning when ``run_date`` lies more than ``tolerance_days`` after the last order (''
    if not)."""
    if last_day is None:
        return "**The checked data holds no order**: nothing here describes real purchases."
    if gap is None or gap <= tolerance_days:
        return ""
    return (
        f"**The run date, {fmt.day(run_date)}, is {gap} days after the last order in the data "
        f"({fmt.day(last_day)})**: every figure as of the run date treats those days as days "
        "without any purchase. Use an earlier run date (at most "
        f"{fmt.day(last_day + dt.timedelta(days=tolerance_days))}) or load newer data."
    )


def received(sources: list[Any]) -> list[str]:
    """What a run received, per source: "90,579 order lines (12 rejected)" (never added up across
    units)."""
    out = []
    for c in sources:
        if c.status != "loaded":
            continue
        text = f"{fmt.number(c.accepted)} {c.unit}"
        extra = [f"{fmt.number(c.rejected)} rejected"] if c.rejected else []
        if c.excluded:
            extra.append(f"{fmt.number(c.excluded)} excluded")
        out.append(text + (f" ({', '.join(extra)})" if extra else ""))
    return out


def trained(rec: Any, currency: str) -> str:
    """04's model in words: which, how good, and whether it became the default."""
    if not rec.version:
        return ""
    out = f"{words.model(rec.candidate)} ({words.version(rec.version)})"
    if rec.error is not None and rec.metric != "r2":
        out += f": {words.metric(rec.metric)} {fmt.money(rec.error, currency, 2)} per customer"
    elif rec.error is not None:
        out += f": {words.metric(rec.metric)} {fmt.number(rec.error, 2)}"
    if (
        rec.improvement is not None
        and rec.baseline
        and rec.candidate != rec.baseline
        and rec.improvement == rec.improvement
    ):
        better = "better" if rec.improvement >= 0 else "worse"
        out += f', {fmt.percent(abs(rec.improvement))} {better} than "{words.model(rec.baseline)}"'
    if rec.promoted:
        out += "; now the default"
    elif rec.promoted is False:
        out += (
            f"; not made the default ({words.version(rec.default_version)} stays)"
            if rec.default_version
            else "; not made the default"
        )
    return out


def scored_with(rec: Any) -> str:
    return (
        f"{words.model(rec.candidate or rec.model_name)} ({words.version(rec.model_version)})"
        if rec.model_version
        else ""
    )


def forecast(rec: Any, currency: str) -> str:
    """05's forecast in one line: "€10,314 (€8,739–€11,889, 90%) from 559 customers"."""
    if rec.expected_spend is None:
        return fmt.money(rec.predicted_spend, currency) + (
            f" from {fmt.count(rec.customers_scored, 'customer')}" if rec.customers_scored else ""
        )
    out = fmt.money(rec.expected_spend, currency)
    if rec.spend_low is not None and rec.level:
        out += (
            f" ({fmt.money_range(rec.spend_low, rec.spend_high, currency)}, "
            f"{fmt.percent(rec.level)})"
        )
    return out + f" from {fmt.count(rec.customers_scored, 'customer')}"


def check_text(check: dict[str, Any], currency: str, *, short: bool = False) -> str:
    """One earlier forecast against what happened: "2026-09-01: forecast €12,100 (€11,300–€12,900),
    actual €11,800 ✓" (✓ inside the range, ✗ outside; no mark when the run recorded no range)."""
    inside = check.get("inside")
    mark = " ✓" if inside is True else " ✗" if inside is False else ""
    rng = (
        f" ({fmt.money_range(check['low'], check['high'], currency)})"
        if check.get("low") is not None
        else ""
        if short
        else " (no range recorded)"
    )
    when = check["run_date"] if short else fmt.day(check["run_date"])
    return (
        f"{when}: forecast {fmt.money(check['forecast'], currency)}{rng}, actual "
        f"{fmt.money(check['actual'], currency)}{mark}"
    )


def changes_text(change: dict[str, Any] | None, currency: str) -> str:
    """Two or three sentences: this run against the previous one (from
    :meth:`forecast.Change.record`)."""
    if not change:
        return (
            "This is the first forecast in this warehouse: there is no earlier run to compare with."
        )
    c = change
    n0, n1, s0, s1 = c["customers_before"], c["customers_now"], c["total_before"], c["total_now"]
    move = (s1 - s0) / s0 if s0 else None
    what = (
        "expected spend"
        if c.get("basis", "expected") == "expected"
        else ("the model's own total (the earlier run recorded no corrected forecast)")
    )
    out = (
        f"Since the run of {fmt.day(c['previous'])}: {fmt.count(n1, 'customer')} scored "
        f"({fmt.count(n0)} then), {what} {fmt.money(s1, currency)} "
        f"({fmt.money(s0, currency)} then"
        + (f", {fmt.percent(move, 0, signed=True)})" if move is not None else ")")
        + "."
    )
    v0, v1 = c["version_before"], c["version_now"]
    out += (
        f" The forecast model is now {words.version(v1)} (was {words.version(v0)})."
        if v0 and v1 and v0 != v1
        else f" Same forecast model ({words.version(v1)})."
    )
    shifts = [s for s in c.get("shifts") or [] if abs(s[3] - s[2]) > 0.005 * max(abs(s0), 1.0)]
    if shifts:
        out += " Largest shifts: " + "; ".join(shift_text(s, currency) for s in shifts) + "."
    return out


def shift_text(s: list, currency: str) -> str:
    kind, group, before, now = s
    name = {
        "channel": f"{words.group(group)} channel",
        "country": f"customers in {group}",
        "product": words.product(group),
        "units": words.product(group),
    }.get(kind, str(group))
    if kind == "units":
        return f"{name} {fmt.units(before)} → {fmt.units(now)}"
    return f"{name} {fmt.money(before, currency)} → {fmt.money(now, currency)}"


def drift_flags(d: dict[str, Any] | None) -> list[str]:
    """Large shifts as short phrases (features in words)."""
    if not d:
        return []
    flags = [f"{words.feature(f)} (PSI {fmt.number(p, 2)})" for f, p in d.get("large") or []]
    if d.get("prediction_level") == "large":
        flags.append(
            f"expected spend per customer against the run of {fmt.day(d['previous'])} "
            f"(PSI {fmt.number(d['prediction_psi'], 2)})"
        )
    return flags
