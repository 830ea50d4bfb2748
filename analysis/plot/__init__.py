"""Matplotlib figures drawn only from the analysis data objects (no pyplot global state, Agg-safe).

Each function returns a ``matplotlib.figure.Figure``; ``save_figure`` writes PNG and SVG.
"""

from __future__ import annotations

from .correlation import correlation_figure
from .erf import erf_grid_figure
from .hypervolume import hypervolume_figure
from .importance import importance_figure
from .io import figure_png, save_figure
from .pareto import ReferencePoint, pareto_figure

__all__ = [
    "ReferencePoint",
    "correlation_figure",
    "erf_grid_figure",
    "figure_png",
    "hypervolume_figure",
    "importance_figure",
    "pareto_figure",
    "save_figure",
]
