"""Matplotlib figures for the reports. Every function takes aggregates and returns a Figure."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# Figures are built with the object API (no pyplot state): a cell that returns one shows it once.
STYLE: dict[str, Any] = {
    "figure.dpi": 100,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


class ReportFigure(Figure):
    """A Figure that Jupyter shows as one embedded PNG, with or without pyplot's inline backend."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()


def _figure(width: float, height: float) -> tuple[ReportFigure, Axes]:
    with rc_context(STYLE):  # type: ignore[arg-type]  # the stubs list keys as literals
        fig = ReportFigure(figsize=(width, height))
        return fig, fig.subplots()


def bars(
    values: pd.Series, title: str, xlabel: str = "", ylabel: str = "", horizontal: bool = False
):
    """A bar chart of a small Series (index = categories)."""
    fig, ax = _figure(7, 3.5)
    labels = [str(i) for i in values.index]
    (ax.barh if horizontal else ax.bar)(labels, values.to_numpy(), color="#8c5a3c")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if not horizontal and len(labels) > 6:
        ax.tick_params(axis="x", rotation=45)
    fig.set_layout_engine("tight")
    return fig


def monthly(
    df: pd.DataFrame,
    title: str = "Orders and revenue per month",
    revenue_label: str = "revenue",
    guests: pd.Series | None = None,
):
    """Orders (bars) and revenue (line) per month; months the data covers only in part (column
    ``partial``) drawn hatched and pale, with the revenue point hollow, so a partial last month does
    not read as a collapse; guest-order revenue (``guests``, by month) as a second line."""
    fig, ax = _figure(8, 3.5)
    x = pd.to_datetime(df.index)
    partial = (
        df["partial"].to_numpy(dtype=bool) if "partial" in df else np.zeros(len(df), dtype=bool)
    )
    ax.bar(
        x[~partial], df["orders"].to_numpy()[~partial], width=20, color="#d9b38c", label="orders"
    )
    if partial.any():
        ax.bar(
            x[partial],
            df["orders"].to_numpy()[partial],
            width=20,
            color="#f3e6d8",
            edgecolor="#b08a66",
            hatch="//",
            label="orders (partial month)",
        )
    ax.set_ylabel("orders")
    ax2 = ax.twinx()
    rev = df["revenue"].to_numpy(dtype=float)
    ax2.plot(x, rev, color="#5a3825", label="revenue")
    ax2.plot(x[~partial], rev[~partial], "o", color="#5a3825", ms=4)
    if partial.any():
        ax2.plot(
            x[partial], rev[partial], "o", mfc="white", color="#5a3825", ms=5, label="partial month"
        )
    if guests is not None and len(guests):
        g = guests.reindex(df.index).fillna(0.0)
        ax2.plot(
            x, g.to_numpy(dtype=float), color="#a11d1d", ls="--", label="guest orders' revenue"
        )
    ax2.set_ylabel(revenue_label)
    ax2.grid(False)
    handles = ax.get_legend_handles_labels()
    handles2 = ax2.get_legend_handles_labels()
    ax.legend(handles[0] + handles2[0], handles[1] + handles2[1], fontsize=7, loc="upper left")
    ax.set_title(title)
    fig.autofmt_xdate()
    fig.set_layout_engine("tight")
    return fig


def leaderboard(board: pd.DataFrame, metric: str, label: str | None = None):
    """Spend error of every candidate: cross-validated mean ± std (bar + whisker) and held-out value
    (dot).

    Args:
        board: :attr:`customer_analytics.models.Comparison.board` (``kind``, ``cv_<metric>``,
            ``cv_<metric>_std``, ``<metric>``), in the order to show.
        metric: the metric to show; ``label`` its name in the axis title.
    """
    fig, ax = _figure(7.5, 0.45 * len(board) + 1.4)
    y = np.arange(len(board))
    colors = ["#9e9e9e" if k == "baseline" else "#8c5a3c" for k in board["kind"]]
    ax.barh(
        y,
        board[f"cv_{metric}"],
        xerr=board[f"cv_{metric}_std"].fillna(0),
        color=colors,
        alpha=0.8,
        error_kw={"ecolor": "black", "capsize": 3},
        label="cross-validation mean ± std",
    )
    ax.scatter(board[metric], y, color="black", zorder=3, s=18, label="held-out window")
    ax.set_yticks(y, board.index)
    ax.invert_yaxis()
    ax.set_xlabel(f"spend {label or metric.upper()} (grey = naive baseline)")
    ax.set_title("Model comparison: cross-validation over cut-offs and the held-out window")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=8, frameon=False)
    fig.set_layout_engine("tight")
    return fig


