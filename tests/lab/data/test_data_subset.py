"""Subset selection and the clear errors promised before training starts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lab.data import DataError, DataSpec, load_class_list, resolve_subset


def _tree(root: Path, counts: dict[str, tuple[int, int]], size: int = 24) -> Path:
    """Tiny ImageFolder tree: {class: (n_train, n_val)} solid-colour PNG/JPEG images."""
    rng = np.random.default_rng(0)
    for cls, (n_tr, n_va) in counts.items():
        for split, n in (("train", n_tr), ("val", n_va)):
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                px = rng.integers(0, 255, (size, size + 6, 3), dtype=np.uint8)
                Image.fromarray(px).save(d / f"{cls}_{i}.JPEG", format="JPEG")
    return root


@pytest.fixture
def tree(tmp_path) -> Path:
    return _tree(tmp_path / "ds", {f"n0{i}": (6, 3) for i in range(5)})


def test_all_classes_sorted_with_labels_in_order(tree):
    s = resolve_subset(DataSpec(root=str(tree)))
    assert s.classes == tuple(f"n0{i}" for i in range(5))
    assert len(s.train) == 30 and len(s.val) == 15
    assert {label for _, label in s.train} == set(range(5))
    assert all(rel.startswith(f"train/{s.classes[label]}/") for rel, label in s.train)


def test_seeded_class_count_and_image_cap(tree):
    a = resolve_subset(DataSpec(root=str(tree), num_classes=3, class_seed=1, train_per_class=4, val_per_class=2))
    b = resolve_subset(DataSpec(root=str(tree), num_classes=3, class_seed=1, train_per_class=4, val_per_class=2))
    assert a == b
    assert len(a.classes) == 3 and len(a.train) == 12 and len(a.val) == 6
    others = {resolve_subset(DataSpec(root=str(tree), num_classes=3, class_seed=s)).classes for s in range(8)}
    assert len(others) > 1  # the seed matters


def test_class_list_file_and_tuple(tree, tmp_path):
    f = tmp_path / "classes.txt"
    f.write_text("# my pick\nn03\nn01  trailing words are ignored\n")
    assert resolve_subset(DataSpec(root=str(tree), classes=str(f))).classes == ("n01", "n03")
    assert resolve_subset(DataSpec(root=str(tree), classes=("n04", "n00"))).classes == ("n00", "n04")


def test_imagenet100_list_ships_with_the_package():
    names = load_class_list("imagenet100")
    assert len(names) == 100 and len(set(names)) == 100
    assert all(n.startswith("n") and len(n) == 9 for n in names)


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="does not exist.*lab data synth"):
        resolve_subset(DataSpec(root=str(tmp_path / "nope")))


def test_no_class_folders(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        resolve_subset(DataSpec(root=str(tmp_path)))


def test_fewer_classes_than_asked(tree):
    with pytest.raises(DataError, match="num_classes=9 but only 5"):
        resolve_subset(DataSpec(root=str(tree), num_classes=9))


def test_class_list_naming_missing_folders(tree):
    with pytest.raises(DataError, match="2 of the 3 requested classes have no folder.*n98, n99"):
        resolve_subset(DataSpec(root=str(tree), classes=("n00", "n99", "n98")))
    with pytest.raises(DataError, match="no folder"):
        resolve_subset(DataSpec(root=str(tree), classes="imagenet100"))


def test_unknown_class_list_name(tree):
    with pytest.raises(DataError, match="neither a named list"):
        resolve_subset(DataSpec(root=str(tree), classes="imagenet-7"))


def test_fewer_images_than_asked(tree):
    with pytest.raises(DataError, match="has 6 train images, fewer than train_per_class=10"):
        resolve_subset(DataSpec(root=str(tree), train_per_class=10))
    s = resolve_subset(DataSpec(root=str(tree), train_per_class=10, allow_fewer=True))
    assert len(s.train) == 30


def test_missing_val_class_folder(tree):
    import shutil

    shutil.rmtree(tree / "val" / "n02")
    with pytest.raises(DataError, match="n02.*no .*val"):
        resolve_subset(DataSpec(root=str(tree)))


def test_flat_val_without_label_file(tmp_path):
    import shutil

    root = _tree(tmp_path / "f", {"n00": (2, 0), "n01": (2, 0)})
    shutil.rmtree(root / "val")
    (root / "val").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "val" / "ILSVRC_val_1.JPEG")
    with pytest.raises(DataError, match="no label file"):
        resolve_subset(DataSpec(root=str(root)))
    (root / "val_labels.txt").write_text("ILSVRC_val_1.JPEG n01\n")
    with pytest.raises(DataError, match="'n00' has no val images"):
        resolve_subset(DataSpec(root=str(root)))
    (root / "val_labels.txt").write_text("ILSVRC_val_1.JPEG n01\nILSVRC_val_2 n00\n")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "val" / "ILSVRC_val_2.JPEG")
    assert resolve_subset(DataSpec(root=str(root))).val == (("val/ILSVRC_val_2.JPEG", 0), ("val/ILSVRC_val_1.JPEG", 1))


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(num_classes=1), "at least 2"),
        (dict(train_per_class=0), "train_per_class"),
        (dict(resolution=4), "resolution"),
        (dict(crop_pct=0.1), "crop_pct"),
    ],
)
def test_bad_spec_values(bad, match):
    with pytest.raises(DataError, match=match):
        DataSpec(root="x", **bad)


def test_spec_is_hashable_and_round_trips_json():
    import json

    spec = DataSpec(root="data/synth", classes=("a", "b"), num_classes=2, resolution=64)
    assert hash(spec) == hash(DataSpec.from_dict(json.loads(spec.to_json())))
    assert DataSpec.from_dict(json.loads(spec.to_json())) == spec
    assert spec.stored_size == 73
    with pytest.raises(DataError, match="unknown DataSpec field"):
        DataSpec.from_dict({"root": "x", "colour": 1})
