"""Multi-objective asynchronous successive halving (MO-ASHA): which trials keep training at a rung.

Why: Optuna refuses to prune multi-objective studies and Ray Tune's schedulers take one metric;
a trial stopped on top-1 alone would be judged without its cost. In an accuracy-vs-cost search
the costs (FLOPs, params, throughput, latency, zero-cost scores) are known before training, so at
a rung only the trained objectives (top-1, top-5) are partial. This module ranks the trials seen
at a rung on *all* objectives and promotes the best ``1/eta`` of them.

Rungs: ``min_epochs * eta**k`` epochs for ``k = 0, 1, ...`` while below the recipe's ``epochs``
(the full budget, where nothing is decided any more): ``min_epochs=1, eta=3, epochs=9`` gives
rungs ``(1, 3)``. Rung ``k`` is reported 1-based ("rung 1" is the first).

The promotion rule, decided when a trial finishes a rung epoch (asynchronous, as ASHA: no
waiting for a full rung):

1. The rung's records are every trial that reached it so far, this one included; each record is
   the objective vector with the trained objectives replaced by the trial's top-1 at the rung
   (top-5 objectives use the rung top-1 as well: the hook sees top-1 only).
2. Order the records by non-dominated rank (Deb's fast sort, ``analysis.pareto``); within a front
   by exclusive hypervolume contribution (larger first), measured inside that front against the
   rung's reference point: the worst value of each objective over all the rung's records moved
   10% of its range further out (``analysis.pareto.nadir_reference``); then by NSGA-II crowding
   distance inside the front (larger first, the extremes' ``inf`` first); remaining ties by the
   lower trial number (sampled earlier). Contributions within 1e-9 of the reference box's volume
   count as ties. Why hypervolume first: the search is judged by its front's hypervolume, while
   crowding always ranks a front's two ends first (``inf``, the trial number deciding between
   them) -- with the quota at 1, as for the first ``2 * eta - 1`` arrivals, a newcomer that adds the
   most volume from inside the front was stopped (seen in ``benchmarks/mo_early_stopping.py``).
3. With ``n`` records the quota is ``max(1, n // eta)``; the trial is promoted (keeps training)
   when its position in that order is below the quota, otherwise it stops at this rung.
   First arrivals: while ``n < eta`` the quota is 1, so a first arrival continues only when it is
   ranked first of the trials recorded so far (the very first trial always continues). This is
   Optuna's ``SuccessiveHalvingPruner`` rule; Ray's ASHA lets every first arrival through instead.

Hence a dominated trial is never promoted while a non-dominated one at the same rung is not
(``rank_order`` puts every front before the next). Records are never removed, so a rung's
quota only grows and later arrivals must beat everything seen so far, as in ASHA.

Stopped trials get status ``stopped``, ``epochs`` = the rung epoch, and a reason such as
``stopped at rung 1 (epoch 3): rank 5 of 6 (front 2), top 2 continue``; the backends tell the
sampler ``PRUNED`` and the report's fronts use complete trials only, so partial-budget
accuracies never reach the final front. A trial that reaches the full budget is complete.

The pure part (``MOASHA``, ``rank_order``, ``decide``, ``Ledger``) has no Optuna or Ray import;
``StudyRungs`` keeps the records of an Optuna study in its trials' user attributes (shared by
every worker process) and ``MOASHAScheduler`` is the Ray Tune scheduler (imported lazily).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.pareto import crowding_distance, hypervolume_contributions, nadir_reference, non_dominated_sort

TRAINED = ("top1", "top5")
"""Objectives that are only known after training (partial at a rung)."""

ATTR = "mo_asha"
"""Optuna user attribute holding a trial's rung records: ``{"<epoch>": [objective vector]}`` (JSON)."""


