"""Ablation: wavelet levels of the WTE-Mamba branch (0, 1, 2, 3; Haar vs Daubechies-2), at proxy scale.

Rows (all stages of ``mobilemamba_tiny`` together): ``1 level, Haar (official)`` (the baseline:
``wavelet_levels=1``, ``wavelet_type="db1"``), ``0 levels (no wavelet)``, ``2 levels, Haar``,
``3 levels, Haar`` and ``1 level, db2``. At 64 px with stem stride 4 the stages see 16, 8 and 4
tokens a side, so 3 levels take the last stage down to a 1x1 sub-band (the periodised transform
reconstructs exactly at every level).

Run: ``python run_sweep.py experiments/ablation_wavelet_levels.py [--scale smoke|imagenet100]
[--data DIR]`` -> ``runs/ablation_wavelet_levels/`` (``report/tables/ablation.{md,csv,tex}``).
Scales: see ``experiments/ablation_common.py`` (default: synthetic 10 classes, 64 px, 3 epochs,
seeds 0 and 1, 10 trials).
"""

from __future__ import annotations

from experiments.ablation_common import SCALES, ablation
from lab.search import Experiment

NAME = "ablation_wavelet_levels"
BASELINE = "1 level, Haar (official)"
VARIANTS: dict[str, dict] = {
    BASELINE: {},
    "0 levels (no wavelet)": {"stages.*.mixer.wavelet_levels": 0},
    "2 levels, Haar": {"stages.*.mixer.wavelet_levels": 2},
    "3 levels, Haar": {"stages.*.mixer.wavelet_levels": 3},
    "1 level, db2": {"stages.*.mixer.wavelet_type": "db2"},
}
__all__ = ["EXPERIMENT", "SCALES", "scaled"]


def scaled(scale: str) -> Experiment:
    """This ablation at the named scale (``SCALES``)."""
    return ablation(name=NAME, description=__doc__.split("\n\n")[0], variants=VARIANTS, baseline=BASELINE,
                    scale=scale)


EXPERIMENT = scaled("default")
