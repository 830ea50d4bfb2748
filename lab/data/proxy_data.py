"""``ProxyData``: the in-memory (memory-mapped) dataset a proxy trial trains on.

``load_proxy_data(spec)`` validates the subset, builds or reuses the cache and returns a
``ProxyData``; ``ProxyData.from_arrays`` wraps tensors directly (tests, custom data). Batches
come from ``train_batches`` (seeded per epoch: shuffled order, random-resized crop, flip) and
``val_batches`` (centre crop), already normalised, as float (N, 3, R, R) tensors.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from lab.data.augment import train_batch, val_batch
from lab.data.cache import build_or_load
from lab.data.imagenet_subset import DataError, DataSpec, resolve_subset

log = logging.getLogger("lab.data")


@dataclass(frozen=True, eq=False)
class ProxyData:
    """Train/val uint8 images (N, S, S, 3) with int64 labels, at stored size S >= ``resolution``.

    ``fingerprint`` identifies the exact data (cache keys or array hashes): checkpoints record it
    so a resumed trial cannot silently continue on different data.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    classes: tuple[str, ...]
    resolution: int
    fingerprint: str

    def __post_init__(self) -> None:
        for split in ("train", "val"):
            imgs, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if imgs.dtype != torch.uint8 or imgs.dim() != 4 or imgs.shape[-1] != 3 or imgs.shape[1] != imgs.shape[2]:
                raise DataError(f"{split}_images must be uint8 (N, S, S, 3); got {tuple(imgs.shape)} {imgs.dtype}")
            if labels.shape != (imgs.shape[0],):
                raise DataError(f"{split}_labels must have shape ({imgs.shape[0]},); got {tuple(labels.shape)}")
            if imgs.shape[0] == 0:
                raise DataError(f"{split} split is empty")
            if imgs.shape[1] < self.resolution:
                raise DataError(f"{split} images are {imgs.shape[1]} px, smaller than resolution={self.resolution}")
            if int(labels.min()) < 0 or int(labels.max()) >= len(self.classes):
                raise DataError(f"{split}_labels must lie in [0, {len(self.classes)}) for {len(self.classes)} classes")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def stored_size(self) -> int:
        return int(self.train_images.shape[1])

    @classmethod
    def from_arrays(
        cls,
        train_images: torch.Tensor | np.ndarray,
        train_labels: torch.Tensor | np.ndarray,
        val_images: torch.Tensor | np.ndarray,
        val_labels: torch.Tensor | np.ndarray,
        *,
        resolution: int,
        classes: tuple[str, ...] | None = None,
    ) -> ProxyData:
        """Wrap uint8 (N, S, S, 3) arrays; the fingerprint hashes their bytes."""
        t = [torch.as_tensor(a) for a in (train_images, train_labels, val_images, val_labels)]
        t[1], t[3] = t[1].long(), t[3].long()
        if classes is None:
            classes = tuple(str(i) for i in range(int(max(t[1].max(), t[3].max())) + 1))
        h = hashlib.sha256()
        for a in t:
            h.update(a.contiguous().numpy().tobytes())
        return cls(t[0], t[1], t[2], t[3], tuple(classes), resolution, "arrays-" + h.hexdigest()[:16])

    def train_batches(
        self,
        batch_size: int,
        *,
        seed: int,
        scale: tuple[float, float] = (0.35, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip: bool = True,
        drop_last: bool = True,
        device: torch.device | str = "cpu",
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of augmented batches; everything random comes from ``seed``."""
        g = torch.Generator().manual_seed(seed)
        n = self.train_images.shape[0]
        order = torch.randperm(n, generator=g)
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size].sort().values  # sorted: sequential reads from the memory map
            x = train_batch(
                self.train_images.index_select(0, idx),
                self.resolution,
                generator=g,
                scale=scale,
                ratio=ratio,
                hflip=hflip,
                device=device,
            )
            yield x, self.train_labels[idx].to(device)

    def val_batches(
        self, batch_size: int, *, device: torch.device | str = "cpu"
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.val_images.shape[0]
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            yield val_batch(self.val_images[sl], self.resolution, device=device), self.val_labels[sl].to(device)


def load_proxy_data(spec: DataSpec, *, workers: int = 1, progress: bool = True) -> ProxyData:
    """Validate ``spec`` against the files on disk, build/reuse the cache, and return the data."""
    subset = resolve_subset(spec)
    splits = {}
    for name, files in (("train", subset.train), ("val", subset.val)):
        entry = build_or_load(
            subset.root,
            files,
            size=spec.stored_size,
            cache_dir=spec.cache_dir,
            name=name,
            workers=workers,
            progress=progress,
        )
        if entry.skipped or entry.converted:
            log.info(
                "%s: %d skipped, %d converted to RGB (cache %s)", name, len(entry.skipped), entry.converted, entry.path
            )
        splits[name] = entry
    tr, va = splits["train"], splits["val"]
    return ProxyData(
        train_images=torch.from_numpy(tr.images),
        train_labels=torch.from_numpy(tr.labels),
        val_images=torch.from_numpy(va.images),
        val_labels=torch.from_numpy(va.labels),
        classes=subset.classes,
        resolution=spec.resolution,
        fingerprint=f"cache-{tr.key}-{va.key}",
    )
