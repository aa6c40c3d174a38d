"""A run date beyond the data (issue 12, case 6): every report says so first, and 04 stops instead
of promoting.

Seen on a real log: `run --run-date today` on data ending a month earlier gave no warning anywhere;
the held-out window was half empty and a model with held-out R² = -0.06 became the default.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import project_env, scratch_project
from customer_analytics import config, registry, reports, synthetic
from customer_analytics import warehouse as wh

pytestmark = pytest.mark.slow
LATE = "2026-12-20"  # the demo data ends before 2026-11-01


@pytest.fixture(scope="module")
def late_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("late")
    project = scratch_project(
        root,
        data_dir=str(root / "raw"),
        warehouse_dir=str(root / "warehouse"),
        reports_dir=str(root / "reports"),
        models="last_period,mean",
    )
    synthetic.write(synthetic.generate(600, seed=31), root / "raw")
    out = subprocess.run(
        [str(Path(sys.executable).with_name("customer-analytics")), "run", "--run-date", LATE],
        cwd=project,
        env=project_env(project),
        capture_output=True,
        text=True,
        timeout=900,
    )
    yield project, out
    wh.stop_local_server(root / "warehouse")


def test_model_comparison_stops_naming_both_dates_and_the_fix(late_run):
    project, out = late_run
    assert out.returncode == 1
    assert re.search(
        r"FAILED at 04_model_comparison: FreshnessError: The held-out window 2026-10-21 to "
        r"2026-12-19 reaches past the data, which ends 2026-10-3\d: its last \d+ days have no "
        r"order at all.*Fix: an earlier run_date \(at most 2026-1\d-\d\d\) or newer data",
        out.stderr,
    )
    params = config.load(project)
    reg = registry.open_registry(params)
    assert (
        reg.list_versions(registry.model_name(params.horizon_days)) == []
    )  # nothing registered, nothing promoted


def test_every_report_says_first_that_the_data_ends_before_the_run_date(late_run):
    project, _ = late_run
    folder = config.load(project).reports_dir / LATE
    for name in ("01_ingest", "02_eda", "03_features", "04_model_comparison"):
        html = (folder / f"{name}.html").read_text()
        note = re.search(
            r"⚠ <strong>The run date, 20 Dec 2026, is (\d+) days after the last order", html
        )
        assert note, name
        sections = [
            h.start()
            for h in re.finditer(r"<h[1-6][^>]*>(.*?)</h[1-6]>", html, re.S)
            if ": summary" not in h.group(1)
        ]
        assert html.index(note.group(0)) < sections[0], (
            name
        )  # above or in the summary, before any section
    assert "This step FAILED" in (folder / "04_model_comparison.html").read_text()


def test_the_index_shows_the_warning_with_the_run(late_run):
    project, _ = late_run
    row = next(
        r for r in reports.collect_runs(config.load(project).reports_dir) if r.run_date == LATE
    )
    assert row.status == "failed" and row.failed_step == "04_model_comparison"
    assert any(b.startswith("The run date, 20 Dec 2026, is") for b in row.banner)
    html = (config.load(project).reports_dir / "index.html").read_text()
    assert "⚠ The run date, 20 Dec 2026, is" in html
