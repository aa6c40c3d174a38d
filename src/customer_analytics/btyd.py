"""Buy-till-you-die (BTYD) models: BG/NBD, MBG/NBD and Gamma-Gamma, fitted by maximum likelihood.

Self-contained on purpose (numpy, scipy, pandas, scikit-learn only; nothing from
``customer_analytics``): the :class:`BTYDRegressor` stored in the model registry must load and
predict wherever the model goes.

Data per customer, in days, as of a cut-off (computed in the warehouse, see
:func:`customer_analytics.features.btyd_summaries`): ``x`` = repeat purchase days (days with a
purchase after the first one), ``t_x`` = days from the first to the last purchase day, ``T`` =
days from the first purchase day to the cut-off, ``m`` = mean net spend of the repeat purchase days.

Models (closed-form likelihoods as published):

* **BG/NBD** (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while alive, a
  customer buys as a Poisson process with rate ``λ ~ Gamma(r, α)``; after each *repeat* purchase
  they drop out with probability ``p ~ Beta(a, b)``. A customer who never came back is alive.
* **MBG/NBD** (Batislam, Denizel & Filiztekin 2007): the same, but a customer can also drop out
  right after the first purchase, so one-time buyers can be inactive (often better for shops
  where many buy once).
* **Gamma-Gamma** (Fader, Hardie & Lee 2005, "RFM and CLV"; Colombo & Jiang 1999): the value of
  each purchase is ``Gamma(p, ν)`` with ``ν ~ Gamma(q, γ)`` across customers, independent of the
  purchase process; the expected value of a customer's purchases shrinks their observed mean
  towards the population mean, the more the fewer purchases they made.

Fitting is scipy's L-BFGS-B on the logarithms of the parameters, with the log-likelihoods'
exact gradients (digamma terms; a finite-difference estimate cost one more likelihood per
parameter at every step), over the distinct ``(x, t_x, T)`` triples weighted by their counts (a
closed cohort of 100,000 customers observed daily has a few tens of thousands of distinct
triples). With exact gradients the fit follows a flat likelihood further than a
finite-difference one did: on a few hundred customers it can end with ``a, b`` in the thousands
(a drop-out probability known almost exactly), as likely as the moderate values but with the
same forecasts. The conditional expectations therefore take the Euler transform of the Gauss
hypergeometric function (stable for customers with many purchases) or its direct form (stable for
large ``a``), whichever is finite (:func:`expected_purchases`); no output is ever infinite.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd
from scipy import optimize, special
from sklearn.base import BaseEstimator, RegressorMixin, clone

log = logging.getLogger(__name__)

FAMILIES = ("bgnbd", "mbgnbd")
#: bounds of the log-parameters (e^-12 .. e^12): keeps the optimiser away from overflow
LOG_BOUND = 12.0
#: fewest customers a fit needs (below: no model, the caller falls back to naive values)
MIN_CUSTOMERS = 20


# --------------------------------------------------------------------------- log-likelihoods
def _arrays(*xs):
    return [np.asarray(v, dtype=float) for v in xs]


def _beta_geometric_terms(params, x, t_x, T, shift: int) -> tuple[np.ndarray, ...]:
    """The terms ``log A1, log A2`` and the bracket's two logs of
    :func:`_beta_geometric_loglik`."""
    r, alpha, a, b = params
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = (
        special.gammaln(a + b)
        + special.gammaln(b + x + shift)
        - special.gammaln(b)
        - special.gammaln(a + b + x + shift)
    )
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        dead = (
            np.log(a)
            - np.log(np.maximum(b + x - 1 + shift, 1e-300))
            - (r + x) * np.log(alpha + t_x)
        )
        a4 = np.where((x > 0) | bool(shift), dead, -np.inf)
    return a1, a2, a3, a4


def _beta_geometric_loglik(params, x, t_x, T, shift: int) -> np.ndarray:
    """BG/NBD (``shift=0``) or MBG/NBD (``shift=1``: a drop-out chance also at the first purchase).

    ``L = A1 * A2 * [(alpha+T)^-(r+x) + [x > 0 or shift] * a / (b+x-1+shift) * (alpha+t_x)^-(r+x)]``
    with ``A1 = Γ(r+x) alpha^r / Γ(r)`` and ``A2 = B(a, b+x+shift) / B(a, b)``.
    """
    x, t_x, T = _arrays(x, t_x, T)
    a1, a2, a3, a4 = _beta_geometric_terms(params, x, t_x, T, shift)
    return a1 + a2 + np.logaddexp(a3, a4)


def _beta_geometric_loglik_grad(params, x, t_x, T, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_beta_geometric_loglik` and its derivatives by ``log r, log alpha, log a, log b``
    (one row per customer, one column per parameter): the fit's exact gradient, so that L-BFGS-B
    does not estimate it with one more likelihood per parameter at every step."""
    r, alpha, a, b = params
    x, t_x, T = _arrays(x, t_x, T)
    a1, a2, a3, a4 = _beta_geometric_terms(params, x, t_x, T, shift)
    both = np.logaddexp(a3, a4)
    w3 = np.exp(a3 - both)  # the two terms' shares of the bracket
    w4 = np.exp(a4 - both)
    rx, bx = r + x, b + x + shift
    psi_ab, psi_abx = special.digamma(a + b), special.digamma(a + bx)
    d_r = (
        special.digamma(rx)
        - special.digamma(r)
        + np.log(alpha)
        - w3 * np.log(alpha + T)
        - w4 * np.log(alpha + t_x)
    )
    d_alpha = r / alpha - w3 * rx / (alpha + T) - w4 * rx / (alpha + t_x)
    d_a = psi_ab - psi_abx + w4 / a
    d_b = psi_ab + special.digamma(bx) - special.digamma(b) - psi_abx
    with np.errstate(divide="ignore", invalid="ignore"):
        d_b = d_b - np.where(w4 > 0, w4 / np.maximum(bx - 1, 1e-300), 0.0)
    grad = np.column_stack([r * d_r, alpha * d_alpha, a * d_a, b * d_b])
    return a1 + a2 + both, grad


