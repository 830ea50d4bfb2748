"""The selective scan alone, per backend, on the SS2D shapes of T2 at 192 px and of a 64 px proxy.

    .venv/bin/python benchmarks/selective_scan.py                 # CPU: ref vs auto (= numba, else torch) vs torch
    .venv/bin/python benchmarks/selective_scan.py --threads 2 --repeats 15
    .venv/bin/python benchmarks/selective_scan.py --device cuda   # torch vs triton (and ref for scale)

Each row is one scan call (``batch``, ``dim`` = directions x d_inner, ``L``, ``d_state``). Timings
are medians (wall clock, or process CPU time with ``--clock cpu``) over ``--repeats`` runs, the
backends interleaved round-robin so that load drift on a shared machine hits them alike; ratios are
taken within this one run. ``fwd`` is the op under ``torch.no_grad``; ``fwd+bwd`` is forward plus
backward for all inputs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import kernels.selective_scan as ss  # noqa: E402

# (label, batch, directions, d_inner, L): T2 at 192 px (stem stride 16 -> 12x12, 6x6, 3x3) and a
# 64 px proxy of T2 (stem stride 4 -> 16x16, 8x8, 4x4; same widths).
T2_SHAPES = (
    ("T2 s1 192px", 4, 2, 224, 144),
    ("T2 s2 192px", 4, 2, 384, 36),
    ("T2 s3 192px", 4, 2, 448, 9),
    ("T2 s1 192px", 16, 2, 224, 144),
    ("proxy s1 64px", 64, 2, 224, 256),
    ("proxy s2 64px", 64, 2, 384, 64),
    ("proxy s3 64px", 64, 2, 448, 16),
)


def make_inputs(batch: int, k: int, d_inner: int, length: int, d_state: int, device: str, dtype: torch.dtype):
    g = torch.Generator().manual_seed(0)
    dim = k * d_inner

    def r(*s):
        return torch.randn(*s, generator=g).to(device=device, dtype=dtype)

    A = -torch.exp(torch.rand(dim, d_state, generator=g)).to(device)
    return [r(batch, dim, length), r(batch, dim, length) * 0.5, A, r(batch, k, d_state, length),
            r(batch, k, d_state, length), torch.ones(dim, device=device), r(dim) * 0.1]  # fmt: skip


def timer(device: str, clock: str) -> Callable[[Callable[[], object]], float]:
    """Milliseconds of one call: wall clock, or this process's CPU time (``clock="cpu"``, for one thread
    on a machine shared with other jobs, where wall time also counts the time others hold the cores)."""
    now = time.process_time if clock == "cpu" else time.perf_counter

    def run(fn: Callable[[], object]) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = now()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return (now() - t0) * 1e3

    return run


def bench_row(shape, backends: list[str], *, device: str, dtype: torch.dtype, d_state: int, repeats: int,
              backward: bool, clock: str) -> dict:  # fmt: skip
    label, batch, k, d_inner, length = shape
    inputs = make_inputs(batch, k, d_inner, length, d_state, device, dtype)
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    grad = torch.randn_like(inputs[0])
    time_it = timer(device, clock)

    def fwd(backend):
        with torch.no_grad():
            ss.selective_scan(*inputs[:6], delta_bias=inputs[6], backend=backend)

    def fwd_bwd(backend):
        y = ss.selective_scan(*leaves[:6], delta_bias=leaves[6], backend=backend)
        y.backward(grad)
        for t in leaves:
            t.grad = None

    row = {"label": label, "batch": batch, "dim": k * d_inner, "L": length, "d_state": d_state}
    for what, fn in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
        if what == "fwd+bwd" and not backward:
            continue
        samples: dict[str, list[float]] = {b: [] for b in backends}
        for b in backends:  # warm-up (Triton compiles here)
            fn(b)
        n = repeats if what == "fwd" else max(3, repeats // 2)
        for _ in range(n):
            for b in backends:
                samples[b].append(time_it(lambda b=b, fn=fn: fn(b)))
        for b in backends:
            row[f"{what} {b}"] = statistics.median(samples[b])
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="wall clock, or process CPU time (only meaningful with --threads 1 on CPU)")
    p.add_argument("--d-state", type=int, default=1)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--no-backward", action="store_true", help="time the forward only")
    p.add_argument("--no-ref", action="store_true", help="skip the (slow) sequential reference")
    p.add_argument("--shapes", type=int, nargs="+", default=None, help="row indices of T2_SHAPES to run")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the rows as JSON lines")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    if args.clock == "cpu" and (args.device != "cpu" or args.threads != 1):
        p.error("--clock cpu needs --device cpu --threads 1")
    if args.device == "cuda":
        if not torch.cuda.is_available():
            print("no CUDA device", file=sys.stderr)
            return 2
        backends = ["torch", "triton"] + ([] if args.no_ref else ["ref"])
        base, fast = "torch", "triton"
    else:
        # "auto" is numba when it imports; then torch_fast gets its own column for comparison.
        extra = ["torch"] if ss.resolve_backend("auto", torch.zeros(0)) != "torch" else []
        backends = ["auto", *extra] + ([] if args.no_ref else ["ref"])
        base, fast = ("ref", "auto") if not args.no_ref else ("auto", "auto")
    shapes = [T2_SHAPES[i] for i in args.shapes] if args.shapes else list(T2_SHAPES)

    rows = []
    for shape in shapes:
        row = bench_row(shape, backends, device=args.device, dtype=dtype, d_state=args.d_state,
                        repeats=args.repeats, backward=not args.no_backward, clock=args.clock)  # fmt: skip
        rows.append(row)
        print(f"done {shape[0]} batch {shape[1]}", file=sys.stderr, flush=True)

    kinds = ["fwd"] + ([] if args.no_backward else ["fwd+bwd"])
    head = ["shape", "batch", "dim", "L", "N"]
    for kind in kinds:
        head += [f"{kind} {b} ms" for b in backends] + [f"{kind} {base}/{fast}"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["label"], str(r["batch"]), str(r["dim"]), str(r["L"]), str(r["d_state"])]
        for kind in kinds:
            cells += [f"{r[f'{kind} {b}']:.3f}" for b in backends]
            cells.append(f"{r[f'{kind} {base}'] / r[f'{kind} {fast}']:.1f}x")
        print("| " + " | ".join(cells) + " |")
    auto = ss.resolve_backend("auto", torch.zeros(0, device=args.device))
    print(f"\ndevice={args.device} dtype={args.dtype} threads={torch.get_num_threads()} repeats={args.repeats} "
          f"clock={args.clock} torch={torch.__version__}; 'auto' resolves to {auto}; medians, backends "
          "interleaved, ratios from this one run.")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            for r in rows:
                f.write(json.dumps({**r, "device": args.device, "dtype": args.dtype,
                                    "threads": torch.get_num_threads(), "clock": args.clock}) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
