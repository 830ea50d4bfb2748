"""FLOP counting: the paper's convention (fvcore) and a ``full`` mode, from one jit trace.

**Paper convention** (reproduces the official MobileMamba table): ``fvcore.nn.FlopCountAnalysis``
with its default handles (conv, linear/matmul, BatchNorm as fvcore counts it in eval mode, norms,
pooling, upsampling), one multiply-add = 1, batch 1, the UNFUSED model in eval mode, plus the
selective scan counted by its formula ``9*B*L*D*N + B*D*L`` (``scan_flops``). Everything else
counts 0 in this convention. Two kinds of "everything else" are kept apart:

- ``PAPER_SKIPPED``: ops that do compute but the convention does not count. The official run
  ignores ``gelu/silu/neg/exp/flip`` explicitly and fvcore has no handle for elementwise
  arithmetic, reductions, max/avg pooling, attention, or ``aten::_convolution_mode`` (convs
  with string padding, i.e. the wavelet-domain depthwise convs with ``padding='same'``).
  The ``full`` mode counts them; the paper result lists them under ``skipped_by_convention``.
- ``ZERO_COST``: data movement (views, cat, flip, pad, indexing, ...) and fvcore's own ignore
  list: 0 in both modes.

**Full mode** = paper + ``PAPER_SKIPPED`` ops: ``_convolution_mode`` by the conv formula,
elementwise ops (add/mul/activations/...) 1 per output element, reductions 1 per input element,
max/avg pooling 1 per window element, ``scaled_dot_product_attention`` as its two matmuls.
Keys of full-only ops in ``by_operator`` start with ``full:``.

Any op that none of these tables knows is counted 0 in both modes, listed in
``unsupported_ops`` (kind -> number of calls) and warned about: never silently 0.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from math import prod
from typing import Any

import torch
from torch import nn

FULL_PREFIX = "full:"
SCAN_LABEL = "selective_scan"
DEFAULT_SCAN_OP_NAME = "mmlab::selective_scan"


class UnsupportedOpWarning(UserWarning):
    """Some op in a FLOP trace has no counter: it was counted as 0 (see ``FlopCount.unsupported_ops``)."""


def scan_flops(*, batch: int, dim: int, length: int, d_state: int, with_D: bool = True, with_Z: bool = False) -> int:
    """Multiply-adds of one selective scan in the paper's (mamba/VMamba) convention:
    ``9*B*L*D*N``, plus ``B*D*L`` for the ``D*u`` skip and as much for a ``z`` gate."""
    for name, v in (("batch", batch), ("dim", dim), ("length", length), ("d_state", d_state)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"scan_flops: {name} must be a non-negative int, got {v!r}")
    return 9 * batch * length * dim * d_state + (batch * dim * length) * (int(with_D) + int(with_Z))


def scan_op_name() -> str | None:
    """Name of the selective-scan custom op (``kernels.selective_scan.SCAN_OP_NAME``) or ``None``
    when the kernel package does not define one (the scan is then traced op by op)."""
    try:
        import kernels.selective_scan as ks
    except ImportError:
        return None
    return getattr(ks, "SCAN_OP_NAME", None)


# --------------------------------------------------------------------------- jit handles


def _shape(value: Any) -> list[int] | None:
    return list(value.type().sizes()) if value.isCompleteTensor() else None


def _scan_handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    """``mmlab::selective_scan(u, delta, A, B, C, D?, delta_bias?, delta_softplus, backend)``."""
    u, a = _shape(inputs[0]), _shape(inputs[2])
    if u is None or a is None or len(u) != 3 or len(a) != 2:
        raise ValueError(f"selective-scan node: expected u (B, D, L) and A (D, N), got {u} and {a}; "
                         "the op's signature changed, update lab.measure.flops._scan_handle")
    with_d = len(inputs) > 5 and _shape(inputs[5]) is not None
    return Counter({SCAN_LABEL: scan_flops(batch=u[0], dim=u[1], length=u[2], d_state=a[1], with_D=with_d)})


def _conv_mode_handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    """``aten::_convolution_mode(x, w, b, stride, padding: str, dilation, groups)``: conv formula."""
    x, w, y = _shape(inputs[0]), _shape(inputs[1]), _shape(outputs[0])
    return Counter({FULL_PREFIX + "conv_same": x[0] * prod(w) * prod(y[2:])})


def _per_output(label: str) -> Callable[[list[Any], list[Any]], Counter[str]]:
    def handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
        return Counter({FULL_PREFIX + label: prod(_shape(outputs[0]) or [0])})

    return handle


def _per_input(label: str) -> Callable[[list[Any], list[Any]], Counter[str]]:
    def handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
        return Counter({FULL_PREFIX + label: prod(_shape(inputs[0]) or [0])})

    return handle


def _int_list(value: Any) -> list[int]:
    """An int or int-list argument of a jit node (constant, or built by ``prim::ListConstruct``)."""
    v = value.toIValue()
    if v is None and value.node().kind() == "prim::ListConstruct":
        v = [i.toIValue() for i in value.node().inputs()]
    if isinstance(v, int):
        return [v]
    if not isinstance(v, (list, tuple)) or not all(isinstance(i, int) for i in v):
        raise ValueError(f"expected a constant int list in the trace, got {v!r}")
    return list(v)


def _pool_handle(label: str) -> Callable[[list[Any], list[Any]], Counter[str]]:
    """``max_pool2d/avg_pool2d(x, kernel_size, ...)``: one op per window element per output."""

    def handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
        k = _int_list(inputs[1])
        k = k * 2 if len(k) == 1 else k
        return Counter({FULL_PREFIX + label: prod(_shape(outputs[0])) * prod(k)})

    return handle


def _sdpa_handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    """``q @ k^T`` and ``attn @ v``: ``B*H*Lq*Lk*(E + Ev)`` multiply-adds."""
    q, k, v = (_shape(t) for t in inputs[:3])
    lead = prod(q[:-2])
    return Counter({FULL_PREFIX + "attention": lead * q[-2] * k[-2] * (q[-1] + v[-1])})


_ELEMENTWISE = (
    "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "exp", "log", "sqrt", "rsqrt",
    "pow", "abs", "reciprocal", "sigmoid", "sigmoid_", "silu", "silu_", "gelu", "softplus", "tanh", "relu",
    "relu_", "relu6", "hardtanh", "hardtanh_", "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_",
    "leaky_relu", "leaky_relu_", "elu", "clamp", "clamp_", "clamp_min", "clamp_max", "softmax", "log_softmax",
    "where", "addcmul", "lerp", "index_add",
)
_REDUCTIONS = ("mean", "sum", "var", "std", "amax", "cumsum")

PAPER_SKIPPED: dict[str, Callable[[list[Any], list[Any]], Counter[str]]] = {
    "aten::_convolution_mode": _conv_mode_handle,
    "aten::max_pool2d": _pool_handle("max_pool2d"),
    "aten::avg_pool2d": _pool_handle("avg_pool2d"),
    "aten::scaled_dot_product_attention": _sdpa_handle,
    **{f"aten::{op}": _per_output(op.rstrip("_")) for op in _ELEMENTWISE},
    **{f"aten::{op}": _per_input(op) for op in _REDUCTIONS},
}
"""Ops the paper convention counts as 0 but that compute: handles used by the ``full`` mode."""

ZERO_COST: frozenset[str] = frozenset(
    f"aten::{op}"
    for op in (
        "flip", "pad", "constant_pad_nd", "reflection_pad2d", "replicate_pad2d", "repeat_interleave", "repeat",
        "index_select", "clone", "contiguous", "unflatten", "view_as", "expand_as", "roll", "stack", "cat",
        "chunk", "split", "unsafe_split", "unsafe_chunk", "tensor_split", "movedim", "moveaxis", "swapaxes",
        "dropout", "feature_dropout", "alpha_dropout", "lift_fresh", "zero_", "fill_", "new_empty", "new_ones",
        "ones_like", "empty_like", "numel", "dim", "item", "alias", "detach_", "masked_fill_", "tensor",
        "scalar_tensor", "linspace", "meshgrid", "einsum_path", "identity", "channel_shuffle", "pixel_shuffle",
        "pixel_unshuffle", "_unsafe_view", "im2col", "unfold", "diagonal", "tril", "triu", "lt", "le", "ne",
        "logical_not", "sort", "argmax", "topk",
    )
)
"""Data movement / bookkeeping ops: 0 FLOPs in both modes (on top of fvcore's own ignore list)."""


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, kw_only=True)
class FlopCount:
    """FLOPs (multiply-add = 1) of one forward pass at ``res`` px and batch ``batch``.

    ``paper``: the official convention; ``full``: paper + what it skips. ``scan``: the selective
    scan part (in both). ``by_operator``: label -> count (full-only labels prefixed ``full:``).
    ``skipped_by_convention``: full-only label -> count (= ``full - paper`` in total).
    ``unsupported_ops``: op kind -> calls that no counter understands (counted 0, warned).
    """

    paper: int
    full: int
    scan: int
    res: int | tuple[int, int]
    batch: int
    by_operator: dict[str, int]
    skipped_by_convention: dict[str, int]
    unsupported_ops: dict[str, int]
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "flops": self.paper,
            "flops_full": self.full,
            "flops_scan": self.scan,
            "flops_res": self.res,
            "flops_batch": self.batch,
            "flops_by_operator": dict(self.by_operator),
            "flops_skipped_by_convention": dict(self.skipped_by_convention),
            "unsupported_ops": dict(self.unsupported_ops),
            "flops_notes": list(self.notes),
        }


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, training in modes.items():
            m.train(training)


