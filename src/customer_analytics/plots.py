"""Matplotlib figures for the reports. Every function takes aggregates and returns a Figure."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure

# Figures are built with the object API (no pyplot state): a cell that returns one shows it once.
STYLE = {"figure.dpi": 100, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
         "grid.alpha": 0.3}


class ReportFigure(Figure):
    """A Figure that Jupyter shows as one embedded PNG, with or without pyplot's inline backend."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()


def _figure(width: float, height: float) -> tuple[ReportFigure, object]:
    with rc_context(STYLE):
        fig = ReportFigure(figsize=(width, height))
        return fig, fig.subplots()


def bars(values: pd.Series, title: str, xlabel: str = "", ylabel: str = "", horizontal: bool = False):
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


def monthly(df: pd.DataFrame, title: str = "Orders and revenue per month"):
    """Orders (bars) and revenue (line) per month."""
    fig, ax = _figure(8, 3.5)
    x = pd.to_datetime(df.index)
    ax.bar(x, df["orders"], width=20, color="#d9b38c", label="orders")
    ax.set_ylabel("orders")
    ax2 = ax.twinx()
    ax2.plot(x, df["revenue"], color="#5a3825", marker="o", label="revenue")
    ax2.set_ylabel("revenue")
    ax2.grid(False)
    ax.set_title(title)
    fig.autofmt_xdate()
    fig.set_layout_engine("tight")
    return fig


def leaderboard(board: pd.DataFrame, metric: str):
    """Holdout error of every candidate; baselines in grey."""
    fig, ax = _figure(7, 3)
    colors = ["#9e9e9e" if k == "baseline" else "#8c5a3c" for k in board["kind"]]
    ax.barh(board.index, board[metric], color=colors)
    ax.invert_yaxis()
    ax.set_xlabel(f"holdout spend {metric.upper()} (grey = naive baseline)")
    ax.set_title("Model comparison on the held-out window")
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


def psi(table: pd.DataFrame, *, moderate: float, large: float, min_rows: int,
        title: str = "Feature drift: scored batch vs training window", top: int = 15):
    """Horizontal bars of the largest PSI values, with the ``moderate`` and ``large`` thresholds marked."""
    shown = table["psi"].dropna().sort_values(ascending=False).head(top)[::-1]
    fig, ax = _figure(7, 0.6 + 0.3 * max(len(shown), 1))
    assessed = "level" not in table or (table["level"] != "not assessed").any()
    colors = ["#9e9e9e" if not assessed else "#a11d1d" if v >= large else "#d9a441" if v >= moderate
              else "#8c5a3c" for v in shown]
    if not assessed:
        title += f" (fewer than {min_rows} rows: indicative only)"
    ax.barh([str(i) for i in shown.index], shown.to_numpy(), color=colors)
    for x, style in ((moderate, ":"), (large, "--")):
        ax.axvline(x, color="black", lw=1, ls=style)
    ax.set_xlabel(f"population stability index (dotted: moderate {moderate}, dashed: large {large})")
    ax.set_title(title)
    fig.set_layout_engine("tight")
    return fig
