"""Model registry: round trips, safe loading, atomic and concurrent versions, promotion guard,
Snowflake adapter."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from fake_snowml import FakeRegistry
from packaging.requirements import Requirement

from conftest import NAMES
from customer_analytics import baselines, faults, registry
from customer_analytics import features as ft
from customer_analytics import models as md
from customer_analytics.narrative import models as story

#: the registry model of the test parameters' horizon (one model per horizon)
NAME = registry.model_name(60)


def register(reg, comparison, params, labelled, name):
    """Register candidate ``name`` as if the selection had chosen it."""
    sel = dataclasses.replace(md.select(comparison, "rmse", params.seed), chosen=name)
    return registry.register(reg, comparison, sel, params, *labelled)


@pytest.mark.parametrize("name", NAMES)
def test_log_list_load_predict_gives_identical_predictions(
    tmp_path, comparison, params, labelled, name
):
    reg = registry.LocalRegistry(tmp_path)
    mv = register(reg, comparison, params, labelled, name)
    listed = reg.list_versions(mv.name)
    assert [v.version for v in listed] == [mv.version] == ["v1"]
    meta = listed[0].meta
    for key in (
        "metrics",
        "params",
        "data_window",
        "features",
        "targets",
        "code_version",
        "libraries",
        "created",
    ):
        assert meta[key], key
    assert meta["metrics"]["rmse"] == pytest.approx(comparison.board.loc[name, "rmse"], rel=1e-12)
    assert meta["params"]["candidate"] == name and meta["features"] == comparison.features
    assert (
        meta["libraries"]["scikit-learn"]
        and meta["data_window"]["run_date"] == params.run_date.isoformat()
    )
    model, got = reg.load(mv.name, version=mv.version)
    holdout = labelled[1]
    np.testing.assert_array_equal(
        md.predict(model, holdout, got.meta["features"]), comparison.predictions[name]
    )
    out = reg.run(holdout, mv.name, version=mv.version)
    assert list(out.columns) == comparison.targets
    np.testing.assert_array_equal(np.clip(out.to_numpy(), 0, None), comparison.predictions[name])


class Sneaky:
    """Restoring this object writes a file: the kind of side effect a registry must never run on
    load."""

    def __init__(self, marker: str):
        self.marker = marker

    def __setstate__(self, state):
        Path(state["marker"]).write_text("code ran")
        self.__dict__.update(state)


def test_a_file_with_an_untrusted_type_is_refused_before_anything_runs(
    tmp_path, comparison, params, labelled
):
    reg = registry.LocalRegistry(tmp_path / "reg")
    mv = register(reg, comparison, params, labelled, "ridge")
    marker = tmp_path / "marker.txt"
    data = sio.dumps(Sneaky(str(marker)))
    (tmp_path / "reg" / mv.name / mv.version / "model.skops").write_bytes(data)
    with pytest.raises(registry.RegistryError, match="not on the trusted list.*Sneaky"):
        reg.load(mv.name, version=mv.version)
    assert not marker.exists()
    sio.loads(data, trusted=sio.get_untrusted_types(data=data))  # what trusting it would have done
    assert marker.read_text() == "code ran"


def test_a_tampered_file_naming_another_type_is_refused(tmp_path, comparison, params, labelled):
    reg = registry.LocalRegistry(tmp_path)
    mv = register(reg, comparison, params, labelled, "random_forest")
    path = tmp_path / mv.name / mv.version / "model.skops"
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    schema = json.loads(files["schema.json"])
    schema.update(
        {"__module__": "os", "__class__": "system"}
    )  # the top-level object is now os.system
    files["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    with pytest.raises(registry.RegistryError, match="os.system"):
        reg.load(mv.name, version=mv.version)
    path.write_bytes(b"not a zip file")
    with pytest.raises(registry.RegistryError, match="not a readable skops file"):
        reg.load(mv.name, version=mv.version)


WORKER = textwrap.dedent("""
    import sys, time, numpy as np
    from pathlib import Path
    from sklearn.linear_model import Ridge
    from customer_analytics.registry import LocalRegistry
    root, worker, go = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    rng = np.random.default_rng(worker)
    X = rng.normal(size=(50, 3)); y = X @ rng.normal(size=3)
    model = Ridge().fit(X, y)
    while not go.exists():
        time.sleep(0.01)
    mv = LocalRegistry(root).log_model(
        model, "m", {"rmse": float(worker)}, {"worker": worker}, {}, ["a", "b", "c"], ["y"]
    )
    np.save(root / f"pred_{worker}.npy", model.predict(np.eye(3)))
    print(mv.version)
