"""Compiled CPU selective scan (numba): sequential forward and backward kernels, forward and backward.

A whole-tensor PyTorch path (``torch_fast.py``) pays several microseconds per op and cannot go
much below ``~2 sqrt(L)`` ops per call; here the recurrence is a plain loop over ``L`` compiled
by numba, one channel row at a time, parallel over rows with ``prange``:

- forward: one work unit per ``(batch, channel)`` row, ``h`` kept in registers (``d_state == 1``)
  or a small local array (general ``d_state``);
- backward: one work unit per ``(batch, group, block of channels)``, so that the gradients of the
  grouped ``B``/``C`` are accumulated race-free into the unit's own rows; each channel recomputes its
  states into a local buffer and walks the adjoint recurrence back to front. Per-row partials of
  ``dA``/``dD``/``ddelta_bias`` (and per-block ones of ``dB``/``dC``) are summed in PyTorch.

Arithmetic is in float32 (float64 if any input is float64; half inputs are converted). Outputs
and gradients are returned in their inputs' dtypes. Inputs may have any strides (they are made
contiguous here). Threads: ``torch.get_num_threads()`` (capped at numba's pool size); with one
thread, for small problems (``PARALLEL_MIN_ELEMENTS``), or in a child forked after the parallel
kernels ran (GNU OpenMP is not fork-safe), the same row kernels run from serial drivers that never
touch numba's threading layer.

Compilation is lazy and cached on disk (``cache=True``) under ``$NUMBA_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/mobilemamba_lab/numba`` (default ``~/.cache/...``), never in the repository.
Importing this module raises ImportError when numba is not installed; ``kernels.selective_scan``
then keeps ``"auto"`` on the ``"torch"`` backend.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from numba.core import config as _numba_config


def cache_dir() -> Path:
    """Where compiled kernels are cached: ``$NUMBA_CACHE_DIR``, else the user's cache folder."""
    if _numba_config.CACHE_DIR:
        return Path(_numba_config.CACHE_DIR)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mobilemamba_lab" / "numba"


# Must be set before the @njit(cache=True) decorations below pick their cache locator (numba's default
# would write __pycache__/*.nbi next to this file, i.e. into the repository).
if not _numba_config.CACHE_DIR:
    _numba_config.CACHE_DIR = str(cache_dir())

import numba  # noqa: E402
from llvmlite import ir  # noqa: E402
from numba import njit, prange, types  # noqa: E402
from numba.core.extending import intrinsic, overload  # noqa: E402

from .op import register_impl  # noqa: E402
from .ref import compute_dtype  # noqa: E402

# error_model="numpy": float division without the Python zero check (its branch keeps loops scalar).
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


# ---------------------------------------------------------------------------------------------
# Vectorizable float32 exp / log1p (libm calls would keep every loop scalar: ~3x slower here).
# float64 uses math.exp / math.log1p (correctly rounded enough for gradcheck; speed is secondary).


