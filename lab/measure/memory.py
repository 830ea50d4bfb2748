"""Peak memory of one inference forward and of one training step.

CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (absolute: weights,
input and activations; ``baseline_mb`` is what was allocated before the step).

CPU: the increase of the process's peak resident set size (RSS) over its RSS right before the
step. On Linux the peak is reset by writing ``5`` to ``/proc/self/clear_refs`` and read from
``VmHWM`` (exact); elsewhere a thread samples the RSS every millisecond (may miss short peaks).
Caveat: memory that the C allocator kept from earlier work is reused without raising the RSS,
so on CPU the number is a lower bound that is most faithful in a fresh process or before timing.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .throughput import autocast, check_precision, inference_copy, make_input, resolve_device, run_with_batch_backoff

MB = 2**20
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class PeakMemory:
    """``peak_mb`` is the reported number (CUDA: max allocated; CPU: RSS increase); ``kind`` says which."""

    peak_mb: float
    baseline_mb: float
    kind: str


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (Linux >= 4.0); False when not possible here."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    hwm, rss = _status_kb("VmHWM"), _status_kb("VmRSS")
    return hwm is not None and rss is not None and hwm <= rss + 1024


def _rss_bytes() -> int:
    kb = _status_kb("VmRSS")
    if kb is not None:
        return kb * 1024
    import resource  # no /proc: fall back to the lifetime peak (Unix), the best available

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_memory(fn: Callable[[], Any], *, device: torch.device | str = "cpu") -> PeakMemory:
    """Run ``fn()`` once and report its peak memory on ``device`` (see module docstring)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        fn()
        torch.cuda.synchronize(dev)
        return PeakMemory(torch.cuda.max_memory_allocated(dev) / MB, base / MB, "cuda_max_allocated")
    if _reset_peak_rss():
        base = _rss_bytes()
        fn()
        peak = (_status_kb("VmHWM") or 0) * 1024
        return PeakMemory(max(peak - base, 0) / MB, base / MB, "cpu_rss_increase_hwm")
    base = _rss_bytes()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.001):
            peak[0] = max(peak[0], _rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    peak[0] = max(peak[0], _rss_bytes())
    return PeakMemory(max(peak[0] - base, 0) / MB, base / MB, "cpu_rss_increase_sampled")


def inference_memory(
    model: nn.Module,
    *,
    res: int,
    batch: int,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    fused: bool = True,
    channels_last: bool = False,
    in_chans: int = 3,
) -> dict[str, Any]:
    """Peak memory of one inference forward of a prepared copy (with OOM batch back-off)."""
    dev = resolve_device(device)
    check_precision(precision, dev)
    net, _ = inference_copy(model, device=dev, fused=fused, channels_last=channels_last, compile=False)

    def run(b: int) -> PeakMemory:
        x = make_input(b, in_chans, res, device=dev, channels_last=channels_last)

        def step() -> None:
            with torch.inference_mode(), autocast(precision, dev):
                net(x)

        return peak_memory(step, device=dev)

    mem, used, _ = run_with_batch_backoff(run, batch=batch)
    return {"peak_mem_mb": mem.peak_mb, "peak_mem_baseline_mb": mem.baseline_mb, "peak_mem_kind": mem.kind,
            "peak_mem_batch": used}


def train_step_memory(
    model: nn.Module,
    *,
    res: int,
    batch: int,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    in_chans: int = 3,
) -> dict[str, Any]:
    """Peak memory of one training step of an unfused train-mode copy: forward, ``mean(out**2)``
    loss, backward, SGD step (timm benchmark.py's train default optimizer); OOM back-off."""
    dev = resolve_device(device)
    check_precision(precision, dev)
    net = copy.deepcopy(model).train().to(dev)
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters: no training step to measure")
    opt = torch.optim.SGD(params, lr=1e-3)

    def run(b: int) -> PeakMemory:
        x = make_input(b, in_chans, res, device=dev, channels_last=False)

        def step() -> None:
            with autocast(precision, dev):
                out = net(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
            loss = out.float().square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return peak_memory(step, device=dev)

    mem, used, _ = run_with_batch_backoff(run, batch=batch)
    return {"peak_mem_train_mb": mem.peak_mb, "peak_mem_train_baseline_mb": mem.baseline_mb,
            "peak_mem_train_kind": mem.kind, "peak_mem_train_batch": used}
