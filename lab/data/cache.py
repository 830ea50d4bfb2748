"""Decode-once image cache: resized uint8 images in a memory-mapped file.

Why: at 64 px a proxy net is cheap enough that JPEG decoding would dominate each epoch. Images
are decoded once (short-side resize to the stored size, centre square crop, RGB), written to
``images.u8`` (N, S, S, 3 uint8) with ``labels.npy`` and ``meta.json``, and later epochs and
later trials map that file. The directory name is a hash of (root, file list with sizes and
mtimes, stored size, format version), so a changed dataset or resolution gets a new entry.

Interrupt safety: entries are built in a ``*.tmp-*`` sibling directory and renamed into place
only when complete (``meta.json`` last), so a killed build never produces a usable-looking entry;
stale temp directories are removed by the next build. Unreadable images are skipped and non-RGB
ones converted; both are counted in the log and in ``meta.json``, never a crash mid-epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

log = logging.getLogger("lab.data")

CACHE_VERSION = 1
_STALE_TMP_S = 6 * 3600


@dataclass(frozen=True)
class CachedSplit:
    """One cached split: ``images`` (N, S, S, 3) uint8 memory map and ``labels`` (N,) int64."""

    path: Path
    key: str
    images: np.ndarray
    labels: np.ndarray
    skipped: tuple[str, ...]
    converted: int


def default_cache_dir() -> Path:
    env = os.environ.get("LAB_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mobilemamba-lab" / "data"


def cache_key(root: str, files: Sequence[tuple[str, int]], size: int) -> str:
    """Hash of everything that determines the cached bytes."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "root": str(Path(root).resolve()), "size": size}).encode())
    for rel, label in files:
        st = os.stat(os.path.join(root, rel))
        h.update(f"\n{rel}\t{label}\t{st.st_size}\t{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def decode_resized(path: str, size: int) -> tuple[np.ndarray, bool]:
    """Decode ``path`` to (size, size, 3) uint8: short side resized to ``size``, centre crop.

    Returns (pixels, converted) where ``converted`` says the file was not plain RGB. Raises
    ``OSError``/``ValueError`` family errors for unreadable files (the caller skips them).
    """
    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft("RGB", (size, size))  # let libjpeg downscale by 1/2..1/8 while decoding: much faster
        converted = im.mode != "RGB"
        im = im.convert("RGB")
        w, h = im.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        if (nw, nh) != (w, h):
            im = im.resize((nw, nh), Image.Resampling.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        im = im.crop((left, top, left + size, top + size))
        return np.asarray(im, dtype=np.uint8), converted


def _try_decode(args: tuple[str, int]) -> tuple[np.ndarray | None, bool, str | None]:
    path, size = args
    try:
        pixels, converted = decode_resized(path, size)
        return pixels, converted, None
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError) as exc:
        return None, False, f"{path}: {type(exc).__name__}: {exc}"


def _load_entry(path: Path, key: str) -> CachedSplit | None:
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    n, s = meta["count"], meta["size"]
    if meta.get("key") != key or meta.get("version") != CACHE_VERSION:
        return None
    images_path = path / "images.u8"
    if images_path.stat().st_size < n * s * s * 3:
        return None
    # mode "c": copy-on-write view, so torch.from_numpy works without a read-only warning; nothing is written back
    images = (
        np.memmap(images_path, dtype=np.uint8, mode="c", shape=(n, s, s, 3)) if n else np.zeros((0, s, s, 3), np.uint8)
    )
    labels = np.load(path / "labels.npy")
    return CachedSplit(path, key, images, labels, tuple(meta["skipped"]), int(meta["converted"]))


def _clean_stale_tmp(cache_dir: Path) -> None:
    now = time.time()
    for entry in cache_dir.glob("*.tmp-*"):
        try:
            if now - entry.stat().st_mtime > _STALE_TMP_S or not _pid_alive(entry.name.rsplit("-", 2)[-2]):
                shutil.rmtree(entry, ignore_errors=True)
        except (OSError, ValueError):
            pass


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def build_or_load(
    root: str,
    files: Sequence[tuple[str, int]],
    *,
    size: int,
    cache_dir: str | os.PathLike | None = None,
    name: str = "split",
    workers: int = 1,
    progress: bool = True,
) -> CachedSplit:
    """Return the cache entry for ``files`` (relative to ``root``), building it first if needed."""
    if not files:
        raise ValueError(f"{name}: no files to cache")
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(root, files, size)
    final = cache_dir / f"{name}-{size}px-{key}"
    entry = _load_entry(final, key)
    if entry is not None:
        return entry
    _clean_stale_tmp(cache_dir)
    tmp = cache_dir / f"{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _build(tmp, root, files, size=size, key=key, name=name, workers=workers, progress=progress)
        if final.exists():  # a stale or foreign entry with the same name: replace it
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished the same entry first; use theirs
            pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    entry = _load_entry(final, key)
    if entry is None:
        raise RuntimeError(f"cache entry {final} is unreadable right after building it; delete it and retry")
    return entry


def _build(
    tmp: Path,
    root: str,
    files: Sequence[tuple[str, int]],
    *,
    size: int,
    key: str,
    name: str,
    workers: int,
    progress: bool,
) -> None:
    from tqdm import tqdm

    n = len(files)
    images = np.memmap(tmp / "images.u8", dtype=np.uint8, mode="w+", shape=(n, size, size, 3))
    labels: list[int] = []
    skipped: list[str] = []
    converted = 0
    jobs = [(os.path.join(root, rel), size) for rel, _ in files]
    bar = tqdm(total=n, desc=f"caching {name} @ {size}px", unit="img", disable=not progress, leave=False)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(_try_decode, jobs, chunksize=16) if workers > 1 else map(_try_decode, jobs)
        for (rel, label), (pixels, was_converted, error) in zip(files, results, strict=True):
            bar.update(1)
            if pixels is None:
                skipped.append(error or rel)
                continue
            images[len(labels)] = pixels
            labels.append(label)
            converted += int(was_converted)
    bar.close()
    images.flush()
    del images
    if skipped:
        log.warning("%s: skipped %d unreadable image(s) of %d (first: %s)", name, len(skipped), n, skipped[0])
    if converted:
        log.warning("%s: converted %d non-RGB image(s) to RGB", name, converted)
    if not labels:
        raise ValueError(f"{name}: none of the {n} images could be read (first error: {skipped[0]})")
    np.save(tmp / "labels.npy", np.asarray(labels, dtype=np.int64))
    meta = {
        "version": CACHE_VERSION,
        "key": key,
        "root": root,
        "count": len(labels),
        "size": size,
        "skipped": skipped,
        "converted": converted,
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))  # written last: marks the entry complete
