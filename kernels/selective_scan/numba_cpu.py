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
from numba import njit, prange  # noqa: E402

from .op import register_impl  # noqa: E402
from .ref import compute_dtype  # noqa: E402

_JIT = {"cache": True, "nogil": True}


# ---------------------------------------------------------------------------------------------
# Row kernels (inlined into the drivers by LLVM).


@njit(**_JIT)
def _softplus(z):
    # torch.nn.functional.softplus (beta 1, threshold 20), in z's precision.
    if z > 20.0:
        return z
    return math.log1p(math.exp(z))


@njit(**_JIT)
def _fwd_row(u, delta, A, B, C, D, bias, y, b, d, g, has_D, has_bias, softplus):
    """y[b, d, :] for one channel row; ``h`` is a scalar when d_state == 1."""
    length = u.shape[2]
    n_state = A.shape[1]
    zero = u.dtype.type(0.0)
    bias_d = bias[d] if has_bias else zero
    if n_state == 1:
        a_d = A[d, 0]
        h = zero
        for t in range(length):
            z = delta[b, d, t] + bias_d
            dt = _softplus(z) if softplus else z
            ut = u[b, d, t]
            h = math.exp(dt * a_d) * h + dt * ut * B[b, g, 0, t]
            y[b, d, t] = h * C[b, g, 0, t]
    else:
        h_vec = np.zeros(n_state, dtype=u.dtype)
        for t in range(length):
            z = delta[b, d, t] + bias_d
            dt = _softplus(z) if softplus else z
            dtu = dt * u[b, d, t]
            acc = zero
            for n in range(n_state):
                hn = math.exp(dt * A[d, n]) * h_vec[n] + dtu * B[b, g, n, t]
                h_vec[n] = hn
                acc += hn * C[b, g, n, t]
            y[b, d, t] = acc
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
    """
    length = u.shape[2]
    n_state = A.shape[1]
    zero = u.dtype.type(0.0)
    one = u.dtype.type(1.0)
    hs = np.empty((n_state, length + 1), dtype=u.dtype)  # hs[:, t + 1] = h_t, hs[:, 0] = 0
    decay = np.empty((n_state, length), dtype=u.dtype)
    dts = np.empty(length, dtype=u.dtype)
    sig = np.empty(length, dtype=u.dtype)
    gst = np.empty(n_state, dtype=u.dtype)
    gA = np.empty(n_state, dtype=u.dtype)
    for d in range(d_lo, d_hi):
        bias_d = bias[d] if has_bias else zero
        # Forward recomputation of the states.
        for n in range(n_state):
            hs[n, 0] = zero
        for t in range(length):
            z = delta[b, d, t] + bias_d
            if softplus:
                dt = _softplus(z)
                sig[t] = one / (one + math.exp(-z))
            else:
                dt = z
            dts[t] = dt
            dtu = dt * u[b, d, t]
            for n in range(n_state):
                a = math.exp(dt * A[d, n])
                decay[n, t] = a
                hs[n, t + 1] = a * hs[n, t] + dtu * B[b, g, n, t]
        # Adjoint recurrence, back to front: gst_n = dL/dh_t.
        for n in range(n_state):
            gst[n] = zero
            gA[n] = zero
        D_d = D[d] if has_D else zero
        gD = zero
        gbias = zero
        if n_state == 1:
            a_d = A[d, 0]
            gs = zero
            ga = zero
            for t in range(length - 1, -1, -1):
                gyt = gy[b, d, t]
                dt = dts[t]
                ut = u[b, d, t]
                a = decay[0, t]
                hp = hs[0, t]
                Bt = B[b, g, 0, t]
                gs = gs + C[b, g, 0, t] * gyt
                g_Cp[b, g, blk, 0, t] += gyt * hs[0, t + 1]
                g_Bp[b, g, blk, 0, t] += gs * dt * ut
                gdt = gs * (hp * a * a_d + ut * Bt)
                gu = gs * dt * Bt
                ga += gs * hp * a * dt
                gs = gs * a
                if has_D:
                    gu += gyt * D_d
                    gD += gyt * ut
                gz = gdt * sig[t] if softplus else gdt
                g_u[b, d, t] = gu
                g_delta[b, d, t] = gz
                gbias += gz
            gA[0] = ga
        else:
            for t in range(length - 1, -1, -1):
                gyt = gy[b, d, t]
                dt = dts[t]
                ut = u[b, d, t]
                gdt = zero
                gu = zero
                for n in range(n_state):
                    a = decay[n, t]
                    hp = hs[n, t]
                    Bt = B[b, g, n, t]
                    gn = gst[n] + C[b, g, n, t] * gyt
                    g_Cp[b, g, blk, n, t] += gyt * hs[n, t + 1]
                    g_Bp[b, g, blk, n, t] += gn * dt * ut
                    gdt += gn * (hp * a * A[d, n] + ut * Bt)
                    gu += gn * dt * Bt
                    gA[n] += gn * hp * a * dt
                    gst[n] = gn * a
                if has_D:
                    gu += gyt * D_d
                    gD += gyt * ut
                gz = gdt * sig[t] if softplus else gdt
                g_u[b, d, t] = gu
                g_delta[b, d, t] = gz
                gbias += gz
        for n in range(n_state):
            g_A[b, d, n] = gA[n]
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
        _fwd_row(u, delta, A, B, C, D, bias, y, b, d, d // dg, has_D, has_bias, softplus)


@njit(**_JIT)
def _fwd_serial(u, delta, A, B, C, D, bias, y, has_D, has_bias, softplus):
    batch, dim = u.shape[0], u.shape[1]
    dg = dim // B.shape[1]
    for i in range(batch * dim):
        b, d = i // dim, i % dim
        _fwd_row(u, delta, A, B, C, D, bias, y, b, d, d // dg, has_D, has_bias, softplus)


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
