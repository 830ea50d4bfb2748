"""The scan FLOP formula: hand count, from shapes, and through fvcore's jit-trace handle."""

from __future__ import annotations

import warnings

import pytest
import torch

import kernels.selective_scan as ss
from kernels.selective_scan.flops import (
    fvcore_selective_scan_handle,
    selective_scan_flops,
    selective_scan_flops_from_shapes,
)


def test_formula_matches_hand_count() -> None:
    # batch 2, dim 3, L 5, N 4: 9 * 2 * 5 * 3 * 4 = 1080 for the scan, + 2 * 3 * 5 = 30 for D * u.
    assert selective_scan_flops(batch=2, dim=3, length=5, d_state=4, with_D=False) == 1080
    assert selective_scan_flops(batch=2, dim=3, length=5, d_state=4) == 1110
    assert selective_scan_flops(batch=2, dim=3, length=5, d_state=4, with_D=True, with_Z=True) == 1140
    # T2 stage 1 at 192 px, batch 1: 2 x 224 channels, L = 144, d_state 1 -> 9*144*448 + 144*448.
    assert selective_scan_flops(batch=1, dim=448, length=144, d_state=1) == 645_120


def test_formula_from_shapes_and_bad_values() -> None:
    assert selective_scan_flops_from_shapes((2, 3, 5), (3, 4), (3,)) == 1110
    assert selective_scan_flops_from_shapes((2, 3, 5), (3, 4), None) == 1080
    with pytest.raises(ValueError, match="expected u"):
        selective_scan_flops_from_shapes((2, 3), (3, 4), None)
    with pytest.raises(ValueError, match="batch must be a non-negative int"):
        selective_scan_flops(batch=-1, dim=3, length=5, d_state=4)


def test_fvcore_handle_counts_the_traced_op() -> None:
    fvcore = pytest.importorskip("fvcore.nn")

    class Scan(torch.nn.Module):
        def __init__(self, with_D: bool) -> None:
            super().__init__()
            self.with_D = with_D

        def forward(self, u, delta, A, B, C, D):
            return ss.selective_scan(u, delta, A, B, C, D if self.with_D else None)

    b, d, length, n = 2, 6, 9, 3
    args = (torch.randn(b, d, length), torch.randn(b, d, length), -torch.rand(d, n), torch.randn(b, 2, n, length),
            torch.randn(b, 2, n, length), torch.randn(d))
    for with_D in (True, False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analysis = fvcore.FlopCountAnalysis(Scan(with_D), args)
            analysis.set_op_handle(ss.SCAN_OP_NAME, fvcore_selective_scan_handle)
            analysis.unsupported_ops_warnings(False)
            total = analysis.total()
        assert total == selective_scan_flops(batch=b, dim=d, length=length, d_state=n, with_D=with_D)