""")


def test_concurrent_runs_never_overwrite_each_others_version(tmp_path):
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path), str(w), str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(3)
    ]
    go.touch()
    versions = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(versions) == ["v1", "v2", "v3"]
    reg = registry.LocalRegistry(tmp_path)
    listed = reg.list_versions("m")
    assert sorted(v.meta["params"]["worker"] for v in listed) == [0, 1, 2]
    for v in listed:
        model, _ = reg.load("m", v.version)
        worker = v.meta["params"]["worker"]
        np.testing.assert_array_equal(
            model.predict(np.eye(3)), np.load(tmp_path / f"pred_{worker}.npy")
        )


def test_a_failed_write_leaves_no_version_behind(tmp_path, comparison):
    reg = registry.LocalRegistry(tmp_path)
    with pytest.raises(
        ValueError, match="could not convert"
    ):  # fails after the model file was written
        reg.log_model(comparison.models["ridge"], "m", {"rmse": "not a number"}, {}, {}, [], [])
    assert reg.list_versions("m") == [] and not any((tmp_path / "m").glob("v*"))
    mv = reg.log_model(
        comparison.models["ridge"],
        "m",
        {"rmse": 1.0},
        {},
        {},
        comparison.features,
        comparison.targets,
    )
    assert mv.version == "v1"


def test_default_is_a_guarded_compare_and_set(tmp_path, comparison):
    reg = registry.LocalRegistry(tmp_path)
    args = ("m", {"rmse": 1.0}, {}, {}, comparison.features, comparison.targets)
    v1, v2 = (reg.log_model(comparison.models["mean"], *args) for _ in range(2))
    assert reg.default_version("m") is None
    reg.set_default("m", v1.version, expected="")
    with pytest.raises(registry.RegistryError, match="changed"):
        reg.set_default("m", v2.version, expected="")
    reg.set_default("m", v2.version, expected=v1.version)
    assert reg.get("m").version == v2.version
    with pytest.raises(registry.RegistryError, match="no version v9"):
        reg.set_default("m", "v9")
    with pytest.raises(registry.RegistryError, match="no version"):
        reg.get("m", "../../etc")


def test_promotion_guard_compares_with_the_current_default_on_the_same_window(
    tmp_path, comparison, params, labelled
):
    reg = registry.LocalRegistry(tmp_path)
    holdout = labelled[1]
    board = comparison.board
    best = board[board["kind"] == "model"]["rmse"].idxmin()

    first = registry.promote(
        reg, register(reg, comparison, params, labelled, "mean"), holdout, "rmse"
    )
    assert first.promoted and "no default" in first.reason
    name = registry.model_name(params.horizon_days)
    same = registry.promote(
        reg, register(reg, comparison, params, labelled, "mean"), holdout, "rmse"
    )
    assert (
        not same.promoted and "does not beat" in same.reason and reg.default_version(name) == "v1"
    )
    assert same.previous_value == pytest.approx(board.loc["mean", "rmse"], rel=1e-12)
    better = registry.promote(
        reg, register(reg, comparison, params, labelled, best), holdout, "rmse"
    )
    assert better.promoted and reg.default_version(name) == "v3" and "beats" in better.reason
    worse = registry.promote(
        reg, register(reg, comparison, params, labelled, "segment_mean"), holdout, "rmse"
    )
    assert not worse.promoted and reg.default_version(name) == "v3"
    assert worse.code == "not_better" and (first.code, same.code, better.code) == (
        "first",
        "not_better",
        "better",
    )
    said = story.promotion(worse, "EUR")
    assert "not made the default" in said and "version 3 stays the default" in said and "€" in said


def test_promotion_guard_with_an_incomparable_or_unfair_default(
    tmp_path, comparison, params, labelled
):
    reg = registry.LocalRegistry(tmp_path)
    holdout = labelled[1]
    later = str(holdout["CUTOFF"].iloc[0] + dt.timedelta(days=10))
    name = registry.model_name(params.horizon_days)
    spec = {"horizon_days": params.horizon_days, "definitions_version": ft.DEFINITIONS_VERSION}
    seen = reg.log_model(
        comparison.models["ridge"],
        name,
        {"rmse": 99.0},
        {"candidate": "ridge", **spec},
        {"labels_until": later, "run_date": later},
        comparison.features,
        comparison.targets,
    )
    reg.set_default(name, seen.version)
    new = register(reg, comparison, params, labelled, "random_forest")
    kept = registry.promote(reg, new, holdout, "rmse")
    assert not kept.promoted and "inside this run's held-out window" in kept.reason
    other = reg.log_model(
        comparison.models["mean"],
        name,
        {"rmse": 99.0},
        {"candidate": "mean", **spec},
        {"labels_until": "2000-01-01"},
        comparison.features + ["NOT_A_FEATURE"],
        comparison.targets,
    )
    reg.set_default(name, other.version)
    replaced = registry.promote(reg, new, holdout, "rmse")
    assert replaced.promoted and "cannot score" in replaced.reason


def test_two_run_dates_leave_two_versions_with_their_metrics(session, params, tmp_path):
    reg = registry.LocalRegistry(tmp_path)
    for run_date in (dt.date(2026, 9, 1), params.run_date):
        p = dataclasses.replace(params, run_date=run_date, n_cutoffs=2, cv_folds=1)
        ft.build(session, p, sentiment=False)
        train, holdout = ft.load_labelled(session, p.max_train_rows, p.seed)
        comp = md.compare(train, holdout, ("last_period", "ridge"), p.seed, p.cv_folds)
        sel = md.select(comp, p.primary_metric, p.seed)
        registry.promote(
            reg, registry.register(reg, comp, sel, p, train, holdout), holdout, p.primary_metric
        )
    versions = registry.versions_frame(reg, registry.model_name(params.horizon_days))
    assert list(versions.index) == ["v1", "v2"] and versions["holdout_rmse"].notna().all()
    assert list(versions["run_date"]) == ["2026-09-01", params.run_date.isoformat()]
    assert versions["default"].sum() == 1


# ---------------------------------------------------------------------- Snowflake adapter, offline
def test_log_model_arguments_bind_to_the_installed_snowflake_ml_api(comparison, labelled):
    from snowflake.ml.model import type_hints
    from snowflake.ml.model.target_platform import TargetPlatform
    from snowflake.ml.model.task import Task
    from snowflake.ml.registry import Registry

    for name in ("ridge", "segment_mean"):
        model = comparison.models[name]
        meta = registry.build_meta(
            model,
            "customer_spend",
            "V1",
            {"rmse": 1.5},
            {"candidate": name},
            {"run_date": "2026-11-01"},
            comparison.features,
            comparison.targets,
        )
        args = registry.snowflake_log_args(
            model, "customer_spend", "V1", meta, labelled[0][comparison.features].head(5)
        )
        inspect.signature(Registry.log_model).bind(
            object(), model, **args
        )  # raises on any unknown/missing argument
        assert set(args["options"]) <= set(type_hints.SKLModelSaveOptions.__annotations__)
        assert isinstance(args["task"], Task) and all(
            TargetPlatform(t) for t in args["target_platforms"]
        )
        assert args["conda_dependencies"] == registry.conda_dependencies()
        back = registry._meta_from_metrics(
            "customer_spend", "V1", json.loads(json.dumps(args["metrics"]))
        )
        assert back["metrics"] == {"rmse": 1.5} and back["features"] == comparison.features
        assert back["targets"] == comparison.targets and back["data_window"] == meta["data_window"]
        assert (args["ext_modules"] == [baselines]) == (
            name == "segment_mean"
        )  # our own classes go by value


def test_the_adapter_calls_exist_with_these_signatures_in_snowflake_ml():
    from snowflake.ml.model import Model, ModelVersion
    from snowflake.ml.registry import Registry

    inspect.signature(Registry.__init__).bind(
        object(), session=None, database_name="D", schema_name="S"
    )
    inspect.signature(Registry.get_model).bind(object(), "customer_spend")
    inspect.signature(Model.version).bind(object(), "V1")
    inspect.signature(Model.versions).bind(object())
    assert isinstance(Model.default, property) and Model.default.fset is not None
    inspect.signature(ModelVersion.show_metrics).bind(object())
    inspect.signature(ModelVersion.load).bind(object())
    inspect.signature(ModelVersion.run).bind(object(), pd.DataFrame(), function_name="predict")
    assert isinstance(ModelVersion.version_name, property)


@pytest.mark.parametrize("name", ["ridge", "segment_mean", "random_forest"])
def test_snowflake_ml_packages_and_reloads_the_model_offline(tmp_path, comparison, labelled, name):
    """snowflake-ml's own packaging step (what log_model uploads), run locally with our
    arguments."""
    packager = pytest.importorskip("snowflake.ml.model._packager.model_packager")
    from snowflake.ml.model.target_platform import TargetPlatform

    model = comparison.models[name]
    meta = registry.build_meta(
        model,
        "customer_spend",
        "V1",
        {"rmse": 1.0},
        {"candidate": name},
        {},
        comparison.features,
        comparison.targets,
    )
    args = registry.snowflake_log_args(
        model, "customer_spend", "V1", meta, labelled[0][comparison.features].head(20)
    )
    with pytest.warns(UserWarning, match="Null value"):  # missing values are part of the features
        saved = packager.ModelPackager(str(tmp_path)).save(
            name=args["model_name"],
            model=model,
            sample_input_data=args["sample_input_data"],
            conda_dependencies=args["conda_dependencies"],
            ext_modules=args["ext_modules"],
            options=args["options"],
            task=args["task"],
            target_platforms=[TargetPlatform(t) for t in args["target_platforms"]],
        )
    signature = saved.signatures["predict"]
    assert [s.name for s in signature.inputs] == comparison.features
    assert len(signature.outputs) == len(comparison.targets)
    reloaded = packager.ModelPackager(str(tmp_path))
    reloaded.load()
    holdout = labelled[1]
    np.testing.assert_array_equal(
        md.predict(reloaded.model, holdout, comparison.features), comparison.predictions[name]
    )


def test_the_real_snowflake_registry_accepts_the_call_and_fails_only_at_sql(
    session, comparison, labelled
):
    """On the embedded warehouse the real ``Registry`` is built and ``log_model`` gets as far as its
    first SQL."""
    from snowflake.snowpark.exceptions import SnowparkSQLException

    reg = registry.SnowflakeRegistry(session, "ANALYTICS", "SHOP")
    with pytest.raises(SnowparkSQLException, match="SHOW MODELS"):
        reg.log_model(
            comparison.models["ridge"],
            "customer_spend",
            {"rmse": 1.0},
            {"candidate": "ridge"},
            {},
            comparison.features,
            comparison.targets,
            labelled[0],
        )


# ------------------------------------------------------------------------ issue 14 / 15: Snowflake
def test_warehouse_dependencies_are_ranges_around_the_fitted_versions_not_exact_pins():
    deps = registry.conda_dependencies()
    assert not any("==" in d for d in deps), deps
    libs = registry.library_versions()
    for dep in deps:
        req = Requirement(dep)
        assert req.specifier.contains(libs[req.name]), dep  # the fitted version is inside its range
    sk = Requirement(next(d for d in deps if d.startswith("scikit-learn")))
    major, minor = (int(x) for x in libs["scikit-learn"].split(".")[:2])
    assert sk.specifier.contains(f"{major}.{minor}.0") and sk.specifier.contains(
        f"{major}.{minor}.99"
    )
    assert not sk.specifier.contains(
        f"{major}.{minor + 1}.0"
    )  # pickles are kept within one minor release
    np_req = Requirement(next(d for d in deps if d.startswith("numpy")))
    assert np_req.specifier.contains(f"{int(libs['numpy'].split('.')[0])}.0.0")
    assert registry.version_range("pandas", "2.3.3", "major") == "pandas>=2.0,<3"


def test_every_candidate_unpickles_by_value_where_customer_analytics_cannot_be_imported(
    tmp_path, comparison, labelled
):
    """What snowflake-ml does with ``ext_modules`` (cloudpickle by value), then unpickled without
    our package."""
    import cloudpickle

    holdout = labelled[1]
    holdout[comparison.features].to_parquet(tmp_path / "holdout.parquet")
    for name in NAMES:
        model = comparison.models[name]
        meta = registry.build_meta(
            model,
            "customer_spend",
            "V1",
            {"rmse": 1.0},
            {"candidate": name},
            {},
            comparison.features,
            comparison.targets,
        )
        args = registry.snowflake_log_args(
            model, "customer_spend", "V1", meta, holdout[comparison.features].head(5)
        )
        for mod in args["ext_modules"] or []:
            cloudpickle.register_pickle_by_value(mod)
        try:
            (tmp_path / f"{name}.pkl").write_bytes(cloudpickle.dumps(model))
        finally:
            for mod in args["ext_modules"] or []:
                cloudpickle.unregister_pickle_by_value(mod)
    code = textwrap.dedent("""
        import sys, numpy as np, pandas as pd, pickle
        from pathlib import Path
        class Blocked:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "customer_analytics":
                    raise ImportError(f"{name} is not installed in the warehouse")
        sys.meta_path.insert(0, Blocked())
        folder, names = Path(sys.argv[1]), sys.argv[2:]
        frame = pd.read_parquet(folder / "holdout.parquet")
        for name in names:
            model = pickle.loads((folder / f"{name}.pkl").read_bytes())
            np.save(folder / f"{name}.npy", np.asarray(model.predict(frame), dtype=float))
        assert not [m for m in sys.modules if m.startswith("customer_analytics")]
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), *NAMES],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for name in NAMES:
        got = np.clip(np.load(tmp_path / f"{name}.npy").reshape(len(holdout), -1), 0, None)
        np.testing.assert_array_equal(got, comparison.predictions[name])


