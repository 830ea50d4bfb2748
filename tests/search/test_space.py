"""SearchSpace: dotted keys, ties, conditionals, encoding, validation, and the three shipped spaces."""

from __future__ import annotations

import importlib
import random
import sys
from pathlib import Path

import optuna
import pytest

import lab
from lab.config import ConfigError, config_id
from lab.search.space import Categorical, Cond, Float, Int, LogFloat, Param, SearchSpace, SpaceError, column_value
from lab.train import ProxyRecipe

ROOT = Path(__file__).resolve().parents[2]
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _space(**kw) -> SearchSpace:
    params = (
        Param("stages.*.mixer.d_state", Categorical((1, 2, 4))),
        Param("stages.1.mixer.local_ratio", Categorical((0.0, 0.1, 0.2))),
        Param("stages.1.mixer.local_kernels", Categorical(((3,), (3, 5, 7))),
              when=Cond("stages.1.mixer.local_ratio", ">", 0)),
        Param("stages.0.mixer.wavelet_type", Categorical(("db1", "db2")), tie=("stages.2.mixer.wavelet_type",)),
        Param("stages.2.depth", Int(1, 3)),
        Param("drop_path", Float(0.0, 0.2)),
        Param("recipe.lr", LogFloat(1e-4, 1e-2)),
    )
    return SearchSpace(base="mobilemamba_tiny", params=params, **kw)


def test_to_config_applies_every_key_and_matches_hand_built_config():
    s = _space()
    values = {"stages.*.mixer.d_state": 4, "stages.1.mixer.local_ratio": 0.1,
              "stages.1.mixer.local_kernels": (3, 5, 7), "stages.0.mixer.wavelet_type": "db2",
              "stages.2.depth": 2, "drop_path": 0.1, "recipe.lr": 3e-3}
    cfg = s.to_config(values)
    base = lab.get_config("mobilemamba_tiny")
    want = base.with_mixer(d_state=4).with_stage_mixer(1, local_ratio=0.1, local_kernels=(3, 5, 7))
    want = want.with_stage_mixer(0, wavelet_type="db2").with_stage_mixer(2, wavelet_type="db2")
    stages = list(want.stages)
    import dataclasses

    stages[2] = dataclasses.replace(stages[2], depth=2)
    want = want.replace(stages=tuple(stages), drop_path=0.1)
    assert cfg == want
    assert config_id(cfg) == config_id(s.to_config(dict(values)))  # pure: same dict, same network
    assert s.to_recipe(values, ProxyRecipe()).lr == 3e-3
    assert s.to_recipe({}, ProxyRecipe()) == ProxyRecipe()


def test_fixed_overrides_apply_before_knobs():
    s = SearchSpace(base="mobilemamba_tiny", fixed={"stages.0.dim": 16, "recipe.epochs": 1},
                    params=(Param("stages.0.depth", Int(1, 2)),))
    cfg = s.to_config({"stages.0.depth": 2})
    assert cfg.stages[0].dim == 16 and cfg.stages[0].depth == 2
    assert s.to_recipe({}, ProxyRecipe()).epochs == 1


def test_invalid_combination_raises_config_error():
    s = SearchSpace(base="mobilemamba_tiny", params=(Param("stages.0.mixer.global_ratio", Float(0.0, 1.0)),))
    with pytest.raises(ConfigError, match="global_ratio"):
        s.to_config({"stages.0.mixer.global_ratio": 0.95})  # + local 0.2 > 1


def test_conditional_knob_sampled_only_when_condition_holds():
    s = _space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_on = seen_off = 0
    for _ in range(30):
        trial = study.ask()
        v = s.sample(trial)
        active = v["stages.1.mixer.local_ratio"] > 0
        assert ("stages.1.mixer.local_kernels" in v) == active
        assert ("stages.1.mixer.local_kernels" in trial.params) == active
        seen_on += active
        seen_off += not active
        if active:
            assert isinstance(v["stages.1.mixer.local_kernels"], tuple)
        study.tell(trial, 0.0)
    assert seen_on and seen_off


