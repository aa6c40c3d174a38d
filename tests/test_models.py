"""Model candidates, time-based evaluation and selection, checked against independent
computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import ColumnTransformer
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.pipeline import Pipeline

from conftest import NAMES
from customer_analytics import features as ft
from customer_analytics import models as md
from customer_analytics.narrative import models as story
from customer_analytics.narrative import words


def test_segment_mean_baseline_is_the_mean_of_each_target_per_channel(labelled):
    train, holdout = labelled
    feats, targets = md.usable_features(train)
    model = md.SegmentMeanBaseline(("CHANNEL",)).fit(train[feats], train[targets])
    want = train.groupby("CHANNEL")[targets].mean()
    np.testing.assert_allclose(
        model.predict(holdout[feats]), want.loc[holdout["CHANNEL"]].to_numpy(), rtol=1e-12
    )
    unseen = holdout[feats].head(3).assign(CHANNEL="carrier_pigeon")
    np.testing.assert_allclose(
        model.predict(unseen), np.tile(train[targets].mean().to_numpy(), (3, 1)), rtol=1e-12
    )


def test_last_period_baseline_repeats_the_last_period(labelled):
    train, holdout = labelled
    feats, targets = md.usable_features(train)
    pred = (
        md.LastPeriodBaseline(md.last_period_sources(targets))
        .fit(train[feats])
        .predict(holdout[feats])
    )
    assert list(md.last_period_sources(targets))[:2] == [
        "SPEND_LAST",
        "QTY_LAST_" + targets[1][len("QTY_NEXT_") :],
    ]
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
    assert (
        md.is_better(1.0, 2.0, "rmse")
        and md.is_better(0.5, 0.4, "r2")
        and not md.is_better(2.0, 2.0, "rmse")
    )


def test_every_model_is_a_pipeline_with_its_preprocessing_inside(labelled, comparison):
    train, holdout = labelled
    for name in set(NAMES) - set(md.BASELINES) - set(md.NEEDS_BTYD):
        model = comparison.models[name]
        assert isinstance(model, Pipeline) and isinstance(model.steps[0][1], ColumnTransformer), (
            name
        )
        odd = holdout.head(20).assign(
            CHANNEL="never_seen", COUNTRY=None
        )  # unseen categories, missing values
        assert md.predict(model, odd, comparison.features).shape == (20, len(comparison.targets))


def test_cross_validation_trains_only_on_earlier_cutoffs(labelled, params):
    """Corrupting the labels of the last training cut-off changes only the fold that validates on
    it."""
    train, holdout = labelled
    folds = md.fold_cutoffs(train, params.cv_folds)
    assert len(folds) == params.cv_folds and max(folds) < holdout["CUTOFF"].iloc[0]
    names = ("ridge", "segment_mean")
    clean = md.compare(train, holdout, names, params.seed, params.cv_folds).folds.set_index(
        ["model", "cutoff"]
    )
    spoiled_train = train.copy()
    last = spoiled_train["CUTOFF"] == folds[-1]
    spoiled_train.loc[last, ft.LABEL_SPEND] *= 50
    spoiled = md.compare(
        spoiled_train, holdout, names, params.seed, params.cv_folds
    ).folds.set_index(["model", "cutoff"])
    raw = list(names)  # a recalibrated row's scale pools every fold's totals: left out here
    for c in folds[:-1]:
        pd.testing.assert_series_equal(
            clean.xs(c, level="cutoff")["rmse"].loc[raw],
            spoiled.xs(c, level="cutoff")["rmse"].loc[raw],
        )
    assert (
        spoiled.xs(folds[-1], level="cutoff")["rmse"].loc[raw]
        > 5 * clean.xs(folds[-1], level="cutoff")["rmse"].loc[raw]
    ).all()
    rows = clean.xs(folds[0], level="cutoff")["train_rows"].iloc[0]
    assert rows == (train["CUTOFF"] < folds[0]).sum()


def test_comparison_is_reproducible_with_the_same_seed(labelled, comparison, params):
    train, holdout = labelled
    again = md.compare(train, holdout, NAMES, params.seed, params.cv_folds)
    cols = [c for c in comparison.board.columns if c not in ("kind", "fit_seconds")]
    pd.testing.assert_frame_equal(comparison.board[cols], again.board[cols], check_exact=True)
    for name in NAMES:
        np.testing.assert_array_equal(comparison.predictions[name], again.predictions[name])


@pytest.mark.parametrize("fork", ["1", "0"], ids=["forked", "threads"])
def test_fits_run_side_by_side_give_the_same_comparison_as_one_after_the_other(
    labelled, comparison, params, monkeypatch, fork
):
    train, holdout = labelled
    monkeypatch.setenv(md.FORK_FITS_VAR, fork)
    monkeypatch.setattr(md, "FIT_WORKERS", 1)
    one = md.compare(train, holdout, NAMES, params.seed, params.cv_folds)
    monkeypatch.setattr(md, "FIT_WORKERS", 3)
    monkeypatch.setattr(md, "PARALLEL_FIT_ROWS", 0)  # side by side even on the small data
    three = md.compare(train, holdout, NAMES, params.seed, params.cv_folds)
    cols = [c for c in one.board.columns if c != "fit_seconds"]
    pd.testing.assert_frame_equal(one.board[cols], three.board[cols], check_exact=True)
    for name in NAMES:
        np.testing.assert_array_equal(one.predictions[name], three.predictions[name])


class _RecordsOpenMP:
    """A regressor that records the OpenMP threads in force, and the process, while it is fitted."""

    def fit(self, x, y):
        import os

        from threadpoolctl import threadpool_info

        self.threads = max(
            (p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"),
            default=1,
        )
        self.pid, self.rows = os.getpid(), len(x)
        return self

    def get_params(self, deep=True):
        return {}


@pytest.mark.parametrize("fork", ["1", "0"], ids=["forked", "threads"])
def test_every_fit_run_side_by_side_uses_one_openmp_thread(monkeypatch, fork):
    # a worker thread starts with OpenMP's default (every core): two boosting fits at once, each
    # with every core, oversubscribe the machine (146 s against 6 s measured under contention)
    import os

    pytest.importorskip("sklearn.ensemble")  # loads scikit-learn's OpenMP runtime
    monkeypatch.setenv(md.FORK_FITS_VAR, fork)
    data = [(pd.DataFrame({"a": range(n)}), pd.DataFrame({"t": range(n)})) for n in (5, 6, 7, 8)]
    fitted = md.fit_many(_RecordsOpenMP, data, workers=2)
    assert [m.threads for m in fitted] == [md.OPENMP_THREADS] * 4
    assert [m.rows for m in fitted] == [5, 6, 7, 8]  # in the order given
    pids = {m.pid for m in fitted}
    assert (
        (pids.isdisjoint({os.getpid()}) and len(pids) == 4)
        if fork == "1"
        else pids == {os.getpid()}
    )


class _FailsOn7:
    def fit(self, x, y):
        if len(x) == 7:
            raise ValueError("seven rows are not enough")
        return self

    def get_params(self, deep=True):
        return {}


class _Unpicklable(_RecordsOpenMP):
    def __reduce__(self):
        raise TypeError("not picklable")


def test_a_forked_fit_that_fails_raises_its_own_error_and_one_that_cannot_come_back_is_redone(
    monkeypatch,
):
    import os

    monkeypatch.setenv(md.FORK_FITS_VAR, "1")
    data = [(pd.DataFrame({"a": range(n)}), pd.DataFrame({"t": range(n)})) for n in (5, 7)]
    with pytest.raises(ValueError, match="seven rows"):
        md.fit_many(_FailsOn7, data, workers=2)
    fitted = md.fit_many(_Unpicklable, data, workers=2)  # fitted again in this process
    assert [m.rows for m in fitted] == [5, 7] and {m.pid for m in fitted} == {os.getpid()}


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
    sel = md.select(comparison, "rmse", 1)
    text_out = story.rule(sel, comparison) + " " + story.chosen(sel, "EUR")
    assert "lowest typical error (RMSE)" in text_out and "€" in text_out
    assert (
        f"Chosen: **{words.model(sel.chosen)}**" in text_out and f"{sel.chosen}**" not in text_out
    )


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


def test_permutation_importance_in_batches_is_the_one_shuffle_at_a_time_computation(
    labelled, params, monkeypatch
):
    """The stacked shuffles give each shuffle's own RMSE: the same numbers as predicting every
    shuffled copy on its own (the seeded permutations drawn feature by feature, repeats inside),
    whatever the batch size."""
    train, holdout = labelled
    feats, targets = md.usable_features(train)
    model = md.candidates(feats, targets, params.seed)["ridge"]().fit(train[feats], train[targets])
    sample = holdout.sample(n=min(md.IMPORTANCE_ROWS, len(holdout)), random_state=params.seed)
    X = sample[feats].reset_index(drop=True)
    y = sample[ft.LABEL_SPEND].to_numpy(dtype=float)

    def rmse(frame):
        return float(np.sqrt(np.mean((md.predict(model, frame, feats)[:, 0] - y) ** 2)))

    rng = np.random.default_rng(params.seed)
    base = rmse(X)
    direct = {}
    for f in feats:
        rises = [
            rmse(X.assign(**{f: X[f].to_numpy()[rng.permutation(len(X))]})) - base
            for _ in range(md.IMPORTANCE_REPEATS)
        ]
        direct[f.lower()] = (np.mean(rises), np.std(rises))
    for batch_rows in (md.IMPORTANCE_BATCH_ROWS, len(X) * 7, 1):
        monkeypatch.setattr(md, "IMPORTANCE_BATCH_ROWS", batch_rows)
        imp = md.importance(model, holdout, feats, params.seed, top=len(feats))
        assert len(imp) == len(feats)
        for f, row in imp.iterrows():
            assert row["importance"] == pytest.approx(direct[f][0], rel=1e-9, abs=1e-9), f
            assert row["std"] == pytest.approx(direct[f][1], rel=1e-9, abs=1e-9), f
    assert imp["importance"].max() > 0


class _DtypeStrict(RegressorMixin, BaseEstimator):
    """Predicts the spend from column A, and refuses columns whose dtype changed since fit."""

    def fit(self, X, y):  # noqa: N803 - scikit-learn convention
        self.dtypes_ = X.dtypes
        return self

    def predict(self, X):  # noqa: N803
        assert (X.dtypes == self.dtypes_).all(), dict(X.dtypes)
        return X["A"].astype("float64").fillna(0.0).to_numpy()[:, None]


def test_permutation_importance_gives_the_model_each_column_in_its_own_dtype():
    """As scikit-learn's permutation_importance: a shuffled column keeps its dtype (a nullable
    integer or a categorical is not handed over as a NumPy object array)."""
    n = 200
    frame = pd.DataFrame(
        {
            "A": pd.array([1, None, 3, 4] * (n // 4), dtype="Int64"),
            "B": pd.Categorical(["x", "y"] * (n // 2)),
            ft.LABEL_SPEND: np.tile([1.0, 0.0, 3.0, 4.0], n // 4),
        }
    )
    model = _DtypeStrict().fit(frame[["A", "B"]], frame[ft.LABEL_SPEND])
    imp = md.importance(model, frame, ["A", "B"], seed=3, top=2)
    assert imp.index[0] == "a" and imp.loc["a", "importance"] > 0
    assert imp.loc["b", "importance"] == 0


def test_single_product_and_unknown_channel_still_compare(labelled, params):
    train, holdout = labelled
    qty = [c for c in train.columns if c.startswith(("QTY_", "SHARE_"))]

    def one_product(df):
        out = df.drop(columns=qty).assign(CHANNEL=ft.UNKNOWN, COUNTRY=ft.UNKNOWN)
        for prefix in ("QTY", "QTY_LAST", ft.LABEL_QTY_PREFIX):
            out[f"{prefix}_ALL"] = df[
                [
                    c
                    for c in qty
                    if c.startswith(prefix + "_")
                    and (prefix != "QTY" or not c.startswith(("QTY_LAST_", "QTY_NEXT_")))
                ]
            ].sum(axis=1)
        out["SHARE_ALL"] = (out["QTY_ALL"] > 0).astype(float)
        return out

    result = md.compare(
        one_product(train),
        one_product(holdout),
        ("last_period", "segment_mean", "ridge", "btyd"),
        params.seed,
        params.cv_folds,
    )
    assert result.targets == [ft.LABEL_SPEND, "QTY_NEXT_ALL"]
    assert result.board["rmse"].notna().all()
    # a constant segment column: segment_mean would equal mean, so it is left out, with a note
    assert "segment_mean" not in result.board.index
    assert any(n.startswith("segment_mean left out") and "equal `mean`" in n for n in result.notes)
    assert result.dropped.loc["channel", "reason"] == "constant on the training rows (unknown)"
    assert (
        result.dropped.loc["share_all", "reason"] == "duplicate of has_ordered on the training rows"
    )


def test_with_a_single_training_cutoff_selection_falls_back_to_the_holdout_and_says_so(
    labelled, params
):
    train, holdout = labelled
    last = train[train["CUTOFF"] == train["CUTOFF"].max()]
    result = md.compare(last, holdout, ("last_period", "ridge"), params.seed, params.cv_folds)
    assert result.folds.empty and result.board["cv_rmse"].isna().all()
    sel = md.select(result, "rmse", params.seed)
    assert sel.chosen == result.board["rmse"].idxmin() and sel.folds == 0
    assert "too few past periods" in story.rule(sel, result)
    # zero is compared although not asked for, and refused without folds too
    assert "zero" in result.board.index and not result.board.loc["zero", "eligible"]
    assert "–" in md.leaderboard_table(result, "rmse").to_string()


# ------------------------------------------------------------ issue 16: BTYD, calibration, inputs
def test_zero_baseline_is_compared_and_refused_by_the_calibration_rule(comparison):
    board = comparison.board
    assert board.loc["zero", "kind"] == "baseline" and not board.loc["zero", "eligible"]
    assert (comparison.predictions["zero"] == 0).all()
    assert (
        board.loc["zero", "calibration"].startswith("refused") and board.loc["zero", "ratio"] == 0
    )
    sel = md.select(comparison, "rmse", 1)
    text = story.rule(sel, comparison) + " " + story.why(sel, comparison, "EUR")
    assert "Predicting no spend for anyone has an average error (MAE) of €" in text
    assert 'set aside: "nobody buys"' in text


def test_on_the_closed_cohort_the_chosen_model_is_at_or_below_btyd_on_both_errors_and_calibrated(
    closed_comparison,
):
    """Issue 16's acceptance on the closed-cohort world (simulated from BG/NBD + Gamma-Gamma)."""
    _, _, comparison, selection = closed_comparison
    board = comparison.board
    assert "btyd" in board.index and board.loc["btyd", "eligible"]
    chosen = board.loc[selection.chosen]
    assert chosen["rmse"] <= board.loc["btyd", "rmse"] + 1e-12
    assert chosen["mae"] <= board.loc["btyd", "mae"] + 1e-12
    assert abs(chosen["ratio"] - 1) <= 0.10
    # and the BTYD candidate forecasts the decaying cohort's total well (the true model here)
    assert (
        abs(board.loc["btyd", "ratio"] - 1) <= 0.05
        and abs(board.loc["btyd", "cv_ratio"] - 1) <= 0.05
    )


