"""What the 04 report says: how the models compare, which was chosen and why, whether it became the
default; every table with models as words and errors in the currency."""

from __future__ import annotations

from typing import Any

import pandas as pd

from customer_analytics import models as md
from customer_analytics.config import Params
from customer_analytics.narrative import fmt, words

TERMS = [
    "held-out window",
    "baseline",
    "typical error (RMSE)",
    "average error (MAE)",
    "share of variation explained (R²)",
    "cross-validation",
    "calibration",
    "buy-till-you-die model",
    "lift",
    "decile",
    "feature",
    "importance",
]
TIE_WORDS = {
    "cv_mae_at_total": "average error once every candidate's total is scaled to the actual total "
    "(so predicting less cannot win)",
    "cv_rmse": words.metric("rmse"),
    "mae": words.metric("mae"),
    "rmse": words.metric("rmse"),
}


def heading(params: Params) -> str:
    return f"# How good is the forecast? Models compared, {fmt.day(params.run_date)}: summary"


def _err(value: float, metric: str, currency: str, places: int = 2) -> str:
    return fmt.number(value, 3) if metric == "r2" else fmt.money(value, currency, places)


def calibration_rule(comparison: md.Comparison) -> str:
    """What the calibration rule did, in one sentence."""
    b = comparison.board
    refused = [n for n, s in b["calibration"].items() if str(s).startswith("refused")]
    recal = [n for n in b.index if n.endswith(md.RECALIBRATED)]
    out = (
        "a model whose total over the past periods is off by more than "
        f"{fmt.percent(comparison.tolerance)} is rescaled to the actual total or, if it predicts "
        "no spend at all, set aside"
    )
    if recal:
        out += "; rescaled: " + ", ".join(
            f'"{words.model(n.removesuffix(md.RECALIBRATED))}" '
            f"(×{b.loc[n, 'calibration'].split('×')[1]})"
            for n in recal
        )
    if refused:
        out += "; set aside: " + ", ".join(f'"{words.model(n)}"' for n in refused)
    if not recal and not refused:
        out += (
            "; every model was within it"
            if b["cv_ratio"].notna().any()
            else "; not checked (no past periods)"
        )
    return out


def rule(selection: md.Selection, comparison: md.Comparison) -> str:
    """The selection rule, from this run's numbers."""
    s = selection
    higher = s.metric in md.HIGHER_IS_BETTER
    where = (
        f"the average over {fmt.count(s.folds, 'past period')} (each judged after learning only "
        "from the periods before it)"
        if s.folds
        else "the held-out window (too few past periods to judge on)"
    )
    tie = TIE_WORDS[md.TIE_BREAK[s.metric] if s.folds else md.SECONDARY[s.metric]]
    return (
        f"First, {calibration_rule(comparison)}. Then the model with the "
        f"{'highest' if higher else 'lowest'} {words.metric(s.metric)} on {where} is chosen; "
        f"models within {fmt.percent(md.SELECTION_MARGIN)} of the best, or within the folds' own "
        f"disagreement about the difference, count as tied, and the tie goes to the lowest {tie}. "
        "The held-out window, which no model saw, then confirms the choice."
    )


