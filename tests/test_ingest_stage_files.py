"""Snowflake-only branch: a source on a stage (``orders_file: '@STAGE/path/file.csv'``) is fetched
with GET into
the staging folder, then pre-checked and read like a local file. Snowflake cannot run here: a
stand-in for
``session.file.get`` records the call and delivers the file the way the connector does (into the
folder)."""

from __future__ import annotations

import shutil

import pytest
from realistic_corpus import CASES, write

from conftest import REPO
from customer_analytics import config, ingest
from customer_analytics.ingest import stage


class RecordingFiles:
    """``session.file`` with ``get`` recorded; it copies ``source`` as the stage's file."""

    def __init__(self, source):
        self.source, self.calls = source, []

    def get(self, stage_location: str, target_directory: str):
        self.calls.append((stage_location, target_directory))
        shutil.copy(self.source, f"{target_directory}/{stage_location.rsplit('/', 1)[-1]}")


class StageSession:
    def __init__(self, source):
        self.file = RecordingFiles(source)


@pytest.fixture
def staged_plan(tmp_path, monkeypatch):
    data = write("gift_invoices", tmp_path / "data", seed=4, customers=30)
    settings = {**CASES["gift_invoices"], "orders_file": "@SHOP_STAGE/exports/online_retail.csv"}
    p = config.load(
        REPO, data_dir=str(tmp_path / "elsewhere"), warehouse_dir=str(tmp_path / "wh"), **settings
    )
    monkeypatch.setattr(
        config.Params, "is_local", property(lambda self: False)
    )  # as with a Snowflake connection
    (plan,) = [x for x in ingest.plan_sources(p) if x.source.name == "orders"]
    return plan, data / "online_retail.csv", tmp_path / "staging"


def test_a_stage_file_is_planned_without_a_local_path(staged_plan):
    plan, _, _ = staged_plan
    assert (plan.status, plan.fmt, plan.path, plan.name) == (
        "loaded",
        "csv",
        None,
        "@SHOP_STAGE/exports/online_retail.csv",
    )


def test_a_stage_file_is_fetched_with_get_then_checked_like_a_file(staged_plan):
    plan, source, staging = staged_plan
    session = StageSession(source)
    local = stage.fetch_staged(session, plan, staging)
    assert session.file.calls == [
        ("@SHOP_STAGE/exports/online_retail.csv", str(staging / "stage_files" / "orders"))
    ]
    assert local.read_bytes() == source.read_bytes()
    plan.path = local
    ingest.plan.check_file(plan)  # the header check of a local CSV: passes with the mapped columns
    plan.wanted["quantity"] = "Menge"
    with pytest.raises(ingest.IngestError, match="required column 'Menge'"):
        ingest.plan.check_file(plan)
