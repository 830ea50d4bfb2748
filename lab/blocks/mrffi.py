"""MRFFI (official ``MobileMambaModule``): split channels into global / local / identity,
run WTE-Mamba on the global part and MK-DeConv on the local part, pass identity through,
then ``ReLU -> 1x1 Conv2d_BN`` (BN weight 0: the branch starts silent)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import MixerConfig
from ..layers import Conv2d_BN
from .mkconv import local_op
from .wavelet import MBWTConv2d


class MRFFI(nn.Module):
    def __init__(self, dim: int, mixer: MixerConfig) -> None:
        super().__init__()
        s = mixer.split(dim)
        self.split_sizes = [s.global_, s.local, s.identity]
        self.local_op = local_op(s.local, mixer.local_kernels) if s.local else nn.Identity()
        self.global_op = MBWTConv2d(s.global_, mixer) if s.global_ else nn.Identity()
        self.proj = nn.Sequential(nn.ReLU(), Conv2d_BN(dim, dim, bn_weight_init=0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xg, xl, xi = torch.split(x, self.split_sizes, dim=1)
        return self.proj(torch.cat([self.global_op(xg), self.local_op(xl), xi], dim=1))
