import datetime as dt

import pytest

from conftest import REPO
from customer_analytics import config


def test_env_yaml_defaults_resolve_to_project_paths():
    p = config.load(REPO)
    assert p.connection == "local"
    assert p.data_dir == REPO / "data" / "raw"
    assert p.warehouse_dir == REPO / "data" / "warehouse"
    assert p.run_date == dt.date(2026, 11, 1)
    assert "random_forest" in p.models and "last_period" in p.models


def test_overrides_win_and_none_means_env(monkeypatch):
    p = config.load(REPO, run_date="2026-09-01", sample="0.25", seed=None)
    assert p.run_date == dt.date(2026, 9, 1) and p.sample == 0.25
    assert p.seed == config.read_env(REPO)["seed"]


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("run_date", "01/11/2026", "run_date"),
        ("sample", 0, "sample"),
        ("sample", "lots", "sample"),
        ("horizon_days", 2, "horizon_days"),
        ("horizon_days", "sixty", "horizon_days"),
        ("models", "ridge,xgboost", "xgboost"),
        ("primary_metric", "accuracy", "primary_metric"),
        ("connection", "prod; DROP TABLE X", "connection"),
        ("scoring_set", "vip", "scoring_set"),
        ("cv_folds", 0, "cv_folds"),
        ("max_train_rows", "many", "max_train_rows"),
        ("text_max_rows", 5, "text_max_rows"),
    ],
)
def test_bad_values_are_named_in_the_error(key, value, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load(REPO, **{key: value})


def test_cutoffs_step_back_by_horizon_and_end_one_horizon_before_run_date():
    p = config.load(REPO, run_date="2026-11-01", horizon_days=60, n_cutoffs=3)
    cs = p.cutoffs()
    assert len(cs) == 4
    assert cs[-1] == dt.date(2026, 9, 2)
    assert all((b - a).days == 60 for a, b in zip(cs, cs[1:], strict=False))


def test_project_root_is_found_from_a_subfolder(monkeypatch):
    monkeypatch.delenv(config.ROOT_ENV_VAR, raising=False)
    assert config.project_root(REPO / "notebooks") == REPO


def test_identifiers_are_validated():
    assert config.check_identifier("clean_orders") == "CLEAN_ORDERS"
    with pytest.raises(config.ConfigError):
        config.check_identifier("X; DROP TABLE Y")


def test_unknown_parameters_are_refused_wherever_they_come_from(tmp_path, monkeypatch):
    with pytest.raises(config.ConfigError, match=r"Unknown parameter\(s\) \['smaple'\]"):
        config.load(REPO, smaple=0.1)
    env = tmp_path / "env.yaml"
    env.write_text((REPO / "env.yaml").read_text() + "horizon: 30\n")
    monkeypatch.setenv(config.ENV_FILE_VAR, str(env))
    with pytest.raises(
        config.ConfigError, match=r"env.yaml has unknown parameter\(s\) \['horizon'\]"
    ):
        config.load(REPO)


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("run_date", "0001-03-01", "between 1990-01-01 and 2099-12-31"),
        ("run_date", "9999-12-31", "between 1990-01-01 and 2099-12-31"),
        ("sample", 0.00001, r"sample' must be in \[0.0001, 1\]"),
        ("orders_file", ["orders.jsonl"], "orders_file' must be a file name"),
        ("orders_file", "../secrets.csv", "without '..'"),
        ("run_namespace", "Prod Run!", "run_namespace"),
        ("database", "x; drop", "plain identifier"),
    ],
)
def test_values_that_used_to_fail_late_are_refused_up_front(key, value, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load(REPO, **{key: value})


def test_summary_holds_no_paths():
    s = config.load(REPO).summary()
    assert not any("/" in str(v) for v in s.values())
