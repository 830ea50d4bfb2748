"""ImageNet-style subsets: which files, which classes, and the data spec that names them.

Reads an ImageFolder tree (``train/<wnid>/*.JPEG``; ``val/<wnid>/*.JPEG`` or a flat ``val/``
folder plus a label file, as ImageNet ships it), picks classes (all, a seeded count, a named list
such as ``imagenet100``, a user file, or an explicit tuple), caps images per class (seeded), and
validates everything *before* any training starts, with errors that name the problem and the fix.
Decoding and resizing live in ``lab.data.cache``; the per-epoch augmentation in ``lab.data.augment``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
NAMED_CLASS_LISTS = {"imagenet100": "imagenet100.txt"}
FLAT_VAL_LABEL_FILES = ("LOC_val_solution.csv", "val_labels.txt", "val/labels.txt", "val_labels.csv")


class DataError(ValueError):
    """The dataset on disk does not match the request; the message says what and how to fix it."""


@dataclass(frozen=True)
class DataSpec:
    """A serialisable, hashable description of a proxy dataset (what an experiment file states).

    ``classes``: ``None`` (all folders), a named list (``"imagenet100"``), a path to a text file of
    folder names (one a line, ``#`` comments), or a tuple of folder names. ``num_classes`` then picks
    that many of them with ``class_seed``. ``train_per_class`` / ``val_per_class`` cap images per
    class (seeded pick); a class with fewer is an error unless ``allow_fewer``. Images are stored at
    ``floor(resolution / crop_pct)`` px (short-side resize + centre crop); val is the centre
    ``resolution`` crop of that, train a random-resized crop of it. ``val_labels`` names the label
    file of a flat val folder (auto-detected when ``None``). ``cache_dir=None`` uses
    ``$LAB_CACHE_DIR`` or ``~/.cache/mobilemamba-lab/data``.
    """

    root: str
    num_classes: int | None = None
    classes: str | tuple[str, ...] | None = None
    class_seed: int = 0
    train_per_class: int | None = None
    val_per_class: int | None = None
    allow_fewer: bool = False
    resolution: int = 64
    crop_pct: float = 0.875
    train_dir: str = "train"
    val_dir: str = "val"
    val_labels: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.classes, list):
            object.__setattr__(self, "classes", tuple(self.classes))
        if self.num_classes is not None and self.num_classes < 2:
            raise DataError(f"num_classes={self.num_classes}: need at least 2 classes")
        for name in ("train_per_class", "val_per_class"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise DataError(f"{name}={value}: must be >= 1 (or None for all images)")
        if not 8 <= self.resolution <= 1024:
            raise DataError(f"resolution={self.resolution}: must be in 8..1024 px")
        if not 0.3 <= self.crop_pct <= 1.0:
            raise DataError(f"crop_pct={self.crop_pct}: must be in [0.3, 1.0] (0.875 is the usual value)")

    @property
    def stored_size(self) -> int:
        """Side of the square images kept in the cache (timm's val resize: floor(res / crop_pct))."""
        return int(math.floor(self.resolution / self.crop_pct))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if isinstance(self.classes, tuple):
            d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DataSpec:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise DataError(
                f"unknown DataSpec field(s) {sorted(unknown)}; known: {[f.name for f in dataclasses.fields(cls)]}"
            )
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass(frozen=True)
class SubsetFiles:
    """The resolved subset: class names (label = index) and (path relative to root, label) per split."""

    root: str
    classes: tuple[str, ...]
    train: tuple[tuple[str, int], ...]
    val: tuple[tuple[str, int], ...]


def is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def load_class_list(name_or_path: str) -> list[str]:
    """A named list (``imagenet100``) or a text file: one folder name per line, ``#`` starts a comment."""
    if name_or_path in NAMED_CLASS_LISTS:
        text = resources.files("lab.data").joinpath(NAMED_CLASS_LISTS[name_or_path]).read_text()
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise DataError(
                f"classes={name_or_path!r} is neither a named list ({', '.join(NAMED_CLASS_LISTS)}) nor an existing "
                "file; give a named list, a text file of folder names, or a tuple of names"
            )
        text = path.read_text()
    names = [line.split("#", 1)[0].split()[0] for line in text.splitlines() if line.split("#", 1)[0].strip()]
    if len(set(names)) != len(names):
        raise DataError(f"class list {name_or_path!r} repeats names; list each class once")
    return names


def _seeded_pick(items: list[str], k: int, seed: int | list[int]) -> list[str]:
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(items), size=k, replace=False))
    return [items[i] for i in idx]


def _list_images(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and is_image(e.name))


def _choose_classes(spec: DataSpec, available: list[str], train_root: Path) -> list[str]:
    if spec.classes is None:
        pool = available
    else:
        pool = list(spec.classes) if isinstance(spec.classes, tuple) else load_class_list(spec.classes)
        missing = sorted(set(pool) - set(available))
        if missing:
            shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
            raise DataError(
                f"{len(missing)} of the {len(pool)} requested classes have no folder under {train_root}: {shown}; "
                "fix the class list or point root at the dataset that has them"
            )
    if spec.num_classes is None:
        return sorted(pool)
    if spec.num_classes > len(pool):
        raise DataError(
            f"num_classes={spec.num_classes} but only {len(pool)} classes are available under {train_root}"
            + (" in the requested class list" if spec.classes is not None else "")
            + "; ask for fewer classes or use a larger dataset"
        )
    return sorted(_seeded_pick(sorted(pool), spec.num_classes, spec.class_seed))


