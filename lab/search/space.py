"""``SearchSpace``: the knobs a sweep varies over a base preset, and the pure map back to configs.

A space is a base preset name plus an ordered tuple of ``Param``. Each ``Param`` names a dotted
key into the model config (``stages.1.mixer.global_ratio``, ``stages.0.depth``, ``drop_path``;
``stages.*.mixer.d_state`` ties one value to every stage) or into the proxy recipe
(``recipe.lr``), a distribution (``Categorical``, ``Int``, ``Float``; ``log=True`` for log
scales), optional extra keys that receive the same value (``tie``), and an optional condition
(``when=Cond("stages.0.mixer.local_ratio", ">", 0)``): a conditional knob is only sampled, and
only applied, when its condition holds on the values sampled before it (or on the base config).

The same space drives both backends: ``sample(optuna_trial)`` (define-by-run, conditionals
native) and ``ray_param_space()`` (flat Ray Tune domains; conditions are applied afterwards by
``resolve``). ``to_config(params)`` / ``to_recipe(params, recipe)`` are pure functions of the
flat dotted-key dict, so a row of ``trials.parquet`` rebuilds its network exactly.
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from lab.config import ConfigError, ModelConfig

RECIPE_PREFIX = "recipe."
MEASURE_PREFIX = "measure."
_OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}
_PRIMITIVE = (bool, int, float, str, type(None))


class SpaceError(ValueError):
    """A search space is malformed (unknown key, bad range, bad condition); the message says the fix."""


@dataclass(frozen=True)
class Categorical:
    """One of ``choices`` (any JSON-able values; tuples such as kernel sets are fine)."""

    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        choices = tuple(tuple(c) if isinstance(c, list) else c for c in self.choices)
        object.__setattr__(self, "choices", choices)
        if not choices:
            raise SpaceError("Categorical needs at least one choice")
        labels = [_label(c) for c in choices]
        if len(set(labels)) != len(labels):
            raise SpaceError(f"Categorical choices must be distinct, got {choices}")

    @property
    def encoded(self) -> bool:
        """Non-primitive choices (tuples) are passed to Optuna/Ray as JSON labels."""
        return not all(isinstance(c, _PRIMITIVE) for c in self.choices)

    def labels(self) -> list[Any]:
        return [_label(c) for c in self.choices] if self.encoded else list(self.choices)

    def decode(self, raw: Any) -> Any:
        if not self.encoded:
            if raw not in self.choices:
                raise SpaceError(f"{raw!r} is not one of {self.choices}")
            return raw
        for c in self.choices:
            if _label(c) == raw or c == raw or (isinstance(raw, list) and tuple(raw) == c):
                return c
        raise SpaceError(f"{raw!r} is not one of {self.choices}")


@dataclass(frozen=True)
class Int:
    """An int in ``[low, high]`` (inclusive) on a grid of ``step``; ``log`` samples log-uniformly."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self) -> None:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high, self.step)):
            raise SpaceError(f"Int bounds and step must be ints, got {self}")
        if self.low > self.high or self.step < 1:
            raise SpaceError(f"Int needs low <= high and step >= 1, got {self}")
        if self.log and (self.low < 1 or self.step != 1):
            raise SpaceError(f"Int(log=True) needs low >= 1 and step 1, got {self}")

    def decode(self, raw: Any) -> int:
        v = int(raw)
        if not self.low <= v <= self.high:
            raise SpaceError(f"{raw!r} is outside [{self.low}, {self.high}]")
        return v

    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))


@dataclass(frozen=True)
class Float:
    """A float in ``[low, high]``; ``log=True`` for log-uniform (learning rates), ``step`` for a grid."""

    low: float
    high: float
    step: float | None = None
    log: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise SpaceError(f"Float needs finite low <= high, got {self}")
        if self.log and (self.low <= 0 or self.step is not None):
            raise SpaceError(f"Float(log=True) needs low > 0 and no step, got {self}")
        if self.step is not None and self.step <= 0:
            raise SpaceError(f"Float step must be > 0, got {self}")

    def decode(self, raw: Any) -> float:
        v = float(raw)
        if not self.low - 1e-12 <= v <= self.high + 1e-12:
            raise SpaceError(f"{raw!r} is outside [{self.low}, {self.high}]")
        return v

    def values(self) -> list[float]:
        if self.step is None:
            raise SpaceError(f"a grid needs discrete knobs; give Float({self.low}, {self.high}) a step")
        n = int(round((self.high - self.low) / self.step))
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]


