#!/usr/bin/env python
"""Launch a sweep: ``python run_sweep.py experiments/quickstart.py [--backend optuna|ray] ...``.

Thin CLI over ``lab.search.sweep.run_sweep``; see the README section "Run a sweep".
"""

from __future__ import annotations

import argparse
import shlex
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_sweep.py", description="Run an architecture / hyper-parameter sweep.")
    p.add_argument("experiment", metavar="EXPERIMENT", help="experiment file defining EXPERIMENT, e.g. "
                   "experiments/quickstart.py")
    p.add_argument("--backend", choices=("optuna", "ray"), default="optuna",
                   help="optuna: embedded, SQLite by default; ray: Ray Tune (local or --ray-address cluster)")
    p.add_argument("--n-trials", type=int, default=None, help="finished trials to reach (default: the experiment's)")
    p.add_argument("--timeout", type=float, default=None, help="stop starting trials after S seconds")
    p.add_argument("--workers", type=int, default=None, help="parallel trials (local processes / Ray workers)")
    p.add_argument("--storage", default=None, help="Optuna RDB URL (default sqlite:///OUT/<exp>/study.db)")
    p.add_argument("--ray-address", default=None, help="existing Ray cluster, HOST:PORT from `ray start --head`")
    p.add_argument("--resume", action="store_true", help="continue (or join) the existing study of this experiment")
    p.add_argument("--out", default="runs", help="parent folder of the run directory (default runs/)")
    p.add_argument("--no-progress", action="store_true", help="no live progress line")
    p.add_argument("--no-report", action="store_true", help="do not write the HTML report at the end")
    p.add_argument("--scale", default=None, help="a named scale of the experiment file (its SCALES, e.g. smoke)")
    p.add_argument("--data", default=None, metavar="DIR", help="ImageNet-format folder (train/, val/) replacing the "
                   "experiment's dataset root (its class subset and resolution are kept)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from lab.search.sweep import run_sweep

    argv = sys.argv[1:] if argv is None else argv
    again = "python run_sweep.py " + " ".join(shlex.quote(a) for a in argv if a != "--resume")
    try:
        result = run_sweep(args.experiment, backend=args.backend, n_trials=args.n_trials, timeout_s=args.timeout,
                           workers=args.workers, storage=args.storage, ray_address=args.ray_address,
                           resume=args.resume, out=args.out, progress=not args.no_progress,
                           report=not args.no_report, command=again, scale=args.scale, data_root=args.data)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"run_sweep.py: error: {exc}", file=sys.stderr)
        return 2
    return 130 if result["interrupted"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
