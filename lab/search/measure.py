"""Cost measurements of one trial's network: params, FLOPs (paper convention), throughput, latency.

Thin adapter over ``lab.measure`` (parameter counts, fvcore paper-convention FLOPs, timm-protocol
timing) with the sweep's ``MeasureCache`` keyed by ``config_id``: a network measured once (in
this or any earlier sweep on the same machine) is not measured again. When ``lab.measure.flops``
cannot be imported, FLOPs fall back to ``torch.utils.flop_counter.FlopCounterMode`` / 2 and the
result says so (``flops_method``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lab.search.experiment import MeasureSpec


def _cache(cache_dir: str | Path | None) -> Any:
    if cache_dir is None:
        return None
    from lab.measure.cache import MeasureCache

    return MeasureCache(cache_dir)


def count_costs(model: nn.Module, *, config_id: str, res: int, cache_dir: str | Path | None) -> dict[str, Any]:
    """``{"params", "flops", "flops_method"}`` for ``model`` at ``res`` px (batch 1, unfused, eval)."""
    from lab.measure.params import count_parameters

    def compute() -> dict[str, Any]:
        params = count_parameters(model)
        try:
            from lab.measure.flops import count_flops
        except ImportError:  # fallback, clearly marked in the row
            from torch.utils.flop_counter import FlopCounterMode

            was = model.training
            model.eval()
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                model(torch.randn(1, 3, res, res))
            model.train(was)
            return {"params": params, "flops": counter.get_total_flops() // 2, "flops_method": "FlopCounterMode/2"}
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flops = count_flops(model, res=res, warn=False).paper
        return {"params": params, "flops": int(flops), "flops_method": "fvcore-paper"}

    cache = _cache(cache_dir)
    if cache is None:
        return compute()
    value, _ = cache.get_or_compute(compute, config_id=config_id, res=res, what="search.costs")
    return value


def time_model(model: nn.Module, *, config_id: str, res: int, spec: MeasureSpec,
               cache_dir: str | Path | None) -> dict[str, float]:
    """``{"throughput" (img/s), "latency_ms"}`` on CPU with ``spec``'s protocol (NaN when timing is off)."""
    if not spec.timing:
        return {"throughput": math.nan, "latency_ms": math.nan}
    from lab.measure.env import env_fingerprint
    from lab.measure.throughput import Protocol, benchmark_inference

    protocol = Protocol(batch=spec.throughput_batch, warmup=spec.warmup, iters=spec.iters,
                        latency_warmup=spec.warmup, latency_iters=spec.iters, threads=spec.threads,
                        fused=spec.fused)

    def compute() -> dict[str, Any]:
        out = benchmark_inference(model, res=res, protocol=protocol, device="cpu")
        return {"throughput": float(out["throughput"]), "latency_ms": float(out["latency_ms"])}

    cache = _cache(cache_dir)
    if cache is None:
        return compute()
    value, _ = cache.get_or_compute(compute, config_id=config_id, res=res, what="search.timing",
                                    options=protocol.to_dict(), env=env_fingerprint("cpu"))
    return value
