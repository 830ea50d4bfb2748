"""One trial, backend-independent: knobs -> config -> constraints -> duplicate check -> training -> row.

Order matters and is the point of this module: the config is built and validated first (an
invalid combination is an *infeasible* row carrying the ``ConfigError`` message), costs are
measured and constraints checked *before* any training (infeasible rows have no training
time), then an identical earlier trial (same ``config_id``, recipe, seeds and data) is reused
instead of retrained. Only then does the proxy train, reporting each epoch to the backend's
``on_epoch`` hook, which may stop it (pruned). Every outcome is one row of the run table.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from lab.config import ConfigError, config_id
from lab.search.experiment import Experiment
from lab.search.space import SpaceError, column_value

COMPLETE, PRUNED, INFEASIBLE, FAILED, STOPPED = "complete", "pruned", "infeasible", "failed", "stopped"
STATUSES = (COMPLETE, PRUNED, INFEASIBLE, FAILED, STOPPED)

BASE_COLUMNS = (
    "trial", "status", "reason", "config_id", "config_json", "seed", "top1", "top5", "params", "flops",
    "throughput", "latency_ms", "train_seconds", "epochs", "epoch_top1", "reused_from", "recipe_id", "dup_key",
    "measure_seconds", "duration_s", "git_sha", "env",
)
"""Fixed columns of ``trials.parquet``; ``p.<knob>`` and ``zc.<proxy>`` columns follow them."""

OnEpoch = Callable[[int, float], "bool | str"]
"""``on_epoch(epoch, top1)``: ``True`` prunes the trial (status ``pruned``); a non-empty string stops it
with status ``stopped`` and that string as the reason (multi-objective early stopping, ``mo_asha``)."""
FindDuplicate = Callable[[str], "Mapping[str, Any] | None"]


def zero_cost_available(name: str) -> bool:
    """Whether ``lab.train.zero_cost`` provides the proxy ``name`` (the module is optional)."""
    try:
        from lab.train import zero_cost
    except ImportError:
        return False
    names = getattr(zero_cost, "PROXIES", None) or getattr(zero_cost, "ZERO_COST_PROXIES", None) or {}
    return name in names


def zero_cost_scores(model: torch.nn.Module, data: Any, names: tuple[str, ...], *, seed: int) -> dict[str, float]:
    """Scores of the untrained ``model`` from one minibatch (``lab.train.zero_cost``)."""
    from lab.train import zero_cost

    x, y = next(data.train_batches(min(64, data.train_images.shape[0]), seed=seed))
    scores = zero_cost.zero_cost_scores(copy.deepcopy(model), x, y, proxies=names)  # proxies may alter weights
    return {name: float(v) for name, v in scores.items()}


class WorkerContext:
    """What one worker process keeps between trials: the experiment, its data (loaded once), and
    the environment record written into every row."""

    def __init__(self, experiment: Experiment, *, cache_dir: str | Path | None = ".cache/measure",
                 threads: int | None = None, data: Any = None) -> None:
        self.experiment = experiment
        self.cache_dir = cache_dir
        self.threads = threads
        self._data: Any = data
        self._env: dict[str, Any] | None = None

    @property
    def data(self) -> Any:
        if self._data is None:
            self._data = load_data(self.experiment)
        return self._data

    @property
    def env(self) -> dict[str, Any]:
        if self._env is None:
            from lab.measure.env import environment

            self._env = environment(device="cpu", threads=self.threads or torch.get_num_threads())
            self._env.pop("timestamp", None)
        return self._env


def load_data(exp: Experiment) -> Any:
    """The experiment's ``ProxyData``; generates the synthetic dataset first when ``exp.synth`` is
    set and ``exp.data.root`` does not exist yet."""
    from lab.data import generate, load_proxy_data

    root = Path(exp.data.root)
    if not root.exists():
        if exp.synth is None:
            raise FileNotFoundError(f"dataset root {root} does not exist; create it (synthetic: "
                                    f"`lab data synth --out {root}`) or fix data.root in the experiment")
        root.parent.mkdir(parents=True, exist_ok=True)
        try:
            generate(root, exp.synth)
        except FileExistsError:  # another worker generated it meanwhile
            pass
    return load_proxy_data(exp.data, progress=False)


def trial_seeds(exp: Experiment, params: Mapping[str, Any]) -> tuple[int, ...]:
    """The training seeds of one trial: a ``recipe.seed`` knob's value alone (one row per seed, as
    ablation tables need), else the experiment's ``seeds`` (one row, mean over them)."""
    if "recipe.seed" in params:
        return (int(params["recipe.seed"]),)
    return tuple(exp.seeds)


