"""Client memory of batch scoring: chunked vs one chunk, as the number of scored customers grows.

Run: ``.venv/bin/python bench/predict_memory.py [--customers 4000 16000 64000] [--chunk-rows
    2000]``.
For each size it generates demo data, ingests it into a throw-away local warehouse, builds
FEATURES, registers a ridge model and scores everyone (``scoring_set=all``) twice: in chunks of
``--chunk-rows`` and in one chunk. It records the peak of Python-tracked allocations
(``tracemalloc``; NumPy and pandas buffers included) during ``predict.score_in_chunks`` and the
wall time, and writes ``bench/out/predict_memory.csv``. Not run by the tests.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import pandas as pd

from customer_analytics import config, ingest, models, predict, registry, synthetic
from customer_analytics import features as ft
from customer_analytics import warehouse as wh

ROOT = Path(__file__).resolve().parents[1]


def measure(n_customers: int, chunk_rows: int, work: Path) -> list[dict]:
    raw = work / "raw"
    synthetic.write(synthetic.generate(n_customers, seed=1), raw)
    params = config.load(
        ROOT, data_dir=str(raw), warehouse_dir=str(work / "wh"), reports_dir=str(work / "reports")
    )
    params = dataclasses.replace(params, scoring_set="all")
    s = wh.connect(params)
    try:
        ingest.run(s, params)
        products = ft.product_types(s)
        ft.build(s, params, products)
        train, holdout = ft.load_labelled(s)
        x, y = models.split_xy(pd.concat([train, holdout]), products)
        model = models.candidates(products, params.seed)["ridge"]().fit(x, y)
        del train, holdout, x, y
        reg = registry.open_registry(params)
        mv = reg.log_model(
            model,
            registry.MODEL_NAME,
            {},
            {"candidate": "ridge"},
            {},
            ft.feature_columns(products),
            ft.label_columns(products),
        )
        rows = []
        for label, rows_per_chunk in (("chunked", chunk_rows), ("one chunk", 10**9)):
            tracemalloc.start()
            started = time.perf_counter()
            run = predict.score_in_chunks(s, model, mv, params, chunk_rows=rows_per_chunk)
            seconds = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            rows.append(
                {
                    "customers_scored": run.customers,
                    "mode": label,
                    "chunks": run.chunks,
                    "largest_chunk": run.largest_chunk,
                    "peak_mib": round(peak / 2**20, 1),
                    "seconds": round(seconds, 2),
                }
            )
            print(rows[-1], file=sys.stderr)  # noqa: T201 - a benchmark script reports as it goes
        return rows
    finally:
        s.close()
        wh.stop_local_server(params.warehouse_dir)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, nargs="+", default=[4000, 16000, 64000])
    ap.add_argument("--chunk-rows", type=int, default=2000)
    args = ap.parse_args()
    results = []
    for n in args.customers:
        with tempfile.TemporaryDirectory() as tmp:
            results += measure(n, args.chunk_rows, Path(tmp))
    out = ROOT / "bench" / "out" / "predict_memory.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(results[0]))
        w.writeheader()
        w.writerows(results)
    print(pd.DataFrame(results).to_string(index=False))  # noqa: T201


if __name__ == "__main__":
    main()
