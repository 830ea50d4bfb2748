"""The lab's MobileMamba is the official one: keys, shapes, params, fusion, batch independence,
and every knob builds and trains."""

from __future__ import annotations

import itertools
import json

import pytest
import timm
import torch

import lab
from lab.config import MixerConfig, ModelConfig, StageConfig
from lab.models.testing import randomize_
from tests.conftest import DATA


def _official() -> dict:
    return json.loads((DATA / "official_numbers.json").read_text())["variants"]


def _official_t2_layout() -> list[tuple[str, str, str, str]]:
    rows = []
    for line in (DATA / "official_state_dict_t2.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            rows.append(tuple(line.split("\t")))
    return rows


@pytest.mark.parametrize("name", lab.OFFICIAL_VARIANTS)
def test_official_param_counts(name):
    m = lab.build_model(name, num_classes=1000)
    ref = _official()[name]
    assert sum(p.numel() for p in m.parameters()) == ref["params"]
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) == ref["trainable"]
    assert len(m.state_dict()) == ref["state_dict_entries"]


def test_t2_state_dict_layout_is_official():
    m = lab.build_model("mobilemamba_t2", num_classes=1000)
    sd = m.state_dict()
    rows = _official_t2_layout()
    assert list(sd) == [r[0] for r in rows]
    params = dict(m.named_parameters())
    for key, shape, dtype, kind in rows:
        assert str(tuple(sd[key].shape)) == shape, key
        assert str(sd[key].dtype).replace("torch.", "") == dtype, key
        if kind.startswith("param"):
            assert params[key].requires_grad == ("requires_grad=False" not in kind), key
        else:
            assert key not in params, key


@pytest.mark.parametrize("name", lab.OFFICIAL_VARIANTS)
def test_variant_structure_matches_official_splits(name):
    """Read the channel split of every block back from the state_dict shapes."""
    m = lab.build_model(name)
    sd = m.state_dict()
    cfg = lab.get_config(name)
    splits = _official()[name]["splits"]
    for i, stage in enumerate(cfg.stages):
        first = 3 if stage.downsample else 0
        for j in range(first, first + stage.depth):
            p = f"blocks{i + 1}.{j}.mixer.m.attn."
            g, loc, _ = splits[i]
            assert sd[p + "local_op.dwconv3x3.weight"].shape == (loc, 1, (7, 5, 3)[i], (7, 5, 3)[i])
            assert sd[p + "global_op.global_atten.in_proj.c.weight"].shape == (4 * g, g, 1, 1)
            assert sd[p + "global_op.wt_filter"].shape == (4 * g, 1, 2, 2)


def test_strict_load_of_an_official_style_checkpoint(tmp_path):
    src = randomize_(lab.build_model("mobilemamba_t2"), seed=1)
    path = tmp_path / "mobilemamba_t2.pth"
    torch.save({"net": {"module." + k: v for k, v in src.state_dict().items()}, "epoch": 300}, path)
    dst = lab.build_model("mobilemamba_t2")
    lab.load_checkpoint(dst, path, strict=True)
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    via_timm = timm.create_model("mobilemamba_t2", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert torch.equal(via_timm.head.l.weight, src.head.l.weight)


def test_timm_registration():
    m = timm.create_model("mobilemamba_tiny", num_classes=10, drop_path_rate=0.1)
    assert isinstance(m, lab.models.MobileMamba)
    assert m.cfg.num_classes == 10 and m.cfg.drop_path == 0.1
    with pytest.raises(ValueError, match="pretrained_cfg_overlay"):
        timm.create_model("mobilemamba_t2", pretrained=True)


def test_default_init_block_is_exactly_twice_identity():
    """Official init: every inner branch ends in a zero-initialised BN, so a block computes 2x."""
    m = lab.build_model("mobilemamba_tiny").eval()
    block = m.blocks1[0]
    x = torch.randn(2, 32, 16, 16)
    torch.testing.assert_close(block(x), 2 * x)


@pytest.mark.parametrize("name", ["mobilemamba_t2", "mobilemamba_tiny"])
def test_fuse_preserves_logits(name):
    torch.manual_seed(0)
    m = randomize_(lab.build_model(name), seed=2).eval()
    x = torch.randn(2, 3, m.cfg.img_size, m.cfg.img_size)
    with torch.no_grad():
        before = m(x)
        m.fuse()
        after = m(x)
    assert not any(isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) for mod in m.modules())
    rel = (after - before).abs().max() / before.abs().max()
    assert rel < 1e-4, float(rel)
    # logits are not degenerate (the branches contribute)
    assert before.std() > 1e-3


def test_fuse_refuses_train_mode():
    with pytest.raises(RuntimeError, match="eval"):
        lab.build_model("mobilemamba_tiny").fuse()


@pytest.mark.parametrize("name", ["mobilemamba_t2", "mobilemamba_tiny"])
def test_batch_of_two_equals_one_at_a_time(name):
    m = randomize_(lab.build_model(name), seed=3).eval()
    x = torch.randn(2, 3, m.cfg.img_size, m.cfg.img_size)
    with torch.no_grad():
        both = m(x)
        one = torch.cat([m(x[:1]), m(x[1:])])
    torch.testing.assert_close(both, one, rtol=1e-5, atol=1e-5 * float(both.abs().max()))


