"""Selective scan: one public op, several backends.

``selective_scan(u, delta, A, B, C, D=None, *, delta_bias=None, delta_softplus=True, backend=None)``

Shapes (``dim`` = directions x d_inner, ``N`` = d_state, ``G`` = groups of B/C, ``L`` = length):

- ``u``, ``delta``: ``(batch, dim, L)``
- ``A``: ``(dim, N)`` (real, normally negative)
- ``B``, ``C``: ``(batch, G, N, L)``; ``dim % G == 0`` and channel ``d`` uses group
  ``d // (dim // G)`` (SS2D passes one group per scan direction)
- ``D``, ``delta_bias``: ``(dim,)`` or ``None``
- returns ``y``: ``(batch, dim, L)`` in ``u``'s dtype.

``backend=None`` uses the backend set by ``use_backend(...)`` (default ``"auto"``), so a model
that does not name one can be run per backend.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

import torch

from .ref import selective_scan_ref

ScanFn = Callable[..., torch.Tensor]

_BACKENDS: dict[str, ScanFn] = {"ref": selective_scan_ref}
_current: contextvars.ContextVar[str] = contextvars.ContextVar("selective_scan_backend", default="auto")


def available_backends() -> list[str]:
    """Names accepted by ``backend=`` (``"auto"`` included)."""
    return ["auto", *sorted(_BACKENDS)]


def _resolve(name: str, u: torch.Tensor) -> str:
    if name == "auto":
        return "ref"
    if name not in _BACKENDS:
        raise ValueError(f"unknown selective-scan backend {name!r}; choose one of {available_backends()}")
    return name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Set the backend used by callers that pass ``backend=None`` (e.g. the model)."""
    if name != "auto" and name not in _BACKENDS:
        raise ValueError(f"unknown selective-scan backend {name!r}; choose one of {available_backends()}")
    token = _current.set(name)
    try:
        yield
    finally:
        _current.reset(token)


def check_inputs(u, delta, A, B, C, D, delta_bias) -> None:
    """Raise a ValueError naming the argument when shapes or dtypes do not fit together."""
    if u.dim() != 3:
        raise ValueError(f"u must be (batch, dim, L), got shape {tuple(u.shape)}")
    batch, dim, length = u.shape
    if delta.shape != u.shape:
        raise ValueError(f"delta must have u's shape {tuple(u.shape)}, got {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"A must be (dim={dim}, d_state), got {tuple(A.shape)}")
    n_state = A.shape[1]
    for name, t in (("B", B), ("C", C)):
        if t.dim() != 4 or t.shape[0] != batch or t.shape[2] != n_state or t.shape[3] != length:
            raise ValueError(f"{name} must be (batch={batch}, groups, d_state={n_state}, L={length}), got {tuple(t.shape)}")
        if dim % t.shape[1] != 0:
            raise ValueError(f"{name} has {t.shape[1]} groups, which does not divide dim={dim}")
    if B.shape != C.shape:
        raise ValueError(f"B and C must have the same shape, got {tuple(B.shape)} and {tuple(C.shape)}")
    for name, t in (("D", D), ("delta_bias", delta_bias)):
        if t is not None and tuple(t.shape) != (dim,):
            raise ValueError(f"{name} must be (dim={dim},), got {tuple(t.shape)}")
    tensors = [t for t in (u, delta, A, B, C, D, delta_bias) if t is not None]
    if any(not t.is_floating_point() for t in tensors):
        raise ValueError("selective_scan takes floating-point tensors only")
    if len({t.device for t in tensors}) != 1:
        raise ValueError(f"all selective_scan inputs must be on one device, got {sorted({str(t.device) for t in tensors})}")


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
    name = _resolve(backend if backend is not None else _current.get(), u)
    return _BACKENDS[name](u, delta, A, B, C, D, delta_bias=delta_bias, delta_softplus=delta_softplus)


__all__ = ["selective_scan", "selective_scan_ref", "use_backend", "available_backends", "check_inputs"]
