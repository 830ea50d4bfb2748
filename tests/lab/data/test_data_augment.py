"""Batched crop/resize/flip: fast paths equal the per-pixel reference; batches are seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lab.data import ProxyData
from lab.data.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    resized_crop,
    resized_crop_reference,
    resized_crop_separable,
    sample_rrc_params,
    val_batch,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("size, out", [(37, 32), (20, 29)])
def test_fast_paths_match_reference(seed, size, out):
    g = torch.Generator().manual_seed(seed)
    n = 6
    imgs = torch.randint(0, 256, (n, size, size, 3), generator=g, dtype=torch.uint8)
    boxes = sample_rrc_params(n, size, generator=g, scale=(0.05, 1.0))
    boxes[0] = torch.tensor([0.0, 0.0, size, size])  # whole image
    boxes[1] = torch.tensor([size - 3.0, 1.5, 3.0, 2.0])  # tiny box at the border (upsampling)
    flip = torch.rand(n, generator=g) < 0.5
    flip[0], flip[1] = True, False
    x = imgs.permute(0, 3, 1, 2).double()
    ref = resized_crop_reference(x, boxes.double(), flip, out)
    sep = resized_crop_separable(imgs, boxes, flip, out).permute(0, 3, 1, 2).double()
    grid = resized_crop(x, boxes.double(), flip, out)
    torch.testing.assert_close(sep, ref, atol=2e-3, rtol=0)  # float32 coordinates vs float64
    torch.testing.assert_close(grid, ref, atol=1e-6, rtol=0)


def test_identity_box_without_flip_is_identity():
    imgs = torch.randint(0, 256, (2, 16, 16, 3), dtype=torch.uint8)
    boxes = torch.tensor([[0.0, 0.0, 16.0, 16.0]] * 2)
    out = resized_crop_separable(imgs, boxes, torch.tensor([False, True]), 16)
    assert torch.equal(out[0], imgs[0].float())
    assert torch.equal(out[1], imgs[1].float().flip(1))  # mirrored along width


def test_rrc_params_respect_scale_and_ratio():
    g = torch.Generator().manual_seed(0)
    b = sample_rrc_params(4000, 50, generator=g, scale=(0.2, 0.6), ratio=(0.5, 2.0))
    top, left, h, w = b.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 50 + 1e-4).all() and (left + w <= 50 + 1e-4).all()
    area = h * w / 2500
    assert area.min() >= 0.2 - 1e-4 and area.max() <= 0.6 + 1e-4
    assert (w / h).min() >= 0.5 - 1e-4 and (w / h).max() <= 2.0 + 1e-4
    assert abs(float(area.mean()) - 0.4) < 0.02  # uniform in the area fraction


def _data(n=40, size=20, res=16, classes=4):
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (n, size, size, 3), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % classes
    return ProxyData.from_arrays(imgs, labels, imgs[:10], labels[:10], resolution=res)


def test_train_batches_are_seeded_and_cover_the_epoch():
    d = _data()
    a = list(d.train_batches(16, seed=5))
    b = list(d.train_batches(16, seed=5))
    c = list(d.train_batches(16, seed=6))
    assert len(a) == 2 and a[0][0].shape == (16, 3, 16, 16)
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b, strict=True))
    assert not torch.equal(a[0][0], c[0][0])
    full = list(d.train_batches(16, seed=5, drop_last=False))
    assert sum(len(y) for _, y in full) == 40


def test_val_batch_is_normalised_centre_crop():
    d = _data(size=20, res=16)
    x, y = next(d.val_batches(4))
    raw = d.val_images[:4, 2:18, 2:18].permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (raw - mean) / std, atol=1e-5, rtol=1e-5)
    assert torch.equal(y, d.val_labels[:4])
    assert val_batch(d.val_images[:1], 16).shape == (1, 3, 16, 16)


def test_proxydata_rejects_bad_arrays():
    imgs = torch.zeros(4, 8, 8, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="uint8"):
        ProxyData.from_arrays(imgs.float(), torch.zeros(4), imgs, torch.zeros(4), resolution=8)
    with pytest.raises(ValueError, match="smaller than resolution"):
        ProxyData.from_arrays(imgs, torch.zeros(4), imgs, torch.zeros(4), resolution=16)
    with pytest.raises(ValueError, match="labels must lie"):
        ProxyData.from_arrays(imgs, -torch.ones(4), imgs, torch.zeros(4), resolution=8, classes=("a", "b"))
    assert np.isclose(ProxyData.from_arrays(imgs, torch.zeros(4), imgs, torch.ones(4), resolution=8).num_classes, 2)
