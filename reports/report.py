"""Build ``runs/<exp>/report/``: index.html (self-contained), report.md, tables/ (CSV, LaTeX), figures/ (PNG, SVG).

``build_report(run_dir)`` is what ``lab report`` runs and what a sweep calls when it finishes.
Sections: summary and provenance; frontier plots (accuracy vs throughput / FLOPs / params); the
Pareto set; hypervolume; ERF maps of the knee, the best-accuracy trial and the baseline; the
ablation table (ablation runs); parameter importance (Optuna, when ``study.db`` exists); rank
correlations of zero-cost proxies; all trials. Every section states plainly when it has nothing
to show (empty run, every trial failed, one objective, too few trials) instead of failing.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.correlation import correlation_table
from analysis.erf import ErfResult, erf_map, erf_table, noise_images
from analysis.pareto import (
    Objective,
    as_objectives,
    compare_fronts,
    crowding_distance,
    hypervolume_history,
    knee_point,
    pareto_mask,
)
from analysis.plot import (
    ReferencePoint,
    correlation_figure,
    erf_grid_figure,
    hypervolume_figure,
    importance_figure,
    pareto_figure,
)
from analysis.tables import ablation_table, human

from .document import NOTE, WARN, Document
from .run import RunData, load_run

DEFAULT_OBJECTIVES = (Objective("top1", "maximize"), Objective("throughput", "maximize"))
COST_AXES = (("throughput", "maximize", "throughput (img/s)", False), ("flops", "minimize", "FLOPs", True),
             ("params", "minimize", "parameters", True))
TRIAL_COLUMNS = ("trial", "status", "reason", "config_id", "seed", "top1", "top5", "params", "flops", "throughput",
                 "latency_ms", "epochs", "train_seconds", "reused_from")


@dataclass(frozen=True)
class ReportOptions:
    """What to compute: ERF (costly on CPU) can be switched off or made cheaper."""

    erf: bool = True
    erf_images: int = 4
    erf_stage: int = -1
    erf_seed: int = 0
    bootstrap: int = 1000
    max_trial_rows: int = 2000
    svg: bool = True


@dataclass(frozen=True)
class ReportResult:
    """Paths written and the facts the report states (for tests and for a sweep's log)."""

    out_dir: Path
    index_html: Path
    report_md: Path
    files: tuple[Path, ...]
    facts: dict[str, Any] = field(default_factory=dict)


def build_report(
    run_dir: str | Path, *, out_dir: str | Path | None = None, options: ReportOptions | None = None,
    compare_with: str | Path | None = None, log: Callable[[str], None] | None = None,
) -> ReportResult:
    """Write the report of ``run_dir`` to ``out_dir`` (default ``run_dir/report``).

    ``compare_with`` names a second run directory with the same objectives: a section compares
    the two Pareto fronts (hypervolume of each and of the union, which points dominate).
    """
    opts = options or ReportOptions()
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.root / "report"
    doc = Document(out, svg=opts.svg)
    say = log or (lambda _msg: None)
    facts: dict[str, Any] = {}
    _summary(doc, run, facts)
    objs = _objectives(run)
    done = _scored(run, objs)
    facts["n_scored"] = len(done)
    say("frontier plots")
    front_idx, knee_row, best_row = _frontier(doc, run, objs, done, facts)
    _pareto_table(doc, run, objs, done, front_idx, knee_row, facts)
    _hypervolume(doc, run, objs, done, facts)
    if compare_with is not None:
        _comparison(doc, run, objs, done, load_run(compare_with), facts)
    say("ERF maps")
    _erf_section(doc, run, done, knee_row, best_row, opts, facts)
    if run.experiment.get("kind") == "ablation":
        _ablation(doc, run, facts)
    say("parameter importance")
    _importance(doc, run, objs, facts)
    say("rank correlations")
    _correlations(doc, run, opts, facts)
    _all_trials(doc, run, opts)
    title = f"Report: {run.name}"
    index = out / "index.html"
    index.write_text(doc.to_html(title=title), encoding="utf-8")
    md = out / "report.md"
    md.write_text(doc.to_markdown(title=title), encoding="utf-8")
    return ReportResult(out_dir=out, index_html=index, report_md=md, files=(index, md, *doc.files), facts=facts)


# ---------------------------------------------------------------------------- helpers


def _objectives(run: RunData) -> tuple[Objective, ...]:
    spec = run.experiment.get("objectives")
    return as_objectives(spec) if spec else DEFAULT_OBJECTIVES


def _scored(run: RunData, objs: tuple[Objective, ...]) -> pd.DataFrame:
    """Complete trials with every objective present and finite, each result once: a trial that reused an
    identical earlier configuration's result (``reused_from``) is left out when that trial is here too,
    so fronts, the Pareto table and the knee do not list one network twice."""
    done = run.complete
    if not len(done):
        return done
    missing = [o.name for o in objs if o.name not in done.columns]
    if missing:
        return done.iloc[0:0]
    vals = done[[o.name for o in objs]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    done = done[np.isfinite(vals).all(1)]
    if "reused_from" in done.columns:
        src = pd.to_numeric(done["reused_from"], errors="coerce")
        done = done[~(src.notna() & src.isin(set(done["trial"])))]
    return done


def _values(frame: pd.DataFrame, objs: tuple[Objective, ...]) -> np.ndarray:
    return frame[[o.name for o in objs]].to_numpy(dtype=float).reshape(-1, len(objs))


def _knobs(run: RunData) -> list[str]:
    """Sampled ``p.*`` columns that actually vary in this run (all of them if none varies)."""
    cols = [c for c in run.trials.columns if str(c).startswith("p.")]
    varying = [c for c in cols if run.trials[c].astype(str).nunique(dropna=False) > 1]
    return varying or cols


def _accuracy_column(run: RunData, objs: tuple[Objective, ...]) -> str | None:
    if "top1" in run.trials.columns:
        return "top1"
    return next((o.name for o in objs if o.direction == "maximize" and o.name in run.trials.columns), None)


# ---------------------------------------------------------------------------- sections


def _summary(doc: Document, run: RunData, facts: dict[str, Any]) -> None:
    exp = run.experiment
    doc.section("Summary and provenance", "summary")
    counts = run.status_counts()
    n = len(run.trials)
    facts["n_trials"], facts["status_counts"] = n, counts
    objs = _objectives(run)
    facts["objectives"] = [(o.name, o.direction) for o in objs]
    if exp.get("description"):
        doc.para(str(exp["description"]))
    rows = [
        ("experiment", run.name), ("kind", exp.get("kind", "unknown")),
        ("objectives", ", ".join(f"{o.name} ({o.direction})" for o in objs)),
        ("base preset", exp.get("base", "-")), ("git sha", exp.get("git_sha", "-")),
        ("started", exp.get("started", "-")), ("finished", exp.get("finished", "-")),
        ("trials", f"{n} (" + ", ".join(f"{k}: {v}" for k, v in counts.items()) + ")" if n else "0"),
        ("run directory", str(run.root)),
    ]
    for key in ("dataset", "recipe", "constraints", "env"):
        if key in exp:
            rows.append((key, json.dumps(exp[key], sort_keys=True) if not isinstance(exp[key], str) else exp[key]))
    doc.table(pd.DataFrame(rows, columns=["field", "value"]))
    for note in run.notes:
        doc.para(note, kind=WARN)
    if n == 0:
        facts["state"] = "empty"
        doc.para("This run has no trials: there is nothing to analyse yet. The sections below say so one by one.",
                 kind=WARN)
    elif counts.get("complete", 0) == 0:
        facts["state"] = "all_failed"
        doc.para(f"No trial completed: all {n} trials ended as "
                 + ", ".join(f"{k} ({v})" for k, v in counts.items()) + ". Reasons are tabulated below.", kind=WARN)
    elif n == 1:
        facts["state"] = "single_trial"
        doc.para("This run has a single trial: the Pareto set is that trial and there is no spread to compare.",
                 kind=NOTE)
    else:
        facts["state"] = "ok"
    if len(objs) == 1:
        facts["single_objective"] = True
        doc.para(f"Single-objective run ({objs[0].name}, {objs[0].direction}): the Pareto set is the best trial; the "
                 "frontier plots still show the accuracy/cost trade-off of the sampled trials, for information.",
                 kind=NOTE)
    if n:
        bad = run.trials[run.trials["status"] != "complete"]
        if len(bad):
            reasons = bad.assign(reason=bad.get("reason", pd.Series("", index=bad.index)).replace("", "(none given)"))
            table = reasons.groupby(["status", "reason"]).size().reset_index(name="trials")
            doc.table(table, name="not_complete", caption="Trials that did not complete, by status and reason")
        reused = run.trials["reused_from"].notna().sum() if "reused_from" in run.trials.columns else 0
        if reused:
            doc.para(f"{int(reused)} trial(s) reused the result of an identical earlier configuration (see "
                     "'reused_from' in the trials table).", kind=NOTE)
        _epochs_saved(doc, run, facts)


def _epochs_saved(doc: Document, run: RunData, facts: dict[str, Any]) -> None:
    """One line on multi-objective early stopping (``status == 'stopped'``): trials stopped, epochs saved."""
    full = (run.experiment.get("recipe") or {}).get("epochs")
    stopped = run.trials[run.trials["status"] == "stopped"]
    if not len(stopped) or not isinstance(full, int) or "epochs" not in run.trials.columns:
        return
    trained = run.trials[run.trials["status"].isin(["complete", "stopped", "pruned"])]
    if "reused_from" in trained.columns:
        trained = trained[trained["reused_from"].isna()]
    spent = int(trained["epochs"].clip(lower=0).sum())
    saved = int((full - stopped["epochs"].clip(lower=0, upper=full)).sum())
    facts["epochs_saved"], facts["epochs_trained"] = saved, spent
    doc.para(f"Multi-objective early stopping stopped {len(stopped)} trial(s) at a rung: {saved} of {saved + spent} "
             f"epochs saved ({100 * saved / max(1, saved + spent):.0f}%). Stopped trials are left out of every front.",
             kind=NOTE)


def _frontier(
    doc: Document, run: RunData, objs: tuple[Objective, ...], done: pd.DataFrame, facts: dict[str, Any]
) -> tuple[np.ndarray, pd.Series | None, pd.Series | None]:
    doc.section("Frontier plots", "frontier")
    acc = _accuracy_column(run, objs)
    front_idx = np.zeros(0, dtype=int)
    knee_row = best_row = None
    if not len(done):
        doc.para("No completed trial with every objective measured: no frontier to draw.", kind=WARN)
        return front_idx, None, None
    vals = _values(done, objs)
    front_mask = pareto_mask(vals, objs)
    front_idx = np.nonzero(front_mask)[0]
    knee = knee_point(vals[front_mask], objs)
    knee_row = done.iloc[int(front_idx[knee.index])]
    facts["knee_trial"], facts["knee_method"] = int(knee_row["trial"]), knee.method
    if acc is not None:
        accs = pd.to_numeric(done[acc], errors="coerce").to_numpy(dtype=float)
        if np.isfinite(accs).any():
            best_row = done.iloc[int(np.nanargmax(accs))]
            facts["best_trial"] = int(best_row["trial"])
    knee_text = (f"Knee (trial {int(knee_row['trial'])}): the Pareto point farthest from the hyperplane through the "
                 "front's extreme points in objective space normalised to [0, 1] (Das 1999)"
                 if knee.method == "hyperplane" else
                 f"Knee (trial {int(knee_row['trial'])}): the Pareto point nearest the ideal point in objective space "
                 "normalised to [0, 1] (the front has too few distinct extremes for the hyperplane method)")
    doc.para(knee_text + ".")
    if acc is None:
        doc.para("No accuracy column (top1 or a maximised objective): frontier plots are skipped.", kind=WARN)
        return front_idx, knee_row, best_row
    facts["frontier_figures"] = []
    refs_note = ""
    if run.reference_points:
        notes = {str(r.get("note", "")) for r in run.reference_points if r.get("note")}
        refs_note = "; ".join(sorted(notes)) or "reference models"
    for col, direction, label, log_x in COST_AXES:
        if col not in done.columns:
            doc.para(f"No '{col}' column: the {acc} vs {label} plot is skipped.", kind=NOTE)
            continue
        x = pd.to_numeric(done[col], errors="coerce").to_numpy(dtype=float)
        y = pd.to_numeric(done[acc], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(x) & np.isfinite(y)
        if not ok.any():
            doc.para(f"No completed trial has both {acc} and {col}: plot skipped.", kind=NOTE)
            continue
        pos = np.nonzero(ok)[0]
        where = {int(p): i for i, p in enumerate(pos)}
        refs = [ReferencePoint(str(r["name"]), _num(r.get(col)), _num(r.get(acc)), str(r.get("note", "")))
                for r in run.reference_points]
        fig = pareto_figure(
            x[ok], y[ok], directions=(direction, "maximize"), x_label=label, y_label=acc,
            knee=where.get(int(front_idx[knee.index])), best=where.get(_position(done, best_row)),
            references=refs, reference_note=refs_note, labels=done["config_id"].to_numpy()[ok]
            if "config_id" in done.columns else None, log_x=log_x and bool((x[ok] > 0).all()),
            title=f"{acc} vs {label} (red: non-dominated in these two columns)",
        )
        name = f"pareto_{acc}_vs_{col}"
        doc.figure(fig, name=name, caption=f"{acc} vs {label}: {int(ok.sum())} completed trials; red = 2-D Pareto "
                   "front of this pair, star = knee of the full objective set, circle = best accuracy"
                   + (f"; black = reference models ({refs_note})" if refs else ""))
        facts["frontier_figures"].append(name)
    if not run.reference_points:
        doc.para("No reference_points.json in the run: the official variants are not drawn.", kind=NOTE)
    return front_idx, knee_row, best_row


def _num(v: Any) -> float:
    try:
        return float(v) if v is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _position(frame: pd.DataFrame, row: pd.Series | None) -> int | None:
    if row is None:
        return None
    hits = np.nonzero(frame["trial"].to_numpy() == row["trial"])[0]
    return int(hits[0]) if len(hits) else None


def _pareto_table(
    doc: Document, run: RunData, objs: tuple[Objective, ...], done: pd.DataFrame, front_idx: np.ndarray,
    knee_row: pd.Series | None, facts: dict[str, Any],
) -> None:
    doc.section("Pareto set", "pareto-set")
    if not len(front_idx):
        doc.para("No Pareto set: no completed trial with every objective measured.", kind=WARN)
        facts["pareto_trials"] = []
        return
    front = done.iloc[front_idx].copy()
    front["crowding"] = crowding_distance(_values(front, objs), objs) if len(front) else []
    front["knee"] = front["trial"] == (knee_row["trial"] if knee_row is not None else -1)
    cols = [c for c in ("trial", "config_id", "seed") if c in front.columns]
    cols += [o.name for o in objs] + [c for c in ("top1", "params", "flops", "throughput", "latency_ms")
                                      if c in front.columns and c not in {o.name for o in objs}]
    cols += ["crowding", "knee"] + _knobs(run)
    first = objs[0]
    front = front.sort_values(first.name, ascending=first.direction == "minimize", kind="stable")
    facts["pareto_trials"] = [int(t) for t in front["trial"]]
    table = front[cols].reset_index(drop=True)
    for c in ("params", "flops"):
        if c in table.columns:
            table[c] = table[c].map(lambda v: human(float(v)))
    doc.table(table, name="pareto_set", csv_frame=front[cols], highlight=list(front["knee"]),
              caption=f"{len(front)} non-dominated trial(s) over {', '.join(o.name for o in objs)}; "
                      "highlighted = knee; crowding = NSGA-II crowding distance (inf at the extremes)")


def _reference_point(run: RunData, objs: tuple[Objective, ...], vals: np.ndarray) -> tuple[np.ndarray, str]:
    spec = run.experiment.get("reference_point")
    if isinstance(spec, dict) and all(o.name in spec for o in objs):
        return np.array([float(spec[o.name]) for o in objs]), "from experiment.json"
    if isinstance(spec, (list, tuple)) and len(spec) == len(objs):
        return np.array([float(v) for v in spec]), "from experiment.json"
    worst = np.array([vals[:, k].min() if o.direction == "maximize" else vals[:, k].max()
                      for k, o in enumerate(objs)])
    best = np.array([vals[:, k].max() if o.direction == "maximize" else vals[:, k].min()
                     for k, o in enumerate(objs)])
    span = np.abs(best - worst)
    span = np.where(span > 0, span, np.where(np.abs(worst) > 0, np.abs(worst), 1.0))
    sign = np.array([-1.0 if o.direction == "maximize" else 1.0 for o in objs])
    ref = worst + sign * 0.1 * span
    return ref, ("derived from this run: each objective's worst completed value moved 10% of its range outwards. "
                 "Set reference_point in experiment.json to compare hypervolumes across runs")


def _hypervolume(doc: Document, run: RunData, objs: tuple[Objective, ...], done: pd.DataFrame,
                 facts: dict[str, Any]) -> None:
    doc.section("Hypervolume", "hypervolume")
    if not len(done):
        doc.para("No hypervolume: no completed trial with every objective measured.", kind=WARN)
        return
    vals = _values(done, objs)
    ref, how = _reference_point(run, objs, vals)
    hist = hypervolume_history(vals, ref, objs)
    facts["hypervolume"], facts["reference_point"] = float(hist[-1]), [float(v) for v in ref]
    ref_text = ", ".join(f"{o.name} = {v:.6g}" for o, v in zip(objs, ref, strict=True))
    doc.para(f"Final hypervolume {hist[-1]:.6g} over {len(vals)} completed trial(s), objectives "
             f"{', '.join(f'{o.name} ({o.direction})' for o in objs)}, reference point {ref_text} ({how}).")
    if len(objs) == 1:
        doc.para("With one objective the hypervolume is the distance from the reference value to the best value.",
                 kind=NOTE)
    doc.figure(hypervolume_figure(done["trial"].to_numpy(), hist, reference=ref,
                                  objective_names=[o.name for o in objs]),
               name="hypervolume", caption=f"Hypervolume of the Pareto front after each completed trial "
                                           f"(reference point {ref_text})")
    doc.table(pd.DataFrame({"trial": done["trial"].to_numpy(), "hypervolume": hist}), name="hypervolume",
              caption="Hypervolume after each completed trial", max_rows=30)


def _comparison(doc: Document, run: RunData, objs: tuple[Objective, ...], done: pd.DataFrame, other: RunData,
                facts: dict[str, Any]) -> None:
    doc.section(f"Comparison with {other.name}", "comparison")
    other_objs = _objectives(other)
    if [(o.name, o.direction) for o in other_objs] != [(o.name, o.direction) for o in objs]:
        doc.para(f"{other.name} optimises {', '.join(f'{o.name} ({o.direction})' for o in other_objs)}, not the "
                 "same objectives as this run: fronts are not comparable.", kind=WARN)
        return
    theirs = _scored(other, objs)
    if not len(done) or not len(theirs):
        doc.para("One of the two runs has no completed trial with every objective: nothing to compare.", kind=WARN)
        return
    a, b = _values(done, objs), _values(theirs, objs)
    ref, how = _reference_point(run, objs, np.vstack([a, b]))
    cmp = compare_fronts(a, b, objs, reference=ref)
    facts["comparison"] = cmp.summary()
    ref_text = ", ".join(f"{o.name} = {v:.6g}" for o, v in zip(objs, ref, strict=True))
    origin = "from experiment.json" if how.startswith("from") else "worst of each objective over both runs, 10% out"
    doc.para(f"Hypervolumes against one reference point ({ref_text}; {origin}). Coverage of the other = share of "
             "the other run's front weakly dominated by this run's front (Zitzler's C).")
    summary = cmp.summary()
    table = pd.DataFrame([
        {"run": f"A: {run.name}", "front size": summary["front_a"], "hypervolume": cmp.hv_a,
         "front points dominating the other's": summary["a_points_dominating_b"],
         "coverage of the other": cmp.coverage_a_over_b},
        {"run": f"B: {other.name}", "front size": summary["front_b"], "hypervolume": cmp.hv_b,
         "front points dominating the other's": summary["b_points_dominating_a"],
         "coverage of the other": cmp.coverage_b_over_a},
        {"run": "A ∪ B", "front size": int(pareto_mask(np.vstack([a, b]), objs).sum()), "hypervolume": cmp.hv_union,
         "front points dominating the other's": None, "coverage of the other": None},
    ])
    doc.table(table, name="front_comparison", caption=f"Pareto fronts of {run.name} (A) and {other.name} (B)")
    for label, frame, idx in ((run.name, done, cmp.a_dominating), (other.name, theirs, cmp.b_dominating)):
        if len(idx):
            doc.para(f"{label}: trial(s) {', '.join(str(int(t)) for t in frame['trial'].to_numpy()[idx])} dominate at "
                     "least one front point of the other run.")


# ---------------------------------------------------------------------------- ERF


def _erf_section(
    doc: Document, run: RunData, done: pd.DataFrame, knee_row: pd.Series | None, best_row: pd.Series | None,
    opts: ReportOptions, facts: dict[str, Any],
) -> None:
    doc.section("Effective receptive fields", "erf")
    facts["erf_maps"] = []
    if not opts.erf:
        doc.para("ERF maps were switched off for this report (--no-erf).", kind=NOTE)
        return
    picks: list[tuple[str, Any]] = []
    for label, row in (("knee", knee_row), ("best accuracy", best_row)):
        if row is None:
            continue
        same = next((i for i, (_, r) in enumerate(picks) if r["trial"] == row["trial"]), None)
        if same is None:
            picks.append((f"{label} (trial {int(row['trial'])})", row))
        else:  # the knee is also the most accurate trial: one map, both names
            picks[same] = (f"{picks[same][0].split(' (')[0]} = {label} (trial {int(row['trial'])})", row)
    baseline = _baseline(run)
    if baseline is not None:
        picks.append(baseline)
    if not picks:
        doc.para("No ERF maps: there is no completed trial and no baseline preset to draw.", kind=WARN)
        return
    try:
        import lab
        from lab.config import ModelConfig
    except Exception as exc:  # the model space is another package; say why instead of failing the report
        doc.para(f"No ERF maps: the lab model space could not be imported ({exc}).", kind=WARN)
        return
    results: list[ErfResult] = []
    for label, what in picks:
        try:
            if isinstance(what, str):  # a preset name
                cfg = lab.get_config(what)
                ckpt = None
            else:
                if "config_json" not in what or not str(what["config_json"]).strip():
                    doc.para(f"{label}: no config_json in the trials table, ERF skipped.", kind=NOTE)
                    continue
                cfg = ModelConfig.from_dict(json.loads(what["config_json"]))
                ckpt = run.checkpoint(int(what["trial"]))
            images = noise_images(opts.erf_images, cfg.img_size, in_chans=cfg.in_chans, seed=opts.erf_seed)
            torch_seed(opts.erf_seed)
            model = lab.build_model(cfg)
            results.append(erf_map(model, images, stage=opts.erf_stage, label=label, weights="initialisation",
                                   source="N(0,1) noise"))
            if ckpt is not None:
                lab.load_checkpoint(model, ckpt)
                results.append(erf_map(model, images, stage=opts.erf_stage, label=label,
                                       weights="trained (checkpoint)", source="N(0,1) noise"))
        except Exception as exc:  # one bad config must not sink the report
            doc.para(f"{label}: ERF failed ({type(exc).__name__}: {exc}).", kind=WARN)
    if not results:
        return
    trained = any(r.weights.startswith("trained") for r in results)
    doc.para(
        "RepLKNet protocol: gradient of the ReLU'd central location of the "
        f"{'last' if opts.erf_stage == -1 else f'index {opts.erf_stage}'} stage (summed over channels) with respect "
        f"to the input, ReLU'd, summed over input channels and averaged over {opts.erf_images} images of N(0,1) noise "
        "(not dataset images); log10(x+1) normalisation scaled to [0, 1]. Area ratio at t = the smallest centred "
        "square holding more than t of the map's mass, over the image area. "
        + ("Maps are shown at initialisation and after training where a checkpoint exists."
           if trained else "No trial checkpoint (trials/<n>/checkpoint.pt) exists: every map is at initialisation "
           "(random weights), not after training."), kind=NOTE)
    facts["erf_maps"] = [f"{r.label} [{r.weights}]" for r in results]
    doc.figure(erf_grid_figure(results, ncols=min(3, len(results))), name="erf_grid",
               caption="ERF maps (" + "; ".join(f"{r.label}: {r.describe()}" for r in results) + ")")
    table = pd.DataFrame(erf_table(results))
    doc.table(table, name="erf_area_ratios", caption="High-contribution area ratios (larger = larger ERF)")


def torch_seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def _baseline(run: RunData) -> tuple[str, Any] | None:
    """The ablation's baseline trial, else the experiment's base preset (if it is not already a trial)."""
    exp = run.experiment
    ab = exp.get("ablation") or {}
    done = run.complete
    if isinstance(ab, dict) and ab.get("baseline") and len(done):
        match = np.ones(len(done), dtype=bool)
        for k, v in ab["baseline"].items():
            if k in done.columns:
                match &= done[k].astype(str).to_numpy() == str(v)
        if match.any():
            row = done[match].iloc[0]
            return f"baseline (trial {int(row['trial'])})", row
    base = exp.get("base")
    if base:
        return f"baseline preset {base}", str(base)
    return None


# ---------------------------------------------------------------------------- ablation, importance, correlations


def _ablation(doc: Document, run: RunData, facts: dict[str, Any]) -> None:
    doc.section("Ablation", "ablation")
    spec = run.experiment.get("ablation") or {}
    factors = list(spec.get("factors") or [])
    if not factors:
        doc.para("experiment.json has kind 'ablation' but no ablation.factors: no table.", kind=WARN)
        return
    if not len(run.trials):
        doc.para("No trials: no ablation table.", kind=WARN)
        return
    try:
        table = ablation_table(run.trials, factors=factors, baseline=spec.get("baseline"))
    except (KeyError, ValueError) as exc:
        doc.para(f"Ablation table not built: {exc}", kind=WARN)
        return
    facts["ablation_rows"] = len(table.frame)
    head, rows = table.display()
    seeds = table.frame["n"]
    doc.para(f"{len(table.frame)} setting(s) of {', '.join(f.removeprefix('p.') for f in factors)}; accuracy is "
             f"mean ± std over {int(seeds.min()) if len(seeds) else 0}-{int(seeds.max()) if len(seeds) else 0} "
             "completed seed(s) per setting; costs are medians; Δ is vs the baseline row (costs in %).")
    if not table.baseline_found:
        doc.para("The baseline given in experiment.json matches no setting: Δ columns are empty.", kind=WARN)
    doc.table(pd.DataFrame(rows, columns=head), name="ablation", csv_frame=table.frame,
              latex=table.to_latex(caption=f"Ablation: {run.name}", label=f"tab:{run.name}"),
              highlight=list(table.frame["is_baseline"]))
    (doc.out_dir / "tables" / "ablation.md").write_text(table.to_markdown())


def _importance(doc: Document, run: RunData, objs: tuple[Objective, ...], facts: dict[str, Any]) -> None:
    doc.section("Parameter importance", "importance")
    if run.study_db is None:
        doc.para("No study.db in the run directory: parameter importance needs the Optuna study and is not computed.",
                 kind=NOTE)
        return
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = f"sqlite:///{run.study_db}"
        names = optuna.study.get_all_study_names(storage)
        name = run.name if run.name in names else (names[0] if len(names) == 1 else None)
        if name is None:
            doc.para(f"study.db has studies {names}, none named {run.name!r}: importance not computed.", kind=WARN)
            return
        study = optuna.load_study(study_name=name, storage=storage)
        n_done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        if n_done < 2:
            doc.para(f"The study has {n_done} completed trial(s): importance needs at least two.", kind=NOTE)
            return
        result: dict[str, dict[str, float]] = {}
        directions = study.directions
        for i, d in enumerate(directions):
            sign = -1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0
            label = objs[i].name if i < len(objs) else f"objective {i}"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result[label] = optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                    target=lambda t, i=i, sign=sign: sign * t.values[i])
    except Exception as exc:
        doc.para(f"Parameter importance failed ({type(exc).__name__}: {exc}).", kind=WARN)
        return
    result = {k: v for k, v in result.items() if v}
    if not result:
        doc.para("The study's trials have no varying parameters: nothing to rank.", kind=NOTE)
        return
    facts["importance"] = result
    doc.para(f"Optuna PED-ANOVA importance (optuna.importance.PedAnovaImportanceEvaluator, normalised to sum 1) of "
             f"each sampled parameter for reaching the top 10% of each objective, from study '{name}' "
             f"({n_done} completed trials).")
    doc.figure(importance_figure(result), name="importance", caption="Parameter importance per objective (PED-ANOVA)")
    frame = pd.DataFrame(result).rename_axis("parameter").reset_index()
    doc.table(frame, name="importance", caption="Parameter importance per objective")


def _correlations(doc: Document, run: RunData, opts: ReportOptions, facts: dict[str, Any]) -> None:
    doc.section("Rank correlations of proxies", "correlations")
    done = run.complete
    proxies = [c for c in run.trials.columns if str(c).startswith("zc.")]
    target = "top1" if "top1" in run.trials.columns else None
    if not proxies:
        doc.para("No zero-cost scores (zc.* columns) in this run: no proxy correlations.", kind=NOTE)
        return
    if target is None or not len(done):
        doc.para("No completed trials with top1: proxies cannot be correlated with trained accuracy.", kind=NOTE)
        return
    cols = proxies + [c for c in ("params", "flops") if c in done.columns]
    table, results = correlation_table(done, cols, target, n_boot=opts.bootstrap, seed=0)
    usable = [r for r in results if r.n >= 3 and math.isfinite(r.tau)]
    facts["correlations"] = {r.x: r.tau for r in results}
    doc.para(f"Kendall τ-b and Spearman ρ between each score and {target} over completed trials, with "
             f"{opts.bootstrap}-resample percentile bootstrap 95% intervals; params and FLOPs are included as naive "
             "baselines a proxy should beat.")
    doc.table(table, name="rank_correlations", caption=f"Rank correlation with {target}")
    if usable:
        doc.figure(correlation_figure(usable), name="proxy_scatter", caption=f"Proxy scores vs {target}")
    else:
        doc.para("Fewer than 3 completed trials with both scores (or a constant score): no scatter plots.", kind=NOTE)


def _all_trials(doc: Document, run: RunData, opts: ReportOptions) -> None:
    doc.section("All trials", "trials")
    if not len(run.trials):
        doc.para("No trials.", kind=NOTE)
        return
    cols = [c for c in TRIAL_COLUMNS if c in run.trials.columns] + _knobs(run)
    cols += [c for c in run.trials.columns if str(c).startswith("zc.")]
    doc.table(run.trials[cols].reset_index(drop=True), name="trials", csv_frame=run.trials,
              max_rows=opts.max_trial_rows, caption=f"{len(run.trials)} trial(s); every column in tables/trials.csv")