def test_the_baselines_module_imports_nothing_of_ours_and_shares_the_unknown_label():
    source = Path(baselines.__file__).read_text()
    assert "customer_analytics" not in source.split('"""', 2)[2]  # the code, after the module doc
    assert baselines.UNKNOWN == ft.UNKNOWN
    assert md.SegmentMeanBaseline is baselines.SegmentMeanBaseline  # the old names still resolve


def test_a_default_that_cannot_be_loaded_for_any_reason_is_replaced_not_a_crash(
    tmp_path, comparison, params, labelled
):
    """skops raises ValueError (not RegistryError) for a .npy holding a pickled object (issue 15,
    item 22)."""
    reg = registry.LocalRegistry(tmp_path)
    holdout = labelled[1]
    first = register(reg, comparison, params, labelled, "ridge")
    reg.set_default(NAME, first.version)
    path = tmp_path / NAME / first.version / "model.skops"
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    npy = next(n for n in files if n.endswith(".npy"))
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    files[npy] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    with pytest.raises(ValueError):  # what skops raises, outside RegistryError
        reg.load(NAME, version=first.version)
    decision = registry.promote(
        reg, register(reg, comparison, params, labelled, "mean"), holdout, "rmse"
    )
    assert (
        decision.promoted
        and "could not be loaded" in decision.reason
        and "ValueError" in decision.reason
    )
    assert str(tmp_path) not in decision.reason


