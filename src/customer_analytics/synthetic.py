"""Seeded demo data for a cookie shop: customers (CSV), orders and reviews (JSON lines), support
calls.

Usage::

    python -m customer_analytics.synthetic --customers 10000 --out data/raw [--seed 42]
    [--if-absent]

Generating process (everything drawn from one ``numpy`` generator seeded by ``--seed``):

* **Customers.** Sign-up dates between ``--start`` and ``--end``, more of them later (the shop
  grows). Each customer has an acquisition channel, a country and a birth year, plus hidden
  traits: a base purchase rate (Gamma, scaled by channel: referral and e-mail customers buy
  more often, social-media ones less), a spend multiplier (log-normal; older customers spend a
  little more), a sentiment (standard normal), a preference over the product types (Dirichlet,
  so most customers favour one or two) and a yearly trend in their rate (some customers grow,
  some fade).
* **Churn.** Each customer stops buying after a lifetime drawn from an exponential law whose
  mean is shorter for social/paid channels and for unhappy customers (low sentiment).
* **Orders.** While active, orders arrive as a Poisson process with the customer's rate times
  their trend and a December peak (drawn by thinning). Items per order and quantities grow with
  the spend multiplier; products follow the customer's preference (gift boxes mostly in
  December). Unit prices are list prices (+5% from 2026); some orders carry a coupon (more
  often for paid/social customers) and a nested shipping object.
* **Reviews.** About one order in eight gets a review a few days later; the rating (1–5,
  missing for about a third) follows the customer's sentiment. Its wording is one of the
  planted **themes** below (one or two of the theme's phrases): a happy reviewer writes about
  taste, a gift or a fast delivery, an unhappy one about a damaged parcel, a late delivery, stale
  cookies, customer service or the price, so text carries the signal even when the rating is
  missing, and the texts fall into known topics.
* **Themes** (:data:`THEMES`, the topics the EDA should recover): ``damaged_parcel`` (the
  planted complaint "the parcel arrived broken" and its paraphrases, several without a word in
  common with it: "the box was crushed and half the cookies were in pieces"), ``late_delivery``,
  ``stale``, ``customer_service``, ``price``, ``taste``, ``gift``, ``fast_delivery``. Which
  theme a text has is drawn from the writer's mood (:data:`THEME_BY_MOOD`).
* **Support calls** (``calls/*.txt``, written by the command line by default): about one order
  in fifty is followed by a call, 1–10 days later, mostly about the negative themes
  (:data:`CALL_THEMES`); the transcript is a greeting, one or two theme phrases and a closing,
  with ``customer_id`` and ``ts`` header lines. **Audio calls:** ``--audio-clips N`` (default:
  all) replaces N transcripts by the recordings shipped in
  ``customer_analytics/demo_audio`` (spoken from such transcripts with espeak-ng; see
  :func:`render_demo_audio`), each given to a call of the same theme and named
  ``<customer_id>_<date>_<n>.flac``; the clip's text is the call's true transcript
  (``demo_audio/manifest.json``), the reference the word error rate is measured against.

So future spend is predictable from past frequency, spend, recency (churn), trend, channel
and sentiment, while any single past window is a noisy estimate of it: models that pool
these signals beat naive baselines. No real person is described; names and e-mails are
made up (``example.com``).

**Closed-cohort worlds** (``--profile closed_cohort`` / ``closed_cohort_sparse``,
:func:`generate_closed_cohort`): the buy-till-you-die generative process with known parameters
(:data:`PROFILES`). Every customer makes a first purchase in the first ``join_weeks`` weeks (their
sign-up date is that day; nobody joins later); afterwards, while active, they buy as a Poisson
process with a rate ``λ ~ Gamma(r, α)`` (per day) and drop out after each repeat purchase with
probability ``p ~ Beta(a, b)`` (BG/NBD; Fader, Hardie & Lee 2005). Each purchase is worth
``Gamma(p, ν)`` with ``ν ~ Gamma(q, γ)`` per customer (Gamma-Gamma), split over one to three
product types of the customer's preference. The default profile uses the published CDNOW
estimates (r = 0.243, α = 4.414 weeks, a = 0.793, b = 2.426; p = 6.25, q = 3.74, γ = 15.44), so
the cohort joins and then decays as a real CD retailer's did; the sparse one buys less and
leaves sooner. No reviews. :func:`simulate_purchases` is the process alone (arrays, for tests).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from customer_analytics import audio

log = logging.getLogger(__name__)

PRODUCTS = {  # product type -> list price (EUR) and base popularity
    "chocolate_chip": (2.50, 3.0),
    "double_chocolate": (3.00, 2.0),
    "oatmeal_raisin": (2.20, 1.5),
    "peanut_butter": (2.60, 1.2),
    "snickerdoodle": (2.40, 1.0),
    "gift_box": (24.00, 0.4),
}
CHANNELS = {  # channel -> (share, rate multiplier, churn hazard multiplier, coupon affinity)
    "organic": (0.35, 1.0, 1.0, 0.0),
    "paid_search": (0.20, 0.8, 1.3, 0.15),
    "social": (0.15, 0.6, 1.6, 0.15),
    "referral": (0.15, 1.4, 0.7, 0.0),
    "email": (0.15, 1.2, 0.8, 0.05),
}
COUNTRIES = {"DE": 0.3, "FR": 0.2, "GB": 0.2, "NL": 0.1, "US": 0.15, "CA": 0.05}
COUPONS = ("WELCOME10", "COOKIE15", "HOLIDAY20")
FIRST = (
    "Anna",
    "Ben",
    "Chloé",
    "David",
    "Emma",
    "Felix",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Klara",
    "Luca",
    "Mia",
    "Noah",
    "Olivia",
    "Paul",
    "Rosa",
    "Sven",
    "Tara",
    "Ugo",
    "Zoë",
    "Jürgen",
    "Søren",
)
LAST = (
    "Müller",
    "Martin",
    "Smith",
    "de Vries",
    "Rossi",
    "Schmidt",
    "Dubois",
    "Jones",
    "Bakker",
    "Fischer",
    "Laurent",
    "Brown",
    "Weber",
    "Moreau",
    "Taylor",
    "Janssen",
    "Wagner",
    "Nowak",
)
#: The planted themes of review and call texts: theme -> phrases ({p} = a product). The first
#: phrase of ``damaged_parcel`` is the planted complaint; the others are its paraphrases.
THEMES = {
    "damaged_parcel": (
        "the parcel arrived broken",
        "the box was crushed and half the cookies were in pieces",
        "my package came damaged",
        "the cookies were smashed to crumbs in the post",
        "the tin was dented and everything inside was broken",
        "the parcel was torn open on arrival",
    ),
    "late_delivery": (
        "the delivery was two weeks late",
        "the courier was late again",
        "I am still waiting for my order",
        "the delivery was very slow",
        "it took far too long to arrive",
    ),
    "stale": (
        "the biscuits were dry and stale",
        "they tasted old and stale",
        "not fresh at all",
        "hard as a rock",
        "they went stale after one day",
    ),
    "customer_service": (
        "customer service never answered",
        "nobody replied to my emails",
        "the support team was unhelpful",
        "I asked for a refund and heard nothing",
        "I was on hold for an hour",
    ),
    "price": (
        "too expensive for what you get",
        "ok for the price",
        "prices went up again",
        "the postage is too expensive",
        "a bit pricey but fine",
    ),
    "taste": (
        "absolutely delicious {p}",
        "so tasty",
        "perfect with coffee",
        "the best cookies I have ever eaten",
        "wonderful flavour",
    ),
    "gift": (
        "great gift, everyone loved it",
        "bought it as a birthday present",
        "the gift box looked beautiful",
        "a perfect christmas present",
        "my friends loved this gift",
    ),
    "fast_delivery": (
        "fast delivery",
        "arrived quickly and well packed",
        "came the next day",
        "quick dispatch and careful packaging",
        "delivered on time",
    ),
}
#: Which theme a review has, by the writer's mood (above 0.4 positive, below -0.4 negative).
THEME_BY_MOOD = {
    "positive": {"taste": 0.45, "gift": 0.25, "fast_delivery": 0.3},
    "neutral": {"price": 0.4, "late_delivery": 0.2, "taste": 0.2, "fast_delivery": 0.2},
    "negative": {
        "damaged_parcel": 0.3,
        "late_delivery": 0.2,
        "stale": 0.2,
        "customer_service": 0.15,
        "price": 0.15,
    },
}
#: Which theme a support call has (calls are mostly complaints).
CALL_THEMES = {
    "damaged_parcel": 0.3,
    "late_delivery": 0.25,
    "customer_service": 0.2,
    "stale": 0.1,
    "gift": 0.1,
    "price": 0.05,
}
CALL_SHARE = 0.02  # orders followed by a support call
GREETINGS = (
    "Hello, I am calling about my last order.",
    "Hi, this is about the order I placed last week.",
    "Good morning, I have a question about my order.",
)
CLOSINGS = ("Can you help me?", "Thank you.", "Please call me back.")
#: The shipped demo recordings (see :func:`render_demo_audio`).
DEMO_AUDIO = audio.DEMO_AUDIO
demo_clips = audio.demo_clips


def generate(
    n_customers: int, seed: int = 42, start: str = "2025-01-01", end: str = "2026-11-01"
) -> dict:
    """Draw the demo data; return numpy/python columns for customers, orders, lines, reviews."""
    rng = np.random.default_rng(seed)
    t0, t1 = np.datetime64(start, "s"), np.datetime64(end, "s")
    span = (t1 - t0).astype(np.int64) / 86400.0
    n = n_customers
    prod_names = list(PRODUCTS)
    price = np.array([PRODUCTS[p][0] for p in prod_names])
    pop = np.array([PRODUCTS[p][1] for p in prod_names])
    ch_names = list(CHANNELS)
    ch_arr = np.array([CHANNELS[c] for c in ch_names])

    # customers and hidden traits
    signup_day = span * rng.random(n) ** 0.8
    channel = rng.choice(len(ch_names), n, p=ch_arr[:, 0])
    country = rng.choice(list(COUNTRIES), n, p=list(COUNTRIES.values()))
    birth_year = rng.integers(1950, 2006, n)
    rate = rng.gamma(1.5, 0.45, n) * ch_arr[channel, 1] / 30.0  # orders per day
    spend = rng.lognormal(0.0, 0.35, n) * (1 + (1990 - birth_year).clip(0) / 120)
    sentiment = rng.standard_normal(n)
    pref = rng.gamma(np.tile(0.6 * pop, (n, 1)), 1.0)
    pref /= pref.sum(axis=1, keepdims=True)
    trend = rng.normal(0.0, 0.6, n).clip(-1.2, 1.2)  # log-rate change per year
    lifetime = rng.exponential(420.0 / (ch_arr[channel, 2] * np.exp(-0.45 * sentiment)))
    end_day = np.minimum(signup_day + lifetime, span)
    active = np.maximum(end_day - signup_day, 0.0)

    # orders: thinned Poisson process per customer
    lam_max = rate * np.exp(np.maximum(trend, 0) * active / 365) * 1.5
    n_cand = rng.poisson(lam_max * active)
    cust = np.repeat(np.arange(n), n_cand)
    day = signup_day[cust] + rng.random(cust.size) * active[cust]
    doy = (
        (t0 + (day * 86400).astype("timedelta64[s]")).astype("datetime64[D]")
        - (t0 + (day * 86400).astype("timedelta64[s]")).astype("datetime64[Y]")
    ).astype(int)
    season = 1 + 0.5 * np.exp(-(((doy - 345) / 18.0) ** 2))
    accept = (
        rng.random(cust.size) * lam_max[cust]
        < rate[cust] * np.exp(trend[cust] * (day - signup_day[cust]) / 365) * season
    )
    cust, day, doy = cust[accept], day[accept], doy[accept]
    order_idx = np.argsort(day, kind="stable")
    cust, day, doy = cust[order_idx], day[order_idx], doy[order_idx]
    n_orders = cust.size
    ts = t0 + (day * 86400).astype("timedelta64[s]")
    coupon_p = 0.08 + ch_arr[channel[cust], 3] + 0.1 * (doy > 330)
    has_coupon = rng.random(n_orders) < coupon_p
    coupon = np.where(has_coupon, rng.choice(COUPONS, n_orders), "")

    # order lines
    n_items = np.minimum(1 + rng.poisson(0.9 * np.sqrt(spend[cust])), len(prod_names))
    line_order = np.repeat(np.arange(n_orders), n_items)
    lc = cust[line_order]
    p = pref[lc].copy()
    p[:, prod_names.index("gift_box")] *= np.where(doy[line_order] > 320, 8.0, 1.0)
    p /= p.sum(axis=1, keepdims=True)
    product = (
        (p.cumsum(axis=1) < rng.random(lc.size)[:, None]).sum(axis=1).clip(max=len(prod_names) - 1)
    )
    quantity = 1 + rng.poisson(1.5 * spend[lc])
    quantity[product == prod_names.index("gift_box")] = 1
    year2026 = ts[line_order] >= np.datetime64("2026-01-01")
    unit_price = np.round(price[product] * np.where(year2026, 1.05, 1.0), 2)
    amount = quantity * unit_price
    order_total = np.bincount(line_order, weights=amount, minlength=n_orders)
    express = rng.random(n_orders) < 0.15 + 0.3 * (spend[cust] > 1.3)
    ship_cost = np.where(order_total >= 50, 0.0, np.where(express, 9.95, 4.95))

    # reviews
    rev = rng.random(n_orders) < 0.125
    r_order = np.flatnonzero(rev)
    r_day = day[r_order] + rng.uniform(1, 10, r_order.size)
    keep = r_day < span
    r_order, r_day = r_order[keep], r_day[keep]
    r_cust = cust[r_order]
    mood = sentiment[r_cust] + rng.normal(0, 0.6, r_order.size)
    rating = np.clip(np.round(3.6 + 1.1 * mood), 1, 5).astype(int)
    rated = rng.random(r_order.size) > 0.35
    first_line = np.searchsorted(line_order, r_order)
    r_prod = np.array(prod_names)[product[first_line]]
    order_product = np.array(prod_names)[product[np.searchsorted(line_order, np.arange(n_orders))]]
    r_theme = _draw_themes(
        rng, np.where(mood > 0.4, "positive", np.where(mood < -0.4, "negative", "neutral"))
    )
    r_text = [
        _phrases(rng, t, pr, int(rng.integers(1, 4))) for t, pr in zip(r_theme, r_prod, strict=True)
    ]
    calls = _calls(rng, cust, day, span, t0, order_product)
    return dict(
        customers=dict(
            customer_id=np.char.add("C", np.char.zfill(np.arange(1, n + 1).astype(str), 6)),
            first=rng.choice(FIRST, n),
            last=rng.choice(LAST, n),
            signup=(t0 + (signup_day * 86400).astype("timedelta64[s]"))
            .astype("datetime64[D]")
            .astype(str),
            country=country,
            channel=np.array(ch_names)[channel],
            birth_year=birth_year,
        ),
        orders=dict(
            cust=cust,
            ts=ts.astype(str),
            coupon=coupon,
            express=express,
            ship_cost=ship_cost,
            country=country[cust],
            n_items=n_items,
        ),
        lines=dict(product=np.array(prod_names)[product], quantity=quantity, unit_price=unit_price),
        reviews=dict(
            cust=r_cust,
            ts=(t0 + (r_day * 86400).astype("timedelta64[s]")).astype(str),
            rating=np.where(rated, rating, 0),
            mood=mood,
            product=r_prod,
            theme=r_theme,
            text=r_text,
        ),
        calls=calls,
        rng=rng,
    )


#: closed-cohort worlds: BG/NBD parameters (rate per day), Gamma-Gamma parameters, joining window
PROFILES = {
    "closed_cohort": {
        "r": 0.243,
        "alpha": 4.414 * 7,
        "a": 0.793,
        "b": 2.426,
        "p": 6.25,
        "q": 3.74,
        "gamma": 15.44,
        "join_weeks": 12,
    },
    "closed_cohort_sparse": {
        "r": 0.2,
        "alpha": 80.0,
        "a": 1.2,
        "b": 2.0,
        "p": 4.0,
        "q": 3.0,
        "gamma": 20.0,
        "join_weeks": 12,
    },
}


def simulate_purchases(
    rng: np.random.Generator,
    n: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T: np.ndarray | float,
    dropout_at_start: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Repeat purchases of ``n`` customers under BG/NBD (MBG/NBD with ``dropout_at_start``).

    Time 0 is each customer's first purchase; ``T`` their age at the end of observation (same unit
    as ``1 / alpha``). Purchase rate ``λ ~ Gamma(r, alpha)``, drop-out probability
    ``p ~ Beta(a, b)`` after each repeat purchase (and after the first one with
    ``dropout_at_start``); simulated event by event.

    Returns:
        ``(customer, time)`` of every repeat purchase in ``(0, T]``, in the order drawn.
    """
    T = np.broadcast_to(np.asarray(T, dtype=float), (n,))
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    active = rng.random(n) >= p if dropout_at_start else np.ones(n, dtype=bool)
    t = np.zeros(n)
    cust, times = [], []
    while active.any():
        idx = np.flatnonzero(active)
        t[idx] += rng.exponential(1.0, idx.size) / lam[idx]
        inside = t[idx] <= T[idx]
        active[idx[~inside]] = False
        buyers = idx[inside]
        cust.append(buyers)
        times.append(t[buyers].copy())
        active[buyers[rng.random(buyers.size) < p[buyers]]] = False
    return (np.concatenate(cust) if cust else np.zeros(0, int)), (
        np.concatenate(times) if times else np.zeros(0)
    )


