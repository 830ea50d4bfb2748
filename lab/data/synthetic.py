"""Deterministic synthetic ImageNet-format dataset: the lab's embedded default.

Why: the lab must run end to end without ImageNet, and architecture rankings need a task that is
neither trivial nor noise. Each class is a *binding* of four attributes on one key object: a
shape, the orientation and spatial frequency of the grating that fills it, and a hue. Classes
share attribute values (each attribute alone is ambiguous; every pair of classes differs in at
least two), distractor objects reuse the same vocabulary with random bindings, and a
background grating, smooth shading and pixel noise add clutter at other scales. So a network
must localise the key object (largest, drawn last) and bind several cues of different spatial
frequency, which separates architectures in a short proxy run.

Layout (torchvision ``ImageFolder`` reads both splits)::

    OUT/train/<wnid>/<wnid>_00000.JPEG   OUT/val/<wnid>/...   (or a flat val/ + LOC_val_solution.csv)
    OUT/classes.txt  (``wnid description`` lines)   OUT/synth.json  (the SynthSpec used)

Knobs (``SynthSpec``): ``num_classes``, ``train_per_class``, ``val_per_class``, ``image_size``
(px), ``seed``, ``difficulty`` (0 = clean and centred ... 1 = hard; scales attribute jitter,
the chance that a cue is missing, distractor count, object size range and noise),
``jpeg_quality`` and ``val_layout`` (``folders`` or ImageNet-style ``flat``). Same spec, same
bytes: every image has its own RNG stream seeded by (seed, split, class, index).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SHAPES = ("circle", "triangle", "square", "cross", "ring", "bar")
ORIENTATIONS_DEG = (0.0, 45.0, 90.0, 135.0)
FREQUENCIES = (1.5, 3.0, 5.0)  # grating cycles across the object's diameter
HUES = (0.0, 0.17, 0.33, 0.5, 0.67, 0.83)
VAL_LAYOUTS = ("folders", "flat")
FLAT_VAL_LABELS = "LOC_val_solution.csv"


@dataclass(frozen=True)
class SynthSpec:
    """What to generate; every field is a documented knob (see module docstring)."""

    num_classes: int = 10
    train_per_class: int = 200
    val_per_class: int = 50
    image_size: int = 80
    seed: int = 0
    difficulty: float = 0.5
    jpeg_quality: int = 90
    val_layout: str = "folders"

    def __post_init__(self) -> None:
        if not 2 <= self.num_classes <= len(SHAPES) * len(ORIENTATIONS_DEG) * len(FREQUENCIES):
            raise ValueError(f"num_classes={self.num_classes}: must be in 2..72 (distinct attribute bindings)")
        if self.train_per_class < 1 or self.val_per_class < 1:
            raise ValueError("train_per_class and val_per_class must be >= 1")
        if not 32 <= self.image_size <= 512:
            raise ValueError(f"image_size={self.image_size}: must be in 32..512 px")
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"difficulty={self.difficulty}: must be in [0, 1]")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality={self.jpeg_quality}: must be in 1..100")
        if self.val_layout not in VAL_LAYOUTS:
            raise ValueError(f"val_layout={self.val_layout!r}: choose one of {VAL_LAYOUTS}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ClassSignature:
    """The attribute binding that defines one class."""

    wnid: str
    shape: int
    orientation: int
    frequency: int
    hue: int

    def describe(self) -> str:
        return (
            f"{SHAPES[self.shape]} grating={ORIENTATIONS_DEG[self.orientation]:g}deg/"
            f"{FREQUENCIES[self.frequency]:g}cyc hue={HUES[self.hue]:g}"
        )


def class_signatures(num_classes: int, seed: int) -> list[ClassSignature]:
    """Pick ``num_classes`` bindings, pairwise differing in >= 2 attributes when possible."""
    rng = np.random.default_rng([seed, 7919])
    grid = [
        (s, o, f, h)
        for s in range(len(SHAPES))
        for o in range(len(ORIENTATIONS_DEG))
        for f in range(len(FREQUENCIES))
        for h in range(len(HUES))
    ]
    order = rng.permutation(len(grid))
    chosen: list[tuple[int, int, int, int]] = []
    for min_diff in (3, 2, 1):  # greedy: prefer well-separated bindings, relax if needed
        for i in order:
            cand = grid[i]
            if cand in chosen:
                continue
            if all(sum(a != b for a, b in zip(cand, c, strict=True)) >= min_diff for c in chosen):
                chosen.append(cand)
            if len(chosen) == num_classes:
                break
        if len(chosen) == num_classes:
            break
    return [
        ClassSignature(wnid=f"n9{seed % 1000:03d}{k:04d}", shape=s, orientation=o, frequency=f, hue=h)
        for k, (s, o, f, h) in enumerate(chosen)
    ]


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], dtype=np.float32)


def _shape_sdf(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance-like field (<0 inside) of a unit-radius shape in local coordinates."""
    name = SHAPES[shape]
    if name == "circle":
        return np.hypot(u, v) - 1.0
    if name == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.8
    if name == "triangle":
        d = -v - 0.5
        for ang in (math.pi / 6, 5 * math.pi / 6):
            d = np.maximum(d, u * math.cos(ang) + v * math.sin(ang) - 0.5)
        return d
    if name == "cross":
        arm_h = np.maximum(np.abs(u) - 1.0, np.abs(v) - 0.33)
        arm_v = np.maximum(np.abs(u) - 0.33, np.abs(v) - 1.0)
        return np.minimum(arm_h, arm_v)
    if name == "ring":
        return np.abs(np.hypot(u, v) - 0.72) - 0.28
    if name == "bar":
        return np.maximum(np.abs(u) - 1.0, np.abs(v) - 0.38)
    raise AssertionError(name)


