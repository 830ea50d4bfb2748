"""Embedded backend: Optuna on an RDB storage (SQLite ``runs/<exp>/study.db`` by default).

Each worker (the main process plus ``workers - 1`` spawned processes, or more processes on
other machines pointing at the same ``--storage`` URL with ``--resume``) loops: under a lock,
fail stale trials (their worker stopped sending heartbeats: killed, OOM, power loss; Optuna's
``RetryFailedTrialCallback`` queues the same config again), count finished and running trials,
and ask for a new trial only while ``finished + running < n_trials``; then evaluate, tell, and
store the full row as the trial's ``row`` user attribute. Trial numbers come from the storage,
so they are unique and gap-free across workers; the lock (a file lock next to the run table)
makes the count-then-ask step atomic for the workers of one machine.

Single-objective studies report each epoch's top-1 to the pruner (``trial.report`` /
``should_prune``); ``pruner='mo_asha'`` (any number of objectives) decides at each rung in this
loop instead (``lab.search.mo_asha.StudyRungs``: Optuna cannot prune multi-objective trials).
Infeasible, pruned and stopped trials are told ``PRUNED``, training failures ``FAIL``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import multiprocessing as mp
import os
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lab.search.experiment import Experiment
from lab.search.pipeline import COMPLETE, FAILED, WorkerContext, evaluate
from lab.search.progress import Progress, best_summary, eta, progress_line
from lab.search.results import INTERRUPTED_ATTR, ROW_ATTR, counts, export_trials, find_duplicate

RETRIES = 2


def _quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # the ask/tell loop below runs its own heartbeat thread (``_Heartbeat``), which Optuna cannot see
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    return optuna


def _retry_callback(optuna: Any) -> Any:
    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    return cls(max_retry=RETRIES)


def make_storage(url: str, *, heartbeat_s: float) -> Any:
    """RDB storage with heartbeats (stale after 3 beats) and automatic retry of dead workers' trials."""
    optuna = _quiet_optuna()
    engine_kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    hb = max(1, int(round(heartbeat_s)))
    return optuna.storages.RDBStorage(
        url,
        engine_kwargs=engine_kwargs,
        heartbeat_interval=hb,
        grace_period=3 * hb,
        heartbeat_stale_trial_callback=_retry_callback(optuna),
    )


