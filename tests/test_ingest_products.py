"""Product types made from data: safe, unique identifiers with their mapping documented; rare ones
grouped."""

from __future__ import annotations

import json
import shutil

import pytest
import snowflake.snowpark.functions as F

from conftest import make_params
from customer_analytics import features as ft
from customer_analytics import ingest
from customer_analytics import warehouse as wh
from customer_analytics.ingest import product_types as pt
from customer_analytics.narrative import ingest as story


@pytest.mark.parametrize(
    "name,key",
    [
        ("crème_brûlée", "creme_brulee"),
        ("Straße", "strasse"),
        ("choc-chip", "choc_chip"),
        ("choc chip", "choc_chip"),
        ("  ", "product"),
        ("3 tier cake", "p_3_tier_cake"),
        ("美味しい", "meiweishii"),
        ("x" * 80, "x" * 40),
        ("DROP TABLE x;--", "drop_table_x"),
    ],
)
def test_product_key_is_an_ascii_identifier(name, key):
    assert pt.product_key(name) == key


def test_names_with_the_same_key_are_told_apart_in_order_and_other_is_reserved():
    keys = pt.assign_keys(["choc-chip", "choc chip", "Choc_Chip", "other"], reserved={pt.OTHER})
    assert keys == {
        "choc-chip": "choc_chip",
        "choc chip": "choc_chip_2",
        "Choc_Chip": "choc_chip_3",
        "other": "other_2",
    }
    long = pt.assign_keys(["y" * 60, "y" * 61])
    assert long == {"y" * 60: "y" * 40, "y" * 61: "y" * 38 + "_2"}


@pytest.fixture(scope="module")
def renamed(raw_dir, tmp_path_factory):
    """The demo data with hostile product names: accents, two names with one key, and 40 one-off
    types."""
    data = tmp_path_factory.mktemp("products")
    for f in raw_dir.iterdir():
        if f.is_file():
            shutil.copy(f, data / f.name)
    out, k = [], 0
    for line in (raw_dir / "orders.jsonl").read_text().splitlines():
        o = json.loads(line)
        for it in o["items"]:
            it["product"] = {
                "chocolate_chip": "crème_brûlée",
                "oatmeal_raisin": "choc-chip",
                "peanut_butter": "choc chip",
            }.get(it["product"], it["product"])
        if k < 40 and len(o["items"]) > 1:
            o["items"][-1]["product"] = f"one-off {k}"
            k += 1
        out.append(json.dumps(o, ensure_ascii=False))
    (data / "orders.jsonl").write_text("\n".join(out) + "\n", encoding="utf-8")
    p = make_params(
        data, tmp_path_factory.mktemp("products_wh"), max_product_types=6, calls_dir=None
    )
    s = wh.connect(p)
    ingest.run(s, p)
    yield s, p, data
    s.close()
    wh.stop_local_server(p.warehouse_dir)


def test_features_build_with_hostile_product_names_and_nothing_is_merged(renamed):
    s, p, data = renamed
    mapping = s.table("PRODUCT_TYPES").to_pandas().set_index("NAME")
    assert mapping.loc["crème_brûlée", "PRODUCT"] == "creme_brulee"
    assert {mapping.loc["choc-chip", "PRODUCT"], mapping.loc["choc chip", "PRODUCT"]} == {
        "choc_chip",
        "choc_chip_2",
    }
    ft.build(s, p)  # 80684fd: ConfigError 'QTY_crème_brûlée' is not a valid table or column name
    cols = s.table("FEATURES").columns
    assert {
        "QTY_NEXT_CREME_BRULEE",
        "QTY_NEXT_CHOC_CHIP",
        "QTY_NEXT_CHOC_CHIP_2",
        "QTY_NEXT_OTHER",
    } <= set(cols)
    units = {}
    for line in (data / "orders.jsonl").read_text().splitlines():
        for it in json.loads(line)["items"]:
            units[it["product"]] = units.get(it["product"], 0) + it["quantity"]
    lines = (
        s.table("CLEAN_ORDER_LINES")
        .group_by("PRODUCT_NAME")
        .agg(F.sum("QUANTITY").alias("Q"))
        .collect()
    )
    got = {r["PRODUCT_NAME"]: r["Q"] for r in lines}
    assert (
        got["choc-chip"] == units["choc-chip"] and got["choc chip"] == units["choc chip"]
    )  # not merged


def test_rare_types_are_grouped_as_other_and_the_report_says_so(renamed):
    s, p, _ = renamed
    assert ft.product_types(s) == sorted(ft.product_types(s)) and len(ft.product_types(s)) == 7
    frame = pt.frame(s)
    other = frame.loc[pt.OTHER]
    assert other["names"] == 40 and other["lines"] == 40
    lines = s.table("CLEAN_ORDER_LINES")
    assert lines.filter(F.col("PRODUCT") == pt.OTHER).count() == 40
    note = story.product_types_text(frame, 6)
    assert (
        "**7 product types**" in note
        and "The 40 least frequent types (40 order lines) are grouped as 'other'" in note
        and "'crème_brûlée' becomes 'creme_brulee'" in note
    )
