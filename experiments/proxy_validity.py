#!/usr/bin/env python
"""Proxy validity: do the lab's cheap signals rank MobileMamba-space networks like a longer training?

Zero-cost proxies reach Spearman 0.74-0.83 on NAS-Bench-201 CNN cells, but nobody has measured
them on Mamba-style blocks, and #params alone often beats them. This study samples ``N``
architectures from ``search_spaces/mobilemamba_nas.py`` (seeded random sampling, distinct valid
configs only), scores each by every cheap signal -- each zero-cost proxy of
``lab.train.zero_cost`` (synflow, naswot, grad_norm, snip, jacob_cov) on one minibatch of the
untrained network, #params, FLOPs, and the top-1 of a 1-epoch and of a 3-epoch proxy training (each
its own short run with its own LR schedule, as a sweep would run it) -- and by a longer reference
training (same recipe, more epochs). It then reports Kendall tau-b and Spearman rho with
percentile-bootstrap 95% intervals (``analysis.correlation``) of each signal against the
reference top-1, the top-k overlap (fraction of the reference's k best networks among the
signal's k best; k = N // 5, at least 1; every signal read as "higher predicts more accurate",
ties to the lower architecture index), and one scatter per signal.

Output, a run directory (``--out``, default ``runs/proxy_validity[-<scale>]``) that ``lab report``
reads: ``trials.parquet`` with ``top1`` = reference top-1 and the cheap signals as ``zc.<name>``
columns (``zc.train_1ep`` / ``zc.train_3ep`` are the short trainings), ``experiment.json``,
``proxy_validity.csv`` / ``.md`` (the table with top-k overlap), ``proxy_validity_scatter.png``,
and ``report/`` whose rank-correlation section holds the table and the scatter plots.

Scales: ``default`` -- N = 30 networks, synthetic data (``data/synth``, generated when missing)
with 10 classes, 64 train / 30 val images per class at 32 px, reference 15 epochs; 43 minutes
on 2 CPU cores with ``--workers 2`` (measured, 2026-11-29); ``smoke`` -- 4 networks, 4 classes,
8 / 4 images per class, reference 2 epochs, short trainings of 1 epoch (seconds; the tests).

Every finished network is appended to ``rows.partial.jsonl`` in the run directory; after a crash
or Ctrl-C the same command evaluates only the missing networks (a file written by a different
setup is refused, not mixed in).

    python experiments/proxy_validity.py --workers 2          # default scale
    python experiments/proxy_validity.py --scale smoke --out /tmp/pv
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing as mp
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.data import DataSpec, SynthSpec  # noqa: E402
from lab.train import ProxyRecipe  # noqa: E402

SCALES = ("default", "smoke")
ZERO_COST = ("synflow", "naswot", "grad_norm", "snip", "jacob_cov")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Study:
    """One scale of the study: how many networks, the data, the reference recipe and the short trainings."""

    name: str
    n_archs: int
    data: DataSpec
    synth: SynthSpec | None
    recipe: ProxyRecipe
    short_epochs: tuple[int, ...] = (1, 3)
    zero_cost: tuple[str, ...] = ZERO_COST
    zc_batch: int = 64
    seed: int = 0
    n_boot: int = 1000

    def __post_init__(self) -> None:
        if self.n_archs < 3:
            raise ValueError(f"n_archs={self.n_archs}: need at least 3 networks to rank")
        bad = [e for e in self.short_epochs if not 1 <= e < self.recipe.epochs]
        if bad:
            raise ValueError(f"short_epochs {bad} must be >= 1 and below the reference's {self.recipe.epochs} epochs")

    @property
    def top_k(self) -> int:
        return max(1, self.n_archs // 5)

    def signals(self) -> list[str]:
        """Columns correlated with the reference: zero-cost scores, short trainings, params, FLOPs."""
        return [*(f"zc.{z}" for z in self.zero_cost), *(f"zc.train_{e}ep" for e in self.short_epochs),
                "params", "flops"]


def scale(name: str, *, data_root: str | None = None) -> Study:
    """The named scale (see the module docstring)."""
    if name == "default":
        return Study(
            name="proxy_validity",
            n_archs=30,
            data=DataSpec(root=data_root or str(ROOT / "data" / "synth"), num_classes=10, train_per_class=64,
                          val_per_class=30, resolution=32),
            synth=SynthSpec(),
            recipe=ProxyRecipe(epochs=15, batch_size=32, lr=3e-3, warmup_epochs=0.5, eval_batch_size=128),
        )
    if name == "smoke":
        return Study(
            name="proxy_validity-smoke",
            n_archs=4,
            data=DataSpec(root=data_root or str(ROOT / "data" / "synth-pv-smoke"), num_classes=4, train_per_class=8,
                          val_per_class=4, resolution=32),
            synth=SynthSpec(num_classes=4, train_per_class=8, val_per_class=4, image_size=40),
            recipe=ProxyRecipe(epochs=2, batch_size=8, lr=3e-3, warmup_epochs=0.0, eval_batch_size=16),
            short_epochs=(1,),
            zc_batch=16,
            n_boot=200,
        )
    raise ValueError(f"scale {name!r} unknown; scales: {', '.join(SCALES)}")


def space() -> Any:
    from search_spaces.mobilemamba_nas import SPACE

    return SPACE


def sample_architectures(n: int, *, seed: int) -> list[dict[str, Any]]:
    """``n`` knob dicts of distinct, valid configs from the NAS space (Optuna random sampler, seeded)."""
    import optuna

    from lab.config import ConfigError, config_id

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sp = space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out, seen = [], set()
    for _ in range(50 * n):
        trial = study.ask()
        params = sp.sample(trial)
        study.tell(trial, 0.0)
        try:
            cid = config_id(sp.to_config(params))
        except (ConfigError, ValueError):
            continue
        if cid not in seen:
            seen.add(cid)
            out.append(params)
        if len(out) == n:
            return out
    raise RuntimeError(f"found only {len(out)} distinct valid configs in {50 * n} samples; lower n_archs")


# ----------------------------------------------------------------------------- evaluation (worker side)

_DATA: dict[str, Any] = {}


def _init_worker(spec: DataSpec) -> None:
    import torch

    from lab.data import load_proxy_data

    torch.set_num_threads(1)
    _DATA["data"] = load_proxy_data(spec, progress=False)


def evaluate_arch(job: tuple[int, dict[str, Any], Study]) -> dict[str, Any]:
    """Every signal and the reference top-1 of one network (fresh, seeded weights for each training)."""
    import torch

    from lab.config import config_id
    from lab.models import build_model
    from lab.search.measure import count_costs
    from lab.search.pipeline import COMPLETE, empty_row
    from lab.train import train_proxy
    from lab.train.zero_cost import zero_cost_scores

    index, params, study = job
    data = _DATA["data"]
    cfg = space().to_config(params).replace(num_classes=data.num_classes, img_size=data.resolution)
    cid = config_id(cfg)

    def fresh() -> torch.nn.Module:
        torch.manual_seed(study.seed)
        return build_model(cfg)

    row = empty_row(index, params, seed=study.seed, env={})
    row.update(config_id=cid, config_json=json.dumps(cfg.to_dict(), sort_keys=True), recipe_id=study.recipe.recipe_id())
    t0 = time.perf_counter()
    model = fresh()
    costs = count_costs(model, config_id=cid, res=data.resolution, cache_dir=None)
    row["params"], row["flops"] = int(costs["params"]), int(costs["flops"])
    x, y = next(data.train_batches(min(study.zc_batch, data.train_images.shape[0]), seed=study.seed))
    for name, score in zero_cost_scores(model, x, y, proxies=study.zero_cost).items():
        row[f"zc.{name}"] = float(score)
    row["measure_seconds"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    for e in study.short_epochs:
        res = train_proxy(fresh(), data, dataclasses.replace(study.recipe, epochs=e, seed=study.seed))
        row[f"zc.train_{e}ep"] = float(res.top1)
    t2 = time.perf_counter()
    res = train_proxy(fresh(), data, dataclasses.replace(study.recipe, seed=study.seed))
    row["train_seconds"] = time.perf_counter() - t2
    row.update(status=COMPLETE, top1=float(res.top1), top5=float(res.top5), epochs=int(res.epochs_completed),
               epoch_top1=json.dumps([round(float(m.top1), 4) for m in res.epochs]),
               reason=f"reference {study.recipe.epochs} epochs; short trainings {t2 - t1:.1f}s")
    row["duration_s"] = time.perf_counter() - t0
    return row


# ----------------------------------------------------------------------------- analysis (pure)


def top_k_overlap(score: Sequence[float], target: Sequence[float], k: int) -> float:
    """Fraction of ``target``'s ``k`` largest entries that are among ``score``'s ``k`` largest (NaN
    scores rank last; ties go to the lower index)."""
    import numpy as np

    s = np.asarray(score, dtype=float)
    t = np.asarray(target, dtype=float)
    if s.shape != t.shape or s.ndim != 1:
        raise ValueError(f"score and target must be 1-D of one length, got {s.shape} and {t.shape}")
    if not 1 <= k <= len(s):
        raise ValueError(f"k={k} must be in 1..{len(s)}")
    s = np.where(np.isfinite(s), s, -np.inf)
    top_s = set(np.argsort(-s, kind="stable")[:k].tolist())
    top_t = set(np.argsort(-t, kind="stable")[:k].tolist())
    return len(top_s & top_t) / k


def analyse(frame: Any, signals: Sequence[str], *, target: str = "top1", k: int, n_boot: int,
            seed: int = 0) -> tuple[Any, list[Any]]:
    """Kendall / Spearman with bootstrap CIs (``analysis.correlation``) plus top-k overlap, per signal."""
    from analysis.correlation import correlation_table

    present = [s for s in signals if s in frame.columns]
    table, results = correlation_table(frame, present, target, n_boot=n_boot, seed=seed)
    table[f"top{k}_overlap"] = [top_k_overlap(frame[s].to_numpy(dtype=float), frame[target].to_numpy(dtype=float), k)
                                for s in present]
    return table, results


# ----------------------------------------------------------------------------- driver

PARTIAL = "rows.partial.jsonl"


def _study_key(study: Study) -> str:
    """What must match for a saved row to be reused: everything that shapes one network's evaluation."""
    d = dataclasses.asdict(study)
    d.pop("n_archs")  # more networks later reuse the first ones (seeded sampling is a prefix)
    d.pop("n_boot")
    return json.dumps(d, sort_keys=True, default=str)


