"""Each realistic export (tests/realistic_corpus.py) runs the five notebooks through settings alone.

The case's settings go into the project's env.yaml, as a user would write them (no input file is
edited); `customer-analytics run` then ingests, explores, builds features, compares models (the
BTYD candidate among them) and scores. The test prints, per case, the rows read / accepted /
rejected by reason and the chosen model (`pytest -s` shows them).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import snowflake.snowpark.functions as F
from realistic_corpus import CASES, write

from conftest import progress, project_env, scratch_project
from customer_analytics import config, contract, registry, reports
from customer_analytics import warehouse as wh

pytestmark = pytest.mark.slow
MODELS = "zero,last_period,mean,btyd,ridge"


@pytest.fixture(scope="module", params=list(CASES))
def case_run(request, tmp_path_factory):
    case = request.param
    root = tmp_path_factory.mktemp(case)
    data = write(case, root / "raw", seed=11)
    project = scratch_project(
        root / "project",
        data_dir=str(data),
        warehouse_dir=str(root / "warehouse"),
        reports_dir=str(root / "reports"),
        models=MODELS,
        **CASES[case],
    )
    progress(f"{case}: customer-analytics run (five notebooks)")
    exe = Path(sys.executable).with_name("customer-analytics")
    out = subprocess.run(
        [str(exe), "run"],
        cwd=project,
        env=project_env(project),
        capture_output=True,
        text=True,
        timeout=1500,
    )
    params = config.load(project)
    session = wh.connect(params) if out.returncode == 0 else None
    yield case, params, session, out
    if session is not None:
        session.close()
    wh.stop_local_server(params.warehouse_dir)


def test_the_five_notebooks_run_and_the_accounting_balances(case_run):
    case, params, s, out = case_run
    assert out.returncode == 0, out.stderr[-3000:]
    log = {r["SOURCE"]: r.as_dict() for r in s.table("INGEST_LOG").collect()}
    orders = log["orders"]
    assert orders["ROWS_READ"] > 0 and orders["ACCEPTED"] > 0
    assert orders["ROWS_READ"] == (
        orders["ACCEPTED"] + orders["REJECTED"] + orders["EXCLUDED"] + orders["SAMPLED_OUT"]
    )
    reasons: dict[str, int] = {}
    for r in s.table("INGEST_REASONS").filter(F.col("SOURCE") == "orders").collect():
        reasons[r["REASON"]] = reasons.get(r["REASON"], 0) + r["N_ROWS"]
    assert sum(n for r, n in reasons.items() if r not in contract.EXCLUSIONS) == orders["REJECTED"]
    folder = params.reports_dir / str(params.run_date)
    for nb in ("01_ingest", "02_eda", "03_features", "04_model_comparison", "05_batch_prediction"):
        assert (folder / f"{nb}.html").is_file(), nb
    preds = s.table("PREDICTIONS").filter(F.col("RUN_DATE") == F.lit(params.run_date)).count()
    customers = s.table("CLEAN_CUSTOMERS").count()
    assert 0 < preds <= customers  # scoring_set: all
    mv = registry.open_registry(params).get(registry.model_name(params.horizon_days))
    held_out = {
        k: round(v, 2)
        for k, v in mv.meta["metrics"].items()
        if "spend" in k.lower() or k in ("rmse", "mae")
    }
    print(
        f"\n{case}: orders read {orders['ROWS_READ']:,}, accepted {orders['ACCEPTED']:,}, "
        f"rejected {orders['REJECTED']:,}, excluded {orders['EXCLUDED']:,}; by reason "
        f"{dict(sorted(reasons.items()))}; chosen {mv.meta['params']['candidate']} "
        f"({mv.version}); held-out metrics "
        f"{held_out}"
    )


def test_the_reports_say_what_the_settings_did(case_run):
    case, params, _, out = case_run
    assert out.returncode == 0, out.stderr[-3000:]
    html = (
        (params.reports_dir / str(params.run_date) / "01_ingest.html")
        .read_text(encoding="utf-8")
        .lower()
    )
    if case == "gift_invoices":  # cancellations netted, guests kept out with their revenue
        assert "return" in html and "guest" in html
    if case == "cd_log":  # no customers file: customers derived from the orders
        assert "derived" in html or "from the orders" in html
    if case == "shop_export":  # order fields on first rows only; e-mail addresses as ids
        assert "order fields given once per order" in html
        for f in sorted(params.reports_dir.rglob("*")):
            if f.is_file():
                assert "@example.com" not in f.read_text(errors="replace"), f.name
    runs = reports.collect_runs(params.reports_dir)
    assert [(r.run_date, r.status) for r in runs] == [(str(params.run_date), "succeeded")]
