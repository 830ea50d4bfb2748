"""Ablation: the SSM of the WTE-Mamba branch -- d_state 1 / 4 / 16, ssm_ratio 1 / 2, 2 vs 4 scan directions.

One factor at a time around the official setting (``d_state=1``, ``ssm_ratio=2``, ``scan="bidi"``,
2 directions): ``d_state 4``, ``d_state 16``, ``ssm_ratio 1``, ``4 scan directions (cross)``.
On CPU the selective scan's cost grows with ``d_state``: one training step of ``mobilemamba_tiny``
at 64 px, batch 32, took 6.4x longer with d_state 16 than with d_state 1 when sized (2 shared,
loaded cores), so this ablation's default scale trains at 32 px (stages see 8, 4 and 2 tokens a
side) to stay well within 30 minutes on 2 cores. (In the default run that followed, at 32 px on
a quieter machine, d_state 16 trained 1.5x slower and the whole run took 117 s.)

Run: ``python run_sweep.py experiments/ablation_ssm.py [--scale smoke|imagenet100] [--data DIR]``
-> ``runs/ablation_ssm/``. Scales: see ``experiments/ablation_common.py`` (default here: synthetic
10 classes, **32 px**, 3 epochs, seeds 0 and 1, 10 trials).
"""

from __future__ import annotations

import dataclasses

from experiments.ablation_common import SCALES, ablation
from lab.search import Experiment

NAME = "ablation_ssm"
BASELINE = "d_state 1, ssm_ratio 2, 2 directions (official)"
VARIANTS: dict[str, dict] = {
    BASELINE: {},
    "d_state 4": {"stages.*.mixer.d_state": 4},
    "d_state 16": {"stages.*.mixer.d_state": 16},
    "ssm_ratio 1": {"stages.*.mixer.ssm_ratio": 1.0},
    "4 scan directions (cross)": {"stages.*.mixer.scan": "cross"},
}
__all__ = ["EXPERIMENT", "SCALES", "scaled"]


def scaled(scale: str) -> Experiment:
    """This ablation at the named scale (``SCALES``); the default scale trains at 32 px (see above)."""
    low_res = (lambda d: dataclasses.replace(d, resolution=32)) if scale == "default" else None
    return ablation(name=NAME, description=__doc__.split("\n\n")[0], variants=VARIANTS, baseline=BASELINE,
                    scale=scale, data=low_res)


EXPERIMENT = scaled("default")
