"""Orthogonal 2-D wavelet transform pair (any pywt orthogonal wavelet, any level) and the
WTE-Mamba global branch of MRFFI (official name ``MBWTConv2d``).

The transform is periodised: after zero-padding odd sizes at the bottom/right (as the
official code does), the input is extended circularly by ``L-2`` samples and filtered with
stride 2; the inverse is the exact adjoint (transposed conv, then the wrap-around folded
back). For an orthogonal wavelet the pair reconstructs perfectly; for Haar (``L = 2``) no
extension happens and it is exactly the official transform.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MixerConfig
from ..layers import ScaleModule
from .ss2d import SS2D


@functools.cache
def _filters_1d(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    import pywt

    w = pywt.Wavelet(name)
    if not w.orthogonal:
        raise ValueError(f"wavelet {name!r} is not orthogonal; use e.g. 'db1' (Haar), 'db2', 'sym4', 'coif1'")
    return tuple(w.dec_lo[::-1]), tuple(w.dec_hi[::-1])


def wavelet_filters(name: str, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The four 2-D analysis filters ``[LL, LH, HL, HH]`` as ``(4, 1, L, L)``.

    ``LH[h, w] = hi[h] * lo[w]`` (high-pass along H), ``HL = lo[h] * hi[w]``; for Haar this is
    ``0.5 * [[1,1],[1,1]], 0.5 * [[1,1],[-1,-1]], 0.5 * [[1,-1],[1,-1]], 0.5 * [[1,-1],[-1,1]]``.
    """
    lo, hi = (torch.tensor(f, dtype=torch.float64) for f in _filters_1d(name))
    bank = [lo[:, None] * lo[None, :], hi[:, None] * lo[None, :], lo[:, None] * hi[None, :], hi[:, None] * hi[None, :]]
    return torch.stack(bank)[:, None].to(dtype)


def _wrap_extend(x: torch.Tensor, extra: int) -> torch.Tensor:
    """Circularly extend the last two dims by ``extra`` samples (works for any size)."""
    if extra == 0:
        return x
    h, w = x.shape[-2:]
    x = x.index_select(-2, torch.arange(h + extra, device=x.device) % h)
    return x.index_select(-1, torch.arange(w + extra, device=x.device) % w)


def _wrap_fold(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Adjoint of ``_wrap_extend``: add the samples past ``h``/``w`` back onto the start."""
    if x.shape[-2] == h and x.shape[-1] == w:
        return x
    idx_h = torch.arange(x.shape[-2], device=x.device) % h
    x = x.new_zeros((*x.shape[:-2], h, x.shape[-1])).index_add(-2, idx_h, x)
    idx_w = torch.arange(x.shape[-1], device=x.device) % w
    return x.new_zeros((*x.shape[:-1], w)).index_add(-1, idx_w, x)


def wavelet_transform(x: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` with even H, W -> ``(B, C, 4, H/2, W/2)``; ``filters``: ``(4C, 1, L, L)``."""
    b, c, h, w = x.shape
    length = filters.shape[-1]
    y = F.conv2d(_wrap_extend(x, length - 2), filters, stride=2, groups=c)
    return y.reshape(b, c, 4, h // 2, w // 2)


def inverse_wavelet_transform(y: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """``(B, C, 4, h, w)`` -> ``(B, C, 2h, 2w)``; exact inverse of ``wavelet_transform``."""
    b, c, _, h, w = y.shape
    x = F.conv_transpose2d(y.reshape(b, c * 4, h, w), filters, stride=2, groups=c)
    return _wrap_fold(x, 2 * h, 2 * w)


def pad_even(x: torch.Tensor) -> torch.Tensor:
    """Zero-pad one row/column at the bottom/right when H/W is odd (official scheme)."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2))
    return x


class MBWTConv2d(nn.Module):
    """WTE-Mamba: ``base_scale * SS2D(x) + IWT(wavelet_scale * DWConv_k(WT(x)))`` (recursing on LL
    for several levels). ``use_ssm=False`` replaces SS2D by the identity (wavelet-only branch);
    ``wavelet_levels=0`` drops the wavelet path (SSM only). Keys follow the official code."""

    def __init__(self, channels: int, mixer: MixerConfig) -> None:
        super().__init__()
        self.channels = channels
        self.levels = mixer.wavelet_levels
        if self.levels:
            bank = wavelet_filters(mixer.wavelet_type).repeat(channels, 1, 1, 1)
            self.wt_filter = nn.Parameter(bank, requires_grad=False)
            self.iwt_filter = nn.Parameter(bank.clone(), requires_grad=False)
        self.global_atten = (
            SS2D(channels, ssm_ratio=mixer.ssm_ratio, d_state=mixer.d_state, scan=mixer.scan)
            if mixer.use_ssm
            else nn.Identity()
        )
        self.base_scale = ScaleModule((1, channels, 1, 1), init_scale=1.0)
        k = mixer.effective_wavelet_kernel
        self.wavelet_convs = nn.ModuleList(
            nn.Conv2d(4 * channels, 4 * channels, k, padding="same", groups=4 * channels, bias=False)
            for _ in range(self.levels)
        )
        self.wavelet_scale = nn.ModuleList(
            ScaleModule((1, 4 * channels, 1, 1), init_scale=0.1) for _ in range(self.levels)
        )

    def wavelet_path(self, x: torch.Tensor) -> torch.Tensor:
        lows: list[torch.Tensor] = []
        highs: list[torch.Tensor] = []
        shapes: list[tuple[int, int]] = []
        cur = x
        for conv, scale in zip(self.wavelet_convs, self.wavelet_scale):
            shapes.append(tuple(cur.shape[-2:]))
            bands = wavelet_transform(pad_even(cur), self.wt_filter)
            cur = bands[:, :, 0]
            b, c, _, h, w = bands.shape
            tag = scale(conv(bands.reshape(b, c * 4, h, w))).reshape(b, c, 4, h, w)
            lows.append(tag[:, :, 0])
            highs.append(tag[:, :, 1:4])
        nxt: torch.Tensor | float = 0.0
        for low, high, (h, w) in zip(reversed(lows), reversed(highs), reversed(shapes)):
            bands = torch.cat([(low + nxt).unsqueeze(2), high], dim=2)
            nxt = inverse_wavelet_transform(bands, self.iwt_filter)[:, :, :h, :w]
        return nxt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_scale(self.global_atten(x))
        if self.levels:
            out = out + self.wavelet_path(x)
        return out
