"""Named variants, the seed knob, named scales and the seven ablation definitions (no training here)."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import pytest

from lab.config import config_id
from lab.models import get_config
from lab.search import Experiment, ExperimentError, MeasureSpec, load_experiment
from lab.search.pipeline import trial_seeds
from lab.search.space import Categorical, Param, SearchSpace, SpaceError, Variants
from lab.train import ProxyRecipe

ROOT = Path(__file__).resolve().parents[2]
ABLATIONS = sorted(p for p in (ROOT / "experiments").glob("ablation_*.py") if p.stem != "ablation_common")
NAMES = [p.stem for p in ABLATIONS]


def _splits(cfg) -> list[tuple[int, int, int]]:
    return [dataclasses.astuple(s.mixer.split(s.dim)) for s in cfg.stages]


def _space(**variants) -> SearchSpace:
    return SearchSpace(base="mobilemamba_tiny",
                       params=(Param("variant", Variants(variants, baseline="official")),))


def test_seven_ablation_files_exist():
    assert set(NAMES) == {f"ablation_{n}" for n in (
        "mrffi_components", "wavelet_levels", "local_kernels", "channel_split", "ssm", "stages", "training")}


def test_variants_apply_overrides_per_stage_and_everywhere():
    space = _space(official={}, a={"stages.*.mixer.wavelet_levels": 2, "stages.1.mixer.global_ratio": 0.5},
                   b={"recipe.epochs": 7, "measure.fused": False, "stages.*.mixer.local_kernels": [3, 5]})
    space.validate()
    base = get_config("mobilemamba_tiny")
    assert config_id(space.to_config({"variant": "official"})) == config_id(base)
    a = space.to_config({"variant": "a"})
    assert [s.mixer.wavelet_levels for s in a.stages] == [2, 2, 2]
    assert [s.mixer.global_ratio for s in a.stages] == [0.8, 0.5, 0.6]
    b = space.to_config({"variant": "b"})
    assert all(s.mixer.local_kernels == (3, 5) for s in b.stages)
    assert space.to_recipe({"variant": "b"}, ProxyRecipe()).epochs == 7
    assert space.to_recipe({"variant": "a"}, ProxyRecipe()) == ProxyRecipe()
    assert space.to_measure({"variant": "b"}, MeasureSpec()).fused is False
    assert space.to_measure({"variant": "a"}, MeasureSpec()) == MeasureSpec()
    assert space.grid() == {"variant": ["official", "a", "b"]}
    assert space.baseline() == {"variant": "official"}
    json.dumps(space.describe())  # JSON-able, overrides included
    assert space.describe()["params"][0]["options"]["b"]["stages.*.mixer.local_kernels"] == [3, 5]
    again = pickle.loads(pickle.dumps(space))  # spawned workers receive the space pickled
    assert again.to_config({"variant": "a"}) == a


@pytest.mark.parametrize(("variants", "match"), [
    ({"official": {}, "bad": {"stages.*.mixer.no_such": 1}}, "variant 'bad'.*no field"),
    ({"official": {}, "bad": {"stages.5.dim": 8}}, "variant 'bad'.*indexes 3 stages"),
    ({"official": {}, "bad": {"recipe.nope": 1}}, "variant 'bad'.*not a ProxyRecipe field"),
    ({"official": {}, "bad": {"measure.nope": 1}}, "variant 'bad'.*not a MeasureSpec field"),
    ({"official": {}, "bad": {"stages.*.mixer.global_ratio": 0.9}}, "variant 'bad'.*global_ratio"),
])
def test_variants_validate_names_the_bad_variant(variants, match):
    with pytest.raises(SpaceError, match=match):
        _space(**variants).validate()


def test_variants_reject_bad_definitions():
    with pytest.raises(SpaceError, match="baseline 'nope' is not one of"):
        Variants({"a": {}}, baseline="nope")
    with pytest.raises(SpaceError, match="non-empty"):
        Variants({}, baseline="a")
    with pytest.raises(SpaceError, match="overrides must be"):
        Variants({"a": [1]}, baseline="a")
    with pytest.raises(SpaceError, match="unknown"):
        Variants({"a": {}}, baseline="a").overrides("b")


def test_seed_knob_gives_one_row_per_seed_and_is_not_a_factor():
    space = SearchSpace(base="mobilemamba_tiny", params=(
        Param("variant", Variants({"official": {}, "x": {"stages.*.mixer.d_state": 4}}, baseline="official")),
        Param("recipe.seed", Categorical((3, 4)))))
    from lab.data import DataSpec

    exp = Experiment(name="t", space=space, data=DataSpec(root="nowhere"), recipe=ProxyRecipe(), kind="ablation",
                     seeds=(0, 1))
    assert trial_seeds(exp, {"variant": "x", "recipe.seed": 4}) == (4,)
    assert trial_seeds(exp, {"variant": "x"}) == (0, 1)
    ab = exp.to_json()["ablation"]
    assert ab == {"factors": ["p.variant"], "baseline": {"p.variant": "official"}}
    assert exp.resolved_sampler() == "grid"


def test_scales_and_data_override(tmp_path):
    path = ROOT / "experiments" / "ablation_wavelet_levels.py"
    default, smoke = load_experiment(path), load_experiment(path, scale="smoke")
    assert default.name == "ablation_wavelet_levels" and smoke.name == "ablation_wavelet_levels-smoke"
    assert len(smoke.seeds) == 1 and len(default.seeds) >= 2
    with pytest.raises(ExperimentError, match="--scale 'huge' unknown.*default, smoke, imagenet100"):
        load_experiment(path, scale="huge")
    with pytest.raises(ExperimentError, match="ImageNet-format folder"):
        load_experiment(path, data_root=tmp_path)
    (tmp_path / "train").mkdir()
    on_data = load_experiment(path, scale="imagenet100", data_root=tmp_path)
    assert on_data.data.root == str(tmp_path) and on_data.synth is None
    assert on_data.data.classes == "imagenet100" and on_data.data.resolution == 64
    with pytest.raises(ExperimentError, match="no named scales"):
        load_experiment(ROOT / "experiments" / "quickstart.py", scale="smoke")


@pytest.mark.parametrize("path", ABLATIONS, ids=NAMES)
def test_ablation_definitions(path):
    """Grid over the variants x >= 2 seeds by default; the baseline row is the official preset and
    every other row changes something (the network, the recipe or the timing protocol)."""
    exp = load_experiment(path)
    assert exp.kind == "ablation" and exp.resolved_sampler() == "grid"
    variant = exp.space.params[0]
    assert isinstance(variant.dist, Variants)
    assert exp.space.to_recipe({}, exp.recipe).seed == exp.recipe.seed
    seeds = exp.space.grid()["recipe.seed"]
    assert len(seeds) >= 2 and exp.budget.n_trials == len(variant.dist.choices) * len(seeds)
    base = get_config(exp.space.base)
    names = list(variant.dist.choices)
    assert names[0] == variant.dist.baseline
    assert "official" in names[0]
    assert config_id(exp.space.to_config({"variant": names[0]})) == config_id(base)
    seen = set()
    for name in names:
        key = (config_id(exp.space.to_config({"variant": name})),
               exp.space.to_recipe({"variant": name}, exp.recipe), exp.space.to_measure({"variant": name}, exp.measure))
        assert key not in seen, f"variant {name!r} repeats another row"
        seen.add(key)
    assert exp.to_json()["ablation"]["baseline"] == {"p.variant": names[0]}


def test_mrffi_component_rows_remove_what_they_say():
    exp = load_experiment(ROOT / "experiments" / "ablation_mrffi_components.py")
    cfg = {n: exp.space.to_config({"variant": n}) for n in exp.space.params[0].dist.choices}
    assert _splits(cfg["full MRFFI (official)"]) == [(32, 0, 0), (48, 12, 4), (64, 28, 4)]
    assert all(g == 0 for g, _, _ in _splits(cfg["w/o WTE-Mamba (global -> local)"]))
    assert [sum(s) - i for s, i in zip(_splits(cfg["w/o WTE-Mamba (global -> local)"]), (0, 7, 10))] == [32, 57, 86]
    assert all(s.mixer.wavelet_levels == 0 and s.mixer.use_ssm for s in cfg["w/o wavelet (SSM only)"].stages)
    assert all(not s.mixer.use_ssm and s.mixer.wavelet_levels == 1 for s in cfg["w/o SSM (wavelet only)"].stages)
    assert all(loc == 0 for _, loc, _ in _splits(cfg["w/o MK-DeConv (local -> identity)"]))
    assert all(i >= s.dim // 8 for (_, _, i), s in zip(_splits(cfg["w/o identity elimination"]),
                                                       cfg["w/o identity elimination"].stages))


def test_channel_split_identity_zero_row():
    exp = load_experiment(ROOT / "experiments" / "ablation_channel_split.py")
    cfg = exp.space.to_config({"variant": "identity 0 (local takes the rest)"})
    assert [i for _, _, i in _splits(cfg)] == [0, 0, 0]


def test_four_stage_layout_matches_flops():
    import warnings

    from lab.measure.flops import count_flops
    from lab.models import build_model

    exp = load_experiment(ROOT / "experiments" / "ablation_stages.py")
    flops = {}
    for name in exp.space.params[0].dist.choices:
        cfg = exp.space.to_config({"variant": name}).replace(num_classes=10, img_size=64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flops[len(cfg.stages)] = count_flops(build_model(cfg).eval(), res=64, warn=False).paper
    assert set(flops) == {3, 4}
    assert abs(flops[4] / flops[3] - 1) < 0.10, flops


def test_training_rows_change_only_what_they_say(monkeypatch, tmp_path):
    path = ROOT / "experiments" / "ablation_training.py"
    exp = load_experiment(path)
    sp, names = exp.space, list(exp.space.params[0].dist.choices)
    base_cfg = config_id(sp.to_config({"variant": names[0]}))
    assert all(config_id(sp.to_config({"variant": n})) == base_cfg for n in names)  # same network everywhere
    unfused = next(n for n in names if "BN" in n)
    assert sp.to_recipe({"variant": unfused}, exp.recipe) == exp.recipe
    assert sp.to_measure({"variant": unfused}, exp.measure).fused is False
    dagger = sp.to_recipe({"variant": next(n for n in names if "†" in n)}, exp.recipe)
    assert dagger.teacher == exp.prepare.path and dagger.epochs == 3 * exp.recipe.epochs
    # a user's own teacher: no teacher is trained
    own = tmp_path / "teacher.pt"
    own.write_bytes(b"x")
    monkeypatch.setenv("LAB_KD_TEACHER", str(own))
    mine = load_experiment(path)
    assert mine.prepare is None
    assert mine.space.to_recipe({"variant": "+ KD"}, mine.recipe).teacher == str(own)
    monkeypatch.setenv("LAB_KD_TEACHER", str(tmp_path / "missing.pt"))
    with pytest.raises(ExperimentError, match="LAB_KD_TEACHER"):
        load_experiment(path)
