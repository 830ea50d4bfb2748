"""The compiled CPU backend ("numba") against the float64 reference, its fast math, threads and fallback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scan_testlib import GRAD_NAMES, SMALL_CASES, Case, compare, make_inputs, reference, rel_err

import kernels.selective_scan as ss

pytest.importorskip("numba")
if not ss.numba_importable():
    pytest.skip("kernels.selective_scan.numba_cpu does not import", allow_module_level=True)
from kernels.selective_scan import numba_cpu  # noqa: E402

TOL = 1e-5
ROOT = Path(__file__).resolve().parents[2]
CASES = SMALL_CASES + (
    Case(2, 2, 16, 1, 36),
    Case(2, 4, 8, 1, 65),
    Case(2, 2, 8, 4, 50, with_bias=False),
    Case(3, 2, 5, 1, 144, softplus=False, with_D=False),
    Case(1, 2, 7, 4, 29, with_bias=False, with_D=False, softplus=False),
    Case(2, 2, 13, 1, 37),  # blocked d_state-1 kernel: blocks of 8 rows span groups, a partial last block
    Case(1, 3, 8, 1, 64, with_D=False),  # whole blocks, L a multiple of the 32-float scratch rows
)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_numba_matches_float64_reference(case: Case) -> None:
    seed = hash(("numba", str(case))) % 10_000  # fresh inputs each run; the seed is in the message
    errors = compare(case, backend="numba", seed=seed)
    bad = {k: v for k, v in errors.items() if not v < TOL}
    assert not bad, f"numba {case} seed={seed}: relative errors above {TOL}: {bad}"


@pytest.mark.parametrize("case", [Case(2, 2, 3, 1, 9), Case(1, 2, 2, 3, 7, with_D=False, softplus=False)], ids=str)
def test_numba_float64_is_float64_exact_and_gradchecks(case: Case) -> None:
    errors = compare(case, backend="numba", seed=3, dtype=torch.float64)
    assert max(errors.values()) < 1e-12, errors
    inputs = [t.requires_grad_(True) if t is not None else None for t in make_inputs(case, seed=13)]
    present = [t for t in inputs if t is not None]

    def f(*xs):
        it = iter(xs)
        full = [next(it) if t is not None else None for t in inputs]
        return ss.selective_scan(*full[:6], delta_bias=full[6], delta_softplus=case.softplus, backend="numba")

    assert torch.autograd.gradcheck(f, present)


def test_parallel_drivers_equal_serial(monkeypatch) -> None:
    """Two threads, forced parallel even for a small problem, with several channel blocks per group."""
    case = Case(1, 2, 6, 2, 23)
    inputs = make_inputs(case, seed=9, dtype=torch.float32)
    gy = torch.randn(1, 12, 23)
    serial_y = numba_cpu.selective_scan_fwd(*inputs[:6], delta_bias=inputs[6])
    serial_g = numba_cpu.selective_scan_bwd(gy, *inputs[:6], delta_bias=inputs[6])
    assert numba_cpu.backward_blocks(1, 2, 6, 2) == 4
    before = torch.get_num_threads()
    monkeypatch.setattr(numba_cpu, "PARALLEL_MIN_ELEMENTS", 0)
    try:
        torch.set_num_threads(2)
        if numba_cpu.threads() < 2:
            pytest.skip("numba has a single thread here")
        y = numba_cpu.selective_scan_fwd(*inputs[:6], delta_bias=inputs[6])
        grads = numba_cpu.selective_scan_bwd(gy, *inputs[:6], delta_bias=inputs[6])
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(y, serial_y, rtol=0, atol=0)
    for name, g, gs in zip(GRAD_NAMES, grads, serial_g):
        torch.testing.assert_close(g, gs, rtol=1e-6, atol=1e-6, msg=name)  # dB/dC summed in another order


def test_blocked_forward_parallel_equals_serial(monkeypatch) -> None:
    """The d_state-1 forward (blocks of ``ROWS`` channels) on two threads: bit-identical to one thread."""
    inputs = make_inputs(Case(3, 2, 11, 1, 40), seed=21, dtype=torch.float32)
    serial = numba_cpu.selective_scan_fwd(*inputs[:6], delta_bias=inputs[6])
    before = torch.get_num_threads()
    monkeypatch.setattr(numba_cpu, "PARALLEL_MIN_ELEMENTS", 0)
    try:
        torch.set_num_threads(2)
        if numba_cpu.threads() < 2:
            pytest.skip("numba has a single thread here")
        parallel = numba_cpu.selective_scan_fwd(*inputs[:6], delta_bias=inputs[6])
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(parallel, serial, rtol=0, atol=0)


def test_blocked_forward_with_positive_A_and_nan_rows() -> None:
    """Rows with A > 0 take the general exp (not the x <= 0 one); a NaN stays in its own row."""
    case = Case(2, 1, 12, 1, 50)
    u, delta, A, B, C, D, bias = make_inputs(case, seed=4)
    A[::3] = A[::3].abs() * 0.05  # growing but finite recurrences in every third row
    want = ss.selective_scan_ref(u, delta, A, B, C, D, delta_bias=bias)
    got = ss.selective_scan(*(t.float() for t in (u, delta, A, B, C, D)), delta_bias=bias.float(), backend="numba")
    assert rel_err(got, want) < TOL
    delta_nan = delta.float().clone()
    delta_nan[1, 5, 20] = float("nan")
    got = ss.selective_scan(*(t.float() for t in (u,)), delta_nan, *(t.float() for t in (A, B, C, D)),
                            delta_bias=bias.float(), backend="numba")
    assert torch.isnan(got[1, 5, 20:]).all() and torch.isfinite(got[1, 5, :20]).all()
    others = torch.ones_like(got, dtype=torch.bool)
    others[1, 5] = False
    assert torch.isfinite(got[others]).all()


def test_long_sequence_and_large_decays_stay_accurate() -> None:
    case = Case(1, 1, 4, 2, 3000, with_bias=False)
    inputs = make_inputs(case, seed=3)
    inputs[1] = inputs[1] * 12  # softplus(delta) up to ~30: decays underflow in fp32
    gy = torch.randn(1, 4, 3000, dtype=torch.float64)
    y_ref, g_ref = reference(inputs, gy, softplus=True)
    leaves = [t.float().requires_grad_(True) if t is not None else None for t in inputs]
    y = ss.selective_scan(*leaves[:6], delta_bias=leaves[6], backend="numba")
    y.backward(gy.float())
    assert torch.isfinite(y).all() and rel_err(y, y_ref) < TOL
    for name, leaf, gr in zip(GRAD_NAMES, leaves, g_ref):
        if gr is not None:
            assert torch.isfinite(leaf.grad).all(), name
            assert rel_err(leaf.grad, gr) < TOL, name


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs(dtype: torch.dtype) -> None:
    case = Case(2, 2, 4, 1, 20)
    inputs = [t.to(dtype) if t is not None else None for t in make_inputs(case, seed=11)]
    expected = ss.selective_scan_ref(*[t.double() for t in inputs[:6]], delta_bias=inputs[6].double())
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    y = ss.selective_scan(*leaves[:6], delta_bias=leaves[6], backend="numba")
    assert y.dtype == dtype and rel_err(y, expected) < 1e-2
    y.sum().backward()
    assert all(t.grad.dtype == dtype and torch.isfinite(t.grad).all() for t in leaves)


def test_non_contiguous_inputs_give_the_same_result() -> None:
    case = Case(2, 2, 3, 2, 9)
    u, delta, A, B, C, D, bias = make_inputs(case, seed=5, dtype=torch.float32)
    expected = ss.selective_scan(u, delta, A, B, C, D, delta_bias=bias, backend="numba")

    def strided(t: torch.Tensor) -> torch.Tensor:
        return t.transpose(0, -1).contiguous().transpose(0, -1)

    D2 = torch.stack([D, D], 1)[:, 0]
    y = ss.selective_scan(strided(u), strided(delta), A.t().contiguous().t(), strided(B), strided(C), D2,
                          delta_bias=bias, backend="numba")  # fmt: skip
    torch.testing.assert_close(y, expected, rtol=0, atol=0)


def test_empty_sequence_and_batch() -> None:
    for case in (Case(0, 2, 3, 1, 5), Case(2, 2, 3, 2, 0)):
        inputs = make_inputs(case, seed=1, dtype=torch.float32)
        leaves = [t.requires_grad_(True) for t in inputs]
        y = ss.selective_scan(*leaves[:6], delta_bias=leaves[6], backend="numba")
        assert y.shape == inputs[0].shape
        y.sum().backward()
        assert all(t.grad is not None and t.grad.shape == t.shape for t in leaves)


def _run_kernel(fn_name: str, x: np.ndarray) -> np.ndarray:
    from numba import njit

    inner = getattr(numba_cpu, fn_name)

    @njit
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = inner(x[i])

    out = np.empty_like(x)
    apply(x, out)
    return out


def test_fast_float32_exp_against_numpy() -> None:
    x = np.concatenate([np.linspace(-110, 90, 400_001), np.random.default_rng(0).normal(0, 20, 10_000)])
    x = x.astype(np.float32)
    got = _run_kernel("_exp32", x).astype(np.float64)
    want = np.exp(x.astype(np.float64))
    normal = (want > 1.2e-38) & (want < 3.4e38)
    assert np.max(np.abs(got[normal] - want[normal]) / want[normal]) < 2.5e-7  # ~2 ulp
    assert np.max(np.abs(got[want <= 1.2e-38] - want[want <= 1.2e-38])) < 3e-45  # denormals, then 0
    assert np.all(np.isinf(got[want >= 3.5e38]))
    edge = _run_kernel("_exp32", np.array([np.inf, -np.inf, np.nan, 0.0], dtype=np.float32))
    assert edge[0] == np.inf and edge[1] == 0.0 and np.isnan(edge[2]) and edge[3] == 1.0


def test_fast_float32_exp_of_non_positive_arguments() -> None:
    x = np.concatenate([np.linspace(-110, 0, 400_001), -np.abs(np.random.default_rng(1).normal(0, 20, 10_000))])
    x = x.astype(np.float32)
    got = _run_kernel("_exp_nonpos32", x).astype(np.float64)
    want = np.exp(x.astype(np.float64))
    normal = x >= np.float32(-87.3)
    assert np.max(np.abs(got[normal] - want[normal]) / want[normal]) < 2.5e-7  # ~2 ulp
    assert np.all(got[~normal] <= 1.3e-38)  # clamped at -87.3: ~1.2e-38 instead of a denormal (documented)
    edge = _run_kernel("_exp_nonpos32", np.array([np.nan, -np.inf, 0.0, -0.0], dtype=np.float32))
    assert np.isnan(edge[0]) and edge[1] < 1.3e-38 and edge[2] == 1.0 and edge[3] == 1.0


def test_fast_float32_log1p_on_unit_interval() -> None:
    e = np.concatenate([np.linspace(0, 1, 100_001), np.geomspace(1e-30, 1, 1000)]).astype(np.float32)
    got = _run_kernel("_log1p_unit32", e).astype(np.float64)
    want = np.log1p(e.astype(np.float64))
    assert np.max(np.abs(got - want) / np.maximum(want, 1e-300)) < 3e-7


def test_auto_picks_numba_on_cpu() -> None:
    assert ss.resolve_backend("auto", torch.zeros(1)) == "numba"
    assert "numba" in ss.available_backends("cpu")
    assert "numba" not in ss.available_backends("meta")


def test_cache_dir_is_outside_the_repository() -> None:
    cache = numba_cpu.cache_dir().resolve()
    assert ROOT not in cache.parents and cache != ROOT


def test_without_numba_auto_falls_back_to_torch() -> None:
    """A fresh interpreter in which ``import numba`` fails: the package imports and "auto" runs torch."""
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import torch, kernels.selective_scan as ss\n"
        "u = torch.randn(1, 2, 5)\n"
        "assert not ss.numba_importable() and ss.resolve_backend('auto', u) == 'torch'\n"
        "assert 'numba' not in ss.available_backends('cpu')\n"
        "y = ss.selective_scan(u, u, -torch.ones(2, 1), torch.randn(1, 1, 1, 5), torch.randn(1, 1, 1, 5))\n"
        "try:\n    ss.selective_scan(u, u, -torch.ones(2, 1), u[:, :1, None], u[:, :1, None], backend='numba')\n"
        "except ValueError as e:\n    assert 'pip install numba' in str(e)\nelse:\n    raise SystemExit('no error')\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
