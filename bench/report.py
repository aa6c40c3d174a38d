"""Turn ``bench/out/results.json`` into ``bench/RESULTS.md`` and ``bench/scaling.png``.

Usage: ``.venv/bin/python bench/report.py [bench/out/results.json]`` (``bench/run.py`` calls it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from matplotlib.figure import Figure

NOTEBOOKS = ["01_ingest", "02_eda", "03_features", "04_model_comparison", "05_batch_prediction"]
TARGETS = {"pipeline_1m_s": 180.0, "pipeline_over_floor": 2.0, "growth_100k_to_1m": 10.0, "peak_rss_gb": 4.0,
           "noop_s": 5.0}


def _fmt(x, spec: str = ".1f") -> str:
    return "–" if x is None else format(x, spec)


def _ratio(a, b):
    return a / b if a is not None and b else None


def targets(results: dict) -> list[tuple[str, str, str, bool | None]]:
    """The issue's targets: (target, limit, measured, met)."""
    by = {r["target_orders"]: r for r in results["sizes"]}
    rows = []
    big = by.get(max(by)) if by else None
    if big:
        rows.append((f"full pipeline at {big['orders']:,} orders", f"< {TARGETS['pipeline_1m_s']:.0f} s",
                     f"{big['pipeline_s']:.1f} s", big["pipeline_s"] < TARGETS["pipeline_1m_s"]))
        r = _ratio(big["pipeline_s"], big.get("floor_s"))
        rows.append(("pipeline / floor at that size", f"≤ {TARGETS['pipeline_over_floor']:.0f}×", f"{_fmt(r, '.2f')}×",
                     None if r is None else r <= TARGETS["pipeline_over_floor"]))
        peak = max(max(r["kernel_peak_rss_mb"].values(), default=0) for r in results["sizes"]) / 1024
        server = max(r.get("server_peak_rss_mb", 0) for r in results["sizes"]) / 1024
        rows.append(("peak memory of any notebook kernel", f"< {TARGETS['peak_rss_gb']:.0f} GiB", f"{peak:.2f} GiB",
                     peak < TARGETS["peak_rss_gb"]))
        rows.append(("peak memory of the warehouse server", f"< {TARGETS['peak_rss_gb']:.0f} GiB", f"{server:.2f} GiB",
                     server < TARGETS["peak_rss_gb"]))
        noop = max(r["noop_rebuild_s"] for r in results["sizes"])
        rows.append(("no-op rebuild (worst size)", f"< {TARGETS['noop_s']:.0f} s", f"{noop:.1f} s",
                     noop < TARGETS["noop_s"]))
    sizes = sorted(by)
    if len(sizes) >= 2:
        lo, hi = by[sizes[-2]], by[sizes[-1]]
        g = hi["pipeline_s"] / lo["pipeline_s"]
        n = hi["orders"] / lo["orders"]
        rows.append((f"growth {lo['orders']:,} → {hi['orders']:,} orders ({n:.1f}× data)", f"≤ {n:.1f}× (linear)",
                     f"{g:.2f}×", g <= n))
    return rows