def _load_partial(out: Path, study: Study, archs: Sequence[dict[str, Any]], *, log: Any) -> list[dict[str, Any]]:
    """Rows a previous (interrupted) run of the same study already wrote to ``out``: they are kept, not redone."""
    path = out / PARTIAL
    if not path.exists():
        return []
    key, rows, other = _study_key(study), {}, 0
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a crash
            continue
        row = rec.get("row", {})
        i = row.get("trial")
        if rec.get("study") != key or not isinstance(i, int):
            other += 1
            continue
        if i < len(archs) and rec.get("params") == json.loads(json.dumps(archs[i], default=str)):
            rows[i] = row
    if other:
        raise ValueError(f"{path} holds {other} row(s) of a different study setup; use another --out or delete the "
                         "file to start over")
    if rows:
        log(f"reusing {len(rows)} network(s) already evaluated in {path}")
    return list(rows.values())


def run(study: Study, *, out: Path, workers: int = 1, report: bool = True, log: Any = print) -> dict[str, Any]:
    """Sample, evaluate (``workers`` processes), write the run directory and the report; returns a summary."""
    import pandas as pd

    from lab.data import generate
    from lab.search.results import to_frame, write_table

    root = Path(study.data.root)
    if not root.exists():
        if study.synth is None:
            raise FileNotFoundError(f"dataset root {root} does not exist")
        root.parent.mkdir(parents=True, exist_ok=True)
        generate(root, study.synth)
    t0 = time.perf_counter()
    archs = sample_architectures(study.n_archs, seed=study.seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = _load_partial(out, study, archs, log=log)
    done = {r["trial"] for r in rows}
    jobs = [(i, p, study) for i, p in enumerate(archs) if i not in done]

    def record(row: dict[str, Any]) -> None:
        rows.append(row)
        with open(out / PARTIAL, "a") as fh:  # one line per network: a crash loses at most the running ones
            fh.write(json.dumps({"study": _study_key(study), "params": archs[row["trial"]], "row": row},
                                default=str) + "\n")
        log(f"[{len(rows)}/{study.n_archs}] network {row['trial']}: top1 {row['top1']:.1f} ({row['duration_s']:.0f}s)")

    if jobs and workers > 1:
        with mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(study.data,)) as pool:
            for row in pool.imap_unordered(evaluate_arch, jobs):
                record(row)
    elif jobs:
        _init_worker(study.data)
        for job in jobs:
            record(evaluate_arch(job))
    rows.sort(key=lambda r: r["trial"])
    wall = time.perf_counter() - t0  # this invocation only; reused rows carry their own duration_s
    frame = to_frame(rows)
    write_table(frame, out)
    meta = {
        "name": study.name, "kind": "nas", "description": __doc__.split("\n\n")[0],
        "objectives": [{"name": "top1", "direction": "maximize"}, {"name": "flops", "direction": "minimize"}],
        "dataset": dataclasses.asdict(study.data), "recipe": study.recipe.to_dict(), "base": space().base,
        "space": space().describe(), "proxy_validity": {"n_archs": study.n_archs, "short_epochs":
                                                        list(study.short_epochs), "zero_cost": list(study.zero_cost),
                                                        "top_k": study.top_k, "wall_s": wall, "workers": workers},
    }
    (out / "experiment.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    table, results = analyse(frame, study.signals(), k=study.top_k, n_boot=study.n_boot)
    table.to_csv(out / "proxy_validity.csv", index=False)
    (out / "proxy_validity.md").write_text(_markdown(table, study, wall, workers))
    usable = [r for r in results if r.n >= 3 and math.isfinite(r.tau)]
    if usable:
        from analysis.plot import correlation_figure

        correlation_figure(usable).savefig(out / "proxy_validity_scatter.png", dpi=110)
    report_path = None
    if report:
        from reports.report import ReportOptions, build_report

        report_path = build_report(out, options=ReportOptions(erf=False, bootstrap=study.n_boot,
                                                              svg=False)).index_html
    return {"out": out, "table": table, "wall_s": wall, "report": report_path,
            "frame": pd.DataFrame(frame)}


def _markdown(table: Any, study: Study, wall: float, workers: int) -> str:
    lines = [f"# Proxy validity ({study.name})", "",
             f"{study.n_archs} networks from mobilemamba_nas; reference = {study.recipe.epochs}-epoch proxy training; "
             f"wall {wall:.0f}s with {workers} worker(s).", "",
             f"| signal | n | Kendall tau [95% CI] | Spearman rho [95% CI] | top-{study.top_k} overlap |",
             "|---|---|---|---|---|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['x']} | {r['n']} | {r['kendall_tau']:.2f} [{r['tau_lo']:.2f}, {r['tau_hi']:.2f}] | "
                     f"{r['spearman_rho']:.2f} [{r['rho_lo']:.2f}, {r['rho_hi']:.2f}] | "
                     f"{r[f'top{study.top_k}_overlap']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", default="default", choices=SCALES)
    p.add_argument("--n-archs", type=int, default=None, help="override the scale's number of networks")
    p.add_argument("--ref-epochs", type=int, default=None, help="override the reference training's epochs")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (one torch thread each)")
    p.add_argument("--data", default=None, metavar="DIR", help="dataset root (generated when missing)")
    p.add_argument("--out", default=None, help="run directory (default runs/<study name>)")
    p.add_argument("--no-report", action="store_true")
    args = p.parse_args(argv)
    try:
        study = scale(args.scale, data_root=args.data)
        if args.n_archs is not None:
            study = dataclasses.replace(study, n_archs=args.n_archs)
        if args.ref_epochs is not None:
            study = dataclasses.replace(study, recipe=dataclasses.replace(study.recipe, epochs=args.ref_epochs))
        if args.workers < 1:
            raise ValueError(f"--workers {args.workers}: must be >= 1")
    except ValueError as exc:
        print(f"proxy_validity.py: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else ROOT / "runs" / study.name
    result = run(study, out=out, workers=args.workers, report=not args.no_report,
                 log=lambda m: print(m, file=sys.stderr, flush=True))
    print((out / "proxy_validity.md").read_text())
    print(f"wrote {out}" + (f"; report {result['report']}" if result["report"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
