"""``build_model`` / ``get_config``, checkpoint loading, and registration with timm."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError, ModelConfig
from .mobilemamba import MobileMamba
from .presets import PRESETS

RUNTIME_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name != "stages")


def get_config(name: str) -> ModelConfig:
    """The frozen config of a preset (``mobilemamba_t2`` ... ``mobilemamba_b4``, ``mobilemamba_tiny``, ...)."""
    return PRESETS.get(name)


def build_model(name_or_config: str | ModelConfig, **runtime: Any) -> MobileMamba:
    """Build a MobileMamba from a preset name or a ``ModelConfig``; ``runtime`` overrides
    top-level fields (``num_classes=10``, ``img_size=64``, ``drop_path=0.1``, ``stem_stride=4``, ...)."""
    cfg = get_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"build_model takes a preset name or a ModelConfig, got {type(cfg).__name__}")
    unknown = sorted(set(runtime) - set(RUNTIME_FIELDS))
    if unknown:
        raise ConfigError(f"build_model: unknown option(s) {unknown}; allowed: {', '.join(RUNTIME_FIELDS)} "
                          "(change stages with ModelConfig.replace / with_mixer)")
    if runtime:
        cfg = cfg.replace(**runtime)
    return MobileMamba(cfg)


def load_checkpoint(model: torch.nn.Module, path: str | Path, *, ema: bool = False, strict: bool = True) -> None:
    """Load an official (or lab) checkpoint: a bare state_dict or one wrapped under ``net``/``model``/
    ``state_dict`` (``net_E`` = the EMA weights when ``ema``); a ``module.`` prefix is stripped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    keys = ("net_E", "net", "model", "state_dict") if ema else ("net", "model", "state_dict")
    for k in keys:
        if isinstance(obj, dict) and isinstance(obj.get(k), dict):
            obj = obj[k]
            break
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}
    model.load_state_dict(state, strict=strict)


def _register_timm() -> None:
    """Make every preset a timm model: ``timm.create_model("mobilemamba_t2", num_classes=10)``.
    ``pretrained=True`` needs a local file: ``pretrained_cfg_overlay=dict(file="...pth")``."""
    from timm.models import register_model
    from timm.models._registry import is_model

    for name in PRESETS:
        if is_model(name):
            continue

        def entry(pretrained: bool = False, *, _name: str = name, **kwargs: Any) -> MobileMamba:
            overlay = kwargs.pop("pretrained_cfg_overlay", None) or {}
            kwargs.pop("pretrained_cfg", None)
            kwargs.pop("cache_dir", None)  # timm housekeeping: nothing is downloaded here
            strict = kwargs.pop("pretrained_strict", True)
            if "drop_path_rate" in kwargs:
                kwargs["drop_path"] = kwargs.pop("drop_path_rate")
            if kwargs.pop("drop_rate", 0.0):
                raise ValueError(f"{_name} has no head dropout (drop_rate); use drop_path_rate")
            model = build_model(_name, **kwargs)
            if pretrained:
                file = overlay.get("file")
                if not file:
                    raise ValueError(
                        f"{_name}: no weights can be downloaded here; pass a local checkpoint with "
                        f"pretrained_cfg_overlay=dict(file='path/to/{_name}.pth')"
                    )
                load_checkpoint(model, file, strict=strict)
            return model

        entry.__name__ = name
        entry.__qualname__ = name
        entry.__module__ = __name__
        entry.__doc__ = f"MobileMamba preset {name} (see lab.get_config('{name}'))."
        register_model(entry)
