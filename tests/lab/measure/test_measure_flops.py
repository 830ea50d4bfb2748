"""FLOP counting: paper convention reproduces the official table; cross-checks with FlopCounterMode
and hand counts; full mode; unsupported ops are listed and warned, never silently 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lab
from lab.config import stage_resolutions
from lab.measure import UnsupportedOpWarning, count_flops, flop_counter_mode_macs, scan_flops
from lab.measure.flops import scan_op_name

DATA = Path(__file__).parents[2] / "data"
OFFICIAL = json.loads((DATA / "official_numbers.json").read_text())["variants"]


@pytest.mark.parametrize("name", lab.OFFICIAL_VARIANTS)
def test_official_flops_reproduce_the_paper(name):
    assert scan_op_name() is not None, "kernels.selective_scan.SCAN_OP_NAME is missing: the scan cannot be counted"
    ref = OFFICIAL[name]
    result = count_flops(lab.build_model(name), res=ref["res"])
    assert result.res == lab.get_config(name).img_size
    assert abs(result.paper / 1e6 - ref["flops_m"]) <= 0.005 * ref["flops_m"]
    assert round(result.paper / 1e6, 1) == ref["flops_m"]  # in fact exact to the official 0.1 M rounding
    assert round(result.scan / 1e6, 2) == ref["scan_flops_m"]
    assert result.unsupported_ops == {}
    assert result.full > result.paper


class ConvLinearNet(nn.Module):
    """Only convs (plain, strided, grouped, dilated, biased, transposed) and linears/matmuls."""

    def __init__(self, c: int, groups: int, k: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, c, k, stride=2, padding=k // 2, bias=True)
        self.c2 = nn.Conv2d(c, c, 3, padding=2, dilation=2, groups=groups, bias=False)
        self.c3 = nn.ConvTranspose2d(c, c // 2, 2, stride=2, groups=1)
        self.c4 = nn.Conv1d(c // 2, 7, 1)
        self.fc = nn.Linear(7, 5)
        self.w = nn.Parameter(torch.randn(5, 3))

    def forward(self, x):
        x = self.c3(self.c2(self.c1(x)))
        x = self.c4(x.flatten(2))  # (B, 7, L)
        y = self.fc(x.transpose(1, 2))  # (B, L, 5)
        return torch.matmul(y, self.w)


def hand_count(c: int, groups: int, k: int, res: int, batch: int) -> int:
    h1 = (res + 2 * (k // 2) - k) // 2 + 1
    n = batch * c * 3 * k * k * h1 * h1  # c1 (bias not counted)
    n += batch * c * (c // groups) * 9 * h1 * h1  # c2
    n += batch * c * (c // 2) * 4 * h1 * h1  # c3: every input pixel times the whole kernel
    length = (2 * h1) ** 2
    n += batch * 7 * (c // 2) * length  # c4
    n += batch * length * 7 * 5 + batch * length * 5 * 3  # fc, matmul
    return n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conv_linear_model_equals_flop_counter_mode_and_hand_count(seed):
    g = torch.Generator().manual_seed(seed)
    c = 8 * int(torch.randint(1, 4, (1,), generator=g))
    groups = [1, 2, 4][int(torch.randint(0, 3, (1,), generator=g))]
    k = [1, 3, 5][int(torch.randint(0, 3, (1,), generator=g))]
    res = int(torch.randint(9, 33, (1,), generator=g))
    batch = int(torch.randint(1, 3, (1,), generator=g))
    net = ConvLinearNet(c, groups, k)
    result = count_flops(net, res=res, batch=batch)
    torch_macs = flop_counter_mode_macs(net, torch.randn(batch, 3, res, res))
    assert result.paper == torch_macs == hand_count(c, groups, k, res, batch)
    assert result.full == result.paper and result.unsupported_ops == {}


def test_scan_formula_hand_count():
    # Per (batch, channel, step, state): discretise A and B, update h, read C: 9 ops; plus D*u per (b, d, t).
    assert scan_flops(batch=2, dim=3, length=5, d_state=4) == 9 * 2 * 3 * 5 * 4 + 2 * 3 * 5 == 1110
    assert scan_flops(batch=2, dim=3, length=5, d_state=4, with_D=False) == 1080
    assert scan_flops(batch=2, dim=3, length=5, d_state=4, with_Z=True) == 1140
    assert scan_flops(batch=1, dim=448, length=144, d_state=1) == 645_120  # T2 stage 1 (official 1.36 M total)
    with pytest.raises(ValueError, match="d_state"):
        scan_flops(batch=1, dim=4, length=4, d_state=-1)


def test_scan_formula_agrees_with_the_kernel_package():
    flops_mod = pytest.importorskip("kernels.selective_scan.flops")
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        b, d, length, n = (int(v) for v in torch.randint(1, 50, (4,), generator=g))
        for with_d in (True, False):
            assert scan_flops(batch=b, dim=d, length=length, d_state=n, with_D=with_d) == \
                flops_mod.selective_scan_flops(batch=b, dim=d, length=length, d_state=n, with_D=with_d)


class TwoScans(nn.Module):
    def __init__(self, dim: int, n: int) -> None:
        super().__init__()
        self.A = nn.Parameter(-torch.rand(dim, n))
        self.D = nn.Parameter(torch.ones(dim))

    def forward(self, x):  # x: (B, dim, L)
        from kernels.selective_scan import selective_scan

        b, d, length = x.shape
        bc = x.new_ones(b, 1, self.A.shape[1], length)
        y = selective_scan(x, x, self.A, bc, bc, self.D)
        return selective_scan(y, x, self.A, bc, bc, None)


def test_each_scan_call_is_counted_once_with_its_formula():
    assert scan_op_name() is not None
    net = TwoScans(6, 3)
    x = torch.randn(2, 6, 1, 10)  # count_flops feeds (batch, in_chans, h, w): reshape inside a wrapper
    wrapper = nn.Sequential(nn.Flatten(2), net)
    result = count_flops(wrapper, res=(1, 10), batch=2, in_chans=6)
    expected = scan_flops(batch=2, dim=6, length=10, d_state=3) + scan_flops(batch=2, dim=6, length=10, d_state=3,
                                                                              with_D=False)
    assert result.scan == expected == result.by_operator["selective_scan"]
    assert flop_counter_mode_macs(wrapper, x) == expected


def test_mobilemamba_scan_part_equals_formula_from_the_config():
    assert scan_op_name() is not None
    cfg = lab.get_config("mobilemamba_tiny")
    res = cfg.img_size
    expected = 0
    for stage, side in zip(cfg.stages, stage_resolutions(cfg, res)):
        m = stage.mixer
        g = m.split(stage.dim).global_
        dim = m.directions * int(m.ssm_ratio * g)
        expected += stage.depth * scan_flops(batch=1, dim=dim, length=side * side, d_state=m.d_state)
    result = count_flops(lab.build_model(cfg), res=res)
    assert result.scan == expected > 0


def test_whole_model_cross_check_with_flop_counter_mode():
    """FlopCounterMode counts convs (all paddings), matmuls and the scan (x2), no norms/pools."""
    model = lab.build_model("mobilemamba_tiny")
    result = count_flops(model, res=64)
    b = result.by_operator
    torch_part = b["conv"] + b["linear"] + b["full:conv_same"] + b["selective_scan"]
    assert flop_counter_mode_macs(model, torch.randn(1, 3, 64, 64)) == torch_part


class SamePadAndElementwise(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding="same", groups=4, bias=False)
        self.scale = nn.Parameter(torch.ones(1, 4, 1, 1))

    def forward(self, x):
        y = self.conv(x)
        return F.silu(y) * self.scale + x


def test_full_mode_counts_what_the_paper_convention_skips():
    result = count_flops(SamePadAndElementwise(), res=6, in_chans=4)
    numel = 4 * 6 * 6
    assert result.paper == 0  # 'same' padding conv is invisible to the fvcore convention
    assert result.skipped_by_convention == {
        "full:add": numel, "full:conv_same": numel * 9, "full:mul": numel, "full:silu": numel}
    assert result.full == numel * 12
    assert result.unsupported_ops == {}


class Exotic(nn.Module):
    def forward(self, x):
        return torch.special.erfinv(torch.tanh(x) * 0.5) + torch.special.i0(x)


def test_unknown_ops_are_listed_and_warned_not_silently_zero():
    with pytest.warns(UnsupportedOpWarning, match="erfinv"):
        result = count_flops(Exotic(), res=4)
    assert result.unsupported_ops == {"aten::erfinv": 1, "aten::i0": 1}
    assert result.skipped_by_convention == {"full:add": 48, "full:mul": 48, "full:tanh": 48}


def test_count_flops_restores_training_mode_and_rejects_bad_sizes():
    model = lab.build_model("mobilemamba_tiny").train()
    count_flops(model, res=64)
    assert model.training and all(m.training for m in model.modules())
    with pytest.raises(ValueError, match="total stride"):
        count_flops(model, res=8)  # tiny: stem stride 4 x 2 x 2 = 16
    with pytest.raises(ValueError, match="res must be a positive int"):
        count_flops(model, res=0)
    assert count_flops(model, res=32).paper < count_flops(model, res=48).paper
