"""Writing figures: PNG (for the HTML report, embedded) and SVG (for papers).

Figures lay themselves out (tight/constrained layout), so no ``bbox_inches="tight"``: it would draw each
figure twice, which dominates report time on a CPU.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

DPI = 110


def figure_png(fig: Figure, *, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_figure(fig: Figure, stem: str | Path, *, dpi: int = DPI) -> tuple[Path, Path]:
    """Write ``stem.png`` and ``stem.svg``; returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    png.write_bytes(figure_png(fig, dpi=dpi))
    fig.savefig(svg, format="svg")
    return png, svg
