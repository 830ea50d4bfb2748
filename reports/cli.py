"""``lab report RUN_DIR``: write RUN_DIR/report/index.html (self-contained) and its Markdown, tables and figures."""

from __future__ import annotations

import argparse
import sys


def _run(args: argparse.Namespace) -> int:
    from .report import ReportOptions, build_report

    if args.erf_images < 1:
        raise ValueError(f"--erf-images must be >= 1, got {args.erf_images}")
    if args.bootstrap < 1:
        raise ValueError(f"--bootstrap must be >= 1, got {args.bootstrap}")
    opts = ReportOptions(erf=not args.no_erf, erf_images=args.erf_images, erf_stage=args.erf_stage,
                         bootstrap=args.bootstrap, svg=not args.no_svg)
    log = (lambda msg: print(f"lab report: {msg}", file=sys.stderr)) if args.verbose else None
    result = build_report(args.run_dir, out_dir=args.out, options=opts, compare_with=args.compare, log=log)
    print(result.index_html)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write a run's self-contained HTML report (plus Markdown, CSV/LaTeX, PNG/SVG)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a sweep's run directory, e.g. runs/quickstart")
    p.add_argument("--out", default=None, help="output folder (default: RUN_DIR/report)")
    p.add_argument("--compare", metavar="OTHER_RUN", default=None,
                   help="add a section comparing this run's Pareto front with another run's (same objectives)")
    p.add_argument("--no-erf", action="store_true", help="skip the ERF maps (they build and run models on the CPU)")
    p.add_argument("--erf-images", type=int, default=4, help="noise images averaged per ERF map (default 4)")
    p.add_argument("--erf-stage", type=int, default=-1, help="stage index for the ERF (default -1 = last)")
    p.add_argument("--no-svg", action="store_true", help="write PNG figures only (SVG doubles the drawing time)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for correlation CIs")
    p.add_argument("-v", "--verbose", action="store_true", help="print progress to stderr")
    p.set_defaults(func=_run)