def simulate_values(
    rng: np.random.Generator, customer: np.ndarray, n: int, p: float, q: float, gamma: float
) -> np.ndarray:
    """Value of each purchase of ``customer`` (indices < ``n``) under Gamma-Gamma.

    Each purchase is ``Gamma(p, ν)``, with ``ν ~ Gamma(q, gamma)`` per customer.
    """
    nu = rng.gamma(q, 1.0 / gamma, n)
    return rng.gamma(p, 1.0, customer.size) / nu[customer]


def generate_closed_cohort(
    n_customers: int,
    seed: int = 42,
    start: str = "2025-01-01",
    end: str = "2026-11-01",
    profile: str = "closed_cohort",
) -> dict:
    """Draw a closed-cohort world (see the module doc); same shape as :func:`generate`'s output."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {list(PROFILES)}")
    k = PROFILES[profile]
    rng = np.random.default_rng(seed)
    t0, t1 = np.datetime64(start, "s"), np.datetime64(end, "s")
    span = (t1 - t0).astype(np.int64) / 86400.0
    n = n_customers
    join = rng.random(n) * min(k["join_weeks"] * 7.0, span * 0.5)  # day of the first purchase
    join = np.floor(join) + rng.uniform(0.3, 0.9, n)  # shop hours
    rep_c, rep_t = simulate_purchases(rng, n, k["r"], k["alpha"], k["a"], k["b"], span - join)
    cust = np.concatenate([np.arange(n), rep_c])
    day = np.concatenate([join, join[rep_c] + rep_t])
    value = simulate_values(rng, cust, n, k["p"], k["q"], k["gamma"])
    order = np.argsort(day, kind="stable")
    cust, day, value = cust[order], day[order], value[order]
    n_orders = cust.size
    ts = t0 + (day * 86400).astype("timedelta64[s]")

    prod_names = list(PRODUCTS)
    pop = np.array([PRODUCTS[p][1] for p in prod_names])
    pref = rng.gamma(np.tile(0.6 * pop, (n, 1)), 1.0)
    pref /= pref.sum(axis=1, keepdims=True)
    n_items = 1 + rng.binomial(2, 0.3, n_orders)
    line_order = np.repeat(np.arange(n_orders), n_items)
    lc = cust[line_order]
    product = (
        (pref[lc].cumsum(axis=1) < rng.random(lc.size)[:, None])
        .sum(axis=1)
        .clip(max=len(prod_names) - 1)
    )
    share = rng.gamma(2.0, 1.0, line_order.size)
    share /= np.bincount(line_order, weights=share)[line_order]
    quantity = 1 + rng.poisson(1.0, line_order.size)
    unit_price = np.maximum(np.round(value[line_order] * share / quantity, 2), 0.01)
    country = rng.choice(list(COUNTRIES), n, p=list(COUNTRIES.values()))
    ch_names = list(CHANNELS)
    channel = rng.choice(len(ch_names), n, p=[CHANNELS[c][0] for c in ch_names])
    empty = np.zeros(0)
    return dict(
        customers=dict(
            customer_id=np.char.add("C", np.char.zfill(np.arange(1, n + 1).astype(str), 6)),
            first=rng.choice(FIRST, n),
            last=rng.choice(LAST, n),
            signup=(t0 + (join * 86400).astype("timedelta64[s]"))
            .astype("datetime64[D]")
            .astype(str),
            country=country,
            channel=np.array(ch_names)[channel],
            birth_year=rng.integers(1950, 2006, n),
        ),
        orders=dict(
            cust=cust,
            ts=ts.astype(str),
            coupon=np.full(n_orders, ""),
            express=np.zeros(n_orders, bool),
            ship_cost=np.full(n_orders, 4.95),
            country=country[cust],
            n_items=n_items,
        ),
        lines=dict(product=np.array(prod_names)[product], quantity=quantity, unit_price=unit_price),
        reviews=dict(
            cust=empty.astype(int),
            ts=empty.astype(str),
            rating=empty.astype(int),
            text=[],
        ),
        calls=dict(
            cust=empty.astype(int),
            ts=empty.astype(str),
            theme=empty.astype(str),
            text=[],
            clip_call=np.zeros(0, dtype=int),
        ),
    )


def _draw_themes(rng: np.random.Generator, moods: np.ndarray) -> np.ndarray:
    """One theme per text, drawn from :data:`THEME_BY_MOOD` for its mood ('positive', ...)."""
    out = np.empty(moods.size, dtype=object)
    u = rng.random(moods.size)
    for mood, probs in THEME_BY_MOOD.items():
        at = moods == mood
        cum = np.cumsum(list(probs.values()))
        out[at] = np.array(list(probs))[
            np.searchsorted(cum / cum[-1], u[at], side="right").clip(max=len(cum) - 1)
        ]
    return out.astype(str)


def _phrases(rng: np.random.Generator, theme: str, product: str, k: int) -> str:
    """``k`` distinct phrases of ``theme``, each as a sentence."""
    pool = THEMES[theme]
    picks = rng.choice(len(pool), size=min(k, len(pool)), replace=False)
    phrases = (pool[i].format(p=product.replace("_", " ")) for i in picks)
    return " ".join(f"{x[0].upper()}{x[1:]}." for x in phrases)


def call_text(rng: np.random.Generator, theme: str, product: str) -> str:
    """A support-call transcript: greeting, one or two phrases of ``theme``, closing."""
    return " ".join(
        (
            GREETINGS[rng.integers(len(GREETINGS))],
            _phrases(rng, theme, product, int(rng.integers(1, 3))),
            CLOSINGS[rng.integers(len(CLOSINGS))],
        )
    )


def _calls(
    rng: np.random.Generator,
    cust: np.ndarray,
    day: np.ndarray,
    span: float,
    t0: np.datetime64,
    product: np.ndarray,
) -> dict:
    """Support calls after :data:`CALL_SHARE` of the orders (see the module doc), and which call
    each
    shipped demo recording is given to (``clip_call``: one call of the clip's theme each)."""
    at = np.flatnonzero(rng.random(cust.size) < CALL_SHARE)
    c_day = day[at] + rng.uniform(1, 10, at.size)
    at, c_day = at[c_day < span], c_day[c_day < span]
    names = list(CALL_THEMES)
    cum = np.cumsum(list(CALL_THEMES.values()))
    theme = np.array(names)[
        np.searchsorted(cum / cum[-1], rng.random(at.size), side="right").clip(max=len(names) - 1)
    ]
    text = [call_text(rng, t, pr) for t, pr in zip(theme, product[at], strict=True)]
    clip_call: list[int] = []
    for clip in demo_clips():
        free = np.flatnonzero((theme == clip["theme"]) & ~np.isin(np.arange(at.size), clip_call))
        clip_call.append(int(rng.choice(free)) if free.size else -1)
    return dict(
        cust=cust[at],
        ts=(t0 + (c_day * 86400).astype("timedelta64[s]")).astype(str),
        theme=theme,
        text=text,
        clip_call=np.array(clip_call, dtype=int),
    )


def write(data: dict, out: Path, calls: bool = False, audio_clips: int = 0) -> dict[str, int]:
    """Write ``customers.csv``, ``orders.jsonl`` and ``reviews.jsonl`` into ``out``; return row
    counts.

    Args:
        calls: also write the support calls into ``out/calls`` (one ``.txt`` transcript each).
        audio_clips: with ``calls``, give this many of the shipped demo recordings to calls of their
            theme (written as ``.flac`` instead of the call's transcript; at most the number
            shipped).
    """
    out.mkdir(parents=True, exist_ok=True)
    c, o, li, r = data["customers"], data["orders"], data["lines"], data["reviews"]
    tmp = {
        name: out / f".{name}.tmp" for name in ("customers.csv", "orders.jsonl", "reviews.jsonl")
    }
    with tmp["customers.csv"].open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "customer_id",
                "name",
                "email",
                "signup_date",
                "country",
                "acquisition_channel",
                "birth_year",
            ]
        )
        for i, (cid, fn, ln) in enumerate(
            zip(c["customer_id"], c["first"], c["last"], strict=True)
        ):
            email = f"{fn.lower()}.{ln.lower().replace(' ', '')}{i + 1}@example.com"
            w.writerow(
                [
                    cid,
                    f"{fn} {ln}",
                    email,
                    c["signup"][i],
                    c["country"][i],
                    c["channel"][i],
                    c["birth_year"][i],
                ]
            )
    cust_ids = c["customer_id"]
    bounds = np.concatenate([[0], np.cumsum(o["n_items"])])
    prods, qtys, prices = li["product"].tolist(), li["quantity"].tolist(), li["unit_price"].tolist()
    with tmp["orders.jsonl"].open("w", encoding="utf-8") as f:
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        for k in range(o["cust"].size):
            a, b = bounds[k], bounds[k + 1]
            rec = {
                "order_id": f"O{k + 1:08d}",
                "customer_id": cust_ids[o["cust"][k]],
                "ts": o["ts"][k],
                "items": [
                    {"product": prods[j], "quantity": qtys[j], "unit_price": prices[j]}
                    for j in range(a, b)
                ],
                "shipping": {
                    "method": "express" if o["express"][k] else "standard",
                    "country": o["country"][k],
                    "cost": float(o["ship_cost"][k]),
                },
            }
            if o["coupon"][k]:
                rec["coupon"] = o["coupon"][k]
            f.write(dumps(rec) + "\n")
    if not r["cust"].size:  # a world without reviews (closed cohorts): no reviews file at all
        del tmp["reviews.jsonl"]
        (out / "reviews.jsonl").unlink(missing_ok=True)
    with (tmp.get("reviews.jsonl") or Path(os.devnull)).open("w", encoding="utf-8") as f:
        for k in range(r["cust"].size):
            rec = {"customer_id": cust_ids[r["cust"][k]], "ts": r["ts"][k], "text": r["text"][k]}
            if r["rating"][k]:
                rec["rating"] = int(r["rating"][k])
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    for name, path in tmp.items():
        path.replace(out / name)
    counts = {
        "customers": len(cust_ids),
        "orders": int(o["cust"].size),
        "order_lines": int(li["product"].size),
        "reviews": int(r["cust"].size),
    }
    # calls left from an earlier world would be read as this one's; a world without calls has none
    shutil.rmtree(out / "calls", ignore_errors=True)
    if calls and data["calls"]["cust"].size:
        counts |= write_calls(data["calls"], cust_ids, out / "calls", audio_clips)
    return counts


