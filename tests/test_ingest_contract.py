"""The data contract page is generated from the code, and the ingest parameters are validated."""

import pytest

from conftest import REPO
from customer_analytics import config, contract


def test_contract_page_matches_the_code():
    page = (REPO / "docs" / "data_contract.md").read_text(encoding="utf-8")
    assert page == contract.render_markdown(), (
        "docs/data_contract.md is out of date: run `python -m customer_analytics.contract --write "
        "docs/data_contract.md`"
    )


def test_every_reason_is_documented_with_its_exact_string():
    reasons = {v for k, v in vars(contract.Reason).items() if not k.startswith("_")}
    assert reasons == set(contract.REASONS)
    page = contract.render_markdown()
    for r in reasons:
        assert f"| `{r}` |" in page
    for src in contract.SOURCES:
        for f in src.fields:
            assert f"`{f.name}`" in page


def test_env_yaml_declares_the_ingest_parameters_with_their_defaults():
    p = config.load(REPO)
    assert (p.orders_file, p.customers_file, p.reviews_file, p.calls_dir) == (
        "orders.jsonl",
        "customers.csv",
        "reviews.jsonl",
        "calls",
    )
    assert set(p.columns) <= {"orders", "customers", "reviews"} and not any(p.columns.values())
    assert p.max_reject_share == contract.DEFAULT_MAX_REJECT_SHARE


def test_column_mapping_and_optional_files_resolve():
    p = config.load(
        REPO,
        columns={"orders": {"customer_id": "Kunde", "ts": "Datum"}},
        customers_file="",
        reviews_file="none.jsonl",
    )
    assert p.columns == {"orders": {"customer_id": "Kunde", "ts": "Datum"}}
    assert p.customers_file is None and p.reviews_file == "none.jsonl"
    # as a string, e.g. from the command line
    assert config.load(REPO, columns="{orders: {quantity: Menge}}").columns == {
        "orders": {"quantity": "Menge"}
    }


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("columns", {"shipments": {"customer_id": "x"}}, "unknown source 'shipments'"),
        ("columns", {"orders": {"qty": "Menge"}}, "unknown field 'qty'.*quantity"),
        ("columns", {"orders": {"quantity": ""}}, "columns.orders.quantity"),
        ("columns", ["orders"], "must be a mapping"),
        ("max_reject_share", 1.5, "max_reject_share"),
        ("max_reject_share", "lots", "max_reject_share"),
        ("orders_file", "/etc/passwd", "relative to data_dir"),
        ("orders_file", "../other/orders.csv", "without '..'"),
        ("orders_file", "", "orders_file"),
    ],
)
def test_bad_ingest_parameters_are_named(key, value, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load(REPO, **{key: value})


def test_locate_finds_the_same_stem_with_another_accepted_extension(tmp_path):
    assert contract.locate(tmp_path, "orders.jsonl") is None
    (tmp_path / "orders.csv").write_text("x\n")
    assert contract.locate(tmp_path, "orders.jsonl") == tmp_path / "orders.csv"
    (tmp_path / "orders.jsonl").write_text("{}\n")
    assert contract.locate(tmp_path, "orders.jsonl") == tmp_path / "orders.jsonl"
