"""Proxy-vs-target scatter plots with Kendall tau and Spearman rho (bootstrap CI) in the titles."""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib.figure import Figure

from ..correlation import RankCorrelation


def correlation_figure(results: Sequence[RankCorrelation], *, ncols: int = 3) -> Figure:
    """One scatter per (proxy, target) pair."""
    if not results:
        raise ValueError("correlation_figure needs at least one RankCorrelation")
    ncols = max(1, min(ncols, len(results)))
    nrows = math.ceil(len(results) / ncols)
    fig = Figure(figsize=(3.8 * ncols, 3.4 * nrows))
    pct = round(100 * results[0].level)
    for i, r in enumerate(results):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.scatter(r.x_values, r.y_values, s=14, alpha=0.8, c="#1f77b4")
        ax.set_xlabel(r.x, fontsize=8)
        ax.set_ylabel(r.y, fontsize=8)
        ax.set_title(f"n={r.n}  τ={r.tau:.2f} [{r.tau_ci[0]:.2f}, {r.tau_ci[1]:.2f}]\n"
                     f"ρ={r.rho:.2f} [{r.rho_ci[0]:.2f}, {r.rho_ci[1]:.2f}] ({pct}% CI)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig
