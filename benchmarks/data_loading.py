"""Images/s of one training epoch: decode-once cache vs decoding JPEGs through ImageFolder every epoch.

Same images (the train split), same resolution, same augmentation family (random-resized crop +
flip + normalise), same batch size, one process, measured in one run. Prints per-path medians over
``--epochs`` epochs and the ratio. Usage::

    python benchmarks/data_loading.py [--root data/synth] [--resolution 64] [--epochs 3] [--threads 1]

Without ``--root`` a default synthetic dataset (10 classes x 200 train images) is generated into
a temporary directory first. Cache build time (one-off) is printed separately.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from lab.data import DataSpec, load_proxy_data
from lab.data.imagenet_subset import imagefolder_transforms
from lab.data.synthetic import SynthSpec, generate


def epoch_cache(data, batch_size: int, seed: int) -> int:
    n = 0
    for _x, y in data.train_batches(batch_size, seed=seed, drop_last=False):
        n += y.numel()
    return n


def epoch_imagefolder(loader: DataLoader) -> int:
    n = 0
    for _x, y in loader:
        n += y.numel()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=None)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers for the ImageFolder path")
    ap.add_argument("--synth-size", type=int, default=80, help="side of the generated JPEGs when --root is not given")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else generate(Path(tmp) / "synth", SynthSpec(image_size=args.synth_size))
        spec = DataSpec(root=str(root), resolution=args.resolution, cache_dir=str(Path(tmp) / "cache"))
        t0 = time.perf_counter()
        data = load_proxy_data(spec, progress=False)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        load_proxy_data(spec, progress=False)
        warm_s = time.perf_counter() - t0

        folder = ImageFolder(str(root / spec.train_dir), transform=imagefolder_transforms(spec, train=True))
        loader = DataLoader(folder, batch_size=args.batch_size, shuffle=True, num_workers=args.workers)
        assert len(folder) == data.train_images.shape[0], "ImageFolder sees other images than the cache"

        names = ("cache (memmap uint8 + batched RRC)", "ImageFolder JPEG decode")
        times: dict[str, list[float]] = {k: [] for k in names}
        cpu: dict[str, list[float]] = {k: [] for k in names}
        n_images = 0
        for epoch in range(args.epochs):  # interleaved, so machine-load drift hits both paths alike
            for name, run in zip(
                names,
                (lambda e=epoch: epoch_cache(data, args.batch_size, seed=e), lambda: epoch_imagefolder(loader)),
                strict=True,
            ):
                t0, c0 = time.perf_counter(), time.process_time()
                n = run()
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                assert n_images in (0, n)
                n_images = n

    print(
        f"{n_images} train images, {args.resolution}px, batch {args.batch_size}, {args.threads} thread(s), "
        f"ImageFolder workers={args.workers}, {args.epochs} epochs each"
    )
    print(f"cache build (one-off): {build_s:.2f}s; warm cache open: {warm_s * 1e3:.0f} ms")
    print(f"{'path':40s} {'median epoch s':>15s} {'images/s':>10s} {'median CPU s':>13s}")
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    for k, v in med.items():
        print(f"{k:40s} {v:15.3f} {n_images / v:10.0f} {med_cpu[k]:13.3f}")
    cache_key, folder_key = list(med)
    print(
        f"ratio (cache images/s / ImageFolder images/s): {med[folder_key] / med[cache_key]:.1f}x wall, "
        f"{med_cpu[folder_key] / med_cpu[cache_key]:.1f}x CPU time"
    )


if __name__ == "__main__":
    main()
