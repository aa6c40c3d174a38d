"""The whole pipeline on other shapes of input: without the optional files, and a new user's flat CSV.

Two full `ploomber build`s (~45 s each): keep this file small.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO
from test_pipeline import NOTEBOOKS, ploomber_build, ran

from customer_analytics import config, contract, reference, synthetic
from customer_analytics import warehouse as wh

pytestmark = pytest.mark.slow
RUN_DATE = "2026-11-01"


def reports(work: Path) -> Path:
    return work / "reports" / RUN_DATE


def assert_five_reports(work: Path) -> None:
    for name in NOTEBOOKS:
        nb = json.loads((reports(work) / f"{name}.ipynb").read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, (name, errors[:1])
        assert (reports(work) / f"{name}.html").stat().st_size > 0, name


def session_for(work: Path):
    return wh.connect(config.load(REPO, data_dir=str(work / "raw"), warehouse_dir=str(work / "warehouse"),
                                  reports_dir=str(work / "reports")))


def dag_status(work: Path) -> dict[str, str]:
    """What a `ploomber build` would do now (rendered in-process, nothing executed)."""
    from ploomber.spec import DAGSpec

    env = config.read_env(REPO)
    env.update(data_dir=str(work / "raw"), warehouse_dir=str(work / "warehouse"), reports_dir=str(work / "reports"))
    dag = DAGSpec(str(REPO / "pipeline.yaml"), env=env).to_dag()
    dag.render(show_progress=False)
    return {name: dag[name].exec_status.name for name in dag}


# --------------------------------------------------------------------------- without customers and reviews
@pytest.fixture(scope="module")
def orders_only(tmp_path_factory):
    work = tmp_path_factory.mktemp("orders_only")
    synthetic.write(synthetic.generate(1000, seed=13), work / "raw")
    (work / "raw" / "customers.csv").unlink()
    (work / "raw" / "reviews.jsonl").unlink()
    first = ploomber_build(work)
    yield work, first
    wh.stop_local_server(work / "warehouse")


def test_pipeline_completes_without_customers_and_reviews_and_says_so(orders_only):
    work, first = orders_only
    assert ran(first.stdout) == dict.fromkeys(NOTEBOOKS, True)
    assert_five_reports(work)
    html = (reports(work) / "01_ingest.html").read_text()
    assert "customers were derived from the orders" in html and "no review rows" in html
    assert "Missing: customers (derived" in html  # in the summary at the top
    s = session_for(work)
    try:
        ref = reference.ingest(work / "raw")
        assert s.table("CLEAN_CUSTOMERS").count() == len(ref.customers) > 0
        assert s.table("CLEAN_REVIEWS").count() == 0
        assert s.table("PREDICTIONS").count() > 0
        log = s.table("INGEST_LOG").to_pandas().set_index("SOURCE")["STATUS"].to_dict()
        assert log["customers"] == "derived" and log["reviews"] == "missing"
    finally:
        s.close()


def test_ingest_reruns_when_and_only_when_an_input_changes(orders_only):
    work, _ = orders_only
    assert ran(ploomber_build(work).stdout) == dict.fromkeys(NOTEBOOKS, False)
    assert set(dag_status(work).values()) == {"Skipped"}
    orders = work / "raw" / "orders.jsonl"
    with orders.open("a", encoding="utf-8") as f:  # one more order
        f.write(orders.read_text(encoding="utf-8").splitlines()[-1].replace('"order_id":"O', '"order_id":"N') + "\n")
    status = dag_status(work)
    assert status["01_ingest"] == "WaitingExecution" and status["05_batch_prediction"] == "WaitingUpstream"
    calls = work / "raw" / "calls"  # a new optional source appears
    calls.mkdir()
    (calls / "C000001_2026-10-01.txt").write_text("the cookies were great")
    assert dag_status(work)["01_ingest"] == "WaitingExecution"


# --------------------------------------------------------------------------- a new user's flat CSV
def _export(raw: Path, dest: Path) -> None:
    """Demo orders as a shop's flat export: German column names, a date (no time), a line total, no product type."""
    lines = reference.order_lines(raw / "orders.jsonl")
    pd.DataFrame({"Kundennummer": lines["CUSTOMER_ID"], "Bestelldatum": lines["TS"].dt.strftime("%Y-%m-%d"),
                  "Menge": lines["QUANTITY"], "Betrag": (lines["QUANTITY"] * lines["UNIT_PRICE"]).round(2)}
                 ).to_csv(dest, index=False)


