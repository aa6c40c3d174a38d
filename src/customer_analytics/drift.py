"""Drift checks with warehouse aggregates: population stability index (PSI) per feature.

Definition (the usual one for scorecards). For one feature, the *reference* sample fixes the
bins: its deciles (``PERCENTILE_CONT``, duplicates dropped) cut the line into left-closed
intervals ``(-inf, e1), [e1, e2), …, [ek, +inf)``, plus one bin for missing values. With
``r_i`` and ``c_i`` the shares of the reference and current rows in bin ``i``, each clipped
below at :data:`EPS` so that an empty bin does not divide by zero,

    PSI = sum_i (c_i - r_i) * ln(c_i / r_i)

A categorical feature uses one bin per value. Reading (industry convention): below 0.1
stable, 0.1 to 0.25 moderate, 0.25 and above a large shift. PSI is noisy on small samples,
so a side with fewer than :data:`MIN_ROWS` rows is "not assessed".

Only aggregates leave the warehouse: one query for the reference deciles, one for the binned
counts of every numeric feature on both sides, one per categorical feature.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import snowflake.snowpark.functions as F
from snowflake.snowpark import DataFrame
from snowflake.snowpark.types import StringType

from customer_analytics import portable as pt
from customer_analytics import warehouse as wh

log = logging.getLogger(__name__)

EPS = 1e-4
BINS = 10
MIN_ROWS = 100
MODERATE, LARGE = 0.1, 0.25
_SIDE = "DRIFT_SIDE"


def level(psi: float) -> str:
    """``stable`` / ``moderate`` / ``large`` for a PSI value (``n/a`` when it is not a number)."""
    if psi is None or not math.isfinite(psi):
        return "n/a"
    return "large" if psi >= LARGE else "moderate" if psi >= MODERATE else "stable"


def psi_from_counts(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI of two vectors of bin counts (same bins, same order)."""
    r = np.asarray(reference, dtype=float)
    c = np.asarray(current, dtype=float)
    if r.sum() == 0 or c.sum() == 0:
        return float("nan")
    r = np.clip(r / r.sum(), EPS, None)
    c = np.clip(c / c.sum(), EPS, None)
    return float(np.sum((c - r) * np.log(c / r)))


def decile_edges(
    reference: DataFrame, numeric: list[str], bins: int = BINS
) -> dict[str, list[float]]:
    """Interior bin edges per numeric column: the reference's quantiles ``1/bins … (bins-1)/bins``,
    deduplicated."""
    qs = [i / bins for i in range(1, bins)]
    aggs = [
        F.percentile_cont(q).within_group(F.col(c)).alias(f"E{j}_{k}")
        for j, c in enumerate(numeric)
        for k, q in enumerate(qs)
    ]
    row = reference.agg(*aggs).collect()[0].as_dict() if aggs else {}
    return {
        c: sorted({float(row[f"E{j}_{k}"]) for k in range(len(qs)) if row[f"E{j}_{k}"] is not None})
        for j, c in enumerate(numeric)
    }


def _bin_conditions(col: str, edges: list[float]):
    x = F.col(col)
    if not edges:
        return [x.is_not_null()]
    conds = [x < F.lit(edges[0])]
    conds += [(x >= F.lit(lo)) & (x < F.lit(hi)) for lo, hi in zip(edges, edges[1:], strict=False)]
    conds.append(x >= F.lit(edges[-1]))
    return conds


def numeric_counts(
    reference: DataFrame, current: DataFrame, edges: dict[str, list[float]]
) -> dict[str, dict]:
    """Binned counts (missing bin first), mean and row count of each column on both sides, in one
    query."""
    cols = list(edges)
    both = reference.select(F.lit("reference").alias(_SIDE), *cols).union_all(
        current.select(F.lit("current").alias(_SIDE), *cols)
    )
    aggs = [F.count(F.lit(1)).alias("N")]
    for j, c in enumerate(cols):
        aggs.append(pt.mean(F.col(c)).alias(f"M{j}"))
        aggs.append(F.sum(F.iff(F.col(c).is_null(), F.lit(1), F.lit(0))).alias(f"B{j}_NULL"))
        aggs += [
            F.sum(F.iff(cond, F.lit(1), F.lit(0))).alias(f"B{j}_{k}")
            for k, cond in enumerate(_bin_conditions(c, edges[c]))
        ]
    rows = {r[_SIDE]: r.as_dict() for r in both.group_by(_SIDE).agg(*aggs).collect()}
    out: dict[str, dict] = {}
    for side in ("reference", "current"):
        r = rows.get(side, {})
        out[side] = {"rows": int(r.get("N") or 0), "mean": {}, "counts": {}}
        for j, c in enumerate(cols):
            n_bins = len(_bin_conditions(c, edges[c]))
            out[side]["mean"][c] = r.get(f"M{j}")
            out[side]["counts"][c] = np.array(
                [r.get(f"B{j}_NULL") or 0] + [r.get(f"B{j}_{k}") or 0 for k in range(n_bins)]
            )
    return out


