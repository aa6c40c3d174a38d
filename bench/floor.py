"""The floor: the pipeline's work as one plain pandas + scikit-learn script (no notebooks, no
warehouse).

Usage: ``.venv/bin/python bench/floor.py DATA_DIR [--out FOLDER]`` (``bench/run.py`` calls it).

Same parameters (``env.yaml``), same definitions and same models as the five notebooks:

1. ingest: the demo files' checks as a pandas user would write them — ``json.loads`` per line
   (a malformed line is rejected, not fatal), then vectorised checks of ids, timestamps (ISO,
   in range), quantities (whole, positive), prices and ratings, duplicate orders and reviews,
   unknown customers (``floor_ingest``; ``--reference-ingest`` uses the tests' row-by-row
   ``reference.ingest`` instead, which implements every rule of the contract but is slow);
2. EDA aggregates: orders and revenue per month, product mix, orders per customer;
3. features: the sentiment model (``text.make_pipeline`` on a seeded sample of at most
   ``text_max_rows`` rated reviews before the first cut-off) scores every text, then
   ``reference.features_at`` for every cut-off and for ``run_date``;
4. model comparison: a seeded sample of at most ``max_train_rows`` training rows,
   ``models.compare`` (time-based CV + held-out window), ``models.select`` and permutation
   importance of the chosen model;
5. batch prediction: the chosen model scores the scoring set as of ``run_date``.

Writes ``timings.json`` (seconds per step) into ``--out``; no report, no registry.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # the pandas reference (tests/reference.py)

import reference  # noqa: E402
from customer_analytics import config, contract, models, text  # noqa: E402

LO, HI = pd.Timestamp(contract.MIN_DATE), pd.Timestamp(contract.MAX_DATE) + pd.Timedelta(days=1)


def _jsonl(path: Path) -> tuple[pd.DataFrame, int]:
    """Objects of a JSON-lines file (with their 1-based ``LINE_NO``) and the number of lines that
    are not one."""
    recs, bad = [], 0
    with path.open("rb") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(obj, dict):
                obj["LINE_NO"] = no
                recs.append(obj)
            else:
                bad += 1
    return pd.DataFrame.from_records(recs), bad


def _ts(s: pd.Series) -> pd.Series:
    t = pd.to_datetime(s, format="ISO8601", errors="coerce")
    t = t.dt.tz_localize(None) if getattr(t.dt, "tz", None) is not None else t
    return t.where((t >= LO) & (t < HI))


def _num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce")


def _text(s: pd.Series) -> pd.Series:
    return s.astype("string").str.strip().replace("", pd.NA)


def floor_ingest(
    data_dir: Path, params
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Customers, order lines and reviews that pass the checks, and the number rejected per
    source."""
    rejected = {}
    c = pd.read_csv(data_dir / params.customers_file, dtype=str, keep_default_na=False)
    cid, signup, by = _text(c["customer_id"]), _ts(c["signup_date"]), _num(c["birth_year"])
    ok = (
        cid.notna()
        & signup.notna()
        & (by.isna() | ((by % 1 == 0) & by.between(*contract.BIRTH_YEARS)))
    )
    ok &= ~(cid.duplicated() & ok)
    rejected["customers"] = int((~ok).sum())
    cust = pd.DataFrame(
        {
            "CUSTOMER_ID": cid,
            "SIGNUP_DATE": signup.dt.normalize(),
            "COUNTRY": _text(c["country"]).str.upper().fillna(contract.UNKNOWN),
            "CHANNEL": _text(c["acquisition_channel"]).str.lower().fillna(contract.UNKNOWN),
            "BIRTH_YEAR": by,
        }
    )[ok].reset_index(drop=True)
    known = set(cust["CUSTOMER_ID"])

    o, bad = _jsonl(data_dir / params.orders_file)
    items_ok = o["items"].map(lambda v: isinstance(v, list) and len(v) > 0)
    head_ok = (
        _text(o["order_id"]).notna()
        & _text(o["customer_id"]).isin(known)
        & _ts(o["ts"]).notna()
        & items_ok
    )
    head_ok &= ~(o["order_id"].duplicated() & head_ok)
    o = o[head_ok]
    ship = pd.DataFrame(
        o["shipping"].map(lambda v: v if isinstance(v, dict) else {}).tolist(), index=o.index
    )
    ln = o[["order_id", "customer_id", "ts", "coupon", "LINE_NO", "items"]].explode("items")
    it = pd.DataFrame(
        ln["items"].map(lambda v: v if isinstance(v, dict) else {}).tolist(), index=ln.index
    )
    qty, price = _num(it["quantity"]), _num(it["unit_price"])
    line_ok = (
        _text(it["product"]).notna()
        & (qty % 1 == 0)
        & (qty > 0)
        & (qty <= contract.MAX_QUANTITY)
        & price.between(0, contract.MAX_AMOUNT)
    )
    cost = _num(ship.get("cost", pd.Series(index=o.index, dtype=float))).reindex(ln.index)
    line_ok &= cost.isna() | cost.between(0, contract.MAX_AMOUNT)
    rejected["orders"] = bad + int((~head_ok).sum()) + int((~line_ok).sum())
    lines = pd.DataFrame(
        {
            "ORDER_ID": ln["order_id"],
            "CUSTOMER_ID": ln["customer_id"],
            "TS": _ts(ln["ts"]),
            "COUPON": _text(ln["coupon"]) if "coupon" in ln else pd.NA,
            "PRODUCT": _text(it["product"]).str.lower(),
            "QUANTITY": qty,
            "UNIT_PRICE": price,
            "LINE_NO": ln["LINE_NO"],
        }
    )[line_ok].reset_index(drop=True)

    r, bad = _jsonl(data_dir / params.reviews_file)
    rating, text_ = _num(r.get("rating", pd.Series(index=r.index, dtype=float))), _text(r["text"])
    ok = (
        _text(r["customer_id"]).isin(known)
        & _ts(r["ts"]).notna()
        & (text_.notna() | rating.notna())
        & (rating.isna() | ((rating % 1 == 0) & rating.between(*contract.RATINGS)))
    )
    ok &= ~(r[["customer_id", "ts"]].assign(R=rating, T=text_).duplicated() & ok)
    rejected["reviews"] = bad + int((~ok).sum())
    revs = pd.DataFrame(
        {
            "CUSTOMER_ID": r["customer_id"],
            "TS": _ts(r["ts"]),
            "RATING": rating,
            "TEXT": text_,
            "LINE_NO": r["LINE_NO"],
            "KIND": "review",
        }
    )[ok].reset_index(drop=True)
    return cust, lines, revs, rejected