def write_report(results: dict, folder: Path) -> None:
    """Write RESULTS.md and scaling.png into ``folder``."""
    sizes = sorted(results["sizes"], key=lambda r: r["orders"])
    m = results["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Measured by `bench/run.py` at commit `{m['commit']}` on {m['date']}: {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_gb']} GiB RAM, Python {m['python']} ({m['os']}). Regenerate with `make bench`.",
        "",
        "Sizes are orders (lines of `orders.jsonl`, about two order lines each); customers scale with them. "
        "*Pipeline* is `ploomber build --force` of the five notebooks on the embedded warehouse "
        "(fakesnow/DuckDB), kernels and report export included. *Floor* is `bench/floor.py`: the same work "
        "(same features, models and scoring) in one plain pandas + scikit-learn process, no notebooks, no "
        "orchestration. *local_testing* is Snowpark's own local emulator running the feature stage only.",
        "",
        "## Targets",
        "",
        "| target | limit | measured | met |",
        "|---|---|---|---|",
    ]
    lines += [f"| {t} | {lim} | {val} | {'yes' if ok else 'no' if ok is not None else '–'} |"
              for t, lim, val, ok in targets(results)]
    lines += ["", "## Ratios", "", "| orders | customers | pipeline / floor | local_testing features / pipeline features |",
              "|---:|---:|---:|---:|"]
    for r in sizes:
        lt = r.get("local_testing_s")
        feat = r["tasks_s"].get("03_features")
        status = r.get("local_testing_status", "not run")
        lt_txt = _fmt(_ratio(lt, feat), ".0f") + "×" if lt else f"did not finish ({status})"
        lines.append(f"| {r['orders']:,} | {r['customers']:,} | {_fmt(_ratio(r['pipeline_s'], r.get('floor_s')), '.2f')}× "
                     f"| {lt_txt} |")
    lines += ["", "## Seconds", "", "| orders | pipeline | " + " | ".join(NOTEBOOKS) + " | no-op rebuild | floor | "
              "local_testing features |", "|---:" * (len(NOTEBOOKS) + 5) + "|"]
    for r in sizes:
        lines.append(f"| {r['orders']:,} | {r['pipeline_s']:.1f} | "
                     + " | ".join(_fmt(r["tasks_s"].get(n)) for n in NOTEBOOKS)
                     + f" | {r['noop_rebuild_s']:.1f} | {_fmt(r.get('floor_s'))} | {_fmt(r.get('local_testing_s'))} |")
    lines += ["", "Inside the notebooks (cells tagged `bench-warehouse` / `bench-model`, from Papermill's cell "
              "durations), seconds:", "", "| orders | " + " | ".join(NOTEBOOKS) + " |", "|---:" * (len(NOTEBOOKS) + 1) + "|"]
    for r in sizes:
        split = r.get("stage_split_s", {})
        lines.append(f"| {r['orders']:,} | " + " | ".join(
            f"{split.get(n, {}).get('warehouse_s', 0):.1f} wh / {split.get(n, {}).get('model_s', 0):.1f} model"
            for n in NOTEBOOKS) + " |")
    lines += ["", "## Peak resident memory (MiB)", "", "| orders | " + " | ".join(NOTEBOOKS)
              + " | warehouse server | floor |", "|---:" * (len(NOTEBOOKS) + 3) + "|"]
    for r in sizes:
        lines.append(f"| {r['orders']:,} | " + " | ".join(_fmt(r["kernel_peak_rss_mb"].get(n), ".0f") for n in NOTEBOOKS)
                     + f" | {_fmt(r.get('server_peak_rss_mb'), '.0f')} | {_fmt(r.get('floor_peak_rss_mb'), '.0f')} |")
    lines += ["", "![scaling](scaling.png)", ""]
    if results.get("notes"):
        lines += ["## Notes", "", *results["notes"], ""]
    (folder / "RESULTS.md").write_text("\n".join(lines), encoding="utf-8")

    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    x = [r["orders"] for r in sizes]
    ax.plot(x, [r["pipeline_s"] for r in sizes], marker="o", label="pipeline (5 notebooks)")
    ax.plot(x, [r.get("floor_s") for r in sizes], marker="s", label="floor (pandas + scikit-learn script)")
    ax.plot(x, [r["tasks_s"].get("03_features") for r in sizes], marker="^", ls="--", label="pipeline: 03_features")
    lt = [(r["orders"], r["local_testing_s"]) for r in sizes if r.get("local_testing_s")]
    if lt:
        ax.plot(*zip(*lt, strict=True), marker="x", ls="--", label="Snowpark local_testing: features")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("orders")
    ax.set_ylabel("seconds")
    ax.set_title("Wall time by data size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.set_layout_engine("tight")
    fig.savefig(folder / "scaling.png", dpi=110)


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "out" / "results.json"
    write_report(json.loads(path.read_text()), Path(__file__).parent)
