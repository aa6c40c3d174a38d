import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from customer_analytics import synthetic


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a, b, c = (
        synthetic.write(synthetic.generate(300, seed=s), tmp_path / n)
        for s, n in ((1, "a"), (1, "b"), (2, "c"))
    )
    for name in ("customers.csv", "orders.jsonl", "reviews.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "orders.jsonl").read_bytes() != (
        tmp_path / "c" / "orders.jsonl"
    ).read_bytes()
    assert a == b


def test_files_follow_the_documented_shape(raw_dir):
    with (raw_dir / "customers.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) == {
        "customer_id",
        "name",
        "email",
        "signup_date",
        "country",
        "acquisition_channel",
        "birth_year",
    }
    orders = [json.loads(line) for line in (raw_dir / "orders.jsonl").open(encoding="utf-8")]
    assert {"order_id", "customer_id", "ts", "items", "shipping"} <= set(orders[0])
    assert all(
        o["items"] and {"product", "quantity", "unit_price"} == set(o["items"][0])
        for o in orders[:100]
    )
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
    assert (
        per_customer[channel == "referral"].mean() > 1.5 * per_customer[channel == "social"].mean()
    )
    # review wording follows sentiment: the complaint themes go with low ratings
    texts, rating = d["reviews"]["text"], d["reviews"]["rating"]
    neg = np.array(
        [
            "broken" in t.lower() or "stale" in t.lower() or "never answered" in t.lower()
            for t in texts
        ]
    )
    assert neg.sum() > 50
    assert rating[(rating > 0) & neg].mean() < rating[(rating > 0) & ~neg].mean() - 1


def test_every_text_carries_its_documented_theme():
    d = synthetic.generate(2000, seed=4)
    for part in (d["reviews"], d["calls"]):
        assert len(part["text"]) == len(part["theme"]) > 20
        for text, theme in zip(part["text"], part["theme"], strict=True):
            phrases = [p.split("{p}")[0].lower() for p in synthetic.THEMES[theme]]
            assert any(p in text.lower() for p in phrases), (theme, text)
    # every planted theme appears, and the planted complaint itself
    assert set(d["reviews"]["theme"]) == set(synthetic.THEMES)
    assert any("the parcel arrived broken" in t.lower() for t in d["reviews"]["text"])


def test_calls_and_audio_clips_are_written_with_the_contract_s_file_names(tmp_path):
    d = synthetic.generate(2000, seed=4)
    counts = synthetic.write(d, tmp_path, calls=True, audio_clips=3)
    files = sorted((tmp_path / "calls").iterdir())
    assert counts["calls"] == len(files) == len(d["calls"]["text"]) and counts["audio_calls"] == 3
    audio = [f for f in files if f.suffix == ".flac"]
    clips = synthetic.demo_clips()
    assert len(audio) == 3 and {f.read_bytes() for f in audio} == {
        (synthetic.DEMO_AUDIO / c["file"]).read_bytes() for c in clips[:3]
    }
    for k, clip in zip(d["calls"]["clip_call"][:3], clips[:3], strict=True):
        assert (
            d["calls"]["theme"][k] == clip["theme"]
        )  # a recording is given to a call of its theme
    first = next(f for f in files if f.suffix == ".txt").read_text(encoding="utf-8").splitlines()
    assert (
        first[0].startswith("customer_id: C") and first[1].startswith("ts: 20") and first[2] == ""
    )


def test_cli_if_absent_leaves_existing_data(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "customer_analytics.synthetic",
        "--customers",
        "50",
        "--out",
        str(tmp_path),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    before = (tmp_path / "orders.jsonl").read_bytes()
    out = subprocess.run(
        cmd + ["--seed", "9", "--if-absent"], check=True, capture_output=True, text=True
    )
    assert "already" in out.stderr and (tmp_path / "orders.jsonl").read_bytes() == before


def test_closed_cohort_joins_early_then_decays_and_has_no_new_signups(tmp_path):
    d = synthetic.generate_closed_cohort(3000, seed=5)
    signup = np.array(d["customers"]["signup"], dtype="datetime64[D]")
    start = np.datetime64("2025-01-01")
    assert (signup < start + np.timedelta64(12 * 7, "D")).all()  # all join in the first 12 weeks
    ts = np.array(d["orders"]["ts"], dtype="datetime64[s]").astype("datetime64[D]")
    first = np.full(3000, np.datetime64("2100-01-01"), dtype="datetime64[D]")
    np.minimum.at(first, d["orders"]["cust"], ts)
    assert (first == signup).all()  # the sign-up day is the first purchase
    months = ts.astype("datetime64[M]")
    per_month = np.unique(months[ts >= start + np.timedelta64(120, "D")], return_counts=True)[1]
    assert per_month[:3].mean() > 2 * per_month[-3:].mean()  # buying decays as customers drop out
    counts = synthetic.write(d, tmp_path)
    assert not (tmp_path / "reviews.jsonl").exists() and counts["reviews"] == 0
    lines = [json.loads(x) for x in (tmp_path / "orders.jsonl").open(encoding="utf-8")]
    spend = [sum(i["quantity"] * i["unit_price"] for i in o["items"]) for o in lines]
    assert min(spend) > 0 and len(lines) == counts["orders"]


def test_the_purchase_simulation_follows_bg_nbd():
    """Mean repeat purchases over t equal Fader et al.'s (2005) eq. 9 for BG/NBD.

    E[X(t)] = (a+b-1)/(a-1) [1 - (α/(α+t))^r 2F1(r, b; a+b-1; t/(α+t))].
    """
    from scipy.special import hyp2f1

    r, alpha, a, b, t = 0.5, 20.0, 2.5, 3.0, 200.0
    cust, _ = synthetic.simulate_purchases(np.random.default_rng(1), 200_000, r, alpha, a, b, t)
    z = t / (alpha + t)
    expected = (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, z))
    assert cust.size / 200_000 == pytest.approx(expected, rel=0.02)
