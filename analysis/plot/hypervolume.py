"""Hypervolume of the running Pareto front over trials."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure


def hypervolume_figure(
    trial_numbers: Sequence[int] | np.ndarray,
    hypervolumes: Sequence[float] | np.ndarray,
    *,
    reference: Sequence[float],
    objective_names: Sequence[str],
    title: str = "",
) -> Figure:
    """Step plot of hypervolume after each completed trial; the reference point is in the caption."""
    t, hv = np.asarray(trial_numbers), np.asarray(hypervolumes, dtype=float)
    fig = Figure(figsize=(7.0, 3.4))
    ax = fig.add_subplot()
    if len(t):
        ax.step(t, hv, where="post", c="#2ca02c", lw=1.6)
        ax.scatter(t, hv, s=10, c="#2ca02c")
    else:
        ax.text(0.5, 0.5, "no completed trials", transform=ax.transAxes, ha="center", va="center")
    ref = ", ".join(f"{n}={v:.4g}" for n, v in zip(objective_names, reference, strict=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("hypervolume")
    ax.set_title(title or f"hypervolume over trials (reference point: {ref})", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
