"""The selective scan as one ``torch.library`` custom op, whatever the backend.

``mmlab::selective_scan(u, delta, A, B, C, D?, delta_bias?, delta_softplus, backend) -> y`` and
its backward ``mmlab::selective_scan_backward(...)`` are opaque to tracing, ``torch.compile``,
fvcore and ``FlopCounterMode``: a jit trace of a model shows exactly one node per scan call, the
fake (meta) implementation lets the model run on the meta device, and the FLOP formula of
``flops.py`` is registered for ``FlopCounterMode``. The backend travels as a string argument and
picks the implementation inside the op; ``"auto"`` must be resolved before calling the op.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import register_flop_formula

from . import ref, torch_fast
from .flops import selective_scan_flops_from_shapes

SCAN_OP_NAME = "mmlab::selective_scan"
SCAN_BACKWARD_OP_NAME = "mmlab::selective_scan_backward"

ForwardFn = Callable[..., torch.Tensor]
BackwardFn = Callable[..., tuple[torch.Tensor | None, ...]]

# name -> (forward, backward); "triton" and "numba" are filled in lazily by importing their modules.
_IMPLS: dict[str, tuple[ForwardFn, BackwardFn]] = {
    "ref": (ref.selective_scan_ref, ref.selective_scan_ref_backward),
    "torch": (torch_fast.selective_scan_fwd, torch_fast.selective_scan_bwd),
}
_LAZY: dict[str, str] = {"triton": "kernels.selective_scan.triton", "numba": "kernels.selective_scan.numba_cpu"}
BACKEND_NAMES: tuple[str, ...] = ("ref", "torch", "triton", "numba")


def register_impl(name: str, forward: ForwardFn, backward: BackwardFn) -> None:
    """Make ``backend=name`` run ``forward`` / ``backward`` inside the op."""
    _IMPLS[name] = (forward, backward)


def get_impl(name: str) -> tuple[ForwardFn, BackwardFn]:
    """Forward and backward functions of a resolved backend name (imports Triton / numba on first use)."""
    if name not in _IMPLS and name in _LAZY:
        importlib.import_module(_LAZY[name])  # registers itself via register_impl
    if name not in _IMPLS:
        raise ValueError(
            f"selective-scan op got backend {name!r}; choose one of {list(BACKEND_NAMES)} "
            "('auto' is resolved by kernels.selective_scan.selective_scan before the op is called)"
        )
    return _IMPLS[name]


@torch.library.custom_op(SCAN_OP_NAME, mutates_args=())
def selective_scan_op(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    delta_softplus: bool,
    backend: str,
) -> torch.Tensor:
    """Selective scan with a resolved backend name; see ``kernels.selective_scan`` for shapes."""
    forward, _ = get_impl(backend)
    # Contiguous, as the fake implementation promises (torch.compile and opcheck compare strides).
    return forward(u, delta, A, B, C, D, delta_bias=delta_bias, delta_softplus=delta_softplus).contiguous()


@selective_scan_op.register_fake
def _selective_scan_fake(u, delta, A, B, C, D, delta_bias, delta_softplus, backend):
    return u.new_empty(u.shape)


@torch.library.custom_op(SCAN_BACKWARD_OP_NAME, mutates_args=())
def selective_scan_backward_op(
    grad_y: torch.Tensor,
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    delta_softplus: bool,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(du, ddelta, dA, dB, dC, dD, ddelta_bias)``; an absent ``D``/``delta_bias`` gets a (0,) tensor."""
    _, backward = get_impl(backend)
    grads = backward(grad_y, u, delta, A, B, C, D, delta_bias=delta_bias, delta_softplus=delta_softplus)
    empty = u.new_empty((0,))
    return tuple(g.contiguous() if g is not None else empty.clone() for g in grads)  # type: ignore[return-value]


@selective_scan_backward_op.register_fake
def _selective_scan_backward_fake(grad_y, u, delta, A, B, C, D, delta_bias, delta_softplus, backend):
    def like(t: torch.Tensor | None) -> torch.Tensor:
        return t.new_empty(t.shape) if t is not None else u.new_empty((0,))

    return like(u), like(delta), like(A), like(B), like(C), like(D), like(delta_bias)


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    u, delta, A, B, C, D, delta_bias, delta_softplus, backend = inputs
    ctx.save_for_backward(u, delta, A, B, C, D, delta_bias)
    ctx.delta_softplus = delta_softplus
    ctx.backend = backend


def _backward(ctx: Any, grad_y: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    u, delta, A, B, C, D, delta_bias = ctx.saved_tensors
    grads = selective_scan_backward_op(grad_y, u, delta, A, B, C, D, delta_bias, ctx.delta_softplus, ctx.backend)
    g_u, g_delta, g_A, g_B, g_C, g_D, g_bias = grads
    return (
        g_u,
        g_delta,
        g_A,
        g_B,
        g_C,
        g_D if D is not None else None,
        g_bias if delta_bias is not None else None,
        None,
        None,
    )


selective_scan_op.register_autograd(_backward, setup_context=_setup_context)


@register_flop_formula(torch.ops.mmlab.selective_scan)
def _flop_counter_formula(u_shape, delta_shape, A_shape, B_shape, C_shape, D_shape, bias_shape, *args, **kwargs) -> int:
    """``FlopCounterMode`` counts a multiply-add as 2, so it gets twice the fvcore number."""
    return 2 * selective_scan_flops_from_shapes(u_shape, A_shape, D_shape)