def test_a_truncated_meta_json_hides_one_version_and_never_fails_every_run(
    tmp_path, comparison, params, labelled
):
    reg = registry.LocalRegistry(tmp_path)
    holdout = labelled[1]
    v1, v2 = (register(reg, comparison, params, labelled, n) for n in ("mean", "ridge"))
    reg.set_default(NAME, v2.version)
    meta = tmp_path / NAME / v1.version / "meta.json"
    meta.write_text(meta.read_text()[:40])  # truncated, e.g. a full disk
    assert [v.version for v in reg.list_versions(NAME)] == [v2.version]
    assert list(registry.versions_frame(reg, NAME).index) == [v2.version]
    with pytest.raises(registry.RegistryError, match="cannot be read"):
        reg.get(NAME, version=v1.version)
    # now the default's own meta.json is truncated: a new version replaces it instead of failing 04
    default_meta = tmp_path / NAME / v2.version / "meta.json"
    default_meta.write_text("{")
    v3 = register(reg, comparison, params, labelled, "segment_mean")
    assert v3.version == "v3"
    decision = registry.promote(reg, v3, holdout, "rmse")
    assert decision.promoted and "could not be loaded" in decision.reason
    assert reg.default_version(NAME) == "v3" and [v.version for v in reg.list_versions(NAME)] == [
        "v3"
    ]


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys, numpy as np
    from pathlib import Path
    from sklearn.linear_model import Ridge
    from customer_analytics import registry
    root, how = Path(sys.argv[1]), sys.argv[2]
    X = np.random.default_rng(0).normal(size=(40, 3)); y = X.sum(axis=1)
    model = Ridge().fit(X, y)
    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "while-serialising":   # killed while the model file is being produced
        registry.sio.dumps = die
    elif how == "while-building-meta":  # killed after the model file, before the metadata
        registry.build_meta = die
    registry.LocalRegistry(root).log_model(
        model, "m", {"rmse": 1.0}, {}, {}, ["a", "b", "c"], ["y"]
    )
