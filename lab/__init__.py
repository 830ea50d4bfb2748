"""MobileMamba Lab: a typed, fully parameterised MobileMamba and the tools to ablate and search it."""

from .config import ConfigError, MixerConfig, ModelConfig, StageConfig, config_id
from .models import OFFICIAL_VARIANTS, build_model, get_config, load_checkpoint
from .models.build import _register_timm

_register_timm()

__all__ = [
    "OFFICIAL_VARIANTS",
    "ConfigError",
    "MixerConfig",
    "ModelConfig",
    "StageConfig",
    "build_model",
    "config_id",
    "get_config",
    "load_checkpoint",
]