def test_a_miscalibrated_candidate_is_recalibrated_by_its_pooled_cross_validated_totals(
    closed_comparison,
):
    """``mean`` over-predicts a decaying cohort: its scale, recomputed here from the folds' rows."""
    train, holdout, comparison, _ = closed_comparison
    board, targets = comparison.board, comparison.targets
    folds = md.fold_cutoffs(train, 3)
    predicted = sum(
        train.loc[train["CUTOFF"] < c, targets].mean() * (train["CUTOFF"] == c).sum() for c in folds
    )
    actual = sum(train.loc[train["CUTOFF"] == c, targets].sum() for c in folds)
    scale = (actual / predicted).to_numpy()
    assert abs(predicted.iloc[0] / actual.iloc[0] - 1) > comparison.tolerance  # the premise
    assert board.loc["mean", "cv_ratio"] == pytest.approx(
        predicted.iloc[0] / actual.iloc[0], rel=1e-9
    )
    assert not board.loc["mean", "eligible"] and "recalibrated" in board.loc["mean", "calibration"]
    assert board.loc["mean_recalibrated", "eligible"] and board.loc[
        "mean_recalibrated", "cv_ratio"
    ] == pytest.approx(1)
    np.testing.assert_allclose(
        comparison.predictions["mean_recalibrated"],
        comparison.predictions["mean"] * scale[None, :],
        rtol=1e-12,
    )
    assert '"overall average" (×' in story.calibration_rule(comparison)
    table = md.calibration_table(comparison)
    assert (
        list(table.columns[:3]) == [f"fold {c}" for c in folds]
        and table.loc["zero", "held-out"] == 0
    )


