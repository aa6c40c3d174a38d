"""Benchmark: BTYD fitting time at 100,000 customers, on distinct histories (as 03 fits them) and
on one row per customer.

    .venv/bin/python bench/btyd_fit_times.py [--customers 100000] [--seed 7]

Simulates a closed cohort under BG/NBD + Gamma-Gamma (CDNOW-like parameters, whole days as in the
warehouse's summaries), then times each fit. Timings depend on the machine's load: say so when
quoting them.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from customer_analytics import btyd, synthetic

TRUE_BG = (0.243, 4.414, 0.793, 2.426)  # r, alpha, a, b (Fader, Hardie & Lee 2005, CDNOW)
TRUE_GG = (6.25, 3.74, 15.44)  # p, q, gamma


def simulate(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    T = np.floor(546.0 - rng.random(n) * 84.0)
    cust, t = synthetic.simulate_purchases(rng, n, *TRUE_BG, T)
    t = np.floor(t)
    x = np.bincount(cust, minlength=n).astype(float)
    t_x = np.zeros(n)
    np.maximum.at(t_x, cust, t)
    values = synthetic.simulate_values(rng, cust, n, *TRUE_GG)
    m = np.bincount(cust, weights=values, minlength=n) / np.maximum(x, 1)
    return pd.DataFrame({"X": x, "TX": t_x, "T": T, "M": m})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    df = simulate(a.customers, a.seed)
    triples = df.groupby(["X", "TX", "T"]).size().rename("N").reset_index()
    print(
        f"{a.customers:,} customers, {len(triples):,} distinct (x, t_x, T) histories, "
        f"{int((df['X'] > 0).sum()):,} repeat buyers"
    )
    for family in btyd.FAMILIES:
        t0 = time.perf_counter()
        btyd.fit_purchases(family, triples["X"], triples["TX"], triples["T"], counts=triples["N"])
        t1 = time.perf_counter()
        btyd.fit_purchases(family, df["X"], df["TX"], df["T"])
        t2 = time.perf_counter()
        print(
            f"{family}: {t1 - t0:.2f} s on distinct histories, {t2 - t1:.2f} s on one row per "
            "customer"
        )
    rep = df[df["X"] > 0]
    t0 = time.perf_counter()
    btyd.fit_gamma_gamma(rep["X"], rep["M"])
    print(f"gamma_gamma: {time.perf_counter() - t0:.2f} s on {len(rep):,} repeat buyers")


if __name__ == "__main__":
    main()
