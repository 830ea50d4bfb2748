"""Every CPU backend against the float64 reference: forward and all input gradients, fresh inputs."""

from __future__ import annotations

import math

import pytest
import torch
from scan_testlib import GRAD_NAMES, SMALL_CASES, Case, compare, make_inputs, reference, rel_err

from kernels.selective_scan import selective_scan, selective_scan_ref, torch_fast
from kernels.selective_scan.ref import selective_scan_ref_backward

TOL = 1e-5  # relative error in fp32, from the issue

# A few wider cases on top of the small ones: SS2D-like groups (one per direction), d_state 4.
CPU_CASES = SMALL_CASES + (
    Case(2, 2, 16, 1, 36),
    Case(2, 4, 8, 1, 65),
    Case(2, 2, 8, 4, 50, with_bias=False),
)


@pytest.mark.parametrize("backend", ["ref", "torch"])
@pytest.mark.parametrize("case", CPU_CASES, ids=str)
def test_backend_matches_float64_reference(backend: str, case: Case) -> None:
    seed = hash((backend, str(case))) % 10_000  # fresh inputs each run; the seed is in the message
    errors = compare(case, backend=backend, seed=seed)
    bad = {k: v for k, v in errors.items() if not v < TOL}
    assert not bad, f"{backend} {case} seed={seed}: relative errors above {TOL}: {bad}"


@pytest.mark.parametrize(
    ("method", "chunk"), [("chunked", None), ("chunked", 1), ("chunked", 4), ("chunked", 5), ("doubling", None)]
)
@pytest.mark.parametrize("case", [Case(2, 2, 3, 1, 23), Case(1, 2, 2, 3, 12, with_D=False)], ids=str)
def test_torch_fast_methods_and_chunk_sizes(method: str, chunk: int | None, case: Case, monkeypatch) -> None:
    """Both scan methods, and chunk lengths that do (4 | 12) and do not (5, 23) divide L (padding)."""
    inputs = make_inputs(case, seed=7)
    gy = torch.randn(case.batch, case.dim, case.length, dtype=torch.float64)
    y_ref, g_ref = reference(inputs, gy, softplus=case.softplus)
    x32 = [t.float() if t is not None else None for t in inputs]
    if chunk is not None:
        monkeypatch.setattr(torch_fast, "chunk_size", lambda length: min(chunk, length))
    y = torch_fast.selective_scan_fwd(*x32[:6], delta_bias=x32[6], method=method)
    grads = torch_fast.selective_scan_bwd(gy.float(), *x32[:6], delta_bias=x32[6], method=method)
    assert rel_err(y, y_ref) < TOL
    for name, g, gr in zip(GRAD_NAMES, grads, g_ref):
        assert (g is None) == (gr is None), name
        if gr is not None:
            assert rel_err(g, gr) < TOL, f"{method}/{chunk}: d{name}"


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("method", ["chunked", "doubling"])
@pytest.mark.parametrize("length", [1, 2, 3, 8, 13, 64, 100])
def test_linear_scan_against_loop(reverse: bool, method: str, length: int) -> None:
    a = torch.rand(3, 2, length, dtype=torch.float64)
    x = torch.randn(3, 2, length, dtype=torch.float64)
    expected = x.clone()
    if reverse:
        for t in range(length - 2, -1, -1):
            expected[..., t] += a[..., t + 1] * expected[..., t + 1]
    else:
        for t in range(1, length):
            expected[..., t] += a[..., t] * expected[..., t - 1]
    a_before = a.clone()
    out = torch_fast.linear_scan_(a, x, reverse=reverse, method=method)
    assert out is x
    assert torch.equal(a, a_before), "a must not be modified"
    torch.testing.assert_close(x, expected, rtol=1e-12, atol=1e-12)


