"""No personal data and no connection details in any report the scheduled runs produced.

Scans every generated HTML file (each notebook's report and the run index) and every executed
notebook copy for the actual names and e-mail addresses of the input customers.
"""

from __future__ import annotations

import csv
import json
import re

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def personal_data(scheduled_runs) -> dict[str, set[str]]:
    names, emails = set(), set()
    for raw in (scheduled_runs.raw, scheduled_runs.broken):
        with (raw / "customers.csv").open(encoding="utf-8") as f:
            for row in csv.DictReader(f):
                names.add(row["name"].strip().lower())
                emails.add(row["email"].strip().lower())
    assert len(names) > 100 and len(emails) > 100
    return {"name": names, "e-mail": emails}


def generated(scheduled_runs, suffix: str):
    files = sorted(scheduled_runs.reports.rglob(f"*{suffix}"))
    assert files, f"no {suffix} files were generated"
    return files


def leaks(text: str, personal_data: dict[str, set[str]]) -> list[str]:
    low = text.lower()
    tokens = set(re.findall(r"[\w.+-]+@[\w.-]+", low))
    found = [f"e-mail {e}" for e in personal_data["e-mail"] & tokens]
    found += [f"name {n}" for n in personal_data["name"] if n in low]
    found += [f"something like an e-mail: {t}" for t in tokens if t.endswith(".com")][:3]
    return found


def test_no_report_contains_a_customer_name_or_email(scheduled_runs, personal_data):
    html = generated(scheduled_runs, ".html")
    assert (
        scheduled_runs.reports / "index.html" in html and len(html) >= 11
    )  # 2 runs x 5 notebooks + index
    for path in html:
        assert not leaks(path.read_text(encoding="utf-8"), personal_data), path


def test_no_executed_notebook_contains_a_customer_name_or_email(scheduled_runs, personal_data):
    for path in generated(scheduled_runs, ".ipynb"):
        text = json.dumps(
            json.loads(path.read_text(encoding="utf-8")), ensure_ascii=False
        )  # sources and outputs
        assert not leaks(text, personal_data), path


def test_no_report_contains_connection_details_or_local_paths(scheduled_runs):
    state = (
        json.loads((scheduled_runs.params.warehouse_dir / "server.json").read_text())
        if (scheduled_runs.params.warehouse_dir / "server.json").exists()
        else {}
    )
    forbidden = [
        "127.0.0.1",
        "localhost",
        "password",
        "fakesnow",
        str(scheduled_runs.work),
        "/tmp/",
        "/home/",
    ]
    if state.get("port"):
        forbidden.append(f":{state['port']}")
    for path in generated(scheduled_runs, ".html"):
        text = path.read_text(encoding="utf-8")
        found = [f for f in forbidden if f in text]
        assert not found, f"{path}: {found}"
    # the headline records the index is built from hold aggregates only
    for path in scheduled_runs.reports.rglob("headlines/*.json"):
        text = path.read_text()
        assert not any(f in text for f in forbidden) and "@" not in text, path
