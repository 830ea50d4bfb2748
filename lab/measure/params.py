"""Parameter counts: total (official convention), trainable, and after BatchNorm folding."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True, kw_only=True)
class ParamCounts:
    """``total`` counts every parameter, frozen ones included (the official convention counts the
    non-trainable Haar filters ``wt_filter``/``iwt_filter``); buffers (BN running stats) are not
    parameters. ``fused`` is the total after ``fuse()``, ``None`` when the model has no ``fuse()``."""

    total: int
    trainable: int
    fused: int | None


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter elements; shared parameters are counted once (``parameters()`` dedups)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def fused_copy(model: nn.Module) -> nn.Module | None:
    """An eval-mode deep copy with BN folded by the model's ``fuse()``, or ``None`` without one."""
    if not callable(getattr(model, "fuse", None)):
        return None
    clone = copy.deepcopy(model).eval()
    out = clone.fuse()
    return out if isinstance(out, nn.Module) else clone


def param_counts(model: nn.Module) -> ParamCounts:
    """Total, trainable and fused parameter counts of ``model`` (left unchanged)."""
    fused = fused_copy(model)
    return ParamCounts(
        total=count_parameters(model),
        trainable=count_parameters(model, trainable_only=True),
        fused=None if fused is None else count_parameters(fused),
    )
