"""The whole pipeline with orders from a warehouse table and no input file at all (issue 14, point
8).

One full `ploomber build` (slow).
"""

from __future__ import annotations

import json

import pytest
import yaml
from test_ingest_pipeline import NOTEBOOKS, RUN_DATE, build, connect, ran

import reference
from conftest import REPO
from customer_analytics import config, synthetic
from customer_analytics import warehouse as wh

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def from_table(tmp_path_factory):
    work = tmp_path_factory.mktemp("table_user")
    synthetic.write(synthetic.generate(800, seed=23), work / "demo")
    lines = reference.order_lines(work / "demo" / "orders.jsonl")
    env = yaml.safe_load((REPO / "env.yaml").read_text())
    (work / "no_files").mkdir()
    env.update(
        data_dir=str(work / "no_files"),
        warehouse_dir=str(work / "warehouse"),
        reports_dir=str(work / "reports"),
        orders_table="RAW_SHOP_ORDERS",
        customers_file="",
        reviews_file="",
        calls_dir="",
        scoring_set="all",
    )
    (work / "env.yaml").write_text(yaml.safe_dump(env, sort_keys=False))
    s = wh.connect(
        config.load(REPO, **{k: env[k] for k in ("data_dir", "warehouse_dir", "reports_dir")})
    )
    table = lines[["ORDER_ID", "CUSTOMER_ID", "TS", "PRODUCT", "QUANTITY", "UNIT_PRICE"]]
    wh.write_pandas(
        s,
        table.assign(TS=table["TS"].astype("datetime64[us]")),
        "RAW_SHOP_ORDERS",
        work / "staging",
    )
    s.close()
    result = build(work)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    yield work, env, result, len(lines)
    wh.stop_local_server(work / "warehouse")


def test_a_pipeline_whose_orders_come_from_a_table_runs_end_to_end(from_table):
    work, env, result, n_lines = from_table
    assert ran(result.stdout) == set(NOTEBOOKS)
    folder = work / "reports" / RUN_DATE
    for name in NOTEBOOKS:
        nb = json.loads((folder / f"{name}.ipynb").read_text())
        assert not [
            o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"
        ], name
    html = (folder / "01_ingest.html").read_text()
    assert "table in the warehouse" in html and "RAW_SHOP_ORDERS" in html
    s = connect(env)
    try:
        log = s.table("INGEST_LOG").to_pandas().set_index("SOURCE")
        assert log.loc["orders", "FILE_NAME"] == "RAW_SHOP_ORDERS"
        assert log.loc["orders", "ROWS_READ"] == log.loc["orders", "ACCEPTED"] == n_lines
        assert s.table("PREDICTIONS").count() > 0
    finally:
        s.close()