@dataclass(frozen=True, init=False)
class Variants(Categorical):
    """Named structural variants: a Categorical of names, each name mapping to dotted-key overrides
    (``"stages.*.mixer.local_ratio": 0.0``; ``recipe.*`` and ``measure.*`` keys allowed) applied
    together. ``baseline`` names the official setting (the ablation's reference row); the table
    shows the names. ``Param("variant", Variants({...}, baseline="full MRFFI"))``: the key is a free
    label (not a config field)."""

    options: Mapping[str, Mapping[str, Any]]
    baseline: str

    def __init__(self, options: Mapping[str, Mapping[str, Any]], *, baseline: str) -> None:
        if not isinstance(options, Mapping) or not options:
            raise SpaceError("Variants needs a non-empty {name: {dotted key: value}} mapping")
        opts: dict[str, dict[str, Any]] = {}
        for name, overrides in options.items():
            if not isinstance(name, str) or not name:
                raise SpaceError(f"Variants names must be non-empty strings, got {name!r}")
            if not isinstance(overrides, Mapping):
                raise SpaceError(f"variant {name!r}: overrides must be a {{dotted key: value}} dict, "
                                 f"got {type(overrides).__name__}")
            opts[name] = {str(k): tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        if baseline not in opts:
            raise SpaceError(f"Variants baseline {baseline!r} is not one of the names {list(opts)}")
        object.__setattr__(self, "options", opts)
        object.__setattr__(self, "baseline", baseline)
        object.__setattr__(self, "choices", tuple(opts))
        self.__post_init__()

    def __hash__(self) -> int:
        return hash(json.dumps(self.options, sort_keys=True, default=str))

    def overrides(self, name: str) -> dict[str, Any]:
        """The dotted-key overrides of variant ``name``."""
        if name not in self.options:
            raise SpaceError(f"variant {name!r} unknown; variants: {list(self.options)}")
        return dict(self.options[name])


Distribution = Union[Categorical, Int, Float]  # noqa: UP007 - used at runtime in isinstance checks


def LogFloat(low: float, high: float) -> Float:  # noqa: N802 - reads like the other distributions
    """Log-uniform float (shorthand for ``Float(low, high, log=True)``)."""
    return Float(low, high, log=True)


@dataclass(frozen=True)
class Cond:
    """``key op value``; ``key`` is an earlier knob or a base-config field."""

    key: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise SpaceError(f"condition operator {self.op!r} unknown; use one of {sorted(_OPS)}")

    def holds(self, value: Any) -> bool:
        return bool(_OPS[self.op](value, self.value))


@dataclass(frozen=True)
class Param:
    """One knob: ``key`` (dotted, ``*`` = every stage), its distribution, ``tie`` (more keys set to
    the same value) and ``when`` (sample only when this holds)."""

    key: str
    dist: Distribution
    tie: tuple[str, ...] = ()
    when: Cond | None = None

    def __post_init__(self) -> None:
        if isinstance(self.tie, str):
            object.__setattr__(self, "tie", (self.tie,))
        if not isinstance(self.dist, (Categorical, Int, Float)):
            raise SpaceError(f"{self.key}: dist must be Categorical, Int or Float, got {type(self.dist).__name__}")

    @property
    def targets(self) -> tuple[str, ...]:
        return (self.key, *self.tie)

    def updates(self, value: Any) -> dict[str, Any]:
        """Dotted-key updates for the value ``value`` of this knob (a variant's overrides, else every target)."""
        if isinstance(self.dist, Variants):
            return self.dist.overrides(value)
        return {key: value for key in self.targets}


@dataclass(frozen=True, kw_only=True)
class SearchSpace:
    """Knobs over a base preset. ``fixed`` applies dotted-key overrides to every sample (e.g. a
    proxy resolution) before the sampled ones."""

    base: str
    params: tuple[Param, ...]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "fixed", dict(self.fixed))
        keys = [p.key for p in self.params]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise SpaceError(f"knob(s) {dup} declared twice; keep one Param per key")

    # -- validation ---------------------------------------------------------------------------
    def base_config(self) -> ModelConfig:
        from lab.models import get_config

        try:
            return get_config(self.base)
        except (KeyError, ValueError) as exc:
            raise SpaceError(f"base preset {self.base!r}: {exc}") from None

    def validate(self, *, recipe: Any = None) -> None:
        """Check every key resolves against the base config (or ``ProxyRecipe``) and every
        condition refers to an earlier knob or an existing field; raise ``SpaceError`` naming it."""
        base = _plain(self.base_config().to_dict())
        recipe_fields = _recipe_fields(recipe)
        for key in self.fixed:
            _check_key(key, base, recipe_fields, what="fixed")
        seen: set[str] = set()
        for p in self.params:
            if isinstance(p.dist, Variants):
                if p.tie:
                    raise SpaceError(f"knob {p.key!r}: Variants take no tie; put the keys in each variant's overrides")
                for name in p.dist.choices:
                    for key in p.dist.overrides(name):
                        _check_key(key, base, recipe_fields, what=f"variant {name!r} of {p.key!r}")
                    try:
                        self.to_config({p.key: name})
                    except (ConfigError, SpaceError) as exc:
                        raise SpaceError(f"variant {name!r} of {p.key!r}: {exc}") from None
                seen.add(p.key)
                continue
            for key in p.targets:
                _check_key(key, base, recipe_fields, what=f"knob {p.key!r}")
            if p.when is not None and p.when.key not in seen:
                _check_key(p.when.key, base, recipe_fields, what=f"condition of {p.key!r}")
                if "*" in p.when.key:
                    raise SpaceError(f"condition of {p.key!r}: {p.when.key!r} must name one field (no '*')")
            seen.add(p.key)
        cfg = self.to_config({})
        if not isinstance(cfg, ModelConfig):  # pragma: no cover - to_config raises on its own
            raise SpaceError("the base config with the fixed overrides is not a ModelConfig")

    # -- sampling -----------------------------------------------------------------------------
    def sample(self, trial: Any) -> dict[str, Any]:
        """Sample the active knobs from an Optuna trial (define-by-run); returns decoded values."""
        values: dict[str, Any] = {}
        base = None
        for p in self.params:
            if p.when is not None:
                if p.when.key in values:
                    ref = values[p.when.key]
                else:
                    base = base or self._flat_base()
                    ref = _lookup(base, p.when.key)
                if not p.when.holds(ref):
                    continue
            values[p.key] = _suggest(trial, p)
        return values

    def resolve(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Decode raw sampler values (Ray configs, Optuna params, table cells) and drop knobs whose
        condition does not hold; unknown keys are an error."""
        known = {p.key: p for p in self.params}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise SpaceError(f"unknown knob(s) {unknown}; this space has {sorted(known)}")
        values: dict[str, Any] = {}
        base = None
        for p in self.params:
            if p.key not in raw:
                continue
            if p.when is not None:
                if p.when.key in values:
                    ref = values[p.when.key]
                else:
                    base = base or self._flat_base()
                    ref = _lookup(base, p.when.key)
                if not p.when.holds(ref):
                    continue
            values[p.key] = p.dist.decode(raw[p.key])
        return values

    def ray_param_space(self) -> dict[str, Any]:
        """Flat Ray Tune domains keyed by knob; conditional knobs are sampled always and dropped by
        ``resolve`` when inactive (Ray's dict spaces have no conditionals)."""
        from ray import tune

        out: dict[str, Any] = {}
        for p in self.params:
            d = p.dist
            if isinstance(d, Categorical):
                out[p.key] = tune.choice(d.labels())
            elif isinstance(d, Int):
                if d.log:
                    out[p.key] = tune.lograndint(d.low, d.high + 1)
                else:
                    out[p.key] = tune.qrandint(d.low, d.high, d.step)
            elif d.log:
                out[p.key] = tune.loguniform(d.low, d.high)
            elif d.step is not None:
                out[p.key] = tune.quniform(d.low, d.high, d.step)
            else:
                out[p.key] = tune.uniform(d.low, d.high)
        return out

    def grid(self) -> dict[str, list[Any]]:
        """Optuna ``GridSampler`` search space (every knob must be discrete)."""
        out: dict[str, list[Any]] = {}
        for p in self.params:
            d = p.dist
            out[p.key] = d.labels() if isinstance(d, Categorical) else d.values()
        return out

    # -- mapping back -------------------------------------------------------------------------
    def to_config(self, params: Mapping[str, Any]) -> ModelConfig:
        """The ``ModelConfig`` for a flat dotted-key dict of decoded knob values (recipe keys are
        ignored here). Pure: same dict, same config. Invalid combinations raise ``ConfigError``."""
        d = _plain(self.base_config().to_dict())
        updates = dict(self.fixed)
        for p in self.params:
            if p.key in params:
                updates.update(p.updates(params[p.key]))
        for key, value in updates.items():
            if not key.startswith((RECIPE_PREFIX, MEASURE_PREFIX)):
                _assign(d, key, value)
        try:
            return ModelConfig.from_dict(d)
        except TypeError as exc:
            raise ConfigError(f"config from {dict(params)}: {exc}") from None

    def to_recipe(self, params: Mapping[str, Any], recipe: Any) -> Any:
        """``recipe`` with the ``recipe.*`` knobs (and fixed overrides) applied."""
        changes = {k[len(RECIPE_PREFIX):]: v for k, v in self.fixed.items() if k.startswith(RECIPE_PREFIX)}
        for p in self.params:
            if p.key in params:
                for key, value in p.updates(params[p.key]).items():
                    if key.startswith(RECIPE_PREFIX):
                        changes[key[len(RECIPE_PREFIX):]] = value
        return dataclasses.replace(recipe, **changes) if changes else recipe

    def to_measure(self, params: Mapping[str, Any], spec: Any) -> Any:
        """``spec`` (a ``MeasureSpec``) with the ``measure.*`` overrides (fixed, then knobs) applied:
        e.g. a variant timing the unfused network (``measure.fused``) without retraining it."""
        changes = {k[len(MEASURE_PREFIX):]: v for k, v in self.fixed.items() if k.startswith(MEASURE_PREFIX)}
        for p in self.params:
            if p.key in params:
                for key, value in p.updates(params[p.key]).items():
                    if key.startswith(MEASURE_PREFIX):
                        changes[key[len(MEASURE_PREFIX):]] = value
        return dataclasses.replace(spec, **changes) if changes else spec

    def baseline(self) -> dict[str, Any]:
        """Base-config (and default-recipe) value of every knob: the ablation's reference point."""
        flat = self._flat_base()
        out = {}
        for p in self.params:
            if isinstance(p.dist, Variants):
                out[p.key] = p.dist.baseline
                continue
            key = p.key.replace("*", "0")
            if key.startswith(RECIPE_PREFIX):
                from lab.train.recipe import ProxyRecipe

                out[p.key] = getattr(ProxyRecipe(), key[len(RECIPE_PREFIX):])
            else:
                value = _lookup(flat, key)
                out[p.key] = tuple(value) if isinstance(value, list) else value
        return out

    def describe(self) -> dict[str, Any]:
        """JSON-able summary (written into experiment.json)."""
        return {
            "base": self.base,
            "fixed": {k: _jsonable(v) for k, v in self.fixed.items()},
            "params": [
                {
                    "key": p.key,
                    "dist": type(p.dist).__name__,
                    **{k: _jsonable(v) for k, v in dataclasses.asdict(p.dist).items()},
                    "tie": list(p.tie),
                    "when": None if p.when is None else [p.when.key, p.when.op, _jsonable(p.when.value)],
                }
                for p in self.params
            ],
        }

    def _flat_base(self) -> dict[str, Any]:
        d = _plain(self.base_config().to_dict())
        for key, value in self.fixed.items():
            if not key.startswith((RECIPE_PREFIX, MEASURE_PREFIX)):
                _assign(d, key, value)
        return d


def column_value(value: Any) -> Any:
    """How a knob value is stored in a ``p.<key>`` table column (tuples as JSON text)."""
    return json.dumps(list(value)) if isinstance(value, (tuple, list)) else value


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    """Config dict with lists instead of tuples (mutable, and how JSON sees it)."""
    return json.loads(json.dumps(d))


def _label(choice: Any) -> str:
    return json.dumps(list(choice) if isinstance(choice, tuple) else choice)


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def _suggest(trial: Any, p: Param) -> Any:
    d = p.dist
    if isinstance(d, Categorical):
        return d.decode(trial.suggest_categorical(p.key, d.labels()))
    if isinstance(d, Int):
        return trial.suggest_int(p.key, d.low, d.high, step=d.step, log=d.log)
    return trial.suggest_float(p.key, d.low, d.high, step=d.step, log=d.log)


def _recipe_fields(recipe: Any) -> set[str]:
    if recipe is None:
        from lab.train.recipe import ProxyRecipe

        recipe = ProxyRecipe
    return {f.name for f in dataclasses.fields(recipe)}


def _check_key(key: str, base: dict[str, Any], recipe_fields: set[str], *, what: str) -> None:
    if key.startswith(MEASURE_PREFIX):
        from lab.search.experiment import MeasureSpec

        known = {f.name for f in dataclasses.fields(MeasureSpec)}
        if key[len(MEASURE_PREFIX):] not in known:
            raise SpaceError(f"{what}: {key!r} is not a MeasureSpec field; known: {sorted(known)}")
        return
    if key.startswith(RECIPE_PREFIX):
        name = key[len(RECIPE_PREFIX):]
        if name not in recipe_fields:
            raise SpaceError(f"{what}: {key!r} is not a ProxyRecipe field; known: {sorted(recipe_fields)}")
        return
    try:
        _resolve_path(base, key)
    except SpaceError as exc:
        raise SpaceError(f"{what}: {exc}") from None


def _split(key: str) -> list[str]:
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise SpaceError(f"{key!r} is not a dotted key (e.g. 'stages.0.mixer.global_ratio')")
    return parts


def _resolve_path(d: dict[str, Any], key: str) -> None:
    """Raise ``SpaceError`` unless ``key`` names an existing leaf field of the config dict ``d``."""
    node: Any = d
    parts = _split(key)
    for i, part in enumerate(parts):
        here = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if part == "*":
                node = node[0]
                continue
            if not part.isdigit() or int(part) >= len(node):
                raise SpaceError(f"{key!r}: {here!r} indexes {len(node)} stages; use 0..{len(node) - 1} or '*'")
            node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node:
                raise SpaceError(f"{key!r}: the config has no field {here!r}; fields there: {sorted(node)}")
            node = node[part]
        else:
            raise SpaceError(f"{key!r}: {'.'.join(parts[:i])!r} is a value, not a group")
    if isinstance(node, dict):
        raise SpaceError(f"{key!r} names a group; name one of its fields: {sorted(node)}")


def _lookup(d: dict[str, Any], key: str) -> Any:
    if key.startswith(RECIPE_PREFIX):
        from lab.train.recipe import ProxyRecipe

        return getattr(ProxyRecipe(), key[len(RECIPE_PREFIX):])
    node: Any = d
    for part in _split(key):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _assign(d: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` (``*`` = every stage) in the nested config dict ``d`` in place."""
    parts = _split(key)

    def walk(node: Any, rest: Sequence[str]) -> None:
        head, tail = rest[0], rest[1:]
        if isinstance(node, list):
            idx = range(len(node)) if head == "*" else [int(head)]
            for i in idx:
                if tail:
                    walk(node[i], tail)
                else:
                    node[i] = value
        else:
            if head not in node:
                raise SpaceError(f"{key!r}: the config has no field {head!r}")
            if tail:
                walk(node[head], tail)
            else:
                node[head] = list(value) if isinstance(value, tuple) and head == "local_kernels" else value

    walk(d, parts)
