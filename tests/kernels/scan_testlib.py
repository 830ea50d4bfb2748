"""Shared helpers of the selective-scan tests: random inputs, float64 ground truth, error metric.

Used by the pytest modules in this folder and by ``triton_interpret_check.py`` (which runs in a
subprocess with ``TRITON_INTERPRET=1``), so it imports nothing from pytest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kernels.selective_scan import selective_scan_ref

GRAD_NAMES = ("u", "delta", "A", "B", "C", "D", "delta_bias")


@dataclass(frozen=True)
class Case:
    """One random problem: shapes and which optional inputs are present."""

    batch: int
    groups: int
    dim_per_group: int
    d_state: int
    length: int
    with_D: bool = True
    with_bias: bool = True
    softplus: bool = True

    @property
    def dim(self) -> int:
        return self.groups * self.dim_per_group

    def __str__(self) -> str:
        flags = f"{'D' if self.with_D else '-'}{'b' if self.with_bias else '-'}{'s' if self.softplus else '-'}"
        return f"b{self.batch}g{self.groups}x{self.dim_per_group}n{self.d_state}L{self.length}{flags}"


def make_inputs(case: Case, *, seed: int, dtype: torch.dtype = torch.float64, device: str = "cpu") -> list:
    """``[u, delta, A, B, C, D, delta_bias]`` (D / delta_bias may be None), fresh from ``seed``.

    ``A`` is negative with magnitudes up to 2; without softplus ``delta`` and ``delta_bias`` are made
    positive (a negative step would make the recurrence grow, which no model uses, and overflow fp32).
    """
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    b, d, n, length = case.batch, case.dim, case.d_state, case.length
    u = rnd(b, d, length)
    delta = rnd(b, d, length) * 0.5
    if not case.softplus:
        delta = delta.abs()
    A = -(torch.rand(d, n, generator=g, dtype=torch.float64) * 1.9 + 0.1)
    B = rnd(b, case.groups, n, length)
    C = rnd(b, case.groups, n, length)
    D = rnd(d) if case.with_D else None
    bias = rnd(d) * 0.5 if case.with_bias else None
    if bias is not None and not case.softplus:
        bias = bias.abs()  # dt = delta + bias must stay positive without softplus (see above)
    return [t.to(dtype=dtype, device=device) if t is not None else None for t in (u, delta, A, B, C, D, bias)]


def reference(inputs: list, grad_y: torch.Tensor, *, softplus: bool) -> tuple[torch.Tensor, list]:
    """Float64 output and input gradients by autograd through ``selective_scan_ref`` (the ground truth)."""
    leaves = [t.detach().double().cpu().requires_grad_(True) if t is not None else None for t in inputs]
    y = selective_scan_ref(*leaves[:6], delta_bias=leaves[6], delta_softplus=softplus)
    y.backward(grad_y.double().cpu())
    return y.detach(), [t.grad if t is not None else None for t in leaves]


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected| (0 for two empty tensors), computed in float64."""
    if expected.numel() == 0:
        return 0.0 if actual.numel() == 0 else float("inf")
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    if a.shape != e.shape:
        raise AssertionError(f"shape mismatch: {tuple(a.shape)} vs {tuple(e.shape)}")
    scale = float(e.abs().max())
    return float((a - e).abs().max()) / (scale if scale > 0 else 1.0)


def run_backend(inputs: list, grad_y: torch.Tensor, *, backend: str, softplus: bool) -> tuple[torch.Tensor, list]:
    """Output and input gradients through the public op with ``backend``."""
    from kernels.selective_scan import selective_scan

    leaves = [t.detach().clone().requires_grad_(True) if t is not None else None for t in inputs]
    y = selective_scan(*leaves[:6], delta_bias=leaves[6], delta_softplus=softplus, backend=backend)
    y.backward(grad_y.to(y))
    return y.detach(), [t.grad if t is not None else None for t in leaves]


def compare(case: Case, *, backend: str, seed: int, dtype: torch.dtype = torch.float32, device: str = "cpu") -> dict:
    """Relative errors ``{"y": ..., "u": ..., ...}`` of ``backend`` against the float64 reference."""
    inputs64 = make_inputs(case, seed=seed)
    grad_y = torch.randn(case.batch, case.dim, case.length, generator=torch.Generator().manual_seed(seed + 1),
                         dtype=torch.float64)
    y_ref, g_ref = reference(inputs64, grad_y, softplus=case.softplus)
    inputs = [t.to(dtype=dtype, device=device) if t is not None else None for t in inputs64]
    y, grads = run_backend(inputs, grad_y.to(dtype=dtype, device=device), backend=backend, softplus=case.softplus)
    if y.dtype != dtype or y.device.type != torch.device(device).type:
        raise AssertionError(f"{backend}: output dtype/device {y.dtype}/{y.device}, expected {dtype}/{device}")
    errors = {"y": rel_err(y, y_ref)}
    for name, g, gr in zip(GRAD_NAMES, grads, g_ref):
        if gr is None:
            if g is not None:
                raise AssertionError(f"{backend}: gradient for absent input {name}")
            continue
        if g is None:
            raise AssertionError(f"{backend}: missing gradient for {name}")
        if g.dtype != dtype:
            raise AssertionError(f"{backend}: gradient of {name} has dtype {g.dtype}, expected {dtype}")
        errors[name] = rel_err(g, gr)
    return errors


# Small shapes for the interpreter and the CPU backends: d_state 1 and 4, lengths that are not
# multiples of any chunk/tile, one and several groups, with and without D / delta_bias / softplus.
SMALL_CASES = (
    Case(2, 2, 3, 1, 7),
    Case(2, 2, 3, 4, 13, with_D=False),
    Case(1, 1, 4, 1, 1, with_bias=False),
    Case(3, 4, 2, 3, 19, with_D=False, with_bias=False),
    Case(2, 2, 3, 1, 10, softplus=False),
    Case(1, 2, 5, 2, 17, softplus=False, with_bias=False),
)
