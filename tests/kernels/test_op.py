"""The custom op: one traced node per call whatever the backend, meta device, dispatch, bad input."""

from __future__ import annotations

import warnings

import pytest
import torch
from scan_testlib import Case, make_inputs

import kernels.selective_scan as ss
from kernels.selective_scan.op import selective_scan_backward_op, selective_scan_op

DEFAULT_CASE = Case(2, 2, 3, 2, 6)


def _inputs(case: Case = DEFAULT_CASE, dtype=torch.float32, device="cpu"):
    return make_inputs(case, seed=1, dtype=dtype, device=device)


class TwoScans(torch.nn.Module):
    """Two scan calls with a backend chosen by the caller's ``use_backend`` context."""

    def __init__(self, inputs) -> None:
        super().__init__()
        self.rest = inputs[1:]

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        delta, A, B, C, D, bias = self.rest
        y = ss.selective_scan(u, delta, A, B, C, D, delta_bias=bias)
        return ss.selective_scan(y, delta, A, B, C, None, delta_bias=None)


@pytest.mark.parametrize("backend", ["ref", "torch", "auto"])
def test_jit_trace_shows_one_node_per_call(backend: str) -> None:
    inputs = _inputs()
    with ss.use_backend(backend), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace deprecation
        traced = torch.jit.trace(TwoScans(inputs), (inputs[0],))
    kinds = [n.kind() for n in traced.graph.nodes()]
    assert kinds.count(ss.SCAN_OP_NAME) == 2, kinds
    assert not [k for k in kinds if k.startswith("aten::") and k not in ("aten::mul",)], kinds
    resolved = ss.resolve_backend(backend, inputs[0])
    scan_nodes = [n for n in traced.graph.nodes() if n.kind() == ss.SCAN_OP_NAME]
    assert [list(n.inputs())[8].toIValue() for n in scan_nodes] == [resolved, resolved]
    torch.testing.assert_close(traced(inputs[0]), TwoScans(inputs)(inputs[0]))


def test_meta_device_runs_through_fake_implementation() -> None:
    inputs = _inputs(device="meta")
    for backend in ("ref", "torch", "auto"):
        y = ss.selective_scan(*inputs[:6], delta_bias=inputs[6], backend=backend)
        assert y.device.type == "meta" and y.shape == inputs[0].shape and y.dtype == inputs[0].dtype
    leaves = [t.requires_grad_(True) for t in inputs]
    ss.selective_scan(*leaves[:6], delta_bias=leaves[6]).sum().backward()
    assert all(t.grad is not None and t.grad.shape == t.shape for t in leaves)


@pytest.mark.parametrize("backend", ["ref", "torch"])
@pytest.mark.parametrize("optional", [True, False])
def test_opcheck(backend: str, optional: bool) -> None:
    """torch.library.opcheck: schema, fake tensors (incl. strides), autograd registration, AOT dispatch."""
    inputs = _inputs()
    if not optional:
        inputs[5] = inputs[6] = None
    leaves = [t.requires_grad_(True) if t is not None else None for t in inputs]
    torch.library.opcheck(selective_scan_op, (*leaves, True, backend))
    grad_y = torch.randn_like(inputs[0])
    torch.library.opcheck(selective_scan_backward_op, (grad_y, *[t.detach() if t is not None else None for t in inputs],
                                                       True, backend))


def test_torch_compile_sees_one_op() -> None:
    inputs = _inputs()
    expected = ss.selective_scan(*inputs[:6], delta_bias=inputs[6]) * 2
    compiled = torch.compile(lambda *a: ss.selective_scan(*a[:6], delta_bias=a[6]) * 2, backend="aot_eager",
                             fullgraph=True)
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    y = compiled(*leaves)
    y.sum().backward()
    torch.testing.assert_close(y, expected)
    assert all(t.grad is not None for t in leaves)


def test_use_backend_nests_and_restores() -> None:
    assert ss.current_backend() == "auto"
    with ss.use_backend("ref"):
        assert ss.current_backend() == "ref"
        with ss.use_backend("torch"):
            assert ss.current_backend() == "torch"
        assert ss.current_backend() == "ref"
    assert ss.current_backend() == "auto"
    with pytest.raises(RuntimeError), ss.use_backend("ref"):
        raise RuntimeError("boom")
    assert ss.current_backend() == "auto"


