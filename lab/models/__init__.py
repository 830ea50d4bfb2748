"""MobileMamba models, presets, BN fusion, timm registration."""

from .build import build_model, get_config, load_checkpoint
from .fuse import fuse_modules
from .mobilemamba import MobileMamba, MobileMambaBlock, PatchMerging
from .presets import OFFICIAL_VARIANTS, PRESETS

__all__ = [
    "OFFICIAL_VARIANTS",
    "PRESETS",
    "MobileMamba",
    "MobileMambaBlock",
    "PatchMerging",
    "build_model",
    "fuse_modules",
    "get_config",
    "load_checkpoint",
]
