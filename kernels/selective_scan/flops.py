"""FLOP formula of the selective scan, shared by fvcore and ``torch.utils.flop_counter``.

Convention (mamba / VMamba ``flops_selective_scan_fn``, used by the official MobileMamba FLOP
table): one multiply-add counts as 1, and the scan costs ``9 * batch * length * dim * d_state``,
plus ``batch * dim * length`` for the ``D * u`` skip term and as much again for a ``z`` gate.

fvcore counts a multiply-add as 1, so its handle gets this number; ``FlopCounterMode`` counts a
multiply-add as 2 (a matmul of ``m x k`` by ``k x n`` is ``2 m k n`` there), so the formula
registered for it returns **twice** this number. Either tool then reports the scan in the same
unit as the convolutions and matmuls around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def selective_scan_flops(
    *, batch: int, dim: int, length: int, d_state: int, with_D: bool = True, with_Z: bool = False
) -> int:
    """Multiply-adds of one selective scan call (mamba/VMamba convention, see module docstring)."""
    for name, value in (("batch", batch), ("dim", dim), ("length", length), ("d_state", d_state)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    flops = 9 * batch * length * dim * d_state
    if with_D:
        flops += batch * dim * length
    if with_Z:
        flops += batch * dim * length
    return flops


def selective_scan_flops_from_shapes(
    u_shape: Sequence[int], A_shape: Sequence[int], D_shape: Sequence[int] | None, *, with_Z: bool = False
) -> int:
    """The formula from the op's input shapes: ``u`` is ``(batch, dim, L)``, ``A`` is ``(dim, d_state)``."""
    if len(u_shape) != 3 or len(A_shape) != 2:
        raise ValueError(
            f"expected u (batch, dim, L) and A (dim, d_state), got shapes {tuple(u_shape)}, {tuple(A_shape)}"
        )
    batch, dim, length = (int(s) for s in u_shape)
    return selective_scan_flops(
        batch=batch, dim=dim, length=length, d_state=int(A_shape[1]), with_D=D_shape is not None, with_Z=with_Z
    )


def _jit_shape(value: Any) -> list[int] | None:
    """Shape of a ``torch._C.Value`` from a jit trace, or ``None`` when it is not a tensor."""
    if value.isCompleteTensor():
        return list(value.type().sizes())
    return None


def fvcore_selective_scan_handle(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore op handle for ``mmlab::selective_scan`` (multiply-add = 1).

    Usage: ``FlopCountAnalysis(model, x).set_op_handle(SCAN_OP_NAME, fvcore_selective_scan_handle)``.
    The op's jit inputs are ``(u, delta, A, B, C, D, delta_bias, delta_softplus, backend)``.
    """
    u_shape, A_shape = _jit_shape(inputs[0]), _jit_shape(inputs[2])
    if u_shape is None or A_shape is None:
        raise ValueError("fvcore_selective_scan_handle needs complete tensor shapes for u and A in the trace")
    return selective_scan_flops_from_shapes(u_shape, A_shape, _jit_shape(inputs[5]))