def call_file_stem(customer_id: str, ts: str, k: int) -> str:
    """``<customer_id>_<YYYY-MM-DD>_<n>``: the contract's file-name layout, unique per call."""
    return f"{customer_id}_{ts[:10]}_{k + 1:05d}"


def write_calls(
    calls: dict, cust_ids: np.ndarray, folder: Path, audio_clips: int = 0
) -> dict[str, int]:
    """Write one transcript per call into ``folder`` (header lines ``customer_id`` and ``ts``), and
    the
    first ``audio_clips`` shipped recordings in place of the transcripts of their calls."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = demo_clips()[: max(audio_clips, 0)]
    audio = {int(k): c for k, c in zip(calls["clip_call"], clips, strict=False) if k >= 0}
    for k in range(calls["cust"].size):
        cid, ts = cust_ids[calls["cust"][k]], calls["ts"][k]
        stem = call_file_stem(cid, ts, k)
        if k in audio:
            shutil.copyfile(
                DEMO_AUDIO / audio[k]["file"], folder / f"{stem}{Path(audio[k]['file']).suffix}"
            )
            continue
        text = f"customer_id: {cid}\nts: {ts.replace('T', ' ')}\n\n{calls['text'][k]}\n"
        (folder / f"{stem}.txt").write_text(text, encoding="utf-8")
    return {"calls": int(calls["cust"].size), "audio_calls": len(audio)}


#: What the shipped demo recordings say: one call theme each, spoken by these espeak-ng voices (the
# two
#: PocketSphinx understands best of the US-English ones tried) at 130 words per minute.
DEMO_CLIP_THEMES = (
    "damaged_parcel",
    "late_delivery",
    "customer_service",
    "damaged_parcel",
    "stale",
    "gift",
    "late_delivery",
    "price",
)
DEMO_VOICES = ("en-us+f2", "en-us+f5")


def render_demo_audio(out: Path = DEMO_AUDIO, seed: int = 2026) -> list[dict]:
    """Speak demo call transcripts with espeak-ng into 16 kHz mono FLAC files + ``manifest.json``.

    A maintainer's tool (the recordings are committed; running the demo never needs espeak-ng):
    needs the ``espeak-ng`` program (Debian package ``espeak-ng``). Returns the manifest.
    """
    import subprocess
    import tempfile

    import soundfile as sf

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for k, theme in enumerate(DEMO_CLIP_THEMES):
        text = call_text(rng, theme, str(rng.choice(list(PRODUCTS)[:5])))
        voice = DEMO_VOICES[k % len(DEMO_VOICES)]
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "clip.wav"
            subprocess.run(
                ["espeak-ng", "-v", voice, "-s", "130", "-w", str(wav), text],
                check=True,
                capture_output=True,
            )
            x, rate = sf.read(str(wav), dtype="float64")
        y = audio.to_int16(audio.resample(x, rate))
        name = f"call_{k + 1:02d}.flac"
        sf.write(str(out / name), y, audio.RATE, format="FLAC", subtype="PCM_16")
        manifest.append(
            {
                "file": name,
                "theme": theme,
                "text": text,
                "voice": voice,
                "seconds": round(y.size / audio.RATE, 2),
            }
        )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    ap = argparse.ArgumentParser(description="Write seeded demo data for the cookie shop.")
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--out", type=Path, default=Path("data/raw"))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--start", default="2025-01-01")
    ap.add_argument("--end", default="2026-11-01", help="first day not covered (exclusive)")
    ap.add_argument(
        "--if-absent", action="store_true", help="do nothing when orders.jsonl already exists"
    )
    ap.add_argument(
        "--profile",
        default="default",
        choices=["default", *PROFILES],
        help="default: the growing cookie shop; closed_cohort(_sparse): a closed cohort simulated "
        "from the BTYD process (no reviews, no calls)",
    )
    ap.add_argument("--no-calls", action="store_true", help="write no support calls (calls/)")
    ap.add_argument(
        "--audio-clips",
        type=int,
        default=len(demo_clips()),
        help="shipped demo recordings given to calls (default: all of them)",
    )
    ap.add_argument(
        "--render-demo-audio",
        action="store_true",
        help="maintainers: re-record the shipped demo calls with espeak-ng, then exit",
    )
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if a.render_demo_audio:
        clips = render_demo_audio()
        log.info(
            "wrote %d recordings (%.0f s) to %s",
            len(clips),
            sum(c["seconds"] for c in clips),
            DEMO_AUDIO,
        )
        return 0
    if a.if_absent and (a.out / "orders.jsonl").exists():
        log.info("demo data already in %s (delete it to regenerate)", a.out)
        return 0
    if a.customers < 1:
        ap.error("--customers must be at least 1")
    dt.date.fromisoformat(a.start), dt.date.fromisoformat(a.end)
    started = time.perf_counter()
    data = (
        generate(a.customers, a.seed, a.start, a.end)
        if a.profile == "default"
        else generate_closed_cohort(a.customers, a.seed, a.start, a.end, a.profile)
    )
    counts = write(data, a.out, calls=not a.no_calls, audio_clips=a.audio_clips)
    log.info(
        "wrote %s to %s in %.1f s",
        ", ".join(f"{v:,} {k}" for k, v in counts.items()),
        a.out,
        time.perf_counter() - started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
