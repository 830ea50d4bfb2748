"""Proxy-evaluation data: ImageNet-style subsets, a decode-once cache, and a synthetic default.

Typical use::

    spec = DataSpec(root="data/synth", num_classes=10, train_per_class=200, resolution=64)
    data = load_proxy_data(spec)          # validates, caches, returns ProxyData
"""

from lab.data.imagenet_subset import DataError, DataSpec, SubsetFiles, load_class_list, resolve_subset
from lab.data.proxy_data import ProxyData, load_proxy_data
from lab.data.synthetic import SynthSpec, generate

__all__ = [
    "DataError",
    "DataSpec",
    "ProxyData",
    "SubsetFiles",
    "SynthSpec",
    "generate",
    "load_class_list",
    "load_proxy_data",
    "resolve_subset",
]
