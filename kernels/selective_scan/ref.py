"""Readable sequential reference of the selective scan (Mamba S6 recurrence).

This is the ground truth every fast path is tested against. It loops over the sequence in
Python, so it is slow; it works in float32 and float64 and is differentiable by autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def selective_scan_ref(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    *,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = True,
) -> torch.Tensor:
    """Sequential selective scan; see ``kernels.selective_scan.selective_scan`` for shapes.

    ``h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t`` and ``y_t = <C_t, h_t> + D * u_t``,
    with ``dt = softplus(delta + delta_bias)`` when ``delta_softplus``. Computed in float64 if
    any input is float64, else float32; the result has ``u``'s dtype.
    """
    batch, dim, length = u.shape
    n_state = A.shape[1]
    groups = B.shape[1]
    compute = torch.float64 if torch.float64 in {u.dtype, delta.dtype, A.dtype, B.dtype} else torch.float32
    dt = delta.to(compute)
    if delta_bias is not None:
        dt = dt + delta_bias.to(compute)[None, :, None]
    if delta_softplus:
        dt = F.softplus(dt)
    uc = u.to(compute)
    Ac = A.to(compute)
    # Channel d of `dim` reads B/C of group d // (dim // groups).
    Bx = B.to(compute).repeat_interleave(dim // groups, dim=1)  # (batch, dim, N, L)
    Cx = C.to(compute).repeat_interleave(dim // groups, dim=1)
    h = u.new_zeros((batch, dim, n_state), dtype=compute)
    ys = []
    for t in range(length):
        dt_t = dt[:, :, t, None]  # (batch, dim, 1)
        h = torch.exp(dt_t * Ac) * h + (dt_t * uc[:, :, t, None]) * Bx[:, :, :, t]
        ys.append((h * Cx[:, :, :, t]).sum(-1))
    y = torch.stack(ys, dim=-1) if ys else uc.new_zeros((batch, dim, 0))
    if D is not None:
        y = y + uc * D.to(compute)[None, :, None]
    return y.to(u.dtype)
