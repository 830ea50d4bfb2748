"""Proxy recipe search: which lr / weight decay / label smoothing / drop path make the proxy reliable?

TPE over ``search_spaces/hparams.py`` for the fixed ``mobilemamba_tiny`` at 64 px on the synthetic
dataset, single objective top-1 with median pruning on the per-epoch accuracy.
"""

from __future__ import annotations

from lab.data import DataSpec, SynthSpec
from lab.search import Budget, Experiment, Objective
from lab.train import ProxyRecipe
from search_spaces.hparams import space

EXPERIMENT = Experiment(
    name="hparams",
    description=__doc__.split("\n\n")[0],
    kind="hparams",
    space=space("mobilemamba_tiny"),
    data=DataSpec(root="data/synth", num_classes=10, train_per_class=200, val_per_class=50, resolution=64),
    synth=SynthSpec(),
    recipe=ProxyRecipe(epochs=4, batch_size=64),
    objectives=(Objective(name="top1"),),
    budget=Budget(n_trials=30),
    sampler="tpe",
    pruner="median",
)
