"""Throwaway measurement: pymc-marketing's BG/NBD against our scipy fit (import, fit, optimum).

Run it in a separate virtualenv (pymc-marketing is *not* a project dependency)::

    python3 -m venv /tmp/pymc-eval && /tmp/pymc-eval/bin/pip install pymc-marketing
    /tmp/pymc-eval/bin/python bench/pymc_marketing_eval.py 100000

It loads ``src/customer_analytics/btyd.py`` by path (no project install needed), simulates ``n``
customers from BG/NBD with the CDNOW parameters (days, 12-week joining window, 78 weeks), fits both
ways and prints JSON: import seconds, fit seconds, both parameter sets, the log-likelihood of our
closed form at both optima, and the largest difference between pymc-marketing's ``BetaGeoNBD``
log-density and our closed form on 50 customers.
"""

import importlib.util
import json
import sys
import time
from pathlib import Path

t0 = time.perf_counter()
import pymc_marketing.clv as clv  # noqa: E402
from pymc_extras.prior import Prior  # noqa: E402

IMPORT_S = time.perf_counter() - t0
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _ours():
    path = Path(__file__).resolve().parents[1] / "src" / "customer_analytics" / "btyd.py"
    spec = importlib.util.spec_from_file_location("btyd_ours", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["btyd_ours"] = mod
    spec.loader.exec_module(mod)
    return mod


def main(n: int) -> dict:
    btyd = _ours()
    rng = np.random.default_rng(3)
    r, alpha, a, b = 0.243, 4.414 * 7, 0.793, 2.426
    T = 546 - rng.random(n) * 84
    lam, p = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n)
    x, tx, t, active = np.zeros(n), np.zeros(n), np.zeros(n), np.ones(n, bool)
    while active.any():
        idx = np.flatnonzero(active)
        t[idx] += rng.exponential(1, idx.size) / lam[idx]
        inside = t[idx] <= T[idx]
        active[idx[~inside]] = False
        buy = idx[inside]
        x[buy] += 1
        tx[buy] = t[buy]
        active[buy[rng.random(buy.size) < p[buy]]] = False
    T, tx = np.floor(T), np.floor(tx)  # daily grain, like the warehouse summaries
    out = {"customers": n, "import_s": IMPORT_S}
    t0 = time.perf_counter()
    ours = btyd.fit_purchases("bgnbd", x, tx, T)
    out["ours_fit_s"], out["ours"] = time.perf_counter() - t0, ours.params
    model = clv.BetaGeoModel(model_config={k: Prior("HalfFlat") for k in ("r", "alpha", "a", "b")})
    t0 = time.perf_counter()
    model.fit(
        data=pd.DataFrame({"customer_id": np.arange(n), "frequency": x, "recency": tx, "T": T}),
        method="map",
    )
    out["pymc_map_fit_s"] = time.perf_counter() - t0
    out["pymc"] = {
        k: float(model.idata.posterior[k].values.ravel()[0]) for k in ("r", "alpha", "a", "b")
    }
    out["ours_ll_at_ours"] = float(btyd.bgnbd_loglik(ours.values, x, tx, T).sum())
    out["ours_ll_at_pymc"] = float(btyd.bgnbd_loglik(tuple(out["pymc"].values()), x, tx, T).sum())
    import pymc as pm
    from pymc_marketing.clv.distributions import BetaGeoNBD

    dist = BetaGeoNBD.dist(
        a=ours.params["a"],
        b=ours.params["b"],
        r=ours.params["r"],
        alpha=ours.params["alpha"],
        T=T[:50],
    )
    theirs = pm.logp(dist, np.column_stack([tx[:50], x[:50]])).eval()
    out["max_abs_logp_diff_50_customers"] = float(
        np.max(np.abs(theirs - btyd.bgnbd_loglik(ours.values, x[:50], tx[:50], T[:50])))
    )
    return out


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000), indent=1))
