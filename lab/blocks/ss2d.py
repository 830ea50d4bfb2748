"""SS2D: the 2-D selective-scan block of WTE-Mamba (official "v052d" path, channel-first).

``in_proj -> (u, z)``; ``u = SiLU(dwconv3x3(u))``; scan ``u`` along K raster orders with a
selective scan (B, C, dt from ``x_proj``/``dt_projs``); merge the K outputs back into
row-major order *per sample*; ``LayerNorm2d``; gate by ``SiLU(z)``; ``out_proj``.
The scan itself is ``kernels.selective_scan.selective_scan`` (backend chosen by its
``use_backend`` context), so every fast path is used by the model without changes here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kernels.selective_scan import selective_scan

from ..config import SCAN_DIRECTIONS
from ..layers import Conv2d_BN, LayerNorm2d


def scan_orders(x: torch.Tensor, directions: int) -> torch.Tensor:
    """``(B, D, H, W)`` -> ``(B, K, D, L)``: row-major [+ reversed] [+ column-major, reversed]."""
    b, d, h, w = x.shape
    row = x.flatten(2)
    if directions == 1:
        return row[:, None]
    if directions == 2:
        return torch.stack([row, row.flip(-1)], dim=1)
    col = x.transpose(2, 3).flatten(2)
    return torch.stack([row, col, row.flip(-1), col.flip(-1)], dim=1)


def merge_orders(y: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of ``scan_orders`` summed over directions: ``(B, K, D, L)`` -> ``(B, D, H, W)``."""
    b, k, d, length = y.shape
    if k == 1:
        out = y[:, 0]
    elif k == 2:
        out = y[:, 0] + y[:, 1].flip(-1)
    else:
        col = y[:, 1] + y[:, 3].flip(-1)
        out = y[:, 0] + y[:, 2].flip(-1) + col.reshape(b, d, w, h).transpose(2, 3).reshape(b, d, length)
    return out.reshape(b, d, h, w)


class SS2D(nn.Module):
    """Selective-scan 2-D block. Keys and init follow the official ``SS2D(initialize='v2')``:
    ``Ds = 1``, ``A_logs = 0``, ``dt_projs_weight, dt_projs_bias ~ 0.1 * U[0, 1)``, ``x_proj_weight``
    as ``nn.Linear``'s default."""

    def __init__(self, d_model: int, *, ssm_ratio: float = 2.0, d_state: int = 1, scan: str = "bidi") -> None:
        super().__init__()
        k = SCAN_DIRECTIONS[scan]
        d_inner = int(ssm_ratio * d_model)
        dt_rank = math.ceil(d_model / 16)
        self.k_group, self.d_inner, self.d_state, self.dt_rank = k, d_inner, d_state, dt_rank
        bound = 1.0 / math.sqrt(d_inner)
        self.x_proj_weight = nn.Parameter(torch.empty(k, dt_rank + 2 * d_state, d_inner).uniform_(-bound, bound))
        self.Ds = nn.Parameter(torch.ones(k * d_inner))
        self.A_logs = nn.Parameter(torch.zeros(k * d_inner, d_state))
        self.dt_projs_weight = nn.Parameter(0.1 * torch.rand(k, d_inner, dt_rank))
        self.dt_projs_bias = nn.Parameter(0.1 * torch.rand(k, d_inner))
        self.out_norm = LayerNorm2d(d_inner)
        self.in_proj = Conv2d_BN(d_model, 2 * d_inner)
        self.conv2d = nn.Conv2d(d_inner, d_inner, 3, padding=1, groups=d_inner, bias=True)
        self.out_proj = Conv2d_BN(d_inner, d_model)

    def forward_core(self, u: torch.Tensor) -> torch.Tensor:
        b, d, h, w = u.shape
        k, r, n = self.k_group, self.dt_rank, self.d_state
        length = h * w
        xs = scan_orders(u, k).reshape(b, k * d, length)
        x_dbl = F.conv1d(xs, self.x_proj_weight.reshape(k * (r + 2 * n), d, 1), groups=k)
        dts, bs, cs = x_dbl.reshape(b, k, r + 2 * n, length).split([r, n, n], dim=2)
        dts = F.conv1d(dts.reshape(b, k * r, length), self.dt_projs_weight.reshape(k * d, r, 1), groups=k)
        ys = selective_scan(
            xs,
            dts,
            -torch.exp(self.A_logs.float()),
            bs.contiguous(),
            cs.contiguous(),
            self.Ds.float(),
            delta_bias=self.dt_projs_bias.reshape(-1).float(),
            delta_softplus=True,
        )
        return merge_orders(ys.reshape(b, k, d, length), h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, z = self.in_proj(x).chunk(2, dim=1)
        u = F.silu(self.conv2d(u))
        y = self.out_norm(self.forward_core(u))
        return self.out_proj(y * F.silu(z))
