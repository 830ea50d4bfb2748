"""Figures are drawn from the analysis objects, carry what they claim, and are not blank."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.collections import PathCollection
from PIL import Image

from analysis.correlation import rank_correlation
from analysis.erf import erf_map
from analysis.pareto import knee_point, pareto_mask
from analysis.plot import (
    ReferencePoint,
    correlation_figure,
    erf_grid_figure,
    figure_png,
    hypervolume_figure,
    importance_figure,
    pareto_figure,
    save_figure,
)


def _not_blank(png: bytes) -> None:
    img = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert img.std() > 5, "figure looks blank"
    assert (img < 128).mean() > 0.002, "almost no dark pixels: nothing drawn"


def test_pareto_figure_marks_front_knee_and_references(tmp_path):
    rng = np.random.default_rng(0)
    acc, thr = rng.uniform(60, 80, 40), rng.uniform(500, 3000, 40)
    dirs = ("maximize", "maximize")
    front = pareto_mask(np.c_[thr, acc], list(dirs))
    knee = int(np.nonzero(front)[0][knee_point(np.c_[thr, acc][front], list(dirs)).index])
    refs = [ReferencePoint("mobilemamba_t2", 2000.0, 73.6), ReferencePoint("mobilemamba_s6", 900.0, float("nan"))]
    fig = pareto_figure(thr, acc, directions=dirs, x_label="throughput", y_label="top1", front=front, knee=knee,
                        best=int(np.argmax(acc)), references=refs, reference_note="measured on this machine")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert "mobilemamba_t2" in texts and "mobilemamba_s6" in texts
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("measured on this machine" in t for t in legend) and "knee" in legend
    assert f"Pareto front ({int(front.sum())})" in legend
    assert ax.lines[0].get_drawstyle() == "steps-pre"  # x maximised: the next point's y holds up to its x
    flops = pareto_figure(thr, acc, directions=("minimize", "maximize"), x_label="flops", y_label="top1")
    assert flops.axes[0].lines[0].get_drawstyle() == "steps-post"
    red = [c for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets()) == front.sum()]
    np.testing.assert_allclose(np.sort(red[0].get_offsets()[:, 0]), np.sort(thr[front]))
    _not_blank(figure_png(fig))
    png, svg = save_figure(fig, tmp_path / "f" / "pareto")
    assert png.stat().st_size > 1000 and svg.read_text().lstrip().startswith("<?xml")


def test_empty_pareto_figure_says_so():
    fig = pareto_figure([], [], directions=("maximize", "minimize"), x_label="flops", y_label="top1")
    assert any("no completed trials" in t.get_text() for t in fig.axes[0].texts)


def test_other_figures_not_blank():
    hv = hypervolume_figure([0, 1, 3], [0.1, 0.5, 0.6], reference=[0.0, 100.0], objective_names=["top1", "tput"])
    assert "top1=0" in hv.axes[0].get_title()
    _not_blank(figure_png(hv))
    conv = torch.nn.Sequential(*[torch.nn.Conv2d(1, 1, 3, padding=1) for _ in range(3)])
    r = erf_map(conv, torch.rand(2, 1, 21, 21), stage=None, label="conv stack")
    grid = erf_grid_figure([r, r], ncols=2)
    assert "t=0.99" in grid.axes[0].get_title() and "conv stack" in grid.axes[0].get_title()
    _not_blank(figure_png(grid))
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"zc.a": rng.normal(size=20), "top1": rng.normal(size=20)})
    c = correlation_figure([rank_correlation(df, "zc.a", "top1", n_boot=50)])
    assert "τ=" in c.axes[0].get_title()
    _not_blank(figure_png(c))
    _not_blank(figure_png(importance_figure({"top1": {"p.a": 0.7, "p.b": 0.3}})))
    with pytest.raises(ValueError, match="at least one"):
        erf_grid_figure([])
