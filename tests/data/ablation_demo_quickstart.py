"""The quickstart experiment (same space, objectives, constraints, sampler) on a smoke budget, for the demo test."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lab.data import DataSpec, SynthSpec
from lab.search import Budget, MeasureSpec, load_experiment
from lab.train import ProxyRecipe

_QUICKSTART = load_experiment(Path(__file__).resolve().parents[2] / "experiments" / "quickstart.py", validate=False)

EXPERIMENT = dataclasses.replace(
    _QUICKSTART,
    data=DataSpec(root="data/synth-smoke", num_classes=2, train_per_class=4, val_per_class=2, resolution=32),
    synth=SynthSpec(num_classes=2, train_per_class=4, val_per_class=2, image_size=40),
    recipe=ProxyRecipe(epochs=1, batch_size=4, lr=3e-3, warmup_epochs=0.0, eval_batch_size=8),
    budget=Budget(n_trials=3, timeout_s=120),
    measure=MeasureSpec(threads=1, throughput_batch=2, warmup=0, iters=1),
)
