"""Ablation: local kernels -- single kernels 3 / 5 / 7 everywhere, the official per-stage 7-5-3, and
MK-DeConv kernel sets {3,5} and {3,5,7}, at proxy scale.

The released code uses one depthwise kernel per stage (7, 5, 3); several kernels split the local
channels into contiguous groups (the lab's MK-DeConv extension, e.g. 28 channels over (3, 5, 7)
-> 10/9/9). The wavelet branch's kernel follows the largest local kernel (the official sharing),
so a kernel row also changes the wavelet-domain kernel. On ``mobilemamba_tiny`` stage 0 has no
local channels (32/0/0 after rounding), so there the row only changes that wavelet kernel.

Run: ``python run_sweep.py experiments/ablation_local_kernels.py [--scale smoke|imagenet100]
[--data DIR]`` -> ``runs/ablation_local_kernels/``. Scales: see ``experiments/ablation_common.py``
(default: synthetic 10 classes, 64 px, 3 epochs, seeds 0 and 1, 12 trials).
"""

from __future__ import annotations

from experiments.ablation_common import SCALES, ablation
from lab.search import Experiment

NAME = "ablation_local_kernels"
BASELINE = "7-5-3 per stage (official)"
VARIANTS: dict[str, dict] = {
    BASELINE: {},
    "3 everywhere": {"stages.*.mixer.local_kernels": (3,)},
    "5 everywhere": {"stages.*.mixer.local_kernels": (5,)},
    "7 everywhere": {"stages.*.mixer.local_kernels": (7,)},
    "MK-DeConv {3,5}": {"stages.*.mixer.local_kernels": (3, 5)},
    "MK-DeConv {3,5,7}": {"stages.*.mixer.local_kernels": (3, 5, 7)},
}
__all__ = ["EXPERIMENT", "SCALES", "scaled"]


def scaled(scale: str) -> Experiment:
    """This ablation at the named scale (``SCALES``)."""
    return ablation(name=NAME, description=__doc__.split("\n\n")[0], variants=VARIANTS, baseline=BASELINE,
                    scale=scale)


EXPERIMENT = scaled("default")