def test_recalibrated_and_btyd_models_round_trip_through_the_registry(tmp_path, closed_comparison):
    from customer_analytics import registry

    train, holdout, comparison, _ = closed_comparison
    reg = registry.LocalRegistry(tmp_path)
    names = [n for n in comparison.models if n.endswith(md.RECALIBRATED)] + [
        "btyd",
        "hybrid_boosting",
    ]
    assert len(names) > 2
    for name in names:
        mv = reg.log_model(
            comparison.models[name],
            registry.MODEL_NAME,
            {"rmse": 1.0},
            {"candidate": name},
            {},
            comparison.features,
            comparison.targets,
            sample_input=train.head(20),
        )
        model, _ = reg.load(version=mv.version)
        np.testing.assert_array_equal(
            md.predict(model, holdout, comparison.features), comparison.predictions[name]
        )


def _independent_drops(
    train: pd.DataFrame, feats: list[str], protected: set[str]
) -> dict[str, str]:
    out, kept = {}, []
    for c in feats:
        col = train[c]
        if col.isna().all():
            out[c] = "missing"
        elif c not in protected and len(set(col.astype(str))) == 1:
            out[c] = "constant"
        elif c not in protected and any(
            col.astype(str).tolist() == train[k].astype(str).tolist()
            and col.dtype.kind == train[k].dtype.kind
            for k in kept
        ):
            out[c] = "duplicate"
        else:
            kept.append(c)
    return out


