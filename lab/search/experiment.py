"""``Experiment``: one typed, frozen description of a sweep (what an ``experiments/*.py`` file defines).

An experiment file defines ``EXPERIMENT = Experiment(...)``: the search space, the proxy data
and recipe, objectives with directions, constraints checked before training, the budget, the
sampler and pruner, and the training seeds. ``load_experiment(path)`` imports the file and
validates everything *before* any work starts, so bad input costs one clear error line.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.search.space import SearchSpace, SpaceError

MAXIMIZE, MINIMIZE = "maximize", "minimize"
METRICS: dict[str, str] = {
    "top1": MAXIMIZE,
    "top5": MAXIMIZE,
    "throughput": MAXIMIZE,
    "latency_ms": MINIMIZE,
    "flops": MINIMIZE,
    "params": MINIMIZE,
}
ALIASES = {"latency": "latency_ms", "FLOPs": "flops"}
KINDS = ("nas", "ablation", "hparams")
SAMPLERS = ("auto", "tpe", "nsga2", "gp", "random", "grid")
PRUNERS = ("none", "median", "hyperband", "asha", "mo_asha")


class ExperimentError(ValueError):
    """An experiment file or definition is invalid; the message names the problem and the fix."""


@dataclass(frozen=True, kw_only=True)
class Objective:
    """``name``: ``top1``, ``top5``, ``throughput``, ``latency_ms`` (alias ``latency``), ``flops``,
    ``params`` or a zero-cost score ``zc.<proxy>``; ``direction`` defaults to the natural one."""

    name: str
    direction: str = ""

    def __post_init__(self) -> None:
        name = ALIASES.get(self.name, self.name)
        object.__setattr__(self, "name", name)
        if name not in METRICS and not name.startswith("zc."):
            raise ExperimentError(f"objective {self.name!r} unknown; use one of {sorted(METRICS)} or 'zc.<proxy>'")
        direction = self.direction or METRICS.get(name, MAXIMIZE)
        if direction not in (MAXIMIZE, MINIMIZE):
            raise ExperimentError(f"objective {name}: direction must be 'maximize' or 'minimize', got {direction!r}")
        object.__setattr__(self, "direction", direction)

    @property
    def needs_training(self) -> bool:
        return self.name in ("top1", "top5")


@dataclass(frozen=True, kw_only=True)
class Constraints:
    """Budgets checked on the config before any training; ``None`` = unconstrained."""

    max_params: int | None = None
    min_params: int | None = None
    max_flops: int | None = None
    min_flops: int | None = None
    max_latency_ms: float | None = None
    min_throughput: float | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0):
                raise ExperimentError(f"constraint {f.name}={v!r}: must be a positive number or None")
        for lo, hi in (("min_params", "max_params"), ("min_flops", "max_flops")):
            a, b = getattr(self, lo), getattr(self, hi)
            if a is not None and b is not None and a > b:
                raise ExperimentError(f"contradictory constraints: {lo}={a} > {hi}={b}; no network can satisfy both")

    @property
    def needs_timing(self) -> bool:
        return self.max_latency_ms is not None or self.min_throughput is not None

    def violations(self, m: Mapping[str, Any]) -> list[str]:
        """Human-readable reasons ``m`` (params, flops, latency_ms, throughput) breaks a budget."""
        out = []
        checks = (
            ("params", "max_params", lambda v, b: v <= b, ">"),
            ("params", "min_params", lambda v, b: v >= b, "<"),
            ("flops", "max_flops", lambda v, b: v <= b, ">"),
            ("flops", "min_flops", lambda v, b: v >= b, "<"),
            ("latency_ms", "max_latency_ms", lambda v, b: v <= b, ">"),
            ("throughput", "min_throughput", lambda v, b: v >= b, "<"),
        )
        for metric, name, ok, sign in checks:
            bound = getattr(self, name)
            if bound is None:
                continue
            value = m.get(metric)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if not ok(value, bound):
                out.append(f"{metric} {_fmt(value)} {sign} {name} {_fmt(bound)}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True, kw_only=True)
class Budget:
    """``n_trials`` counts finished trials (complete, pruned, infeasible); ``timeout_s`` is wall time
    per run (``None`` = no limit); ``workers`` is the default number of local worker processes."""

    n_trials: int = 12
    timeout_s: float | None = None
    workers: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.n_trials, int) or self.n_trials < 1:
            raise ExperimentError(f"budget n_trials={self.n_trials!r}: must be an int >= 1")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise ExperimentError(f"budget timeout_s={self.timeout_s!r}: must be > 0 or None")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ExperimentError(f"budget workers={self.workers!r}: must be an int >= 1")


@dataclass(frozen=True, kw_only=True)
class MeasureSpec:
    """How params/FLOPs/speed are measured for every trial (CPU, batch-1 latency, batch throughput);
    ``fused`` times the network with every BN folded (the paper's inference protocol)."""

    threads: int = 1
    latency_batch: int = 1
    throughput_batch: int = 16
    warmup: int = 2
    iters: int = 5
    timing: bool = True
    fused: bool = True

    def __post_init__(self) -> None:
        for name in ("threads", "latency_batch", "throughput_batch", "iters"):
            if getattr(self, name) < 1:
                raise ExperimentError(f"measure {name}={getattr(self, name)!r}: must be >= 1")
        if self.warmup < 0:
            raise ExperimentError(f"measure warmup={self.warmup!r}: must be >= 0")


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """A sweep. ``data`` is a ``lab.data.DataSpec``; ``synth`` (a ``lab.data.SynthSpec``) generates
    ``data.root`` when it is missing. ``recipe`` is a ``lab.train.ProxyRecipe`` (its ``seed`` is
    replaced by each entry of ``seeds``; several seeds train each config once per seed and report
    the mean). ``sampler='auto'`` = TPE (single objective), NSGA-II (multi-objective), grid for
    ``kind='ablation'`` when the space is discrete. ``pruner`` applies to single-objective studies.
    ``heartbeat_s``: a worker silent for 3 heartbeats is presumed dead, its trial failed and retried.
    ``trial_threads``: torch threads per trial (1 = one trial per core; more threads per trial scale
    badly for these small networks and collapse on a loaded machine). A ``recipe.seed`` knob makes
    each trial train its one seed (one table row per seed: ablations' mean ± std); ``seeds`` is then
    ignored. ``prepare(experiment, data)``: optional, run once by ``run_sweep`` in the main process
    after the data is loaded and before any trial (e.g. train a distillation teacher); workers never
    receive it. ``pruner='mo_asha'``: multi-objective early stopping (``lab.search.mo_asha``), any number
    of objectives; ``mo_asha`` is its ``MOASHA(eta=, min_epochs=)`` (``None`` = ``MOASHA()``)."""

    name: str
    space: SearchSpace
    data: Any
    recipe: Any
    objectives: tuple[Objective, ...] = (Objective(name="top1"),)
    constraints: Constraints = field(default_factory=Constraints)
    budget: Budget = field(default_factory=Budget)
    kind: str = "nas"
    description: str = ""
    sampler: str = "auto"
    pruner: str = "median"
    seed: int = 0
    seeds: tuple[int, ...] = (0,)
    zero_cost: tuple[str, ...] = ()
    measure: MeasureSpec = field(default_factory=MeasureSpec)
    synth: Any = None
    heartbeat_s: float = 30.0
    trial_threads: int = 1
    reference_points: tuple[str, ...] = ()
    prepare: Any = None
    mo_asha: Any = None

    def __post_init__(self) -> None:
        objs = tuple(Objective(name=o) if isinstance(o, str) else o for o in self.objectives)
        object.__setattr__(self, "objectives", objs)
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "zero_cost", tuple(self.zero_cost))
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise ExperimentError(f"experiment name {self.name!r}: use letters, digits, '-', '_' or '.' (it names "
                                  "the run directory and the Optuna study)")
        if not isinstance(self.space, SearchSpace):
            got = type(self.space).__name__
            raise ExperimentError(f"experiment {self.name}: space must be a SearchSpace, got {got}")
        if self.kind not in KINDS:
            raise ExperimentError(f"experiment {self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.sampler not in SAMPLERS:
            raise ExperimentError(f"experiment {self.name}: sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.pruner not in PRUNERS:
            raise ExperimentError(f"experiment {self.name}: pruner must be one of {PRUNERS}, got {self.pruner!r}")
        if not objs:
            raise ExperimentError(f"experiment {self.name}: needs at least one objective")
        if self.pruner == "mo_asha" or self.mo_asha is not None:
            self._check_mo_asha(objs)
        names = [o.name for o in objs]
        if len(set(names)) != len(names):
            raise ExperimentError(f"experiment {self.name}: objective listed twice in {names}")
        for o in objs:
            if o.name.startswith("zc.") and o.name[3:] not in self.zero_cost:
                raise ExperimentError(f"objective {o.name}: add {o.name[3:]!r} to zero_cost=(...) so it is computed")
        if not self.seeds or not all(isinstance(s, int) for s in self.seeds):
            raise ExperimentError(f"experiment {self.name}: seeds must be a non-empty tuple of ints, "
                                  f"got {self.seeds!r}")
        if not isinstance(self.trial_threads, int) or self.trial_threads < 1:
            raise ExperimentError(f"experiment {self.name}: trial_threads must be an int >= 1")
        if self.heartbeat_s <= 0:
            raise ExperimentError(f"experiment {self.name}: heartbeat_s must be > 0")
        if self.sampler == "grid":
            try:
                self.space.grid()
            except SpaceError as exc:
                raise ExperimentError(f"experiment {self.name}: sampler='grid': {exc}") from None

    def _check_mo_asha(self, objs: tuple[Objective, ...]) -> None:
        from lab.search.mo_asha import MOASHA

        if self.pruner != "mo_asha":
            raise ExperimentError(f"experiment {self.name}: mo_asha=... is set but pruner={self.pruner!r}; "
                                  "set pruner='mo_asha' (or drop mo_asha)")
        if self.mo_asha is not None and not isinstance(self.mo_asha, MOASHA):
            raise ExperimentError(f"experiment {self.name}: mo_asha must be a lab.search.mo_asha.MOASHA, "
                                  f"got {type(self.mo_asha).__name__}")
        if not any(o.needs_training for o in objs):
            raise ExperimentError(f"experiment {self.name}: pruner='mo_asha' stops training early, but no objective "
                                  "needs training (add top1, or use pruner='none')")
        epochs = getattr(self.recipe, "epochs", None)
        if isinstance(epochs, int):
            try:
                (self.mo_asha or MOASHA()).check(epochs)
            except ValueError as exc:
                raise ExperimentError(f"experiment {self.name}: {exc}") from None

    # -- derived ---------------------------------------------------------------------------------
    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def needs_training(self) -> bool:
        return any(o.needs_training for o in self.objectives)

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    def resolved_sampler(self) -> str:
        if self.sampler != "auto":
            return self.sampler
        if self.kind == "ablation":
            try:
                self.space.grid()
                return "grid"
            except SpaceError:
                return "random"
        return "nsga2" if self.multi_objective else "tpe"

    def validate(self) -> None:
        """Check the space against the base config and recipe (runs before any work)."""
        try:
            self.space.validate(recipe=type(self.recipe))
        except SpaceError as exc:
            raise ExperimentError(f"experiment {self.name}: search space: {exc}") from None
        for attr, typename in (("data", "DataSpec"), ("recipe", "ProxyRecipe")):
            value = getattr(self, attr)
            if type(value).__name__ != typename:
                got = type(value).__name__
                raise ExperimentError(f"experiment {self.name}: {attr} must be a {typename}, got {got}")
        if self.zero_cost:
            from lab.search.pipeline import zero_cost_available

            missing = [z for z in self.zero_cost if not zero_cost_available(z)]
            if missing:
                raise ExperimentError(f"experiment {self.name}: zero-cost proxies {missing} are not available here")

    def to_json(self) -> dict[str, Any]:
        """The ``experiment.json`` content (run metadata is added by the runner)."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "objectives": [{"name": o.name, "direction": o.direction} for o in self.objectives],
            "constraints": self.constraints.to_dict(),
            "dataset": _asdict(self.data),
            "recipe": self.recipe.to_dict() if hasattr(self.recipe, "to_dict") else _asdict(self.recipe),
            "base": self.space.base,
            "space": self.space.describe(),
            "budget": dataclasses.asdict(self.budget),
            "sampler": self.resolved_sampler(),
            "pruner": self.pruner,
            **({"mo_asha": (self.mo_asha or _default_mo_asha()).to_dict()} if self.pruner == "mo_asha" else {}),
            "seed": self.seed,
            "seeds": list(self.seeds),
            "zero_cost": list(self.zero_cost),
            "measure": dataclasses.asdict(self.measure),
        }
        if self.prepare is not None:
            out["prepare"] = getattr(self.prepare, "__qualname__", repr(self.prepare))
        if self.kind == "ablation":
            from lab.search.space import column_value

            seedless = [p.key for p in self.space.params if p.key != "recipe.seed"]  # seeds are repeats, not factors
            out["ablation"] = {
                "factors": [f"p.{k}" for k in seedless],
                "baseline": {f"p.{k}": column_value(v) for k, v in self.space.baseline().items() if k in seedless},
            }
        return out


def _default_mo_asha() -> Any:
    from lab.search.mo_asha import MOASHA

    return MOASHA()


def _asdict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        d = dataclasses.asdict(obj)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
    return obj


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and abs(v) >= 10_000:
        return f"{v:,}"
    return str(v)


def load_experiment(path: str | Path, *, validate: bool = True, scale: str | None = None,
                    data_root: str | Path | None = None) -> Experiment:
    """Import an ``experiments/*.py`` file and return its ``EXPERIMENT`` (validated).

    ``scale``: a named scale of the file (it defines ``SCALES``, a tuple of names, and
    ``scaled(name) -> Experiment``; ``EXPERIMENT`` is its default scale), e.g. ``"smoke"``.
    ``data_root``: an ImageNet-format folder (``train/``, ``val/``) replacing ``data.root``; the
    experiment's class subset and resolution are kept and nothing is generated."""
    p = Path(path)
    if not p.is_file():
        hint = ""
        folder = p.parent if str(p.parent) not in ("", ".") else Path("experiments")
        if folder.is_dir():
            names = sorted(x.name for x in folder.glob("*.py") if not x.name.startswith("_"))
            hint = f"; experiments in {folder}/: {', '.join(names)}" if names else ""
        raise ExperimentError(f"experiment file {str(path)!r} does not exist{hint}")
    if p.suffix != ".py":
        raise ExperimentError(f"experiment file {str(path)!r} must be a .py file defining EXPERIMENT")
    mod_name = f"_lab_experiment_{p.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, p)
    if spec is None or spec.loader is None:  # pragma: no cover - only for exotic paths
        raise ExperimentError(f"cannot import {p}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses defined in the file look their module up here
    root = str(Path(__file__).resolve().parents[2])
    added = root not in sys.path
    if added:
        sys.path.insert(0, root)  # experiment files import search_spaces/
    try:
        spec.loader.exec_module(module)
    except (ValueError, TypeError, ImportError) as exc:
        raise ExperimentError(f"{p}: {type(exc).__name__}: {exc}") from None
    exp = getattr(module, "EXPERIMENT", None)
    if not isinstance(exp, Experiment):
        raise ExperimentError(f"{p} must define EXPERIMENT = Experiment(...), found {type(exp).__name__}")
    if scale is not None:
        scales = tuple(getattr(module, "SCALES", ()))
        if not callable(getattr(module, "scaled", None)) or not scales:
            raise ExperimentError(f"{p} has no named scales (it defines no SCALES and scaled(name)); drop --scale")
        if scale not in scales:
            raise ExperimentError(f"--scale {scale!r} unknown for {p.name}; its scales: {', '.join(scales)}")
        try:
            exp = module.scaled(scale)
        except (ValueError, TypeError) as exc:
            raise ExperimentError(f"{p} scale {scale!r}: {type(exc).__name__}: {exc}") from None
        if not isinstance(exp, Experiment):
            raise ExperimentError(f"{p}: scaled({scale!r}) must return an Experiment, got {type(exp).__name__}")
    if data_root is not None:
        root = Path(data_root)
        if not (root / exp.data.train_dir).is_dir():
            raise ExperimentError(f"--data {str(data_root)!r}: expected an ImageNet-format folder with "
                                  f"{exp.data.train_dir}/ and {exp.data.val_dir}/ class sub-folders")
        exp = dataclasses.replace(exp, data=dataclasses.replace(exp.data, root=str(root)), synth=None)
    if validate:
        exp.validate()
    return exp
