"""Whole models give the same logits with every CPU scan backend (randomized weights, eval mode)."""

from __future__ import annotations

import pytest
import torch

import kernels.selective_scan as ss
from kernels.selective_scan import op

lab = pytest.importorskip("lab")
from lab.models.testing import randomize_  # noqa: E402

CPU_BACKENDS = ("ref", "torch", "auto") + (("numba",) if ss.numba_importable() else ())


def _logits_per_backend(model: torch.nn.Module, x: torch.Tensor, monkeypatch) -> dict[str, torch.Tensor]:
    calls: list[str] = []
    for name in {ss.resolve_backend(b, x) for b in CPU_BACKENDS}:
        fwd, bwd = op.get_impl(name)
        monkeypatch.setitem(op._IMPLS, name, (lambda *a, _n=name, _f=fwd, **k: calls.append(_n) or _f(*a, **k), bwd))
    out = {}
    with torch.no_grad():
        for backend in CPU_BACKENDS:
            calls.clear()
            with ss.use_backend(backend):
                out[backend] = model(x)
            expected = ss.resolve_backend(backend, x)
            assert calls and set(calls) == {expected}, f"{backend}: scan calls went to {set(calls)}"
    return out


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize(("name", "img", "batch"), [("mobilemamba_tiny", 64, 2), ("mobilemamba_t2", 192, 1)])
def test_same_logits_with_every_cpu_backend(name: str, img: int, batch: int, monkeypatch) -> None:
    torch.manual_seed(0)
    model = randomize_(lab.build_model(name), seed=1).eval()
    x = torch.randn(batch, 3, img, img)
    logits = _logits_per_backend(model, x, monkeypatch)
    ref = logits["ref"]
    assert torch.isfinite(ref).all() and float(ref.std()) > 0
    for backend, y in logits.items():
        assert y.shape == ref.shape
        assert _rel(y, ref) < 1e-5, f"{name}: {backend} vs ref relative error {_rel(y, ref):.2e}"