def make_sampler(exp: Experiment, *, seed: int) -> Any:
    optuna = _quiet_optuna()
    kind = exp.resolved_sampler()
    if kind == "tpe":
        startup = min(10, max(3, exp.budget.n_trials // 3))
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup)
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, exp.budget.n_trials // 2)))
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    class GridSampler(optuna.samplers.GridSampler):
        """Optuna's grid, minus its ``study.stop()`` once the grid is exhausted: that call only works
        inside ``study.optimize`` and raises from the ask/tell loop; the loop stops on ``n_trials``."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return GridSampler(exp.space.grid(), seed=seed)


def make_pruner(exp: Experiment) -> Any:
    optuna = _quiet_optuna()
    if exp.multi_objective or exp.pruner in ("none", "mo_asha") or not exp.needs_training:
        return optuna.pruners.NopPruner()
    epochs = exp.recipe.epochs
    if exp.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if exp.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)


def create_or_load(exp: Experiment, storage: Any, *, resume: bool) -> tuple[Any, int]:
    """Create the study (or load it with ``resume``); returns ``(study, trials already there)``.
    Without ``resume``, an existing non-empty study is an error (never silently appended to)."""
    optuna = _quiet_optuna()
    existing = {s.study_name: s for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)}
    if exp.name in existing and existing[exp.name].n_trials and not resume:
        raise FileExistsError(
            f"study {exp.name!r} already holds {existing[exp.name].n_trials} trials in this storage; "
            "pass --resume to continue it, or choose another --out / --storage")
    study = optuna.create_study(study_name=exp.name, storage=storage, directions=exp.directions,
                                load_if_exists=True)
    stored = study.directions
    if [d.name.lower() for d in stored] != exp.directions:
        raise ValueError(f"study {exp.name!r} was created with directions {[d.name.lower() for d in stored]}, "
                         f"the experiment now has {exp.directions}; use another --out or name")
    return study, len(study.trials)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class _Heartbeat:
    """Records the trial's heartbeat every ``interval`` s in a daemon thread (Optuna only does this
    inside ``study.optimize``; the ask/tell loop here needs its own)."""

    def __init__(self, storage: Any, trial_id: int, interval: float) -> None:
        self._stop = threading.Event()
        storage.record_heartbeat(trial_id)

        def beat() -> None:
            while not self._stop.wait(interval):
                with contextlib.suppress(Exception):
                    storage.record_heartbeat(trial_id)

        self._thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def worker_loop(exp: Experiment, *, storage_url: str, run_dir: Path, n_trials: int, deadline: float | None,
                worker: int, sampler_seed: int, threads: int, progress: Progress | None = None,
                total_workers: int = 1, export: bool = True, data: Any = None) -> str:
    """Run trials until ``n_trials`` are finished, the deadline passes, or Ctrl-C; returns why it stopped
    (``done``, ``timeout``). ``KeyboardInterrupt`` propagates after the running trial is queued again."""
    import torch

    optuna = _quiet_optuna()
    torch.set_num_threads(threads)
    storage = make_storage(storage_url, heartbeat_s=exp.heartbeat_s)
    study = optuna.load_study(study_name=exp.name, storage=storage, sampler=make_sampler(exp, seed=sampler_seed),
                              pruner=make_pruner(exp))
    ctx = WorkerContext(exp, threads=threads, data=data)
    lock = run_dir / ".slots.lock"
    durations: list[float] = []

    def show() -> None:
        if progress is None:
            return
        c = counts(study.get_trials(deepcopy=False))
        remaining = n_trials - c["finished"]
        progress.update(progress_line(exp.name, c, target=n_trials, best=best_summary(study, exp.objectives),
                                      eta_s=eta(durations, remaining, total_workers)))

    while True:
        if deadline is not None and time.time() >= deadline:
            return "timeout"
        with _file_lock(lock):
            optuna.storages.fail_stale_trials(study)
            c = counts(study.get_trials(deepcopy=False))
            if c["finished"] >= n_trials:
                trial = None
                state = "done"
            elif c["finished"] + c["running"] >= n_trials:
                trial, state = None, "wait"
            else:
                trial, state = study.ask(), "run"
                beat = _Heartbeat(storage, trial._trial_id, exp.heartbeat_s)
        if state == "done":
            show()
            return "done"
        if state == "wait":  # the last slots are held by running trials (maybe of a dead worker)
            show()
            time.sleep(min(2.0, exp.heartbeat_s))
            continue
        show()
        try:
            row = _run_trial(study, trial, ctx, exp)
        except KeyboardInterrupt:
            _requeue(study, trial)
            raise
        finally:
            beat.stop()
        if row["status"] == COMPLETE and math.isnan(float(row.get("reused_from", math.nan))):
            durations.append(float(row["duration_s"]))
        if export:
            export_trials(study, run_dir, space=exp.space)
        show()


def _run_trial(study: Any, trial: Any, ctx: WorkerContext, exp: Experiment) -> dict[str, Any]:
    optuna = _quiet_optuna()
    params = exp.space.sample(trial)

    on_epoch = None
    partial: dict[str, Any] = {}  # the row before training (costs), for multi-objective early stopping
    if exp.pruner == "mo_asha" and exp.needs_training:
        from lab.search.mo_asha import StudyRungs, settings

        on_epoch = StudyRungs(settings(exp), study=study, trial=trial, objectives=exp.objectives,
                              max_epochs=exp.recipe.epochs, costs=partial).on_epoch
    elif not exp.multi_objective and exp.objectives[0].name == "top1":
        def on_epoch(epoch: int, top1: float) -> bool:
            trial.report(top1, epoch)
            return trial.should_prune()

    def dup(key: str) -> dict[str, Any] | None:
        return find_duplicate(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                                        optuna.trial.TrialState.PRUNED)), key)

    row = evaluate(ctx, params, trial=trial.number, on_epoch=on_epoch, find_duplicate=dup, on_partial=partial.update)
    values = None
    if row["status"] == COMPLETE:
        values = [_objective_value(row, o.name) for o in exp.objectives]
        bad = [o.name for o, v in zip(exp.objectives, values) if v is None or math.isnan(v)]
        if bad:
            row["status"], row["reason"] = FAILED, f"objective(s) {bad} not measured (NaN)"
    trial.set_user_attr(ROW_ATTR, json.dumps(row, default=str))
    trial.set_user_attr("status", row["status"])
    if row["status"] == COMPLETE:
        study.tell(trial, values)
    elif row["status"] == FAILED:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:  # pruned, infeasible, stopped: not a value the sampler should fit
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return row


def _objective_value(row: dict[str, Any], name: str) -> float | None:
    v = row.get(name)
    return None if v is None else float(v)


def _requeue(study: Any, trial: Any) -> None:
    """Ctrl-C during a trial: mark it failed (interrupted) and queue the same config for the resume."""
    optuna = _quiet_optuna()
    with contextlib.suppress(Exception):
        trial.set_user_attr(INTERRUPTED_ATTR, True)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})


def _child_main(exp: Experiment, kwargs: dict[str, Any]) -> None:
    """Entry point of a spawned worker process."""
    try:
        worker_loop(exp, **kwargs)
    except KeyboardInterrupt:
        pass


def run(exp: Experiment, *, run_dir: Path, storage_url: str, n_trials: int, timeout_s: float | None, workers: int,
        resume: bool, progress: Progress, data: Any = None) -> dict[str, Any]:
    """Run the sweep with ``workers`` local processes; returns a summary (raises ``KeyboardInterrupt``
    after a clean stop on Ctrl-C, with the table exported)."""
    optuna = _quiet_optuna()
    storage = make_storage(storage_url, heartbeat_s=exp.heartbeat_s)
    study, before = create_or_load(exp, storage, resume=resume)
    deadline = time.time() + timeout_s if timeout_s else None
    threads = exp.trial_threads
    common = dict(storage_url=storage_url, run_dir=run_dir, n_trials=n_trials, deadline=deadline, threads=threads,
                  total_workers=workers)
    ctx = mp.get_context("spawn")
    children = []
    for w in range(1, workers):
        kw = dict(common, worker=w, sampler_seed=exp.seed + 7919 * before + w, export=False)
        p = ctx.Process(target=_child_main, args=(exp, kw), name=f"sweep-worker-{w}")
        p.start()
        children.append(p)
    why = "done"
    try:
        why = worker_loop(exp, worker=0, sampler_seed=exp.seed + 7919 * before, progress=progress, data=data,
                          **common)
        for p in children:
            p.join()
    except KeyboardInterrupt:
        for p in children:
            if p.is_alive() and p.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGINT)
        for p in children:
            p.join(timeout=60)
        raise
    finally:
        study = optuna.load_study(study_name=exp.name, storage=storage)
        export_trials(study, run_dir, space=exp.space)
    failed_children = [p.name for p in children if p.exitcode not in (0, None)]
    c = counts(study.get_trials(deepcopy=False))
    return {"stopped": why, "counts": c, "workers_failed": failed_children, "study": study}
