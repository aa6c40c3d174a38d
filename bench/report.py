"""Turn ``bench/out/results.json`` into ``bench/RESULTS.md`` and ``bench/scaling.png``.

Usage: ``.venv/bin/python bench/report.py [RESULTS_JSON ...]`` (``bench/run.py`` calls it with
one). Several files are merged by size (a later file's size replaces an earlier one's), so a long
size measured on its own (e.g. 10M orders) can join the default sizes' report; each size keeps
the commit it was measured at.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from matplotlib.figure import Figure

NOTEBOOKS = ["01_ingest", "02_eda", "03_features", "04_model_comparison", "05_batch_prediction"]
#: issue 19's acceptance: pipeline / floor per size (orders as asked of bench/run.py)
FLOOR_RATIO_TARGETS = {10_000: 2.0, 100_000: 1.0, 1_000_000: 0.5}
TARGETS = {
    "pipeline_1m_s": 180.0,  # the first round's target at 1M orders
    "pipeline_10m_s": 900.0,  # the goal at 10M orders
    "kernel_rss_gb": 4.0,
    "server_rss_gb": 8.0,
    "noop_s": 3.0,
    "pipeline_over_limit": 2.0,
}


NOTES = [
    "- **Fixed cost.** Each notebook pays a kernel start, the imports of Snowpark/scikit-learn, "
    "its set-up cell and an HTML export, a cost that does not grow with the data (the notebooks' "
    "seconds minus their tagged cells: {overhead}; 02 runs beside 03, so the notebooks' seconds "
    "add up to more than the pipeline's). Besides it, each warehouse query pays a round trip "
    "through Snowpark and the embedded server's SQL translation, a cost per query rather than per "
    "row: at 10k orders 01's one ingest cell makes ~200 queries and takes about 10 s for 0.2 s of "
    "the limit's work. That is why the pipeline is several times the floor and the limit at 10k "
    "orders.",
    "- **Where the time goes at {big} orders** (cells of the executed notebooks): "
    "04_model_comparison fits the nine candidates of `env.yaml` (3 time-based CV folds + the "
    "held-out fit each, on at most `max_train_rows` sampled rows) and their checks; 03 builds the "
    "features of all cut-offs as set-based SQL, then the sentiment and topic models; 01's ingest "
    "cell is set-based SQL (date layouts, returns, guests, the per-source checks) after the "
    "streaming read; 02's largest cell is the topic model of the reviews. The floor fits the "
    "same `models` list with the same code (`models.compare`); its features are pandas per cut-off "
    "and slower than 03's SQL from 100k orders on.",
    "- **The floor** is a straightforward pandas implementation, not a hand-tuned one: its ingest "
    "is vectorised (`json.loads` per line so a bad line is rejected, not fatal, then column-wise "
    "checks) and gives the same accepted rows as the contract's row-by-row reference on the demo "
    "data; its features are `reference.features_at`, the pandas oracle the tests compare the "
    "warehouse with (the BTYD summaries included, the fitted BTYD outlook and the topic shares "
    "not). The chosen models can differ: the pipeline's candidates also see those.",
    "- **The JSON-lines read** (the per-line strict checks the contract needs to name a bad line) "
    "takes orjson's fast path for lines it can vouch for (no escapes, no 19-digit runs, no "
    "repeated key) and the strict decoder for the rest; staged rows go to Parquet as one struct "
    "array per batch. Reading 215,433 orders with their items: 2.8 s against 4.9 s before. A "
    "file of 48 MiB or more is cut at line starts and its parts read side by side, one process "
    "per CPU: the 989,779 orders (263 MB) in 5.9 s against 9.9-11.0 s in one process; 01 at "
    "9,935,315 orders went from 361 s to 316 s with it (324 s in the run above). Staging each "
    "field from the parsed line (so the warehouse would not parse the line again) was tried and "
    "measured a wash at 1M: the "
    "reading grew by 6.4 s, the SQL shrank by 3.4 s.",
    "- **Found and fixed through this benchmark:** the training-row cap (04 took 334 s at 1M "
    "orders before it); the no-op rebuild's import cost below; and, so that the floor is a fair "
    "one, the floor's features grouped the coupon code with `max` on strings, which pandas runs in "
    "pure Python (230 s of the floor's 424 s at 1M); it now counts it.",
    "- **No-op rebuild.** Mostly Python start-up and the imports of Ploomber and Papermill "
    "(Papermill loads its engines' entry points, one of which imports matplotlib's pyplot; "
    "Ploomber imports pandas and SQLAlchemy), plus Ploomber's own check of every notebook's "
    "parameters. `jsonschema` is pinned below 4.25: 4.25+ imports `rfc3987_syntax` eagerly, which "
    "builds ~35 Earley parsers (1.2 s on every start; python-jsonschema/jsonschema#1428).",
    "- **The limit** (`bench/limit.py`) is ingest + features as DuckDB's own `read_csv` / "
    "`read_json` and set-based SQL in one in-memory DuckDB: no Snowpark, no warehouse server, no "
    "notebooks. It is what the engine itself needs for the same work, so *01 + 03 vs limit* is the "
    "overhead of everything around it (kernels, Snowpark, the server, the contract's per-line "
    "checks, the reports). Its accepted rows and features are checked against the pipeline's "
    "warehouse tables on every run (row counts, keys, every value; floats to the last of the 9 "
    "rounded decimals); the text-model features (sentiment, topic shares) are neither built nor "
    "compared, so 03's text and topic models are work the limit does not do. Its ingest handles "
    "well-formed demo lines only (a malformed line stops its read rather than being rejected "
    "with a reason); the BTYD fitting is the pipeline's own (`customer_analytics.btyd`).",
    "- **10M orders** run end to end on this machine with the pipeline alone: the floor, the "
    "limit and local_testing hold all the data in one process and are not run above "
    "`--in-memory-max-orders`. The first 10M run found 04 pulling the whole held-out window "
    "(~2M customers) to its kernel: 04 peaked at 7.7 GiB and the warehouse server at 10.5 GiB "
    "(`bench/results/run_2026-11-30_10m_before_holdout_cap.json`, taken with tests running beside "
    "it). Held-out rows beyond `max_holdout_rows` (250,000) are now a seeded sample drawn in the "
    "warehouse, like the training rows; below ~1M orders nothing changes.",
    "- **Memory.** The largest kernel is 04 (training sample + the fitted candidates); the "
    "warehouse server (DuckDB) is the largest pipeline process at 1M. The floor holds everything "
    "in one process and peaks higher; so does the limit (one in-memory DuckDB).",
    "- **Snowpark local_testing** (the emulator a Snowpark user would reach for first) runs the "
    "feature stage (`bench/local_testing.py`; it needed two functions patched in, `stddev_samp` "
    "and `year`). In the first round it did not finish at the smallest size within 600 s (the "
    "ratio to the pipeline's feature notebook only bounded: {lt_bound}); by hand, 2,133 orders had "
    "not finished after 15 minutes either, and 260 orders (60 customers) ran 6 minutes and then "
    "failed inside the emulator's `DATEDIFF`, which cannot subtract a timestamp from a date — a "
    "third gap, after which we stopped patching. Runs with `--no-local-testing` skip it.",
]


def _noop(r: dict) -> str:
    """The no-op rebuild's median, with every run when there were several."""
    runs = r.get("noop_rebuild_runs_s") or []
    if len(runs) > 1:
        return f"{r['noop_rebuild_s']:.2f} ({' / '.join(f'{x:.2f}' for x in runs)})"
    return f"{r['noop_rebuild_s']:.2f}"