def test_distillation_head():
    m = lab.build_model("mobilemamba_tiny", distillation=True, num_classes=5)
    x = torch.randn(2, 3, 64, 64)
    out, out_dist = m.train()(x)
    assert out.shape == out_dist.shape == (2, 5)
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(m(x), (m.head(m.forward_head(m.forward_features(x), pre_logits=True))
                                          + m.head_dist(m.forward_head(m.forward_features(x), pre_logits=True))) / 2)


def test_forward_intermediates():
    m = lab.build_model("mobilemamba_tiny").eval()
    x = torch.randn(1, 3, 64, 64)
    final, feats = m.forward_intermediates(x)
    assert [f.shape[1:] for f in feats] == [(32, 16, 16), (64, 8, 8), (96, 4, 4)]
    torch.testing.assert_close(final, m.forward_features(x))
    only = m.forward_intermediates(x, indices=[0], intermediates_only=True)
    assert len(only) == 1 and torch.equal(only[0], feats[0])
    assert [f["reduction"] for f in m.feature_info] == [4, 8, 16]


def _tiny(mixer: MixerConfig, *, dims=(32, 48, 64), stem_stride=4) -> ModelConfig:
    return ModelConfig(
        name="grid",
        img_size=32,
        num_classes=7,
        stem_stride=stem_stride,
        stages=tuple(StageConfig(dim=d, depth=1, downsample=i > 0, mixer=mixer) for i, d in enumerate(dims)),
    )


GRID = [
    MixerConfig(wavelet_levels=levels, local_kernels=kernels, global_ratio=g, local_ratio=loc, d_state=n, scan=scan)
    for levels, kernels, (g, loc), n, scan in [
        (0, (3,), (0.5, 0.25), 1, "bidi"),
        (1, (5,), (0.5, 0.5), 4, "cross"),
        (2, (3, 5, 7), (0.5, 0.25), 1, "cross"),
        (3, (3,), (0.0, 0.5), 1, "bidi"),  # global 0: no WTE-Mamba
        (1, (3, 5, 7), (0.5, 0.5), 4, "bidi"),  # identity 0
        (2, (5,), (0.6, 0.2), 1, "fwd"),
    ]
] + [
    MixerConfig(wavelet_levels=1, use_ssm=False, global_ratio=0.5, local_ratio=0.25),
    MixerConfig(wavelet_levels=2, wavelet_type="db2", wavelet_kernel=3, global_ratio=0.5, local_ratio=0.25),
]


@pytest.mark.parametrize("mixer", GRID, ids=lambda m: f"L{m.wavelet_levels}-k{m.local_kernels}-g{m.global_ratio}"
                         f"-l{m.local_ratio}-N{m.d_state}-{m.scan}-ssm{int(m.use_ssm)}-{m.wavelet_type}")
def test_knob_grid_forward_backward(mixer):
    cfg = _tiny(mixer)
    m = randomize_(lab.build_model(cfg), seed=4).train()
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    for res in (32, 50, 64, 72):
        m.zero_grad(set_to_none=True)
        x = torch.randn(2, 3, res, res)
        out = m(x)
        assert out.shape == (2, 7) and torch.isfinite(out).all()
        out.square().mean().backward()
        for n, p in m.named_parameters():
            if n in trainable:
                assert p.grad is not None and torch.isfinite(p.grad).all(), (res, n)
                assert p.grad.abs().sum() > 0, (res, n)
            else:
                assert p.grad is None, n


def test_grid_covers_every_knob_combination_axis():
    """The grid above exercises levels 0..3, 1 and 3 kernels, identity 0, global 0, N 1 and 4, 2 and 4 scans."""
    assert {m.wavelet_levels for m in GRID} >= {0, 1, 2, 3}
    assert {len(m.local_kernels) for m in GRID} >= {1, 3}
    assert {m.d_state for m in GRID} == {1, 4} and {"bidi", "cross"} <= {m.scan for m in GRID}
    splits = [m.split(32) for m in GRID]
    assert any(s.identity == 0 for s in splits) and any(s.global_ == 0 for s in splits)


def test_cross_scan_orders_are_inverted():
    from lab.blocks.ss2d import merge_orders, scan_orders

    x = torch.randn(2, 3, 4, 5)
    for k in (1, 2, 4):
        torch.testing.assert_close(merge_orders(scan_orders(x, k), 4, 5), k * x)


def test_stage_without_downsample_and_four_stages():
    mixer = MixerConfig(global_ratio=0.5, local_ratio=0.25)
    cfg = ModelConfig(
        stages=(
            StageConfig(dim=32, depth=1, downsample=False, mixer=mixer),
            StageConfig(dim=32, depth=1, downsample=False, mixer=mixer),
            StageConfig(dim=48, depth=1, mixer=mixer),
            StageConfig(dim=64, depth=0, mixer=mixer),
        ),
        img_size=64,
        stem_stride=4,
        num_classes=3,
    )
    m = lab.build_model(cfg).eval()
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    assert [f["reduction"] for f in m.feature_info] == [4, 4, 8, 16]


def test_presets_build_and_run_tiny_forward():
    for name in ("mobilemamba_tiny", "mobilemamba_t2_proxy"):
        m = lab.build_model(name, num_classes=10).eval()
        with torch.no_grad():
            assert m(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_ratio_grid_is_consistent():
    for g, loc in itertools.product([0.0, 0.25, 0.5, 0.75], [0.0, 0.25]):
        s = MixerConfig(global_ratio=g, local_ratio=loc).split(64)
        assert s.global_ + s.local + s.identity == 64 and min(vars(s).values()) >= 0