def _draw_object(
    img: np.ndarray,
    yy: np.ndarray,
    xx: np.ndarray,
    rng: np.random.Generator,
    *,
    shape: int,
    orientation_deg: float,
    cycles: float,
    hue: float,
    radius: float,
    center: tuple[float, float],
    contrast: float,
) -> None:
    """Composite one grating-filled, tinted shape into ``img`` (H, W, 3 float in [0, 1])."""
    rot = rng.uniform(-0.35, 0.35)  # small shape rotation, independent of the grating
    cy, cx = center
    dy, dx = (yy - cy) / radius, (xx - cx) / radius
    u = dx * math.cos(rot) + dy * math.sin(rot)
    v = -dx * math.sin(rot) + dy * math.cos(rot)
    sdf = _shape_sdf(shape, u, v)
    mask = np.clip(0.5 - sdf * radius, 0.0, 1.0)[..., None]  # ~1 px anti-aliased edge
    theta = math.radians(orientation_deg)
    phase = rng.uniform(0, 2 * math.pi)
    wave = np.sin(math.pi * cycles * (dx * math.cos(theta) + dy * math.sin(theta)) + phase)
    color = _hsv_to_rgb(hue % 1.0, rng.uniform(0.55, 0.95), rng.uniform(0.6, 0.95))
    fill = color[None, None, :] * (1.0 - contrast * 0.5 + contrast * 0.5 * wave[..., None])
    img *= 1.0 - mask
    img += mask * fill


