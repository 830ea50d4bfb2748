"""Tiny sweep for the tests of lab.search: a 16/32/48-wide MobileMamba, 32 px, 4 classes, 1 epoch.

The data root and the decode cache come from ``SEARCH_TEST_DATA`` / ``SEARCH_TEST_CACHE`` (the
tests point them into a temporary folder); ``SEARCH_TEST_MAX_PARAMS`` sets the parameter budget.
"""

from __future__ import annotations

import os

from lab.data import DataSpec, SynthSpec
from lab.search import Budget, Constraints, Experiment, MeasureSpec, Objective
from lab.search.space import Categorical, Param, SearchSpace
from lab.train import ProxyRecipe

_max_params = os.environ.get("SEARCH_TEST_MAX_PARAMS")

EXPERIMENT = Experiment(
    name=os.environ.get("SEARCH_TEST_NAME", "tiny"),
    description="test sweep",
    space=SearchSpace(
        base="mobilemamba_tiny",
        fixed={"stages.0.dim": 16, "stages.1.dim": 32, "stages.2.dim": 48},
        params=(
            Param("stages.*.mixer.wavelet_levels", Categorical((0, 1))),
            Param("stages.*.mixer.local_kernels", Categorical(((3,), (3, 5)))),
            Param("stages.*.mixer.d_state", Categorical((1, 2))),
        ),
    ),
    data=DataSpec(root=os.environ.get("SEARCH_TEST_DATA", "data/search_tiny"), num_classes=4, train_per_class=8,
                  val_per_class=4, resolution=32, cache_dir=os.environ.get("SEARCH_TEST_CACHE")),
    synth=SynthSpec(num_classes=4, train_per_class=8, val_per_class=4, image_size=40),
    recipe=ProxyRecipe(epochs=int(os.environ.get("SEARCH_TEST_EPOCHS", "1")), batch_size=8, eval_batch_size=16,
                       warmup_epochs=0.0),
    objectives=(Objective(name="top1"), Objective(name="params")),
    constraints=Constraints(max_params=int(_max_params) if _max_params else None),
    budget=Budget(n_trials=6),
    sampler=os.environ.get("SEARCH_TEST_SAMPLER", "random"),
    heartbeat_s=float(os.environ.get("SEARCH_TEST_HEARTBEAT", "2")),
    measure=MeasureSpec(threads=1, throughput_batch=2, warmup=0, iters=1),
)
