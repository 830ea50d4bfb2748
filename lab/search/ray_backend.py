"""Cluster backend: Ray Tune driving the same trial pipeline, persisting to the same Optuna study.

Ray Tune's ``OptunaSearch`` samples with the experiment's Optuna sampler (multi-objective as
metric/mode lists) and stores its study in the run's storage (``runs/<exp>/study.db`` by
default, any RDB URL for a cluster), under the experiment's name: both backends leave the same
record and optuna-dashboard opens either. The define-by-run space hands each Ray trial its
Optuna trial number and id; the trainable writes the full row into that trial's ``row`` user
attribute (provisionally after each epoch, so a trial stopped by ASHA keeps a ``pruned`` row),
which is what ``export_trials`` turns into ``trials.parquet``.

Single-objective studies use ASHA on the per-epoch top-1 (``time_attr="epoch"``); ``pruner='mo_asha'``
uses ``lab.search.mo_asha.MOASHAScheduler`` (any number of objectives, rung vectors reported under
their own key, stopped rows and ``PRUNED`` Optuna trials written by its ``on_stop``); every trial
gets one CPU and one torch thread; actors are reused; Ray's own state lives under
``runs/<exp>/ray`` and ``--resume`` restores an interrupted Tune run with ``Tuner.restore``
before topping the study up to the requested count.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from lab.search.experiment import Experiment
from lab.search.progress import Progress, best_summary, progress_line
from lab.search.results import ROW_ATTR, counts, export_trials, find_duplicate

_NUMBER, _TRIAL_ID = "_optuna_number", "_optuna_trial_id"
_ENV = {"OMP_NUM_THREADS": "1", "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1"}


def _plain_storage(url: str) -> Any:
    """Storage without heartbeats (Ray supervises its own workers)."""
    import optuna

    engine_kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


@functools.cache
def _worker_storage(url: str) -> Any:
    return _plain_storage(url)


def _define_by_run(trial: Any, *, space: Any) -> dict[str, Any]:
    space.sample(trial)
    return {_NUMBER: trial.number, _TRIAL_ID: trial._trial_id}


def trainable(config: dict[str, Any], *, exp: Experiment, storage_url: str, data: Any = None) -> None:
    """One Ray Tune trial: run the pipeline, keep the row in the Optuna study, report to Tune."""
    import torch
    from ray import tune

    from lab.search.pipeline import COMPLETE, evaluate

    torch.set_num_threads(exp.trial_threads)
    storage = _worker_storage(storage_url)
    number, trial_id = int(config[_NUMBER]), int(config[_TRIAL_ID])
    params = exp.space.resolve({k: v for k, v in config.items() if k not in (_NUMBER, _TRIAL_ID)})
    ctx = _context(exp, data)
    study_id = storage.get_study_id_from_name(exp.name)

    def put(row: dict[str, Any]) -> None:
        storage.set_trial_user_attr(trial_id, ROW_ATTR, json.dumps(row, default=str))

    def dup(key: str) -> dict[str, Any] | None:
        return find_duplicate(storage.get_all_trials(study_id, deepcopy=False), key)

    partial: dict[str, Any] = {}
    on_epoch = None
    if exp.pruner == "mo_asha" and exp.needs_training:
        from lab.search.mo_asha import ATTR, rung_vector, settings

        rungs = settings(exp).rungs(exp.recipe.epochs)

        def on_epoch(epoch: int, top1: float) -> bool:
            if epoch not in rungs:
                return False
            if partial:  # the row if MOASHAScheduler stops the trial here (its on_stop adds the ranking)
                put({**partial, "status": "stopped", "top1": top1, "epochs": epoch,
                     "reason": f"stopped at rung {rungs.index(epoch) + 1} (epoch {epoch})"})
            tune.report({"epoch": epoch, ATTR: rung_vector(exp.objectives, partial, top1), "done_training": False})
            return False
    elif not exp.multi_objective and exp.objectives[0].name == "top1" and exp.needs_training:
        def on_epoch(epoch: int, top1: float) -> bool:
            if partial:
                put({**partial, "status": "pruned", "top1": top1, "epochs": epoch,
                     "reason": f"stopped by ASHA after epoch {epoch} of {exp.recipe.epochs}"})
            tune.report({"top1": top1, "epoch": epoch, "done_training": False})
            return False

    row = evaluate(ctx, params, trial=number, on_epoch=on_epoch, find_duplicate=dup, on_partial=partial.update)
    put(row)
    final: dict[str, Any] = {"status": row["status"], "epoch": row["epochs"], "done_training": True}
    if row["status"] == COMPLETE:
        final.update({o.name: float(row[o.name]) for o in exp.objectives})
    tune.report(final)


@functools.cache
def _context_cache(exp_id: int) -> dict[str, Any]:
    return {}


def _context(exp: Experiment, data: Any) -> Any:
    from lab.search.pipeline import WorkerContext

    cache = _context_cache(id(exp))
    if "ctx" not in cache:
        cache["ctx"] = WorkerContext(exp, threads=exp.trial_threads, data=data)
    return cache["ctx"]


def _progress_callback(exp: Experiment, storage: Any, run_dir: Path, n_trials: int, progress: Progress) -> Any:
    import optuna
    from ray.tune import Callback

    class _Progress(Callback):
        def _show(self) -> None:
            study = optuna.load_study(study_name=exp.name, storage=storage)
            c = counts(study.get_trials(deepcopy=False))
            progress.update(progress_line(exp.name, c, target=n_trials, best=best_summary(study, exp.objectives),
                                          eta_s=None))

        def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001 - Ray's signature
            self._show()

        def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
            study = optuna.load_study(study_name=exp.name, storage=storage)
            export_trials(study, run_dir, space=exp.space)
            self._show()

        def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
            self._show()

    return _Progress()


def run(exp: Experiment, *, run_dir: Path, storage_url: str, n_trials: int, timeout_s: float | None, workers: int,
        resume: bool, progress: Progress, address: str | None = None, data: Any = None) -> dict[str, Any]:
    """Run (or resume) the sweep on Ray Tune; local Ray with ``workers`` CPUs unless ``address`` is given."""
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from lab.search.optuna_backend import _quiet_optuna, make_sampler

    _quiet_optuna()
    os.environ.update(_ENV)
    storage = _plain_storage(storage_url)
    study = optuna.load_study(study_name=exp.name, storage=storage)
    before = len(study.trials)
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR",
                                  "runtime_env": {"env_vars": dict(_ENV)}}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=workers, **kwargs)
    ray_dir = (run_dir / "ray").resolve()
    why = "done"
    try:
        fn = tune.with_parameters(trainable, exp=exp, storage_url=storage_url,
                                  data=None if address else data)
        fn = tune.with_resources(fn, {"cpu": exp.trial_threads})
        session = 0
        while True:
            c = counts(optuna.load_study(study_name=exp.name, storage=storage).get_trials(deepcopy=False))
            remaining = n_trials - c["finished"]
            if remaining <= 0:
                break
            name = exp.name if session == 0 else f"{exp.name}-{session}"
            path = ray_dir / name
            if resume and session == 0 and path.exists() and tune.Tuner.can_restore(str(path)):
                tuner = tune.Tuner.restore(str(path), trainable=fn, resume_unfinished=True, resume_errored=True)
            else:
                while (ray_dir / name).exists():
                    session += 1
                    name = f"{exp.name}-{session}"
                tuner = _new_tuner(exp, fn, storage, name=name, ray_dir=ray_dir, n=remaining, workers=workers,
                                   timeout_s=timeout_s, seed=exp.seed + 7919 * before + session,
                                   callback=_progress_callback(exp, storage, run_dir, n_trials, progress),
                                   OptunaSearch=OptunaSearch, ASHAScheduler=ASHAScheduler,
                                   sampler=make_sampler(exp, seed=exp.seed + 7919 * before + session))
            tuner.fit()
            session += 1
            if timeout_s is not None:
                why = "timeout" if counts(study.get_trials(deepcopy=False))["finished"] < n_trials else "done"
                break
            if session > 3 + n_trials:  # pragma: no cover - a guard against a Ray run that adds no rows
                why = "stalled"
                break
    finally:
        study = optuna.load_study(study_name=exp.name, storage=storage)
        export_trials(study, run_dir, space=exp.space)
        if started_here:
            ray.shutdown()
    return {"stopped": why, "counts": counts(study.get_trials(deepcopy=False)), "study": study}


def _mo_asha_scheduler(exp: Experiment, storage: Any) -> Any:
    """``MOASHAScheduler`` whose ``on_stop`` writes the ranking into the trial's row and marks the Optuna
    trial ``PRUNED`` (before OptunaSearch would tell it a partial value: its tell then fails, logged)."""
    import optuna

    from lab.search.mo_asha import MOASHAScheduler, settings
    from lab.search.results import row_of

    def on_stop(trial: Any, decision: Any) -> None:
        trial_id = int(trial.config[_TRIAL_ID])
        frozen = storage.get_trial(trial_id)
        row = row_of(frozen)
        if row is not None:
            row.update(status="stopped", reason=decision.reason, epochs=decision.epoch)
            storage.set_trial_user_attr(trial_id, ROW_ATTR, json.dumps(row, default=str))
        if frozen.state == optuna.trial.TrialState.RUNNING:
            storage.set_trial_state_values(trial_id, optuna.trial.TrialState.PRUNED)

    return MOASHAScheduler(settings(exp), directions=exp.directions, max_epochs=exp.recipe.epochs, on_stop=on_stop)


def _new_tuner(exp: Experiment, fn: Any, storage: Any, *, name: str, ray_dir: Path, n: int, workers: int,
               timeout_s: float | None, seed: int, callback: Any, OptunaSearch: Any,  # noqa: N803
               ASHAScheduler: Any, sampler: Any) -> Any:  # noqa: N803
    from ray import tune

    modes = ["max" if o.direction == "maximize" else "min" for o in exp.objectives]
    metrics = [o.name for o in exp.objectives]
    multi = exp.multi_objective
    searcher = OptunaSearch(
        space=functools.partial(_define_by_run, space=exp.space),
        metric=metrics if multi else metrics[0],
        mode=modes if multi else modes[0],
        sampler=sampler,
        study_name=exp.name,
        storage=storage,
    )
    scheduler = None
    if exp.pruner == "mo_asha" and exp.needs_training:
        scheduler = _mo_asha_scheduler(exp, storage)
    elif not multi and exp.objectives[0].name == "top1" and exp.pruner != "none" and exp.needs_training:
        scheduler = ASHAScheduler(metric="top1", mode=modes[0], time_attr="epoch", max_t=exp.recipe.epochs,
                                  grace_period=1, reduction_factor=2)
    return tune.Tuner(
        fn,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=n,
                                    max_concurrent_trials=workers, reuse_actors=True, time_budget_s=timeout_s),
        run_config=tune.RunConfig(name=name, storage_path=str(ray_dir), verbose=0, callbacks=[callback],
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )
