"""Peak memory: a known allocation shows up; training step and OOM back-off paths run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lab
from lab.measure.memory import inference_memory, peak_memory, train_step_memory


def test_cpu_peak_memory_sees_a_known_temporary_allocation():
    size_mb = 192

    def allocate():
        t = torch.ones(size_mb * 2**20 // 4)  # written, so the pages are resident
        assert t[-1] == 1.0
        del t

    mem = peak_memory(allocate, device="cpu")
    assert mem.kind.startswith("cpu_rss_increase")
    assert 0.8 * size_mb <= mem.peak_mb <= 1.5 * size_mb
    idle = peak_memory(lambda: None, device="cpu")
    assert idle.peak_mb < 16


class Allocates(nn.Module):
    """Holds an activation of ``mb_per_image`` MB per image; OOM (fake) above ``limit`` images."""

    def __init__(self, mb_per_image: int, limit: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.mb, self.limit = mb_per_image, limit

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        act = torch.ones(x.shape[0], self.mb * 2**20 // 4) * self.w
        return act.sum(1, keepdim=True)


def test_inference_memory_backs_off_and_scales_with_the_batch():
    out = inference_memory(Allocates(mb_per_image=32, limit=4), res=4, batch=16)
    assert out["peak_mem_batch"] == 4
    assert out["peak_mem_mb"] >= 0.8 * 4 * 32


def test_train_step_memory_runs_and_needs_trainable_params():
    out = train_step_memory(lab.build_model("mobilemamba_tiny"), res=64, batch=2)
    assert out["peak_mem_train_mb"] >= 0 and out["peak_mem_train_batch"] == 2
    frozen = nn.Conv2d(3, 3, 1).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train_step_memory(frozen, res=4, batch=1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_memory_counts_a_known_allocation():
    mem = peak_memory(lambda: torch.empty(64 * 2**20 // 4, device="cuda"), device="cuda")
    assert mem.kind == "cuda_max_allocated"
    assert mem.peak_mb - mem.baseline_mb == pytest.approx(64, rel=0.05)