@dataclass(frozen=True, kw_only=True)
class MOASHA:
    """MO-ASHA settings: reduction factor ``eta`` (>= 2) and the first rung ``min_epochs`` (>= 1)."""

    eta: int = 3
    min_epochs: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.eta, int) or isinstance(self.eta, bool) or self.eta < 2:
            raise ValueError(f"MOASHA eta={self.eta!r}: must be an int >= 2 (keep the best 1/eta at each rung)")
        if not isinstance(self.min_epochs, int) or isinstance(self.min_epochs, bool) or self.min_epochs < 1:
            raise ValueError(f"MOASHA min_epochs={self.min_epochs!r}: must be an int >= 1 (the first rung's epochs)")

    def rungs(self, max_epochs: int) -> tuple[int, ...]:
        """Rung epochs below the full budget ``max_epochs``: ``min_epochs * eta**k < max_epochs``."""
        if not isinstance(max_epochs, int) or max_epochs < 1:
            raise ValueError(f"max_epochs={max_epochs!r}: must be an int >= 1 (the recipe's epochs)")
        out, r = [], self.min_epochs
        while r < max_epochs:
            out.append(r)
            r *= self.eta
        return tuple(out)

    def check(self, max_epochs: int) -> None:
        """Raise when no rung fits below ``max_epochs`` (early stopping would never act)."""
        if not self.rungs(max_epochs):
            raise ValueError(f"MO-ASHA has no rung below the recipe's {max_epochs} epoch(s) (first rung at "
                             f"min_epochs={self.min_epochs}); raise recipe.epochs or lower min_epochs")

    def to_dict(self) -> dict[str, int]:
        return {"eta": self.eta, "min_epochs": self.min_epochs}


def settings(exp: Any) -> MOASHA:
    """The experiment's MO-ASHA settings (``Experiment.mo_asha``, ``MOASHA()`` when left ``None``)."""
    return exp.mo_asha if exp.mo_asha is not None else MOASHA()


@dataclass(frozen=True)
class RungRecord:
    """One trial's objective vector at a rung (trained objectives = its accuracy at that rung)."""

    trial: int
    values: tuple[float, ...]


@dataclass(frozen=True)
class Decision:
    """The verdict for ``trial`` at rung ``rung`` (1-based) = ``epoch`` epochs, among ``n`` records."""

    trial: int
    rung: int
    epoch: int
    promoted: bool
    position: int
    front: int
    n: int
    quota: int

    @property
    def reason(self) -> str:
        """The ``reason`` column of a stopped trial."""
        return (f"stopped at rung {self.rung} (epoch {self.epoch}): rank {self.position + 1} of {self.n} "
                f"(front {self.front + 1}), top {self.quota} continue")