def why(selection: md.Selection, comparison: md.Comparison, currency: str) -> str:
    """Why the chosen model was chosen: runner-up or tie, the buy-till-you-die bar, calibration,
    zero."""
    b, s = comparison.board, selection
    key = md._sort_key(b, s.metric)
    where = "past periods" if key.startswith("cv_") else "held-out window"
    ranked = b[b["eligible"]].sort_values(
        key, ascending=s.metric not in md.HIGHER_IS_BETTER, kind="stable"
    )
    ties = md.near_ties(comparison, s.metric)
    other = md.TIE_BREAK[s.metric] if key.startswith("cv_") else md.SECONDARY[s.metric]
    label = words.metric(s.metric)
    name = f'"{words.model(s.chosen)}"'
    parts = []
    if ranked.index[0] != s.chosen:
        best = ranked.index[0]
        parts.append(
            f'"{words.model(best)}" had the best {label} over the {where} '
            f"({_err(ranked[key].iloc[0], s.metric, currency)}), but {name} is tied with it "
            f"({_err(b.loc[s.chosen, key], s.metric, currency)}) and has a lower "
            f"{TIE_WORDS[other]} ({_err(b.loc[s.chosen, other], 'mae', currency)} against "
            f"{_err(b.loc[best, other], 'mae', currency)})."
        )
    elif len(ties) > 1:
        parts.append(
            f"Tied with it over the {where}: "
            + ", ".join(f'"{words.model(n)}"' for n in ties.index[1:])
            + f"; {name} has the lowest {TIE_WORDS[other]} of them "
            f"({_err(b.loc[s.chosen, other], 'mae', currency)})."
        )
    elif len(ranked) > 1:
        parts.append(
            f"Its {label} over the {where} is {_err(b.loc[s.chosen, key], s.metric, currency)}, "
            f"against {_err(ranked[key].iloc[1], s.metric, currency)} for the runner-up, "
            f'"{words.model(ranked.index[1])}".'
        )
    c = b.loc[s.chosen]
    parts.append(
        f"On the held-out window its total is {fmt.percent(c['ratio'])} of the actual total."
    )
    bt = [n for n in b.index if md.kind(n) == "btyd" and b.loc[n, "eligible"]]
    if bt and s.chosen not in bt:
        t = b.loc[bt[0]]
        both = all(c[m] <= t[m] for m in ("rmse", "mae"))
        parts.append(
            f"Against the buy-till-you-die model on the held-out window: {words.metric('rmse')} "
            f"{_err(c['rmse'], 'rmse', currency)} against {_err(t['rmse'], 'rmse', currency)}, "
            f"{words.metric('mae')} {_err(c['mae'], 'mae', currency)} against "
            f"{_err(t['mae'], 'mae', currency)} "
            f"({'at or below it on both' if both else 'not below it on both'})."
        )
    if "zero" in b.index:
        z = b.loc["zero"]
        lowest = b["mae"].idxmin() == "zero"
        parts.append(
            f"Predicting no spend for anyone has an {words.metric('mae')} of "
            f"{_err(z['mae'], 'mae', currency)}"
            + (
                " — the lowest of all: most customers spend nothing in a window, and the average "
                "error rewards predicting the typical (zero) customer; that is why it is never "
                "chosen"
                if lowest
                else ""
            )
            + "."
        )
    return " ".join(parts)


def chosen(selection: md.Selection, currency: str) -> str:
    """The chosen model and its gain over the best simple rule on the held-out window."""
    s = selection
    label = words.metric(s.metric)
    out = f"Chosen: **{words.model(s.chosen)}**"
    if not s.baseline:
        return out + " (no simple rule in the comparison)."
    if md.kind(s.chosen) == "baseline":
        return out + (
            f" — a simple rule: no model beat the simple rules on this data (held-out {label} "
            f"{_err(s.holdout_chosen, s.metric, currency)})."
        )
    lo, hi = s.interval
    better = "better" if s.improvement >= 0 else "worse"
    return out + (
        f". On the held-out window its {label} per customer, "
        f"{_err(s.holdout_chosen, s.metric, currency)}, is **{fmt.percent(abs(s.improvement))} "
        f"{better}** "
        f'than the best simple rule\'s ("{words.model(s.baseline)}", '
        f"{_err(s.holdout_baseline, s.metric, currency)}; 90% interval of the gain "
        f"{fmt.percent(lo)} to {fmt.percent(hi)})."
    )


def promotion(decision: Any, currency: str) -> str:
    """The promotion guard's decision in one sentence."""
    d = decision
    v, prev = words.version(d.version), words.version(d.previous) if d.previous else ""
    if d.code == "first":
        return f"It is stored as {v} and is now the default (there was none yet)."
    if d.code == "already":
        return f"{v[0].upper() + v[1:]} already is the default."
    if d.code == "unloadable":
        return (
            f"It is stored as {v} and is now the default: the previous default ({prev}) could not "
            "be loaded."
        )
    if d.code == "incompatible":
        return (
            f"It is stored as {v} and is now the default: the previous default ({prev}) cannot "
            "score this data (other features or product types)."
        )
    if d.code == "overlap":
        return (
            f"It is stored as {v} but not made the default: {prev} stays, because it learned from "
            "part of this held-out window and cannot be compared fairly on it."
        )
    new, old = _err(d.new_value, d.metric, currency), _err(d.previous_value, d.metric, currency)
    if d.code == "better":
        return (
            f"It is stored as {v} and is now the default: its {words.metric(d.metric)} on the "
            f"held-out window, {new}, beats {prev}'s {old} on the same window."
        )
    if d.code == "not_better":
        return (
            f"It is stored as {v} but not made the default: its {words.metric(d.metric)}, {new}, "
            f"does not beat {prev}'s {old} on the same window, so {prev} stays the default."
        )
    return f"It is stored as {v}; {'now the default' if d.promoted else 'not made the default'}."