def test_constant_duplicate_and_empty_features_are_dropped_and_listed(closed_comparison):
    train, _, comparison, _ = closed_comparison
    feats, targets = ft.model_columns(list(train.columns))
    want = _independent_drops(train, feats, md.protected_columns(targets))
    got = comparison.dropped["reason"]
    assert set(got.index) == {c.lower() for c in want}
    for c, kind_ in want.items():
        assert got[c.lower()].startswith(kind_), (c, got[c.lower()])
    # the closed cohort's shape: everyone has ordered, and tenure is days since the first order
    assert (
        got["has_ordered"].startswith("constant")
        and got["days_since_first_order"] == "duplicate of tenure_days on the training rows"
    )
    assert not set(want) & set(comparison.features)


def test_features_leaving_the_training_range_are_flagged_and_kept_out_of_the_ml_models(
    closed_comparison,
):
    train, holdout, comparison, _ = closed_comparison
    lo, hi = train["TENURE_DAYS"].min(), train["TENURE_DAYS"].max()
    margin = md.RANGE_MARGIN * (hi - lo)
    outside = (
        (holdout["TENURE_DAYS"] < lo - margin) | (holdout["TENURE_DAYS"] > hi + margin)
    ).mean()
    assert outside > md.RANGE_SHARE  # a closed cohort ages beyond anything seen in training
    ranges = comparison.ranges
    assert ranges.loc["tenure_days", "held-out rows outside"] == pytest.approx(outside)
    assert ranges.loc["tenure_days", "action"].startswith("left out")
    assert "TENURE_DAYS" in comparison.features and "TENURE_DAYS" not in comparison.model_features
    prep = comparison.models["ridge"].steps[0][1] if "ridge" in comparison.models else None
    if prep is not None:
        used = [c for name, _, cols in prep.transformers_ if name != "remainder" for c in cols]
        assert "TENURE_DAYS" not in used and "RECENCY_OVER_AGE" in used
    flagged = {f.upper() for f in ranges.index}
    for c in comparison.features:
        if c not in ft.CATEGORICAL and c not in flagged:
            h = holdout[c].dropna()
            lo, hi = train[c].min(), train[c].max()
            m = md.RANGE_MARGIN * (hi - lo)
            assert ((h < lo - m) | (h > hi + m)).mean() <= md.RANGE_SHARE, c