def rank_order(values: np.ndarray | Sequence[Sequence[float]], directions: Sequence[str],
               trials: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(order, front)``: row indices best-first (front, then hypervolume contribution descending, then
    crowding distance descending, then lower trial number) and each row's 0-based non-dominated front."""
    v = np.asarray(values, dtype=float)
    n = len(v)
    if v.ndim != 2 or v.shape[1] != len(directions):
        raise ValueError(f"values must be (n, {len(directions)}) for directions {list(directions)}, got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("rung values must be finite; leave trials with an unmeasured objective out of the rung")
    ids = np.arange(n) if trials is None else np.asarray(trials, dtype=np.int64)
    if ids.shape != (n,):
        raise ValueError(f"trials must give one number per row ({n}), got {ids.shape}")
    front = np.zeros(n, dtype=np.int64)
    crowd = np.zeros(n)
    contrib = np.zeros(n)
    if n == 0:
        return np.zeros(0, dtype=np.int64), front
    dirs = list(directions)
    ref = nadir_reference(v, dirs)
    box = float(np.prod(np.abs(v - ref).max(0)))  # the reference box: contributions are compared relative to it
    for k, idx in enumerate(non_dominated_sort(v, dirs)):
        front[idx] = k
        crowd[idx] = crowding_distance(v[idx], dirs)
        contrib[idx] = hypervolume_contributions(v[idx], ref, dirs)
    contrib = np.round(contrib / box, 9) if box > 0 else contrib
    order = np.lexsort((ids, -crowd, -contrib, front))  # last key sorts first: front, -contribution, -crowding, trial
    return order, front


def quota(n: int, eta: int) -> int:
    """How many of ``n`` records at a rung continue: ``max(1, n // eta)`` (0 when ``n == 0``)."""
    return 0 if n <= 0 else max(1, n // eta)


def decide(records: Sequence[RungRecord], trial: int, directions: Sequence[str], *, eta: int, rung: int,
           epoch: int) -> Decision:
    """Promote or stop ``trial`` (one of ``records``) at a rung; see the module docstring for the rule."""
    ids = [r.trial for r in records]
    if ids.count(trial) != 1:
        raise ValueError(f"trial {trial} must appear exactly once among the rung's records, found {ids.count(trial)}")
    order, front = rank_order([r.values for r in records], directions, ids)
    me = ids.index(trial)
    position = int(np.nonzero(order == me)[0][0])
    q = quota(len(records), eta)
    return Decision(trial=trial, rung=rung, epoch=epoch, promoted=position < q, position=position,
                    front=int(front[me]), n=len(records), quota=q)


def rung_vector(objectives: Sequence[Any], costs: Mapping[str, Any], top1: float) -> tuple[float, ...] | None:
    """The objective vector at a rung: trained objectives -> ``top1`` at the rung, the others from
    ``costs`` (the trial's row before training); ``None`` when some value is missing or NaN."""
    out = []
    for o in objectives:
        v = top1 if o.name in TRAINED else costs.get(o.name)
        try:
            f = float(v)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(f):
            return None
        out.append(f)
    return tuple(out)


@dataclass
class Ledger:
    """In-memory rung bookkeeping for one process (Ray's scheduler, tests): records per rung epoch."""

    config: MOASHA
    max_epochs: int
    directions: tuple[str, ...]
    records: dict[int, list[RungRecord]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.config.check(self.max_epochs)
        self.directions = tuple(self.directions)

    @property
    def rungs(self) -> tuple[int, ...]:
        return self.config.rungs(self.max_epochs)

    def report(self, trial: int, epoch: int, values: Sequence[float] | None) -> Decision | None:
        """Record ``trial`` at ``epoch`` and decide; ``None`` when ``epoch`` is no rung, the trial was
        already recorded there, or ``values`` is ``None`` (unmeasured: never stopped)."""
        if epoch not in self.rungs or values is None:
            return None
        recs = self.records.setdefault(epoch, [])
        if any(r.trial == trial for r in recs):
            return None
        recs.append(RungRecord(trial, tuple(float(v) for v in values)))
        return decide(recs, trial, self.directions, eta=self.config.eta, rung=self.rungs.index(epoch) + 1,
                      epoch=epoch)


# ----------------------------------------------------------------------------- Optuna glue


class StudyRungs:
    """Rung records kept in an Optuna study (user attribute ``mo_asha`` of each trial), so every
    worker process and a resumed sweep see the same rungs. ``on_epoch`` is the pipeline hook."""

    def __init__(self, config: MOASHA, *, study: Any, trial: Any, objectives: Sequence[Any], max_epochs: int,
                 costs: Mapping[str, Any]) -> None:
        config.check(max_epochs)
        self.config, self.study, self.trial = config, study, trial
        self.objectives = tuple(objectives)
        self.directions = tuple(o.direction for o in self.objectives)
        self.rungs = config.rungs(max_epochs)
        self.costs = costs  # the trial's row before training (filled by the pipeline's on_partial)
        self.mine: dict[str, list[float]] = {}

    def records(self, epoch: int) -> list[RungRecord]:
        """Other trials' records at ``epoch`` from the storage (this trial's are added by the caller)."""
        out = []
        for t in self.study.get_trials(deepcopy=False):
            if t.number == self.trial.number:
                continue
            raw = t.user_attrs.get(ATTR)
            values = (json.loads(raw) if isinstance(raw, str) else raw or {}).get(str(epoch))
            if values is not None:
                out.append(RungRecord(t.number, tuple(float(v) for v in values)))
        return out

    def on_epoch(self, epoch: int, top1: float) -> bool | str:
        """Pipeline hook: ``False`` to continue, a ``reason`` string to stop with status ``stopped``."""
        if epoch not in self.rungs:
            return False
        values = rung_vector(self.objectives, self.costs, top1)
        if values is None:
            return False
        self.mine[str(epoch)] = list(values)
        self.trial.set_user_attr(ATTR, json.dumps(self.mine))
        recs = [*self.records(epoch), RungRecord(self.trial.number, values)]
        d = decide(recs, self.trial.number, self.directions, eta=self.config.eta,
                   rung=self.rungs.index(epoch) + 1, epoch=epoch)
        return False if d.promoted else d.reason


def epochs_saved(rows: Iterable[Mapping[str, Any]], max_epochs: int) -> tuple[int, int]:
    """``(saved, full)``: epochs not trained because trials were stopped, and what training every
    stopped trial to ``max_epochs`` would have cost in total (trained rows only)."""
    saved = full = 0
    for r in rows:
        if r.get("status") == "stopped":
            e = int(r.get("epochs") or 0)
            saved += max(0, max_epochs - e)
            full += max_epochs
    return saved, full


# ----------------------------------------------------------------------------- Ray Tune scheduler


@functools.cache
def _scheduler_class() -> type:
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    class MOASHAScheduler(FIFOScheduler):
        """Ray Tune scheduler: MO-ASHA on ``time_attr`` (epochs). A result carrying ``values_attr`` (the rung
        vector, ``rung_vector``) at a rung epoch is recorded and decided by ``Ledger.report``; a trial not
        promoted is stopped. The vector travels under its own key, not the objectives' names, so Tune's
        searcher never mistakes a partial accuracy for a final value."""

        def __init__(self, config: MOASHA, *, directions: Sequence[str], max_epochs: int, time_attr: str = "epoch",
                     values_attr: str = ATTR, on_stop: Any = None) -> None:
            super().__init__()
            self.ledger = Ledger(config, max_epochs, tuple(directions))
            self.time_attr, self.values_attr = time_attr, values_attr
            self.on_stop = on_stop  # on_stop(trial, decision): record the verdict before Tune stops the trial
            self.decisions: list[Decision] = []

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            if self.time_attr not in result or result.get(self.values_attr) is None:
                return TrialScheduler.CONTINUE
            d = self.ledger.report(_trial_number(trial), int(result[self.time_attr]), result[self.values_attr])
            if d is None:
                return TrialScheduler.CONTINUE
            self.decisions.append(d)
            if d.promoted:
                return TrialScheduler.CONTINUE
            if self.on_stop is not None:
                self.on_stop(trial, d)
            return TrialScheduler.STOP

        def debug_string(self) -> str:
            stopped = sum(not d.promoted for d in self.decisions)
            return f"MOASHAScheduler: {len(self.decisions)} rung decisions, {stopped} stopped"

    MOASHAScheduler.__module__ = __name__
    MOASHAScheduler.__qualname__ = "MOASHAScheduler"
    return MOASHAScheduler


def _trial_number(trial: Any) -> int:
    """A stable integer for a Ray trial: the Optuna trial number in its config when present."""
    cfg = getattr(trial, "config", None) or {}
    if "_optuna_number" in cfg:
        return int(cfg["_optuna_number"])
    return int.from_bytes(str(trial.trial_id).encode()[-6:], "big")


def __getattr__(name: str) -> Any:
    """``MOASHAScheduler`` is built on first access (Ray is an optional dependency); pickle finds it here."""
    if name == "MOASHAScheduler":
        return _scheduler_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
