"""Writing figures: PNG (for the HTML report, embedded) and SVG (for papers)."""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

DPI = 110


def figure_png(fig: Figure, *, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def save_figure(fig: Figure, stem: str | Path, *, dpi: int = DPI) -> tuple[Path, Path]:
    """Write ``stem.png`` and ``stem.svg``; returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    png.write_bytes(figure_png(fig, dpi=dpi))
    fig.savefig(svg, format="svg", bbox_inches="tight")
    return png, svg
