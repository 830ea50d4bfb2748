"""The timing protocol (not the speed): warm-up excluded, sync after each timed step, OOM back-off,
latency at batch 1, option validation. Fake clocks and fake out-of-memory errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lab.measure import throughput as tp
from lab.measure.throughput import (
    benchmark_inference,
    check_precision,
    default_protocol,
    make_sync,
    num_threads,
    run_with_batch_backoff,
    time_steps,
)


class FakeClock:
    """Time advances only when a step says so."""

    def __init__(self) -> None:
        self.now = 0.0
        self.events: list[str] = []

    def __call__(self) -> float:
        self.events.append("clock")
        return self.now

    def __deepcopy__(self, memo: dict) -> FakeClock:  # the benchmark deep-copies the model holding it
        return self


def test_warmup_is_excluded_and_every_timed_step_is_synchronised():
    clock = FakeClock()
    durations = iter([100.0, 100.0, 100.0, 3.0, 1.0, 2.0, 5.0, 4.0])

    def step():
        clock.events.append("step")
        clock.now += next(durations)

    def sync():
        clock.events.append("sync")

    times = time_steps(step, warmup=3, iters=5, sync=sync, clock=clock)
    assert times.seconds == (3.0, 1.0, 2.0, 5.0, 4.0)
    assert (times.min, times.median, times.max) == (1.0, 3.0, 5.0)
    assert times.spread == pytest.approx(4.0 / 3.0)
    assert clock.events == ["step"] * 3 + ["sync"] + ["clock", "step", "sync", "clock"] * 5


def test_cuda_sync_calls_cuda_synchronize(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    make_sync("cpu")()
    assert calls == []
    make_sync("cuda:0")()
    assert calls == [torch.device("cuda:0")]


class BatchLimited(nn.Module):
    """Raises a CUDA-style OOM above ``limit`` images; advances a fake clock by 1 ms per image."""

    def __init__(self, limit: int, clock: FakeClock | None = None, error: Exception | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.limit, self.clock, self.error = limit, clock, error
        self.batches: list[int] = []

    def forward(self, x):
        self.batches.append(x.shape[0])
        if self.error is not None:
            raise self.error
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {x.shape[0]} GiB")
        if self.clock is not None:
            self.clock.now += 1e-3 * x.shape[0]
        return self.conv(x)


def test_oom_backs_off_like_timm_and_latency_runs_at_batch_1(monkeypatch):
    clock = FakeClock()
    model = BatchLimited(limit=48, clock=clock)
    seen: list[nn.Module] = []
    original_copy = tp.inference_copy

    def spying_copy(m, **kw):  # the benchmark times a prepared copy: keep a handle on it
        net, fused = original_copy(m, **kw)
        seen.append(net)
        return net, fused

    monkeypatch.setattr(tp, "inference_copy", spying_copy)
    proto = default_protocol("cpu", batch=256, warmup=2, iters=3, latency_warmup=1, latency_iters=4)
    out = benchmark_inference(model, res=8, protocol=proto, clock=clock)
    assert out["batch"] == 48
    assert out["oom_backoff"] == [256, 192, 128, 96, 64]
    assert out["throughput"] == pytest.approx(48 / 0.048)
    assert out["latency_ms"] == pytest.approx(1.0)
    batches = seen[0].batches
    assert batches == [256, 192, 128, 96, 64] + [48] * 5 + [1] * 5
    assert out["fused"] is False and out["threads"] == 1
    assert model.batches == []  # the caller's model is never run


def test_run_with_batch_backoff_unit():
    def run(b):
        if b > 10:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 GB")
        return b * 2

    assert run_with_batch_backoff(run, batch=16) == (16, 8, (16, 12))
    with pytest.raises(MemoryError, match="every batch size"):
        run_with_batch_backoff(lambda b: run(b + 100), batch=4)


def test_other_errors_are_not_retried():
    model = BatchLimited(limit=1000, error=ValueError("shape mismatch"))
    with pytest.raises(ValueError, match="shape mismatch"):
        benchmark_inference(model, res=8, protocol=default_protocol("cpu", batch=32, warmup=0, iters=1))


def test_benchmark_uses_the_devices_sync(monkeypatch):
    calls = []
    monkeypatch.setattr(tp, "make_sync", lambda dev: (lambda: calls.append(str(dev))))
    proto = default_protocol("cpu", batch=2, warmup=1, iters=3, latency_warmup=0, latency_iters=2)
    benchmark_inference(BatchLimited(limit=8), res=8, protocol=proto)
    assert calls == ["cpu"] * (1 + 3 + 1 + 2)  # after warm-up, after each timed step, for both runs


def test_defaults_follow_the_official_protocol_on_gpu_and_a_small_one_on_cpu():
    gpu = default_protocol("cuda")
    assert (gpu.batch, gpu.warmup, gpu.iters, gpu.precision, gpu.fused, gpu.threads) == (256, 50, 20, "fp32", True,
                                                                                           None)
    cpu = default_protocol("cpu")
    assert (cpu.batch, cpu.warmup, cpu.iters, cpu.threads, cpu.fused) == (16, 5, 10, 1, True)
    assert default_protocol("cpu", batch=None).batch == 16
    with pytest.raises(ValueError, match="unknown protocol option"):
        default_protocol("cpu", batchsize=3)
    with pytest.raises(ValueError, match="iters"):
        default_protocol("cpu", iters=0)
    with pytest.raises(ValueError, match="compile"):
        default_protocol("cpu", compile=True, latency_warmup=0)


def test_precision_and_device_errors():
    with pytest.raises(ValueError, match="amp-fp16.*CUDA"):
        check_precision("amp-fp16", "cpu")
    with pytest.raises(ValueError, match="unknown precision"):
        check_precision("fp8", "cpu")
    check_precision("amp-bf16", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            tp.resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        tp.resolve_device("gpu0")


def test_num_threads_is_restored():
    before = torch.get_num_threads()
    with num_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_real_cpu_run_on_tiny_model_is_consistent():
    import lab

    proto = default_protocol("cpu", batch=2, warmup=1, iters=3, latency_warmup=1, latency_iters=3)
    out = benchmark_inference(lab.build_model("mobilemamba_tiny"), res=64, protocol=proto)
    assert out["fused"] is True and out["batch"] == 2
    assert out["throughput_min"] <= out["throughput"] <= out["throughput_max"]
    assert out["latency_ms_min"] <= out["latency_ms"] <= out["latency_ms_max"]
    assert out["throughput"] == pytest.approx(2 / (out["step_ms"]["median"] / 1e3))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp32", "amp-fp16", "amp-bf16"])
def test_cuda_run(precision):
    import lab

    proto = default_protocol("cuda", batch=8, warmup=2, iters=3, latency_warmup=1, latency_iters=3,
                             precision=precision, channels_last=True)
    out = benchmark_inference(lab.build_model("mobilemamba_tiny"), res=64, protocol=proto, device="cuda")
    assert out["throughput"] > 0 and out["batch"] == 8
