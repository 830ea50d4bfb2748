"""Shared scaffolding of the ``experiments/ablation_*.py`` files (not an experiment itself).

Every ablation is a grid over one factor -- named variants of the official setting
(``lab.search.space.Variants``) -- times training seeds (a ``recipe.seed`` knob, so each seed
is one row of ``trials.parquet`` and the table shows mean ± std over seeds). The baseline row is
the variant named like the official setting; Δ columns are relative to it.

Scales (``run_sweep.py experiments/ablation_X.py --scale NAME``):

- ``default`` -- proxy scale on the synthetic dataset (``data/synth``, generated when missing):
  10 classes, 64 train / 30 val images per class, 64 px, ``mobilemamba_tiny`` (stem stride 4),
  3 epochs, seeds 0 and 1. Sized for <= 30 minutes on 2 CPU cores (measured wall times are in
  the README).
- ``smoke`` -- seconds: 2 classes, 4 / 2 images per class, 32 px, 1 epoch, seed 0 (the tests).
- ``imagenet100`` -- the ImageNet-100 class list at 64 px, 260 / 50 images per class, 10 epochs,
  seeds 0 and 1; point it at an ImageNet-format folder with ``--data DIR`` (default root
  ``data/imagenet``; nothing is generated).

``--data DIR`` works with every scale: it replaces the dataset root and keeps the scale's class
subset and resolution.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from lab.config import ModelConfig
from lab.data import DataSpec, SynthSpec
from lab.search import Budget, Experiment, MeasureSpec, Objective
from lab.search.space import Categorical, Param, SearchSpace, Variants
from lab.train import ProxyRecipe

PROXY_BASE = "mobilemamba_tiny"
SCALES = ("default", "smoke", "imagenet100")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Scale:
    """Data, recipe, seeds and timing protocol of one named scale."""

    name: str
    data: DataSpec
    synth: SynthSpec | None
    recipe: ProxyRecipe
    seeds: tuple[int, ...]
    measure: MeasureSpec


def scale_spec(name: str) -> Scale:
    """The named scale (see the module docstring); unknown names fail with the list."""
    if name == "default":
        return Scale(
            name=name,
            data=DataSpec(root="data/synth", num_classes=10, train_per_class=64, val_per_class=30, resolution=64),
            synth=SynthSpec(),  # same set as `lab data synth --out data/synth` (and the quickstart)
            recipe=ProxyRecipe(epochs=3, batch_size=32, lr=3e-3, warmup_epochs=0.5, eval_batch_size=128),
            seeds=(0, 1),
            measure=MeasureSpec(threads=1, throughput_batch=16, warmup=2, iters=5),
        )
    if name == "smoke":
        return Scale(
            name=name,
            data=DataSpec(root="data/synth-smoke", num_classes=2, train_per_class=4, val_per_class=2, resolution=32),
            synth=SynthSpec(num_classes=2, train_per_class=4, val_per_class=2, image_size=40),
            recipe=ProxyRecipe(epochs=1, batch_size=4, lr=3e-3, warmup_epochs=0.0, eval_batch_size=8),
            seeds=(0,),
            measure=MeasureSpec(threads=1, throughput_batch=2, warmup=0, iters=1),
        )
    if name == "imagenet100":
        return Scale(
            name=name,
            data=DataSpec(root="data/imagenet", classes="imagenet100", train_per_class=260, val_per_class=50,
                          resolution=64),
            synth=None,
            recipe=ProxyRecipe(epochs=10, batch_size=64, lr=2e-3, warmup_epochs=1.0),
            seeds=(0, 1),
            measure=MeasureSpec(threads=1, throughput_batch=16, warmup=2, iters=5),
        )
    raise ValueError(f"scale {name!r} unknown; scales: {', '.join(SCALES)}")


def per_stage(base: ModelConfig, fn: Callable[[int, Any], Mapping[str, Any]]) -> dict[str, Any]:
    """Dotted-key overrides built stage by stage: ``fn(i, mixer)`` returns the mixer fields of stage ``i``."""
    out: dict[str, Any] = {}
    for i, stage in enumerate(base.stages):
        for key, value in fn(i, stage.mixer).items():
            out[f"stages.{i}.mixer.{key}"] = value
    return out


def ablation(
    *,
    name: str,
    description: str,
    variants: Mapping[str, Mapping[str, Any]],
    baseline: str,
    scale: str,
    base: str = PROXY_BASE,
    fixed: Mapping[str, Any] | None = None,
    recipe: Callable[[ProxyRecipe], ProxyRecipe] | None = None,
    data: Callable[[DataSpec], DataSpec] | None = None,
    prepare: Callable[[Experiment, Any], None] | None = None,
) -> Experiment:
    """One ablation experiment: ``variants`` (name -> dotted-key overrides) x the scale's seeds, as a grid.

    ``recipe`` / ``data`` adjust the scale's recipe / dataset spec for this ablation (e.g. a lower
    resolution where a variant is slow on CPU). The run is named ``name`` at the default scale and
    ``name-<scale>`` otherwise, so runs at different scales never share a directory.
    """
    sc = scale_spec(scale)
    seeds = sc.seeds
    space = SearchSpace(
        base=base,
        params=(
            Param("variant", Variants(variants, baseline=baseline)),
            Param("recipe.seed", Categorical(seeds)),
        ),
        fixed=dict(fixed or {}),
        description=description,
    )
    n_trials = len(variants) * len(seeds)
    return Experiment(
        name=name if scale == "default" else f"{name}-{scale}",
        description=description,
        kind="ablation",
        space=space,
        data=data(sc.data) if data else sc.data,
        synth=sc.synth,
        recipe=recipe(sc.recipe) if recipe else sc.recipe,
        objectives=(Objective(name="top1"),),
        budget=Budget(n_trials=n_trials),
        sampler="grid",
        pruner="none",
        seed=0,
        seeds=seeds,
        measure=sc.measure,
        prepare=prepare,
    )
