"""ERF: known answers on positive conv stacks, batching vs per-image reference, timm and lab models."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from torch import nn

from analysis.erf import area_ratio, erf_map, erf_table, noise_images, normalize_map


def _positive_stack(k: int, *, seed: int = 0, chans: int = 1) -> nn.Sequential:
    """k 3x3 convs (stride 1, padding 1) with positive weights summing to 1 per output channel."""
    g = torch.Generator().manual_seed(seed)
    convs = [nn.Conv2d(chans, chans, 3, padding=1, bias=False) for _ in range(k)]
    with torch.no_grad():
        for c in convs:
            w = torch.rand(c.weight.shape, generator=g) + 0.05
            c.weight.copy_(w / w.sum(dim=(1, 2, 3), keepdim=True))
    return nn.Sequential(*convs)


class _Staged(nn.Module):
    """Stages of plain convs with a timm-style forward_intermediates (list of indices only)."""

    def __init__(self, stages: list[nn.Module]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward_intermediates(self, x, indices=None, intermediates_only=False):
        out = []
        indices = [i % len(self.stages) for i in indices]
        for i, s in enumerate(self.stages):
            x = s(x)
            if i in indices:
                out.append(x)
        return out


@pytest.mark.parametrize("k", [6, 7])
def test_positive_conv_stack_known_answer(k):
    """Support is exactly the (2k+1)^2 theoretical field; the 0.99 area is strictly smaller (Gaussian-like ERF).

    Weights sum to 1 so the input gradient sums to 1 and log10(x+1) is in its near-linear regime;
    with much larger gradients log10 flattens the map and the 0.99 square grows to the full support.
    """
    size = 41
    res = erf_map(_positive_stack(k, seed=k), torch.rand(3, 1, size, size), stage=None)
    c = size // 2
    support = np.argwhere(res.raw > 0)
    assert support.min(0).tolist() == [c - k, c - k] and support.max(0).tolist() == [c + k, c + k]
    assert (res.raw[c - k : c + k + 1, c - k : c + k + 1] > 0).all()
    square = (2 * k + 1) ** 2 / size**2
    assert res.area_ratios[0.99] < square
    assert res.side_lengths[0.99] < 2 * k + 1
    ratios = [res.area_ratios[t] for t in (0.2, 0.3, 0.5, 0.99)]
    assert ratios == sorted(ratios) and ratios[0] > 0
    deeper = erf_map(_positive_stack(k + 3, seed=k), torch.rand(3, 1, size, size), stage=None)
    assert deeper.area_ratios[0.99] > res.area_ratios[0.99]
    assert res.source == "noise" and res.weights == "initialisation" and res.n_images == 3


def test_batched_equals_per_image_reference_and_dataloader_batches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                          nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 5, padding=2))
    x = torch.randn(5, 3, 24, 24)
    batched = erf_map(model, x, stage=None, batch_size=5)
    per_image = np.mean([erf_map(model, x[i : i + 1], stage=None).raw for i in range(5)], axis=0)
    np.testing.assert_allclose(batched.raw, per_image, rtol=1e-5, atol=1e-9)
    loader = [(x[:2], torch.zeros(2)), (x[2:], torch.zeros(3))]
    from_loader = erf_map(model, loader, stage=None, source="dataset")
    np.testing.assert_allclose(from_loader.raw, batched.raw, rtol=1e-5, atol=1e-9)
    capped = erf_map(model, loader, stage=None, max_images=3)
    np.testing.assert_allclose(capped.raw, erf_map(model, x[:3], stage=None).raw, rtol=1e-5, atol=1e-9)
    assert capped.n_images == 3


def test_model_is_left_unchanged_and_mode_restored():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Dropout(0.5))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    erf_map(model, torch.randn(2, 3, 16, 16), stage=None)
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())


def test_forward_intermediates_stages_grow():
    stages = [_positive_stack(2, seed=1), _positive_stack(2, seed=2), _positive_stack(2, seed=3)]
    model = _Staged(stages)
    x = torch.rand(2, 1, 31, 31)
    sides = []
    for stage in range(3):
        res = erf_map(model, x, stage=stage)
        nz = np.argwhere(res.raw > 0)
        sides.append(int(nz[:, 0].max() - nz[:, 0].min() + 1))
    assert sides == [5, 9, 13]
    neg = erf_map(model, x, stage=-1)  # negative index goes straight to forward_intermediates
    assert neg.raw.shape == (31, 31)


def test_timm_model():
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False)
    x = noise_images(2, 64, seed=1)
    early, late = erf_map(model, x, stage=0), erf_map(model, x, stage=-1)
    assert early.raw.shape == (64, 64) and np.isfinite(late.raw).all() and late.raw.sum() > 0
    assert late.area_ratios[0.99] >= early.area_ratios[0.99]
    with pytest.raises(ValueError, match="NCHW"):
        erf_map(model, x, stage=None)  # classifier logits are not a map
    rows = erf_table({"early": early, "late": late})
    assert [r["map"] for r in rows] == ["early", "late"] and "t=0.99" in rows[0]


def test_area_ratio_and_normalisation_by_hand():
    delta = np.zeros((9, 9))
    delta[4, 4] = 5.0
    assert area_ratio(normalize_map(delta), 0.99) == (1 / 81, 1)
    flat = np.ones((10, 10))
    # centre (5, 5); squares of side 1, 3, 5, 7, 9, then clipped 10x10: mass 1, 9, 25, 49, 81, 100
    assert area_ratio(flat, 0.2) == (25 / 100, 5)
    assert area_ratio(flat, 0.5) == (81 / 100, 9)
    assert area_ratio(flat, 0.99) == (1.0, 11)
    assert np.isnan(area_ratio(np.zeros((4, 4)), 0.5)[0])
    raw = np.array([[0.0, 9.0], [99.0, 0.0]])
    np.testing.assert_allclose(normalize_map(raw), [[0, 1 / 2], [1, 0]])
    np.testing.assert_allclose(normalize_map(raw, normalization="power"), [[0, 9**0.2 / 99**0.2], [1, 0]])
    with pytest.raises(ValueError, match="normalization"):
        normalize_map(raw, normalization="sqrt")
    with pytest.raises(ValueError, match="threshold"):
        area_ratio(flat, 1.0)


def test_bad_inputs_have_clear_errors():
    conv = nn.Conv2d(3, 3, 3)
    with pytest.raises(TypeError, match="forward_intermediates"):
        erf_map(conv, torch.randn(1, 3, 8, 8), stage=0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        erf_map(conv, torch.randn(3, 8, 8), stage=None)
    with pytest.raises(ValueError, match="no images"):
        erf_map(conv, [], stage=None)
    broken = nn.Conv2d(3, 3, 3)
    with torch.no_grad():
        broken.weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN/inf"):
        erf_map(broken, torch.ones(1, 3, 8, 8), stage=None)


def _wavelet_pair(seed: int):
    """mobilemamba_tiny with and without the wavelet branch, identical where their weights overlap.

    The zero-initialised BN weights (residual branches) are randomised so no branch is dead at
    initialisation; the wavelet model's tensors are then copied into the no-wavelet model.
    """
    lab = pytest.importorskip("lab")
    cfg = lab.get_config("mobilemamba_tiny")
    torch.manual_seed(seed)
    with_wt = lab.build_model(cfg)
    without = lab.build_model(cfg.with_mixer(wavelet_levels=0))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in with_wt.modules():
            if isinstance(m, nn.BatchNorm2d) and (m.weight == 0).all():
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
    src, dst = with_wt.state_dict(), without.state_dict()
    shared = {k: v for k, v in src.items() if k in dst and dst[k].shape == v.shape}
    assert set(shared) == set(dst), "the no-wavelet model should be a subset of the wavelet model"
    assert len(src) > len(dst)
    without.load_state_dict(shared)
    return with_wt, without


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_disabling_the_wavelet_branch_shrinks_the_erf(seed):
    with_wt, without = _wavelet_pair(seed)
    x = noise_images(4, 64, seed=seed)
    a = erf_map(with_wt, x, stage=0, label="wavelet")
    b = erf_map(without, x, stage=0, label="no wavelet")
    for t in (0.2, 0.3, 0.5, 0.99):
        assert a.area_ratios[t] >= b.area_ratios[t], (t, a.area_ratios, b.area_ratios)
    assert a.area_ratios[0.99] > 1.5 * b.area_ratios[0.99], (a.area_ratios, b.area_ratios)