def test_chunk_size_prefers_divisors_near_sqrt() -> None:
    assert torch_fast.chunk_size(144) == 12
    assert torch_fast.chunk_size(36) == 6
    assert torch_fast.chunk_size(256) == 16
    assert [torch_fast.chunk_size(n) for n in (1, 2, 9, 16)] == [1, 2, 9, 16]  # short: one sequential chunk
    for length in range(1, 400):
        c = torch_fast.chunk_size(length)
        assert 1 <= c <= length
        assert c + math.ceil(length / c) <= 2 * math.isqrt(length) + 20, length


def test_long_sequence_and_large_decays_stay_accurate() -> None:
    """L = 3000 with steps up to dt*|A| ~ 60 (decays underflow to 0 in fp32): finite and accurate.

    A closed form through exp(cumsum(dt A)) would overflow here; the backends only multiply decays.
    """
    case = Case(1, 1, 4, 2, 3000, with_bias=False)
    inputs = make_inputs(case, seed=3)
    inputs[1] = inputs[1] * 12  # softplus(delta) up to ~30, |A| up to 2
    gy = torch.randn(1, 4, 3000, dtype=torch.float64)
    y_ref, g_ref = reference(inputs, gy, softplus=True)
    x32 = [t.float() if t is not None else None for t in inputs]
    for backend in ("torch",):
        leaves = [t.clone().requires_grad_(True) if t is not None else None for t in x32]
        y = selective_scan(*leaves[:6], delta_bias=leaves[6], backend=backend)
        y.backward(gy.float())
        assert torch.isfinite(y).all()
        assert rel_err(y, y_ref) < TOL
        for name, leaf, gr in zip(GRAD_NAMES, leaves, g_ref):
            if gr is not None:
                assert torch.isfinite(leaf.grad).all(), name
                assert rel_err(leaf.grad, gr) < TOL, name


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_compute_in_float32(dtype: torch.dtype) -> None:
    """Half inputs: same result as the reference on the same (rounded) inputs, output in the input dtype."""
    case = Case(2, 2, 4, 1, 20)
    inputs = [t.to(dtype) if t is not None else None for t in make_inputs(case, seed=11)]
    expected = selective_scan_ref(*[t.double() if t is not None else None for t in inputs[:6]],
                                  delta_bias=inputs[6].double())
    for backend in ("ref", "torch"):
        y = selective_scan(*inputs[:6], delta_bias=inputs[6], backend=backend)
        assert y.dtype == dtype
        assert rel_err(y, expected) < 1e-2  # one rounding of the output to half precision


def test_non_contiguous_inputs_give_the_same_result() -> None:
    case = Case(2, 2, 3, 2, 9)
    u, delta, A, B, C, D, bias = make_inputs(case, seed=5, dtype=torch.float32)
    expected = selective_scan(u, delta, A, B, C, D, delta_bias=bias, backend="torch")

    def strided(t: torch.Tensor) -> torch.Tensor:  # same values, transposed memory layout
        out = t.transpose(0, -1).contiguous().transpose(0, -1)
        assert not out.is_contiguous() or t.dim() == 1
        return out

    u2, d2, B2, C2 = strided(u), strided(delta), strided(B), strided(C)
    A2 = A.t().contiguous().t()
    D2 = torch.stack([D, D], 1)[:, 0]  # stride 2
    for backend in ("ref", "torch"):
        y = selective_scan(u2, d2, A2, B2, C2, D2, delta_bias=bias, backend=backend)
        torch.testing.assert_close(y, expected, rtol=1e-6, atol=1e-6)


