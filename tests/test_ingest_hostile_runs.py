"""Hostile input through whole ingest runs on the embedded warehouse (issue 15: 2, 10, 11, 12, 16,
17, 18), and through the scheduled command (what reaches the index, run.json, the partial notebook,
the log and cron's mail).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import snowflake.snowpark.functions as F

from conftest import REPO, make_params
from customer_analytics import config, ingest, parameters
from customer_analytics import warehouse as wh
from customer_analytics.contract import Reason
from customer_analytics.narrative import ingest as story

NAME, EMAIL = "Rosa Fischer", "rosa.fischer1@example.com"
SECRET = "root:x:0:0:SECRET-OUTSIDE-DATA-DIR"
#: Customer ids that are not single values (issue 15.16), ids kept exactly, and ids refused.
NOT_VALUES = [{"id": "C9"}, ["C9"], True]
EXACT_IDS = ["C🍪7", "לקוח9", "C'8;DROP TABLE x", "<b>C10</b>", "{{C11}}"]
INVISIBLE_IDS = ["C\u200b12", "\u202eC13", "C\t14"]


def order(i: int, cid, day: int = 5) -> str:
    return json.dumps(
        {
            "order_id": f"O{i}",
            "customer_id": cid,
            "ts": f"2026-01-{day:02d}T10:00:00",
            "items": [{"product": "choc", "quantity": 1 + i % 3, "unit_price": 2.5}],
        },
        ensure_ascii=False,
    )


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A data folder whose path holds spaces, no customers file, hostile ids and transcripts."""
    base = tmp_path_factory.mktemp("hostile")
    data = base / "Acme Corp Shop" / "exports 2026"
    (data / "calls").mkdir(parents=True)
    lines = [order(i, f"C{i % 30}", 1 + i % 28) for i in range(400)]
    lines += [order(1000 + k, cid) for k, cid in enumerate(NOT_VALUES + EXACT_IDS + INVISIBLE_IDS)]
    (data / "orders.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    outside = base / "passwd"
    outside.write_text(f"customer_id: C3\nts: 2026-01-02\n\n{SECRET}\n")
    (data / "calls" / "C000023_2026-01-02_hotline.txt").symlink_to(outside)  # issue 15.10
    (data / "calls" / f"{EMAIL}_2026-01-03.txt").write_text(
        "Agent: hello\n"
    )  # issue 15.11: unknown
    for i in range(40):
        (data / "calls" / f"C{i % 30}_2026-01-{1 + i % 28:02d}_{i}.txt").write_text(
            f"Call {i}: all fine.\n"
        )
    (data / "calls" / "scan.pdf").write_bytes(b"%PDF-1.4")
    warehouse = base / "wh"
    p = make_params(data, warehouse, customers_file=None, reviews_file=None, max_reject_share=0.5)
    s = wh.connect(p)
    result = ingest.run(s, p, on_error="return")
    yield data, p, s, result
    s.close()
    wh.stop_local_server(warehouse)


def test_a_transcript_linked_outside_data_dir_is_refused_and_never_read(shop):
    """Issue 15.10: calls/C000023_….txt -> /etc/passwd landed in CLEAN_REVIEWS.TEXT."""
    _, _, s, result = shop
    assert result.ok
    texts = " ".join(r["TEXT"] or "" for r in s.table("CLEAN_REVIEWS").collect())
    assert "SECRET" not in texts and "Call 3: all fine." in texts
    raw = " ".join(str(r["RECORD"]) for r in s.table("RAW_CALLS").collect())
    assert "SECRET" not in raw  # not even staged
    refused = (
        s.table("REJECTED_REVIEWS").filter(F.col("REASON") == Reason.OUTSIDE_DATA_DIR).collect()
    )
    assert [(r["SOURCE_FILE"], r["FIELD"]) for r in refused] == [
        ("calls/C000023_2026-01-02_hotline.txt", "file")
    ]


def test_transcript_names_never_reach_the_report_which_names_files_by_position(shop):
    """Issue 15.11: transcript file names reached the 01 report's examples."""
    _, _, _, result = shop
    reasons = ingest.reasons_frame(result)
    shown = reasons.to_string() + story.summary(result) + story.missing_note(result)
    assert EMAIL not in shown and "rosa" not in shown.lower() and "C000023" not in shown
    examples = " ".join(reasons.xs("calls", level="source")["examples"])
    assert "file 1 of calls/ in name order" in examples  # C000023_… sorts first
    assert "1 entries of calls/ were not read (1 a document" in story.summary(result)


def test_customer_ids_that_are_not_single_values_are_rejected_without_a_customers_file(shop):
    """Issue 15.16: {"id": …}, […] and true were accepted as customer ids."""
    _, _, s, result = shop
    customers = {r["CUSTOMER_ID"] for r in s.table("CLEAN_CUSTOMERS").collect()}
    assert not customers & {'{"id":"C9"}', '{"id": "C9"}', '["C9"]', "true"}
    rejected = s.table("REJECTED_ORDER_LINES").select("LINE_NO", "FIELD", "REASON").collect()
    by_line = {r["LINE_NO"]: (r["FIELD"], r["REASON"]) for r in rejected}
    for k in range(len(NOT_VALUES)):
        assert by_line[401 + k] == ("customer_id", Reason.NOT_A_VALUE)
    first_invisible = 401 + len(NOT_VALUES) + len(EXACT_IDS)
    for k in range(len(INVISIBLE_IDS)):
        assert by_line[first_invisible + k] == ("customer_id", Reason.INVISIBLE_IN_ID)
    assert set(EXACT_IDS) <= customers  # emoji, other scripts, SQL/HTML/template characters: exact
    assert not customers & set(INVISIBLE_IDS)


def test_messages_of_the_run_name_no_place_and_no_person(shop):
    """Issue 15.12: the data folder's path (with spaces) must not show in any message."""
    data, p, s, result = shop
    bad = make_params(
        data,
        p.warehouse_dir,
        customers_file=None,
        reviews_file=None,
        max_reject_share=0.0,
        orders_file="orders.jsonl",
    )
    failed = ingest.run(s, bad, on_error="return")
    assert not failed.ok and str(data) in failed.message
    assert (
        "Acme" not in failed.public
        and "exports 2026" not in failed.public
        and "rosa" not in failed.public
    )
    assert failed.public.startswith("orders.jsonl: ")


def test_a_calls_threshold_stop_names_the_folder_and_a_file_by_position(tmp_path):
    """Issue 15.18: the calls threshold message named no file."""
    data = tmp_path / "data"
    (data / "calls").mkdir(parents=True)
    (data / "orders.jsonl").write_text("\n".join(order(i, f"C{i}") for i in range(20)) + "\n")
    for i in range(5):
        (data / "calls" / f"C{i}_2026-01-0{1 + i}.txt").write_text("fine")
    for i in range(3):
        (data / "calls" / f"{EMAIL}_{i}.txt").write_text("no date in the name, no header")
    p = make_params(data, tmp_path / "wh", customers_file=None, reviews_file=None)
    s = wh.connect(p)
    try:
        result = ingest.run(s, p, on_error="return")
    finally:
        s.close()
        wh.stop_local_server(p.warehouse_dir)
    assert not result.ok and result.source == "calls"
    assert result.public.startswith("calls: 3 of 8 calls rejected (37.5%)")
    assert (
        "'unparseable date' in 'ts' (3 rows, e.g. file 6 of calls/ in name order)" in result.public
        or "(3 rows, e.g. file 6 of calls/ in name order)" in result.public
    )
    assert EMAIL not in result.public and "rosa" not in result.public


def test_crlf_in_a_quoted_field_reaches_the_raw_table_exactly(tmp_path):
    """Issue 15.17, end to end: RAW_CUSTOMERS.RECORD keeps the CRLF inside the quoted name."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "orders.jsonl").write_text("\n".join(order(i, f"C{i % 3}") for i in range(10)) + "\n")
    (data / "customers.csv").write_bytes(
        b'customer_id,name,signup_date\r\nC0,"Anna\r\nMaria",2026-01-01\r\n'
        b"C1,Ben,2026-01-01\r\nC2,Eve,2026-01-01\r\n"
    )
    p = make_params(data, tmp_path / "wh", reviews_file=None, calls_dir=None)
    s = wh.connect(p)
    try:
        ingest.run(s, p)
        records = [r["RECORD"] for r in s.table("RAW_CUSTOMERS").sort("LINE_NO").collect()]
        assert records[0] == 'C0,"Anna\r\nMaria",2026-01-01'
        assert s.table("CLEAN_CUSTOMERS").count() == 3
    finally:
        s.close()
        wh.stop_local_server(p.warehouse_dir)


# --------------------------------------------------------------------------- the scheduled command
@pytest.mark.slow
def test_a_headerless_customers_file_leaks_nothing_into_the_index_run_json_notebook_log_or_mail(
    tmp_path,
):
    """Issue 15.2 and 15.12 end to end: the stop message listed the first customer's name and e-mail
    in reports/index.html, run.json, the partial notebook, the log and cron's mail; the data folder
    showed as "Acme Corp Shop/exports 2026/…"."""
    data = tmp_path / "srv" / "Acme Corp Shop" / "exports 2026"
    data.mkdir(parents=True)
    (data / "orders.jsonl").write_text("\n".join(order(i, f"C{i % 5}") for i in range(50)) + "\n")
    (data / "customers.csv").write_text(
        f"C0,{NAME},{EMAIL},2026-01-02,DE,email,1980\r\n"
        "C1,Jan Kowalski,jan.k@example.org,2026-01-03,PL,ads,1975\r\n"
    )
    reports_dir, logs = tmp_path / "reports", tmp_path / "logs"
    values = {
        **config.read_env(REPO),
        "data_dir": str(data),
        "warehouse_dir": str(tmp_path / "wh"),
        "reports_dir": str(reports_dir),
        "models": "last_period,mean",
    }
    env_file = tmp_path / "env.shop.yaml"
    env_file.write_text(parameters.render_env(values))
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        **{k: v for k, v in os.environ.items() if k in ("HOME", "TMPDIR", "PYTHONPATH")},
        config.ENV_FILE_VAR: str(env_file),
    }
    exe = Path(sys.executable).with_name("customer-analytics")
    try:
        out = subprocess.run(
            [str(exe), "run", "--run-date", "2026-02-01", "--log-dir", str(logs)],
            cwd=REPO,
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
    finally:
        wh.stop_local_server(tmp_path / "wh")
    assert out.returncode != 0
    mail = out.stdout + out.stderr
    assert "probably has no header line" in mail
    places = [
        reports_dir / "index.html",
        *reports_dir.rglob("run.json"),
        *reports_dir.rglob("*.ipynb"),
        *reports_dir.rglob("*.html"),
        *logs.glob("*.log"),
    ]
    assert any(p.suffix == ".ipynb" for p in places) and any(p.name == "run.json" for p in places)
    texts = {str(p): p.read_text(encoding="utf-8") for p in places} | {"mail": mail}
    for where, text in texts.items():
        for personal in (NAME, EMAIL, "Kowalski", "jan.k@"):
            assert personal not in text, (where, personal)
        if where.endswith(".ipynb"):  # the executed copy keeps its injected parameters (debugging);
            text = json.dumps([c.get("outputs", []) for c in json.loads(text)["cells"]])  # outputs
        for place in ("Acme Corp", "exports 2026"):
            assert place not in text, (where, place)
