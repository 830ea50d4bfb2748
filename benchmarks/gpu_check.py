"""One-shot GPU check of the selective scan: gpu tests, scan benchmark, T2 benchmark, one summary table.

    .venv/bin/python benchmarks/gpu_check.py            # a few minutes on one CUDA GPU
    .venv/bin/python benchmarks/gpu_check.py --quick    # fewer repeats and shapes

Runs (each in a subprocess, so a failure in one still leaves the others' results):
1. ``pytest -m gpu tests/kernels`` (compiled Triton vs the float64 reference, torch path on CUDA,
   half inputs, the TRITON_INTERPRET-on-CUDA warning);
2. ``benchmarks/selective_scan.py --device cuda`` (torch vs triton, fwd and fwd+bwd);
3. ``benchmarks/t2_backends.py --device cuda`` (T2 forward at 192 px, batch 1 and 16, per backend,
   with the scan's share of device time).
Exits 2 without a CUDA device, 1 if any step failed, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], timeout: int) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # compiled kernels, not interpreted
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        out, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out, rc = f"{exc.stdout or ''}{exc.stderr or ''}\nTIMEOUT after {timeout}s", 124
    return rc, out if isinstance(out, str) else out.decode(), time.perf_counter() - t0


def read_json_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible (torch.cuda.is_available() is False); nothing was checked.")
        return 2
    py = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    reps = "5" if args.quick else "15"
    steps = {
        "gpu tests": [py, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests/kernels"],
        "scan benchmark": [py, "benchmarks/selective_scan.py", "--device", "cuda", "--repeats", reps,
                           "--json", str(tmp / "scan.jsonl")] + (["--shapes", "0", "3", "4"] if args.quick else []),
        "T2 benchmark": [py, "benchmarks/t2_backends.py", "--device", "cuda", "--repeats", reps,
                         "--json", str(tmp / "t2.jsonl")],
    }  # fmt: skip
    results = {}
    for name, cmd in steps.items():
        print(f"[gpu_check] {name}: {' '.join(cmd[1:])}", flush=True)
        rc, out, secs = run(cmd, timeout=900)
        results[name] = (rc, out, secs)
        print(out[-3000:] if rc else out[-1500:], flush=True)

    rc_tests, out_tests, secs_tests = results["gpu tests"]
    counts = re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", out_tests)
    summary = ", ".join(f"{n} {w}" for n, w in counts) or "no pytest summary"

    print("\n## gpu_check summary")
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
          f"triton {__import__('triton').__version__}\n")  # fmt: skip
    print("| item | shape / batch | torch | triton | triton speed-up | extra |")
    print("|---|---|---|---|---|---|")
    print(f"| gpu tests | tests/kernels -m gpu | | | | {'OK' if rc_tests == 0 else 'FAILED'}: {summary} "
          f"({secs_tests:.0f}s) |")
    for r in read_json_lines(tmp / "scan.jsonl"):
        shape = f"{r['label']} b{r['batch']} dim{r['dim']} L{r['L']}"
        for kind in ("fwd", "fwd+bwd"):
            if f"{kind} torch" in r:
                t, tr = r[f"{kind} torch"], r[f"{kind} triton"]
                ref = f"ref {r[f'{kind} ref']:.3f} ms" if f"{kind} ref" in r else ""
                print(f"| scan {kind} (ms) | {shape} | {t:.3f} | {tr:.3f} | {t / tr:.1f}x | {ref} |")
    t2 = read_json_lines(tmp / "t2.jsonl")
    for batch in sorted({r["batch"] for r in t2}):
        by = {r["variant"]: r for r in t2 if r["batch"] == batch}
        if "torch" in by and "triton" in by:
            t, tr = by["torch"], by["triton"]
            nan = float("nan")
            extra = (f"img/s {t['img_per_s']:.0f} vs {tr['img_per_s']:.0f}; scan share "
                     f"{100 * t.get('share_scan', nan):.1f}% vs {100 * tr.get('share_scan', nan):.1f}%")
            if "ref" in by:
                extra += f"; ref {by['ref']['ms']:.2f} ms"
            print(f"| T2 192px forward (ms) | batch {batch} | {t['ms']:.2f} | {tr['ms']:.2f} | "
                  f"{t['ms'] / tr['ms']:.2f}x | {extra} |")  # fmt: skip
    failed = [name for name, (rc, _, _) in results.items() if rc != 0]
    print(f"\nsteps failed: {failed or 'none'}; raw JSON in {tmp}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