def empty_row(trial: int, params: Mapping[str, Any], *, seed: int, env: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "trial": int(trial), "status": FAILED, "reason": "", "config_id": "", "config_json": "", "seed": int(seed),
        "top1": math.nan, "top5": math.nan, "params": -1, "flops": -1, "throughput": math.nan,
        "latency_ms": math.nan, "train_seconds": 0.0, "epochs": 0, "epoch_top1": "[]", "reused_from": math.nan,
        "recipe_id": "", "dup_key": "", "measure_seconds": 0.0, "duration_s": 0.0,
        "git_sha": str(env.get("git_sha") or ""), "env": json.dumps(dict(env), sort_keys=True, default=str),
    }
    for key, value in params.items():
        row[f"p.{key}"] = column_value(value)
    return row


def evaluate(
    ctx: WorkerContext,
    params: Mapping[str, Any],
    *,
    trial: int,
    on_epoch: OnEpoch | None = None,
    find_duplicate: FindDuplicate | None = None,
    on_partial: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run one trial of ``ctx.experiment`` with the decoded knob values ``params``; never raises for a
    bad sample or a failed training (those are rows), only for ``KeyboardInterrupt``/``SystemExit``.
    ``on_partial`` receives the row (costs filled in) just before training starts."""
    exp = ctx.experiment
    t_start = time.perf_counter()
    row = empty_row(trial, params, seed=trial_seeds(exp, params)[0], env=ctx.env)
    try:
        _evaluate(ctx, exp, params, row, on_epoch, find_duplicate, on_partial)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - a crashing trial is a 'failed' row, the sweep goes on
        row["status"] = FAILED
        row["reason"] = f"{type(exc).__name__}: {exc}"
        row["traceback"] = traceback.format_exc(limit=8)
    row["duration_s"] = time.perf_counter() - t_start
    row.pop("traceback", None)
    return row


def _evaluate(ctx: WorkerContext, exp: Experiment, params: Mapping[str, Any], row: dict[str, Any],
              on_epoch: OnEpoch | None, find_duplicate: FindDuplicate | None,
              on_partial: Callable[[dict[str, Any]], None] | None = None) -> None:
    from lab.models import build_model

    data = ctx.data
    seeds = trial_seeds(exp, params)
    # 1. config and recipe: an invalid combination is infeasible, with the validator's message
    try:
        cfg = exp.space.to_config(params)
        cfg = cfg.replace(num_classes=data.num_classes, img_size=data.resolution)
        recipe = exp.space.to_recipe(params, exp.recipe)
        recipe = dataclasses.replace(recipe, seed=seeds[0])
        torch.manual_seed(seeds[0])
        model = build_model(cfg)
    except (ConfigError, SpaceError, ValueError) as exc:
        row["status"], row["reason"] = INFEASIBLE, f"invalid config: {exc}"
        return
    cid = config_id(cfg)
    row["config_id"] = cid
    row["config_json"] = json.dumps(cfg.to_dict(), sort_keys=True)
    row["recipe_id"] = recipe.recipe_id()
    row["dup_key"] = f"{cid}|{row['recipe_id']}|{','.join(map(str, seeds))}|{data.fingerprint}"

    # 2. costs, then constraints: never train a network that breaks a budget
    t0 = time.perf_counter()
    costs = count_costs_for(ctx, model, cid, data.resolution)
    row["params"], row["flops"] = int(costs["params"]), int(costs["flops"])
    reasons = exp.constraints.violations(row)
    measure = exp.space.to_measure(params, exp.measure)
    if not reasons and (measure.timing or exp.constraints.needs_timing):
        from lab.search.measure import time_model

        spec = measure if measure.timing else dataclasses.replace(measure, timing=True)
        row.update(time_model(model, config_id=cid, res=data.resolution, spec=spec, cache_dir=ctx.cache_dir))
        reasons = exp.constraints.violations(row)
    row["measure_seconds"] = time.perf_counter() - t0
    if reasons:
        row["status"], row["reason"] = INFEASIBLE, "constraint: " + "; ".join(reasons)
        return

    # 3. duplicates: same network, recipe, seeds and data -> reuse the earlier result
    if find_duplicate is not None:
        prev = find_duplicate(row["dup_key"])
        if prev is not None:
            for key in ("top1", "top5", "epochs", "epoch_top1"):
                row[key] = prev.get(key, row[key])
            for key, value in prev.items():
                if key.startswith("zc."):
                    row[key] = value
            row["reused_from"] = float(prev["trial"])
            row["status"] = prev["status"]
            row["reason"] = f"duplicate of trial {int(prev['trial'])}" + (
                f" ({prev['reason']})" if prev.get("reason") else "")
            return

    # 4. zero-cost scores on the untrained network
    if exp.zero_cost:
        for name, score in zero_cost_scores(model, data, exp.zero_cost, seed=seeds[0]).items():
            row[f"zc.{name}"] = score
        torch.manual_seed(seeds[0])
        model = build_model(cfg)

    # 5. proxy training, one run per seed, pruning hooked on the first
    if not exp.needs_training:
        row["status"] = COMPLETE
        return
    if on_partial is not None:
        on_partial(dict(row))
    _train(ctx, exp, cfg, recipe, model, row, on_epoch, seeds=seeds)


def count_costs_for(ctx: WorkerContext, model: torch.nn.Module, cid: str, res: int) -> dict[str, Any]:
    from lab.search.measure import count_costs

    return count_costs(model, config_id=cid, res=res, cache_dir=ctx.cache_dir)


def _train(ctx: WorkerContext, exp: Experiment, cfg: Any, recipe: Any, model: torch.nn.Module,
           row: dict[str, Any], on_epoch: OnEpoch | None, *, seeds: tuple[int, ...] | None = None) -> None:
    from lab.models import build_model
    from lab.train import train_proxy

    top1s, top5s, curves = [], [], []
    t0 = time.perf_counter()
    status, reason, epochs = COMPLETE, "", 0
    for i, seed in enumerate(exp.seeds if seeds is None else seeds):
        if i:
            torch.manual_seed(seed)
            model = build_model(cfg)
        stopped: list[int] = []
        verdicts: list[bool | str] = []

        def callback(m: Any, _first: bool = i == 0, _stopped: list[int] = stopped,
                     _verdicts: list[bool | str] = verdicts) -> bool:
            verdict = on_epoch(int(m.epoch), float(m.top1)) if _first and on_epoch is not None else False
            if verdict:
                _stopped.append(int(m.epoch))
                _verdicts.append(verdict)
                return True
            return False

        result = train_proxy(model, ctx.data, dataclasses.replace(recipe, seed=seed), callback=callback,
                             threads=ctx.threads)
        top1s.append(float(result.top1))
        top5s.append(float(result.top5))
        curves.append([round(float(e.top1), 4) for e in result.epochs])
        if i == 0:
            epochs = int(result.epochs_completed)
        if stopped and stopped[0] < recipe.epochs and isinstance(verdicts[0], str):
            status, reason = STOPPED, verdicts[0]
            break
        if stopped and stopped[0] < recipe.epochs:
            status, reason = PRUNED, f"pruned after epoch {stopped[0]} of {recipe.epochs} (top1 {top1s[-1]:.2f})"
            break
    row["train_seconds"] = time.perf_counter() - t0
    row["top1"] = sum(top1s) / len(top1s)
    row["top5"] = sum(top5s) / len(top5s)
    row["epochs"] = epochs
    row["epoch_top1"] = json.dumps(curves[0])  # first seed (the one pruning watches)
    row["status"], row["reason"] = status, reason
