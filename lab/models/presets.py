"""Presets: the six official MobileMamba variants (exact official configs) and tiny test/proxy nets."""

from __future__ import annotations

from ..config import MixerConfig, ModelConfig, StageConfig
from ..registry import Registry

PRESETS: Registry[ModelConfig] = Registry("model preset")

OFFICIAL_RATIOS = ((0.8, 0.2), (0.7, 0.2), (0.6, 0.3))
OFFICIAL_KERNELS = (7, 5, 3)


def official(
    name: str,
    dims: tuple[int, ...],
    depths: tuple[int, ...],
    *,
    img_size: int,
    drop_path: float = 0.0,
    stem_stride: int = 16,
    ratios: tuple[tuple[float, float], ...] = OFFICIAL_RATIOS,
    kernels: tuple[int, ...] = OFFICIAL_KERNELS,
) -> ModelConfig:
    """A MobileMamba with the official per-stage ratios (0.8/0.2, 0.7/0.2, 0.6/0.3) and kernels (7, 5, 3)."""
    stages = tuple(
        StageConfig(
            dim=d,
            depth=n,
            downsample=i > 0,
            mixer=MixerConfig(global_ratio=g, local_ratio=lr, local_kernels=(k,)),
        )
        for i, (d, n, (g, lr), k) in enumerate(zip(dims, depths, ratios, kernels))
    )
    return ModelConfig(
        name=name, stages=stages, img_size=img_size, drop_path=drop_path, stem_stride=stem_stride
    )


for _cfg in (
    official("mobilemamba_t2", (144, 272, 368), (1, 2, 2), img_size=192),
    official("mobilemamba_t4", (176, 368, 448), (1, 2, 2), img_size=192),
    official("mobilemamba_s6", (192, 384, 448), (1, 2, 2), img_size=224),
    official("mobilemamba_b1", (200, 376, 448), (2, 3, 2), img_size=256, drop_path=0.03),
    official("mobilemamba_b2", (200, 376, 448), (2, 3, 2), img_size=384, drop_path=0.03),
    official("mobilemamba_b4", (200, 376, 448), (2, 3, 2), img_size=512, drop_path=0.03),
    # Small nets for tests and 64 px proxies: official ratios/kernels, stem stride 4.
    official("mobilemamba_tiny", (32, 64, 96), (1, 1, 1), img_size=64, stem_stride=4),
    official("mobilemamba_t2_proxy", (144, 272, 368), (1, 2, 2), img_size=64, stem_stride=4),
):
    PRESETS.register(_cfg.name, _cfg)

OFFICIAL_VARIANTS = ("mobilemamba_t2", "mobilemamba_t4", "mobilemamba_s6", "mobilemamba_b1", "mobilemamba_b2",
                     "mobilemamba_b4")