def test_gradient_of_broadcast_grad_output() -> None:
    """``y.sum().backward()`` hands the op an expanded (stride-0) gradient."""
    case = Case(1, 2, 2, 1, 6)
    inputs = make_inputs(case, seed=2, dtype=torch.float32)
    grads = {}
    for backend in ("ref", "torch"):
        leaves = [t.clone().requires_grad_(True) for t in inputs]
        selective_scan(*leaves[:6], delta_bias=leaves[6], backend=backend).sum().backward()
        grads[backend] = [t.grad for t in leaves]
    for g_ref, g_fast in zip(grads["ref"], grads["torch"]):
        torch.testing.assert_close(g_fast, g_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", [Case(2, 2, 2, 1, 5), Case(1, 2, 2, 3, 4, with_D=False, softplus=False)], ids=str)
def test_gradcheck_reference_float64(case: Case) -> None:
    """Finite differences: the reference (autograd), and the op's "ref" and "torch" backward formulas."""
    inputs = [t.requires_grad_(True) if t is not None else None for t in make_inputs(case, seed=13)]
    present = [t for t in inputs if t is not None]

    def call(fn, **kw):
        def f(*xs):
            it = iter(xs)
            full = [next(it) if t is not None else None for t in inputs]
            return fn(*full[:6], delta_bias=full[6], delta_softplus=case.softplus, **kw)

        return f

    assert torch.autograd.gradcheck(call(selective_scan_ref), present)
    assert torch.autograd.gradcheck(call(selective_scan, backend="ref"), present)
    assert torch.autograd.gradcheck(call(selective_scan, backend="torch"), present)


def test_hand_written_reference_backward_matches_autograd() -> None:
    case = Case(2, 2, 3, 3, 8)
    inputs = make_inputs(case, seed=21)
    gy = torch.randn(2, 6, 8, dtype=torch.float64)
    _, g_ref = reference(inputs, gy, softplus=True)
    grads = selective_scan_ref_backward(gy, *inputs[:6], delta_bias=inputs[6])
    for name, g, gr in zip(GRAD_NAMES, grads, g_ref):
        torch.testing.assert_close(g, gr, rtol=1e-12, atol=1e-12, msg=name)


def test_reference_matches_brute_force_closed_form() -> None:
    """The reference itself against y_t = sum_k C_t (prod_{k<j<=t} a_j) dt_k B_k u_k + D u_t, by scalar loops."""
    case = Case(1, 2, 2, 2, 5)
    u, delta, A, B, C, D, bias = make_inputs(case, seed=4)
    y = selective_scan_ref(u, delta, A, B, C, D, delta_bias=bias)
    dt = torch.nn.functional.softplus(delta + bias[:, None])
    dg = case.dim_per_group
    expected = torch.zeros_like(y)
    for d in range(case.dim):
        g = d // dg
        for t in range(case.length):
            total = float(D[d] * u[0, d, t])
            for n in range(case.d_state):
                for k in range(t + 1):
                    decay = math.exp(sum(float(dt[0, d, j] * A[d, n]) for j in range(k + 1, t + 1)))
                    total += float(C[0, g, n, t]) * decay * float(dt[0, d, k] * B[0, g, n, k] * u[0, d, k])
            expected[0, d, t] = total
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)


def test_cpu_batch_blocking_gives_the_same_result(monkeypatch) -> None:
    """Large CPU problems run in batch blocks; forcing tiny blocks must not change anything."""
    case = Case(5, 2, 3, 2, 11)
    inputs = make_inputs(case, seed=17)
    gy = torch.randn(5, 6, 11, dtype=torch.float64)
    y_ref, g_ref = reference(inputs, gy, softplus=True)
    x32 = [t.float() for t in inputs]
    monkeypatch.setattr(torch_fast, "CPU_BLOCK_ELEMENTS", 2 * 6 * 11 * 2)  # two samples per block: 3 blocks
    assert len(torch_fast._batch_blocks(x32[0], 2)) == 3
    y = torch_fast.selective_scan_fwd(*x32[:6], delta_bias=x32[6])
    grads = torch_fast.selective_scan_bwd(gy.float(), *x32[:6], delta_bias=x32[6])
    assert rel_err(y, y_ref) < TOL
    for name, g, gr in zip(GRAD_NAMES, grads, g_ref):
        assert g.dtype == torch.float32
        assert rel_err(g, gr) < TOL, name
