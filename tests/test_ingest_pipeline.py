"""The whole pipeline on a new user's input: a flat CSV of order lines in their own column names,
without customers or reviews files, configured through env.yaml only.

One full `ploomber build` (~45 s): keep this file small.
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
from test_pipeline import NOTEBOOKS, ran

import reference
from conftest import REPO
from customer_analytics import config, contract, parameters, synthetic
from customer_analytics import warehouse as wh

pytestmark = pytest.mark.slow
RUN_DATE = "2026-11-01"


def build(work: Path, *extra: str) -> subprocess.CompletedProcess:
    """`ploomber build` run from ``work``, which holds the user's env.yaml (see
    :func:`new_user`)."""
    cmd = [
        str(Path(sys.executable).with_name("ploomber")),
        "build",
        "--entry-point",
        str(REPO / "pipeline.yaml"),
        *extra,
    ]
    env = {
        **os.environ,
        "PLOOMBER_STATS_ENABLED": "false",
        "PLOOMBER_VERSION_CHECK_DISABLED": "1",
        config.ROOT_ENV_VAR: str(REPO),
        config.ENV_FILE_VAR: str(work / "env.yaml"),
    }
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=env, timeout=900)


def connect(env: dict):
    return wh.connect(
        config.load(REPO, **{k: env[k] for k in ("data_dir", "warehouse_dir", "reports_dir")})
    )


def dag_status(env: dict, work: Path) -> dict[str, str]:
    """What a `ploomber build` would do now (rendered in-process, nothing executed)."""
    from ploomber.spec import DAGSpec

    old = os.environ.get(config.ENV_FILE_VAR)
    os.environ[config.ENV_FILE_VAR] = str(work / "env.yaml")  # the user's production profile
    try:
        dag = DAGSpec(str(REPO / "pipeline.yaml"), env=env).to_dag()
        dag.render(show_progress=False)
    finally:
        os.environ.pop(config.ENV_FILE_VAR) if old is None else os.environ.update(
            {config.ENV_FILE_VAR: old}
        )
    return {name: dag[name].exec_status.name for name in dag}


def _export(raw: Path, dest: Path) -> None:
    """Demo orders as a shop's flat export: German column names, a date (no time), a line total, no
    product type."""
    lines = reference.order_lines(raw / "orders.jsonl")
    pd.DataFrame(
        {
            "Kundennummer": lines["CUSTOMER_ID"],
            "Bestelldatum": lines["TS"].dt.strftime("%Y-%m-%d"),
            "Menge": lines["QUANTITY"],
            "Betrag": (lines["QUANTITY"] * lines["UNIT_PRICE"]).round(2),
        }
    ).to_csv(dest, index=False)


@pytest.fixture(scope="module")
def new_user(tmp_path_factory):
    """A new user's shop: one flat CSV of order lines (no customers, no reviews) and an edited
    env.yaml.

    The user's env.yaml is the project's with ``data_dir`` and the column mapping changed (and, for
    the test, its own warehouse and reports folders). Rather than editing the repository's file, the
    test puts it in the working directory, where Ploomber looks first, and points the notebooks'
    config at it.
    """
    work = tmp_path_factory.mktemp("new_user")
    synthetic.write(synthetic.generate(1000, seed=17), work / "demo")
    export = work / "my_shop"
    export.mkdir()
    _export(
        work / "demo", export / "orders.csv"
    )  # env.yaml still says orders.jsonl: found by its stem
    env = yaml.safe_load((REPO / "env.yaml").read_text())
    env.update(
        data_dir=str(export),
        warehouse_dir=str(work / "warehouse"),
        reports_dir=str(work / "reports"),
    )
    env["columns"] = {
        "orders": {
            "customer_id": "Kundennummer",
            "ts": "Bestelldatum",
            "quantity": "Menge",
            "amount": "Betrag",
        }
    }
    (work / "env.yaml").write_text(parameters.render_env(env))
    env = yaml.safe_load((work / "env.yaml").read_text())
    first = build(work)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-6000:]
    yield work, env, first
    wh.stop_local_server(work / "warehouse")


def test_a_new_user_runs_everything_on_a_flat_csv_without_customers_and_reviews(new_user):
    work, env, first = new_user
    assert ran(first.stdout) == set(NOTEBOOKS)
    folder = work / "reports" / RUN_DATE
    for name in NOTEBOOKS:
        nb = json.loads((folder / f"{name}.ipynb").read_text())
        errors = [
            o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"
        ]
        assert not errors, (name, errors[:1])
        assert (folder / f"{name}.html").stat().st_size > 0, name
    html = (folder / "01_ingest.html").read_text()
    assert "orders.csv" in html and "order lines accepted" in html
    assert "customers were derived from the orders" in html and "no review rows" in html
    assert "Missing: customers (derived" in html  # in the summary at the top
    s = connect(env)
    try:
        ref = reference.ingest(
            Path(env["data_dir"]), orders_file="orders.csv", columns=env["columns"]
        )
        lines = s.table("CLEAN_ORDER_LINES")
        assert lines.count() == len(ref.order_lines) > 0
        assert {r["PRODUCT"] for r in lines.select("PRODUCT").distinct().collect()} == {
            contract.ALL_PRODUCTS
        }
        assert s.table("CLEAN_CUSTOMERS").count() == len(ref.customers) > 0
        assert s.table("CLEAN_REVIEWS").count() == 0
        log = s.table("INGEST_LOG").to_pandas().set_index("SOURCE")["STATUS"].to_dict()
        assert (log["customers"], log["reviews"]) == ("derived", "missing")
        preds = s.table("PREDICTIONS")
        assert preds.count() > 0 and any(c.startswith("PRED_QTY_") for c in preds.columns)
    finally:
        s.close()


def test_ingest_reruns_when_and_only_when_an_input_changes(new_user):
    work, env, _ = new_user
    assert ran(build(work).stdout) == set()
    assert set(dag_status(env, work).values()) == {"Skipped"}
    orders = Path(env["data_dir"]) / "orders.csv"
    with orders.open("a", encoding="utf-8") as f:  # one more order line
        f.write(orders.read_text(encoding="utf-8").splitlines()[-1] + "\n")
    status = dag_status(env, work)
    assert (
        status["01_ingest"] == "WaitingExecution"
        and status["05_batch_prediction"] == "WaitingUpstream"
    )
    calls = Path(env["data_dir"]) / "calls"  # a new optional source appears
    calls.mkdir()
    (calls / "C000001_2026-10-01.txt").write_text("the cookies were great")
    assert dag_status(env, work)["01_ingest"] == "WaitingExecution"


def test_unusable_input_stops_the_build_with_the_message_alone_and_keeps_the_tables(
    new_user, tmp_path
):
    work, env, _ = new_user
    s = connect(env)
    try:
        before = s.table("CLEAN_ORDER_LINES").count(), s.table("CLEAN_CUSTOMERS").count()
    finally:
        s.close()
    bad = tmp_path / "raw"
    bad.mkdir()
    (bad / "orders.jsonl").write_bytes(b"")
    out = build(work, "--env--data_dir", str(bad), "--env--reports_dir", str(tmp_path / "reports"))
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "IngestError: orders.jsonl: the file is empty (0 bytes). Fix: re-export it." in text
    assert str(bad) not in text  # the data folder's location is not in the message
    # no traceback of the library
    assert "plan_sources" not in text and "customer_analytics/ingest/" not in text
    s = connect(env)
    try:
        assert (s.table("CLEAN_ORDER_LINES").count(), s.table("CLEAN_CUSTOMERS").count()) == before
    finally:
        s.close()
