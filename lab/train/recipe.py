"""Frozen, serialisable descriptions of a proxy trial: the recipe in, the result out.

``ProxyRecipe`` is hashable and round-trips through ``to_dict``/``from_dict`` (JSON), so a sweep
can key duplicate detection on ``(config_id, recipe.recipe_id())``. ``ProxyResult`` and
``EpochMetrics`` are plain data with ``to_dict`` for logging and tables.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field


class RecipeError(ValueError):
    """A recipe value is out of range; the message names the field and the fix."""


@dataclass(frozen=True, kw_only=True)
class ProxyRecipe:
    """How to train one proxy. Defaults suit a 64 px, ~2k-image, few-epoch CPU proxy.

    Schedule: AdamW, per-step linear warm-up for ``warmup_epochs`` then cosine decay to
    ``min_lr``; weight decay skips 1-D parameters (norms, biases). ``mixup``/``cutmix`` are timm
    ``Mixup`` alphas (0 = off). ``ema_decay`` > 0 evaluates an EMA of the weights. ``amp`` uses
    bfloat16 autocast on CUDA (ignored on CPU, reported in the result). ``teacher`` (a timm model
    name, with ``teacher_checkpoint`` a state-dict file, or a path to a whole pickled module)
    enables soft knowledge distillation with weight ``kd_alpha`` and temperature ``kd_temperature``.
    """

    epochs: int = 3
    batch_size: int = 64
    lr: float = 2e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    ema_decay: float = 0.0
    amp: bool = True
    channels_last: bool = False
    grad_clip: float | None = None
    rrc_scale: tuple[float, float] = (0.35, 1.0)
    hflip: bool = True
    eval_batch_size: int = 256
    seed: int = 0
    teacher: str | None = None
    teacher_checkpoint: str | None = None
    kd_alpha: float = 0.5
    kd_temperature: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.rrc_scale, list):
            object.__setattr__(self, "rrc_scale", tuple(self.rrc_scale))
        checks = [
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("batch_size", self.batch_size >= 2, "must be >= 2 (and even with mixup/cutmix)"),
            ("lr", self.lr > 0, "must be > 0"),
            ("min_lr", 0 <= self.min_lr <= self.lr, "must be in [0, lr]"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("warmup_epochs", 0 <= self.warmup_epochs <= self.epochs, "must be in [0, epochs]"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "must be in [0, 1)"),
            ("mixup", self.mixup >= 0, "must be >= 0 (0 = off)"),
            ("cutmix", self.cutmix >= 0, "must be >= 0 (0 = off)"),
            ("ema_decay", 0 <= self.ema_decay < 1, "must be in [0, 1) (0 = off)"),
            ("grad_clip", self.grad_clip is None or self.grad_clip > 0, "must be > 0 or None"),
            (
                "rrc_scale",
                len(self.rrc_scale) == 2 and 0 < self.rrc_scale[0] <= self.rrc_scale[1] <= 1,
                "need 0 < lo <= hi <= 1",
            ),
            ("eval_batch_size", self.eval_batch_size >= 1, "must be >= 1"),
            ("kd_alpha", 0 <= self.kd_alpha <= 1, "must be in [0, 1]"),
            ("kd_temperature", self.kd_temperature > 0, "must be > 0"),
        ]
        for name, ok, fix in checks:
            if not ok:
                raise RecipeError(f"ProxyRecipe.{name}={getattr(self, name)!r}: {fix}")
        if (self.mixup > 0 or self.cutmix > 0) and self.batch_size % 2:
            raise RecipeError(f"ProxyRecipe.batch_size={self.batch_size}: timm Mixup needs an even batch size")
        if self.teacher_checkpoint is not None and self.teacher is None:
            raise RecipeError("ProxyRecipe.teacher_checkpoint needs teacher (the timm model name to load it into)")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["rrc_scale"] = list(self.rrc_scale)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ProxyRecipe:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise RecipeError(f"unknown ProxyRecipe field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def recipe_id(self) -> str:
        """Stable short hash of every field (for duplicate detection and checkpoint matching)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EpochMetrics:
    """What the per-epoch callback receives (``epoch`` counts from 1)."""

    epoch: int
    train_loss: float
    val_loss: float
    top1: float
    top5: float
    lr: float
    epoch_time_s: float
    train_images_per_s: float
    elapsed_s: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ProxyResult:
    """Outcome of ``train_proxy``. Accuracies are percentages on the val split after the last epoch run.

    ``loss_curve`` holds the training loss of every step (resumed trials include the steps run
    before the interruption). ``wall_time_s`` sums the wall time of all sessions of this trial;
    ``images_per_s`` is training throughput (images / training seconds, evaluation excluded).
    """

    top1: float
    top5: float
    epochs_completed: int
    stopped_early: bool
    epochs: tuple[EpochMetrics, ...]
    loss_curve: tuple[float, ...]
    wall_time_s: float
    images_per_s: float
    resumed_from_epoch: int = 0
    amp_used: bool = False
    device: str = "cpu"
    recipe_id: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["epochs"] = [e.to_dict() for e in self.epochs]
        d["loss_curve"] = list(self.loss_curve)
        d["notes"] = list(self.notes)
        return d