def bgnbd_loglik(params, x, t_x, T) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (Fader, Hardie & Lee 2005, eq. 6).

    Args:
        params: ``(r, alpha, a, b)``.
        x, t_x, T: repeat purchases, time of the last purchase and age, as arrays (same unit).
    """
    return _beta_geometric_loglik(params, x, t_x, T, shift=0)


def mbgnbd_loglik(params, x, t_x, T) -> np.ndarray:
    """Per-customer MBG/NBD log-likelihood (Batislam, Denizel & Filiztekin 2007).

    Args:
        params: ``(r, alpha, a, b)``.
        x, t_x, T: repeat purchases, time of the last purchase and age, as arrays (same unit).
    """
    return _beta_geometric_loglik(params, x, t_x, T, shift=1)


def gamma_gamma_loglik(params, x, m) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood of the mean value ``m`` of ``x`` purchases.

    ``x >= 1`` and ``m > 0``.


    Args:
        params: ``(p, q, gamma)``.
    """
    p, q, g = params
    x, m = _arrays(x, m)
    px = p * x
    return (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * np.log(g)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(g + m * x)
    )


LOGLIK = {"bgnbd": bgnbd_loglik, "mbgnbd": mbgnbd_loglik}
#: the families' shift (:func:`_beta_geometric_loglik`)
SHIFT = {"bgnbd": 0, "mbgnbd": 1}


def gamma_gamma_loglik_grad(params, x, m) -> tuple[np.ndarray, np.ndarray]:
    """:func:`gamma_gamma_loglik` and its derivatives by ``log p, log q, log gamma``."""
    p, q, g = params
    x, m = _arrays(x, m)
    px = p * x
    psi = special.digamma(px + q)
    log_gmx = np.log(g + m * x)
    ll = gamma_gamma_loglik(params, x, m)
    d_p = x * (psi - special.digamma(px) + np.log(m) + np.log(x) - log_gmx)
    d_q = psi - special.digamma(q) + np.log(g) - log_gmx
    d_g = q / g - (px + q) / (g + m * x)
    return ll, np.column_stack([p * d_p, q * d_q, g * d_g])


