"""The six official MobileMamba variants on this machine: params, FLOPs (paper convention vs the
official count), CPU throughput at batch 16 and latency at batch 1, fused, one run.

    .venv/bin/python benchmarks/variants.py                  # all six, CPU protocol (1 thread)
    .venv/bin/python benchmarks/variants.py --variants mobilemamba_t2 mobilemamba_t4 --iters 20

Prints a Markdown table (medians with [min-max] over the timed steps, and throughput relative to
the first variant, all from this one run) and the environment. Timings on a shared machine are
noisy: compare ratios within one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.measure import measure  # noqa: E402
from lab.models import OFFICIAL_VARIANTS  # noqa: E402

OFFICIAL = Path(__file__).resolve().parents[1] / "tests" / "data" / "official_numbers.json"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(OFFICIAL_VARIANTS), choices=OFFICIAL_VARIANTS)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=None, help="throughput batch (CPU default 16)")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--latency-iters", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads (CPU default 1)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the rows as JSON lines")
    args = p.parse_args(argv)

    official = json.loads(OFFICIAL.read_text())["variants"]
    rows = []
    for name in args.variants:
        row = measure(name, what=("params", "flops", "throughput"), device=args.device, batch=args.batch,
                      warmup=args.warmup, iters=args.iters, latency_iters=args.latency_iters, threads=args.threads,
                      fused=True)
        rows.append(row)
        print(f"measured {name}: {row['throughput']:.1f} img/s, {row['latency_ms']:.1f} ms", file=sys.stderr,
              flush=True)

    base = rows[0]["throughput"]
    print("| model | res | params (M) | fused params (M) | MFLOPs paper | official | diff % | MFLOPs full | "
          f"img/s bs{rows[0]['batch']} median [min-max] | rel. to {rows[0]['model']} | latency bs1 ms median "
          "[min-max] |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ref = official[r["model"]]["flops_m"]
        diff = 100 * (r["flops"] / 1e6 - ref) / ref
        print(f"| {r['model']} | {r['res']} | {r['params'] / 1e6:.3f} | {r['params_fused'] / 1e6:.3f} | "
              f"{r['flops'] / 1e6:.1f} | {ref:.1f} | {diff:+.2f} | {r['flops_full'] / 1e6:.1f} | "
              f"{r['throughput']:.1f} [{r['throughput_min']:.1f}-{r['throughput_max']:.1f}] | "
              f"{r['throughput'] / base:.2f} | {r['latency_ms']:.1f} [{r['latency_ms_min']:.1f}-"
              f"{r['latency_ms_max']:.1f}] |")
    env = rows[0]["env"]
    keys = ("device_name", "cpu_count", "threads", "torch", "triton", "TRITON_INTERPRET", "scan_backends", "git_sha",
            "git_dirty", "timestamp")
    print("\nenv: " + ", ".join(f"{k}={env.get(k)}" for k in keys))
    print(f"protocol: {json.dumps(rows[0]['protocol'])}")
    if args.json:
        Path(args.json).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
