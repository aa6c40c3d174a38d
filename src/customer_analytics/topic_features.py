"""Topic shares as model features, kept only if they help (issue 20): the check 04 runs.

Separate from :mod:`topics` so that the EDA, which uses topics, does not depend on the models.
"""

from __future__ import annotations

import dataclasses
import logging

import pandas as pd

from customer_analytics import models as md
from customer_analytics.topics import SHARE_PREFIX

log = logging.getLogger(__name__)

#: the candidates the check fits, the first one the comparison runs on these inputs: the hybrid
#: (usually the one chosen, and a fit of ~3 s at 100k orders against the forest's ~9 s), else
#: the forest
CANDIDATES = ("hybrid_boosting", "random_forest")


@dataclasses.dataclass
class FeatureCheck:
    """Whether the topic-share features help: one candidate fitted with and without them, on the
    held-out window (the 04 report shows :meth:`table` and a sentence)."""

    keep: bool
    candidate: str
    metric: str
    with_topics: float
    without_topics: float
    columns: list[str]
    #: the candidate fitted on the rows the comparison gets (with the shares if kept, else
    #: without): ``models.compare(..., prefit=check.prefit)`` does not fit it again
    prefit: md.Prefit | None = None

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` without the topic-share columns unless they are kept."""
        return (
            frame
            if self.keep
            else frame.drop(columns=[c for c in self.columns if c in frame.columns])
        )

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {f"held-out spend {self.metric}": [self.with_topics, self.without_topics]},
            index=[f"{self.candidate} with topic shares", f"{self.candidate} without"],
        )


def check(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    seed: int,
    metric: str,
    candidate: str | None = None,
    score_outside: dict[str, float] | None = None,
    models: tuple[str, ...] | None = None,
) -> FeatureCheck:
    """Fit ``candidate`` with and without the ``TOPIC_SHARE_*`` columns on ``train`` and compare
    their spend ``metric`` on ``holdout``; the shares are kept only if they improve it.

    ``candidate`` ``None``: the first of :data:`CANDIDATES` that is among ``models`` (the
    comparison's candidates; ``None`` = any) and can run on these inputs (the hybrid needs the
    BTYD columns, :func:`models.unavailable`); the forest if none is.

    Each fit gets the inputs :func:`models.compare` would give it on that frame
    (:func:`models.feature_plan`, with ``score_outside`` as compare gets it), so the fit on the
    frame the comparison goes on with is compare's own held-out fit: pass ``check.prefit`` to
    ``models.compare`` and it is not fitted a third time.

    Call it in 04 right after loading the rows, then use ``check.apply(train)`` and
    ``check.apply(holdout)`` for the comparison (see the module doc).
    """
    cols = [c for c in train.columns if c.startswith(SHARE_PREFIX)]
    without = train.drop(columns=cols)
    plans = {"without": md.feature_plan(without, holdout, score_outside)}
    if candidate is None:
        candidate = choose_candidate(without, plans["without"], models)
    if not cols:
        return FeatureCheck(False, candidate, metric, float("nan"), float("nan"), [])
    plans["with"] = md.feature_plan(train, holdout, score_outside)
    values, fits = {}, {}
    for name, frame in (("with", train), ("without", without)):
        plan = plans[name]
        fits[name] = md.Prefit.fit(plan, candidate, seed, frame)
        values[name] = md.metrics(
            holdout[plan.targets].to_numpy(dtype=float),
            md.predict(fits[name].model, holdout, plan.features),
        )[metric]
    keep = md.is_better(values["with"], values["without"], metric)
    log.info(
        "topic shares %s: held-out %s %.4f with, %.4f without",
        "kept" if keep else "left out",
        metric,
        values["with"],
        values["without"],
    )
    return FeatureCheck(
        keep,
        candidate,
        metric,
        values["with"],
        values["without"],
        cols,
        fits["with" if keep else "without"],
    )


def choose_candidate(
    train: pd.DataFrame, plan: md.FeaturePlan, models: tuple[str, ...] | None = None
) -> str:
    """The first of :data:`CANDIDATES` among ``models`` (``None``: any) that can run on
    ``train`` with the inputs of ``plan`` (:func:`models.feature_plan` of ``train``); the last
    one if none can."""
    wanted = tuple(c for c in CANDIDATES if models is None or c in models)
    if not wanted:
        return CANDIDATES[-1]
    left_out = md.unavailable(wanted, train, plan.features, plan.targets)
    return next((c for c in wanted if c not in left_out), CANDIDATES[-1])