def sample_rows(df: pd.DataFrame, cap: int, seed: int) -> pd.DataFrame:
    """At most ``cap`` rows of ``df`` (seeded), in their original order."""
    if not cap or len(df) <= cap:
        return df
    keep = np.sort(np.random.default_rng(seed).choice(len(df), cap, replace=False))
    return df.iloc[keep].reset_index(drop=True)


def run(data_dir: Path, out: Path, reference_ingest: bool = False) -> dict[str, float]:
    params = config.load(ROOT, data_dir=str(data_dir))
    times: dict[str, float] = {}
    t = time.perf_counter()

    def step(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        times[name] = now - t
        t = now

    if reference_ingest:
        ing = reference.ingest(
            data_dir,
            params.orders_file,
            params.customers_file,
            params.reviews_file,
            params.calls_dir,
            params.columns,
        )
        cust, lines, revs = ing.customers, ing.order_lines, ing.reviews
        rejected = ing.rejected["SOURCE"].value_counts().to_dict()
    else:
        cust, lines, revs, rejected = floor_ingest(data_dir, params)
    step("ingest")

    amount = lines["QUANTITY"] * lines["UNIT_PRICE"]
    orders = (
        lines.assign(AMOUNT=amount)
        .groupby(["ORDER_ID", "CUSTOMER_ID", "TS"], as_index=False)["AMOUNT"]
        .sum()
    )
    eda = {
        "monthly": orders.groupby(orders["TS"].dt.to_period("M"))["AMOUNT"].agg(["size", "sum"]),
        "products": lines.assign(AMOUNT=amount).groupby("PRODUCT")[["QUANTITY", "AMOUNT"]].sum(),
        "per_customer": orders.groupby("CUSTOMER_ID").size().clip(upper=30).value_counts(),
    }
    step("eda")

    cutoffs = params.cutoffs()
    first = pd.Timestamp(cutoffs[0])
    rated = revs[revs["RATING"].notna() & revs["TEXT"].notna() & (revs["TS"] < first)]
    if "KIND" in rated.columns:
        rated = rated[rated["KIND"].fillna("review") == "review"]
    rated = sample_rows(rated, params.text_max_rows, params.seed)
    scores = None
    if len(rated) >= text.MIN_TRAIN_ROWS:
        pipe = text.make_pipeline(params.seed).fit(
            rated["TEXT"], (rated["RATING"] >= text.POSITIVE_RATING).astype(int)
        )
        scores = reference.text_scores(revs, pipe)
    products = sorted(lines["PRODUCT"].unique())
    blocks = []
    for i, c in enumerate([*cutoffs, params.run_date]):
        role = "score" if i == len(cutoffs) else "holdout" if i == len(cutoffs) - 1 else "train"
        blocks.append(
            reference.features_at(
                cust, lines, revs, c, params.horizon_days, products, scores
            ).assign(CUTOFF=c, ROLE=role)
        )
    feats = pd.concat(blocks, ignore_index=True)
    step("features")

    train = sample_rows(
        feats[feats["ROLE"] == "train"].reset_index(drop=True), params.max_train_rows, params.seed
    )
    holdout = feats[feats["ROLE"] == "holdout"].reset_index(drop=True)
    comparison = models.compare(train, holdout, params.models, params.seed, params.cv_folds)
    selection = models.select(comparison, params.primary_metric, params.seed)
    chosen = comparison.models[selection.chosen]
    models.importance(chosen, holdout, comparison.features, params.seed)
    step("models")

    score = feats[feats["ROLE"] == "score"]
    if params.scoring_set == "new":
        score = score[score["TENURE_DAYS"] <= params.new_customer_days]
    elif params.scoring_set == "active":
        score = score[(score["HAS_ORDERED"] == 1) & (score["RECENCY_DAYS"] <= params.horizon_days)]
    predicted = models.predict(chosen, score, comparison.features)
    step("predict")

    out.mkdir(parents=True, exist_ok=True)
    result = {
        **{f"{k}_s": round(v, 3) for k, v in times.items()},
        "total_s": round(sum(times.values()), 3),
        "order_lines": len(lines),
        "customers": len(cust),
        "reviews": len(revs),
        "rejected": rejected,
        "feature_rows": len(feats),
        "chosen": selection.chosen,
        "holdout_improvement": selection.improvement,
        "scored": len(predicted),
        "predicted_spend": float(predicted[:, 0].sum()) if len(predicted) else 0.0,
        "eda_months": len(eda["monthly"]),
    }
    (out / "timings.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "floor")
    ap.add_argument(
        "--reference-ingest", action="store_true", help="the tests' row-by-row reference ingest"
    )
    a = ap.parse_args()
    print(json.dumps(run(a.data_dir, a.out, a.reference_ingest)))
