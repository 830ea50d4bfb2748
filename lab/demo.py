"""``make demo``: the lab's main job, end to end, on the CPU in a few minutes.

Runs ``experiments/quickstart.py`` -- a small multi-objective NAS over the MRFFI space (proxy
top-1 vs measured CPU throughput; FLOPs and params recorded for every trial) on the synthetic
dataset, which is generated into ``data/synth`` when missing -- then writes the HTML report and
prints its path and the Pareto set. A demo run that already exists is resumed (finished trials
are kept, the report rebuilt), so ``make demo`` can be re-run; ``--fresh`` deletes it first.

``python -m lab.demo [--experiment FILE] [--n-trials N] [--timeout S] [--out DIR] [--fresh]``
(the options exist so a test can run the same pipeline on a smaller budget).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EXPERIMENT = ROOT / "experiments" / "quickstart.py"
PARETO_COLUMNS = ("trial", "top1", "flops", "params", "throughput", "latency_ms")
BUDGET_S = 600.0
RESERVE_S = 90.0  # the trial running at the deadline, the export and the report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lab.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", default=str(DEFAULT_EXPERIMENT), help="experiment file (default: quickstart)")
    p.add_argument("--n-trials", type=int, default=None, help="trials to finish (default: the experiment's)")
    p.add_argument("--timeout", type=float, default=None, help="stop starting trials after S seconds (default: "
                   "the experiment's, cut so the whole demo fits in --budget)")
    p.add_argument("--budget", type=float, default=BUDGET_S, help=f"wall-time target of the whole demo in seconds "
                   f"(default {BUDGET_S:.0f}; {RESERVE_S:.0f}s are kept for the last trial and the report)")
    p.add_argument("--out", default="runs", help="parent folder of the run directory (default runs/)")
    p.add_argument("--fresh", action="store_true", help="delete an existing run of this experiment first")
    return p


def pareto_table(run_dir: Path) -> tuple[str, int]:
    """The run's Pareto set (complete trials, the experiment's objectives) as Markdown, and its size;
    a network sampled twice (same ``config_id``) is listed once, under its first trial."""
    import numpy as np

    from analysis.pareto import Objective, pareto_mask
    from analysis.tables import human
    from reports.run import load_run

    run = load_run(run_dir)
    done = run.complete
    if "config_id" in done.columns:
        done = done.sort_values("trial").drop_duplicates("config_id", keep="first")
    objs = [Objective(o["name"], o["direction"]) for o in run.experiment.get("objectives", [])]
    if not len(done) or not objs:
        return "(no complete trial: no Pareto set)\n", 0
    values = done[[o.name for o in objs]].to_numpy(dtype=float)
    ok = np.isfinite(values).all(axis=1)
    front = done[ok][pareto_mask(values[ok], objs)].sort_values(objs[0].name, ascending=objs[0].direction != "maximize")
    knobs = [c for c in done.columns if str(c).startswith("p.")]
    cols = [c for c in PARETO_COLUMNS if c in front.columns] + knobs
    lines = ["| " + " | ".join(c.removeprefix("p.") for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, r in front.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if c in ("params", "flops"):
                cells.append(human(float(v)))
            elif c == "trial":
                cells.append(str(int(v)))
            elif isinstance(v, float):
                cells.append(f"{v:.2f}" if np.isfinite(v) else "-")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", len(front)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from lab.search import load_experiment
    from lab.search.sweep import run_sweep

    t0 = time.perf_counter()
    try:
        exp = load_experiment(args.experiment)
    except ValueError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    run_dir = Path(args.out) / exp.name
    if args.fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    resume = (run_dir / "study.db").is_file()
    timeout = args.timeout
    if timeout is None:
        left = max(30.0, args.budget - (time.perf_counter() - t0) - RESERVE_S)
        timeout = min(exp.budget.timeout_s or left, left)
    print(f"MobileMamba Lab demo: {exp.description}\n"
          f"{'resuming' if resume else 'running'} {args.experiment} -> {run_dir}/ "
          f"(dataset {exp.data.root}{'' if Path(exp.data.root).exists() else ', generated first'})", file=sys.stderr)
    try:
        result = run_sweep(exp, n_trials=args.n_trials, timeout_s=timeout, out=args.out, resume=resume,
                           progress=sys.stderr.isatty(), report=True,
                           command=f"python -m lab.demo --experiment {args.experiment}")
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        hint = f"\n(an earlier demo run in {run_dir} does not fit this experiment: `python -m lab.demo --fresh` " \
               "starts over)" if resume else ""
        print(f"demo: error: {exc}{hint}", file=sys.stderr)
        return 2
    if result["interrupted"]:
        return 130
    report = run_dir / "report" / "index.html"
    table, n = pareto_table(run_dir)
    c = result["counts"]
    print(f"\n{exp.name}: {c.get('complete', 0)} complete, {c.get('infeasible', 0)} infeasible, "
          f"{c.get('pruned', 0)} pruned, {c.get('failed', 0)} failed trials; Pareto set ({n} trials, "
          f"{' vs '.join(o.name for o in exp.objectives)}):\n")
    print(table)
    if not report.is_file():
        print(f"demo: the report was not written; retry with `lab report {run_dir}`", file=sys.stderr)
        return 1
    print(f"report: {report.resolve()}")
    print(f"demo finished in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
