"""Triton forward and backward kernels of the selective scan (fp32/fp64 accumulation).

One program handles one batch element and ``BLOCK_D`` channels with all ``N`` states, walks the
sequence in tiles of ``BLOCK_L`` and scans each tile with ``tl.associative_scan`` on the pairs
``(a_t, x_t) = (exp(dt_t A), dt_t B_t u_t)``; a per-row carry links the tiles. The backward
recomputes the states tile by tile into an fp32 scratch buffer, then walks the tiles in reverse
(loading them back to front, so the adjoint recurrence is again a forward scan), producing
``du``/``ddelta`` directly and per-channel/per-batch partials of ``dB``, ``dC``, ``dA``, ``dD``,
``ddelta_bias`` that are summed in PyTorch (deterministic, no atomics).

Inputs may be fp16/bf16/fp32/fp64 and any strides (they are made contiguous here); accumulation
is fp32, or fp64 when any input is fp64.

Triton 3.x reads ``TRITON_INTERPRET`` once, when ``@triton.jit`` decorates a function, i.e. when
this module is first imported. This library never sets it. To run these kernels on CPU (tests),
set ``TRITON_INTERPRET=1`` in the environment of a fresh process before importing this module;
``interpreting()`` tells which mode the kernels were built in.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
import triton
import triton.language as tl

from .op import register_impl
from .ref import compute_dtype


@triton.jit
def _combine(a_left, x_left, a_right, x_right):
    # (a, x) pairs of h_t = a_t h_{t-1} + x_t compose as: right after left.
    return a_left * a_right, a_right * x_left + x_right


@triton.jit
def _softplus(z):
    # softplus(z) = max(z, 0) + log1p(exp(-|z|)), with log1p's series for tiny arguments.
    e = tl.exp(-tl.abs(z))
    log1p_e = tl.where(e < 1e-4, e * (1.0 - 0.5 * e), tl.log(1.0 + e))
    return tl.maximum(z, 0.0) + log1p_e


@triton.jit
def _scan_fwd_kernel(
    u_ptr,
    delta_ptr,
    A_ptr,
    B_ptr,
    C_ptr,
    D_ptr,
    bias_ptr,
    y_ptr,
    dim,
    length,
    dim_per_group,
    n_groups,
    N_STATE: tl.constexpr,
    HAS_D: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    SOFTPLUS: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_L: tl.constexpr,
):
    pid_b = tl.program_id(0).to(tl.int64)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < dim
    mask_dn = mask_d[:, None] & (offs_n[None, :] < N_STATE)
    row = pid_b * dim * length + offs_d.to(tl.int64) * length  # (BLOCK_D,) start of u[b, d, :]
    group = offs_d // dim_per_group
    bc_row = ((pid_b * n_groups + group.to(tl.int64)) * N_STATE)[:, None] * length + offs_n[None, :] * length
    A = tl.load(A_ptr + offs_d[:, None] * N_STATE + offs_n[None, :], mask=mask_dn, other=0.0).to(ACC)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(ACC)
    if HAS_D:
        D = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(ACC)
    is_last = (tl.arange(0, BLOCK_L) == BLOCK_L - 1)[None, None, :]
    carry = tl.zeros([BLOCK_D, BLOCK_N], dtype=ACC)
    for start in range(0, length, BLOCK_L):
        offs_l = start + tl.arange(0, BLOCK_L)
        mask_l = offs_l < length
        mask_dl = mask_d[:, None] & mask_l[None, :]
        ptr_dl = row[:, None] + offs_l[None, :]
        u = tl.load(u_ptr + ptr_dl, mask=mask_dl, other=0.0).to(ACC)
        dt = tl.load(delta_ptr + ptr_dl, mask=mask_dl, other=0.0).to(ACC)
        if HAS_BIAS:
            dt = dt + bias[:, None]
        if SOFTPLUS:
            dt = _softplus(dt)
        mask_3 = mask_dn[:, :, None] & mask_l[None, None, :]
        ptr_3 = bc_row[:, :, None] + offs_l[None, None, :]
        Bt = tl.load(B_ptr + ptr_3, mask=mask_3, other=0.0).to(ACC)
        Ct = tl.load(C_ptr + ptr_3, mask=mask_3, other=0.0).to(ACC)
        # Past the end: a = 1, x = 0, so the last column holds the state at t = L - 1.
        a = tl.where(mask_3, tl.exp(dt[:, None, :] * A[:, :, None]), 1.0)
        x = (dt * u)[:, None, :] * Bt
        a_cum, h = tl.associative_scan((a, x), axis=2, combine_fn=_combine)
        h = h + a_cum * carry[:, :, None]
        carry = tl.sum(tl.where(is_last, h, 0.0), axis=2)
        y = tl.sum(h * Ct, axis=1)
        if HAS_D:
            y = y + D[:, None] * u
        tl.store(y_ptr + ptr_dl, y, mask=mask_dl)


@triton.jit
def _scan_bwd_kernel(
    gy_ptr,
    u_ptr,
    delta_ptr,
    A_ptr,
    B_ptr,
    C_ptr,
    D_ptr,
    bias_ptr,
    h_ptr,  # scratch (batch, dim, N, L) in ACC
    gu_ptr,  # (batch, dim, L), u's dtype
    gdelta_ptr,  # (batch, dim, L), delta's dtype
    gBx_ptr,  # (batch, dim, N, L) per-channel dB contributions, ACC
    gCx_ptr,  # (batch, dim, N, L) per-channel dC contributions, ACC
    gA_ptr,  # (batch, dim, N) per-batch partials, ACC
    gD_ptr,  # (batch, dim) per-batch partials, ACC
    gbias_ptr,  # (batch, dim) per-batch partials, ACC
    dim,
    length,
    dim_per_group,
    n_groups,
    N_STATE: tl.constexpr,
    HAS_D: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    SOFTPLUS: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_L: tl.constexpr,
):
    pid_b = tl.program_id(0).to(tl.int64)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < dim
    mask_dn = mask_d[:, None] & (offs_n[None, :] < N_STATE)
    row = pid_b * dim * length + offs_d.to(tl.int64) * length
    group = offs_d // dim_per_group
    bc_row = ((pid_b * n_groups + group.to(tl.int64)) * N_STATE)[:, None] * length + offs_n[None, :] * length
    h_row = ((pid_b * dim + offs_d.to(tl.int64)) * N_STATE)[:, None] * length + offs_n[None, :] * length
    A = tl.load(A_ptr + offs_d[:, None] * N_STATE + offs_n[None, :], mask=mask_dn, other=0.0).to(ACC)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(ACC)
    if HAS_D:
        D = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(ACC)
    is_last = (tl.arange(0, BLOCK_L) == BLOCK_L - 1)[None, None, :]

    # Pass 1: forward states h_t into the scratch buffer.
    carry = tl.zeros([BLOCK_D, BLOCK_N], dtype=ACC)
    for start in range(0, length, BLOCK_L):
        offs_l = start + tl.arange(0, BLOCK_L)
        mask_l = offs_l < length
        mask_dl = mask_d[:, None] & mask_l[None, :]
        ptr_dl = row[:, None] + offs_l[None, :]
        u = tl.load(u_ptr + ptr_dl, mask=mask_dl, other=0.0).to(ACC)
        dt = tl.load(delta_ptr + ptr_dl, mask=mask_dl, other=0.0).to(ACC)
        if HAS_BIAS:
            dt = dt + bias[:, None]
        if SOFTPLUS:
            dt = _softplus(dt)
        mask_3 = mask_dn[:, :, None] & mask_l[None, None, :]
        Bt = tl.load(B_ptr + bc_row[:, :, None] + offs_l[None, None, :], mask=mask_3, other=0.0).to(ACC)
        a = tl.where(mask_3, tl.exp(dt[:, None, :] * A[:, :, None]), 1.0)
        x = (dt * u)[:, None, :] * Bt
        a_cum, h = tl.associative_scan((a, x), axis=2, combine_fn=_combine)
        h = h + a_cum * carry[:, :, None]
        carry = tl.sum(tl.where(is_last, h, 0.0), axis=2)
        tl.store(h_ptr + h_row[:, :, None] + offs_l[None, None, :], h, mask=mask_3)
    tl.debug_barrier()  # pass 2 reads states written by other threads of this program

    # Pass 2: adjoint g_t = C_t gy_t + a_{t+1} g_{t+1}, tiles from the end, each loaded back to front.
    acc_A = tl.zeros([BLOCK_D, BLOCK_N], dtype=ACC)
    acc_D = tl.zeros([BLOCK_D], dtype=ACC)
    acc_bias = tl.zeros([BLOCK_D], dtype=ACC)
    carry = tl.zeros([BLOCK_D, BLOCK_N], dtype=ACC)
    n_tiles = tl.cdiv(length, BLOCK_L)
    for i in range(0, n_tiles):
        end = length - i * BLOCK_L  # this tile covers t in [end - BLOCK_L, end), reversed
        offs_l = end - 1 - tl.arange(0, BLOCK_L)
        mask_l = offs_l >= 0
        mask_dl = mask_d[:, None] & mask_l[None, :]
        ptr_dl = row[:, None] + offs_l[None, :]
        mask_3 = mask_dn[:, :, None] & mask_l[None, None, :]
        ptr_3 = bc_row[:, :, None] + offs_l[None, None, :]
        u = tl.load(u_ptr + ptr_dl, mask=mask_dl, other=0.0).to(ACC)
        z = tl.load(delta_ptr + ptr_dl, mask=mask_dl, other=0.0).to(ACC)
        gy = tl.load(gy_ptr + ptr_dl, mask=mask_dl, other=0.0).to(ACC)
        # dt at t + 1 for the decay a_{t+1}; zero decay past the end (g_L = 0 anyway).
        mask_next = mask_d[:, None] & (offs_l[None, :] + 1 < length) & mask_l[None, :]
        z_next = tl.load(delta_ptr + ptr_dl + 1, mask=mask_next, other=0.0).to(ACC)
        if HAS_BIAS:
            z = z + bias[:, None]
            z_next = z_next + bias[:, None]
        dt = z
        dt_next = z_next
        if SOFTPLUS:
            dt = _softplus(z)
            dt_next = _softplus(z_next)
        Bt = tl.load(B_ptr + ptr_3, mask=mask_3, other=0.0).to(ACC)
        Ct = tl.load(C_ptr + ptr_3, mask=mask_3, other=0.0).to(ACC)
        mask_3_next = mask_dn[:, :, None] & mask_next[:, None, :]
        a_next = tl.where(mask_3_next, tl.exp(dt_next[:, None, :] * A[:, :, None]), 0.0)
        c = gy[:, None, :] * Ct
        a_cum, g = tl.associative_scan((a_next, c), axis=2, combine_fn=_combine)
        g = g + a_cum * carry[:, :, None]
        carry = tl.sum(tl.where(is_last, g, 0.0), axis=2)

        ptr_h = h_ptr + h_row[:, :, None] + offs_l[None, None, :]
        h = tl.load(ptr_h, mask=mask_3, other=0.0)
        mask_prev = mask_3 & (offs_l[None, None, :] >= 1)
        h_prev = tl.load(ptr_h - 1, mask=mask_prev, other=0.0)
        a = tl.exp(dt[:, None, :] * A[:, :, None])
        q = g * a * h_prev  # gradient w.r.t. the log-decay dt_t * A
        gB_sum = tl.sum(g * Bt, axis=1)  # (BLOCK_D, BLOCK_L)
        g_dt = tl.sum(q * A[:, :, None], axis=1) + gB_sum * u
        g_u = gB_sum * dt
        if HAS_D:
            g_u = g_u + gy * D[:, None]
            acc_D += tl.sum(gy * u, axis=1)
        if SOFTPLUS:
            g_z = g_dt * tl.sigmoid(z)
        else:
            g_z = g_dt
        acc_bias += tl.sum(g_z, axis=1)
        acc_A += tl.sum(q * dt[:, None, :], axis=2)
        tl.store(gu_ptr + ptr_dl, g_u, mask=mask_dl)
        tl.store(gdelta_ptr + ptr_dl, g_z, mask=mask_dl)
        ptr_x = h_row[:, :, None] + offs_l[None, None, :]
        tl.store(gBx_ptr + ptr_x, g * (dt * u)[:, None, :], mask=mask_3)
        tl.store(gCx_ptr + ptr_x, gy[:, None, :] * h, mask=mask_3)

    part = pid_b * dim + offs_d
    tl.store(gA_ptr + part[:, None] * N_STATE + offs_n[None, :], acc_A, mask=mask_dn)
    if HAS_D:
        tl.store(gD_ptr + part, acc_D, mask=mask_d)
    if HAS_BIAS:
        tl.store(gbias_ptr + part, acc_bias, mask=mask_d)


def interpreting() -> bool:
    """Whether these kernels were built for the Triton interpreter (``TRITON_INTERPRET=1`` at import)."""
    return type(_scan_fwd_kernel).__name__ == "InterpretedFunction"


_warned_interpret_on_cuda = False


def _check_device(u: torch.Tensor) -> None:
    global _warned_interpret_on_cuda
    if u.device.type == "cuda":
        if interpreting() and not _warned_interpret_on_cuda:
            _warned_interpret_on_cuda = True
            warnings.warn(
                "TRITON_INTERPRET=1 is set while the selective scan runs on CUDA: the Triton kernels are being "
                "INTERPRETED on the host, about 1000x slower than compiled. Unset TRITON_INTERPRET for real runs.",
                RuntimeWarning,
                stacklevel=3,
            )
        return
    if u.device.type == "cpu" and interpreting():
        return
    raise ValueError(
        f"the 'triton' selective-scan backend needs CUDA tensors, got {u.device}; use backend='torch' (or 'auto') "
        "on CPU, or set TRITON_INTERPRET=1 in a fresh process before importing kernels.selective_scan.triton "
        "to interpret the kernels (slow, for tests)"
    )


# Longest sequence tile; tests lower it to exercise the carry between tiles on small shapes.
MAX_BLOCK_L = 64


def _blocks(dim: int, n_state: int, length: int) -> tuple[int, int, int]:
    block_n = triton.next_power_of_2(n_state)
    block_l = min(triton.next_power_of_2(max(length, 1)), MAX_BLOCK_L)
    block_d = max(1, min(32, triton.next_power_of_2(dim), 4096 // (block_n * block_l)))
    return block_d, block_n, block_l


def _acc_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _prep(*tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    return [t.contiguous() if t is not None else None for t in tensors]


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
) -> torch.Tensor:
    """Forward with the Triton kernel; shapes as in ``kernels.selective_scan``."""
    _check_device(u)
    batch, dim, length = u.shape
    n_state, groups = A.shape[1], B.shape[1]
    dtype = compute_dtype(u, delta, A, B, C, D, delta_bias)
    u, delta, A, B, C, D, delta_bias = _prep(u, delta, A, B, C, D, delta_bias)
    y = torch.empty((batch, dim, length), dtype=u.dtype, device=u.device)
    if y.numel() == 0:
        return y
    block_d, block_n, block_l = _blocks(dim, n_state, length)
    grid = (batch, triton.cdiv(dim, block_d))
    with torch.cuda.device(u.device) if u.is_cuda else contextlib.nullcontext():
        _scan_fwd_kernel[grid](
            u, delta, A, B, C,
            D if D is not None else u, delta_bias if delta_bias is not None else u, y,
            dim, length, dim // groups, groups,
            N_STATE=n_state, HAS_D=D is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=delta_softplus,
            ACC=_acc_dtype(dtype), BLOCK_D=block_d, BLOCK_N=block_n, BLOCK_L=block_l,
        )  # fmt: skip
    return y


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
) -> tuple[torch.Tensor | None, ...]:
    """Gradients ``(du, ddelta, dA, dB, dC, dD, ddelta_bias)`` with the Triton kernel."""
    _check_device(u)
    batch, dim, length = u.shape
    n_state, groups = A.shape[1], B.shape[1]
    dtype = compute_dtype(grad_y, u, delta, A, B, C, D, delta_bias)
    grad_y, u, delta, A, B, C, D, delta_bias = _prep(grad_y, u, delta, A, B, C, D, delta_bias)
    dev = u.device
    g_u = torch.empty_like(u)
    g_delta = torch.empty_like(delta)
    h = torch.empty((batch, dim, n_state, length), dtype=dtype, device=dev)
    g_Bx = torch.empty_like(h)
    g_Cx = torch.empty_like(h)
    g_A = torch.zeros((batch, dim, n_state), dtype=dtype, device=dev)
    g_D = torch.zeros((batch, dim), dtype=dtype, device=dev)
    g_bias = torch.zeros((batch, dim), dtype=dtype, device=dev)
    if u.numel() > 0:
        block_d, block_n, block_l = _blocks(dim, n_state, length)
        grid = (batch, triton.cdiv(dim, block_d))
        with torch.cuda.device(dev) if u.is_cuda else contextlib.nullcontext():
            _scan_bwd_kernel[grid](
                grad_y, u, delta, A, B, C,
                D if D is not None else u, delta_bias if delta_bias is not None else u,
                h, g_u, g_delta, g_Bx, g_Cx, g_A, g_D, g_bias,
                dim, length, dim // groups, groups,
                N_STATE=n_state, HAS_D=D is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=delta_softplus,
                ACC=_acc_dtype(dtype), BLOCK_D=block_d, BLOCK_N=block_n, BLOCK_L=block_l,
            )  # fmt: skip
    else:
        g_u.zero_()
        g_delta.zero_()
        g_Bx.zero_()
        g_Cx.zero_()
    g_B = g_Bx.view(batch, groups, dim // groups, n_state, length).sum(2)
    g_C = g_Cx.view(batch, groups, dim // groups, n_state, length).sum(2)
    return (
        g_u,
        g_delta,
        g_A.sum(0).to(A.dtype),
        g_B.to(B.dtype),
        g_C.to(C.dtype),
        g_D.sum(0).to(D.dtype) if D is not None else None,
        g_bias.sum(0).to(delta_bias.dtype) if delta_bias is not None else None,
    )


register_impl("triton", selective_scan_fwd, selective_scan_bwd)