# ------------------------------------------------------------------- conditional expectations
def _dropout_odds(family: str, params, x, t_x, T) -> np.ndarray:
    """Posterior odds dead : alive (0 for BG/NBD customers without repeat purchases)."""
    r, alpha, a, b = params
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + t_x)))
        if family == "bgnbd":
            return np.where(x > 0, a / np.maximum(b + x - 1, 1e-300) * ratio, 0.0)
        return a / (b + x) * ratio


def probability_alive(family: str, params, x, t_x, T) -> np.ndarray:
    """P(still active at ``T`` | x, t_x, T)."""
    x, t_x, T = _arrays(x, t_x, T)
    return 1.0 / (1.0 + _dropout_odds(family, params, x, t_x, T))


def expected_purchases(family: str, params, t: float, x, t_x, T) -> np.ndarray:
    """Expected purchases in ``(T, T + t]`` given the history (Fader et al. 2005 eq. 10; MBG too).

    The tail ``(1-z)^(r+x) 2F1(r+x, b+x; c; z)``, ``c = a+b+x-1`` (MBG: ``b -> b+1``),
    ``z = t / (alpha + T + t)``, has two closed forms, and each overflows where the other does not:

    * Euler's ``(1-z)^(a-1) 2F1(a+b-1-r, a-1; c; z)`` stays finite for customers with very many
      purchases (large ``x``), where the direct form's power underflows as its series overflows;
    * the direct form stays finite for large ``a`` (a drop-out probability known almost exactly,
      as fits on a few hundred customers can give: ``a, b`` in the thousands), where Euler's
      series overflows.

    Euler's is used where finite, the direct form elsewhere; where neither is, the result is NaN
    (no BTYD output for that customer, as for customers without a fit).
    """
    r, alpha, a, b = params
    x, t_x, T = _arrays(x, t_x, T)
    bb = b if family == "bgnbd" else b + 1.0
    if abs(a - 1.0) < 1e-7:  # removable singularity of the closed form: step aside
        a = 1.0 + 1e-7
    c = a + bb + x - 1.0
    z = t / (alpha + T + t)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        tail = np.asarray(
            np.exp((a - 1.0) * np.log1p(-z)) * special.hyp2f1(a + bb - 1.0 - r, a - 1.0, c, z)
        )
        bad = ~np.isfinite(tail)
        if bad.any():  # the direct form, for those customers only
            rx, bx, cb, zb = (np.broadcast_to(v, tail.shape)[bad] for v in (r + x, bb + x, c, z))
            tail[bad] = np.exp(rx * np.log1p(-zb)) * special.hyp2f1(rx, bx, cb, zb)
        alive = c / (a - 1.0) * (1.0 - tail)
    out = alive * probability_alive(family, (r, alpha, a, b), x, t_x, T)
    return np.where(np.isfinite(out), np.maximum(out, 0.0), np.nan)


def median_days_to_next(params, x, T, p_alive=1.0) -> np.ndarray:
    """Median time until the next purchase, counting the chance that the customer has left.

    While active, purchases follow a Poisson process whose rate has the posterior
    ``Gamma(r + x, alpha + T)`` (dropping out only happens at a purchase, in both families), so
    ``P(next purchase within t) = p_alive * (1 - ((alpha+T) / (alpha+T+t))^(r+x))``; the median
    solves that = 1/2: ``(alpha+T) * ((1 - 1/(2 p_alive))^(-1/(r+x)) - 1)``. NaN when
    ``p_alive <= 1/2`` (another purchase is less likely than not). ``p_alive = 1``: the median
    if the customer is known to be active, ``(alpha+T)(2^(1/(r+x)) - 1)``.
    """
    r, alpha = params[0], params[1]
    x, T, p_alive = _arrays(x, T, p_alive)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        left = np.log1p(-0.5 / p_alive)
        out = (alpha + T) * np.expm1(-left / (r + x))
    return np.where(p_alive > 0.5, out, np.nan)


