"""Model candidates, time-based evaluation and selection, checked against independent computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.pipeline import Pipeline

from conftest import NAMES
from customer_analytics import features as ft
from customer_analytics import models as md


def test_segment_mean_baseline_is_the_mean_of_each_target_per_channel(labelled):
    train, holdout = labelled
    feats, targets = md.usable_features(train)
    model = md.SegmentMeanBaseline(("CHANNEL",)).fit(train[feats], train[targets])
    want = train.groupby("CHANNEL")[targets].mean()
    np.testing.assert_allclose(model.predict(holdout[feats]), want.loc[holdout["CHANNEL"]].to_numpy(), rtol=1e-12)
    unseen = holdout[feats].head(3).assign(CHANNEL="carrier_pigeon")
    np.testing.assert_allclose(model.predict(unseen), np.tile(train[targets].mean().to_numpy(), (3, 1)), rtol=1e-12)


def test_last_period_baseline_repeats_the_last_period(labelled):
    train, holdout = labelled
    feats, targets = md.usable_features(train)
    pred = md.LastPeriodBaseline(md.last_period_sources(targets)).fit(train[feats]).predict(holdout[feats])
    assert list(md.last_period_sources(targets))[:2] == ["SPEND_LAST", "QTY_LAST_" + targets[1][len("QTY_NEXT_"):]]
    np.testing.assert_array_equal(pred[:, 0], holdout["SPEND_LAST"].to_numpy(dtype=float))


def test_metrics_follow_their_definitions():
    rng = np.random.default_rng(0)
    y = np.column_stack([rng.gamma(1.0, 20.0, 500), rng.poisson(2.0, (500, 2))])
    p = y + rng.normal(0, 3, y.shape)
    m = md.metrics(y, p)
    assert m["rmse"] == pytest.approx(np.sqrt(((y[:, 0] - p[:, 0]) ** 2).mean()))
    assert m["mae"] == pytest.approx(mean_absolute_error(y[:, 0], p[:, 0]))
    assert m["r2"] == pytest.approx(r2_score(y[:, 0], p[:, 0]))
    top = np.argsort(-y[:, 0])[:50]  # the 10% of customers who spent most
    assert m["top_decile_mae"] == pytest.approx(np.abs(y[top, 0] - p[top, 0]).mean())
    assert m["qty_mae"] == pytest.approx(np.abs(y[:, 1:] - p[:, 1:]).mean())
    assert md.is_better(1.0, 2.0, "rmse") and md.is_better(0.5, 0.4, "r2") and not md.is_better(2.0, 2.0, "rmse")


def test_every_model_is_a_pipeline_with_its_preprocessing_inside(labelled, comparison):
    train, holdout = labelled
    for name in set(NAMES) - set(md.BASELINES):
        model = comparison.models[name]
        assert isinstance(model, Pipeline) and isinstance(model.steps[0][1], ColumnTransformer), name
        odd = holdout.head(20).assign(CHANNEL="never_seen", COUNTRY=None)  # unseen categories, missing values
        assert md.predict(model, odd, comparison.features).shape == (20, len(comparison.targets))


def test_cross_validation_trains_only_on_earlier_cutoffs(labelled, params):
    """Corrupting the labels of the last training cut-off changes only the fold that validates on it."""
    train, holdout = labelled
    folds = md.fold_cutoffs(train, params.cv_folds)
    assert len(folds) == params.cv_folds and max(folds) < holdout["CUTOFF"].iloc[0]
    names = ("ridge", "segment_mean")
    clean = md.compare(train, holdout, names, params.seed, params.cv_folds).folds.set_index(["model", "cutoff"])
    spoiled_train = train.copy()
    last = spoiled_train["CUTOFF"] == folds[-1]
    spoiled_train.loc[last, ft.LABEL_SPEND] *= 50
    spoiled = md.compare(spoiled_train, holdout, names, params.seed, params.cv_folds).folds.set_index(["model", "cutoff"])
    raw = list(names)  # a recalibrated row's scale pools every fold's totals, so it is left out here
    for c in folds[:-1]:
        pd.testing.assert_series_equal(clean.xs(c, level="cutoff")["rmse"].loc[raw],
                                       spoiled.xs(c, level="cutoff")["rmse"].loc[raw])
    assert (spoiled.xs(folds[-1], level="cutoff")["rmse"].loc[raw]
            > 5 * clean.xs(folds[-1], level="cutoff")["rmse"].loc[raw]).all()
    rows = clean.xs(folds[0], level="cutoff")["train_rows"].iloc[0]
    assert rows == (train["CUTOFF"] < folds[0]).sum()


def test_comparison_is_reproducible_with_the_same_seed(labelled, comparison, params):
    train, holdout = labelled
    again = md.compare(train, holdout, NAMES, params.seed, params.cv_folds)
    cols = [c for c in comparison.board.columns if c not in ("kind", "fit_seconds")]
    pd.testing.assert_frame_equal(comparison.board[cols], again.board[cols], check_exact=True)
    for name in NAMES:
        np.testing.assert_array_equal(comparison.predictions[name], again.predictions[name])


def test_selection_follows_the_rule_and_measures_against_the_best_baseline(comparison):
    board = comparison.board
    for metric, pick in (("rmse", "idxmin"), ("mae", "idxmin"), ("r2", "idxmax")):
        sel = md.select(comparison, metric, seed=1)
        assert sel.chosen == getattr(board[f"cv_{metric}"], pick)()
        baselines = board[board["kind"] == "baseline"][metric]
        assert sel.baseline == getattr(baselines, pick)()
        m, b = board.loc[sel.chosen, metric], baselines[sel.baseline]
        assert sel.improvement == pytest.approx((m - b) / abs(b) if metric == "r2" else (b - m) / b)
        lo, hi = sel.interval
        assert lo <= sel.improvement <= hi
    text_out = md.verdict(md.select(comparison, "rmse", 1))
    assert "Selection rule" in text_out and "RMSE" in text_out


def test_models_beat_the_naive_baselines_on_the_small_data(comparison):
    board = comparison.board
    best_model = board[board["kind"] == "model"]["rmse"].min()
    best_baseline = board[board["kind"] == "baseline"]["rmse"].min()
    assert best_model < 0.95 * best_baseline


def test_lift_table_against_a_direct_computation():
    rng = np.random.default_rng(1)
    predicted = rng.gamma(1.0, 10.0, 1000)
    actual = predicted * rng.gamma(2.0, 0.5, 1000)
    lift = md.lift_table(actual, predicted)
    top = np.argsort(-predicted)[:100]
    assert lift.loc[1, "customers"] == 100 and lift["customers"].sum() == 1000
    assert lift.loc[1, "mean_actual"] == pytest.approx(actual[top].mean())
    assert lift.loc[1, "lift"] == pytest.approx(actual[top].mean() / actual.mean())
    assert lift["cumulative_share"].iloc[-1] == pytest.approx(1.0)
    assert lift["mean_predicted"].is_monotonic_decreasing


def test_permutation_importance_finds_the_only_feature_a_model_uses(labelled, params):
    train, holdout = labelled
    feats, targets = md.usable_features(train)
    model = md.LastPeriodBaseline(md.last_period_sources(targets)).fit(train[feats])
    imp = md.importance(model, holdout, feats, params.seed, top=len(feats))
    assert imp.index[0] == "spend_last" and imp.loc["spend_last", "importance"] > 0
    assert (imp.drop(index="spend_last")["importance"] == 0).all()


def test_single_product_and_unknown_channel_still_compare(labelled, params):
    train, holdout = labelled
    qty = [c for c in train.columns if c.startswith(("QTY_", "SHARE_"))]

    def one_product(df):
        out = df.drop(columns=qty).assign(CHANNEL=ft.UNKNOWN, COUNTRY=ft.UNKNOWN)
        for prefix in ("QTY", "QTY_LAST", ft.LABEL_QTY_PREFIX):
            out[f"{prefix}_ALL"] = df[[c for c in qty if c.startswith(prefix + "_") and
                                       (prefix != "QTY" or not c.startswith(("QTY_LAST_", "QTY_NEXT_")))]].sum(axis=1)
        out["SHARE_ALL"] = (out["QTY_ALL"] > 0).astype(float)
        return out

    result = md.compare(one_product(train), one_product(holdout), ("last_period", "segment_mean", "ridge"),
                        params.seed, params.cv_folds)
    assert result.targets == [ft.LABEL_SPEND, "QTY_NEXT_ALL"]
    assert result.board["rmse"].notna().all()


def test_with_a_single_training_cutoff_selection_falls_back_to_the_holdout_and_says_so(labelled, params):
    train, holdout = labelled
    last = train[train["CUTOFF"] == train["CUTOFF"].max()]
    result = md.compare(last, holdout, ("last_period", "ridge"), params.seed, params.cv_folds)
    assert result.folds.empty and result.board["cv_rmse"].isna().all()
    sel = md.select(result, "rmse", params.seed)
    assert sel.chosen == result.board["rmse"].idxmin() and "too few cut-offs" in sel.rule
    assert "–" in md.leaderboard_table(result, "rmse").to_string()
