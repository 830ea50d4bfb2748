"""Conv + BatchNorm and BatchNorm + Linear pairs that fold into one layer for inference."""

from __future__ import annotations

import torch
from torch import nn


class Conv2d_BN(nn.Sequential):  # noqa: N801 - official name, keeps state_dict keys `.c` / `.bn`
    """``Conv2d(bias=False)`` then ``BatchNorm2d`` (BN weight initialised to ``bn_weight_init``)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        *,
        groups: int = 1,
        bn_weight_init: float = 1.0,
    ) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_ch))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.constant_(self.bn.bias, 0.0)

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        return fuse_conv_bn(self.c, self.bn)


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A Conv2d with bias equal to ``bn(conv(x))`` in eval mode (uses the running statistics)."""
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    fused.weight.copy_(conv.weight * scale[:, None, None, None])
    fused.bias.copy_(bias)
    return fused


class BN_Linear(nn.Sequential):  # noqa: N801 - official name, keeps keys `.bn` / `.l`
    """``BatchNorm1d`` then ``Linear`` (trunc-normal std 0.02 weights, zero bias): the head."""

    def __init__(self, in_features: int, out_features: int, *, std: float = 0.02) -> None:
        super().__init__()
        self.add_module("bn", nn.BatchNorm1d(in_features))
        self.add_module("l", nn.Linear(in_features, out_features, bias=True))
        nn.init.trunc_normal_(self.l.weight, std=std)
        nn.init.constant_(self.l.bias, 0.0)

    @torch.no_grad()
    def fuse(self) -> nn.Linear:
        bn, lin = self.bn, self.l
        scale = bn.weight / (bn.running_var + bn.eps).sqrt()
        shift = bn.bias - bn.running_mean * scale
        fused = nn.Linear(lin.in_features, lin.out_features, device=lin.weight.device, dtype=lin.weight.dtype)
        fused.weight.copy_(lin.weight * scale[None, :])
        fused.bias.copy_(lin.weight @ shift + lin.bias)
        return fused
