"""Helpers for equivalence tests: make every branch of a model non-trivial.

With the official init several branches are exactly zero (BN weights initialised to 0), so a
comparison at init can pass for the wrong reason. ``randomize_`` perturbs every parameter and
BN statistic with a seeded generator so all branches contribute.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def randomize_(model: nn.Module, *, seed: int = 0, scale: float = 0.2) -> nn.Module:
    """In place: BN weight ~ U(0.5, 1.5), bias/mean ~ U(-scale, scale), var ~ U(0.5, 1.5);
    other trainable parameters get ``+ scale * std(p) * N(0, 1)`` noise (or ``U(0.5, 1.5)`` when
    they are constant, e.g. zero-initialised or scale parameters). Frozen parameters (the
    wavelet filters) are left alone."""
    g = torch.Generator().manual_seed(seed)

    def u(t: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return (torch.rand(t.shape, generator=g, dtype=torch.float64) * (hi - lo) + lo).to(t)

    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.weight.copy_(u(m.weight, 0.5, 1.5))
            m.bias.copy_(u(m.bias, -scale, scale))
            m.running_mean.copy_(u(m.running_mean, -scale, scale))
            m.running_var.copy_(u(m.running_var, 0.5, 1.5))
    bn_params = {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                 for p in m.parameters(recurse=False)}
    for p in model.parameters():
        if not p.requires_grad or id(p) in bn_params:
            continue
        if p.numel() > 1 and float(p.std()) > 0:
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64).to(p)
            p.add_(scale * float(p.std()) * noise)
        else:
            p.copy_(u(p, 0.5, 1.5))
    return model
