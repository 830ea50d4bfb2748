"""The per-trial pipeline: infeasible before training, duplicates reused, failures as rows; the run table."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pandas as pd
import pytest

import lab.train
from lab.data import DataSpec, ProxyData
from lab.search import Constraints, Experiment, ExperimentError, MeasureSpec, Objective
from lab.search.experiment import load_experiment
from lab.search.pipeline import BASE_COLUMNS, WorkerContext, evaluate
from lab.search.results import find_duplicate, to_frame
from lab.search.space import Categorical, Float, Param, SearchSpace
from lab.train import ProxyRecipe

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = SearchSpace(
    base="mobilemamba_tiny",
    fixed={"stages.0.dim": 16, "stages.1.dim": 32, "stages.2.dim": 48},
    params=(
        Param("stages.*.mixer.local_kernels", Categorical(((3,), (3, 5)))),
        Param("stages.2.depth", Categorical((1, 3))),
        Param("stages.0.mixer.global_ratio", Float(0.0, 1.0)),
    ),
)


def _data(seed: int = 0) -> ProxyData:
    rng = np.random.default_rng(seed)
    return ProxyData.from_arrays(
        rng.integers(0, 256, (16, 36, 36, 3), dtype=np.uint8), rng.integers(0, 4, 16),
        rng.integers(0, 256, (8, 36, 36, 3), dtype=np.uint8), np.arange(8) % 4, resolution=32,
    )


def _experiment(**kw) -> Experiment:
    base = dict(
        name="unit", space=SPACE, data=DataSpec(root="unused"),
        recipe=ProxyRecipe(epochs=1, batch_size=8, eval_batch_size=8, warmup_epochs=0.0),
        objectives=(Objective(name="top1"),), measure=MeasureSpec(timing=False),
    )
    base.update(kw)
    return Experiment(**base)


@pytest.fixture
def train_calls(monkeypatch):
    """Counts real train_proxy calls (the pipeline imports it from lab.train at call time)."""
    calls = []
    real = lab.train.train_proxy

    def spy(model, data, recipe, **kw):
        calls.append(recipe)
        return real(model, data, recipe, **kw)

    monkeypatch.setattr(lab.train, "train_proxy", spy)
    return calls


def test_constraint_makes_infeasible_rows_without_training(train_calls):
    ctx = WorkerContext(_experiment(constraints=Constraints(max_params=140_000)), data=_data(), cache_dir=None)
    small = evaluate(ctx, {"stages.2.depth": 1, "stages.0.mixer.global_ratio": 0.8}, trial=0)
    big = evaluate(ctx, {"stages.2.depth": 3, "stages.0.mixer.global_ratio": 0.8}, trial=1)
    assert small["params"] < 140_000 < big["params"], "the budget must split these two samples"
    assert small["status"] == "complete" and len(train_calls) == 1
    assert big["status"] == "infeasible"
    assert big["reason"] == f"constraint: params {big['params']:,} > max_params 140,000"
    assert big["train_seconds"] == 0.0 and big["epochs"] == 0 and math.isnan(big["top1"])
    assert len(train_calls) == 1, "an infeasible sample was trained"
    assert big["config_id"] and json.loads(big["config_json"])["stages"][2]["depth"] == 3


def test_invalid_sample_is_infeasible_with_config_error_message(train_calls):
    ctx = WorkerContext(_experiment(), data=_data(), cache_dir=None)
    row = evaluate(ctx, {"stages.0.mixer.global_ratio": 0.95}, trial=3)
    assert row["status"] == "infeasible"
    assert "global_ratio + local_ratio" in row["reason"] and row["reason"].startswith("invalid config:")
    assert not train_calls and row["config_id"] == ""


def test_duplicate_is_reused_not_retrained(train_calls):
    ctx = WorkerContext(_experiment(), data=_data(), cache_dir=None)
    first = evaluate(ctx, {"stages.*.mixer.local_kernels": (3, 5)}, trial=0)
    assert first["status"] == "complete" and len(train_calls) == 1
    lookups = []

    def lookup(key):
        lookups.append(key)
        return {**first, "trial": 0} if key == first["dup_key"] else None

    # global_ratio 0.8 is the base value: the same network as trial 0, sampled explicitly
    second = evaluate(ctx, {"stages.*.mixer.local_kernels": (3, 5), "stages.0.mixer.global_ratio": 0.8},
                      trial=1, find_duplicate=lookup)
    assert lookups == [first["dup_key"]] and second["config_id"] == first["config_id"]
    assert len(train_calls) == 1, "the duplicate was retrained"
    assert second["reused_from"] == 0.0 and second["train_seconds"] == 0.0
    assert (second["top1"], second["epoch_top1"], second["status"]) == (first["top1"], first["epoch_top1"], "complete")
    third = evaluate(ctx, {"stages.*.mixer.local_kernels": (3,)}, trial=2, find_duplicate=lookup)
    assert len(train_calls) == 2 and math.isnan(third["reused_from"])


def test_pruning_hook_stops_training_and_marks_pruned(train_calls):
    recipe = ProxyRecipe(epochs=2, batch_size=8, eval_batch_size=8, warmup_epochs=0.0)
    ctx = WorkerContext(_experiment(recipe=recipe), data=_data(), cache_dir=None)
    seen = []
    row = evaluate(ctx, {}, trial=0, on_epoch=lambda e, top1: seen.append((e, top1)) or True)
    assert seen and seen[0][0] == 1 and len(seen) == 1
    assert row["status"] == "pruned" and row["epochs"] == 1 and "epoch 1 of 2" in row["reason"]
    assert json.loads(row["epoch_top1"]) == [pytest.approx(seen[0][1], abs=1e-3)]


def test_training_error_is_a_failed_row(monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(lab.train, "train_proxy", boom)
    ctx = WorkerContext(_experiment(), data=_data(), cache_dir=None)
    row = evaluate(ctx, {}, trial=0)
    assert row["status"] == "failed" and row["reason"] == "RuntimeError: disk on fire"


def test_find_duplicate_points_at_the_original():
    study = optuna.create_study()
    rows = [
        {"dup_key": "a", "status": "infeasible", "reused_from": math.nan},
        {"dup_key": "a", "status": "complete", "reused_from": math.nan, "top1": 1.0},
        {"dup_key": "a", "status": "complete", "reused_from": 1.0, "top1": 1.0},
        {"dup_key": "b", "status": "complete", "reused_from": math.nan},
    ]
    for r in rows:
        t = study.ask()
        t.set_user_attr("row", json.dumps(r))
        study.tell(t, 0.0)
    hit = find_duplicate(study.get_trials(), "a")
    assert hit["trial"] == 1 and hit["top1"] == 1.0
    assert find_duplicate(study.get_trials(), "zzz") is None


def test_table_schema_and_dtypes():
    ctx = WorkerContext(_experiment(constraints=Constraints(max_params=140_000)), data=_data(), cache_dir=None)
    rows = [evaluate(ctx, {"stages.2.depth": 3}, trial=1), evaluate(ctx, {"stages.0.mixer.global_ratio": 0.99},
                                                                      trial=0)]
    rows[0]["zc.synflow"] = 1.5
    df = to_frame(rows)
    assert list(df.columns[: len(BASE_COLUMNS)]) == list(BASE_COLUMNS)
    assert {"p.stages.2.depth", "p.stages.0.mixer.global_ratio", "zc.synflow"} <= set(df.columns)
    for col in ("trial", "seed", "params", "flops", "epochs"):
        assert df[col].dtype == np.int64
    for col in ("top1", "top5", "throughput", "latency_ms", "train_seconds", "reused_from", "zc.synflow"):
        assert df[col].dtype == np.float64
    assert all(isinstance(v, str) for v in df["status"])
    assert pd.isna(df.loc[1, "p.stages.2.depth"])  # knob not sampled in that trial


def test_experiment_validation_errors(tmp_path):
    with pytest.raises(ExperimentError, match="contradictory constraints: min_params=5 > max_params=3"):
        Constraints(min_params=5, max_params=3)
    with pytest.raises(ExperimentError, match="objective 'accuracy' unknown"):
        Objective(name="accuracy")
    with pytest.raises(ExperimentError, match="zero_cost"):
        _experiment(objectives=(Objective(name="zc.synflow"),))
    with pytest.raises(ExperimentError, match="does not exist"):
        load_experiment(tmp_path / "nope.py")
    bad = tmp_path / "bad.py"
    bad.write_text("from lab.search import *\nfrom lab.search.space import *\nfrom lab.data import DataSpec\n"
                   "from lab.train import ProxyRecipe\n"
                   "EXPERIMENT = Experiment(name='bad', data=DataSpec(root='x'), recipe=ProxyRecipe(),\n"
                   "    space=SearchSpace(base='mobilemamba_tiny', params=(Param('stages.0.mixer.dstate',"
                   " Int(1, 4)),)))\n")
    with pytest.raises(ExperimentError, match="no field 'stages.0.mixer.dstate'"):
        load_experiment(bad)
    assert Objective(name="latency").name == "latency_ms" and Objective(name="flops").direction == "minimize"