@intrinsic
def _f32_from_bits(typingctx, bits):
    """Reinterpret the low 32 bits of an integer as a float32 (LLVM bitcast, vectorizable)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        value = args[0]
        if bits.bitwidth > 32:
            value = builder.trunc(value, ir.IntType(32))
        return builder.bitcast(value, ir.FloatType())

    return types.float32(bits), codegen


_F = np.float32


@njit(**_JIT)
def _exp32(x):
    # Cephes expf: x = k ln2 + r (Cody-Waite), degree-6 polynomial on |r| <= ln2/2, times 2^k built from
    # exponent bits in two halves (so k in [-150, 128] gives denormals and inf correctly). ~1 ulp.
    xc = min(max(x, _F(-104.0)), _F(89.0))
    kf = (xc * _F(1.44269504) + _F(12582912.0)) - _F(12582912.0)  # round to nearest integer
    r = xc - kf * _F(0.693359375) - kf * _F(-2.12194440e-4)
    p = _F(1.9875691500e-4)
    p = p * r + _F(1.3981999507e-3)
    p = p * r + _F(8.3334519073e-3)
    p = p * r + _F(4.1665795894e-2)
    p = p * r + _F(1.6666665459e-1)
    p = p * r + _F(5.0000001201e-1)
    p = p * r * r + r + _F(1.0)
    k = np.int32(kf)
    k1 = k >> np.int32(1)
    k2 = k - k1
    scale1 = _f32_from_bits((k1 + np.int32(127)) << np.int32(23))
    res = p * scale1 * _f32_from_bits((k2 + np.int32(127)) << np.int32(23))
    return x if x != x else res


@njit(**_JIT)
def _log1p_unit32(e):
    # log1p(e) for e in [0, 1]: 2 atanh(s) with s = e / (2 + e) in [0, 1/3], odd series to s^15 (~1e-9 rel).
    s = e / (_F(2.0) + e)
    s2 = s * s
    p = _F(2.0 / 15.0)
    p = p * s2 + _F(2.0 / 13.0)
    p = p * s2 + _F(2.0 / 11.0)
    p = p * s2 + _F(2.0 / 9.0)
    p = p * s2 + _F(2.0 / 7.0)
    p = p * s2 + _F(2.0 / 5.0)
    p = p * s2 + _F(2.0 / 3.0)
    p = p * s2 + _F(2.0)
    return s * p


def _exp(x):
    """exp in x's precision (numba-only; float32 vectorizable)."""
    raise NotImplementedError


def _log1p_unit(e):
    """log1p(e) for e in [0, 1], in e's precision (numba-only)."""
    raise NotImplementedError


@overload(_exp)
def _exp_impl(x):
    if x == types.float32:
        return lambda x: _exp32(x)
    return lambda x: math.exp(x)


@overload(_log1p_unit)
def _log1p_unit_impl(e):
    if e == types.float32:
        return lambda e: _log1p_unit32(e)
    return lambda e: math.log1p(e)


@njit(**_JIT)
def _softplus(z, zero):
    # max(z, 0) + log1p(exp(-|z|)): no overflow, accurate for very negative z; equals z above ~17 in fp32
    # (torch's softplus returns z itself above its threshold 20: the same value).
    return max(z, zero) + _log1p_unit(_exp(-abs(z)))


@njit(**_JIT)
def _sigmoid(z, one):
    e = _exp(-abs(z))
    return one / (one + e) if z >= 0 else e / (one + e)


# ---------------------------------------------------------------------------------------------
# Row kernels: only the recurrences are sequential loops; everything else is in separate loops over
# t without dependencies, which LLVM vectorizes.


@njit(**_JIT)
def _fwd_row(u, delta, A, B, C, D, bias, y, b, d, g, has_D, has_bias, softplus, dec, xs):
    """y[b, d, :] for one channel row; ``dec``/``xs`` are scratch rows of length L."""
    length = u.shape[2]
    n_state = A.shape[1]
    zero = u.dtype.type(0.0)
    bias_d = bias[d] if has_bias else zero
    if n_state == 1:  # d_state == 1: decay and input term in one vectorized pass, then h is a scalar
        a_d = A[d, 0]
        for t in range(length):
            z = delta[b, d, t] + bias_d
            dt = _softplus(z, zero) if softplus else z
            dec[t] = _exp(dt * a_d)
            xs[t] = dt * u[b, d, t] * B[b, g, 0, t]
        h = zero
        for t in range(length):
            h = dec[t] * h + xs[t]
            y[b, d, t] = h
        for t in range(length):
            y[b, d, t] = y[b, d, t] * C[b, g, 0, t]
    else:
        dts = np.empty(length, dtype=u.dtype)
        for t in range(length):
            z = delta[b, d, t] + bias_d
            dt = _softplus(z, zero) if softplus else z
            dts[t] = dt
            y[b, d, t] = zero
        for n in range(n_state):
            a_dn = A[d, n]
            for t in range(length):
                dec[t] = _exp(dts[t] * a_dn)
                xs[t] = dts[t] * u[b, d, t] * B[b, g, n, t]
            h = zero
            for t in range(length):
                h = dec[t] * h + xs[t]
                xs[t] = h
            for t in range(length):
                y[b, d, t] += xs[t] * C[b, g, n, t]
    if has_D:
        D_d = D[d]
        for t in range(length):
            y[b, d, t] += D_d * u[b, d, t]