def _contains_scan_module(model: nn.Module) -> bool:
    try:
        from lab.blocks.ss2d import SS2D
    except ImportError:
        return False
    return any(isinstance(m, SS2D) for m in model.modules())


def count_flops(
    model: nn.Module,
    *,
    res: int | tuple[int, int],
    batch: int = 1,
    in_chans: int = 3,
    device: torch.device | str = "cpu",
    warn: bool = True,
) -> FlopCount:
    """Count FLOPs of ``model`` on a ``(batch, in_chans, res, res)`` input (model in eval mode, unchanged).

    Use the UNFUSED model for the paper convention (BatchNorm is part of the official count).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # fvcore uses the deprecated torch.jit.script
        from fvcore.nn import FlopCountAnalysis

    h, w = (res, res) if isinstance(res, int) else res
    for name, v in (("res", h), ("res", w), ("batch", batch), ("in_chans", in_chans)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"count_flops: {name} must be a positive int, got {v!r}")
    cfg = getattr(model, "cfg", None)
    if cfg is not None and hasattr(cfg, "total_stride"):
        from lab.config import check_input_size

        check_input_size(cfg, (h, w))
    x = torch.randn(batch, in_chans, h, w, device=device)
    scan_name = scan_op_name()
    notes: list[str] = []
    if scan_name is None and _contains_scan_module(model):
        notes.append("kernels.selective_scan defines no SCAN_OP_NAME: the scan was traced op by op, so the paper "
                     "count misses its formula and 'full' counts its loop instead")
    with _eval_mode(model), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit deprecation notices
        analysis = FlopCountAnalysis(model, (x,))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        analysis.set_op_handle(**PAPER_SKIPPED)
        analysis.set_op_handle(**{op: None for op in ZERO_COST})
        if scan_name is not None:
            analysis.set_op_handle(scan_name, _scan_handle)
        try:
            by_op = Counter({k: int(v) for k, v in analysis.by_operator().items()})
        except (RuntimeError, AssertionError, TypeError) as exc:
            raise ValueError(f"could not trace {type(model).__name__} at {h}x{w} px for FLOP counting: {exc}") from exc
        unsupported = {k: int(v) for k, v in sorted(analysis.unsupported_ops().items())}
    skipped = {k: v for k, v in sorted(by_op.items()) if k.startswith(FULL_PREFIX)}
    full = sum(by_op.values())
    paper = full - sum(skipped.values())
    if unsupported and warn:
        warnings.warn(
            f"FLOP count of {type(model).__name__}: no counter understands {unsupported} (op kind -> calls); "
            "they were counted as 0. Add a handle to lab.measure.flops (PAPER_SKIPPED or ZERO_COST).",
            UnsupportedOpWarning,
            stacklevel=2,
        )
    if notes and warn:
        warnings.warn(notes[0], UnsupportedOpWarning, stacklevel=2)
    return FlopCount(
        paper=paper,
        full=full,
        scan=by_op.get(SCAN_LABEL, 0),
        res=h if h == w else (h, w),
        batch=batch,
        by_operator=dict(sorted(by_op.items())),
        skipped_by_convention=skipped,
        unsupported_ops=unsupported,
        notes=tuple(notes),
    )


def flop_counter_mode_macs(model: nn.Module, x: torch.Tensor) -> int:
    """``torch.utils.flop_counter.FlopCounterMode`` total / 2 (it counts a multiply-add as 2):
    the independent cross-check of the conv/matmul/scan part of ``count_flops``."""
    from torch.utils.flop_counter import FlopCounterMode

    with _eval_mode(model), torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    total = counter.get_total_flops()
    if total % 2:
        raise ValueError(f"FlopCounterMode returned an odd total {total}: not a multiply-add count")
    return total // 2
