"""Small layers, one idea each."""

from .basic import FFN, LayerNorm2d, Residual, ScaleModule, SqueezeExcite, make_divisible
from .conv_bn import BN_Linear, Conv2d_BN, fuse_conv_bn

__all__ = [
    "BN_Linear",
    "Conv2d_BN",
    "FFN",
    "LayerNorm2d",
    "Residual",
    "ScaleModule",
    "SqueezeExcite",
    "fuse_conv_bn",
    "make_divisible",
]
