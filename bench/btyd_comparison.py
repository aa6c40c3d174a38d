"""Benchmark: the model comparison (issue 16) on a demo world, with fitting times.

    .venv/bin/python bench/btyd_comparison.py --profile closed_cohort --customers 100000

Generates a seeded demo world (``default``, ``closed_cohort`` or ``closed_cohort_sparse``), ingests
it into a scratch embedded warehouse, builds FEATURES (timing the per-cut-off BTYD fits on their
own) and runs the comparison with env.yaml's candidates. Writes one JSON line to
``bench/results/btyd_comparison.jsonl`` and the leaderboard (held-out RMSE, MAE, predicted / actual
total, CV values, fitting seconds per candidate) to ``bench/results/btyd_<profile>_<customers>.md``.
Not part of the tests; timings depend on the machine's load (say so when quoting them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

from customer_analytics import btyd, config, features, ingest, models, synthetic, text
from customer_analytics import warehouse as wh
from customer_analytics.narrative import models as story

REPO = Path(__file__).resolve().parents[1]


def btyd_fit_seconds(session, cutoff, horizon_days: int) -> dict[str, float]:
    """Seconds to pull one cut-off's summaries and fit each BTYD model (a second, timed pass)."""
    started = time.perf_counter()
    rows = wh.to_pandas(features.btyd_summaries(session, [cutoff], horizon_days), "bench")
    out = {"pull summaries": time.perf_counter() - started, "customers": len(rows)}
    for family in btyd.FAMILIES:
        t = time.perf_counter()
        btyd.fit_purchases(family, rows["X"], rows["TX"], rows["T"])
        out[family] = time.perf_counter() - t
    t = time.perf_counter()
    btyd.fit_gamma_gamma(rows["X"], rows["VALUE"])
    out["gamma_gamma"] = time.perf_counter() - t
    return {k: round(v, 3) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="closed_cohort", choices=["default", *synthetic.PROFILES])
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    a = ap.parse_args()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="ca_btyd_"))
    data = (
        synthetic.generate(a.customers, seed=a.seed)
        if a.profile == "default"
        else synthetic.generate_closed_cohort(a.customers, seed=a.seed, profile=a.profile)
    )
    counts = synthetic.write(data, work / "raw")
    p = config.load(
        REPO,
        data_dir=str(work / "raw"),
        warehouse_dir=str(work / "warehouse"),
        reports_dir=str(work / "reports"),
        seed=a.seed,
    )
    times = {}
    session = wh.connect(p)
    try:
        ingest.run(session, p)
        t = time.perf_counter()
        text_model, _ = text.build(
            session, p.cutoffs()[0], p.seed, p.text_max_rows, work / "staging"
        )
        features.build(session, p, sentiment=text_model.available)
        times["features incl. BTYD fits"] = round(time.perf_counter() - t, 2)
        fit = btyd_fit_seconds(session, p.cutoffs()[-1], p.horizon_days)
        train, holdout = features.load_labelled(session, p.max_train_rows, p.seed)
        t = time.perf_counter()
        comparison = models.compare(
            train, holdout, p.models, p.seed, p.cv_folds, p.calibration_tolerance
        )
        times["compare"] = round(time.perf_counter() - t, 2)
        selection = models.select(comparison, p.primary_metric, p.seed)
        fitted = features.btyd_params(session)
    finally:
        session.close()
        wh.stop_local_server(p.warehouse_dir)
    b = comparison.board
    board = pd.DataFrame(
        {
            "kind": b["kind"],
            "held-out RMSE": b["rmse"],
            "held-out MAE": b["mae"],
            "held-out pred/actual": b["ratio"],
            "CV RMSE": b["cv_rmse"],
            "CV MAE": b["cv_mae"],
            "CV pred/actual": b["cv_ratio"],
            "eligible": b["eligible"],
            "fit s (4 fits)": b["fit_seconds"],
        }
    ).round(3)
    load = os.getloadavg()[0]
    result = {
        "profile": a.profile,
        "customers": a.customers,
        **counts,
        "train_rows": len(train),
        "holdout_rows": len(holdout),
        "chosen": selection.chosen,
        "best_baseline": selection.baseline,
        "gain_vs_baseline": round(selection.improvement, 4),
        "btyd_fit_seconds_one_cutoff": fit,
        "seconds": times,
        "board": board.reset_index().to_dict(orient="records"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpu, shared, load {load:.1f} at the "
        "end",
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    a.out.mkdir(parents=True, exist_ok=True)
    with (a.out / "btyd_comparison.jsonl").open("a") as f:
        f.write(json.dumps(result, default=str) + "\n")
    md = [
        f"# {a.profile}, {a.customers:,} customers (seed {a.seed})",
        "",
        f"Chosen: **{selection.chosen}** ({selection.improvement:.1%} lower held-out "
        f"{selection.metric.upper()} than {selection.baseline}). Training rows {len(train):,}, "
        f"held-out rows {len(holdout):,}. "
        f"Machine: {result['machine']}; timings under that load.",
        "",
        board.to_markdown(),
        "",
        f"BTYD fits on one cut-off's {fit['customers']:,} customers (seconds): "
        + ", ".join(f"{k} {v}" for k, v in fit.items() if k != "customers"),
        "",
        "Fitted BTYD parameters per cut-off:",
        "",
        fitted.round(3).T.to_markdown(),
        "",
        story.chosen(selection, "EUR") + " " + story.why(selection, comparison, "EUR"),
        "",
    ]
    path = a.out / f"btyd_{a.profile}_{a.customers}.md"
    path.write_text("\n".join(md), encoding="utf-8")
    print(path.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
