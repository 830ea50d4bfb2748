"""BatchNorm folding for inference (the official ``replace_batchnorm``)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def fuse_modules(module: nn.Module) -> nn.Module:
    """Replace, recursively and in place, every child that has ``.fuse()`` by its fused form.

    Must run in eval mode: folding uses the BN running statistics.
    """
    if module.training:
        raise RuntimeError("fuse() folds BatchNorm running statistics: call model.eval() first")
    for name, child in module.named_children():
        if hasattr(child, "fuse") and callable(child.fuse):
            setattr(module, name, child.fuse())
        else:
            child.eval()
            fuse_modules(child)
    return module
