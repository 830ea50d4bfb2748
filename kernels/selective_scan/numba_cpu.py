"""Compiled CPU selective scan (numba): sequential forward and backward kernels, forward and backward.

A whole-tensor PyTorch path (``torch_fast.py``) pays several microseconds per op and cannot go
much below ``~2 sqrt(L)`` ops per call; here the recurrence is a plain loop over ``L`` compiled
by numba, one channel row at a time, parallel over rows with ``prange``:

- forward, float32 and ``d_state == 1`` (every official variant): one work unit per ``(batch, block of
  8 channels)``; the softplus and decay exps run over padded scratch rows as whole vector loops, then
  the 8 recurrences run interleaved in registers (independent chains instead of one latency-bound
  chain). Other dtypes / ``d_state``: one unit per ``(batch, channel)`` row;
- backward: one work unit per ``(batch, group, block of channels)``, so that the gradients of the
  grouped ``B``/``C`` are accumulated race-free into the unit's own rows; each channel recomputes its
  states into a local buffer and walks the adjoint recurrence back to front. Per-row partials of
  ``dA``/``dD``/``ddelta_bias`` (and per-block ones of ``dB``/``dC``) are summed in PyTorch.

Row kernels are inlined into their drivers (``inline="always"``): as separate functions they take
the scratch arrays as arguments that may alias the inputs, and LLVM then leaves the loops scalar or
guarded (the blocked forward ran 1.6x slower that way). Multiply-adds may contract to FMA
(``fastmath={"contract"}``: one rounding instead of two, never less accurate).

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
_JIT = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": {"contract"}}


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
def _exp_nonpos32(x):
    # expf for x <= 0 only (the softplus tail exp(-|z|) and decays exp(dt A) with A <= 0, dt >= 0): the same
    # polynomial as _exp32 without the overflow side, the split scale or the NaN select. x is clamped at
    # -87.3 (result ~1.2e-38 instead of a denormal); NaN gives NaN. ~1 ulp, ~40% cheaper than _exp32.
    xc = max(x, _F(-87.3))
    kf = (xc * _F(1.44269504) + _F(12582912.0)) - _F(12582912.0)
    r = xc - kf * _F(0.693359375) - kf * _F(-2.12194440e-4)
    p = _F(1.9875691500e-4)
    p = p * r + _F(1.3981999507e-3)
    p = p * r + _F(8.3334519073e-3)
    p = p * r + _F(4.1665795894e-2)
    p = p * r + _F(1.6666665459e-1)
    p = p * r + _F(5.0000001201e-1)
    p = p * r * r + r + _F(1.0)
    return p * _f32_from_bits((np.int32(kf) + np.int32(127)) << np.int32(23))


@njit(**_JIT)
def _log1p_unit32(e):
    # log1p(e) for e in [0, 1]: 2 atanh(s) with s = e / (2 + e) in [0, 1/3], odd series to s^13 (truncation
    # ~1e-8 rel, below float32 rounding: the s^15 term changes nothing measurable).
    s = e / (_F(2.0) + e)
    s2 = s * s
    p = _F(2.0 / 13.0)
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
def _softplus32(z):
    # float32 softplus on the cheaper non-positive exp; NaN propagates through max().
    return max(z, _F(0.0)) + _log1p_unit32(_exp_nonpos32(-abs(z)))


@njit(**_JIT)
def _sigmoid(z, one):
    e = _exp(-abs(z))
    return one / (one + e) if z >= 0 else e / (one + e)


# ---------------------------------------------------------------------------------------------
# Row kernels: only the recurrences are sequential loops; everything else is in separate loops over
# t without dependencies, which LLVM vectorizes.


@njit(inline="always", **_JIT)
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


ROWS = 8  # channel rows per forward block (d_state == 1), interleaved in one loop (written out for 8 below)


@njit(inline="always", **_JIT)
def _fwd_block1(u, delta, A, B, C, D, bias, y, b, d0, has_D, has_bias, softplus, zs, dec, xs):
    """float32, ``d_state == 1``: ``y[b, d0:d0 + ROWS]`` (fewer rows at the end of ``dim``).

    Scratch ``zs``/``dec``/``xs`` hold ``ROWS`` rows of ``Lp`` floats (``L`` rounded up to 32, padding
    finite) so the transcendental loops run whole vector iterations -- a row of 144 would otherwise
    end in a scalar remainder that costs as much as the vector part. The recurrence of the ``ROWS``
    rows runs interleaved: independent chains hide the multiply-add latency one row alone waits on.
    """
    length = u.shape[2]
    dim = u.shape[1]
    lp = zs.shape[0] // ROWS
    dg = dim // B.shape[1]
    rn = min(ROWS, dim - d0)
    zero = _F(0.0)
    for j in range(rn):
        d = d0 + j
        bias_d = bias[d] if has_bias else zero
        o = j * lp
        for t in range(length):
            zs[o + t] = delta[b, d, t] + bias_d
    if softplus:
        for i in range(rn * lp):
            zs[i] = _softplus32(zs[i])
    for j in range(rn):
        d = d0 + j
        g = d // dg
        a_d = A[d, 0]
        o = j * lp
        if softplus and a_d <= zero:  # dt >= 0, so dt * A <= 0
            for t in range(lp):
                dec[o + t] = _exp_nonpos32(zs[o + t] * a_d)
        else:
            for t in range(lp):
                dec[o + t] = _exp32(zs[o + t] * a_d)
        for t in range(length):
            xs[o + t] = zs[o + t] * u[b, d, t] * B[b, g, 0, t]
    # Eight independent chains in registers (rows >= rn run on stale scratch and are never written out).
    h0 = h1 = h2 = h3 = h4 = h5 = h6 = h7 = zero
    o1, o2, o3, o4, o5, o6, o7 = lp, 2 * lp, 3 * lp, 4 * lp, 5 * lp, 6 * lp, 7 * lp
    for t in range(length):
        h0 = dec[t] * h0 + xs[t]
        xs[t] = h0
        h1 = dec[o1 + t] * h1 + xs[o1 + t]
        xs[o1 + t] = h1
        h2 = dec[o2 + t] * h2 + xs[o2 + t]
        xs[o2 + t] = h2
        h3 = dec[o3 + t] * h3 + xs[o3 + t]
        xs[o3 + t] = h3
        h4 = dec[o4 + t] * h4 + xs[o4 + t]
        xs[o4 + t] = h4
        h5 = dec[o5 + t] * h5 + xs[o5 + t]
        xs[o5 + t] = h5
        h6 = dec[o6 + t] * h6 + xs[o6 + t]
        xs[o6 + t] = h6
        h7 = dec[o7 + t] * h7 + xs[o7 + t]
        xs[o7 + t] = h7
    for j in range(rn):
        d = d0 + j
        g = d // dg
        o = j * lp
        D_d = D[d] if has_D else zero
        for t in range(length):
            y[b, d, t] = xs[o + t] * C[b, g, 0, t] + D_d * u[b, d, t]


def block_scratch_len(length: int) -> int:
    """Floats per scratch array of ``_fwd_block1``: ``ROWS`` rows of ``length`` rounded up to 32."""
    return ROWS * ((length + 31) // 32 * 32)


@njit(inline="always", **_JIT)
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
def _fwd1_parallel(u, delta, A, B, C, D, bias, y, has_D, has_bias, softplus, n_scratch):
    batch, dim = u.shape[0], u.shape[1]
    blocks = (dim + ROWS - 1) // ROWS
    for i in prange(batch * blocks):
        zs = np.zeros(n_scratch, dtype=np.float32)
        dec = np.zeros(n_scratch, dtype=np.float32)
        xs = np.zeros(n_scratch, dtype=np.float32)
        _fwd_block1(u, delta, A, B, C, D, bias, y, i // blocks, (i % blocks) * ROWS, has_D, has_bias, softplus,
                    zs, dec, xs)


@njit(**_JIT)
def _fwd1_serial(u, delta, A, B, C, D, bias, y, has_D, has_bias, softplus, n_scratch):
    batch, dim = u.shape[0], u.shape[1]
    blocks = (dim + ROWS - 1) // ROWS
    zs = np.zeros(n_scratch, dtype=np.float32)  # zeros: padding and unused rows stay finite through softplus and exp
    dec = np.zeros(n_scratch, dtype=np.float32)
    xs = np.zeros(n_scratch, dtype=np.float32)
    for i in range(batch * blocks):
        _fwd_block1(u, delta, A, B, C, D, bias, y, i // blocks, (i % blocks) * ROWS, has_D, has_bias, softplus,
                    zs, dec, xs)


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
        elif t.dtype == dtype and t.is_contiguous():  # the common case: no copy, no conversion calls
            out.append(t.detach().numpy())
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
        flags = (D is not None, delta_bias is not None, bool(delta_softplus))
        if dtype == torch.float32 and A.shape[1] == 1:  # every official variant: the blocked float32 kernel
            fn = _driver(_fwd1_parallel, _fwd1_serial, u.numel())
            fn(*arrays, y.numpy(), *flags, block_scratch_len(u.shape[2]))
        else:
            fn = _driver(_fwd_parallel, _fwd_serial, u.numel() * A.shape[1])
            fn(*arrays, y.numpy(), *flags)
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
