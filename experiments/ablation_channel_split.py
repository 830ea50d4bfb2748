"""Ablation: global / local / identity channel ratios around the official per-stage values, at proxy scale.

Rows (ratios global/local per stage; identity = the rest; effective channels on ``mobilemamba_tiny``
at widths 32/64/96 after the official nearest-16 rounding of the global part):

- ``0.8/0.2 · 0.7/0.2 · 0.6/0.3 (official)`` -> 32/0/0 · 48/12/4 · 64/28/4 (baseline)
- ``identity 0 (local takes the rest)`` -> ratios g/(1-g) -> 32/0/0 · 48/16/0 · 64/32/0
- ``more global`` -> 0.9/0.1 · 0.9/0.1 · 0.8/0.2 -> 32/0/0 · 64/0/0 · 80/16/0 (a milder +0.1 on every
  stage rounds to exactly the official split at these widths, so it would repeat the baseline)
- ``global -0.2`` -> 0.6/0.2 · 0.5/0.2 · 0.4/0.3 -> 16/6/10 · 32/12/20 · 32/28/36
- ``local +0.1, global -0.1`` -> 0.7/0.3 · 0.6/0.3 · 0.5/0.4 -> 16/9/7 · 32/19/13 · 48/38/10

Run: ``python run_sweep.py experiments/ablation_channel_split.py [--scale smoke|imagenet100]
[--data DIR]`` -> ``runs/ablation_channel_split/``. Scales: see ``experiments/ablation_common.py``
(default: synthetic 10 classes, 64 px, 3 epochs, seeds 0 and 1, 10 trials).
"""

from __future__ import annotations

from experiments.ablation_common import SCALES, ablation
from lab.search import Experiment

NAME = "ablation_channel_split"
BASELINE = "0.8/0.2 · 0.7/0.2 · 0.6/0.3 (official)"


def _ratios(pairs: tuple[tuple[float, float], ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for i, (g, loc) in enumerate(pairs):
        out[f"stages.{i}.mixer.global_ratio"] = g
        out[f"stages.{i}.mixer.local_ratio"] = loc
    return out


VARIANTS: dict[str, dict] = {
    BASELINE: {},
    "identity 0 (local takes the rest)": _ratios(((0.8, 0.2), (0.7, 0.3), (0.6, 0.4))),
    "more global": _ratios(((0.9, 0.1), (0.9, 0.1), (0.8, 0.2))),
    "global -0.2": _ratios(((0.6, 0.2), (0.5, 0.2), (0.4, 0.3))),
    "local +0.1, global -0.1": _ratios(((0.7, 0.3), (0.6, 0.3), (0.5, 0.4))),
}
__all__ = ["EXPERIMENT", "SCALES", "scaled"]


def scaled(scale: str) -> Experiment:
    """This ablation at the named scale (``SCALES``)."""
    return ablation(name=NAME, description=__doc__.split("\n\n")[0], variants=VARIANTS, baseline=BASELINE,
                    scale=scale)


EXPERIMENT = scaled("default")
