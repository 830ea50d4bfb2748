"""Throughput and latency by timm's ``benchmark.py`` protocol.

Protocol: prepare an inference copy of the model (eval, BN folded when ``fused``, optional
``channels_last`` / ``torch.compile``), run ``warmup`` untimed steps, synchronise, then time
``iters`` steps one by one, each ended by a device synchronisation (``torch.cuda.synchronize``
on CUDA), under ``torch.inference_mode`` and the chosen autocast. Reported: min / median / max
step time, throughput = batch / median step time (images/s), latency = median step time at
batch 1 (ms). On out-of-memory the batch backs off with ``timm.utils.decay_batch_step`` (256,
192, 128, 96, ...) and the run restarts; the batch actually used and the ones that failed are
recorded.

Defaults (``default_protocol``): the official protocol on GPU (batch 256, fp32, fused, 50
warm-up + 20 timed steps); on CPU batch 16, 5 warm-up + 10 timed steps and ONE thread, because
one thread gives the most repeatable numbers on a shared machine and ranks networks the same way
as the batch-16 multi-thread number up to noise. Pass ``threads=`` to change it; the thread
count used is always recorded.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

PRECISIONS: tuple[str, ...] = ("fp32", "amp-bf16", "amp-fp16")
_AMP_DTYPES = {"amp-bf16": torch.bfloat16, "amp-fp16": torch.float16}

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Protocol:
    """Timing options. ``threads=None`` leaves torch's thread count as it is."""

    batch: int
    warmup: int
    iters: int
    latency_warmup: int
    latency_iters: int
    threads: int | None
    precision: str = "fp32"
    fused: bool = True
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        for name in ("batch", "iters", "latency_iters"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        for name in ("warmup", "latency_warmup"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads must be an int >= 1 or None, got {self.threads!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.compile and min(self.warmup, self.latency_warmup) < 1:
            raise ValueError("torch.compile compiles during the first steps (again for batch 1): use warmup >= 1 "
                             "and latency_warmup >= 1 so compiling is not timed")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def default_protocol(device: torch.device | str, **overrides: Any) -> Protocol:
    """Official GPU protocol on CUDA, the small single-thread CPU protocol otherwise (see module doc)."""
    if torch.device(device).type == "cuda":
        base: dict[str, Any] = dict(batch=256, warmup=50, iters=20, latency_warmup=50, latency_iters=20, threads=None)
    else:
        base = dict(batch=16, warmup=5, iters=10, latency_warmup=5, latency_iters=20, threads=1)
    unknown = sorted(set(overrides) - set(Protocol.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown protocol option(s) {unknown}; allowed: {sorted(Protocol.__dataclass_fields__)}")
    base.update({k: v for k, v in overrides.items() if v is not None})  # None = keep the default
    return Protocol(**base)


def resolve_device(device: torch.device | str) -> torch.device:
    """``torch.device(device)``, with a clear error when CUDA is asked for but absent."""
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}; use 'cpu' or 'cuda' ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} asked for, but torch sees no CUDA GPU here; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device type {dev.type!r} is not supported for measurements; use 'cpu' or 'cuda'")
    return dev


def check_precision(precision: str, device: torch.device | str) -> None:
    """Raise ValueError when ``precision`` is unknown or not supported on ``device``."""
    dev = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "amp-fp16" and dev.type != "cuda":
        raise ValueError("precision 'amp-fp16' needs a CUDA device; on CPU use fp32 or amp-bf16")
    if precision == "amp-bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision 'amp-bf16' is not supported by {torch.cuda.get_device_name(dev)}; use fp32 "
                         "or amp-fp16")


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The autocast context of ``precision`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_AMP_DTYPES[precision])


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` (restored after); ``None`` changes nothing."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_sync(device: torch.device | str) -> Callable[[], None]:
    """Function that waits for all queued work on ``device`` (CUDA) or does nothing (CPU)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return lambda: torch.cuda.synchronize(dev)
    return lambda: None


@dataclass(frozen=True)
class StepTimes:
    """Seconds per timed step (warm-up excluded)."""

    seconds: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def max(self) -> float:
        return max(self.seconds)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.seconds)

    @property
    def spread(self) -> float:
        """``(max - min) / median``: how far apart the steps were."""
        return (self.max - self.min) / self.median if self.median > 0 else 0.0


def time_steps(
    step: Callable[[], Any],
    *,
    warmup: int,
    iters: int,
    sync: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.perf_counter,
) -> StepTimes:
    """Run ``warmup`` untimed steps, ``sync()``, then time ``iters`` steps, each followed by ``sync()``."""
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(iters):
        start = clock()
        step()
        sync()
        times.append(clock() - start)
    return StepTimes(tuple(times))


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error worth retrying with a smaller batch (timm's rule)."""
    from timm.utils import check_batch_size_retry

    if isinstance(exc, torch.OutOfMemoryError):
        return check_batch_size_retry(str(exc))
    if isinstance(exc, (RuntimeError, MemoryError)):
        text = str(exc).lower()
        oom = "out of memory" in text or "can't allocate memory" in text or isinstance(exc, MemoryError)
        return oom and check_batch_size_retry(text)
    return False


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_with_batch_backoff(run: Callable[[int], T], *, batch: int) -> tuple[T, int, tuple[int, ...]]:
    """``(run(b), b, failed batches)`` for the first ``b`` in batch, decay_batch_step(batch), ... that
    does not run out of memory. Other errors propagate; OOM even at batch 1 raises MemoryError."""
    from timm.utils import decay_batch_step

    failed: list[int] = []
    b = batch
    while b > 0:
        try:
            return run(b), b, tuple(failed)
        except Exception as exc:  # filtered right below: only OOM is retried
            if not is_oom(exc):
                raise
        failed.append(b)
        free_memory()
        b = decay_batch_step(b)
    raise MemoryError(f"out of memory at every batch size tried ({failed}); use a smaller resolution or model")


def inference_copy(model: nn.Module, *, device: torch.device, fused: bool, channels_last: bool,
                   compile: bool) -> tuple[nn.Module, bool]:
    """``(prepared copy, fused_applied)``: eval, BN folded when asked and possible, moved, formatted,
    compiled. ``fused_applied`` is False for models without ``fuse()``."""
    clone = copy.deepcopy(model).eval()
    fused_applied = False
    if fused and callable(getattr(clone, "fuse", None)):
        out = clone.fuse()
        clone = out if isinstance(out, nn.Module) else clone
        fused_applied = True
    clone = clone.to(device)
    if channels_last:
        clone = clone.to(memory_format=torch.channels_last)
    if compile:
        clone = torch.compile(clone)
    return clone, fused_applied


def make_input(batch: int, in_chans: int, res: int, *, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = torch.randn(batch, in_chans, res, res, device=device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def forward_step(model: nn.Module, x: torch.Tensor, *, precision: str) -> Callable[[], Any]:
    """One inference forward under ``torch.inference_mode`` and the autocast of ``precision``."""

    def step() -> Any:
        with torch.inference_mode(), autocast(precision, x.device):
            return model(x)

    return step


def benchmark_inference(
    model: nn.Module,
    *,
    res: int,
    protocol: Protocol,
    device: torch.device | str = "cpu",
    in_chans: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """Throughput at ``protocol.batch`` (with OOM back-off) and latency at batch 1; ``model`` is not changed.

    Returns JSON-able numbers: ``throughput`` (img/s at the median step), ``throughput_min/max``,
    ``step_ms`` (min/median/max), ``latency_ms`` (median at batch 1) and ``latency_ms_min/max``,
    ``batch`` actually used, ``oom_backoff`` (batches that ran out of memory), ``fused``, ``threads``.
    """
    dev = resolve_device(device)
    check_precision(protocol.precision, dev)
    net, fused_applied = inference_copy(model, device=dev, fused=protocol.fused,
                                        channels_last=protocol.channels_last, compile=protocol.compile)
    sync = make_sync(dev)

    def timed(batch: int, warmup: int, iters: int) -> StepTimes:
        x = make_input(batch, in_chans, res, device=dev, channels_last=protocol.channels_last)
        return time_steps(forward_step(net, x, precision=protocol.precision), warmup=warmup, iters=iters,
                          sync=sync, clock=clock)

    with num_threads(protocol.threads):
        threads = torch.get_num_threads()
        bulk, batch, failed = run_with_batch_backoff(
            lambda b: timed(b, protocol.warmup, protocol.iters), batch=protocol.batch)
        lat = timed(1, protocol.latency_warmup, protocol.latency_iters)
    return {
        "throughput": batch / bulk.median,
        "throughput_min": batch / bulk.max,
        "throughput_max": batch / bulk.min,
        "step_ms": {"min": 1e3 * bulk.min, "median": 1e3 * bulk.median, "max": 1e3 * bulk.max},
        "step_spread": bulk.spread,
        "latency_ms": 1e3 * lat.median,
        "latency_ms_min": 1e3 * lat.min,
        "latency_ms_max": 1e3 * lat.max,
        "batch": batch,
        "oom_backoff": list(failed),
        "fused": fused_applied,
        "threads": threads,
    }
