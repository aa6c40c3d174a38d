"""Scoring in the warehouse on Snowflake through the registry (issue 14, point 8's scoring part).

``ModelVersion.run`` on a Snowpark DataFrame is played by the fake of snowflake-ml's registry
(tests/fake_snowml.py) on the embedded warehouse: the code under test is ours (staging the batch,
the warehouse-side SELECT that writes the predictions, publishing), and its result must equal the
client path's, row for row, without our code pulling a customer row.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import snowflake.snowpark.functions as F
from fake_snowml import FakeRegistry

from conftest import REPO
from customer_analytics import config, headlines, predict, registry
from customer_analytics import models as md
from customer_analytics import warehouse as wh
from customer_analytics.narrative import forecast as story

#: the registry model of the test parameters' horizon (one model per horizon)
NAME = registry.model_name(60)


def _rows(session, params, version: str) -> pd.DataFrame:
    df = session.table(predict.TABLE).filter(
        (F.col("RUN_DATE") == F.lit(params.run_date)) & (F.col("MODEL_VERSION") == F.lit(version))
    )
    return wh.to_pandas(df, "test").sort_values(predict.KEY).reset_index(drop=True)


def test_scoring_in_the_warehouse_gives_the_client_paths_predictions(
    session, params, comparison, labelled, tmp_path
):
    sel = dataclasses.replace(md.select(comparison, "rmse", params.seed), chosen="random_forest")
    local = registry.LocalRegistry(tmp_path / "local")
    mv_local = registry.register(local, comparison, sel, params, *labelled)
    model, _ = local.load(NAME, version=mv_local.version)
    client = predict.score_in_chunks(session, model, mv_local, params, chunk_rows=30)
    assert client.where == "client" and not client.fallback and client.chunks > 1

    fake = FakeRegistry(
        current_role="REPORTING", staging_dir=tmp_path / "staging"
    )  # not the owner: no load()
    reg = registry.SnowflakeRegistry(None, "ANALYTICS", "SHOP", registry=fake)
    mv = registry.register(reg, comparison, sel, params, *labelled)
    pulled = dict(wh.ROWS_PULLED)
    run = predict.score_in_warehouse(session, reg, mv, params)
    assert dict(wh.ROWS_PULLED) == pulled  # our code brought no row to the client
    assert run.where == "warehouse" and run.customers == client.customers and run.chunks == 0
    assert (
        "run",
        NAME,
        mv.version,
        "snowflake",
    ) in fake.calls  # a Snowpark DataFrame
    assert not any(c[0] == "load" for c in fake.calls)
    got = _rows(session, params, mv.version)
    want = predict.score(
        model,
        wh.to_pandas(session.table(predict.BATCH), "test").sort_values(predict.KEY),
        mv_local,
        params,
    ).reset_index(drop=True)
    assert list(got[predict.KEY]) == list(want[predict.KEY])
    pred_cols = [c for c in want.columns if c.startswith("PRED_")]
    np.testing.assert_allclose(
        got[pred_cols].to_numpy(dtype=float), want[pred_cols].to_numpy(dtype=float), rtol=1e-12
    )
    assert (got[pred_cols].to_numpy() >= 0).all() and set(got["MODEL_NAME"]) == {NAME}


def test_the_client_path_says_when_it_is_a_fallback_on_snowflake():
    params = config.load(REPO)
    head = headlines.Scoring(
        customers_scored=10,
        chunks=2,
        table_rows=10,
        scoring_note="SnowparkSQLException: function not found",
    )
    text = story.summary(head, params)
    assert (
        "Scoring in the warehouse was not possible (SnowparkSQLException" in text
        and "in 2 chunks" in text
    )
    assert "not possible" not in story.summary(dataclasses.replace(head, scoring_note=""), params)
