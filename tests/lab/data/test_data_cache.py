"""Decode-once cache: correct pixels, reuse, bad files skipped/converted, interrupt safety."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lab.cli import main as lab_main
from lab.data import DataSpec, load_proxy_data
from lab.data import cache as cache_mod
from lab.data.synthetic import SynthSpec, generate


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    spec = SynthSpec(num_classes=3, train_per_class=5, val_per_class=2, image_size=48)
    return generate(tmp_path_factory.mktemp("syn") / "s", spec)


def test_cached_pixels_equal_direct_decode(synth, tmp_path):
    spec = DataSpec(root=str(synth), resolution=32, cache_dir=str(tmp_path))
    data = load_proxy_data(spec, progress=False)
    assert data.train_images.shape == (15, 36, 36, 3) and data.val_images.shape == (6, 36, 36, 3)
    assert data.train_labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    first = sorted((synth / "train" / data.classes[1]).iterdir())[0]
    want, _ = cache_mod.decode_resized(str(first), 36)
    assert np.array_equal(data.train_images[5].numpy(), want)
    ref = np.asarray(Image.open(first).convert("RGB").resize((36, 36), Image.Resampling.BILINEAR))
    assert np.abs(want.astype(int) - ref.astype(int)).mean() < 1.0  # square source: a plain resize


def test_second_load_reuses_the_cache(synth, tmp_path, monkeypatch):
    spec = DataSpec(root=str(synth), resolution=32, cache_dir=str(tmp_path))
    a = load_proxy_data(spec, progress=False)

    def boom(*_a, **_k):
        raise AssertionError("decoded again although the cache is warm")

    monkeypatch.setattr(cache_mod, "_try_decode", boom)
    b = load_proxy_data(spec, progress=False)
    assert a.fingerprint == b.fingerprint and torch.equal(a.train_images, b.train_images)


def test_resolution_and_file_list_change_the_key(synth, tmp_path):
    a = load_proxy_data(DataSpec(root=str(synth), resolution=32, cache_dir=str(tmp_path)), progress=False)
    b = load_proxy_data(DataSpec(root=str(synth), resolution=24, cache_dir=str(tmp_path)), progress=False)
    c = load_proxy_data(
        DataSpec(root=str(synth), resolution=32, train_per_class=3, cache_dir=str(tmp_path)), progress=False
    )
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3
    assert b.stored_size == 27 and c.train_images.shape[0] == 9


def test_corrupt_and_non_rgb_images_are_skipped_or_converted(synth, tmp_path, caplog):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(synth, root)
    cls0 = sorted((root / "train").iterdir())[0]
    (cls0 / "zz_corrupt.JPEG").write_bytes(b"not a jpeg at all")
    (cls0 / "zz_truncated.JPEG").write_bytes(sorted(cls0.iterdir())[0].read_bytes()[:60])
    Image.fromarray(np.full((40, 50), 77, np.uint8)).save(cls0 / "zz_gray.png")  # mode L
    Image.fromarray(np.full((40, 40, 4), 200, np.uint8)).save(cls0 / "zz_rgba.png")  # mode RGBA
    with caplog.at_level(logging.WARNING, logger="lab.data"):
        data = load_proxy_data(DataSpec(root=str(root), resolution=32, cache_dir=str(tmp_path / "c")), progress=False)
    assert data.train_images.shape[0] == 15 + 2  # two readable extras, two skipped
    assert "skipped 2 unreadable" in caplog.text and "converted 2 non-RGB" in caplog.text
    gray = data.train_images[(data.train_labels == 0).nonzero()[-2]].squeeze(0)  # sorted: ..., zz_gray, zz_rgba
    assert int(gray.float().std()) == 0 and int(gray[0, 0, 0]) == 77


def test_interrupted_build_is_never_used(synth, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = cache_mod._try_decode

    def interrupt_after_3(args):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(args)

    spec = DataSpec(root=str(synth), resolution=32, cache_dir=str(tmp_path))
    monkeypatch.setattr(cache_mod, "_try_decode", interrupt_after_3)
    with pytest.raises(KeyboardInterrupt):
        load_proxy_data(spec, progress=False)
    assert not [p for p in tmp_path.iterdir() if (p / "meta.json").exists()]  # no complete-looking entry
    monkeypatch.setattr(cache_mod, "_try_decode", real)
    data = load_proxy_data(spec, progress=False)
    assert data.train_images.shape[0] == 15
    assert not list(tmp_path.glob("*.tmp-*"))


def test_killed_build_leftovers_are_ignored_and_cleaned(synth, tmp_path):
    """A temp directory left by a killed process (dead pid) is removed and never read."""
    spec = DataSpec(root=str(synth), resolution=32, cache_dir=str(tmp_path))
    stale = tmp_path / "train-36px-0000.tmp-999999999-deadbeef"
    stale.mkdir()
    (stale / "images.u8").write_bytes(b"\0" * 10)
    load_proxy_data(spec, progress=False)
    assert not stale.exists()


def test_cli_cache_reports_counts(synth, tmp_path, capsys):
    args = ["--root", str(synth), "--resolution", "32", "--cache-dir", str(tmp_path), "--quiet"]
    rc = lab_main(["data", "cache", *args])
    assert rc == 0
    assert "3 classes, 15 train + 6 val images stored at 36px" in capsys.readouterr().out
    assert lab_main(["data", "cache", "--root", str(tmp_path / "missing"), "--quiet"]) == 2
