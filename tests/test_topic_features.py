"""The topic-share check of 04 (``topic_features.check``) and its fit reused by the comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from customer_analytics import features as ft
from customer_analytics import models as md
from customer_analytics import topic_features as tf
from customer_analytics.topics import share_columns

NAMES = ("last_period", "hybrid_boosting")
SPEND = ft.LABEL_SPEND
SHARES = share_columns(2)


def with_shares(frame: pd.DataFrame, seed: int, leak: bool) -> pd.DataFrame:
    """``frame`` with two topic-share columns: seeded noise beside one that carries the label it
    is scored on (``leak``: it must help), or two that say nothing (the same share everywhere:
    the fits with and without them are the same, and a tie leaves them out)."""
    noise = np.random.default_rng(seed).uniform(size=len(frame))
    out = frame.copy()
    first, second = SHARES
    out[first] = noise if leak else 0.5
    out[second] = frame[SPEND].astype(float).to_numpy() if leak else 0.5
    return out


@pytest.fixture(scope="module")
def frames(labelled):
    train, holdout = labelled
    assert SPEND in train.columns
    return train, holdout


def board(comparison: md.Comparison) -> pd.DataFrame:
    return comparison.board.drop(columns=["fit_seconds"])


@pytest.mark.parametrize("leak", [False, True])
def test_the_shares_are_kept_only_when_they_improve_the_held_out_error(frames, params, leak):
    train, holdout = (with_shares(f, i, leak) for i, f in enumerate(frames))
    check = tf.check(train, holdout, params.seed, "rmse")
    assert check.keep is leak
    assert (check.with_topics < check.without_topics) is leak
    assert leak or check.with_topics == check.without_topics
    assert check.columns == SHARES
    kept = check.apply(train)
    assert all((c in kept.columns) is leak for c in SHARES)
    assert check.candidate == "hybrid_boosting"  # the BTYD inputs are there
    assert check.prefit is not None and check.prefit.name == check.candidate
    assert all((c in check.prefit.features) is leak for c in SHARES)


@pytest.mark.parametrize("leak", [False, True])
def test_the_comparison_reuses_the_checks_fit_and_gives_the_same_results(frames, params, leak):
    train, holdout = (with_shares(f, i, leak) for i, f in enumerate(frames))
    check = tf.check(train, holdout, params.seed, "rmse")
    train, holdout = check.apply(train), check.apply(holdout)
    reused = md.compare(train, holdout, NAMES, params.seed, params.cv_folds, prefit=check.prefit)
    fitted = md.compare(train, holdout, NAMES, params.seed, params.cv_folds)
    assert reused.models["hybrid_boosting"] is check.prefit.model
    assert fitted.models["hybrid_boosting"] is not check.prefit.model
    pd.testing.assert_frame_equal(board(reused), board(fitted))
    pd.testing.assert_frame_equal(reused.folds, fitted.folds)
    for name, pred in fitted.predictions.items():
        np.testing.assert_array_equal(reused.predictions[name], pred)


def test_a_fit_made_on_other_rows_is_not_reused(frames, params):
    train, holdout = (with_shares(f, i, False) for i, f in enumerate(frames))
    check = tf.check(train, holdout, params.seed, "rmse")
    train = check.apply(train)
    fewer = train.iloc[: len(train) - 5]
    other = md.compare(fewer, holdout, NAMES, params.seed, params.cv_folds, prefit=check.prefit)
    plain = md.compare(fewer, holdout, NAMES, params.seed, params.cv_folds)
    assert other.models["hybrid_boosting"] is not check.prefit.model
    pd.testing.assert_frame_equal(board(other), board(plain))
    # and the same rows with one value changed are other rows too
    changed = train.copy()
    column = check.prefit.features[0]
    changed.iloc[0, changed.columns.get_loc(column)] = 1e6
    assert not check.prefit.matches(md.feature_plan(changed, holdout), changed)
    assert check.prefit.matches(md.feature_plan(train, holdout), train)


def test_the_check_fits_the_forest_when_the_hybrid_is_not_compared_or_cannot_run(frames, params):
    """The hybrid only when the comparison runs it and the BTYD inputs are there; else the forest,
    whose fit the comparison then reuses."""
    train, holdout = (with_shares(f, i, True) for i, f in enumerate(frames))
    names = ("last_period", "random_forest")
    no_btyd = [c for c in train.columns if c.startswith("BTYD_")]
    assert no_btyd
    for models, frame, other in (
        (names, train, holdout),
        (None, train.drop(columns=no_btyd), holdout.drop(columns=no_btyd)),
    ):
        check = tf.check(frame, other, params.seed, "rmse", models=models)
        assert check.candidate == "random_forest" and check.keep
        frame, other = check.apply(frame), check.apply(other)
        reused = md.compare(frame, other, names, params.seed, params.cv_folds, prefit=check.prefit)
        assert reused.models["random_forest"] is check.prefit.model


def test_no_share_columns_means_nothing_to_check(frames, params):
    train, holdout = frames
    check = tf.check(train, holdout, params.seed, "rmse")
    assert not check.keep and check.columns == [] and check.prefit is None
    pd.testing.assert_frame_equal(check.apply(train), train)