def expected_value(params, x, m) -> np.ndarray:
    """Gamma-Gamma expected value per purchase: ``p (gamma + x m) / (p x + q - 1)``.

    Customers without repeat purchases (``x = 0``) get the population mean ``p gamma / (q - 1)``;
    a non-positive observed mean (net of returns) counts as 0.
    """
    p, q, g = params
    x, m = _arrays(x, m)
    m = np.where(np.isfinite(m), np.maximum(m, 0.0), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = p * (g + x * m) / (p * x + q - 1.0)
    return np.where(out > 0, out, np.nan)


# --------------------------------------------------------------------------- fitting
@dataclasses.dataclass(frozen=True)
class Fit:
    """A fitted model: ``params`` (named), total log-likelihood, customers, convergence."""

    model: str
    params: dict[str, float]
    loglik: float
    n: int
    converged: bool

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(self.params.values())


#: largest projected gradient (of the mean negative log-likelihood per customer, by the
#: log-parameters) at which a fit that L-BFGS-B stopped without its convergence test counts as
#: converged: a flat ridge (e.g. ``a, b`` in the thousands at a fixed ratio), where the
#: log-likelihood of all customers moves by less than 1e-5 x customers per unit of log-parameter
FLAT_GRADIENT = 1e-5


def _projected_gradient(x: np.ndarray, grad: np.ndarray, bounds) -> float:
    """Largest gradient component that could still move ``x`` inside ``bounds`` (a component
    pushing a parameter beyond the bound it sits on does not count)."""
    lo, hi = (np.array(b, dtype=float) for b in zip(*bounds, strict=True))
    g = np.asarray(grad, dtype=float)
    g = np.where((x <= lo + 1e-9) & (g > 0), 0.0, g)
    g = np.where((x >= hi - 1e-9) & (g < 0), 0.0, g)
    return float(np.max(np.abs(g))) if g.size else 0.0


def _minimise(nll, start: np.ndarray, nll_grad=None) -> optimize.OptimizeResult:
    """Minimise ``nll`` over log-parameters; ``nll_grad`` (value and gradient at once), when given,
    is what L-BFGS-B evaluates (else it estimates the gradient by finite differences).

    When L-BFGS-B stops without meeting its own tests (usually a line search on a flat ridge, or
    at a bound), the fit counts as converged if its projected gradient is at most
    :data:`FLAT_GRADIENT`; otherwise Nelder-Mead polishes it (a rough surface, tiny data). On the
    bench's 9,536 orders the polish had taken 1.4-2.1 s to move the log-likelihood by nothing.
    """
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(start)
    res = optimize.minimize(
        nll if nll_grad is None else nll_grad,
        start,
        jac=nll_grad is not None,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9},
    )
    if res.success:
        return res
    if nll_grad is not None and _projected_gradient(res.x, res.jac, bounds) <= FLAT_GRADIENT:
        res.success = True
        return res
    # a rough surface (tiny data): polish with a derivative-free method
    res2 = optimize.minimize(
        nll,
        res.x,
        method="Nelder-Mead",
        bounds=bounds,
        options={"maxiter": 4000, "xatol": 1e-9, "fatol": 1e-11},
    )
    if res2.fun <= res.fun:
        res2.success = bool(res2.success)
        return res2
    return res


