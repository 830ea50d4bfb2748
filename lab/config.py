"""Typed, frozen configuration of a MobileMamba network and its architecture id.

``ModelConfig`` -> ``StageConfig`` (one per stage) -> ``MixerConfig`` (the MRFFI module).
Every MRFFI design choice is a field; defaults are the official MobileMamba behaviour.
Validation happens at construction, with messages that name the field and the fix.

``config_id(cfg)`` hashes the *effective* architecture: channel splits after rounding, and
only the fields that change the built network (e.g. the wavelet type is dropped when the
wavelet branch is off), so two samples that build the same network share one id.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

SCAN_DIRECTIONS: dict[str, int] = {"fwd": 1, "bidi": 2, "cross": 4}
"""Scan modes: ``bidi`` = official "v052d" (row-major forward + reverse); ``cross`` = VMamba
cross-scan (row- and column-major, each forward + reverse); ``fwd`` = one forward raster scan."""

CHANNEL_ROUNDING = ("nearest16", "none")
STEM_STRIDES = (4, 8, 16)
MAX_WAVELET_LEVELS = 4


class ConfigError(ValueError):
    """A configuration value is out of its allowed range; the message names field and fix."""


def _fail(field_name: str, message: str) -> None:
    raise ConfigError(f"{field_name}: {message}")


@functools.cache
def _orthogonal_wavelets() -> tuple[str, ...]:
    import pywt

    return tuple(n for n in pywt.wavelist(kind="discrete") if pywt.Wavelet(n).orthogonal)


def round_global_channels(n: int, rule: str) -> int:
    """Official rule: nearest multiple of 16, halfway rounds up (``nearest16``); or ``none``."""
    if rule == "none":
        return n
    return ((n + 8) // 16) * 16


@dataclass(frozen=True)
class ChannelSplit:
    """Channels of one MRFFI module: ``[global | local | identity]`` in that order."""

    global_: int
    local: int
    identity: int


@dataclass(frozen=True, kw_only=True)
class MixerConfig:
    """The MRFFI module (token mixer) of one stage.

    - ``global_ratio``/``local_ratio``: shares of the channels for the WTE-Mamba (global) branch
      and the MK-DeConv (local) branch; the identity branch gets the remainder. Global channels
      are ``round(int(global_ratio*dim))`` by ``channel_rounding``; local ones ``int(local_ratio*dim)``,
      clipped to what is left (official rule).
    - ``local_kernels``: one odd kernel = the official depthwise conv; several = MK-DeConv, the
      local channels split into ``len(local_kernels)`` contiguous groups as evenly as possible
      (earlier groups take the remainder), one depthwise kernel per group.
    - ``wavelet_levels`` (0 disables the wavelet branch), ``wavelet_type`` (any orthogonal
      pywt wavelet, Haar ``db1`` official), ``wavelet_kernel`` (depthwise kernel in the wavelet
      domain; ``None`` = the largest local kernel, which is the official sharing).
    - ``ssm_ratio``, ``d_state``, ``scan`` (see ``SCAN_DIRECTIONS``), ``use_ssm`` (False = the
      global branch is wavelet-only: ``scale * x + wavelet(x)``).
    """

    global_ratio: float = 0.8
    local_ratio: float = 0.2
    local_kernels: tuple[int, ...] = (7,)
    wavelet_levels: int = 1
    wavelet_type: str = "db1"
    wavelet_kernel: int | None = None
    ssm_ratio: float = 2.0
    d_state: int = 1
    scan: str = "bidi"
    use_ssm: bool = True
    channel_rounding: str = "nearest16"

    def __post_init__(self) -> None:
        if isinstance(self.local_kernels, int):
            object.__setattr__(self, "local_kernels", (self.local_kernels,))
        elif isinstance(self.local_kernels, list):
            object.__setattr__(self, "local_kernels", tuple(self.local_kernels))
        for name in ("global_ratio", "local_ratio"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                _fail(name, f"must be a number in [0, 1], got {v!r}")
        if self.global_ratio + self.local_ratio > 1.0 + 1e-9:
            _fail(
                "global_ratio + local_ratio",
                f"must be <= 1 (identity takes the rest), got {self.global_ratio} + {self.local_ratio}; "
                "lower one of them",
            )
        if not self.local_kernels:
            _fail("local_kernels", "needs at least one kernel size, e.g. (3,) or (3, 5, 7)")
        for k in self.local_kernels:
            if not isinstance(k, int) or k < 1 or k % 2 == 0:
                _fail("local_kernels", f"kernel sizes must be odd positive ints (1, 3, 5, ...), "
                      f"got {self.local_kernels}")
        if self.wavelet_kernel is not None and (
            not isinstance(self.wavelet_kernel, int) or self.wavelet_kernel < 1 or self.wavelet_kernel % 2 == 0
        ):
            _fail("wavelet_kernel", f"must be an odd positive int or None, got {self.wavelet_kernel!r}")
        if not isinstance(self.wavelet_levels, int) or not 0 <= self.wavelet_levels <= MAX_WAVELET_LEVELS:
            _fail("wavelet_levels", f"must be an int in 0..{MAX_WAVELET_LEVELS} (0 = no wavelet branch), "
                  f"got {self.wavelet_levels!r}")
        if self.wavelet_type not in _orthogonal_wavelets():
            sample = ", ".join(_orthogonal_wavelets()[:8])
            _fail("wavelet_type", f"{self.wavelet_type!r} is not an orthogonal pywt wavelet; use e.g. {sample}, ...")
        if not isinstance(self.ssm_ratio, (int, float)) or self.ssm_ratio <= 0:
            _fail("ssm_ratio", f"must be > 0, got {self.ssm_ratio!r}")
        if not isinstance(self.d_state, int) or self.d_state < 1:
            _fail("d_state", f"must be an int >= 1, got {self.d_state!r}")
        if self.scan not in SCAN_DIRECTIONS:
            _fail("scan", f"must be one of {sorted(SCAN_DIRECTIONS)}, got {self.scan!r}")
        if self.channel_rounding not in CHANNEL_ROUNDING:
            _fail("channel_rounding", f"must be one of {CHANNEL_ROUNDING}, got {self.channel_rounding!r}")
        if not self.use_ssm and self.wavelet_levels == 0 and self.global_ratio > 0:
            _fail("use_ssm", "with wavelet_levels=0 and use_ssm=False the global branch computes nothing; "
                  "set global_ratio=0 instead (or enable one of them)")

    @property
    def effective_wavelet_kernel(self) -> int:
        return self.wavelet_kernel if self.wavelet_kernel is not None else max(self.local_kernels)

    @property
    def directions(self) -> int:
        return SCAN_DIRECTIONS[self.scan]

    def split(self, dim: int) -> ChannelSplit:
        """Channel split at width ``dim`` (official rounding and clipping rules)."""
        g = round_global_channels(int(self.global_ratio * dim), self.channel_rounding)
        loc = int(self.local_ratio * dim)
        if g + loc > dim:
            loc = dim - g
        return ChannelSplit(global_=g, local=loc, identity=dim - g - loc)


def split_kernel_groups(channels: int, n_groups: int) -> tuple[int, ...]:
    """MK-DeConv rule: ``channels`` split into ``n_groups`` contiguous groups, sizes differing by
    at most one, the earlier groups taking the remainder (28 over 3 kernels -> 10, 9, 9)."""
    base, rem = divmod(channels, n_groups)
    return tuple(base + (1 if i < rem else 0) for i in range(n_groups))


@dataclass(frozen=True, kw_only=True)
class StageConfig:
    """One stage: ``depth`` MobileMamba blocks at width ``dim``. ``downsample`` (all stages but
    the first) prepends the official DW+FFN, PatchMerging(+SE), DW+FFN transition."""

    dim: int
    depth: int
    mixer: MixerConfig = field(default_factory=MixerConfig)
    downsample: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.dim, int) or self.dim <= 0:
            _fail("dim", f"stage width must be a positive int, got {self.dim!r}")
        if not isinstance(self.depth, int) or self.depth < 0:
            _fail("depth", f"stage depth must be an int >= 0, got {self.depth!r}")
        if isinstance(self.mixer, dict):
            object.__setattr__(self, "mixer", MixerConfig(**self.mixer))
        if self.depth == 0:
            return
        m = self.mixer
        s = m.split(self.dim)
        if s.global_ > self.dim:
            _fail("mixer.global_ratio", f"{m.global_ratio} at dim {self.dim} rounds to {s.global_} global channels "
                  f"> dim; lower global_ratio or use channel_rounding='none'")
        if s.local and s.local < len(m.local_kernels):
            _fail("mixer.local_kernels", f"{len(m.local_kernels)} kernels need at least as many local channels, "
                  f"but dim {self.dim} x local_ratio {m.local_ratio} gives {s.local}; use fewer kernels")
        if s.global_ and m.use_ssm and int(m.ssm_ratio * s.global_) < 1:
            _fail("mixer.ssm_ratio", f"{m.ssm_ratio} x {s.global_} global channels gives no SSM channel; raise it")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """A whole network. ``stages[0].downsample`` must be False (the stem feeds it directly).

    ``img_size`` is the native resolution (used for FLOPs, validation of the total stride and
    as the default input size); ``stem_stride`` is 16 officially (four stride-2 convs), 8 or 4
    for low-resolution proxies (the last convs of the stem then keep stride 1).
    ``name`` and ``img_size`` are not part of ``config_id``.
    """

    stages: tuple[StageConfig, ...]
    name: str = "custom"
    img_size: int = 224
    in_chans: int = 3
    num_classes: int = 1000
    stem_stride: int = 16
    drop_path: float = 0.0
    distillation: bool = False

    def __post_init__(self) -> None:
        stages = tuple(StageConfig(**s) if isinstance(s, dict) else s for s in self.stages)
        object.__setattr__(self, "stages", stages)
        if not stages:
            _fail("stages", "needs at least one stage")
        if stages[0].downsample:
            _fail("stages[0].downsample", "the first stage follows the stem and cannot downsample; set it False")
        for i, (prev, cur) in enumerate(zip(stages, stages[1:]), start=1):
            if not cur.downsample and cur.dim != prev.dim:
                _fail(f"stages[{i}].dim", f"a stage without downsample keeps the width ({prev.dim}), got {cur.dim}")
        if stages[0].dim < 8:
            _fail("stages[0].dim", f"the stem uses widths dim//8, dim//4, dim//2, so dim must be >= 8, "
                  f"got {stages[0].dim}")
        if not isinstance(self.in_chans, int) or self.in_chans < 1:
            _fail("in_chans", f"must be a positive int, got {self.in_chans!r}")
        if not isinstance(self.num_classes, int) or self.num_classes < 0:
            _fail("num_classes", f"must be an int >= 0 (0 = no head), got {self.num_classes!r}")
        if self.stem_stride not in STEM_STRIDES:
            _fail("stem_stride", f"must be one of {STEM_STRIDES}, got {self.stem_stride!r}")
        if not 0.0 <= self.drop_path < 1.0:
            _fail("drop_path", f"must be in [0, 1), got {self.drop_path!r}")
        check_input_size(self, self.img_size)

    @property
    def total_stride(self) -> int:
        return self.stem_stride * 2 ** sum(1 for s in self.stages if s.downsample)

    def replace(self, **changes: Any) -> ModelConfig:
        """``dataclasses.replace`` with validation."""
        return dataclasses.replace(self, **changes)

    def with_mixer(self, **changes: Any) -> ModelConfig:
        """The same network with ``changes`` applied to the mixer of every stage."""
        stages = tuple(dataclasses.replace(s, mixer=dataclasses.replace(s.mixer, **changes)) for s in self.stages)
        return dataclasses.replace(self, stages=stages)

    def with_stage_mixer(self, index: int, **changes: Any) -> ModelConfig:
        """The same network with ``changes`` applied to the mixer of stage ``index`` only."""
        stages = list(self.stages)
        s = stages[index]
        stages[index] = dataclasses.replace(s, mixer=dataclasses.replace(s.mixer, **changes))
        return dataclasses.replace(self, stages=tuple(stages))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; ``ModelConfig.from_dict`` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        d = dict(d)
        stages = []
        for s in d.pop("stages"):
            s = dict(s)
            mixer = dict(s.pop("mixer"))
            mixer["local_kernels"] = tuple(mixer["local_kernels"])
            stages.append(StageConfig(mixer=MixerConfig(**mixer), **s))
        return cls(stages=tuple(stages), **d)

    def effective(self) -> dict[str, Any]:
        """What the built network depends on (the content hashed by ``config_id``)."""
        stages = []
        for s in self.stages:
            entry: dict[str, Any] = {"dim": s.dim, "depth": s.depth, "downsample": s.downsample}
            if s.depth:
                entry["mixer"] = _effective_mixer(s.mixer, s.dim)
            stages.append(entry)
        return {
            "stages": stages,
            "in_chans": self.in_chans,
            "num_classes": self.num_classes,
            "stem_stride": self.stem_stride,
            "drop_path": round(float(self.drop_path), 6) if sum(s.depth for s in self.stages) else 0.0,
            "distillation": self.distillation and self.num_classes > 0,
        }


def _effective_mixer(m: MixerConfig, dim: int) -> dict[str, Any]:
    s = m.split(dim)
    out: dict[str, Any] = {"global": s.global_, "local": s.local, "identity": s.identity}
    if s.local:
        out["local_groups"] = [
            [k, c] for k, c in zip(m.local_kernels, split_kernel_groups(s.local, len(m.local_kernels))) if c
        ]
    if s.global_:
        out["wavelet_levels"] = m.wavelet_levels
        if m.wavelet_levels:
            out["wavelet_type"] = "db1" if m.wavelet_type == "haar" else m.wavelet_type
            out["wavelet_kernel"] = m.effective_wavelet_kernel
        out["use_ssm"] = m.use_ssm
        if m.use_ssm:
            out["d_inner"] = int(m.ssm_ratio * s.global_)
            out["d_state"] = m.d_state
            out["scan"] = m.scan
            out["dt_rank"] = math.ceil(s.global_ / 16)
    return out


def config_id(cfg: ModelConfig) -> str:
    """sha1 (first 12 hex digits) of the canonical JSON of ``cfg.effective()``."""
    blob = json.dumps(cfg.effective(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def check_input_size(cfg: ModelConfig, size: int | tuple[int, int]) -> None:
    """Raise ``ConfigError`` when an input of ``size`` px would shrink below 1x1 in the last stage."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if any(not isinstance(v, int) or v < 1 for v in hw):
        _fail("img_size", f"must be positive ints, got {size!r}")
    need = cfg.total_stride
    if min(hw) < need:
        _fail("img_size", f"{size} px is smaller than the total stride {need} (stem_stride {cfg.stem_stride} x "
              f"2 per downsampling stage); use a larger input or a smaller stem_stride ({STEM_STRIDES})")


def stage_resolutions(cfg: ModelConfig, size: int) -> list[int]:
    """Feature-map side per stage for a square input (stride-2, pad-1 convs: ceil division)."""
    r = size
    for _ in range(int(math.log2(cfg.stem_stride))):
        r = (r + 1) // 2
    out = []
    for s in cfg.stages:
        if s.downsample:
            r = (r + 1) // 2
        out.append(r)
    return out
