"""Vectorized PyTorch selective scan (CPU and GPU), forward and hand-written backward.

Everything except the recurrence ``h_t = a_t * h_{t-1} + x_t`` (``a_t = exp(dt_t A)``) is a
handful of whole-tensor ops on the natural ``(batch, dim[, N], L)`` layout. The recurrence runs
along the last axis in one of two ways:

- ``"chunked"`` (CPU default): split ``L`` into ``n`` chunks of ``T ~ sqrt(L)`` steps; scan all
  chunks at once with ``T`` fused in-place ``addcmul_`` steps, take each chunk's decay product
  with one ``cumprod``, chain the ``n`` chunk end states sequentially, and add each chunk's
  carry-in with one more op. About ``2 sqrt(L)`` small ops instead of ``L``: on CPU the per-op
  overhead (several microseconds) is what the sequential reference pays ``~7 L`` times.
- ``"doubling"`` (CUDA default): Hillis-Steele parallel scan, ``ceil(log2 L)`` rounds of
  whole-tensor ops (``O(L log L)`` work, fewest kernel launches).

Both only multiply decays together (no division, no ``exp`` of a cumulative sum), so they stay
finite for long sequences and large decays whenever the reference does. ``d_state == 1`` (every
official MobileMamba variant) drops the state axis entirely.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .ref import compute_dtype

SCAN_METHODS: tuple[str, ...] = ("auto", "chunked", "doubling")


def _pick_method(method: str, device: torch.device) -> str:
    if method not in SCAN_METHODS:
        raise ValueError(f"unknown scan method {method!r}; choose one of {SCAN_METHODS}")
    if method == "auto":
        return "doubling" if device.type == "cuda" else "chunked"
    return method


def chunk_size(length: int) -> int:
    """Chunk length minimising the op count ``T + ceil(L / T)`` plus the fixed cost of chaining
    chunks (~10 ops: cumprod, copies, the carry-in) and of padding (~6), so short sequences
    (``L <= 16``) run as one chunk, i.e. plain sequential steps."""
    if length <= 2:
        return max(length, 1)
    best, best_cost = length, float(length + 1)
    for t in range(1, length + 1):
        n_chunks = math.ceil(length / t)
        cost = t + n_chunks + (10 if n_chunks > 1 else 0) + (6 if length % t else 0)
        if cost < best_cost:
            best, best_cost = t, cost
    return best


def _scan_chunked_(a: torch.Tensor, x: torch.Tensor, chunk: int, reverse: bool) -> None:
    """In-place chunked scan of ``x`` along the last axis; with ``reverse`` ``a`` is already shifted."""
    length = x.shape[-1]
    n_chunks = math.ceil(length / chunk)
    pad = n_chunks * chunk - length
    xp = F.pad(x, (0, pad)) if pad else x
    ap = F.pad(a, (0, pad), value=1.0) if pad else a
    xv = xp.unflatten(-1, (n_chunks, chunk))  # (..., n, T)
    av = ap.unflatten(-1, (n_chunks, chunk))
    xs, as_ = xv.unbind(-1), av.unbind(-1)
    if reverse:  # x_t += a'_t x_{t+1} within chunks, a'_t = a_{t+1}
        for t in range(chunk - 2, -1, -1):
            xs[t].addcmul_(as_[t], xs[t + 1])
    else:
        for t in range(1, chunk):
            xs[t].addcmul_(as_[t], xs[t - 1])
    if n_chunks > 1:
        # prod[..., k, t]: decay from the chunk boundary to position t of chunk k.
        if reverse:
            prod = av.flip(-1).cumprod(-1).flip(-1)
            edge = xv[..., 0].clone()  # (..., n) local value at each chunk's first step
            edge_decay = prod[..., 0]
            es, ds = edge.unbind(-1), edge_decay.unbind(-1)
            for k in range(n_chunks - 2, -1, -1):
                es[k].addcmul_(ds[k], es[k + 1])
            xv[..., :-1, :].addcmul_(prod[..., :-1, :], edge[..., 1:, None])
        else:
            prod = av.cumprod(-1)
            edge = xv[..., -1].clone()  # (..., n) local value at each chunk's last step
            edge_decay = prod[..., -1]
            es, ds = edge.unbind(-1), edge_decay.unbind(-1)
            for k in range(1, n_chunks):
                es[k].addcmul_(ds[k], es[k - 1])
            xv[..., 1:, :].addcmul_(prod[..., 1:, :], edge[..., :-1, None])
    if pad:
        x.copy_(xp[..., :length])


def _scan_doubling_(a: torch.Tensor, x: torch.Tensor, reverse: bool) -> None:
    """In-place Hillis-Steele scan of ``x`` along the last axis; with ``reverse`` ``a`` is already shifted.

    After the round with offset ``o``, ``x_t`` holds the ``2o`` nearest terms and ``w_t`` the product
    of the ``o`` decays linking ``x_t`` to ``x_{t -/+ o}``. Right-hand sides are materialised before
    being written back, so the overlapping slices are safe.
    """
    length = x.shape[-1]
    w = a.clone()
    offset = 1
    while offset < length:
        if reverse:
            x[..., :-offset] = torch.addcmul(x[..., :-offset], w[..., :-offset], x[..., offset:])
            if 2 * offset < length:
                w[..., :-offset] = w[..., :-offset] * w[..., offset:]
        else:
            x[..., offset:] = torch.addcmul(x[..., offset:], w[..., offset:], x[..., :-offset])
            if 2 * offset < length:
                w[..., offset:] = w[..., offset:] * w[..., :-offset]
        offset *= 2


def linear_scan_(
    a: torch.Tensor, x: torch.Tensor, *, reverse: bool = False, method: str = "auto", chunk: int | None = None
) -> torch.Tensor:
    """In place along the last axis of contiguous ``x``: ``x_t += a_t * x_{t-1}``; returns ``x``.

    With ``reverse=True`` it runs backwards, ``x_t += a_{t+1} * x_{t+1}`` (the adjoint recurrence,
    same ``a`` as the forward one). ``a`` must have ``x``'s shape and is not modified. ``chunk``
    overrides the chunk length of the ``"chunked"`` method (tests use it to force padding).
    """
    if a.shape != x.shape:
        raise ValueError(f"linear_scan_: a and x must have the same shape, got {tuple(a.shape)} and {tuple(x.shape)}")
    if not x.is_contiguous():
        raise ValueError("linear_scan_: x must be contiguous (it is updated in place)")
    length = x.shape[-1]
    if length <= 1 or x.numel() == 0:
        return x
    if reverse:  # shift so that step t reads a_{t+1}; the value at t = L - 1 is never used
        a = torch.cat([a[..., 1:], a.new_zeros(a.shape[:-1] + (1,))], dim=-1)
    if _pick_method(method, x.device) == "doubling":
        _scan_doubling_(a, x, reverse)
    else:
        if chunk is not None and not 1 <= chunk <= length:
            raise ValueError(f"chunk must be in [1, L={length}], got {chunk}")
        _scan_chunked_(a, x, chunk or chunk_size(length), reverse)
    return x


def _inputs(u, delta, A, B, C, delta_bias, delta_softplus, dtype):
    """``z``, ``dt`` (batch, G, dg, L) and views of u, A, B, C shaped to broadcast against states.

    States are ``(batch, G, dg, L)`` when ``N == 1`` and ``(batch, G, dg, N, L)`` otherwise.
    """
    batch, dim, length = u.shape
    n_state, groups = A.shape[1], B.shape[1]
    dg = dim // groups
    z = delta.to(dtype)
    if delta_bias is not None:
        z = z + delta_bias.to(dtype)[:, None]
    dt = F.softplus(z) if delta_softplus else z
    shape4 = (batch, groups, dg, length)
    u4 = u.to(dtype).reshape(shape4)
    if n_state == 1:
        A_ = A.to(dtype).reshape(groups, dg, 1)
        B_ = B.to(dtype).reshape(batch, groups, 1, length)
        C_ = C.to(dtype).reshape(batch, groups, 1, length)
    else:
        A_ = A.to(dtype).reshape(groups, dg, n_state, 1)
        B_ = B.to(dtype).unsqueeze(2)  # (b, G, 1, N, L)
        C_ = C.to(dtype).unsqueeze(2)
    return z.reshape(shape4), dt.reshape(shape4), u4, A_, B_, C_


def _product(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x * y`` as a fresh contiguous tensor (an elementwise op follows strided inputs' layout)."""
    out = torch.empty(torch.broadcast_shapes(x.shape, y.shape), dtype=x.dtype, device=x.device)
    return torch.mul(x, y, out=out)