@functools.lru_cache(maxsize=8)
def _grid(s: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x) of an s x s image, float32; cached, treat as read-only."""
    ys = np.arange(s, dtype=np.float32) + np.float32(0.5)
    yy, xx = np.meshgrid(ys, ys, indexing="ij")
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def render_image(sig: ClassSignature, spec: SynthSpec, rng: np.random.Generator) -> np.ndarray:
    """Render one (S, S, 3) uint8 image of class ``sig`` from its own RNG stream."""
    s, d = spec.image_size, spec.difficulty
    yy, xx = _grid(s)
    # background: smooth two-colour shading plus a faint low-frequency grating at a random angle
    c0 = _hsv_to_rgb(rng.uniform(), rng.uniform(0.0, 0.4), rng.uniform(0.3, 0.7))
    c1 = _hsv_to_rgb(rng.uniform(), rng.uniform(0.0, 0.4), rng.uniform(0.3, 0.7))
    ang = rng.uniform(0, 2 * math.pi)
    ramp = ((xx * math.cos(ang) + yy * math.sin(ang)) / (s * 1.5) + 0.5).clip(0, 1)[..., None]
    img = c0 * (1 - ramp) + c1 * ramp
    bg_theta = rng.uniform(0, math.pi)
    bg_wave = np.sin(2 * math.pi * rng.uniform(1.0, 4.0) * (xx * math.cos(bg_theta) + yy * math.sin(bg_theta)) / s)
    img = (img + np.float32(0.04 + 0.08 * d) * bg_wave[..., None]).astype(np.float32)

    # a cue is replaced by a random value with probability p_miss: caps accuracy below 100 %
    p_miss = 0.25 * d
    jitter_deg = 4.0 + 18.0 * d

    def pick(true_value: int, n: int) -> int:
        return int(rng.integers(n)) if rng.uniform() < p_miss else true_value

    key_radius = s * rng.uniform(0.30 - 0.12 * d, 0.40 - 0.08 * d)
    n_distract = int(rng.integers(0, 1 + round(4 * d)))
    for _ in range(n_distract):  # distractors: random bindings, smaller than the key object
        r = key_radius * rng.uniform(0.35, 0.7)
        _draw_object(
            img,
            yy,
            xx,
            rng,
            shape=int(rng.integers(len(SHAPES))),
            orientation_deg=float(rng.uniform(0, 180)),
            cycles=float(rng.choice(FREQUENCIES)),
            hue=float(rng.uniform()),
            radius=r,
            center=(rng.uniform(r * 0.5, s - r * 0.5), rng.uniform(r * 0.5, s - r * 0.5)),
            contrast=float(rng.uniform(0.3, 0.9)),
        )
    margin = key_radius * 0.9
    spread = 0.15 + 0.85 * d  # how far from the centre the key object may sit
    cy = s / 2 + rng.uniform(-1, 1) * spread * max(0.0, s / 2 - margin)
    cx = s / 2 + rng.uniform(-1, 1) * spread * max(0.0, s / 2 - margin)
    _draw_object(
        img,
        yy,
        xx,
        rng,
        shape=pick(sig.shape, len(SHAPES)),
        orientation_deg=ORIENTATIONS_DEG[pick(sig.orientation, len(ORIENTATIONS_DEG))] + rng.normal(0, jitter_deg),
        cycles=FREQUENCIES[pick(sig.frequency, len(FREQUENCIES))] * rng.uniform(0.85, 1.15),
        hue=HUES[pick(sig.hue, len(HUES))] + rng.normal(0, 0.02 + 0.05 * d),
        radius=key_radius,
        center=(cy, cx),
        contrast=float(rng.uniform(0.55, 1.0)),
    )
    img += rng.standard_normal(size=img.shape, dtype=np.float32) * np.float32(0.02 + 0.08 * d)
    np.clip(img, 0.0, 1.0, out=img)
    return (img * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)


def _split_plan(spec: SynthSpec) -> list[tuple[str, int, int]]:
    return [
        (split, c, i)
        for split, per in (("train", spec.train_per_class), ("val", spec.val_per_class))
        for c in range(spec.num_classes)
        for i in range(per)
    ]


def generate(
    out: str | os.PathLike,
    spec: SynthSpec = SynthSpec(),
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the dataset under ``out`` and return its path.

    Writes into ``out.partial`` and renames at the end, so an interrupted run never leaves a
    directory that looks complete. ``progress(done, total)`` is called every 100 images.
    """
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} exists; pass overwrite=True (CLI: --force) or choose another --out")
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    sigs = class_signatures(spec.num_classes, spec.seed)
    split_ids = {"train": 0, "val": 1}
    plan = _split_plan(spec)
    flat_rows: list[str] = []
    for n, (split, c, i) in enumerate(plan):
        sig = sigs[c]
        rng = np.random.default_rng([spec.seed, split_ids[split], c, i])
        pixels = render_image(sig, spec, rng)
        if split == "val" and spec.val_layout == "flat":
            stem = f"SYNTH_val_{c * spec.val_per_class + i:08d}"
            path = tmp / "val" / f"{stem}.JPEG"
            flat_rows.append(f"{stem},{sig.wnid} 0 0 {spec.image_size} {spec.image_size}")
        else:
            path = tmp / split / sig.wnid / f"{sig.wnid}_{i:05d}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, format="JPEG", quality=spec.jpeg_quality)
        if progress is not None and (n + 1) % 100 == 0:
            progress(n + 1, len(plan))
    if flat_rows:
        (tmp / FLAT_VAL_LABELS).write_text("ImageId,PredictionString\n" + "\n".join(sorted(flat_rows)) + "\n")
    (tmp / "classes.txt").write_text("".join(f"{s.wnid} {s.describe()}\n" for s in sigs))
    (tmp / "synth.json").write_text(json.dumps(spec.to_dict(), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out)
    return out