""")


@pytest.mark.parametrize(
    "how",
    [
        "while-serialising",
        "while-building-meta",
        "registry.model_written",
        "registry.meta_written",
        "registry.registered",
    ],
)
def test_a_writer_killed_at_any_moment_leaves_no_incomplete_version(tmp_path, comparison, how):
    """SIGKILL of a real process during the registry write (issue 15, item 14)."""
    reg = registry.LocalRegistry(tmp_path)
    args = ("m", {"rmse": 1.0}, {}, {}, comparison.features, comparison.targets)
    reg.log_model(comparison.models["mean"], *args)  # v1, complete
    env = {**os.environ, faults.KILL_VAR: f"point:{how}"}
    out = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path), how],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == -signal.SIGKILL, (out.returncode, out.stderr[-2000:])
    incomplete = [p.name for p in (tmp_path / "m").glob("v*") if not (p / "meta.json").is_file()]
    assert incomplete == []
    survived = [v.version for v in reg.list_versions("m")]
    assert survived == (["v1", "v2"] if how == "registry.registered" else ["v1"])
    after = reg.log_model(
        comparison.models["ridge"], *args
    )  # the next write cleans up after the killed one
    assert after.version == f"v{len(survived) + 1}"
    assert sorted(
        p.name for p in (tmp_path / "m").iterdir() if not p.name.startswith(".")
    ) == sorted(
        [*survived, after.version, "DEFAULT"]
        if (tmp_path / "m" / "DEFAULT").exists()
        else [*survived, after.version]
    )
    assert not any((tmp_path / "m" / registry.INCOMING).iterdir())
    for v in reg.list_versions("m"):
        reg.load("m", v.version)


def snowflake_adapter(fake) -> registry.SnowflakeRegistry:
    return registry.SnowflakeRegistry(None, "ANALYTICS", "SHOP", registry=fake)


def test_snowflake_adapter_against_snowflake_ml_2_6_behaviour(comparison, params, labelled):
    """First version becomes the default by itself; promotion compares in the warehouse (run), not
    by load."""
    fake = FakeRegistry()
    reg = snowflake_adapter(fake)
    holdout = labelled[1]
    first = register(reg, comparison, params, labelled, "mean")
    assert reg.default_version(NAME) == first.version  # Snowflake made it the default already
    decision = registry.promote(reg, first, holdout, "rmse")
    assert decision.promoted and "no default version yet" in decision.reason
    best = comparison.board[comparison.board["kind"] == "model"]["rmse"].idxmin()
    better = register(reg, comparison, params, labelled, best)
    fake.current_role = "REPORTING"  # not the owner: snowflake-ml refuses load(), run() is allowed
    decision = registry.promote(reg, better, holdout, "rmse")
    assert (
        decision.promoted
        and "beats" in decision.reason
        and reg.default_version(NAME) == better.version
    )
    assert decision.previous_value == pytest.approx(comparison.board.loc["mean", "rmse"], rel=1e-9)
    assert ("run", NAME, first.version, "pandas") in fake.calls
    assert not any(c[0] == "load" for c in fake.calls)
    worse = register(reg, comparison, params, labelled, "segment_mean")
    assert not registry.promote(reg, worse, holdout, "rmse").promoted
    listed = reg.list_versions(NAME)
    assert [v.version for v in listed] == [first.version, better.version, worse.version]
    assert listed[1].meta["metrics"]["rmse"] == pytest.approx(
        comparison.board.loc[best, "rmse"], rel=1e-12
    )
    assert listed[1].meta["features"] == comparison.features
    out = reg.run(holdout, NAME, version=better.version)
    np.testing.assert_array_equal(np.clip(out.to_numpy(), 0, None), comparison.predictions[best])


def test_snowflake_load_is_owner_only_and_checks_the_environment_and_promotion_survives_it(
    comparison, params, labelled
):
    from snowflake.ml._internal.exceptions.exceptions import SnowflakeMLException

    fake = FakeRegistry(current_role="REPORTING")
    reg = snowflake_adapter(fake)
    holdout = labelled[1]
    first = register(reg, comparison, params, labelled, "ridge")
    with pytest.raises(SnowflakeMLException, match="owner role"):
        reg.load(NAME)
    fake.current_role = fake.owner_role
    fake.local_versions = {
        "scikit-learn": "0.24.2"
    }  # this client's environment differs from the model's
    with pytest.raises(ValueError, match="force=True"):
        reg.load(NAME)
    fake.local_versions = {}
    model, mv = reg.load(NAME)
    np.testing.assert_array_equal(
        md.predict(model, holdout, mv.meta["features"]), comparison.predictions["ridge"]
    )
    fake.run_failures[first.version] = ValueError(
        "Unable to run: the environment of this version is broken"
    )
    decision = registry.promote(
        reg, register(reg, comparison, params, labelled, "mean"), holdout, "rmse"
    )
    assert (
        decision.promoted
        and "could not be loaded" in decision.reason
        and "ValueError" in decision.reason
    )
