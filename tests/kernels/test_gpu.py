"""CUDA checks of the selective scan: compiled Triton kernels and the torch path on the GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from scan_testlib import SMALL_CASES, Case, compare, make_inputs, rel_err

import kernels.selective_scan as ss

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

TOL = 1e-5
# SS2D shapes (batch, K directions, d_inner, L) of T2 at 192 px and of a 64 px proxy, plus d_state 4.
GPU_CASES = SMALL_CASES + (
    Case(4, 2, 224, 1, 144),
    Case(2, 2, 384, 1, 36),
    Case(2, 2, 448, 1, 9),
    Case(8, 2, 64, 1, 256),
    Case(2, 4, 32, 4, 200, with_bias=False),
    Case(1, 2, 16, 16, 130),
)


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("case", GPU_CASES, ids=str)
def test_cuda_backend_matches_float64_reference(backend: str, case: Case) -> None:
    errors = compare(case, backend=backend, seed=len(str(case)), device="cuda")
    bad = {k: v for k, v in errors.items() if not v < TOL}
    assert not bad, f"{backend} {case}: {bad}"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_triton_half_inputs_on_cuda(dtype: torch.dtype) -> None:
    case = Case(2, 2, 64, 1, 144)
    inputs = [t.to(dtype=dtype, device="cuda") for t in make_inputs(case, seed=5)]
    expected = ss.selective_scan_ref(*[t.double().cpu() for t in inputs[:6]], delta_bias=inputs[6].double().cpu())
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    y = ss.selective_scan(*leaves[:6], delta_bias=leaves[6], backend="triton")
    y.float().sum().backward()
    assert y.dtype == dtype
    assert rel_err(y, expected) < 1e-2
    assert all(t.grad is not None and t.grad.dtype == dtype and torch.isfinite(t.grad).all() for t in leaves)


def test_auto_is_triton_on_cuda() -> None:
    u = torch.zeros(1, 1, 1, device="cuda")
    assert ss.resolve_backend("auto", u) == "triton"
    assert "triton" in ss.available_backends("cuda")


def test_interpret_on_cuda_warns_loudly() -> None:
    code = (
        "import warnings, torch, kernels.selective_scan as ss\n"
        "x = torch.zeros(1, 2, 3, device='cuda'); B = torch.zeros(1, 1, 1, 3, device='cuda')\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    ss.selective_scan(x, x, -torch.ones(2, 1, device='cuda'), B, B, backend='triton')\n"
        "    ss.selective_scan(x, x, -torch.ones(2, 1, device='cuda'), B, B, backend='triton')\n"
        "print(sum('TRITON_INTERPRET=1' in str(m.message) for m in w))\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TRITON_INTERPRET": "1"}, cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "1"  # once, not per call
