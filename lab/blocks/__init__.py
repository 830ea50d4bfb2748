"""MobileMamba blocks: MRFFI and its branches (WTE-Mamba wavelet + SS2D, MK-DeConv)."""

from .mkconv import DWConv2d_BN_ReLU, MultiKernelDWConv
from .mrffi import MRFFI
from .ss2d import SS2D
from .wavelet import MBWTConv2d, inverse_wavelet_transform, wavelet_filters, wavelet_transform

__all__ = [
    "DWConv2d_BN_ReLU",
    "MBWTConv2d",
    "MRFFI",
    "MultiKernelDWConv",
    "SS2D",
    "inverse_wavelet_transform",
    "wavelet_filters",
    "wavelet_transform",
]
