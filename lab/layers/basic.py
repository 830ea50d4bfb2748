"""Small building blocks: residual wrapper, FFN, learnable scale, channel LayerNorm, SE."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conv_bn import Conv2d_BN


class Residual(nn.Module):
    """``x + m(x)`` (key ``.m``)."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.m(x)


class FFN(nn.Module):
    """1x1 expand -> ReLU -> 1x1 project; the last BN starts at 0 so the branch starts silent."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.pw1 = Conv2d_BN(dim, hidden)
        self.act = nn.ReLU()
        self.pw2 = Conv2d_BN(hidden, dim, bn_weight_init=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw2(self.act(self.pw1(x)))


class ScaleModule(nn.Module):
    """Elementwise learnable scale of a fixed shape (key ``.weight``)."""

    def __init__(self, shape: tuple[int, ...], *, init_scale: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full(shape, float(init_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dim of an NCHW tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def make_divisible(v: float, divisor: int = 8, *, round_limit: float = 0.9) -> int:
    """timm's rule: nearest multiple of ``divisor``, never more than 10% below ``v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


class SqueezeExcite(nn.Module):
    """timm ``SEModule`` layout: mean pool -> 1x1 conv (+bias) -> ReLU -> 1x1 conv (+bias) -> sigmoid gate."""

    def __init__(self, channels: int, *, rd_ratio: float = 0.25, rd_divisor: int = 8) -> None:
        super().__init__()
        rd = make_divisible(channels * rd_ratio, rd_divisor)
        self.fc1 = nn.Conv2d(channels, rd, 1, bias=True)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(rd, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(self.act(self.fc1(s))))