def _hand_comparison(fold_rmse: dict[str, list[float]], mae: dict[str, float]) -> md.Comparison:
    cutoffs = ["2026-01-01", "2026-03-01", "2026-05-01"]
    folds = pd.DataFrame(
        [
            {"model": n, "cutoff": c, "rmse": v, "mae": mae[n]}
            for n, vals in fold_rmse.items()
            for c, v in zip(cutoffs, vals, strict=True)
        ]
    )
    board = pd.DataFrame(
        {
            "kind": "model",
            "cv_rmse": {n: np.mean(v) for n, v in fold_rmse.items()},
            "cv_mae": mae,
            "cv_mae_at_total": mae,
            "rmse": {n: np.mean(v) for n, v in fold_rmse.items()},
            "mae": mae,
            "eligible": True,
            "calibration": "within ±10%",
            "cv_ratio": 1.0,
            "ratio": 1.0,
        }
    )
    return md.Comparison(board, folds, {}, {}, np.zeros((1, 1)), [], [])


def test_near_ties_on_the_primary_metric_go_to_the_lower_other_metric():
    # b is 0.5% behind a (within 1%) with a lower MAE; c is far behind with the lowest MAE
    comp = _hand_comparison(
        {"a": [10.0, 10.0, 10.0], "b": [10.05, 10.05, 10.05], "c": [12.0, 12.0, 12.0]},
        {"a": 5.0, "b": 4.8, "c": 3.0},
    )
    assert (
        md.near_ties(comp, "rmse").index[0] == "b" and "c" not in md.near_ties(comp, "rmse").index
    )
    # d is 3% behind a on average, but the folds disagree (one paired standard error is larger)
    comp = _hand_comparison({"a": [10.0, 10.0, 10.0], "d": [9.0, 10.0, 11.9]}, {"a": 5.0, "d": 4.0})
    diffs = np.array([-1.0, 0.0, 1.9])
    assert md.paired_se(comp.folds, "d", "a", "rmse") == pytest.approx(
        diffs.std(ddof=1) / np.sqrt(3)
    )
    assert md.near_ties(comp, "rmse").index[0] == "d"
    # consistent folds: the same 3% gap is real
    comp = _hand_comparison(
        {"a": [10.0, 10.0, 10.0], "d": [10.3, 10.3, 10.3]}, {"a": 5.0, "d": 4.0}
    )
    assert list(md.near_ties(comp, "rmse").index) == ["a"]
    # MAE as primary: the tie-break is RMSE
    comp = _hand_comparison({"a": [10.0] * 3, "b": [9.0] * 3}, {"a": 5.0, "b": 5.01})
    assert md.near_ties(comp, "mae").index[0] == "b"


