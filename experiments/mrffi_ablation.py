"""MRFFI ablation on the synthetic dataset: which MRFFI component buys accuracy and speed at equal backbone?

Random samples of ``search_spaces/mrffi_ablation.py`` (wavelet levels per stage, wavelet family,
kernel sets incl. MK-DeConv, per-stage ratios) over ``mobilemamba_tiny`` at 64 px, 3 proxy
epochs, two seeds per config; objectives top-1 and batch-1 CPU latency. The report compares every
factor against the official baseline (``experiment.json`` ``ablation.baseline``).
"""

from __future__ import annotations

from lab.data import DataSpec, SynthSpec
from lab.search import Budget, Experiment, MeasureSpec, Objective
from lab.train import ProxyRecipe
from search_spaces.mrffi_ablation import space

EXPERIMENT = Experiment(
    name="mrffi_ablation",
    description=__doc__.split("\n\n")[0],
    kind="ablation",
    space=space("mobilemamba_tiny"),
    data=DataSpec(root="data/synth", num_classes=10, train_per_class=200, val_per_class=50, resolution=64),
    synth=SynthSpec(),
    recipe=ProxyRecipe(epochs=3, batch_size=64),
    objectives=(Objective(name="top1"), Objective(name="latency_ms")),
    budget=Budget(n_trials=60),
    sampler="random",
    seeds=(0, 1),
    measure=MeasureSpec(threads=1, throughput_batch=16, warmup=2, iters=10),
)