def folds(fold_scores: pd.DataFrame, metric: str, label: str | None = None):
    """The metric of every candidate at each validation cut-off (one line per candidate)."""
    fig, ax = _figure(7.5, 3.5)
    wide = fold_scores.pivot(index="cutoff", columns="model", values=metric)
    for name in wide.columns:
        ax.plot([str(c) for c in wide.index], wide[name], marker="o", label=name)
    ax.set_ylabel(f"spend {label or metric.upper()}")
    ax.set_xlabel("validation cut-off (trained on the cut-offs before it)")
    ax.set_title("Cross-validation folds")
    if wide.empty:
        ax.text(
            0.5, 0.5, "too few cut-offs for cross-validation", ha="center", transform=ax.transAxes
        )
    else:
        ax.legend(fontsize=8, ncol=2)
    fig.set_layout_engine("tight")
    return fig


def residuals(actual: np.ndarray, predicted: np.ndarray, title: str):
    """Residuals (actual - predicted spend) against predicted spend, with a binned mean."""
    fig, ax = _figure(6, 3.8)
    res = actual - predicted
    ax.scatter(predicted, res, s=4, alpha=0.25, color="#8c5a3c")
    ax.axhline(0, color="black", lw=1)
    edges = np.unique(np.quantile(predicted, np.linspace(0, 1, 11)))
    if len(edges) > 2:
        idx = np.clip(np.digitize(predicted, edges[1:-1]), 0, len(edges) - 2)
        means = pd.Series(res).groupby(idx).mean()
        mids = pd.Series(predicted).groupby(idx).mean()
        ax.plot(mids, means, color="black", marker="o", lw=1.5, label="mean residual per decile")
        ax.legend(fontsize=8)
    lo, hi = np.quantile(res, [0.005, 0.995])
    ax.set_ylim(lo, hi)
    ax.set_xlim(0, float(np.quantile(predicted, 0.995)) or 1.0)
    ax.set_xlabel("predicted spend")
    ax.set_ylabel("actual - predicted")
    ax.set_title(title)
    fig.set_layout_engine("tight")
    return fig


def importance(
    table: pd.DataFrame, title: str = "Permutation importance (held-out spend RMSE increase)"
):
    """Horizontal bars of permutation importance with their spread (``importance``, ``std``)."""
    fig, ax = _figure(7, 0.3 * len(table) + 1.2)
    ax.barh(
        table.index,
        table["importance"],
        xerr=table["std"],
        color="#8c5a3c",
        error_kw={"ecolor": "black", "capsize": 2},
    )
    ax.invert_yaxis()
    ax.set_xlabel("increase of spend RMSE when the feature is shuffled")
    ax.set_title(title)
    fig.set_layout_engine("tight")
    return fig


def lift(table: pd.DataFrame, title: str = "Customers ranked by predicted spend"):
    """Decile chart: mean actual vs predicted spend per decile, and the cumulative share of
    spend."""
    fig, ax = _figure(8, 3.8)
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["mean_actual"], width=0.4, color="#8c5a3c", label="actual (mean)")
    ax.bar(x + 0.2, table["mean_predicted"], width=0.4, color="#d9b38c", label="predicted (mean)")
    ax.set_xticks(x, [f"{d}" for d in table.index])
    ax.set_xlabel("decile of predicted spend (1 = the 10% expected to spend most)")
    ax.set_ylabel("spend in the next window")
    ax2 = ax.twinx()
    ax2.plot(
        x,
        100 * table["cumulative_share"],
        color="black",
        marker="o",
        label="cumulative % of actual spend",
    )
    ax2.set_ylim(0, 105)
    ax2.set_ylabel("% of all actual spend")
    ax2.grid(False)
    lines = ax.get_legend_handles_labels()
    more = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="center right")
    ax.set_title(title)
    fig.set_layout_engine("tight")
    return fig


def predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray, title: str):
    """Scatter of predicted against actual spend, with the diagonal."""
    fig, ax = _figure(4.5, 4.5)
    ax.scatter(actual, predicted, s=4, alpha=0.3, color="#8c5a3c")
    hi = float(np.quantile(np.concatenate([actual, predicted]), 0.995)) or 1.0
    ax.plot([0, hi], [0, hi], color="black", lw=1)
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("actual spend")
    ax.set_ylabel("predicted spend")
    ax.set_title(title)
    fig.set_layout_engine("tight")
    return fig


def histogram(values: np.ndarray, title: str, xlabel: str, bins: int = 40):
    """Histogram of a numeric array (aggregated on the client from per-customer values)."""
    fig, ax = _figure(7, 3.2)
    ax.hist(values, bins=bins, color="#8c5a3c")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("customers")
    fig.set_layout_engine("tight")
    return fig


