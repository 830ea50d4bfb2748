"""Ablation: the MRFFI components (the paper's component table), at proxy scale.

Rows (every row changes all stages of ``mobilemamba_tiny`` at once; splits are global/local/identity
channels per stage at widths 32/64/96 after the official nearest-16 rounding of the global part):

- ``full MRFFI (official)`` -- the baseline: ratios 0.8/0.2, 0.7/0.2, 0.6/0.3 -> 32/0/0 · 48/12/4 · 64/28/4.
  (At width 32 the rounding gives stage 0 no local channel at all: a property of the tiny proxy.)
- ``w/o WTE-Mamba (global -> local)`` -- global_ratio 0, local_ratio = official global + local
  (1.0, 0.9, 0.9) -> 0/32/0 · 0/57/7 · 0/86/10.
- ``w/o wavelet (SSM only)`` -- ``wavelet_levels=0``.
- ``w/o SSM (wavelet only)`` -- ``use_ssm=False``: the global branch is ``scale * x + wavelet(x)``.
- ``w/o MK-DeConv (local -> identity)`` -- ``local_ratio=0`` -> 32/0/0 · 48/0/16 · 64/0/32.
- ``w/o identity elimination`` -- the identity share restored as in a plain split: both official
  ratios scaled by 0.75 (about a quarter of every stage passes through untouched)
  -> 16/4/12 · 32/9/23 · 48/21/27.

Run: ``python run_sweep.py experiments/ablation_mrffi_components.py [--scale smoke|imagenet100]
[--data DIR]`` -> ``runs/ablation_mrffi_components/`` (``trials.parquet``, ``report/index.html``,
``report/tables/ablation.{md,csv,tex}``). Scales: see ``experiments/ablation_common.py``
(default: synthetic 10 classes, 64 px, 3 epochs, seeds 0 and 1, 12 trials).
"""

from __future__ import annotations

from experiments.ablation_common import SCALES, ablation, per_stage
from lab.models import get_config
from lab.search import Experiment

NAME = "ablation_mrffi_components"
BASE = "mobilemamba_tiny"
BASELINE = "full MRFFI (official)"
__all__ = ["EXPERIMENT", "SCALES", "scaled"]


def variants() -> dict[str, dict]:
    """Variant name -> dotted-key overrides (computed from the base preset's per-stage ratios)."""
    base = get_config(BASE)
    return {
        BASELINE: {},
        "w/o WTE-Mamba (global -> local)": per_stage(base, lambda i, m: {
            "global_ratio": 0.0, "local_ratio": round(m.global_ratio + m.local_ratio, 6)}),
        "w/o wavelet (SSM only)": {"stages.*.mixer.wavelet_levels": 0},
        "w/o SSM (wavelet only)": {"stages.*.mixer.use_ssm": False},
        "w/o MK-DeConv (local -> identity)": {"stages.*.mixer.local_ratio": 0.0},
        "w/o identity elimination": per_stage(base, lambda i, m: {
            "global_ratio": round(0.75 * m.global_ratio, 6), "local_ratio": round(0.75 * m.local_ratio, 6)}),
    }


def scaled(scale: str) -> Experiment:
    """This ablation at the named scale (``SCALES``)."""
    return ablation(name=NAME, description=__doc__.split("\n\n")[0], variants=variants(), baseline=BASELINE,
                    scale=scale, base=BASE)


EXPERIMENT = scaled("default")
