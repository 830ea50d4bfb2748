"""MK-DeConv: the local branch of MRFFI (depthwise conv -> BN -> ReLU -> per-channel scale -> BN)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import split_kernel_groups
from ..layers.conv_bn import fuse_conv_bn


class DWConv2d_BN_ReLU(nn.Sequential):  # noqa: N801 - official name and keys
    """Official local op: ``dwconv3x3`` (k x k whatever k is) -> ``bn1`` -> ReLU -> ``dwconv1x1``
    (grouped 1x1, a per-channel scale) -> ``bn2``."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        c = channels
        self.add_module("dwconv3x3", nn.Conv2d(c, c, kernel_size, padding=kernel_size // 2, groups=c, bias=False))
        self.add_module("bn1", nn.BatchNorm2d(c))
        self.add_module("relu", nn.ReLU())
        self.add_module("dwconv1x1", nn.Conv2d(c, c, 1, groups=c, bias=False))
        self.add_module("bn2", nn.BatchNorm2d(c))

    @torch.no_grad()
    def fuse(self) -> nn.Sequential:
        return nn.Sequential(fuse_conv_bn(self.dwconv3x3, self.bn1), nn.ReLU(), fuse_conv_bn(self.dwconv1x1, self.bn2))


class MultiKernelDWConv(nn.Module):
    """MK-DeConv with several kernels: channels split by ``split_kernel_groups``, one
    ``DWConv2d_BN_ReLU`` per group (keys ``branches.<i>.*``), outputs concatenated in order."""

    def __init__(self, channels: int, kernels: tuple[int, ...]) -> None:
        super().__init__()
        sizes = split_kernel_groups(channels, len(kernels))
        self.sizes = [s for s in sizes if s]
        self.branches = nn.ModuleList(DWConv2d_BN_ReLU(s, k) for s, k in zip(sizes, kernels) if s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.sizes, dim=1)
        return torch.cat([branch(p) for branch, p in zip(self.branches, parts)], dim=1)


def local_op(channels: int, kernels: tuple[int, ...]) -> nn.Module:
    """The official single-kernel op for one kernel, the multi-kernel split otherwise."""
    if len(kernels) == 1:
        return DWConv2d_BN_ReLU(channels, kernels[0])
    return MultiKernelDWConv(channels, kernels)
