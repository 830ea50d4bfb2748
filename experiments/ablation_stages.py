"""Ablation: three stages (the official layout) vs four stages at similar FLOPs, at proxy scale.

``3 stages (official layout)`` is ``mobilemamba_tiny``: widths 32/64/96, depth 1 each, ratios
0.8/0.2, 0.7/0.2, 0.6/0.3, kernels 7/5/3 (19.9 MFLOPs at 64 px). ``4 stages`` keeps the first two
stages and replaces the last by two: widths 32/64/80/112, depth 1 each, ratios 0.8/0.2, 0.7/0.2,
0.7/0.2, 0.6/0.3, kernels 7/5/5/3 (21.1 MFLOPs at 64 px, +6%; measured with ``lab.measure``,
paper convention; the table's FLOPs column is the measurement). With stem stride 4 the four
stages see 16, 8, 4 and 2 tokens a side at 64 px.

Run: ``python run_sweep.py experiments/ablation_stages.py [--scale smoke|imagenet100] [--data DIR]``
-> ``runs/ablation_stages/``. Scales: see ``experiments/ablation_common.py`` (default: synthetic
10 classes, 64 px, 3 epochs, seeds 0 and 1, 4 trials).
"""

from __future__ import annotations

from experiments.ablation_common import SCALES, ablation
from lab.search import Experiment

NAME = "ablation_stages"
BASELINE = "3 stages (official layout)"
FOUR_STAGE_DIMS = (32, 64, 80, 112)
FOUR_STAGE_RATIOS = ((0.8, 0.2), (0.7, 0.2), (0.7, 0.2), (0.6, 0.3))
FOUR_STAGE_KERNELS = (7, 5, 5, 3)


def four_stages() -> list[dict]:
    """The four-stage layout as ``stages`` dicts (the whole ``stages`` list is one override)."""
    return [
        {"dim": d, "depth": 1, "downsample": i > 0,
         "mixer": {"global_ratio": g, "local_ratio": loc, "local_kernels": [k]}}
        for i, (d, (g, loc), k) in enumerate(zip(FOUR_STAGE_DIMS, FOUR_STAGE_RATIOS, FOUR_STAGE_KERNELS, strict=True))
    ]


VARIANTS: dict[str, dict] = {
    BASELINE: {},
    "4 stages (~same FLOPs)": {"stages": four_stages()},
}
__all__ = ["EXPERIMENT", "SCALES", "scaled"]


def scaled(scale: str) -> Experiment:
    """This ablation at the named scale (``SCALES``)."""
    return ablation(name=NAME, description=__doc__.split("\n\n")[0], variants=VARIANTS, baseline=BASELINE,
                    scale=scale)


EXPERIMENT = scaled("default")