def _compress(*cols: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of the columns and their counts (the likelihood only needs those)."""
    stacked = np.column_stack(cols)
    uniq, counts = np.unique(stacked, axis=0, return_counts=True)
    return [uniq[:, k] for k in range(uniq.shape[1])], counts.astype(float)


def fit_purchases(family: str, x, t_x, T, counts=None) -> Fit:
    """Maximum-likelihood BG/NBD (``bgnbd``) or MBG/NBD (``mbgnbd``) fit.

    Args:
        counts: customers per row when the rows are already distinct ``(x, t_x, T)`` triples
            (the likelihood only needs those); ``None``: one customer per row.

    Raises:
        ValueError: fewer than :data:`MIN_CUSTOMERS` customers, or inconsistent summaries.
    """
    x, t_x, T = _arrays(x, t_x, T)
    n = len(x) if counts is None else int(np.sum(counts))
    if n < MIN_CUSTOMERS:
        raise ValueError(f"{family}: {n} customers, at least {MIN_CUSTOMERS} needed")
    if (x < 0).any() or (t_x < 0).any() or (t_x > T).any() or ((x == 0) & (t_x != 0)).any():
        raise ValueError(f"{family}: summaries need x >= 0, 0 <= t_x <= T and t_x = 0 when x = 0")
    if counts is None:
        (ux, utx, uT), w = _compress(x, t_x, T)
    else:
        ux, utx, uT, w = x, t_x, T, np.asarray(counts, dtype=float)
    ll = LOGLIK[family]
    total = w.sum()

    def nll(theta):
        return -float(np.dot(w, ll(np.exp(theta), ux, utx, uT))) / total

    def nll_grad(theta):
        value, grad = _beta_geometric_loglik_grad(np.exp(theta), ux, utx, uT, SHIFT[family])
        return -float(np.dot(w, value)) / total, -(w @ grad) / total

    scale = max(float(np.average(uT, weights=w)) / (float(np.average(ux, weights=w)) + 1.0), 1e-3)
    res = _minimise(nll, np.log([1.0, scale, 1.0, 3.0]), nll_grad)
    params = dict(zip(("r", "alpha", "a", "b"), map(float, np.exp(res.x)), strict=True))
    return Fit(family, params, -float(res.fun) * total, n, bool(res.success))


def fit_gamma_gamma(x, m) -> Fit:
    """Maximum-likelihood Gamma-Gamma fit on customers with repeat purchases and a positive mean.

    Raises:
        ValueError: fewer than :data:`MIN_CUSTOMERS` usable customers.
    """
    x, m = _arrays(x, m)
    keep = (x > 0) & np.isfinite(m) & (m > 0)
    x, m = x[keep], m[keep]
    order = np.lexsort((m, x))  # the same fit whatever order the rows come in (float sums)
    x, m = x[order], m[order]
    if len(x) < MIN_CUSTOMERS:
        raise ValueError(
            f"gamma-gamma: {len(x)} customers with repeat purchases, at least {MIN_CUSTOMERS} "
            "needed"
        )
    n = len(x)

    def nll(theta):
        return -float(gamma_gamma_loglik(np.exp(theta), x, m).sum()) / n

    def nll_grad(theta):
        value, grad = gamma_gamma_loglik_grad(np.exp(theta), x, m)
        return -float(value.sum()) / n, -grad.sum(axis=0) / n

    mean, var = float(m.mean()), float(m.var()) or 1.0
    res = _minimise(nll, np.log([max(mean**2 / var, 0.1), 3.0, max(mean, 1e-3)]), nll_grad)
    params = dict(zip(("p", "q", "gamma"), map(float, np.exp(res.x)), strict=True))
    return Fit("gamma_gamma", params, -float(res.fun) * n, n, bool(res.success))


def standard_errors(fit: Fit, *data) -> dict[str, float]:
    """Asymptotic standard errors: inverse observed information (central differences).

    Args:
        fit: a :class:`Fit`.
        data: the arrays the fit used (``x, t_x, T`` or, for Gamma-Gamma, ``x, m``).
    """
    if fit.model == "gamma_gamma":
        x, m = _arrays(*data)
        keep = (x > 0) & (m > 0)

        def ll(v):
            return float(gamma_gamma_loglik(v, x[keep], m[keep]).sum())
    else:

        def ll(v):
            return float(LOGLIK[fit.model](v, *data).sum())

    theta = np.array(fit.values)
    k = len(theta)
    h = 1e-4 * np.maximum(np.abs(theta), 1e-3)
    hess = np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            ei, ej = np.eye(k)[i] * h[i], np.eye(k)[j] * h[j]
            hess[i, j] = hess[j, i] = (
                ll(theta + ei + ej)
                - ll(theta + ei - ej)
                - ll(theta - ei + ej)
                + ll(theta - ei - ej)
            ) / (4 * h[i] * h[j])
    cov = np.linalg.inv(-hess)
    return dict(zip(fit.params, np.sqrt(np.diag(cov)), strict=True))


# --------------------------------------------------------------------------- per cut-off outputs
#: output columns of :func:`score_summaries`
OUTPUTS = (
    "BTYD_P_ALIVE",
    "BTYD_EXP_PURCHASES",
    "BTYD_EXP_VALUE",
    "BTYD_EXP_SPEND",
    "BTYD_NEXT_DAYS",
)


def fit_cutoff(summaries: pd.DataFrame) -> dict[str, Fit | None]:
    """BG/NBD, MBG/NBD and Gamma-Gamma fitted on one cut-off's summaries (``X, TX, T, VALUE``).

    A model that cannot be fitted (too few customers) is ``None``.
    """
    return _fit_models(summaries, None, summaries)


def fit_cutoff_compressed(triples: pd.DataFrame, values: pd.DataFrame) -> dict[str, Fit | None]:
    """:func:`fit_cutoff` from what the warehouse sends: distinct ``X, TX, T`` with their count
    ``N``, and repeat buyers' ``X, VALUE`` (all of them, or a sample)."""
    return _fit_models(triples, triples["N"], values)


def _fit_models(histories: pd.DataFrame, counts, values: pd.DataFrame) -> dict[str, Fit | None]:
    out: dict[str, Fit | None] = {}
    for family in FAMILIES:
        try:
            out[family] = fit_purchases(
                family, histories["X"], histories["TX"], histories["T"], counts=counts
            )
        except ValueError as e:
            log.info("no %s fit: %s", family, e)
            out[family] = None
    try:
        out["gamma_gamma"] = fit_gamma_gamma(values["X"], values["VALUE"])
    except ValueError as e:
        log.info("no Gamma-Gamma fit: %s", e)
        out["gamma_gamma"] = None
    return out


#: the outputs of :func:`score_triples` (those that depend on ``x, t_x, T`` only)
TRIPLE_OUTPUTS = ("BTYD_P_ALIVE", "BTYD_EXP_PURCHASES", "BTYD_NEXT_DAYS")


def score_triples(
    triples: pd.DataFrame, fits: dict[str, Fit | None], horizon_days: float
) -> pd.DataFrame:
    """The :data:`TRIPLE_OUTPUTS` of the best purchase model per ``X, TX, T`` row (as
    :func:`score_summaries`); all null when no model could be fitted."""
    out = pd.DataFrame(index=triples.index, columns=list(TRIPLE_OUTPUTS), dtype=float)
    family = best_family(fits)
    if family is None or triples.empty:
        return out
    x, t_x, T = (triples[c].to_numpy(dtype=float) for c in ("X", "TX", "T"))
    theta = _fitted(fits, family).values
    out["BTYD_P_ALIVE"] = probability_alive(family, theta, x, t_x, T)
    out["BTYD_EXP_PURCHASES"] = expected_purchases(family, theta, float(horizon_days), x, t_x, T)
    out["BTYD_NEXT_DAYS"] = median_days_to_next(theta, x, T, out["BTYD_P_ALIVE"].to_numpy())
    # a value the closed forms cannot give in floating point is no output, never an infinity
    return out.where(np.isfinite(out))


def value_rule(fits: dict[str, Fit | None], pooled: float | None) -> tuple[str, object]:
    """How a cut-off's expected value per purchase is computed (:func:`score_summaries`' rule):
    ``("gamma_gamma", (p, q, gamma))`` when Gamma-Gamma is usable (``q > 1``), else
    ``("own_mean", pooled)``: the customer's own mean where positive, else ``pooled`` (the mean
    over repeat buyers). ``("none", None)`` without a purchase model (every output is then null)."""
    if best_family(fits) is None:
        return "none", None
    gg = fits.get("gamma_gamma")
    if gg is not None and gg.params["q"] > 1:
        return "gamma_gamma", gg.values
    return "own_mean", None if pooled is None or not np.isfinite(pooled) else float(pooled)


def best_family(fits: dict[str, Fit | None]) -> str | None:
    """The purchase model with the higher log-likelihood (same parameter count: same as by AIC)."""
    found = [fit for f in FAMILIES if (fit := fits.get(f)) is not None]
    return max(found, key=lambda f: f.loglik).model if found else None


def _fitted(fits: dict[str, Fit | None], family: str) -> Fit:
    fit = fits[family]
    if fit is None:
        raise ValueError(f"no {family} fit")
    return fit


def score_summaries(
    summaries: pd.DataFrame, fits: dict[str, Fit | None], horizon_days: float
) -> pd.DataFrame:
    """Per-customer outputs of the best-fitting purchase model and Gamma-Gamma.

    Returns:
        :data:`OUTPUTS` columns, aligned with ``summaries``: probability alive, expected purchase
        days in the horizon, expected value per purchase, expected spend (their product) and the
        median days to the next purchase (null when it is less likely than not,
        :func:`median_days_to_next`). All null when no model could be fitted.
    """
    out = pd.DataFrame(index=summaries.index, columns=list(OUTPUTS), dtype=float)
    family = best_family(fits)
    if family is None or summaries.empty:
        return out
    x = summaries["X"].to_numpy(dtype=float)
    out[list(TRIPLE_OUTPUTS)] = score_triples(summaries, fits, horizon_days)
    gg = fits.get("gamma_gamma")
    if gg is not None and gg.params["q"] > 1:
        value = expected_value(gg.values, x, summaries["VALUE"].to_numpy(dtype=float))
    else:  # no usable Gamma-Gamma: the customer's own mean, else the mean over repeat buyers
        own = summaries["VALUE"].to_numpy(dtype=float)
        pooled = np.nanmean(own[x > 0]) if (x > 0).any() else np.nan
        value = np.where(np.isfinite(own) & (own > 0), own, pooled)
    out["BTYD_EXP_VALUE"] = value
    out["BTYD_EXP_SPEND"] = out["BTYD_EXP_PURCHASES"] * out["BTYD_EXP_VALUE"]
    return out.where(np.isfinite(out))


def params_row(cutoff, fits: dict[str, Fit | None]) -> dict:
    """One row of the fitted parameters of a cut-off (for the BTYD_PARAMS table and the report)."""
    row = {"CUTOFF": cutoff, "MODEL": best_family(fits) or "none"}
    for name, fit in fits.items():
        prefix = name.upper()
        row[f"{prefix}_LOGLIK"] = fit.loglik if fit else None
        row[f"{prefix}_N"] = fit.n if fit else 0
        for k in ("r", "alpha", "a", "b") if name in FAMILIES else ("p", "q", "gamma"):
            row[f"{prefix}_{k.upper()}"] = fit.params[k] if fit else None
    return row


# --------------------------------------------------------------------------- the candidate
class BTYDRegressor(RegressorMixin, BaseEstimator):
    """The BTYD candidate: spend = expected purchases x value, quantities split by the past mix.

    It reads the BTYD columns that the feature step computed as of each row's cut-off (models
    fitted on all customers' histories before that cut-off, so nothing here is learned from
    labels except the two fall-backs below).

    * spend: ``spend_column`` (``BTYD_EXP_SPEND``); customers without a purchase history (no
      BTYD output) get the mean training spend of such customers;
    * quantity of product ``k``: predicted spend x the customer's past units of ``k`` per unit of
      past spend (``past_qty_columns[k] / past_spend_column``); without positive past spend,
      the training rows' overall units per unit of spend.

    Args:
        spend_column: input column with the expected spend.
        past_spend_column: input column with the spend before the cut-off.
        past_qty_columns: input columns with the past quantity of each product, in target order.
    """

    def __init__(
        self,
        spend_column: str = "BTYD_EXP_SPEND",
        past_spend_column: str = "SPEND",
        past_qty_columns: tuple[str, ...] = (),
    ):
        self.spend_column = spend_column
        self.past_spend_column = past_spend_column
        self.past_qty_columns = past_qty_columns

    def _check(self, X: pd.DataFrame) -> None:  # noqa: N803 - scikit-learn convention
        need = [self.spend_column, self.past_spend_column, *self.past_qty_columns]
        missing = [c for c in need if c not in X.columns]
        if missing:
            raise ValueError(f"BTYDRegressor: input lacks columns {missing}")

    def fit(self, X: pd.DataFrame, y):  # noqa: N803
        self._check(X)
        y = np.asarray(y, dtype=float).reshape(len(X), -1)
        no_history = X[self.spend_column].isna().to_numpy()
        self.fallback_ = (
            y[no_history].mean(axis=0) if no_history.any() else np.zeros(y.shape[1])
        ).astype(float)
        past_spend = X[self.past_spend_column].to_numpy(dtype=float)
        total = float(np.nansum(np.clip(past_spend, 0, None)))
        self.units_per_spend_ = np.array(
            [
                float(np.nansum(X[c].to_numpy(dtype=float))) / total if total > 0 else 0.0
                for c in self.past_qty_columns
            ],
            dtype=float,
        )
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        self._check(X)
        spend = X[self.spend_column].to_numpy(dtype=float)
        known = np.isfinite(spend)
        out = np.tile(self.fallback_, (len(X), 1))
        out[known, 0] = np.clip(spend[known], 0, None)
        past = X[self.past_spend_column].to_numpy(dtype=float)
        for k, col in enumerate(self.past_qty_columns):
            qty = X[col].to_numpy(dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                own = np.where(past > 0, qty / past, self.units_per_spend_[k])
            out[known, k + 1] = out[known, 0] * np.nan_to_num(
                own[known], nan=self.units_per_spend_[k]
            )
        return out


class BTYDBoosting(RegressorMixin, BaseEstimator):
    """The hybrid candidate: the BTYD forecast times a correction learnt by gradient boosting.

    ``prediction_j = b_j(x) * m(x)``: ``b_j`` is ``base``'s prediction of target ``j`` (a
    :class:`BTYDRegressor`: expected spend and its split into quantities by the customer's past
    mix) and ``m`` one correction factor, a Poisson-loss regressor fitted on ``spend / b_0`` with
    sample weights ``b_0`` — exactly a Poisson model of spend with ``log b_0`` as offset, so the
    correction starts from the BTYD forecast instead of from scratch and follows its decay over
    the cohort's life. Quantities get the same factor (they stay consistent with the spend). Labels
    are clipped at 0 (net spend can be negative in a window with returns); a base below 1% of the
    mean spend is raised to that, so customers the BTYD model writes off can still be corrected
    upwards. Without any spend on the training rows the correction is 1.

    Args:
        base: an unfitted :class:`BTYDRegressor`.
        booster: an unfitted regressor (or pipeline) with a Poisson loss; ``sample_weight`` is
            passed to its last step.
    """

    def __init__(self, base=None, booster=None):
        self.base = base
        self.booster = booster

    def _offset(self, X) -> np.ndarray:  # noqa: N803 - scikit-learn convention
        return np.maximum(np.asarray(self.base_.predict(X), dtype=float), self.floor_[None, :])

    def fit(self, X, y):  # noqa: N803
        y = np.clip(np.asarray(y, dtype=float).reshape(len(X), -1), 0, None)
        self.base_ = clone(self.base).fit(X, y)
        self.floor_ = np.maximum(0.01 * y.mean(axis=0), 1e-9)
        self.booster_ = None
        if y[:, 0].sum() > 0:
            b = self._offset(X)[:, 0]
            step = self.booster.steps[-1][0] + "__" if hasattr(self.booster, "steps") else ""
            self.booster_ = clone(self.booster).fit(X, y[:, 0] / b, **{f"{step}sample_weight": b})
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X) -> np.ndarray:  # noqa: N803
        offset = self._offset(X)
        if self.booster_ is None:
            return offset
        return offset * np.asarray(self.booster_.predict(X), dtype=float)[:, None]