@njit(**_JIT)
def _bwd_unit(gy, u, delta, A, B, C, D, bias, has_D, has_bias, softplus, b, g, blk, d_lo, d_hi,
              g_u, g_delta, g_A, g_Bp, g_Cp, g_D, g_bias):  # fmt: skip
    """Gradients of channels ``d_lo <= d < d_hi`` (all in group ``g``) of sample ``b``.

    Writes ``g_u``/``g_delta`` rows and the per-row partials ``g_A[b, d]``, ``g_D[b, d]``,
    ``g_bias[b, d]``; accumulates ``dB``/``dC`` of the block into ``g_Bp[b, g, blk]`` / ``g_Cp[...]``.
    Per channel and state: decays (vectorized), states (sequential), adjoint states ``gs_t = dL/dh_t``
    (sequential, back to front), then every gradient term from them (vectorized).
    """
    length = u.shape[2]
    n_state = A.shape[1]
    dtype = u.dtype
    zero = dtype.type(0.0)
    one = dtype.type(1.0)
    hs = np.empty(length + 1, dtype=dtype)  # hs[t + 1] = h_t, hs[0] = 0
    dec = np.empty(length, dtype=dtype)
    gs = np.empty(length, dtype=dtype)
    dts = np.empty(length, dtype=dtype)
    dtu = np.empty(length, dtype=dtype)
    sig = np.empty(length, dtype=dtype)
    gdt = np.empty(length, dtype=dtype)
    gu = np.empty(length, dtype=dtype)
    q = np.empty(length, dtype=dtype)
    for d in range(d_lo, d_hi):
        bias_d = bias[d] if has_bias else zero
        u_r, delta_r, gy_r = u[b, d], delta[b, d], gy[b, d]
        gu_out, gz_out = g_u[b, d], g_delta[b, d]
        for t in range(length):
            z = delta_r[t] + bias_d
            if softplus:
                dts[t] = _softplus(z, zero)
                sig[t] = _sigmoid(z, one)
            else:
                dts[t] = z
                sig[t] = one
            dtu[t] = dts[t] * u_r[t]
            gdt[t] = zero
            gu[t] = zero
        hs[0] = zero
        for n in range(n_state):
            a_dn = A[d, n]
            B_r, C_r = B[b, g, n], C[b, g, n]
            gB_r, gC_r = g_Bp[b, g, blk, n], g_Cp[b, g, blk, n]
            for t in range(length):
                dec[t] = _exp(dts[t] * a_dn)
            h = zero
            for t in range(length):  # h_t = a_t h_{t-1} + dt_t u_t B_t
                h = dec[t] * h + dtu[t] * B_r[t]
                hs[t + 1] = h
            acc = zero
            for t in range(length - 1, -1, -1):  # gs_t = C_t gy_t + a_{t+1} gs_{t+1}
                acc = acc + C_r[t] * gy_r[t]
                gs[t] = acc
                acc = acc * dec[t]
            for t in range(length):
                gC_r[t] += gy_r[t] * hs[t + 1]
                gB_r[t] += gs[t] * dtu[t]
                q[t] = gs[t] * hs[t] * dec[t]  # gradient w.r.t. the log-decay dt_t A
                gdt[t] += q[t] * a_dn + gs[t] * u_r[t] * B_r[t]
                gu[t] += gs[t] * dts[t] * B_r[t]
            gA = zero
            for t in range(length):
                gA += q[t] * dts[t]
            g_A[b, d, n] = gA
        D_d = D[d] if has_D else zero
        for t in range(length):
            gz_out[t] = gdt[t] * sig[t]
            gu_out[t] = gu[t] + gy_r[t] * D_d if has_D else gu[t]
        gD = zero
        gbias = zero
        for t in range(length):
            gD += gy_r[t] * u_r[t]
            gbias += gz_out[t]
        g_D[b, d] = gD
        g_bias[b, d] = gbias


# ---------------------------------------------------------------------------------------------
# Drivers: parallel (prange over work units) and serial (same loop, no threading layer).


