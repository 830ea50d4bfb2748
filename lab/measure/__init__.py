"""Cost measurements: parameters, FLOPs (paper convention and full), throughput/latency, memory.

Entry points: ``measure(model_or_cfg, res=..., what=(...))`` -> one JSON-able row, and
``MeasureCache`` so a sweep never measures the same network twice. The CLI is ``lab measure``.
"""

from .api import WHAT, ResolvedModel, measure, resolve_model
from .cache import DEFAULT_CACHE_DIR, MeasureCache
from .env import env_fingerprint, environment
from .flops import FlopCount, UnsupportedOpWarning, count_flops, flop_counter_mode_macs, scan_flops
from .params import ParamCounts, param_counts
from .throughput import PRECISIONS, Protocol, StepTimes, benchmark_inference, default_protocol, time_steps

__all__ = [
    "DEFAULT_CACHE_DIR",
    "PRECISIONS",
    "WHAT",
    "FlopCount",
    "MeasureCache",
    "ParamCounts",
    "Protocol",
    "ResolvedModel",
    "StepTimes",
    "UnsupportedOpWarning",
    "benchmark_inference",
    "count_flops",
    "default_protocol",
    "env_fingerprint",
    "environment",
    "flop_counter_mode_macs",
    "measure",
    "param_counts",
    "resolve_model",
    "scan_flops",
    "time_steps",
]
