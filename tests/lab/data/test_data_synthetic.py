"""Synthetic dataset: deterministic bytes, ImageFolder-readable, documented knobs validated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision.datasets import ImageFolder

from lab.cli import main as lab_main
from lab.data import DataSpec, resolve_subset
from lab.data.synthetic import SynthSpec, class_signatures, generate

SMALL = SynthSpec(num_classes=3, train_per_class=4, val_per_class=2, image_size=40, seed=3)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = _files(generate(tmp_path / "a", SMALL))
    b = _files(generate(tmp_path / "b", SMALL))
    assert len(a) == 3 * (4 + 2) + 2  # images + classes.txt + synth.json
    assert a == b


def test_other_seed_gives_other_images(tmp_path):
    a = _files(generate(tmp_path / "a", SMALL))
    b = _files(generate(tmp_path / "b", SynthSpec(**{**SMALL.to_dict(), "seed": 4})))
    imgs_a = [v for k, v in a.items() if k.endswith(".JPEG")]
    imgs_b = [v for k, v in b.items() if k.endswith(".JPEG")]
    assert len(imgs_a) == len(imgs_b) == 18
    assert all(x != y for x, y in zip(imgs_a, imgs_b, strict=True))


def test_imagefolder_reads_both_splits(tmp_path):
    root = generate(tmp_path / "s", SMALL)
    train, val = ImageFolder(str(root / "train")), ImageFolder(str(root / "val"))
    assert len(train.classes) == 3 and train.classes == val.classes
    assert len(train) == 12 and len(val) == 6
    img, label = train[5]
    assert img.size == (40, 40) and img.mode == "RGB" and label == 1


def test_flat_val_layout_is_resolved_with_its_label_file(tmp_path):
    spec = SynthSpec(**{**SMALL.to_dict(), "val_layout": "flat"})
    root = generate(tmp_path / "f", spec)
    assert not any(p.is_dir() for p in (root / "val").iterdir())
    subset = resolve_subset(DataSpec(root=str(root)))
    assert len(subset.val) == 6
    assert sorted(label for _, label in subset.val) == [0, 0, 1, 1, 2, 2]


def test_classes_differ_in_at_least_two_attributes():
    sigs = class_signatures(10, seed=0)
    assert len({s.wnid for s in sigs}) == 10
    for i, a in enumerate(sigs):
        for b in sigs[i + 1 :]:
            attrs_a = (a.shape, a.orientation, a.frequency, a.hue)
            attrs_b = (b.shape, b.orientation, b.frequency, b.hue)
            diff = sum(x != y for x, y in zip(attrs_a, attrs_b, strict=True))
            assert diff >= 2


def test_classes_are_visibly_different_on_average(tmp_path):
    """Mean images of two classes differ more than two halves of one class: there is class signal."""
    spec = SynthSpec(num_classes=2, train_per_class=40, val_per_class=1, image_size=32, difficulty=0.0)
    root = generate(tmp_path / "m", spec)
    means = []
    for cls in sorted((root / "train").iterdir()):
        imgs = np.stack([np.asarray(Image.open(p), dtype=np.float32) for p in sorted(cls.iterdir())])
        means.append((imgs[::2].mean(0), imgs[1::2].mean(0)))
    within = np.abs(means[0][0] - means[0][1]).mean()
    between = np.abs(means[0][0] - means[1][0]).mean()
    assert between > 1.5 * within


@pytest.mark.parametrize(
    "bad",
    [dict(num_classes=1), dict(image_size=8), dict(difficulty=1.5), dict(val_layout="tree"), dict(train_per_class=0)],
)
def test_bad_knobs_are_rejected(bad):
    with pytest.raises(ValueError):
        SynthSpec(**bad)


def test_existing_output_needs_force(tmp_path):
    generate(tmp_path / "x", SMALL)
    with pytest.raises(FileExistsError, match="overwrite"):
        generate(tmp_path / "x", SMALL)
    generate(tmp_path / "x", SMALL, overwrite=True)


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = lab_main(
        [
            "data",
            "synth",
            "--out",
            str(out),
            "--classes",
            "2",
            "--train-per-class",
            "2",
            "--val-per-class",
            "1",
            "--size",
            "32",
            "--quiet",
        ]
    )
    assert rc == 0
    assert len(list((out / "train").rglob("*.JPEG"))) == 4
    assert "wrote 6 images" in capsys.readouterr().out