def summary(
    selection: md.Selection,
    decision: Any,
    comparison: md.Comparison,
    lift: pd.DataFrame,
    params: Params,
) -> str:
    """The 04 summary: the chosen model, its gain, its total, who spends most, the promotion."""
    c = params.currency
    out = [heading(params), chosen(selection, c)]
    ratio = comparison.board.loc[selection.chosen, "ratio"]
    top = lift.loc[1] if 1 in lift.index else None
    facts = (
        f"Its total for the held-out customers is {fmt.percent(ratio)} of what they actually spent."
    )
    if top is not None and not fmt.missing(top["share_of_spend"]):
        facts += (
            f" The tenth of them it ranked highest spent {fmt.percent(top['share_of_spend'])} of "
            f"all their spend, {fmt.number(top['lift'], 1)} times the average customer."
        )
    out.append(facts)
    out.append(promotion(decision, c))
    return "\n\n".join(out)


# --------------------------------------------------------------------------- tables
def leaderboard(comparison: md.Comparison, primary_metric: str, currency: str) -> Any:
    """The leaderboard: models as words, errors in the currency, totals as percentages of the
    actual."""
    b = comparison.board
    order = b.sort_values(
        md._sort_key(b, primary_metric),
        ascending=primary_metric not in md.HIGHER_IS_BETTER,
        kind="stable",
    ).index

    def cv(r: pd.Series, m: str) -> str:
        v, sd = r[f"cv_{m}"], r[f"cv_{m}_std"]
        if fmt.missing(v):
            return fmt.MISSING
        spread = 0.0 if fmt.missing(sd) else sd
        return (
            f"{fmt.number(v, 3)} ± {fmt.number(spread, 3)}"
            if m == "r2"
            else f"{fmt.money(v, currency, 2)} ± {fmt.money(spread, currency, 2)}"
        )

    rows = []
    for n in order:
        r = b.loc[n]
        rows.append(
            {
                "model": words.model(n),
                "kind": {
                    "baseline": "simple rule",
                    "model": "machine learning",
                    "btyd": "buy-till-you-die",
                }.get(r["kind"], r["kind"]),
                "typical error, past periods": cv(r, "rmse"),
                "typical error, held-out": fmt.money(r["rmse"], currency, 2),
                "average error, held-out": fmt.money(r["mae"], currency, 2),
                "variation explained, held-out": fmt.number(r["r2"], 3),
                "error on the top 10% spenders": fmt.money(r["top_decile_mae"], currency, 2),
                "error in units": fmt.number(r["qty_mae"], 2),
                "total vs actual, past periods": fmt.percent(r["cv_ratio"]),
                "total vs actual, held-out": fmt.percent(r["ratio"]),
                "could be chosen": "yes" if r["eligible"] else "no",
            }
        )
    return fmt.table(pd.DataFrame(rows))


def board_for_plot(board: pd.DataFrame) -> pd.DataFrame:
    """The board with the models' names as words (for the charts)."""
    return board.rename(index=words.model)


def folds_for_plot(folds: pd.DataFrame) -> pd.DataFrame:
    return folds.assign(model=[words.model(m) for m in folds["model"]])


def inputs_note(comparison: md.Comparison) -> str:
    """Inputs dropped or kept out of the machine-learning models, and models left out."""
    parts = []
    d, r = comparison.dropped, comparison.ranges
    if len(d):
        parts.append(
            f"**{fmt.count(len(d), 'feature')} dropped** before learning (no information on the "
            "training rows): "
            + "; ".join(f"{words.feature(f)} — {_reason(why)}" for f, why in d["reason"].items())
            + "."
        )
    else:
        parts.append("No feature was constant, duplicated or empty on the training rows.")
    out = r[r["action"].str.startswith("left out")] if len(r) else r
    if len(r):
        parts.append(
            f"**{fmt.count(len(r), 'feature')} leave the training range** on more than "
            f"{fmt.percent(md.RANGE_SHARE)} of the held-out or scored customers: "
            + ", ".join(words.feature(f) for f in r.index)
            + (
                "; left out of the machine-learning models: "
                + ", ".join(words.feature(f) for f in out.index)
                if len(out)
                else ""
            )
            + "."
        )
    for note in comparison.notes:
        parts.append(_note(note))
    return "\n\n".join(parts)


def _reason(text: str) -> str:
    import re

    return re.sub(
        r"duplicate of (\w+)", lambda m: f"a copy of {words.feature(m.group(1))}", str(text)
    )


def _note(note: str) -> str:
    import re

    note = re.sub(r"`(\w+)`", lambda m: f'"{words.model(m.group(1))}"', note)
    head, _, rest = note.partition(" left out")
    return f'"{words.model(head)}" left out{rest}.' if rest else note


