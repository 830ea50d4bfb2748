"""Selective scan: one public op, several backends.

``selective_scan(u, delta, A, B, C, D=None, *, delta_bias=None, delta_softplus=True, backend=None)``

Shapes (``dim`` = directions x d_inner, ``N`` = d_state, ``G`` = groups of B/C, ``L`` = length):

- ``u``, ``delta``: ``(batch, dim, L)``
- ``A``: ``(dim, N)`` (real, normally negative)
- ``B``, ``C``: ``(batch, G, N, L)``; ``dim % G == 0`` and channel ``d`` uses group
  ``d // (dim // G)`` (SS2D passes one group per scan direction)
- ``D``, ``delta_bias``: ``(dim,)`` or ``None``
- returns ``y``: ``(batch, dim, L)`` in ``u``'s dtype.

Inputs may be float16/bfloat16/float32/float64 and any strides; every backend computes in
float32 (float64 if any input is float64). Backends:

- ``"ref"``: the sequential Python reference (``ref.py``), the ground truth of the tests;
- ``"torch"``: vectorized PyTorch (``torch_fast.py``), CPU or GPU;
- ``"triton"``: Triton kernels (``triton.py``), CUDA (or the Triton interpreter on CPU);
- ``"numba"``: compiled sequential CPU kernels (``numba_cpu.py``), when numba is installed;
- ``"auto"``: ``"triton"`` for CUDA tensors when Triton imports, ``"numba"`` for CPU tensors when
  numba imports, else ``"torch"``.

``backend=None`` uses the backend set by ``use_backend(...)`` (default ``"auto"``), so a model
that does not name one can be run per backend. Every backend goes through the one custom op
``mmlab::selective_scan`` (``SCAN_OP_NAME``), see ``op.py``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
from collections.abc import Iterator

import torch

from .flops import fvcore_selective_scan_handle, selective_scan_flops, selective_scan_flops_from_shapes
from .op import BACKEND_NAMES, SCAN_BACKWARD_OP_NAME, SCAN_OP_NAME, selective_scan_op
from .ref import selective_scan_ref

_current: contextvars.ContextVar[str] = contextvars.ContextVar("selective_scan_backend", default="auto")
_SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@functools.cache
def triton_importable() -> bool:
    """Whether the ``triton`` package is installed (it is not imported here)."""
    return importlib.util.find_spec("triton") is not None


@torch.compiler.assume_constant_result
def numba_importable() -> bool:
    """Whether the numba backend imports (numba installed and compatible with this numpy); imports it once.

    A constant for ``torch.compile`` (dynamo would not trace the import).
    """
    return _numba_importable()


@functools.cache
def _numba_importable() -> bool:
    try:
        importlib.import_module("kernels.selective_scan.numba_cpu")
    except ImportError:
        return False
    return True


def _triton_interpreting() -> bool:
    if not triton_importable():
        return False
    from .triton import interpreting

    return interpreting()


def available_backends(device: str | torch.device | None = None) -> list[str]:
    """Names accepted by ``backend=`` (``"auto"`` included).

    With ``device``, only the backends that can run there: ``"triton"`` needs CUDA, or the
    Triton interpreter (``TRITON_INTERPRET=1`` set before ``kernels.selective_scan.triton`` is
    first imported) for CPU tensors.
    """
    names = ["auto", "ref", "torch"]
    if device is None:
        return names + (["triton"] if triton_importable() else []) + (["numba"] if numba_importable() else [])
    device = torch.device(device)
    if triton_importable() and (device.type == "cuda" or (device.type == "cpu" and _triton_interpreting())):
        names.append("triton")
    if device.type == "cpu" and numba_importable():
        names.append("numba")
    return names


def _check_name(name: str) -> None:
    if name != "auto" and name not in BACKEND_NAMES:
        raise ValueError(f"unknown selective-scan backend {name!r}; choose one of {['auto', *BACKEND_NAMES]}")
    if name == "triton" and not triton_importable():
        raise ValueError("selective-scan backend 'triton' needs the triton package (pip install triton)")
    if name == "numba" and not numba_importable():
        raise ValueError("selective-scan backend 'numba' needs the numba package (pip install numba)")


def resolve_backend(name: str, u: torch.Tensor) -> str:
    """The concrete backend for ``name`` and tensors like ``u``.

    ``"auto"``: triton on CUDA (when importable), numba on CPU (when importable), else torch.
    """
    _check_name(name)
    if name == "auto":
        if u.device.type == "cuda" and triton_importable():
            return "triton"
        if u.device.type == "cpu" and numba_importable():
            return "numba"
        return "torch"
    return name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Set the backend used by callers that pass ``backend=None`` (e.g. the model)."""
    _check_name(name)
    token = _current.set(name)
    try:
        yield
    finally:
        _current.reset(token)