def test_mae_at_equal_totals_takes_away_the_gain_of_predicting_less():
    rng = np.random.default_rng(2)
    actual = [
        np.where(rng.random((400, 1)) < 0.1, rng.gamma(2.0, 20.0, (400, 1)), 0.0) for _ in range(3)
    ]
    good = [a * 0.3 + 3.0 for a in actual]  # right ranking, spread over every customer
    shrunk = [g * 0.3 for g in good]  # the same ranking, a third of the total: a lower raw MAE

    def raw(preds):
        return np.mean([np.mean(np.abs(a - p)) for a, p in zip(actual, preds, strict=True)])

    assert raw(shrunk) < raw(good)
    assert md.mae_at_total(actual, shrunk) == pytest.approx(
        md.mae_at_total(actual, good), rel=1e-12
    )
    scale = sum(a.sum() for a in actual) / sum(p.sum() for p in good)
    want = np.mean(
        [np.mean(np.abs(a[:, 0] - scale * p[:, 0])) for a, p in zip(actual, good, strict=True)]
    )
    assert md.mae_at_total(actual, good) == pytest.approx(want, rel=1e-12)


def test_calibration_deciles_against_a_direct_computation():
    rng = np.random.default_rng(4)
    pred = rng.gamma(1.0, 10.0, 1000)
    actual = pred * rng.gamma(2.0, 0.5, 1000)
    table = md.calibration_deciles(actual, pred)
    low = np.argsort(pred)[:100]
    assert table.loc[1, "mean_predicted"] == pytest.approx(pred[low].mean())
    assert (
        table.loc[1, "mean_actual"] == pytest.approx(actual[low].mean())
        and table["customers"].sum() == 1000
    )


@pytest.mark.slow
def test_on_the_default_demo_data_the_chosen_model_beats_the_baselines_by_15_percent(tmp_path):
    """`make run`'s data (10,000 customers, seed 42), env.yaml: >= 15% lower held-out RMSE."""
    from conftest import make_params
    from customer_analytics import ingest, synthetic, text
    from customer_analytics import warehouse as wh

    synthetic.write(synthetic.generate(10_000, seed=42), tmp_path / "raw")
    p = make_params(tmp_path / "raw", tmp_path / "wh")
    s = wh.connect(p)
    try:
        ingest.run(s, p)
        staging = p.warehouse_dir / "staging"
        model, _ = text.build(s, p.cutoffs()[0], p.seed, p.text_max_rows, staging)
        ft.build(s, p, sentiment=model.available)
        train, holdout = ft.load_labelled(s, p.max_train_rows, p.seed)
    finally:
        s.close()
        wh.stop_local_server(p.warehouse_dir)
    comparison = md.compare(train, holdout, p.models, p.seed, p.cv_folds, p.calibration_tolerance)
    selection = md.select(comparison, p.primary_metric, p.seed)
    board = comparison.board
    best_naive = board[board["kind"] == "baseline"]["rmse"].min()
    assert selection.baseline and selection.holdout_baseline == best_naive
    assert selection.holdout_chosen <= 0.85 * best_naive, story.why(selection, comparison, "EUR")
