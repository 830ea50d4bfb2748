"""The MobileMamba network, built from a ``ModelConfig``.

Layout and state_dict keys equal the official code: ``patch_embed`` (stem), ``blocks1..N``
(``blocks{i}`` for i > 1 starts with the DW+FFN / PatchMerging(+SE) / DW+FFN transition),
``head`` (BN_Linear) and optionally ``head_dist``. A block computes
``x + DropPath(ffn1(dw1(mixer(ffn0(dw0(x))))))`` with every inner step residual.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from ..blocks import MRFFI
from ..config import MixerConfig, ModelConfig, check_input_size, config_id
from ..layers import FFN, BN_Linear, Conv2d_BN, Residual, SqueezeExcite
from .fuse import fuse_modules


class MixerWindow(nn.Module):
    """Official ``MobileMambaBlockWindow``: holds the MRFFI module as ``attn``."""

    def __init__(self, dim: int, mixer: MixerConfig) -> None:
        super().__init__()
        self.attn = MRFFI(dim, mixer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x)


class MobileMambaBlock(nn.Module):
    """dw0 -> ffn0 -> MRFFI -> dw1 -> ffn1 (each residual), plus an outer skip with DropPath."""

    def __init__(self, dim: int, mixer: MixerConfig, *, drop_path: float = 0.0) -> None:
        super().__init__()
        self.dw0 = Residual(Conv2d_BN(dim, dim, 3, 1, 1, groups=dim, bn_weight_init=0.0))
        self.ffn0 = Residual(FFN(dim, 2 * dim))
        self.mixer = Residual(MixerWindow(dim, mixer))
        self.dw1 = Residual(Conv2d_BN(dim, dim, 3, 1, 1, groups=dim, bn_weight_init=0.0))
        self.ffn1 = Residual(FFN(dim, 2 * dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.ffn1(self.dw1(self.mixer(self.ffn0(self.dw0(x))))))


class PatchMerging(nn.Module):
    """1x1 expand x4 -> ReLU -> 3x3 depthwise stride 2 -> ReLU -> SE -> 1x1 project (no residual)."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        hid = 4 * dim
        self.conv1 = Conv2d_BN(dim, hid, 1)
        self.act = nn.ReLU()
        self.conv2 = Conv2d_BN(hid, hid, 3, 2, 1, groups=hid)
        self.se = SqueezeExcite(hid, rd_ratio=0.25)
        self.conv3 = Conv2d_BN(hid, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.se(self.act(self.conv2(self.act(self.conv1(x))))))


def _dw_ffn(dim: int) -> nn.Sequential:
    return nn.Sequential(Residual(Conv2d_BN(dim, dim, 3, 1, 1, groups=dim)), Residual(FFN(dim, 2 * dim)))


def _stem(in_chans: int, dim: int, stride: int) -> nn.Sequential:
    """Four 3x3 Conv2d_BN (widths dim/8, dim/4, dim/2, dim) with ReLUs between; the first
    log2(stride) convs have stride 2, the rest stride 1."""
    widths = [dim // 8, dim // 4, dim // 2, dim]
    n_down = int(math.log2(stride))
    layers: list[nn.Module] = []
    prev = in_chans
    for i, w in enumerate(widths):
        if i:
            layers.append(nn.ReLU())
        layers.append(Conv2d_BN(prev, w, 3, 2 if i < n_down else 1, 1))
        prev = w
    return nn.Sequential(*layers)


class MobileMamba(nn.Module):
    """MobileMamba classifier (timm-style API: ``forward_features``, ``forward_head``,
    ``forward_intermediates``, ``reset_classifier``; plus ``fuse()`` for inference)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.config_id = config_id(cfg)
        self.num_classes = cfg.num_classes
        self.distillation = cfg.distillation and cfg.num_classes > 0
        self.num_features = self.head_hidden_size = cfg.stages[-1].dim
        self.patch_embed = _stem(cfg.in_chans, cfg.stages[0].dim, cfg.stem_stride)
        depths = [s.depth for s in cfg.stages]
        dpr = torch.linspace(0, cfg.drop_path, sum(depths)).tolist() if sum(depths) else []
        self.stage_names: list[str] = []
        self.feature_info: list[dict] = []
        stride, prev, j = cfg.stem_stride, cfg.stages[0].dim, 0
        for i, s in enumerate(cfg.stages):
            layers: list[nn.Module] = []
            if s.downsample:
                layers += [_dw_ffn(prev), PatchMerging(prev, s.dim), _dw_ffn(s.dim)]
                stride *= 2
            for _ in range(s.depth):
                layers.append(MobileMambaBlock(s.dim, s.mixer, drop_path=dpr[j]))
                j += 1
            name = f"blocks{i + 1}"
            self.add_module(name, nn.Sequential(*layers))
            self.stage_names.append(name)
            self.feature_info.append({"num_chs": s.dim, "reduction": stride, "module": name})
            prev = s.dim
        self.head = BN_Linear(prev, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        if self.distillation:
            self.head_dist = BN_Linear(prev, cfg.num_classes)

    @property
    def stages(self) -> list[nn.Module]:
        return [getattr(self, n) for n in self.stage_names]

    def _check_size(self, x: torch.Tensor) -> None:
        """Clear error for inputs too small for the total stride (skipped while tracing, where
        sizes are tensors; tracing callers check their resolution first)."""
        if not torch.jit.is_tracing():
            check_input_size(self.cfg, tuple(int(v) for v in x.shape[-2:]))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check_size(x)
        x = self.patch_embed(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor | tuple[torch.Tensor, ...]:
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        if pre_logits:
            return x
        if not self.distillation:
            return self.head(x)
        out, out_dist = self.head(x), self.head_dist(x)
        if self.training and not torch.jit.is_scripting():
            return out, out_dist
        return (out + out_dist) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm convention: ``indices`` = last n stages (int) or stage indices (list)."""
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        n = len(self.stage_names)
        take = list(range(n - indices, n)) if isinstance(indices, int) else list(indices or range(n))
        take = [i + n if i < 0 else i for i in take]
        if any(not 0 <= i < n for i in take):
            raise ValueError(f"stage indices must be in [0, {n}), got {indices}")
        self._check_size(x)
        x = self.patch_embed(x)
        feats = []
        last = max(take) if (stop_early or intermediates_only) else n - 1
        for i, stage in enumerate(self.stages[: last + 1]):
            x = stage(x)
            if i in take:
                feats.append(x)
        if intermediates_only:
            return feats
        return x, feats

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = BN_Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if self.distillation:
            self.head_dist = BN_Linear(self.num_features, num_classes)

    def fuse(self) -> MobileMamba:
        """Fold every BatchNorm into its conv/linear, in place (eval mode only); returns self."""
        fuse_modules(self)
        return self