def _cap(files: list[str], cap: int | None, *, spec: DataSpec, cls: str, split: str) -> list[str]:
    if cap is None or len(files) == cap:
        return files
    if len(files) < cap:
        if spec.allow_fewer:
            return files
        raise DataError(
            f"class {cls!r} has {len(files)} {split} images, fewer than {split}_per_class={cap}; "
            f"lower {split}_per_class or set allow_fewer=True"
        )
    return sorted(_seeded_pick(files, cap, [spec.class_seed, zlib.crc32(f"{split}/{cls}".encode())]))


def _flat_val_labels(spec: DataSpec, root: Path, val_root: Path) -> dict[str, str]:
    """Map image stem -> class name from a flat-val label file (``file,wnid ...`` or ``file wnid`` lines)."""
    if spec.val_labels is not None:
        path = Path(spec.val_labels)
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise DataError(f"val_labels={spec.val_labels!r}: file {path} does not exist")
    else:
        found = [root / c for c in FLAT_VAL_LABEL_FILES if (root / c).is_file()]
        if not found:
            raise DataError(
                f"{val_root} holds images but no class folders, and no label file was found "
                f"(looked for {', '.join(FLAT_VAL_LABEL_FILES)} under {root}); set DataSpec.val_labels"
            )
        path = found[0]
    labels: dict[str, str] = {}
    for line in path.read_text().splitlines():
        parts = line.replace(",", " ").split()
        if len(parts) < 2 or parts[0] == "ImageId":
            continue
        labels[os.path.splitext(parts[0])[0]] = parts[1]
    if not labels:
        raise DataError(f"label file {path} has no 'file class' lines")
    return labels


def resolve_subset(spec: DataSpec) -> SubsetFiles:
    """Scan ``spec.root`` and return the chosen files; raises ``DataError`` on any mismatch."""
    root = Path(spec.root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"data root {root} does not exist; point root at an ImageFolder tree with {spec.train_dir}/ and "
            f"{spec.val_dir}/, or create the synthetic default with `lab data synth --out {root}`"
        )
    train_root, val_root = root / spec.train_dir, root / spec.val_dir
    for split_root in (train_root, val_root):
        if not split_root.is_dir():
            raise DataError(f"{split_root} does not exist; expected {root}/{{{spec.train_dir},{spec.val_dir}}}/...")
    available = sorted(e.name for e in os.scandir(train_root) if e.is_dir() and not e.name.startswith("."))
    if not available:
        raise DataError(f"no class folders under {train_root}; expected {train_root}/<class>/<image files>")
    classes = _choose_classes(spec, available, train_root)

    train: list[tuple[str, int]] = []
    for label, cls in enumerate(classes):
        files = _list_images(train_root / cls)
        if not files:
            raise DataError(f"class folder {train_root / cls} has no image files ({', '.join(IMG_EXTENSIONS)})")
        files = _cap(files, spec.train_per_class, spec=spec, cls=cls, split="train")
        train += [(f"{spec.train_dir}/{cls}/{f}", label) for f in files]

    val_by_class: dict[str, list[str]] = {}
    val_dirs = [e.name for e in os.scandir(val_root) if e.is_dir()]
    if val_dirs:
        for cls in classes:
            folder = val_root / cls
            if not folder.is_dir():
                raise DataError(
                    f"class {cls!r} has a train folder but no {folder}; the val split must have the same classes"
                )
            val_by_class[cls] = [f"{spec.val_dir}/{cls}/{f}" for f in _list_images(folder)]
    else:
        labels = _flat_val_labels(spec, root, val_root)
        wanted = set(classes)
        val_by_class = {cls: [] for cls in classes}
        for f in _list_images(val_root):
            cls = labels.get(os.path.splitext(f)[0])
            if cls in wanted:
                val_by_class[cls].append(f"{spec.val_dir}/{f}")
    val: list[tuple[str, int]] = []
    for label, cls in enumerate(classes):
        files = val_by_class[cls]
        if not files:
            raise DataError(f"class {cls!r} has no val images under {val_root}; every chosen class needs some")
        val += [(f, label) for f in _cap(files, spec.val_per_class, spec=spec, cls=cls, split="val")]
    return SubsetFiles(root=str(root.resolve()), classes=tuple(classes), train=tuple(train), val=tuple(val))


def imagefolder_transforms(spec: DataSpec, *, train: bool, scale: tuple[float, float] = (0.35, 1.0)):
    """timm transforms for decoding JPEGs each epoch (the uncached reference path and benchmark baseline)."""
    from timm.data import create_transform

    if train:
        return create_transform(
            input_size=spec.resolution,
            is_training=True,
            scale=scale,
            hflip=0.5,
            color_jitter=None,
            interpolation="bilinear",
        )
    return create_transform(
        input_size=spec.resolution, is_training=False, crop_pct=spec.crop_pct, interpolation="bilinear"
    )
