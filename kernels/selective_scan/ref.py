"""Readable sequential reference of the selective scan (Mamba S6 recurrence).

This is the ground truth every fast path is tested against. It loops over the sequence in
Python, so it is slow; it works in float32 and float64 and is differentiable by autograd.
``selective_scan_ref_backward`` is the hand-written reverse recurrence (also a plain loop) that
the ``"ref"`` backend of the custom op uses for its gradients; tests check it against autograd
of ``selective_scan_ref`` and against finite differences (``gradcheck``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def compute_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """float64 if any given tensor is float64, else float32 (half inputs are computed in float32)."""
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else torch.float32


def _expand_groups(t: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """(batch, G, N, L) -> (batch, dim, N, L): channel d reads group d // (dim // G)."""
    return t.to(dtype).repeat_interleave(dim // t.shape[1], dim=1)


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
    compute = compute_dtype(u, delta, A, B, C, D, delta_bias)
    dt = delta.to(compute)
    if delta_bias is not None:
        dt = dt + delta_bias.to(compute)[None, :, None]
    if delta_softplus:
        dt = F.softplus(dt)
    uc = u.to(compute)
    Ac = A.to(compute)
    Bx = _expand_groups(B, dim, compute)  # (batch, dim, N, L)
    Cx = _expand_groups(C, dim, compute)
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


def selective_scan_ref_backward(
    grad_y: torch.Tensor,
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    *,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = True,
) -> tuple[torch.Tensor, ...]:
    """Gradients ``(du, ddelta, dA, dB, dC, dD, ddelta_bias)`` by the reverse recurrence.

    With ``g_t`` the gradient w.r.t. ``h_t``: ``g_t = C_t * gy_t + exp(dt_{t+1} A) * g_{t+1}``;
    every input gradient is then a local product of ``g_t``, ``h_{t-1}`` and the inputs at ``t``.
    ``dD`` / ``ddelta_bias`` are ``None`` when ``D`` / ``delta_bias`` are. Each gradient has its
    input's dtype.
    """
    batch, dim, length = u.shape
    n_state = A.shape[1]
    groups = B.shape[1]
    compute = compute_dtype(grad_y, u, delta, A, B, C, D, delta_bias)
    z = delta.to(compute)
    if delta_bias is not None:
        z = z + delta_bias.to(compute)[None, :, None]
    dt = F.softplus(z) if delta_softplus else z
    uc, Ac, gy = u.to(compute), A.to(compute), grad_y.to(compute)
    Bx = _expand_groups(B, dim, compute)
    Cx = _expand_groups(C, dim, compute)

    # Forward pass, keeping every state: hs[t] = h_t, hs[-1] = h_{-1} = 0.
    hs = [u.new_zeros((batch, dim, n_state), dtype=compute)]
    for t in range(length):
        dt_t = dt[:, :, t, None]
        hs.append(torch.exp(dt_t * Ac) * hs[-1] + (dt_t * uc[:, :, t, None]) * Bx[:, :, :, t])

    g = torch.zeros_like(hs[0])
    g_dt = torch.zeros_like(dt)
    g_u = torch.zeros_like(uc)
    g_Bx = torch.zeros_like(Bx)
    g_Cx = torch.zeros_like(Cx)
    g_A = torch.zeros_like(Ac)
    for t in reversed(range(length)):
        h_t, h_prev = hs[t + 1], hs[t]
        dt_t = dt[:, :, t, None]
        u_t = uc[:, :, t, None]
        decay = torch.exp(dt_t * Ac)
        g = g + Cx[:, :, :, t] * gy[:, :, t, None]  # y_t = <C_t, h_t>
        g_Cx[:, :, :, t] = gy[:, :, t, None] * h_t
        # h_t = decay * h_prev + dt_t * u_t * B_t
        g_dt[:, :, t] = (g * (h_prev * decay * Ac + u_t * Bx[:, :, :, t])).sum(-1)
        g_u[:, :, t] = (g * dt_t * Bx[:, :, :, t]).sum(-1)
        g_Bx[:, :, :, t] = g * dt_t * u_t
        g_A = g_A + (g * h_prev * decay * dt_t).sum(0)
        g = g * decay  # gradient w.r.t. h_{t-1} through the recurrence
    g_D = None
    if D is not None:
        g_u = g_u + gy * D.to(compute)[None, :, None]
        g_D = (gy * uc).sum((0, 2)).to(D.dtype)
    g_z = g_dt * torch.sigmoid(z) if delta_softplus else g_dt
    g_bias = g_z.sum((0, 2)).to(delta_bias.dtype) if delta_bias is not None else None
    g_B = g_Bx.view(batch, groups, dim // groups, n_state, length).sum(2)
    g_C = g_Cx.view(batch, groups, dim // groups, n_state, length).sum(2)
    return (
        g_u.to(u.dtype),
        g_z.to(delta.dtype),
        g_A.to(A.dtype),
        g_B.to(B.dtype),
        g_C.to(C.dtype),
        g_D,
        g_bias,
    )