@njit(parallel=True, **_JIT)
def _fwd_parallel(u, delta, A, B, C, D, bias, y, has_D, has_bias, softplus):
    batch, dim = u.shape[0], u.shape[1]
    dg = dim // B.shape[1]
    for i in prange(batch * dim):
        b, d = i // dim, i % dim
        dec = np.empty(u.shape[2], dtype=u.dtype)
        xs = np.empty(u.shape[2], dtype=u.dtype)
        _fwd_row(u, delta, A, B, C, D, bias, y, b, d, d // dg, has_D, has_bias, softplus, dec, xs)


@njit(**_JIT)
def _fwd_serial(u, delta, A, B, C, D, bias, y, has_D, has_bias, softplus):
    batch, dim = u.shape[0], u.shape[1]
    dg = dim // B.shape[1]
    dec = np.empty(u.shape[2], dtype=u.dtype)
    xs = np.empty(u.shape[2], dtype=u.dtype)
    for i in range(batch * dim):
        b, d = i // dim, i % dim
        _fwd_row(u, delta, A, B, C, D, bias, y, b, d, d // dg, has_D, has_bias, softplus, dec, xs)


@njit(parallel=True, **_JIT)
def _bwd_parallel(gy, u, delta, A, B, C, D, bias, has_D, has_bias, softplus, g_u, g_delta, g_A, g_Bp, g_Cp, g_D,
                  g_bias):  # fmt: skip
    batch, dim = u.shape[0], u.shape[1]
    groups, n_blocks = B.shape[1], g_Bp.shape[2]
    dg = dim // groups
    for i in prange(batch * groups * n_blocks):
        b, rest = i // (groups * n_blocks), i % (groups * n_blocks)
        g, blk = rest // n_blocks, rest % n_blocks
        d_lo, d_hi = g * dg + (blk * dg) // n_blocks, g * dg + ((blk + 1) * dg) // n_blocks
        _bwd_unit(gy, u, delta, A, B, C, D, bias, has_D, has_bias, softplus, b, g, blk, d_lo, d_hi,
                  g_u, g_delta, g_A, g_Bp, g_Cp, g_D, g_bias)  # fmt: skip


@njit(**_JIT)
def _bwd_serial(gy, u, delta, A, B, C, D, bias, has_D, has_bias, softplus, g_u, g_delta, g_A, g_Bp, g_Cp, g_D,
                g_bias):  # fmt: skip
    batch, dim = u.shape[0], u.shape[1]
    groups, n_blocks = B.shape[1], g_Bp.shape[2]
    dg = dim // groups
    for i in range(batch * groups * n_blocks):
        b, rest = i // (groups * n_blocks), i % (groups * n_blocks)
        g, blk = rest // n_blocks, rest % n_blocks
        d_lo, d_hi = g * dg + (blk * dg) // n_blocks, g * dg + ((blk + 1) * dg) // n_blocks
        _bwd_unit(gy, u, delta, A, B, C, D, bias, has_D, has_bias, softplus, b, g, blk, d_lo, d_hi,
                  g_u, g_delta, g_A, g_Bp, g_Cp, g_D, g_bias)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Threads and fork safety.

_parallel_ran = False  # set once a parallel driver ran in this process
_forked_after_parallel = False


def _after_fork_in_child() -> None:
    global _forked_after_parallel
    _forked_after_parallel = _forked_after_parallel or _parallel_ran


os.register_at_fork(after_in_child=_after_fork_in_child)


def threads() -> int:
    """Threads the kernels use now: ``torch.get_num_threads()`` capped at numba's pool (1 after an unsafe fork)."""
    if _forked_after_parallel:
        return 1
    return max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))


# Below this many state elements (batch * dim * L * d_state) a call runs serially: starting the thread
# team costs more than the work (tens of microseconds, far more on a loaded machine).
PARALLEL_MIN_ELEMENTS = 1 << 15


def _driver(parallel_fn, serial_fn, work: int):
    global _parallel_ran
    n = threads()
    if n == 1 or work < PARALLEL_MIN_ELEMENTS:
        return serial_fn
    numba.set_num_threads(n)
    _parallel_ran = True
    return parallel_fn