def _fmt(x, spec: str = ".1f") -> str:
    return "–" if x is None else format(x, spec)


def _ratio(a, b):
    return a / b if a is not None and b else None


def _sum(*xs):
    return None if any(x is None for x in xs) else sum(xs)


def limit_rows(sizes: list[dict]) -> list[str]:
    """Per size: ingest and features of the pipeline (01, 03), the floor and the limit (seconds),
    the pipeline's ratio to each, and 01 + 03 against the limit's ingest + features."""
    out = [
        "| orders | ingest s: 01 / floor / limit | 01 ÷ floor | 01 ÷ limit "
        "| features s: 03 / floor / limit | 03 ÷ floor | 03 ÷ limit "
        "| 01 + 03 ÷ limit ingest + features |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sizes:
        fd, ld, t = r.get("floor_detail", {}), r.get("limit_detail", {}), r["tasks_s"]
        ing, feat = t.get("01_ingest"), t.get("03_features")
        f_ing, f_feat = fd.get("ingest_s"), fd.get("features_s")
        l_ing, l_feat = ld.get("ingest_s"), ld.get("features_s")

        def x(a, b):
            return _fmt(_ratio(a, b), ".2f") + "×"

        out.append(
            f"| {r['orders']:,} | {_fmt(ing)} / {_fmt(f_ing)} / {_fmt(l_ing, '.2f')} | "
            f"{x(ing, f_ing)} | {x(ing, l_ing)} | "
            f"{_fmt(feat)} / {_fmt(f_feat)} / {_fmt(l_feat, '.2f')} | {x(feat, f_feat)} | "
            f"{x(feat, l_feat)} | {x(_sum(ing, feat), _sum(l_ing, l_feat))} |"
        )
    return out


def targets(results: dict) -> list[tuple[str, str, str, bool | None]]:
    """The issue's targets: (target, limit, measured, met)."""
    by = {r["target_orders"]: r for r in results["sizes"]}
    rows: list[tuple[str, str, str, bool | None]] = []
    if not by:
        return rows
    for n, goal in FLOOR_RATIO_TARGETS.items():
        if n in by:
            r = _ratio(by[n]["pipeline_s"], by[n].get("floor_s"))
            rows.append(
                (
                    f"pipeline / floor at {by[n]['orders']:,} orders",
                    f"≤ {goal:.1f}×",
                    f"{_fmt(r, '.2f')}×" if r is not None else "floor not run",
                    None if r is None else r <= goal,
                )
            )
    if 1_000_000 in by:
        r1m = by[1_000_000]
        rows.append(
            (
                f"full pipeline at {r1m['orders']:,} orders (the first round's target)",
                f"< {TARGETS['pipeline_1m_s']:.0f} s",
                f"{r1m['pipeline_s']:.1f} s",
                r1m["pipeline_s"] < TARGETS["pipeline_1m_s"],
            )
        )
        if r1m.get("limit_s"):
            both = _sum(r1m["tasks_s"].get("01_ingest"), r1m["tasks_s"].get("03_features"))
            r = _ratio(both, r1m["limit_s"])
            rows.append(
                (
                    f"01 + 03 / limit ingest + features at {r1m['orders']:,} orders",
                    f"≤ {TARGETS['pipeline_over_limit']:.0f}×",
                    f"{_fmt(r, '.2f')}×",
                    None if r is None else r <= TARGETS["pipeline_over_limit"],
                )
            )
    big = by[max(by)]
    if big["target_orders"] >= 10_000_000:
        rows.append(
            (
                f"full pipeline at {big['orders']:,} orders completes (goal)",
                f"< {TARGETS['pipeline_10m_s'] / 60:.0f} min",
                f"{big['pipeline_s'] / 60:.1f} min",
                big["pipeline_s"] < TARGETS["pipeline_10m_s"],
            )
        )
    kernel = max(max(r["kernel_peak_rss_mb"].values(), default=0) for r in by.values()) / 1024
    server = max(r.get("server_peak_rss_mb", 0) for r in by.values()) / 1024
    rows.append(
        (
            "peak memory of any notebook kernel (any size)",
            f"< {TARGETS['kernel_rss_gb']:.0f} GiB",
            f"{kernel:.2f} GiB",
            kernel < TARGETS["kernel_rss_gb"],
        )
    )
    rows.append(
        (
            "peak memory of the warehouse server (any size)",
            f"< {TARGETS['server_rss_gb']:.0f} GiB",
            f"{server:.2f} GiB",
            server < TARGETS["server_rss_gb"],
        )
    )
    noop = max(r["noop_rebuild_s"] for r in by.values())
    reran = sorted({n for r in by.values() for n in r.get("noop_ran", [])})
    repeats = {len(r.get("noop_rebuild_runs_s", [0])) for r in by.values()}
    rows.append(
        (
            "no-op rebuild (worst size"
            + (f"; median of {max(repeats)} runs)" if max(repeats) > 1 else ")"),
            f"< {TARGETS['noop_s']:.0f} s",
            f"{noop:.2f} s" + (f", but it re-ran {', '.join(reran)}" if reran else ""),
            noop < TARGETS["noop_s"] and not reran,
        )
    )
    sizes = sorted(by)
    for lo_n, hi_n in zip(sizes, sizes[1:], strict=False):
        lo, hi = by[lo_n], by[hi_n]
        g = hi["pipeline_s"] / lo["pipeline_s"]
        n = hi["orders"] / lo["orders"]
        rows.append(
            (
                f"growth {lo['orders']:,} → {hi['orders']:,} orders ({n:.1f}× data)",
                f"≤ {n:.1f}× (linear)",
                f"{g:.2f}×",
                g <= n,
            )
        )
    return rows


def merge(results: list[dict]) -> dict:
    """One results record from several runs: sizes by ``target_orders`` (later runs win), the
    first run's settings, and each size's commit kept (``commit``, else its run's)."""
    merged = {**results[0], "sizes": []}
    by: dict[int, dict] = {}
    for res in results:
        for r in res["sizes"]:
            by[r["target_orders"]] = {**r, "commit": r.get("commit", res["machine"]["commit"])}
    merged["sizes"] = [by[n] for n in sorted(by)]
    merged["runs"] = [res["machine"] for res in results]
    return merged


def write_report(results: dict, folder: Path) -> None:
    """Write RESULTS.md and scaling.png into ``folder``."""
    sizes = sorted(results["sizes"], key=lambda r: r["orders"])
    m = results["machine"]
    runs = results.get("runs", [m])
    measured = (
        f"Measured by `bench/run.py` at commit `{m['commit']}` on {m['date']}"
        if len(runs) == 1
        else "Measured by `bench/run.py` in "
        + str(len(runs))
        + " runs ("
        + "; ".join(f"commit `{r['commit']}` on {r['date']}" for r in runs)
        + "; each size's commit: "
        + ", ".join(f"{r['orders']:,} orders `{r.get('commit', '?')}`" for r in sizes)
        + ")"
    )
    skipped = [r for r in sizes if r.get("skipped")]
    lines = [
        "# Benchmark results",
        "",
        f"{measured}: {m['cpu']}, "
        f"{m['cores']} cores, {m['memory_gb']} GiB RAM, Python {m['python']} ({m['os']}). "
        "Regenerate with `make bench`.",
        "",
        "Sizes are orders (lines of `orders.jsonl`, about two order lines each); customers scale "
        "with them. *Pipeline* is `ploomber build --force` of the five notebooks on the embedded "
        "warehouse (fakesnow/DuckDB), kernels and report export included. *Floor* is "
        "`bench/floor.py`: the same work (same features, models and scoring) in one plain pandas "
        "+ scikit-learn process, no notebooks, no orchestration. *local_testing* is Snowpark's "
        "own local emulator running the feature stage only. *Limit* is `bench/limit.py`: ingest + "
        "features only, as DuckDB's own readers and SQL in one process, checked to give the "
        "pipeline's accepted rows and features (see *How to read this*).",
        "",
        *(
            f"At {r['orders']:,} orders the floor, the limit and local_testing were {reason}."
            for r in skipped[:1]
            for reason in [r["skipped"]["floor"]]
        ),
        *([""] if skipped else []),
        "## Targets",
        "",
        "| target | limit | measured | met |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {t} | {lim} | {val} | {'yes' if ok else 'no' if ok is not None else '–'} |"
        for t, lim, val, ok in targets(results)
    ]
    lines += [
        "",
        "## Ratios",
        "",
        "| orders | customers | pipeline / floor | local_testing features / pipeline features |",
        "|---:|---:|---:|---:|",
    ]
    lt_limit = results.get("local_testing_timeout_s", 600)
    for r in sizes:
        lt = r.get("local_testing_s")
        feat = r["tasks_s"].get("03_features")
        status = r.get("local_testing_status")
        lt_txt = (
            _fmt(_ratio(lt, feat), ".0f") + "×"
            if lt
            else "not run (too large for one process)"
            if r.get("skipped")
            else f"did not finish within {lt_limit:.0f} s ({status})"
            if status
            else "not run: it did not finish at a smaller size"
            if results.get("local_testing", True)
            else "not run (--no-local-testing)"
        )
        lines.append(
            f"| {r['orders']:,} | {r['customers']:,} | "
            f"{_fmt(_ratio(r['pipeline_s'], r.get('floor_s')), '.2f')}× | {lt_txt} |"
        )
    lines += [
        "",
        "Per stage against the floor and the limit (the pipeline's notebook time includes its "
        "kernel start, set-up cell, figures and HTML export; the floor's and the limit's are the "
        "step's own seconds inside one process; the limit's features include the BTYD fits but "
        "not 03's text and topic models):",
        "",
        *limit_rows(sizes),
    ]
    checked = [r for r in sizes if "limit_check" in r]
    if checked:
        lines += [
            "",
            "Limit check (accepted rows and features identical to the warehouse's): "
            + "; ".join(
                f"{r['orders']:,} orders: "
                + (
                    "identical"
                    if not r["limit_check"]["differences"]
                    else f"{len(r['limit_check']['differences'])} differences"
                )
                + f" ({r['limit_check']['rows'].get('FEATURES', 0):,} feature rows; "
                f"{len(r['limit_check']['not_compared'])} text-model columns not compared)"
                for r in checked
            )
            + ".",
        ]
    lines += [
        "",
        "## Seconds",
        "",
        "| orders | pipeline | "
        + " | ".join(NOTEBOOKS)
        + " | no-op rebuild (median; each run) | floor | "
        "local_testing features |",
        "|---:" * (len(NOTEBOOKS) + 5) + "|",
    ]
    for r in sizes:
        lines.append(
            f"| {r['orders']:,} | {r['pipeline_s']:.1f} | "
            + " | ".join(_fmt(r["tasks_s"].get(n)) for n in NOTEBOOKS)
            + f" | {_noop(r)} | {_fmt(r.get('floor_s'))} | "
            f"{_fmt(r.get('local_testing_s'))} |"
        )
    lines += [
        "",
        "Inside the notebooks (cells tagged `bench-warehouse` / `bench-model`, from Papermill's "
        "cell durations), seconds:",
        "",
        "| orders | " + " | ".join(NOTEBOOKS) + " |",
        "|---:" * (len(NOTEBOOKS) + 1) + "|",
    ]
    for r in sizes:
        split = r.get("stage_split_s", {})
        lines.append(
            f"| {r['orders']:,} | "
            + " | ".join(
                f"{split.get(n, {}).get('warehouse_s', 0):.1f} wh / "
                f"{split.get(n, {}).get('model_s', 0):.1f} model"
                for n in NOTEBOOKS
            )
            + " |"
        )
    lines += [
        "",
        "Stage by stage, pipeline notebook against the floor's step (seconds; the notebook's time "
        "includes its kernel start, set-up cell, figures and HTML export), and the model each "
        "chose:",
        "",
        "| orders | ingest: 01 / floor | features (+ text model): 03 / floor | models: 04 / floor "
        "| chosen (gain over best baseline): pipeline / floor |",
        "|---:|---:|---:|---:|---|",
    ]
    for r in sizes:
        fd, pm, t = r.get("floor_detail", {}), r.get("pipeline_model", {}), r["tasks_s"]
        gain = (
            f"{pm.get('model', '–')} "
            f"({_fmt(100 * pm['improvement'] if pm.get('improvement') is not None else None)}%)"
        )
        held_out = fd.get("holdout_improvement")
        fgain = (
            f"{fd.get('chosen', '–')} ({_fmt(100 * held_out if held_out is not None else None)}%)"
        )
        lines.append(
            f"| {r['orders']:,} | {_fmt(t.get('01_ingest'))} / {_fmt(fd.get('ingest_s'))} | "
            f"{_fmt(t.get('03_features'))} / {_fmt(fd.get('features_s'))} | "
            f"{_fmt(t.get('04_model_comparison'))} / {_fmt(fd.get('models_s'))} | {gain} / "
            f"{fgain} |"
        )
    lines += [
        "",
        "## Peak resident memory (MiB)",
        "",
        "| orders | " + " | ".join(NOTEBOOKS) + " | warehouse server | floor | limit |",
        "|---:" * (len(NOTEBOOKS) + 4) + "|",
    ]
    for r in sizes:
        lines.append(
            f"| {r['orders']:,} | "
            + " | ".join(_fmt(r["kernel_peak_rss_mb"].get(n), ".0f") for n in NOTEBOOKS)
            + f" | {_fmt(r.get('server_peak_rss_mb'), '.0f')} | "
            f"{_fmt(r.get('floor_peak_rss_mb'), '.0f')} | "
            f"{_fmt(r.get('limit_peak_rss_mb'), '.0f')} |"
        )
    lines += ["", "![scaling](scaling.png)", ""]
    overhead = (
        " / ".join(
            f"{untagged:.0f} s"
            for untagged in (
                sum(r["tasks_s"].values())
                - sum(sum(v.values()) for v in r.get("stage_split_s", {}).values())
                for r in sizes
            )
        )
        + " at the sizes above"
    )
    timed_out = [r for r in sizes if r.get("local_testing_status") == "timeout"]
    lt_bound = "not measured in this run"
    if timed_out:
        r, limit = timed_out[0], results.get("local_testing_timeout_s", 600)
        feat = r["tasks_s"].get("03_features") or float("nan")
        lt_bound = (
            f"more than {limit:.0f} s / {feat:.1f} s ≈ {limit / feat:.0f}× at {r['orders']:,} "
            "orders"
        )
    lines += [
        "## How to read this",
        "",
        *(
            n.replace("{overhead}", overhead)
            .replace("{lt_bound}", lt_bound)
            .replace("{big}", f"{sizes[-1]['orders']:,}")
            for n in NOTES
        ),
        "",
    ]
    (folder / "RESULTS.md").write_text("\n".join(lines), encoding="utf-8")

    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    x = [r["orders"] for r in sizes]
    ax.plot(x, [r["pipeline_s"] for r in sizes], marker="o", label="pipeline (5 notebooks)")
    ax.plot(
        x,
        [r.get("floor_s") for r in sizes],
        marker="s",
        label="floor (pandas + scikit-learn script)",
    )
    ax.plot(
        x,
        [r["tasks_s"].get("03_features") for r in sizes],
        marker="^",
        ls="--",
        label="pipeline: 03_features",
    )
    lim = [(r["orders"], r["limit_s"]) for r in sizes if r.get("limit_s")]
    if lim:
        ax.plot(
            *zip(*lim, strict=True), marker="d", ls=":", label="limit: ingest + features (DuckDB)"
        )
    lt = [(r["orders"], r["local_testing_s"]) for r in sizes if r.get("local_testing_s")]
    if lt:
        ax.plot(
            *zip(*lt, strict=True), marker="x", ls="--", label="Snowpark local_testing: features"
        )
    cut = [r["orders"] for r in sizes if r.get("local_testing_status") == "timeout"]
    if cut:
        limit = results.get("local_testing_timeout_s", 600)
        ax.scatter(
            cut,
            [limit] * len(cut),
            marker="^",
            color="red",
            label=f"Snowpark local_testing: features unfinished after {limit:.0f} s",
        )
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
    paths = [Path(p) for p in sys.argv[1:]] or [Path(__file__).parent / "out" / "results.json"]
    write_report(merge([json.loads(p.read_text()) for p in paths]), Path(__file__).parent)