def test_resolve_decodes_labels_and_drops_inactive():
    s = _space()
    raw = {"stages.1.mixer.local_ratio": 0.0, "stages.1.mixer.local_kernels": "[3, 5, 7]", "stages.2.depth": 3}
    assert s.resolve(raw) == {"stages.1.mixer.local_ratio": 0.0, "stages.2.depth": 3}
    raw["stages.1.mixer.local_ratio"] = 0.2
    assert s.resolve(raw)["stages.1.mixer.local_kernels"] == (3, 5, 7)
    with pytest.raises(SpaceError, match="unknown knob"):
        s.resolve({"stages.9.dim": 3})
    with pytest.raises(SpaceError, match="outside"):
        s.resolve({"stages.2.depth": 7})


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("stages.0.mixer.wavelet_level", "no field 'stages.0.mixer.wavelet_level'"),
        ("stages.5.dim", "indexes 3 stages"),
        ("stages.0.mixer", "names a group"),
        ("recipe.learning_rate", "not a ProxyRecipe field"),
        ("widths", "no field 'widths'"),
    ],
)
def test_validate_names_the_unknown_field(key, fragment):
    s = SearchSpace(base="mobilemamba_tiny", params=(Param(key, Categorical((1, 2))),))
    with pytest.raises(SpaceError, match=fragment.replace(".", r"\.")):
        s.validate()


def test_validate_rejects_bad_base_and_condition():
    with pytest.raises(SpaceError, match="base preset"):
        SearchSpace(base="mobilemamba_nope", params=()).validate()
    s = SearchSpace(base="mobilemamba_tiny",
                    params=(Param("stages.0.depth", Int(1, 2), when=Cond("stages.0.nothing", "==", 1)),))
    with pytest.raises(SpaceError, match="condition"):
        s.validate()


def test_distribution_checks():
    with pytest.raises(SpaceError):
        Int(3, 1)
    with pytest.raises(SpaceError):
        Float(0.0, 1.0, log=True)
    with pytest.raises(SpaceError):
        Categorical(((3,), [3]))
    with pytest.raises(SpaceError, match="declared twice"):
        SearchSpace(base="mobilemamba_tiny", params=(Param("drop_path", Float(0, 0.1)),
                                                     Param("drop_path", Float(0, 0.2))))


def test_grid_and_baseline():
    s = SearchSpace(base="mobilemamba_tiny", params=(Param("stages.*.mixer.wavelet_levels", Categorical((0, 1))),
                                                     Param("stages.0.mixer.local_kernels", Categorical(((3,), (7,)))),
                                                     Param("stages.0.depth", Int(1, 3))))
    assert s.grid() == {"stages.*.mixer.wavelet_levels": [0, 1], "stages.0.mixer.local_kernels": ["[3]", "[7]"],
                        "stages.0.depth": [1, 2, 3]}
    assert s.baseline() == {"stages.*.mixer.wavelet_levels": 1, "stages.0.mixer.local_kernels": (7,),
                            "stages.0.depth": 1}
    with pytest.raises(SpaceError, match="step"):
        SearchSpace(base="mobilemamba_tiny", params=(Param("drop_path", Float(0, 0.1)),)).grid()
    assert column_value((3, 5)) == "[3, 5]" and column_value(2) == 2


def test_ray_param_space_round_trips_through_resolve():
    pytest.importorskip("ray.tune", reason="ray[tune] not installed (pip install -e '.[ray]')")
    s = _space()
    domains = s.ray_param_space()
    assert set(domains) == {p.key for p in s.params}
    rng = random.Random(0)
    for _ in range(10):
        raw = {k: d.sample(random_state=rng.randint(0, 10**6)) for k, d in domains.items()}
        v = s.resolve(raw)
        assert 1 <= v["stages.2.depth"] <= 3 and 1e-4 <= v["recipe.lr"] <= 1e-2


@pytest.mark.parametrize("name", ["mrffi_ablation", "mobilemamba_nas", "hparams"])
def test_shipped_spaces_validate_and_sample(name):
    sys.path.insert(0, str(ROOT))
    try:
        mod = importlib.import_module(f"search_spaces.{name}")
    finally:
        sys.path.remove(str(ROOT))
    assert mod.__doc__ and len(mod.__doc__.split()) > 30  # the question it answers
    s = mod.SPACE
    s.validate()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    ids = set()
    for _ in range(20):
        trial = study.ask()
        values = s.sample(trial)
        try:
            ids.add(config_id(s.to_config(values)))
        except ConfigError:
            pass
        study.tell(trial, 0.0)
    assert len(ids) >= (1 if name == "hparams" else 10)
    base = lab.get_config(s.base)
    assert s.to_config({}) == base


@pytest.mark.parametrize("name", ["quickstart", "mrffi_ablation", "hparams"])
def test_shipped_experiments_load_and_their_baseline_is_in_the_space(name):
    from lab.search import load_experiment

    exp = load_experiment(ROOT / "experiments" / f"{name}.py")
    meta = exp.to_json()
    assert meta["name"] == name and meta["objectives"] and meta["base"] == exp.space.base
    for key, value in exp.space.baseline().items():  # the official setting is one of the samples
        dist = next(p.dist for p in exp.space.params if p.key == key)
        if isinstance(dist, Categorical):
            assert value in dist.choices, (key, value)