def _states(dt, u4, A_, B_, method, single):
    """Decays ``a`` and states ``h`` of the forward recurrence (both contiguous)."""
    dt_s = dt if single else dt.unsqueeze(-2)
    a = torch.mul(dt_s, A_).exp_()
    du = dt * u4
    h = _product(du if single else du.unsqueeze(-2), B_)
    return a, du, linear_scan_(a, h, method=method)


# CPU: run the batch in blocks of about this many state elements (1 MiB of fp32 per tensor), so the
# dozen intermediates of one block stay in cache; on the largest proxy shapes this halves the time.
CPU_BLOCK_ELEMENTS = 1 << 18


def _batch_blocks(u: torch.Tensor, n_state: int) -> list[slice]:
    batch, dim, length = u.shape
    per_sample = max(1, dim * length * n_state)
    if u.device.type != "cpu" or batch * per_sample <= CPU_BLOCK_ELEMENTS:
        return [slice(0, batch)]
    step = max(1, CPU_BLOCK_ELEMENTS // per_sample)
    return [slice(i, min(i + step, batch)) for i in range(0, batch, step)]


def _fwd_block(u, delta, A, B, C, D, delta_bias, delta_softplus, method, dtype) -> torch.Tensor:
    batch, dim, length = u.shape
    single = A.shape[1] == 1
    _, dt, u4, A_, B_, C_ = _inputs(u, delta, A, B, C, delta_bias, delta_softplus, dtype)
    _, _, h = _states(dt, u4, A_, B_, method, single)
    y = h.mul_(C_) if single else torch.linalg.vecdot(h.transpose(-1, -2), C_.transpose(-1, -2))
    y = y.reshape(batch, dim, length)
    if D is not None:
        y = y.addcmul_(u4.reshape(batch, dim, length), D.to(dtype)[:, None])
    return y


def selective_scan_fwd(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    *,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = True,
    method: str = "auto",
) -> torch.Tensor:
    """Forward of the selective scan (shapes as in ``kernels.selective_scan``); returns ``y`` in u's dtype."""
    dtype = compute_dtype(u, delta, A, B, C, D, delta_bias)
    blocks = _batch_blocks(u, A.shape[1])
    with torch.no_grad():
        if len(blocks) == 1:
            return _fwd_block(u, delta, A, B, C, D, delta_bias, delta_softplus, method, dtype).to(u.dtype)
        y = torch.empty(u.shape, dtype=u.dtype, device=u.device)
        for sl in blocks:
            y[sl] = _fwd_block(u[sl], delta[sl], A, B[sl], C[sl], D, delta_bias, delta_softplus, method, dtype)
    return y


def _bwd_block(grad_y, u, delta, A, B, C, D, delta_bias, delta_softplus, method, dtype):
    """Block gradients in ``dtype``: per-sample ones for this block, parameter ones summed over it."""
    batch, dim, length = u.shape
    groups, n_state = B.shape[1], A.shape[1]
    dg = dim // groups
    single = n_state == 1
    z, dt, u4, A_, B_, C_ = _inputs(u, delta, A, B, C, delta_bias, delta_softplus, dtype)
    a, du, h = _states(dt, u4, A_, B_, method, single)
    gy = grad_y.to(dtype).reshape(batch, groups, dg, length)
    gy_s = gy if single else gy.unsqueeze(-2)
    # g_t = C_t gy_t + a_{t+1} g_{t+1}: gradient w.r.t. h_t
    g = linear_scan_(a, _product(gy_s, C_), reverse=True, method=method)
    # q_t = g_t a_t h_{t-1}: gradient w.r.t. the log-decay dt_t A (zero at t = 0)
    q = torch.zeros_like(h)
    if length > 1:
        torch.mul(g[..., 1:] * a[..., 1:], h[..., :-1], out=q[..., 1:])
    if single:
        gB_sum = g * B_  # sum_n g B
        qA_sum = q * A_
        g_B = (g * du).sum(2, keepdim=True)  # (b, G, 1, L)
        g_C = (gy * h).sum(2, keepdim=True)
        g_A = (q * dt).sum((0, 3)).reshape(dim, 1)
    else:
        gB_sum = torch.linalg.vecdot(g.transpose(-1, -2), B_.transpose(-1, -2))
        qA_sum = torch.linalg.vecdot(q.transpose(-1, -2), A_.transpose(-1, -2))
        g_B = torch.einsum("bgjnt,bgjt->bgnt", g, du)
        g_C = torch.einsum("bgjt,bgjnt->bgnt", gy, h)
        g_A = torch.einsum("bgjnt,bgjt->gjn", q, dt).reshape(dim, n_state)
    g_dt = qA_sum.addcmul_(gB_sum, u4)
    g_u = gB_sum.mul_(dt)
    g_D = None
    if D is not None:
        g_u.addcmul_(gy, D.to(dtype).reshape(groups, dg, 1))
        g_D = (gy * u4).sum((0, 3)).reshape(dim)
    g_z = g_dt.mul_(torch.sigmoid(z)) if delta_softplus else g_dt
    g_bias = g_z.sum((0, 3)).reshape(dim) if delta_bias is not None else None
    return (g_u.reshape(batch, dim, length), g_z.reshape(batch, dim, length), g_A, g_B.reshape(B.shape),
            g_C.reshape(C.shape), g_D, g_bias)  # fmt: skip


def selective_scan_bwd(
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
    method: str = "auto",
) -> tuple[torch.Tensor | None, ...]:
    """Gradients ``(du, ddelta, dA, dB, dC, dD, ddelta_bias)``; see ``ref.selective_scan_ref_backward``.

    Recomputes the forward states, runs the adjoint recurrence once in reverse, and forms every
    gradient with whole-tensor ops (per block of the batch on CPU, see ``CPU_BLOCK_ELEMENTS``).
    """
    dtype = compute_dtype(grad_y, u, delta, A, B, C, D, delta_bias)
    blocks = _batch_blocks(u, A.shape[1])
    with torch.no_grad():
        if len(blocks) == 1:
            g_u, g_delta, g_A, g_B, g_C, g_D, g_bias = _bwd_block(
                grad_y, u, delta, A, B, C, D, delta_bias, delta_softplus, method, dtype
            )
        else:
            g_u = torch.empty(u.shape, dtype=u.dtype, device=u.device)
            g_delta = torch.empty(delta.shape, dtype=delta.dtype, device=u.device)
            g_B = torch.empty(B.shape, dtype=B.dtype, device=u.device)
            g_C = torch.empty(C.shape, dtype=C.dtype, device=u.device)
            g_A = g_D = g_bias = None
            for sl in blocks:
                parts = _bwd_block(grad_y[sl], u[sl], delta[sl], A, B[sl], C[sl], D, delta_bias, delta_softplus,
                                   method, dtype)  # fmt: skip
                g_u[sl], g_delta[sl], g_B[sl], g_C[sl] = parts[0], parts[1], parts[3], parts[4]
                sums = [g_A, g_D, g_bias]
                for i, part in enumerate((parts[2], parts[5], parts[6])):
                    if part is not None:
                        sums[i] = part if sums[i] is None else sums[i].add_(part)
                g_A, g_D, g_bias = sums
    return (
        g_u.to(u.dtype),
        g_delta.to(delta.dtype),
        g_A.to(A.dtype),
        g_B.to(B.dtype),
        g_C.to(C.dtype),
        g_D.to(D.dtype) if g_D is not None else None,
        g_bias.to(delta_bias.dtype) if g_bias is not None else None,
    )
