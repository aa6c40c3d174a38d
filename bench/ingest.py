"""Benchmark: ingest of ~1,000,000 order lines on the embedded warehouse (time and peak memory).

Usage::

    .venv/bin/python bench/ingest.py [--customers 115000] [--out bench/results/ingest.json]

Generates seeded demo data (JSON lines) and the same order lines as a flat CSV in a temporary
folder, ingests each into a fresh local warehouse, and records wall time per phase and the peak
resident memory of this process (the streaming readers) and of the warehouse server (DuckDB),
sampled every 0.1 s. Each case runs in its own process, so the client peak is the ingest's alone.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from customer_analytics import config, ingest, synthetic
from customer_analytics import warehouse as wh
from customer_analytics import warehouse_server as srv

REPO = Path(__file__).resolve().parents[1]


class PeakRSS(threading.Thread):
    """Samples the resident memory of a process (by pid file) until stopped."""

    def __init__(self, state_file: Path):
        super().__init__(daemon=True)
        self.state_file, self.peak, self._done = state_file, 0, threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                pid = json.loads(self.state_file.read_text())["pid"]
                self.peak = max(self.peak, psutil.Process(pid).memory_info().rss)
            except (OSError, ValueError, KeyError, psutil.Error):
                pass
            time.sleep(0.1)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def own_peak_rss() -> int:
    """This process's peak resident memory in bytes: Linux's VmHWM (ru_maxrss would include the
    parent's peak from before ``exec``), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def flat_csv(raw: Path, dest: Path) -> None:
    """The demo orders as a flat CSV of order lines (streamed, one JSON line at a time)."""
    with (
        (raw / "orders.jsonl").open(encoding="utf-8") as f,
        dest.open("w", encoding="utf-8") as out,
    ):
        out.write("order_id,customer_id,ts,product,quantity,unit_price\n")
        for line in f:
            o = json.loads(line)
            for it in o["items"]:
                out.write(
                    f"{o['order_id']},{o['customer_id']},{o['ts']},{it['product']},{it['quantity']},"
                    f"{it['unit_price']}\n"
                )


def run_once(name: str, data: Path, work: Path, **over) -> dict:
    params = config.load(
        REPO,
        data_dir=str(data),
        warehouse_dir=str(work / f"wh_{name}"),
        reports_dir=str(work / "reports"),
    )
    params = dataclasses.replace(params, **over)
    session = wh.connect(params)
    rss = PeakRSS(params.warehouse_dir / srv.STATE_FILE)
    rss.start()
    baseline = psutil.Process().memory_info().rss  # libraries imported, session open
    t0 = time.perf_counter()
    counts = ingest.run(session, params)
    seconds = time.perf_counter() - t0
    server_peak = rss.stop()
    client_peak = own_peak_rss()
    session.close()
    wh.stop_local_server(params.warehouse_dir)
    sizes = {c.source: c.bytes for c in counts}
    return {
        "case": name,
        "seconds": round(seconds, 1),
        "client_baseline_rss_mb": round(baseline / 2**20),
        "client_peak_rss_mb": round(client_peak / 2**20),
        "server_peak_rss_mb": round(server_peak / 2**20),
        "sources": {
            c.source: {
                "read": c.read,
                "accepted": c.accepted,
                "rejected": c.rejected,
                "file_mb": round(sizes[c.source] / 2**20, 1),
            }
            for c in counts
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--customers", type=int, default=115_000, help="demo customers (~9 order lines each)"
    )
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ingest.json")
    ap.add_argument("--case", nargs=3, metavar=("NAME", "DATA", "WORK"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if a.case:
        print(json.dumps(run_once(a.case[0], Path(a.case[1]), Path(a.case[2]))))
        return 0
    work = Path(tempfile.mkdtemp(prefix="ca_bench_ingest_"))
    try:
        raw = work / "raw"
        t0 = time.perf_counter()
        synthetic.write(synthetic.generate(a.customers, seed=42), raw)
        csv_dir = work / "csv"
        csv_dir.mkdir()
        flat_csv(raw, csv_dir / "orders.csv")
        gen = time.perf_counter() - t0
        results = []
        for name, data in (
            ("jsonl_with_customers_and_reviews", raw),
            ("flat_csv_orders_only", csv_dir),
        ):
            out = subprocess.run(
                [sys.executable, __file__, "--case", name, str(data), str(work)],
                capture_output=True,
                text=True,
            )
            if out.returncode:
                raise RuntimeError(f"{name}: {out.stderr[-3000:]}")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        report = {
            "what": "ingest.run on the embedded warehouse (fakesnow/DuckDB), fresh warehouse per "
            "case",
            "customers": a.customers,
            "data_generation_seconds": round(gen, 1),
            "machine": {
                "python": platform.python_version(),
                "cpus": psutil.cpu_count(),
                "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            },
            "results": results,
        }
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(report, indent=2) + "\n")
        json.dump(report, sys.stdout, indent=2)
        print()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
