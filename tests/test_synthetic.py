import csv
import json
import subprocess
import sys

import numpy as np

from customer_analytics import synthetic


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a, b, c = (synthetic.write(synthetic.generate(300, seed=s), tmp_path / n) for s, n in ((1, "a"), (1, "b"), (2, "c")))
    for name in ("customers.csv", "orders.jsonl", "reviews.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "orders.jsonl").read_bytes() != (tmp_path / "c" / "orders.jsonl").read_bytes()
    assert a == b


def test_files_follow_the_documented_shape(raw_dir):
    with (raw_dir / "customers.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) == {"customer_id", "name", "email", "signup_date", "country", "acquisition_channel",
                            "birth_year"}
    orders = [json.loads(line) for line in (raw_dir / "orders.jsonl").open(encoding="utf-8")]
    assert {"order_id", "customer_id", "ts", "items", "shipping"} <= set(orders[0])
    assert all(o["items"] and {"product", "quantity", "unit_price"} == set(o["items"][0]) for o in orders[:100])
    assert any("coupon" in o for o in orders) and not all("coupon" in o for o in orders)
    products = {i["product"] for o in orders for i in o["items"]}
    assert len(products) >= 5
    ts = sorted(o["ts"] for o in orders)
    months = (np.datetime64(ts[-1][:7]) - np.datetime64(ts[0][:7])).astype(int)
    assert months >= 18
    reviews = [json.loads(line) for line in (raw_dir / "reviews.jsonl").open(encoding="utf-8")]
    assert any("rating" in r for r in reviews) and any("rating" not in r for r in reviews)
    assert {r["rating"] for r in reviews if "rating" in r} <= {1, 2, 3, 4, 5}


def test_planted_structure_is_visible_in_the_data():
    d = synthetic.generate(4000, seed=3)
    cust = d["orders"]["cust"]
    per_customer = np.bincount(cust, minlength=4000)
    channel = d["customers"]["channel"]
    # referral customers buy more often than social-media ones (channel effect)
    assert per_customer[channel == "referral"].mean() > 1.5 * per_customer[channel == "social"].mean()
    # review wording follows sentiment: negative phrases go with low ratings
    texts = synthetic._review_text(np.random.default_rng(0), d["reviews"]["mood"], d["reviews"]["product"])
    rating = d["reviews"]["rating"]
    neg = np.array(["broken" in t.lower() or "disappointed" in t.lower() for t in texts])
    assert rating[(rating > 0) & neg].mean() < rating[(rating > 0) & ~neg].mean() - 1


def test_cli_if_absent_leaves_existing_data(tmp_path):
    cmd = [sys.executable, "-m", "customer_analytics.synthetic", "--customers", "50", "--out", str(tmp_path)]
    subprocess.run(cmd, check=True, capture_output=True)
    before = (tmp_path / "orders.jsonl").read_bytes()
    out = subprocess.run(cmd + ["--seed", "9", "--if-absent"], check=True, capture_output=True, text=True)
    assert "already" in out.stderr and (tmp_path / "orders.jsonl").read_bytes() == before
