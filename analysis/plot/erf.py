"""ERF heat-map grid with the high-contribution area ratios in each title."""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib.figure import Figure

from ..erf import ErfResult


def erf_grid_figure(results: Sequence[ErfResult], *, ncols: int = 3, title: str = "") -> Figure:
    """One heat-map per ERF (normalised map, [0, 1]); titles give the label, weights and area ratios."""
    if not results:
        raise ValueError("erf_grid_figure needs at least one ErfResult")
    ncols = max(1, min(ncols, len(results)))
    nrows = math.ceil(len(results) / ncols)
    fig = Figure(figsize=(4.0 * ncols, 4.3 * nrows), layout="constrained")
    im = None
    for i, r in enumerate(results):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        im = ax.imshow(r.normalized, cmap="RdYlGn", vmin=0.0, vmax=1.0, interpolation="nearest")
        items = [f"t={t:g}: {v:.3f}" for t, v in sorted(r.area_ratios.items())]
        ratios = "  ".join(items[:2]) + "\n" + "  ".join(items[2:])
        stage = "output" if r.stage is None else "last stage" if r.stage == -1 else f"stage {r.stage}"
        ax.set_title(f"{r.label or stage}\n{r.weights}; {stage}, {r.n_images} {r.source} imgs\narea ratio {ratios}",
                     fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    if im is not None:
        fig.colorbar(im, ax=fig.axes, shrink=0.7, label="normalised contribution")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
