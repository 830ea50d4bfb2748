"""One proxy trial per model on the synthetic default: wall time, accuracy, images/s (one run).

The issue-4 acceptance run: tiny MobileMamba, 64 px, 10 synthetic classes, 2,000 train images,
3 epochs, 2 CPU threads, warm cache. Usage::

    python benchmarks/proxy_trial.py [--root data/synth] [--models mobilemamba_tiny,resnet10t]
                                     [--epochs 3] [--threads 2] [--device cpu]

Models: ``lab`` preset names (``lab.build_model``) or timm names. The dataset is generated under
``--root`` if missing and the cache is warmed before timing. Prints the machine load (1-minute
load average) before and after, since timings on a shared machine are only comparable in one run.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from lab.data import DataSpec, load_proxy_data
from lab.data.synthetic import SynthSpec, generate
from lab.train import ProxyRecipe, train_proxy


def build(name: str, num_classes: int) -> torch.nn.Module:
    import lab

    try:
        return lab.build_model(name, num_classes=num_classes)
    except (KeyError, ValueError):
        import timm

        return timm.create_model(name, num_classes=num_classes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default="data/synth")
    ap.add_argument("--models", default="mobilemamba_tiny")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    root = Path(args.root)
    if not root.exists():
        t0 = time.perf_counter()
        generate(root, SynthSpec())
        print(f"generated {root} in {time.perf_counter() - t0:.1f}s")
    spec = DataSpec(root=str(root), num_classes=10, train_per_class=200, resolution=args.resolution)
    data = load_proxy_data(spec, progress=False)  # warms the cache
    t0 = time.perf_counter()
    data = load_proxy_data(spec, progress=False)
    print(
        f"warm cache open {1e3 * (time.perf_counter() - t0):.0f} ms; {data.train_images.shape[0]} train / "
        f"{data.val_images.shape[0]} val images, {data.num_classes} classes, {args.resolution}px"
    )
    recipe = ProxyRecipe(epochs=args.epochs, seed=args.seed)
    print(f"recipe {recipe.recipe_id()}: {recipe}")
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    rows = []
    for name in args.models.split(","):
        torch.manual_seed(args.seed)
        model = build(name, data.num_classes)
        n_params = sum(p.numel() for p in model.parameters())
        r = train_proxy(model, data, recipe, threads=args.threads, device=args.device)
        rows.append((name, n_params, r))
        per_epoch = [round(e.top1, 1) for e in r.epochs]
        print(f"  {name}: top1 {r.top1:.1f}%  wall {r.wall_time_s:.1f}s  per-epoch top1 {per_epoch}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"\n{'model':20s} {'params':>9s} {'top1 %':>7s} {'top5 %':>7s} {'wall s':>7s} {'train img/s':>12s}")
    for name, n_params, r in rows:
        print(
            f"{name:20s} {n_params / 1e6:8.2f}M {r.top1:7.1f} {r.top5:7.1f} {r.wall_time_s:7.1f} {r.images_per_s:12.0f}"
        )
    print(f"chance = {100 / data.num_classes:.1f}%; threads={args.threads}, device={args.device}")


if __name__ == "__main__":
    main()
