"""Which tests got slower: two runs of the suite compared, test by test and file by file.

Usage::

    PYTEST_ADDOPTS="--junitxml=/tmp/before.xml" make test      # on the older commit
    PYTEST_ADDOPTS="--junitxml=/tmp/after.xml" make test       # on this one
    .venv/bin/python bench/test_durations.py /tmp/before.xml /tmp/after.xml [--out FILE.md]

A test's time in pytest's JUnit report includes its set-up and tear-down, so a module-scoped
fixture (a whole pipeline build, say) is charged to the first test that uses it; when tests are
added or reordered that cost moves between tests of the same file. The per-file totals below do not
move with it, which is why both are shown. Tests shorter than ``--min-seconds`` in both runs are
left out of the per-test verdict: their times are mostly noise.
"""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path


def durations(path: Path) -> dict[str, tuple[float, str]]:
    """Test id -> (seconds, outcome) from a JUnit XML report."""
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = tag
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        out[test_id] = (float(case.get("time") or 0.0), outcome)
    return out


def file_of(test_id: str) -> str:
    return test_id.split("::", 1)[0].rsplit(".", 1)[-1]


def compare(before: Path, after: Path, min_seconds: float, slower: float) -> str:
    old, new = durations(before), durations(after)
    common = sorted(set(old) & set(new))
    lines = [
        f"# Test durations: {before.name} against {after.name}",
        "",
        f"- tests: {len(old)} before, {len(new)} after, {len(common)} in both",
        f"- whole suite (sum of test times): {sum(t for t, _ in old.values()):.0f} s before, "
        f"{sum(t for t, _ in new.values()):.0f} s after",
        "",
        "## Per file (tests in both runs)",
        "",
        "| file | tests | before s | after s | after / before |",
        "|---|---:|---:|---:|---:|",
    ]
    per_file: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for test_id in common:
        row = per_file[file_of(test_id)]
        row[0] += 1
        row[1] += old[test_id][0]
        row[2] += new[test_id][0]
    for name, (n, b, a) in sorted(per_file.items(), key=lambda kv: -kv[1][1]):
        ratio = f"{a / b:.2f}" if b > 0 else "–"
        lines.append(f"| {name} | {n} | {b:.1f} | {a:.1f} | {ratio} |")
    flagged = [
        (t, old[t][0], new[t][0])
        for t in common
        if max(old[t][0], new[t][0]) >= min_seconds
        and new[t][0] > old[t][0] * (1 + slower)
        and old[t][1] == new[t][1] == "passed"
    ]
    considered = sum(
        1
        for t in common
        if max(old[t][0], new[t][0]) >= min_seconds and old[t][1] == new[t][1] == "passed"
    )
    lines += [
        "",
        f"## Tests more than {slower:.0%} slower ({considered} tests of {min_seconds:g} s or more "
        "in either run, passed in both)",
        "",
    ]
    if flagged:
        lines += ["| test | before s | after s | after / before |", "|---|---:|---:|---:|"]
        for t, b, a in sorted(flagged, key=lambda r: r[1] - r[2]):
            ratio = f"{a / b:.2f}" if b else "–"
            lines.append(f"| {t} | {b:.1f} | {a:.1f} | {ratio} |")
    else:
        lines.append("None.")
    outcomes = [t for t in common if old[t][1] != new[t][1]]
    if outcomes:
        lines += ["", "## Outcome changed", ""]
        lines += [f"- {t}: {old[t][1]} -> {new[t][1]}" for t in outcomes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--slower", type=float, default=0.10, help="fraction: 0.10 is 10%% slower")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    text = compare(args.before, args.after, args.min_seconds, args.slower)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
