"""Ablation: training and testing strategies -- BN fusion, knowledge distillation, longer schedule.

The paper's "†" models are trained with knowledge distillation and 1000 instead of 300 epochs, and
every model is timed with BN folded into the convolutions. Proxy rows (``mobilemamba_tiny``):

- ``short schedule (official 300-ep analogue)`` -- the baseline: the scale's epochs (3 by default),
  timed with BN fused.
- ``BN not fused at test (throughput only)`` -- the *same network and weights*: nothing is
  retrained (the pipeline reuses the baseline's trial, its ``reason`` column says "duplicate of
  trial N"), only the timing runs on the unfused network (``measure.fused=False``). Accuracy and
  FLOPs are identical by construction; throughput/latency are measured.
- ``+ KD`` -- soft-label distillation (``kd_alpha=0.5``, T=1) from a teacher.
- ``longer schedule (x3 epochs, 1000-ep analogue)`` -- 3x the epochs (1000/300 ~ 3.3).
- ``+ KD + longer († recipe)`` -- both.

The teacher (default): a larger lab model, ``mobilemamba_tiny`` widened 1.5x (widths 48/96/144,
~2x the FLOPs), trained in this experiment -- once, before the first trial, by the experiment's
``prepare`` hook -- on the same training split for 2x the short schedule's epochs, and saved to
``.cache/teachers/<run name>.pt`` (a whole pickled module; a ``.json`` beside it records its
config, recipe, data fingerprint and top-1, and a matching file is reused instead of retrained).
To distil from your own teacher instead, set ``LAB_KD_TEACHER=/path/to/teacher.pt`` (a whole
``torch.save``d ``nn.Module`` whose head has the experiment's number of classes); nothing is then
trained for the teacher.

This ablation's default scale trains at 32 px (stages see 8, 4 and 2 tokens a side) because the
longer-schedule rows cost 3x: ~20 epochs' worth of trials per seed.

Run: ``python run_sweep.py experiments/ablation_training.py [--scale smoke|imagenet100] [--data DIR]``
-> ``runs/ablation_training/``. Scales: see ``experiments/ablation_common.py`` (default here:
synthetic 10 classes, **32 px**, 3 / 9 epochs, seeds 0 and 1, 10 trials, 8 trained).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from experiments.ablation_common import SCALES, ablation, scale_spec
from lab.search import Experiment

NAME = "ablation_training"
BASELINE = "short schedule (official 300-ep analogue)"
TEACHER_DIMS = (48, 96, 144)
LONGER = 3
TEACHER_ENV = "LAB_KD_TEACHER"
__all__ = ["EXPERIMENT", "SCALES", "Teacher", "scaled"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Teacher:
    """``prepare`` hook: train the distillation teacher once and save it to ``path`` (reused when its
    ``.json`` record matches: same config, recipe and data fingerprint)."""

    path: str
    base: str
    dims: tuple[int, ...]
    epochs: int

    def config(self, num_classes: int, resolution: int) -> Any:
        from lab.models import get_config

        cfg = get_config(self.base)
        if len(self.dims) != len(cfg.stages):
            raise ValueError(f"teacher dims {self.dims} need one width per stage of {self.base} ({len(cfg.stages)})")
        stages = tuple(dataclasses.replace(s, dim=d) for s, d in zip(cfg.stages, self.dims, strict=True))
        return cfg.replace(stages=stages, num_classes=num_classes, img_size=resolution)

    def __call__(self, exp: Experiment, data: Any) -> None:
        import torch

        from lab.models import build_model
        from lab.train import train_proxy

        cfg = self.config(data.num_classes, data.resolution)
        recipe = dataclasses.replace(exp.recipe, epochs=self.epochs, seed=0, teacher=None)
        record = {"config": cfg.to_dict(), "recipe": recipe.to_dict(), "data": data.fingerprint}
        path, meta = Path(self.path), Path(self.path).with_suffix(".json")
        if path.is_file() and meta.is_file():
            old = json.loads(meta.read_text())
            if {k: old.get(k) for k in record} == json.loads(json.dumps(record)):
                print(f"teacher: reusing {path} (top-1 {old.get('top1', float('nan')):.2f}%)", file=sys.stderr)
                return
        print(f"teacher: training {self.base} at widths {self.dims} for {self.epochs} epochs -> {path}",
              file=sys.stderr)
        t0 = time.perf_counter()
        torch.manual_seed(0)
        model = build_model(cfg)
        result = train_proxy(model, data, recipe, threads=exp.trial_threads)
        model.eval()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        torch.save(model, tmp)
        os.replace(tmp, path)
        wall = time.perf_counter() - t0
        meta.write_text(json.dumps({**record, "top1": float(result.top1), "wall_s": wall}, indent=1) + "\n")
        print(f"teacher: top-1 {result.top1:.2f}% after {self.epochs} epochs in {wall:.0f}s", file=sys.stderr)


def scaled(scale: str) -> Experiment:
    """This ablation at the named scale (``SCALES``); the default scale trains at 32 px (see above)."""
    sc = scale_spec(scale)
    name = NAME if scale == "default" else f"{NAME}-{scale}"
    epochs = sc.recipe.epochs
    own = os.environ.get(TEACHER_ENV)
    if own:
        teacher_path, prepare = own, None
        if not Path(own).is_file():
            raise ValueError(f"{TEACHER_ENV}={own!r} is not a file; unset it to train the default teacher")
    else:
        teacher_path = str(Path(".cache/teachers") / f"{name}.pt")
        prepare = Teacher(path=teacher_path, base="mobilemamba_tiny", dims=TEACHER_DIMS, epochs=2 * epochs)
    kd = {"recipe.teacher": teacher_path, "recipe.kd_alpha": 0.5, "recipe.kd_temperature": 1.0}
    longer = {"recipe.epochs": LONGER * epochs}
    variants = {
        BASELINE: {},
        "BN not fused at test (throughput only)": {"measure.fused": False},
        "+ KD": kd,
        f"longer schedule (x{LONGER} epochs, 1000-ep analogue)": longer,
        "+ KD + longer († recipe)": {**kd, **longer},
    }
    low_res = (lambda d: dataclasses.replace(d, resolution=32)) if scale == "default" else None
    return ablation(name=NAME, description=__doc__.split("\n\n")[0], variants=variants, baseline=BASELINE,
                    scale=scale, data=low_res, prepare=prepare)


EXPERIMENT = scaled("default")
