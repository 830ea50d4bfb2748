"""Pareto scatter: every trial, the front as a staircase, the knee, and labelled reference models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from ..pareto import pareto_mask


@dataclass(frozen=True)
class ReferencePoint:
    """A named model drawn as a labelled marker (e.g. an official variant measured on this machine)."""

    name: str
    x: float
    y: float
    note: str = ""


def pareto_figure(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    directions: tuple[str, str],
    x_label: str,
    y_label: str,
    front: np.ndarray | None = None,
    knee: int | None = None,
    best: int | None = None,
    references: Sequence[ReferencePoint] = (),
    reference_note: str = "",
    labels: Sequence[str] | None = None,
    log_x: bool = False,
    title: str = "",
) -> Figure:
    """Scatter of ``(x, y)`` with the non-dominated set under ``directions`` highlighted.

    ``front`` is a boolean mask (default: the 2-D front of these two columns); ``knee`` and
    ``best`` are row indices to mark; ``labels`` annotate front points (config ids). ``log_x`` uses a
    log axis when the x values span more than a factor of 20.
    ``references`` with a finite ``x`` and ``y`` are drawn as labelled diamonds; those missing
    one coordinate (e.g. top-1 not measured) as vertical/horizontal lines.
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.shape != ys.shape:
        raise ValueError(f"x and y must have the same length, got {len(xs)} and {len(ys)}")
    fig = Figure(figsize=(7.0, 4.6))
    ax = fig.add_subplot()
    mask = pareto_mask(np.c_[xs, ys], list(directions)) if front is None and len(xs) else front
    mask = np.zeros(len(xs), bool) if mask is None else np.asarray(mask, bool)
    ax.scatter(xs[~mask], ys[~mask], s=18, c="#9aa5b1", alpha=0.8, label=f"dominated ({int((~mask).sum())})",
               zorder=2)
    if mask.any():
        fx, fy = xs[mask], ys[mask]
        order = np.argsort(fx)
        # boundary of the dominated region: the y of the next point applies up to its x when x is maximised
        ax.step(fx[order], fy[order], where="pre" if directions[0] == "maximize" else "post", c="#d62728",
                lw=1.2, alpha=0.7, zorder=3)
        ax.scatter(fx, fy, s=36, c="#d62728", label=f"Pareto front ({int(mask.sum())})", zorder=4)
        if labels is not None:
            seen: set[tuple[float, float]] = set()
            for i in np.nonzero(mask)[0]:
                if (xs[i], ys[i]) in seen:  # identical results (a reused trial): label once
                    continue
                seen.add((xs[i], ys[i]))
                ax.annotate(str(labels[i])[:8], (xs[i], ys[i]), fontsize=6, xytext=(3, 3),
                            textcoords="offset points", color="#7f1d1d")
    if best is not None:
        ax.scatter([xs[best]], [ys[best]], s=140, facecolors="none", edgecolors="#1f77b4", lw=1.8,
                   label="best accuracy", zorder=5)
    if knee is not None:
        ax.scatter([xs[knee]], [ys[knee]], s=220, marker="*", c="#ff7f0e", edgecolors="k", lw=0.6,
                   label="knee", zorder=6)
    note = f" ({reference_note})" if reference_note else ""
    first = True
    for r in references:
        lab = f"reference models{note}" if first else None
        if np.isfinite(r.x) and np.isfinite(r.y):
            ax.scatter([r.x], [r.y], marker="D", s=40, c="k", label=lab, zorder=7)
            ax.annotate(r.name, (r.x, r.y), fontsize=7, xytext=(4, -10), textcoords="offset points")
        elif np.isfinite(r.x):
            ax.axvline(r.x, color="k", ls=":", lw=0.9, label=lab)
            ax.annotate(r.name, (r.x, 1.0), xycoords=("data", "axes fraction"), fontsize=7, rotation=90,
                        va="top", ha="right")
        elif np.isfinite(r.y):
            ax.axhline(r.y, color="k", ls=":", lw=0.9, label=lab)
            ax.annotate(r.name, (1.0, r.y), xycoords=("axes fraction", "data"), fontsize=7, ha="right",
                        va="bottom")
        else:
            continue
        first = False
    finite = xs[np.isfinite(xs)]
    if log_x and len(finite) and finite.min() > 0 and finite.max() / finite.min() > 20:  # log only for wide ranges
        ax.set_xscale("log")
    arrow = {"maximize": "→ better", "minimize": "← better"}
    ax.set_xlabel(f"{x_label} ({arrow[directions[0]]})")
    ax.set_ylabel(f"{y_label} ({'↑' if directions[1] == 'maximize' else '↓'} better)")
    ax.grid(alpha=0.3)
    if not len(xs):
        ax.text(0.5, 0.5, "no completed trials", transform=ax.transAxes, ha="center", va="center")
    ax.legend(fontsize=7, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