def psi(
    table: pd.DataFrame,
    *,
    moderate: float,
    large: float,
    min_rows: int,
    title: str = "Feature drift: scored batch vs training window",
    top: int = 15,
):
    """Horizontal bars of the largest PSI values, with the ``moderate`` and ``large`` thresholds
    marked."""
    shown = table["psi"].dropna().sort_values(ascending=False).head(top)[::-1]
    fig, ax = _figure(7, 0.6 + 0.3 * max(len(shown), 1))
    assessed = "level" not in table or (table["level"] != "not assessed").any()
    colors = [
        "#9e9e9e"
        if not assessed
        else "#a11d1d"
        if v >= large
        else "#d9a441"
        if v >= moderate
        else "#8c5a3c"
        for v in shown
    ]
    if not assessed:
        title += f" (fewer than {min_rows} rows: indicative only)"
    ax.barh([str(i) for i in shown.index], shown.to_numpy(), color=colors)
    for x, style in ((moderate, ":"), (large, "--")):
        ax.axvline(x, color="black", lw=1, ls=style)
    ax.set_xlabel(
        f"population stability index (dotted: moderate {moderate}, dashed: large {large})"
    )
    ax.set_title(title)
    fig.set_layout_engine("tight")
    return fig


def calibration(
    deciles: dict[str, pd.DataFrame], title: str = "Calibration by decile (held-out window)"
):
    """Mean predicted against mean actual spend per decile of predicted spend, a line per candidate.

    Args:
        deciles: candidate -> :func:`customer_analytics.models.calibration_deciles` table.
    """
    fig, ax = _figure(5.5, 4.5)
    top = 0.0
    for (name, table), marker in zip(deciles.items(), "osD^v<>", strict=False):
        ax.plot(table["mean_predicted"], table["mean_actual"], marker=marker, label=name)
        top = max(top, float(table["mean_predicted"].max()), float(table["mean_actual"].max()))
    ax.plot(
        [0, top], [0, top], color="grey", linestyle="--", linewidth=1, label="perfect calibration"
    )
    ax.set_xlabel("mean predicted spend in the decile")
    ax.set_ylabel("mean actual spend in the decile")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.set_layout_engine("tight")
    return fig


def cohort_heatmap(
    matrix: pd.DataFrame,
    title: str = "Retention: share of each sign-up cohort buying N months later",
    percent: bool = True,
):
    """Heat map of a cohort x months-since-sign-up table (unobserved cells blank), with the values
    written
    in the cells when the table is small enough to read them."""
    n_rows, n_cols = matrix.shape
    fig, ax = _figure(min(1.0 + 0.42 * max(n_cols, 1), 12), min(1.2 + 0.32 * max(n_rows, 1), 10))
    values = np.ma.masked_invalid(matrix.to_numpy(dtype=float))
    image = ax.imshow(values, aspect="auto", cmap="YlOrBr", interpolation="nearest")
    ax.grid(False)
    ax.set_xticks(range(n_cols), [str(c) for c in matrix.columns], fontsize=7)
    ax.set_yticks(range(n_rows), [f"{pd.Timestamp(i):%Y-%m}" for i in matrix.index], fontsize=7)
    ax.set_xlabel(matrix.columns.name or "")
    ax.set_ylabel(matrix.index.name or "")
    if n_rows * n_cols <= 400:
        top = float(values.max()) if values.count() else 0.0
        for (r, c), v in np.ndenumerate(matrix.to_numpy(dtype=float)):
            if np.isfinite(v):
                ax.text(
                    c,
                    r,
                    f"{100 * v:.0f}" if percent else f"{v:.0f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if v > 0.6 * top else "black",
                )
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02, label="share (%)" if percent else "")
    ax.set_title(title)
    fig.set_layout_engine("tight")
    return fig


def lines(
    frame: pd.DataFrame, title: str, ylabel: str, percent: bool = False, labels: dict | None = None
):
    """One line per column of ``frame`` over its index (e.g. months)."""
    fig, ax = _figure(8, 3.5)
    x = pd.to_datetime(pd.Series(frame.index))
    for col in frame.columns:
        y = frame[col].to_numpy(dtype=float) * (100 if percent else 1)
        ax.plot(x, y, marker="o", ms=3, label=str((labels or {}).get(col, col)))
    ax.set_ylabel(ylabel + (" (%)" if percent else ""))
    ax.set_title(title)
    if len(frame.columns) > 1:
        ax.legend(fontsize=7, ncol=2)
    fig.autofmt_xdate()
    fig.set_layout_engine("tight")
    return fig
