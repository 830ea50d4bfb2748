"""``lab data``: generate the synthetic default dataset and pre-build proxy-data caches.

    lab data synth --out data/synth [--classes 10 --train-per-class 200 --val-per-class 50 --size 80
                                     --seed 0 --difficulty 0.5 --jpeg-quality 90 --flat-val --force]
    lab data cache --root data/synth [--num-classes N --classes imagenet100|FILE --train-per-class N
                                      --val-per-class N --resolution 64 --cache-dir DIR --workers 2]
"""

from __future__ import annotations

import argparse
import sys
import time


def _synth(args: argparse.Namespace) -> int:
    from lab.data.synthetic import SynthSpec, generate

    spec = SynthSpec(
        num_classes=args.classes,
        train_per_class=args.train_per_class,
        val_per_class=args.val_per_class,
        image_size=args.size,
        seed=args.seed,
        difficulty=args.difficulty,
        jpeg_quality=args.jpeg_quality,
        val_layout="flat" if args.flat_val else "folders",
    )
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        print(f"\r  {done}/{total} images", end="", file=sys.stderr, flush=True)

    out = generate(args.out, spec, overwrite=args.force, progress=None if args.quiet else progress)
    if not args.quiet:
        print(file=sys.stderr)
    n = spec.num_classes * (spec.train_per_class + spec.val_per_class)
    print(f"wrote {n} images ({spec.num_classes} classes) to {out} in {time.perf_counter() - t0:.1f}s")
    return 0


def _cache(args: argparse.Namespace) -> int:
    from lab.data.imagenet_subset import DataSpec
    from lab.data.proxy_data import load_proxy_data

    spec = DataSpec(
        root=args.root,
        num_classes=args.num_classes,
        classes=args.classes,
        class_seed=args.class_seed,
        train_per_class=args.train_per_class,
        val_per_class=args.val_per_class,
        allow_fewer=args.allow_fewer,
        resolution=args.resolution,
        cache_dir=args.cache_dir,
    )
    t0 = time.perf_counter()
    data = load_proxy_data(spec, workers=args.workers, progress=not args.quiet)
    print(
        f"{data.num_classes} classes, {data.train_images.shape[0]} train + {data.val_images.shape[0]} val images "
        f"stored at {data.stored_size}px for {spec.resolution}px proxies ({time.perf_counter() - t0:.1f}s); "
        f"fingerprint {data.fingerprint}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="synthetic dataset and proxy-data caches")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    p = sub.add_parser("synth", help="write the deterministic synthetic ImageNet-format dataset")
    p.add_argument("--out", required=True, help="output directory (ImageFolder layout: train/, val/)")
    p.add_argument("--classes", type=int, default=10, help="number of classes (2..72)")
    p.add_argument("--train-per-class", type=int, default=200)
    p.add_argument("--val-per-class", type=int, default=50)
    p.add_argument("--size", type=int, default=80, help="image side in px")
    p.add_argument("--seed", type=int, default=0, help="same seed and knobs -> byte-identical files")
    p.add_argument("--difficulty", type=float, default=0.5, help="0 = clean/centred ... 1 = hard")
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--flat-val", action="store_true", help="ImageNet-style flat val/ + LOC_val_solution.csv")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_synth)

    p = sub.add_parser("cache", help="validate a dataset subset and build its decode-once cache")
    p.add_argument("--root", required=True, help="ImageFolder root with train/ and val/")
    p.add_argument("--num-classes", type=int, default=None, help="pick this many classes (seeded)")
    p.add_argument("--classes", default=None, help="named class list (imagenet100) or a text file of folder names")
    p.add_argument("--class-seed", type=int, default=0)
    p.add_argument("--train-per-class", type=int, default=None)
    p.add_argument("--val-per-class", type=int, default=None)
    p.add_argument("--allow-fewer", action="store_true", help="accept classes with fewer images than asked")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--cache-dir", default=None, help="default: $LAB_CACHE_DIR or ~/.cache/mobilemamba-lab/data")
    p.add_argument("--workers", type=int, default=2, help="decoding threads")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cache)
