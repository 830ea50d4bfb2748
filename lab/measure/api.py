"""``measure(...)``: one call per network, one JSON-able row back (the API the sweeps use).

A model is named by a lab preset (``mobilemamba_t2``), any timm model name (``resnet18``), a
``ModelConfig``, or given as an ``nn.Module``. ``what`` picks the measurements:

- ``"params"``: ``params`` (total, official convention), ``params_trainable``, ``params_fused``;
- ``"flops"``: ``flops`` (paper convention), ``flops_full``, ``flops_scan``, ``unsupported_ops``, ...;
- ``"throughput"``: ``throughput`` (img/s), ``latency_ms`` (batch 1), min/max, batch used, ...;
- ``"memory"``: ``peak_mem_mb`` (inference forward) and ``peak_mem_train_mb`` (one training step).

Every row carries ``model``, ``config_id``, ``res`` and ``env`` (device name, versions,
``TRITON_INTERPRET``, git sha, timestamp, batch, precision, fused, threads). With a
``MeasureCache`` each part is looked up by (config_id, res, part + options, environment) first.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .cache import MeasureCache
from .env import env_fingerprint, environment
from .flops import count_flops, scan_op_name
from .memory import inference_memory, train_step_memory
from .params import param_counts
from .throughput import check_precision, default_protocol, resolve_device

WHAT: tuple[str, ...] = ("params", "flops", "throughput", "memory")
COUNT_VERSION = 1
"""Bump when the parameter or FLOP conventions change: cached counts then miss."""


@dataclass(frozen=True, kw_only=True)
class ResolvedModel:
    """A model ready to measure, with its identity."""

    module: nn.Module
    name: str
    config_id: str | None
    native_res: int
    in_chans: int
    source: str  # "lab", "timm" or "module"


def _lab_presets() -> list[str]:
    from lab.models import PRESETS

    return PRESETS.names()


def resolve_model(model_or_cfg: str | nn.Module | Any, *, num_classes: int | None = None) -> ResolvedModel:
    """Build/identify the network: lab preset name, timm model name, ``ModelConfig`` or ``nn.Module``."""
    from lab.config import ModelConfig
    from lab.models import build_model, get_config

    extra = {} if num_classes is None else {"num_classes": num_classes}
    if isinstance(model_or_cfg, str):
        name = model_or_cfg
        if name in _lab_presets():
            cfg = get_config(name)
            module = build_model(cfg, **extra)
            return ResolvedModel(module=module, name=name, config_id=module.config_id, native_res=cfg.img_size,
                                 in_chans=cfg.in_chans, source="lab")
        import timm

        if timm.is_model(name):
            module = timm.create_model(name, pretrained=False, **extra)
            size = (getattr(module, "pretrained_cfg", None) or {}).get("input_size", (3, 224, 224))
            cid = f"timm:{name}" + ("" if num_classes is None else f":num_classes={num_classes}")
            return ResolvedModel(module=module, name=name, config_id=cid, native_res=int(size[-1]),
                                 in_chans=int(size[0]), source="timm")
        known = _lab_presets() + timm.list_models()
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown model {name!r}: neither a lab preset ({', '.join(_lab_presets())}) nor a timm "
                       f"model name.{hint}")
    if isinstance(model_or_cfg, ModelConfig):
        module = build_model(model_or_cfg, **extra)
        return ResolvedModel(module=module, name=model_or_cfg.name, config_id=module.config_id,
                             native_res=model_or_cfg.img_size, in_chans=model_or_cfg.in_chans, source="lab")
    if isinstance(model_or_cfg, nn.Module):
        if num_classes is not None:
            raise ValueError("num_classes cannot be applied to an already built nn.Module; build it with them")
        cfg = getattr(model_or_cfg, "cfg", None)
        name = getattr(cfg, "name", None) or type(model_or_cfg).__name__
        pcfg = getattr(model_or_cfg, "pretrained_cfg", None) or {}
        native = getattr(cfg, "img_size", None) or int(pcfg.get("input_size", (3, 224, 224))[-1])
        in_chans = getattr(cfg, "in_chans", None) or int(pcfg.get("input_size", (3,))[0])
        return ResolvedModel(module=model_or_cfg, name=name, config_id=getattr(model_or_cfg, "config_id", None),
                             native_res=native, in_chans=in_chans, source="module")
    raise TypeError(f"measure takes a model name, a ModelConfig or an nn.Module, got {type(model_or_cfg).__name__}")


def check_res(resolved: ResolvedModel, res: Any) -> int:
    """``res`` as an int, or a ValueError that says why the network cannot run at it."""
    if not isinstance(res, int) or isinstance(res, bool) or res < 1:
        raise ValueError(f"resolution must be a positive int (pixels), got {res!r}")
    cfg = getattr(resolved.module, "cfg", None)
    if cfg is not None and hasattr(cfg, "total_stride"):
        from lab.config import check_input_size

        check_input_size(cfg, res)
    return res


def _parts(what: str | Iterable[str]) -> tuple[str, ...]:
    parts = (what,) if isinstance(what, str) else tuple(what)
    unknown = [p for p in parts if p not in WHAT]
    if unknown or not parts:
        raise ValueError(f"unknown measurement(s) {unknown or parts}; choose from {', '.join(WHAT)}")
    return tuple(p for p in WHAT if p in parts)


def measure(
    model_or_cfg: str | nn.Module | Any,
    *,
    res: int | None = None,
    what: str | Iterable[str] = ("params", "flops"),
    device: str | torch.device = "cpu",
    num_classes: int | None = None,
    cache: MeasureCache | None = None,
    train_memory: bool = True,
    **protocol: Any,
) -> dict[str, Any]:
    """Measure one network at ``res`` px (default: its native resolution); see the module docstring.

    ``protocol`` overrides the timing defaults of ``throughput.default_protocol`` (``batch``,
    ``warmup``, ``iters``, ``latency_warmup``, ``latency_iters``, ``threads``, ``precision``, ``fused``,
    ``channels_last``, ``compile``). ``cache`` (optional) skips parts measured before.
    """
    parts = _parts(what)
    timing = any(p in parts for p in ("throughput", "memory"))
    dev = resolve_device(device)
    proto = default_protocol(dev, **protocol)
    if timing:
        check_precision(proto.precision, dev)
    resolved = resolve_model(model_or_cfg, num_classes=num_classes)
    res = check_res(resolved, resolved.native_res if res is None else res)
    model = resolved.module
    cacheable = cache is not None and resolved.config_id is not None
    fingerprint = env_fingerprint(dev) if timing else {}
    row: dict[str, Any] = {"model": resolved.name, "config_id": resolved.config_id, "res": res,
                           "device": dev.type, "cached": []}

    def part(name: str, options: dict[str, Any], env: dict[str, Any], compute: Any) -> dict[str, Any]:
        if not cacheable:
            return dict(compute())
        value, hit = cache.get_or_compute(compute, config_id=resolved.config_id, res=res, what=name,
                                          options=options, env=env)
        if hit:
            row["cached"].append(name)
        return value

    if "params" in parts:
        def params() -> dict[str, Any]:
            c = param_counts(model)
            return {"params": c.total, "params_trainable": c.trainable, "params_fused": c.fused}

        row.update(part("params", {"v": COUNT_VERSION}, {}, params))
    if "flops" in parts:
        opts = {"v": COUNT_VERSION, "batch": 1, "scan_op": scan_op_name(), "torch": torch.__version__}
        row.update(part("flops", opts, {},
                        lambda: count_flops(model, res=res, batch=1, in_chans=resolved.in_chans).to_dict()))
    timing_env: dict[str, Any] | None = None
    if "memory" in parts:
        opts = {"v": COUNT_VERSION, "batch": proto.batch, "precision": proto.precision, "fused": proto.fused,
                "channels_last": proto.channels_last, "train": train_memory, "threads": proto.threads}

        def memory() -> dict[str, Any]:
            from .throughput import num_threads

            with num_threads(proto.threads):
                out = inference_memory(model, res=res, batch=proto.batch, device=dev, precision=proto.precision,
                                       fused=proto.fused, channels_last=proto.channels_last,
                                       in_chans=resolved.in_chans)
                if train_memory:
                    out |= train_step_memory(model, res=res, batch=proto.batch, device=dev,
                                             precision=proto.precision, in_chans=resolved.in_chans)
            return out

        row.update(part("memory", opts, fingerprint, memory))
    if "throughput" in parts:
        from .throughput import benchmark_inference

        def throughput() -> dict[str, Any]:
            out = benchmark_inference(model, res=res, protocol=proto, device=dev, in_chans=resolved.in_chans)
            out["measured_env"] = environment(device=dev, threads=out["threads"], precision=proto.precision,
                                              fused=out["fused"], batch=out["batch"])
            return out

        value = part("throughput", {"v": COUNT_VERSION, **proto.to_dict()}, fingerprint, throughput)
        timing_env = value.pop("measured_env", None)
        row.update(value)
    if timing:
        row["protocol"] = proto.to_dict()
    row["env"] = timing_env or environment(
        device=dev,
        threads=proto.threads if timing else torch.get_num_threads(),
        precision=proto.precision if timing else "fp32",
        fused=proto.fused if timing else False,
        batch=proto.batch if timing else 1,
    )
    for key in ("batch", "precision", "fused", "threads"):
        row.setdefault(key, row["env"].get(key))
    return row
