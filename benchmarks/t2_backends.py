"""Whole MobileMamba-T2 forward at 192 px per scan backend, with the scan's share from the profiler.

    .venv/bin/python benchmarks/t2_backends.py                       # CPU, 1 thread, batch 1 and 16
    .venv/bin/python benchmarks/t2_backends.py --levers              # + channels_last, inference_mode
    .venv/bin/python benchmarks/t2_backends.py --levers --compile    # + torch.compile (slow to compile)
    .venv/bin/python benchmarks/t2_backends.py --device cuda         # torch vs triton (and ref)

For each batch it times ``model(x)`` (eval, ``torch.no_grad``) with each backend, interleaved
round-robin, and reports medians and the ratio to the first backend. A profiled run per backend
gives the share of the forward spent in the scan op (``mmlab::selective_scan``, children included)
and in the Haar wavelet transform pair (DWT / IDWT, labelled by wrapping the two functions of
``lab.blocks.wavelet`` in this process only), over three profiled forwards. CPU shares are of CPU
time, CUDA shares of device time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile, record_function  # noqa: E402

import kernels.selective_scan as ss  # noqa: E402

LABELS = {"scan": ss.SCAN_OP_NAME, "dwt": "haar_dwt", "idwt": "haar_idwt"}


def label_wavelet_functions() -> None:
    """Wrap the DWT / IDWT of lab.blocks.wavelet in record_function labels (this process only)."""
    from lab.blocks import wavelet

    def labelled(fn, name):
        def wrapper(*args, **kwargs):
            with record_function(name):
                return fn(*args, **kwargs)

        return wrapper

    wavelet.wavelet_transform = labelled(wavelet.wavelet_transform, LABELS["dwt"])
    wavelet.inverse_wavelet_transform = labelled(wavelet.inverse_wavelet_transform, LABELS["idwt"])


def timed(fn, device: str, clock: str) -> float:
    now = time.process_time if clock == "cpu" else time.perf_counter
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = now()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (now() - t0) * 1e3


def shares(model, x, backend: str, device: str, *, forwards: int = 3) -> dict[str, float]:
    """Fractions of the forward in the scan op and the wavelet pair, over ``forwards`` profiled forwards."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with torch.no_grad(), ss.use_backend(backend):
        model(x)
        with profile(activities=activities) as prof:
            for _ in range(forwards):
                with record_function("forward"):
                    model(x)
            if device == "cuda":
                torch.cuda.synchronize()
    totals: dict[str, float] = {}
    attr = "device_time_total" if device == "cuda" else "cpu_time_total"
    for event in prof.key_averages():
        totals[event.key] = totals.get(event.key, 0.0) + getattr(event, attr)
    whole = totals.get("forward", 0.0)
    if whole <= 0:
        return {k: float("nan") for k in LABELS}
    return {k: totals.get(name, 0.0) / whole for k, name in LABELS.items()}


def run_variants(variants: dict, x_for, *, device: str, repeats: int, clock: str) -> dict[str, float]:
    """Median ms per variant ``name -> (model, backend, context factory)``, interleaved."""
    samples: dict[str, list[float]] = {name: [] for name in variants}

    def call(name):
        model, backend, ctx = variants[name]
        with ctx(), ss.use_backend(backend):
            model(x_for(name))

    for name in variants:  # warm-up (compiles)
        call(name)
    for _ in range(repeats):
        for name in variants:
            samples[name].append(timed(lambda name=name: call(name), device, clock))
    return {name: statistics.median(v) for name, v in samples.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mobilemamba_t2")
    p.add_argument("--img", type=int, default=192)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--backends", nargs="+", default=None, help="default: ref torch numba (CPU); torch triton ref")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"], help="cpu = process CPU time (1 thread)")
    p.add_argument("--levers", action="store_true", help="also time channels_last and inference_mode (torch/auto)")
    p.add_argument("--compile", action="store_true", help="with --levers: also torch.compile (inductor)")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the rows as JSON lines")
    args = p.parse_args(argv)
    if args.clock == "cpu" and (args.device != "cpu" or args.threads != 1):
        p.error("--clock cpu needs --device cpu --threads 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 2

    import lab

    torch.set_num_threads(args.threads)
    label_wavelet_functions()
    cpu_fast = ["torch", "numba"] if ss.numba_importable() else ["torch"]
    backends = args.backends or (["ref", *cpu_fast] if args.device == "cpu" else ["torch", "triton", "ref"])
    fast = "triton" if args.device == "cuda" else cpu_fast[-1]
    model = lab.build_model(args.model).eval().to(args.device)
    rows = []
    for batch in args.batches:
        x = torch.randn(batch, 3, args.img, args.img, device=args.device)
        variants = {b: (model, b, torch.no_grad) for b in backends}
        inputs = {b: x for b in backends}
        if args.levers:
            cl_model = lab.build_model(args.model).eval().to(args.device).to(memory_format=torch.channels_last)
            cl_model.load_state_dict(model.state_dict())
            variants[f"{fast} inference_mode"] = (model, fast, torch.inference_mode)
            variants[f"{fast} channels_last"] = (cl_model, fast, torch.no_grad)
            inputs[f"{fast} channels_last"] = x.contiguous(memory_format=torch.channels_last)
            if args.compile:
                variants[f"{fast} compile"] = (torch.compile(model), fast, torch.no_grad)
        for name in variants:
            inputs.setdefault(name, x)
        times = run_variants(variants, inputs.__getitem__, device=args.device, repeats=args.repeats, clock=args.clock)
        base = times[backends[0]]
        for name, ms in times.items():
            _, backend, _ = variants[name]
            row = {"model": args.model, "img": args.img, "batch": batch, "variant": name, "backend": backend,
                   "ms": ms, "img_per_s": 1e3 * batch / ms, "speedup": base / ms}  # fmt: skip
            if not args.no_profile and name in backends:
                row.update({f"share_{k}": v for k, v in shares(model, x, backend, args.device).items()})
            rows.append(row)
        print(f"done batch {batch}", file=sys.stderr, flush=True)

    print(f"| model | batch | variant | forward ms (median) | img/s | vs {backends[0]} | scan share | "
          "DWT+IDWT share |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        scan = f"{100 * r['share_scan']:.1f}%" if "share_scan" in r else ""
        wav = f"{100 * (r['share_dwt'] + r['share_idwt']):.1f}%" if "share_dwt" in r else ""
        print(f"| {r['model']} {r['img']}px | {r['batch']} | {r['variant']} | {r['ms']:.1f} | {r['img_per_s']:.1f} | "
              f"{r['speedup']:.2f}x | {scan} | {wav} |")
    print(f"\ndevice={args.device} threads={torch.get_num_threads()} repeats={args.repeats} clock={args.clock} "
          f"torch={torch.__version__}; medians, variants interleaved, ratios from this one run; shares from three "
          "profiled forwards per backend (profiler overhead inflates small ops).")
    if args.json:
        with open(args.json, "w") as f:
            for r in rows:
                f.write(json.dumps({**r, "device": args.device, "threads": torch.get_num_threads()}) + "\n")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