def ranges_table(comparison: md.Comparison) -> Any:
    r = comparison.ranges
    if not len(r):
        return None
    out = (
        r.rename(index=words.feature)
        .reset_index()
        .rename(columns={"index": "feature", "feature": "feature"})
    )
    out.columns = [str(c).replace("_", " ") for c in out.columns]
    return fmt.table(out, decimals={c: 3 for c in out.columns if c not in ("feature", "action")})


def calibration_table(comparison: md.Comparison) -> Any:
    t = md.calibration_table(comparison).rename(index=words.model)
    t = t.drop(columns=["calibration rule"])
    t.columns = [str(c).replace("fold ", "period of ") for c in t.columns]
    return fmt.table(t, percent_cols=list(t.columns))


def lift_table(lift: pd.DataFrame, currency: str) -> Any:
    out = pd.DataFrame(
        {
            "decile": [str(i) for i in lift.index],
            "customers": lift["customers"].to_numpy(),
            "predicted spend per customer": lift["mean_predicted"].to_numpy(),
            "actual spend per customer": lift["mean_actual"].to_numpy(),
            "share of all spend": lift["share_of_spend"].to_numpy(),
            "cumulative share": lift["cumulative_share"].to_numpy(),
            "lift": lift["lift"].to_numpy(),
        }
    )
    return fmt.table(
        out,
        currency=currency,
        money_cols=["predicted spend per customer", "actual spend per customer"],
        percent_cols=["share of all spend", "cumulative share"],
        decimals={"predicted spend per customer": 2, "actual spend per customer": 2, "lift": 2},
        count_cols=["customers"],
    )


def per_product_table(table: pd.DataFrame) -> Any:
    out = table.rename(
        index=words.product,
        columns=lambda c: "average units bought" if c == "mean actual" else words.model(c),
    )
    out.index.name = "product type"
    return fmt.table(out, decimals={c: 2 for c in out.columns})


def importance_for_plot(table: pd.DataFrame) -> pd.DataFrame:
    return table.rename(index=words.feature)


def window_table(frame: pd.DataFrame) -> Any:
    out = frame.rename(index={"train": "learning", "holdout": "held-out"})
    out["cut-offs"] = [
        ", ".join(fmt.day(d.strip()) for d in str(v).split(",")) for v in out["cut-offs"]
    ]
    out.columns = ["customers (rows)", "as of"]
    return fmt.table(out)


def decision_table(decision: Any, currency: str) -> Any:
    rows = [
        {
            "": "new version",
            "version": words.version(decision.version),
            f"held-out {words.metric(decision.metric)}": _err(
                decision.new_value, decision.metric, currency
            ),
        }
    ]
    if decision.previous:
        rows.append(
            {
                "": "previous default",
                "version": words.version(decision.previous),
                f"held-out {words.metric(decision.metric)}": _err(
                    decision.previous_value, decision.metric, currency
                ),
            }
        )
    return fmt.table(pd.DataFrame(rows))


def versions_table(frame: pd.DataFrame, currency: str) -> Any:
    if frame.empty:
        return None
    out = pd.DataFrame(
        {
            "version": [words.version(v) for v in frame.index],
            "default": ["yes" if d else "" for d in frame["default"]],
            "model": [words.model(c) for c in frame["candidate"]],
            "chosen in the run of": [fmt.day(d) for d in frame["run_date"]],
            "held-out typical error": [fmt.money(v, currency, 2) for v in frame["holdout_rmse"]],
            "held-out average error": [fmt.money(v, currency, 2) for v in frame["holdout_mae"]],
        }
    )
    return fmt.table(out)


def topic_check(check: Any) -> str:
    """Whether the topic-share features were kept
    (:class:`customer_analytics.topic_features.FeatureCheck`)."""
    if not check.columns:
        return "No topic-share features in this run (no topic model)."
    verdict = "**kept**: they improve" if check.keep else "**left out**: they do not improve"
    return (
        f"The {len(check.columns)} topic-share features are {verdict} the held-out "
        f"{words.metric(check.metric)} of the {words.model(check.candidate)} model "
        f"({fmt.number(check.with_topics, 4)} with them, {fmt.number(check.without_topics, 4)} "
        "without)."
    )


def btyd_table(fits: pd.DataFrame) -> Any:
    if fits.empty:
        return None
    out = fits.copy()
    out.index = [fmt.day(i) for i in out.index]
    out.index.name = "as of"
    return fmt.table(
        out, decimals={c: 3 for c in out.columns if pd.api.types.is_float_dtype(out[c])}
    )


def deciles_for_plot(deciles: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {words.model(k): v for k, v in deciles.items()}


def glossary() -> str:
    return words.glossary(TERMS)
