"""Quickstart: a 12-trial MRFFI mini-sweep on the synthetic dataset, a few minutes on 2 CPU cores.

Asks, at toy scale, the lab's core question: which MRFFI settings (wavelet levels, local kernel
set, global ratio and depth of the last stage, SSM state size) trade proxy accuracy against
measured CPU throughput best (FLOPs and params are recorded for every trial too)? A tiny 32 px
MobileMamba trains 3 epochs on 10 synthetic classes; a parameter budget marks the largest
samples infeasible before any training.
"""

from __future__ import annotations

from lab.data import DataSpec, SynthSpec
from lab.search import Budget, Constraints, Experiment, MeasureSpec, Objective
from lab.search.space import Categorical, Param, SearchSpace
from lab.train import ProxyRecipe

SPACE = SearchSpace(
    base="mobilemamba_tiny",
    params=(
        Param("stages.*.mixer.wavelet_levels", Categorical((0, 1, 2))),
        Param("stages.*.mixer.local_kernels", Categorical(((3,), (5,), (7,), (3, 5, 7)))),
        Param("stages.2.mixer.global_ratio", Categorical((0.4, 0.6, 0.7))),
        Param("stages.2.depth", Categorical((1, 2))),
        Param("stages.*.mixer.d_state", Categorical((1, 4))),
    ),
)

EXPERIMENT = Experiment(
    name="quickstart",
    description=__doc__.split("\n\n")[0],
    kind="nas",
    space=SPACE,
    data=DataSpec(root="data/synth", num_classes=10, train_per_class=80, val_per_class=20, resolution=32),
    synth=SynthSpec(),  # generated into data/synth when missing (same as `lab data synth --out data/synth`)
    recipe=ProxyRecipe(epochs=3, batch_size=32, lr=3e-3, warmup_epochs=0.5, eval_batch_size=128),
    objectives=(Objective(name="top1"), Objective(name="throughput")),
    constraints=Constraints(max_params=520_000),
    budget=Budget(n_trials=12, timeout_s=540),
    sampler="tpe",
    seed=0,
    seeds=(0,),
    measure=MeasureSpec(threads=1, throughput_batch=8, warmup=2, iters=5),
)
