"""Wavelet transform pair: official Haar filters, perfect reconstruction for orthogonal wavelets."""

from __future__ import annotations

import pytest
import torch

from lab.blocks.wavelet import inverse_wavelet_transform, pad_even, wavelet_filters, wavelet_transform


def test_haar_filters_equal_official():
    f = wavelet_filters("db1")[:, 0]
    expect = 0.5 * torch.tensor(
        [[[1, 1], [1, 1]], [[1, 1], [-1, -1]], [[1, -1], [1, -1]], [[1, -1], [-1, 1]]], dtype=torch.float32
    )
    torch.testing.assert_close(f, expect)


@pytest.mark.parametrize("name", ["db1", "db2", "sym4", "coif1"])
@pytest.mark.parametrize("size", [(8, 8), (6, 10), (7, 9), (2, 2)])
def test_perfect_reconstruction(name, size):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, *size, generator=g, dtype=torch.float64)
    filt = wavelet_filters(name, dtype=torch.float64).repeat(3, 1, 1, 1)
    xp = pad_even(x)
    bands = wavelet_transform(xp, filt)
    assert bands.shape == (2, 3, 4, xp.shape[-2] // 2, xp.shape[-1] // 2)
    back = inverse_wavelet_transform(bands, filt)[..., : size[0], : size[1]]
    torch.testing.assert_close(back, x, rtol=1e-10, atol=1e-10)
    # orthogonal: energy preserved
    torch.testing.assert_close(bands.pow(2).sum(), xp.pow(2).sum(), rtol=1e-10, atol=1e-10)


def test_haar_matches_plain_strided_conv():
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    filt = wavelet_filters("db1", dtype=torch.float64).repeat(2, 1, 1, 1)
    plain = torch.nn.functional.conv2d(x, filt, stride=2, groups=2).reshape(1, 2, 4, 3, 3)
    torch.testing.assert_close(wavelet_transform(x, filt), plain)