def current_backend() -> str:
    """The backend name set by the innermost ``use_backend`` (``"auto"`` outside any)."""
    return _current.get()


def check_inputs(u, delta, A, B, C, D, delta_bias) -> None:
    """Raise a ValueError naming the argument when shapes, dtypes or devices do not fit together."""
    named = (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C), ("D", D), ("delta_bias", delta_bias))
    for name, t in named:
        if t is None and name in ("D", "delta_bias"):
            continue
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"selective_scan: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in _SUPPORTED_DTYPES:
            raise ValueError(
                f"selective_scan: {name} has dtype {t.dtype}; use one of float16, bfloat16, float32, float64 "
                f"(e.g. {name}.float())"
            )
    if u.dim() != 3:
        raise ValueError(f"u must be (batch, dim, L), got shape {tuple(u.shape)}")
    batch, dim, length = u.shape
    if delta.shape != u.shape:
        raise ValueError(f"delta must have u's shape {tuple(u.shape)}, got {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != dim or A.shape[1] < 1:
        raise ValueError(f"A must be (dim={dim}, d_state>=1), got {tuple(A.shape)}")
    n_state = A.shape[1]
    for name, t in (("B", B), ("C", C)):
        if t.dim() != 4 or t.shape[0] != batch or t.shape[2] != n_state or t.shape[3] != length:
            raise ValueError(
                f"{name} must be (batch={batch}, groups, d_state={n_state}, L={length}), got {tuple(t.shape)}"
            )
        if t.shape[1] < 1 or dim % t.shape[1] != 0:
            raise ValueError(f"{name} has {t.shape[1]} groups, which does not divide dim={dim}")
    if B.shape != C.shape:
        raise ValueError(f"B and C must have the same shape, got {tuple(B.shape)} and {tuple(C.shape)}")
    for name, t in (("D", D), ("delta_bias", delta_bias)):
        if t is not None and tuple(t.shape) != (dim,):
            raise ValueError(f"{name} must be (dim={dim},), got {tuple(t.shape)}")
    tensors = [t for _, t in named if t is not None]
    if len({t.device for t in tensors}) != 1:
        where = ", ".join(f"{n}: {t.device}" for n, t in named if t is not None)
        raise ValueError(f"all selective_scan inputs must be on one device, got {where}; move them with .to(device)")


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    *,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = True,
    backend: str | None = None,
) -> torch.Tensor:
    """Run the selective scan with the named (or context) backend; see the module docstring."""
    check_inputs(u, delta, A, B, C, D, delta_bias)
    if not isinstance(delta_softplus, bool):
        raise ValueError(f"delta_softplus must be a bool, got {delta_softplus!r}")
    name = resolve_backend(backend if backend is not None else _current.get(), u)
    return selective_scan_op(u, delta, A, B, C, D, delta_bias, delta_softplus, name)


__all__ = [
    "SCAN_OP_NAME",
    "SCAN_BACKWARD_OP_NAME",
    "available_backends",
    "check_inputs",
    "current_backend",
    "fvcore_selective_scan_handle",
    "numba_importable",
    "resolve_backend",
    "selective_scan",
    "selective_scan_flops",
    "selective_scan_flops_from_shapes",
    "selective_scan_ref",
    "use_backend",
]