def test_a_new_user_runs_everything_on_a_flat_csv_by_editing_env_yaml(tmp_path):
    raw = tmp_path / "demo"
    synthetic.write(synthetic.generate(1000, seed=17), raw)
    export = tmp_path / "my_shop"
    export.mkdir()
    _export(raw, export / "orders.csv")  # the only file: no customers, no reviews
    # the user's env.yaml: the project's, with data_dir and the column mapping changed (and, for the test, its
    # own warehouse and reports folders). Rather than editing the repository's file, the test puts it in the
    # working directory, where Ploomber looks first, and points the notebooks' config at it
    env = yaml.safe_load((REPO / "env.yaml").read_text())
    env.update(data_dir=str(export), warehouse_dir=str(tmp_path / "warehouse"), reports_dir=str(tmp_path / "reports"))
    env["columns"] = {"orders": {"customer_id": "Kundennummer", "ts": "Bestelldatum", "quantity": "Menge",
                                 "amount": "Betrag"}}
    (tmp_path / "env.yaml").write_text(yaml.safe_dump(env, sort_keys=False))
    cmd = [str(Path(sys.executable).with_name("ploomber")), "build", "--entry-point", str(REPO / "pipeline.yaml")]
    procenv = {**os.environ, "PLOOMBER_STATS_ENABLED": "false", "PLOOMBER_VERSION_CHECK_DISABLED": "1",
               config.ROOT_ENV_VAR: str(REPO), config.ENV_FILE_VAR: str(tmp_path / "env.yaml")}
    try:
        out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=procenv, timeout=900)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-6000:]
        assert ran(out.stdout) == dict.fromkeys(NOTEBOOKS, True)
        for name in NOTEBOOKS:
            assert (tmp_path / "reports" / RUN_DATE / f"{name}.html").stat().st_size > 0, name
        html = (tmp_path / "reports" / RUN_DATE / "01_ingest.html").read_text()
        assert "orders.csv" in html and "order lines accepted" in html
        s = wh.connect(config.load(REPO, **{k: env[k] for k in ("data_dir", "warehouse_dir", "reports_dir")}))
        try:
            ref = reference.ingest(export, orders_file="orders.csv", columns=env["columns"])
            lines = s.table("CLEAN_ORDER_LINES")
            assert lines.count() == len(ref.order_lines) > 0
            assert {r["PRODUCT"] for r in lines.select("PRODUCT").distinct().collect()} == {contract.ALL_PRODUCTS}
            preds = s.table("PREDICTIONS")
            assert preds.count() > 0 and any(c.startswith("PRED_QTY_") for c in preds.columns)
        finally:
            s.close()
    finally:
        wh.stop_local_server(tmp_path / "warehouse")


def test_unusable_input_stops_the_build_with_the_message_alone_and_keeps_the_tables(orders_only, tmp_path):
    work, _ = orders_only
    s = session_for(work)
    try:
        before = s.table("CLEAN_ORDER_LINES").count(), s.table("CLEAN_CUSTOMERS").count()
    finally:
        s.close()
    bad = tmp_path / "raw"
    bad.mkdir()
    (bad / "orders.jsonl").write_bytes(b"")
    cmd = [str(Path(sys.executable).with_name("ploomber")), "build", "--entry-point", "pipeline.yaml",
           "--env--data_dir", str(bad), "--env--warehouse_dir", str(work / "warehouse"),
           "--env--reports_dir", str(tmp_path / "reports")]
    procenv = {**os.environ, "PLOOMBER_STATS_ENABLED": "false", "PLOOMBER_VERSION_CHECK_DISABLED": "1"}
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=procenv, timeout=600)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert f"IngestError: {bad / 'orders.jsonl'}: the file is empty (0 bytes). Fix: re-export it." in text
    assert "plan_sources" not in text and "customer_analytics/ingest.py" not in text  # no traceback of the library
    s = session_for(work)
    try:
        assert (s.table("CLEAN_ORDER_LINES").count(), s.table("CLEAN_CUSTOMERS").count()) == before
    finally:
        s.close()