def test_use_backend_really_switches_the_implementation(monkeypatch) -> None:
    """The op dispatches on the backend string: a spy on each implementation records the calls."""
    from kernels.selective_scan import op

    calls = []
    auto = ss.resolve_backend("auto", torch.zeros(1))
    for name in {"ref", "torch", auto}:
        fwd, bwd = op.get_impl(name)
        monkeypatch.setitem(op._IMPLS, name, (lambda *a, _n=name, _f=fwd, **k: calls.append(_n) or _f(*a, **k), bwd))
    inputs = _inputs()
    for name in ("ref", "torch", "auto"):
        with ss.use_backend(name):
            ss.selective_scan(*inputs[:6], delta_bias=inputs[6])
    ss.selective_scan(*inputs[:6], delta_bias=inputs[6], backend="ref")
    assert calls == ["ref", "torch", auto, "ref"]


def test_auto_resolves_to_numba_or_torch_on_cpu_and_available_backends() -> None:
    u = torch.zeros(1, 1, 1)
    assert ss.resolve_backend("auto", u) == ("numba" if ss.numba_importable() else "torch")
    assert ss.resolve_backend("ref", u) == "ref"
    cpu = ss.available_backends("cpu")
    assert cpu[:3] == ["auto", "ref", "torch"]
    assert set(ss.available_backends()) >= {"auto", "ref", "torch"}


def test_unknown_backend_is_a_clear_error() -> None:
    inputs = _inputs()
    with pytest.raises(ValueError, match="unknown selective-scan backend 'cuda_ext'"):
        ss.selective_scan(*inputs[:6], backend="cuda_ext")
    with pytest.raises(ValueError, match="unknown selective-scan backend"), ss.use_backend("fast"):
        pass
    with pytest.raises(ValueError, match="'auto' is resolved"):
        selective_scan_op(*inputs, True, "auto")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda x: x.__setitem__(0, x[0][:, :-1]), "u must be|delta must have"),
        (lambda x: x.__setitem__(1, x[1][..., :-1]), "delta must have u's shape"),
        (lambda x: x.__setitem__(2, x[2][:-1]), r"A must be \(dim=6"),
        (lambda x: x.__setitem__(3, x[3][..., :-1]), r"B must be \(batch=2"),
        (lambda x: x.__setitem__(4, x[4][:, :1]), "B and C must have the same shape"),
        (lambda x: x.__setitem__(3, torch.zeros(2, 4, 2, 6)), "4 groups, which does not divide dim=6"),
        (lambda x: x.__setitem__(5, x[5][:-1]), r"D must be \(dim=6,\)"),
        (lambda x: x.__setitem__(6, x[6][None]), r"delta_bias must be \(dim=6,\)"),
        (lambda x: x.__setitem__(0, x[0].long()), "u has dtype torch.int64"),
        (lambda x: x.__setitem__(3, x[3].to(torch.complex64)), "B has dtype torch.complex64"),
        (lambda x: x.__setitem__(2, x[2].to("meta")), "must be on one device.*A: meta"),
        (lambda x: x.__setitem__(0, x[0].numpy()), "u must be a torch.Tensor"),
        (lambda x: x.__setitem__(0, x[0][0]), r"u must be \(batch, dim, L\)"),
    ],
)
def test_bad_input_gets_a_clear_error(mutate, message: str) -> None:
    inputs = _inputs()
    mutate(inputs)
    with pytest.raises(ValueError, match=message):
        ss.selective_scan(*inputs[:6], delta_bias=inputs[6])


def test_delta_softplus_must_be_bool() -> None:
    inputs = _inputs()
    with pytest.raises(ValueError, match="delta_softplus must be a bool"):
        ss.selective_scan(*inputs[:6], delta_softplus=1)


def test_flop_counter_mode_counts_twice_the_fvcore_number() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    case = Case(3, 2, 5, 4, 7)
    inputs = _inputs(case)
    for with_D in (True, False):
        with FlopCounterMode(display=False) as counter:
            ss.selective_scan(*inputs[:5], inputs[5] if with_D else None, delta_bias=inputs[6], backend="torch")
        expected = ss.selective_scan_flops(batch=3, dim=10, length=7, d_state=4, with_D=with_D)
        assert counter.get_total_flops() == 2 * expected
