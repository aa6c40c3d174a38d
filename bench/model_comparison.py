"""Benchmark: features and model comparison (stages 03-04) on N generated customers.

    .venv/bin/python bench/model_comparison.py --customers 100000

Generates seeded demo data in a scratch folder, ingests it into a scratch embedded warehouse,
then times each step of 03_features and 04_model_comparison exactly as the notebooks call
them (env.yaml parameters). Results: ``bench/results/model_comparison.jsonl`` (one JSON line per
run) and a line in ``bench/results/model_comparison.md``. Not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from customer_analytics import config, features, ingest, models, synthetic, text
from customer_analytics import warehouse as wh

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--workdir", type=Path, default=None, help="scratch folder (default: a new temporary one)"
    )
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument(
        "--max-train-rows", type=int, default=None, help="override env.yaml's max_train_rows"
    )
    a = ap.parse_args()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="ca_bench_"))
    times: dict[str, float] = {}

    def step(name: str, started: float) -> float:
        times[name] = round(time.perf_counter() - started, 2)
        print(f"{name:>22}: {times[name]:8.2f} s", flush=True)
        return time.perf_counter()

    t = time.perf_counter()
    counts = synthetic.write(synthetic.generate(a.customers, seed=a.seed), work / "raw")
    t = step("generate data", t)
    p = config.load(
        REPO,
        data_dir=str(work / "raw"),
        warehouse_dir=str(work / "warehouse"),
        reports_dir=str(work / "reports"),
        seed=a.seed,
        max_train_rows=a.max_train_rows,
    )
    session = wh.connect(p)
    try:
        ingest.run(session, p)
        t = step("ingest", t)
        text_model, quality = text.build(
            session, p.cutoffs()[0], p.seed, p.text_max_rows, work / "staging"
        )
        t = step("text model + scoring", t)
        features.build(session, p, sentiment=text_model.available)
        t = step("features (all cut-offs)", t)
        train, holdout = features.load_labelled(session, p.max_train_rows, p.seed)
        t = step("load training rows", t)
        comparison = models.compare(train, holdout, p.models, p.seed, p.cv_folds)
        t = step("compare (CV + holdout)", t)
        selection = models.select(comparison, p.primary_metric, p.seed)
        models.importance(comparison.models[selection.chosen], holdout, comparison.features, p.seed)
        step("select + importance", t)
        n_rows = wh.row_count(session, features.TABLE)
    finally:
        session.close()
        wh.stop_local_server(p.warehouse_dir)
    result = {
        "customers": a.customers,
        **counts,
        "feature_rows": n_rows,
        "train_rows_used": len(train),
        "holdout_rows": len(holdout),
        "max_train_rows": p.max_train_rows,
        "cv_folds": p.cv_folds,
        "n_cutoffs": p.n_cutoffs,
        "rf_trees": models.RF_TREES,
        "models": list(p.models),
        "chosen": selection.chosen,
        "holdout_rmse": round(selection.holdout_chosen, 4),
        "best_baseline": selection.baseline,
        "gain_vs_baseline": round(selection.improvement, 4),
        "text_accuracy": None
        if quality is None
        else round(float(quality.iloc[:, 0]["accuracy"]), 4),
        "fit_seconds": comparison.board["fit_seconds"].round(2).to_dict(),
        "seconds": times,
        "stages_03_04_seconds": round(
            sum(v for k, v in times.items() if k not in ("generate data", "ingest")), 2
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpu, load {os.getloadavg()[0]:.1f} at "
        "the end",
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    a.out.mkdir(parents=True, exist_ok=True)
    with (a.out / "model_comparison.jsonl").open("a") as f:
        f.write(json.dumps(result) + "\n")
    with (a.out / "model_comparison.md").open("a") as f:
        f.write(
            f"| {result['date']} | {a.customers:,} | {counts['orders']:,} | {len(train):,} | "
            f"{times['features (all cut-offs)']} | {times['compare (CV + holdout)']} | "
            f"{result['stages_03_04_seconds']} | {selection.chosen} {selection.improvement:.1%} "
            f"(max_train_rows {p.max_train_rows:,}, {models.RF_TREES} trees) | "
            f"{result['machine']} |\n"
        )
    print(json.dumps(result, indent=2))
    if a.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
