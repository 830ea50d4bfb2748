"""Horizontal bar chart of parameter importances (from Optuna's evaluators)."""

from __future__ import annotations

from collections.abc import Mapping

from matplotlib.figure import Figure


def importance_figure(importances: Mapping[str, Mapping[str, float]], *, title: str = "") -> Figure:
    """``importances[target][param] -> importance``; one panel per target (objective)."""
    if not importances:
        raise ValueError("importance_figure needs at least one target")
    n = len(importances)
    height = max(2.5, 0.28 * max(len(v) for v in importances.values()) + 1.2)
    fig = Figure(figsize=(5.2 * n, height))
    for i, (target, imp) in enumerate(importances.items()):
        ax = fig.add_subplot(1, n, i + 1)
        items = sorted(imp.items(), key=lambda kv: kv[1])
        ax.barh([k for k, _ in items], [v for _, v in items], color="#9467bd")
        ax.set_xlabel("importance", fontsize=8)
        ax.set_title(target, fontsize=9)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