def categorical_counts(reference: DataFrame, current: DataFrame, col: str) -> pd.DataFrame:
    """Rows per value of ``col`` (missing as ``(missing)``) on both sides: columns ``reference``,
    ``current``."""
    value = F.coalesce(F.col(col).cast("string"), F.lit("(missing)")).alias("VALUE")
    both = reference.select(F.lit("reference").alias(_SIDE), value).union_all(
        current.select(F.lit("current").alias(_SIDE), value)
    )
    df = wh.to_pandas(
        both.group_by(_SIDE, "VALUE").agg(F.count(F.lit(1)).alias("N")), "drift:categorical"
    )
    table = df.pivot_table(index="VALUE", columns=_SIDE, values="N", aggfunc="sum", fill_value=0)
    return table.reindex(columns=["reference", "current"], fill_value=0)


def feature_psi(
    reference: DataFrame, current: DataFrame, columns: list[str], bins: int = BINS
) -> pd.DataFrame:
    """PSI of every column of ``columns`` between ``reference`` and ``current`` (Snowpark frames).

    Returns one row per feature, largest PSI first: ``psi``, ``level``, ``reference mean``,
    ``current mean`` (numeric features) and the rows on each side. ``level`` is ``not assessed``
    when either side has fewer than :data:`MIN_ROWS` rows.
    """
    types = {f.name: f.datatype for f in current.schema.fields}
    categorical = [c for c in columns if isinstance(types.get(c), StringType)]
    numeric = [c for c in columns if c not in categorical]
    counts = numeric_counts(reference, current, decile_edges(reference, numeric, bins))
    n_ref, n_cur = counts["reference"]["rows"], counts["current"]["rows"]
    rows = []
    for c in numeric:
        rows.append(
            {
                "feature": c,
                "psi": psi_from_counts(
                    counts["reference"]["counts"][c], counts["current"]["counts"][c]
                ),
                "reference mean": counts["reference"]["mean"][c],
                "current mean": counts["current"]["mean"][c],
            }
        )
    for c in categorical:
        t = categorical_counts(reference, current, c)
        rows.append(
            {
                "feature": c,
                "psi": psi_from_counts(t["reference"].to_numpy(), t["current"].to_numpy()),
                "reference mean": None,
                "current mean": None,
            }
        )
    out = pd.DataFrame(rows, columns=["feature", "psi", "reference mean", "current mean"])
    out["level"] = [
        level(p) if min(n_ref, n_cur) >= MIN_ROWS else "not assessed" for p in out["psi"]
    ]
    out["reference rows"], out["current rows"] = n_ref, n_cur
    return out.sort_values("psi", ascending=False, na_position="last").set_index("feature")


@dataclass(frozen=True)
class Findings:
    """What the report's summary and the run index say about drift, as numbers (the narrative words
    them).

    Attributes:
        large: features with a large shift, with their PSI, largest first.
        moderate: number of features with a moderate shift.
        features: features compared.
        largest: the feature with the largest PSI and its value (``None`` when none was computed).
        reason: why feature drift was not assessed (``"no reference"``, ``"too few rows"``) or
            ``""``.
        rows: scored customers (for ``"too few rows"``).
        previous: the previous run date predictions were compared with (``""`` without one).
        prediction_psi: PSI of predicted spend against it (``None`` when not assessed).
        prediction_level: its level (``stable``/``moderate``/``large``/``not assessed``).
    """

    large: tuple[tuple[str, float], ...] = ()
    moderate: int = 0
    features: int = 0
    largest: tuple[str, float] | None = None
    reason: str = ""
    rows: int = 0
    previous: str = ""
    prediction_psi: float | None = None
    prediction_level: str = ""

    @property
    def assessed(self) -> bool:
        """Whether any drift check could be made."""
        return (not self.reason) or self.prediction_level not in ("", "not assessed", "n/a")

    def record(self) -> dict:
        """A JSON-friendly copy (for the headline record)."""
        return {
            "large": [list(x) for x in self.large],
            "moderate": self.moderate,
            "features": self.features,
            "largest": list(self.largest) if self.largest else None,
            "reason": self.reason,
            "rows": self.rows,
            "previous": self.previous,
            "prediction_psi": self.prediction_psi,
            "prediction_level": self.prediction_level,
        }


def findings(features: pd.DataFrame | None, predictions: pd.DataFrame | None) -> Findings:
    """The drift tables' findings: large shifts, counts, the largest, and the predictions' shift."""
    out: dict = {}
    if features is None or features.empty:
        out["reason"] = "no reference"
    elif (features["level"] == "not assessed").all():
        out.update(reason="too few rows", rows=int(features["current rows"].iloc[0]))
    else:
        large = features[features["level"] == "large"]["psi"]
        out.update(
            large=tuple((str(f), float(p)) for f, p in large.items()),
            moderate=int((features["level"] == "moderate").sum()),
            features=len(features),
        )
        if features["psi"].notna().any():
            top = features["psi"].idxmax()
            out["largest"] = (str(top), float(features.loc[top, "psi"]))
    if predictions is not None and not predictions.empty:
        p = predictions.iloc[0]
        out.update(
            previous=str(p["previous run"]),
            prediction_level=str(p["level"]),
            prediction_psi=float(p["psi"]) if p["level"] not in ("not assessed", "n/a") else None,
        )
    return Findings(**out)