# ---------------------------------------------------------------------------------------------
# Public functions (the "numba" backend of the custom op).


def _check_cpu(u: torch.Tensor) -> None:
    if u.device.type != "cpu":
        raise ValueError(
            f"selective-scan backend 'numba' runs on CPU tensors, got {u.device}; use backend='triton' or 'torch' "
            "there (or backend='auto')"
        )


def _arrays(dtype: torch.dtype, *tensors: torch.Tensor | None) -> list[np.ndarray]:
    """Contiguous numpy views in ``dtype`` (an absent optional tensor becomes an empty array)."""
    out = []
    for t in tensors:
        if t is None:
            out.append(np.empty(0, dtype=np.float64 if dtype == torch.float64 else np.float32))
        else:
            out.append(t.detach().to(dtype).contiguous().numpy())
    return out


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
    """Forward of the selective scan (shapes as in ``kernels.selective_scan``); returns ``y`` in u's dtype."""
    _check_cpu(u)
    dtype = compute_dtype(u, delta, A, B, C, D, delta_bias)
    y = torch.empty(u.shape, dtype=dtype)
    if u.numel() > 0:
        arrays = _arrays(dtype, u, delta, A, B, C, D, delta_bias)
        fn = _driver(_fwd_parallel, _fwd_serial, u.numel() * A.shape[1])
        fn(*arrays, y.numpy(), D is not None, delta_bias is not None, bool(delta_softplus))
    return y.to(u.dtype)


def backward_blocks(batch: int, groups: int, dim_per_group: int, n_threads: int) -> int:
    """Channel blocks per (sample, group) in the backward: 1 on one thread, else enough units for ~4 per thread."""
    if n_threads <= 1 or batch * groups == 0:
        return 1
    return max(1, min(dim_per_group, math.ceil(4 * n_threads / (batch * groups))))


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
    """Gradients ``(du, ddelta, dA, dB, dC, dD, ddelta_bias)``; see ``ref.selective_scan_ref_backward``."""
    _check_cpu(u)
    batch, dim, length = u.shape
    n_state, groups = A.shape[1], B.shape[1]
    dtype = compute_dtype(grad_y, u, delta, A, B, C, D, delta_bias)
    fn = _driver(_bwd_parallel, _bwd_serial, u.numel() * n_state)
    n_blocks = backward_blocks(batch, groups, dim // groups, threads() if fn is _bwd_parallel else 1)
    g_u = torch.empty((batch, dim, length), dtype=dtype)
    g_delta = torch.empty((batch, dim, length), dtype=dtype)
    g_A = torch.zeros((batch, dim, n_state), dtype=dtype)
    g_Bp = torch.zeros((batch, groups, n_blocks, n_state, length), dtype=dtype)
    g_Cp = torch.zeros((batch, groups, n_blocks, n_state, length), dtype=dtype)
    g_D = torch.zeros((batch, dim), dtype=dtype)
    g_bias = torch.zeros((batch, dim), dtype=dtype)
    if u.numel() > 0:
        arrays = _arrays(dtype, grad_y, u, delta, A, B, C, D, delta_bias)
        outs = [t.numpy() for t in (g_u, g_delta, g_A, g_Bp, g_Cp, g_D, g_bias)]
        fn(*arrays, D is not None, delta_bias is not None, bool(delta_softplus), *outs)
    g_B = g_Bp[:, :, 0] if n_blocks == 1 else g_Bp.sum(2)
    g_C = g_Cp[:, :, 0] if n_blocks == 1 else g_Cp.sum(2)
    return (
        g_u.to(u.dtype),
        g_delta.to(delta.dtype),
        g_A.sum(0).to(A.dtype),
        g_B.to(B.dtype),
        g_C.to(C.dtype),
        g_D.sum(0).to(D.dtype) if D is not None else None,
        g_bias.sum(0).to(delta_bias.dtype) if delta_bias is not None else None,
    )


register_impl("numba", selective_scan_fwd, selective_scan_bwd)
