"""Multi-objective ASHA: the promotion rule on hand-made rungs (against a brute-force reference), the rung
schedule, the pipeline's ``stopped`` status, experiment validation, and a tiny optuna sweep replayed."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from lab.search.mo_asha import (
    MOASHA,
    Decision,
    Ledger,
    RungRecord,
    decide,
    epochs_saved,
    quota,
    rank_order,
    rung_vector,
)

MAXMIN = ("maximize", "minimize")  # (top1, flops)


# ----------------------------------------------------------------------------- reference ordering


def _ref_contribution(m, members, i, ref):
    """Exclusive hypervolume of ``i`` in ``members`` (minimisation) by inclusion-exclusion over subsets holding i."""
    others = [j for j in members if j != i]
    total = 0.0
    for r in range(len(others) + 1):
        for sub in itertools.combinations(others, r):
            pts = [i, *sub]
            vol = 1.0
            for k in range(len(ref)):
                vol *= max(0.0, ref[k] - max(m[p][k] for p in pts))
            total += (-1) ** r * vol
    return max(0.0, total)


def _ref_order(values, directions, trials):
    """Brute force: peel fronts by pairwise dominance, exclusive hypervolume by inclusion-exclusion against
    the nadir + 10% of the range, crowding by the textbook formula, sort by key."""
    m = [[v * (-1 if d == "maximize" else 1) for v, d in zip(row, directions)] for row in values]
    n, d = len(m), len(directions)
    ref = []
    for k in range(d):
        col = [row[k] for row in m]
        span = max(col) - min(col)
        span = span if span > 0 else (abs(max(col)) if max(col) != 0 else 1.0)
        ref.append(max(col) + 0.1 * span)
    box = 1.0
    for k in range(d):
        box *= max(abs(row[k] - ref[k]) for row in m)

    def dom(a, b):
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    front = [None] * n
    left, k = set(range(n)), 0
    while left:
        cur = {i for i in left if not any(dom(m[j], m[i]) for j in left if j != i)}
        for i in cur:
            front[i] = k
        left -= cur
        k += 1
    crowd = [0.0] * n
    for f in range(k):
        members = [i for i in range(n) if front[i] == f]
        if len(members) <= 2:
            for i in members:
                crowd[i] = math.inf
            continue
        for j in range(d):
            s = sorted(members, key=lambda i: m[i][j])  # stable, like the implementation's argsort
            span = m[s[-1]][j] - m[s[0]][j]
            crowd[s[0]] = crowd[s[-1]] = math.inf
            if span > 0:
                for a in range(1, len(s) - 1):
                    crowd[s[a]] += (m[s[a + 1]][j] - m[s[a - 1]][j]) / span
    contrib = [round(_ref_contribution(m, [j for j in range(n) if front[j] == front[i]], i, ref) / box, 9)
               for i in range(n)]
    order = sorted(range(n), key=lambda i: (front[i], -contrib[i], -crowd[i], trials[i]))
    return order, front


@pytest.mark.parametrize("seed", range(12))
def test_rank_order_matches_brute_force_on_random_rungs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 14))
    d = int(rng.integers(1, 4))
    directions = tuple(rng.choice(["maximize", "minimize"], size=d))
    # integer values from a small range: ties and identical points happen
    values = rng.integers(0, 5, size=(n, d)).astype(float) if seed % 2 else rng.normal(size=(n, d))
    trials = rng.permutation(100)[:n]
    order, front = rank_order(values, directions, trials)
    ref_order, ref_front = _ref_order(values.tolist(), directions, trials.tolist())
    assert front.tolist() == ref_front
    # crowding sums may differ in the last bit between the two; compare keys, then the order itself
    assert [int(i) for i in order] == ref_order


def test_dominated_trial_is_never_promoted_over_a_non_dominated_one():
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(200):
        n = int(rng.integers(2, 10))
        eta = int(rng.integers(2, 4))
        vals = rng.integers(0, 6, size=(n, 2)).astype(float)
        recs = [RungRecord(t, tuple(v)) for t, v in enumerate(vals)]
        ds = [decide(recs, t, MAXMIN, eta=eta, rung=1, epoch=1) for t in range(n)]
        assert sum(d.promoted for d in ds) == quota(n, eta)
        for a, b in itertools.permutations(ds, 2):
            if a.promoted and not b.promoted:
                assert a.front <= b.front, "a trial of a worse front was promoted over a better one"
                va, vb = vals[a.trial], vals[b.trial]
                assert not (vb[0] >= va[0] and vb[1] <= va[1] and (vb != va).any()), "promoted a dominated trial"
                checked += 1
    assert checked > 100


def test_hand_made_rung_fronts_and_quota():
    # (top1, flops): trial 0 dominates 1; 2 is cheap and weak (non-dominated); 3 is dominated by 0 and 2 but
    # not by 1; 5 is dominated by everyone
    recs = [RungRecord(0, (50.0, 100.0)), RungRecord(1, (40.0, 200.0)), RungRecord(2, (30.0, 50.0)),
            RungRecord(3, (20.0, 150.0)), RungRecord(4, (45.0, 80.0)), RungRecord(5, (10.0, 300.0))]
    order, front = rank_order([r.values for r in recs], MAXMIN, [r.trial for r in recs])
    assert front.tolist() == [0, 1, 0, 1, 0, 2]
    # reference point: top1 10 - 0.1 * 40 = 6, flops 300 + 0.1 * 250 = 325. Front 0 = {0, 2, 4}, exclusive
    # hypervolumes (flops width x top1 height): 0: (325 - 100) * (50 - 45) = 1125, 2: (80 - 50) * (30 - 6) = 720,
    # 4: (100 - 80) * (45 - 30) = 300; front 1 = {1, 3}: 1: (325 - 200) * (40 - 20) = 2500, 3: (200 - 150) * 14 = 700
    assert order.tolist() == [0, 2, 4, 1, 3, 5]
    d = [decide(recs, t, MAXMIN, eta=3, rung=2, epoch=3) for t in range(6)]
    assert [x.promoted for x in d] == [True, False, True, False, False, False]  # quota 6 // 3 = 2
    assert d[1].reason == "stopped at rung 2 (epoch 3): rank 4 of 6 (front 2), top 2 continue"
    assert d[4].position == 2 and d[4].front == 0 and not d[4].promoted  # on the front, but crowded out


def test_ties_inside_a_front_go_by_hypervolume_contribution_then_crowding_then_trial_number():
    # four non-dominated points (more top1 costs more flops); reference (10 - 3, 4 + 0.3) = (7, 4.3);
    # exclusive hypervolumes: 9: (2 - 1) * (10 - 7) = 3, 7: 1.5 * 10 = 15, 3: 0.5 * 15 = 7.5, 1: 0.3 * 5 = 1.5
    recs = [RungRecord(9, (10.0, 1.0)), RungRecord(7, (20.0, 2.0)), RungRecord(3, (35.0, 3.5)),
            RungRecord(1, (40.0, 4.0))]
    order, front = rank_order([r.values for r in recs], MAXMIN, [r.trial for r in recs])
    assert (front == 0).all()
    assert [recs[i].trial for i in order] == [7, 3, 9, 1]
    # a front of two with quota 1 (crowding: both ends inf): the newcomer that adds more volume continues --
    # trial 3 is much faster (cheaper) for a little less accuracy than trial 0
    # reference (42 - 0.8, 500 + 35) = (41.2, 535): 3 adds (379 - 150) * (46 - 41.2) = 1099, 0 adds 156 * 4 = 624
    pair = [RungRecord(0, (50.0, 379.0)), RungRecord(1, (42.0, 500.0)), RungRecord(3, (46.0, 150.0))]
    assert decide(pair, 3, MAXMIN, eta=3, rung=1, epoch=2).promoted
    assert not decide(pair, 0, MAXMIN, eta=3, rung=1, epoch=2).promoted
    # reference (8, 3.2): the middle adds 1 * 10, both ends 2 (1 * 2 and 0.2 * 10) and tie on crowding (inf) too,
    # so the lower trial number goes first
    sym = [RungRecord(6, (10.0, 1.0)), RungRecord(4, (20.0, 2.0)), RungRecord(5, (30.0, 3.0))]
    o, _ = rank_order([r.values for r in sym], MAXMIN, [r.trial for r in sym])
    assert [sym[i].trial for i in o] == [4, 5, 6]
    # identical vectors: the lower trial number wins, whatever the arrival order
    same = [RungRecord(8, (30.0, 3.0)), RungRecord(2, (30.0, 3.0))]
    assert decide(same, 2, MAXMIN, eta=2, rung=1, epoch=1).promoted
    assert not decide(same, 8, MAXMIN, eta=2, rung=1, epoch=1).promoted


def test_async_arrivals_respect_eta_and_first_arrival_rule():
    led = Ledger(MOASHA(eta=3, min_epochs=1), 9, ("maximize",))
    assert led.rungs == (1, 3)
    # descending accuracies: only the first arrival is ever ranked first
    got = [led.report(t, 1, (100.0 - t,)) for t in range(9)]
    assert [d.quota for d in got] == [1, 1, 1, 1, 1, 2, 2, 2, 3]
    assert [d.promoted for d in got] == [True] + [False] * 8
    # ascending accuracies: every arrival is the best so far
    led2 = Ledger(MOASHA(eta=3, min_epochs=1), 9, ("maximize",))
    assert all(led2.report(t, 1, (float(t),)).promoted for t in range(9))
    # a late arrival ranked 2nd of 6 (quota 2) continues, ranked 3rd of 7 (quota 2) stops
    led3 = Ledger(MOASHA(eta=3, min_epochs=1), 9, ("maximize",))
    for t, v in enumerate((50.0, 10.0, 20.0, 30.0, 5.0)):
        led3.report(t, 1, (v,))
    assert led3.report(5, 1, (40.0,)).promoted
    assert not led3.report(6, 1, (35.0,)).promoted
    # rungs: records are kept per rung; non-rung epochs, repeats and unmeasured values decide nothing
    assert led3.report(0, 2, (50.0,)) is None and led3.report(0, 1, (50.0,)) is None
    assert led3.report(99, 1, None) is None
    assert isinstance(led3.report(0, 3, (55.0,)), Decision) and len(led3.records[3]) == 1


def test_rung_schedule_and_bad_settings():
    assert MOASHA(eta=3, min_epochs=1).rungs(9) == (1, 3)
    assert MOASHA(eta=3, min_epochs=1).rungs(10) == (1, 3, 9)
    assert MOASHA(eta=2, min_epochs=2).rungs(8) == (2, 4)
    assert MOASHA(eta=2, min_epochs=3).rungs(3) == ()
    with pytest.raises(ValueError, match="raise recipe.epochs or lower min_epochs"):
        MOASHA(min_epochs=2).check(2)
    for bad in ({"eta": 1}, {"eta": 2.5}, {"min_epochs": 0}, {"eta": True}):
        with pytest.raises(ValueError, match="must be an int"):
            MOASHA(**bad)
    with pytest.raises(ValueError, match="exactly once"):
        decide([RungRecord(1, (1.0,))], 2, ("maximize",), eta=2, rung=1, epoch=1)
    with pytest.raises(ValueError, match="finite"):
        rank_order([[1.0, math.nan]], MAXMIN)


def test_rung_vector_replaces_trained_objectives_only():
    from lab.search import Objective

    objs = (Objective(name="top1"), Objective(name="flops"), Objective(name="top5"))
    assert rung_vector(objs, {"flops": 123, "top1": 99.0}, 42.0) == (42.0, 123.0, 42.0)
    assert rung_vector(objs, {"flops": math.nan}, 42.0) is None
    assert rung_vector(objs, {}, 42.0) is None


def test_epochs_saved_counts_stopped_rows_only():
    rows = [{"status": "stopped", "epochs": 1}, {"status": "stopped", "epochs": 3}, {"status": "complete", "epochs": 9},
            {"status": "infeasible", "epochs": 0}]
    assert epochs_saved(rows, 9) == (8 + 6, 18)


# ----------------------------------------------------------------------------- pipeline and experiment


def _proxy_data():
    from lab.data import ProxyData

    rng = np.random.default_rng(0)
    return ProxyData.from_arrays(
        rng.integers(0, 256, (16, 36, 36, 3), dtype=np.uint8), rng.integers(0, 4, 16),
        rng.integers(0, 256, (8, 36, 36, 3), dtype=np.uint8), np.arange(8) % 4, resolution=32)


def _unit_experiment(**kw):
    from lab.data import DataSpec
    from lab.search import Experiment, MeasureSpec, Objective
    from lab.search.space import Categorical, Param, SearchSpace
    from lab.train import ProxyRecipe

    space = SearchSpace(base="mobilemamba_tiny", fixed={"stages.0.dim": 16, "stages.1.dim": 32, "stages.2.dim": 48},
                        params=(Param("stages.*.mixer.local_kernels", Categorical(((3,), (3, 5)))),))
    base = dict(name="unit", space=space, data=DataSpec(root="unused"),
                recipe=ProxyRecipe(epochs=3, batch_size=8, eval_batch_size=8, warmup_epochs=0.0),
                objectives=(Objective(name="top1"), Objective(name="params")), measure=MeasureSpec(timing=False))
    base.update(kw)
    return Experiment(**base)


def test_pipeline_string_verdict_is_a_stopped_row():
    from lab.search.pipeline import WorkerContext, evaluate

    ctx = WorkerContext(_unit_experiment(), data=_proxy_data(), cache_dir=None)
    seen, partial = [], {}

    def hook(epoch, top1):
        seen.append(epoch)
        return "stopped at rung 2 (epoch 2): test" if epoch == 2 else False

    row = evaluate(ctx, {}, trial=0, on_epoch=hook, on_partial=partial.update)
    assert seen == [1, 2] and row["epochs"] == 2
    assert row["status"] == "stopped" and row["reason"] == "stopped at rung 2 (epoch 2): test"
    assert len(json.loads(row["epoch_top1"])) == 2 and partial["params"] == row["params"] > 0


def test_experiment_validates_mo_asha():
    from lab.search import ExperimentError, Objective
    from lab.search.mo_asha import settings
    from lab.train import ProxyRecipe

    exp = _unit_experiment(pruner="mo_asha")
    assert settings(exp) == MOASHA() and exp.to_json()["mo_asha"] == {"eta": 3, "min_epochs": 1}
    assert dataclasses.replace(exp, pruner="none").pruner == "none"  # no default baked into the field
    custom = _unit_experiment(pruner="mo_asha", mo_asha=MOASHA(eta=2))
    assert settings(custom).eta == 2 and custom.to_json()["mo_asha"] == {"eta": 2, "min_epochs": 1}
    with pytest.raises(ExperimentError, match="no objective needs training"):
        _unit_experiment(pruner="mo_asha", objectives=(Objective(name="params"), Objective(name="flops")))
    with pytest.raises(ExperimentError, match="raise recipe.epochs"):
        _unit_experiment(pruner="mo_asha", recipe=ProxyRecipe(epochs=1, batch_size=8))
    with pytest.raises(ExperimentError, match="set pruner='mo_asha'"):
        _unit_experiment(mo_asha=MOASHA(eta=2))
    with pytest.raises(ExperimentError, match="must be a lab.search.mo_asha.MOASHA"):
        _unit_experiment(pruner="mo_asha", mo_asha={"eta": 2})


# ----------------------------------------------------------------------------- a real (tiny) sweep

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "data" / "search_tiny_experiment.py"


def test_optuna_sweep_with_mo_asha_matches_the_pure_ledger(tmp_path, monkeypatch):
    """Six trials, 3 epochs, eta 2: rows are stopped at rungs 1 or 2 or complete, the study tells the sampler
    PRUNED for them, and replaying the stored rung records through ``Ledger`` gives the same verdicts."""
    import optuna

    from lab.search import load_experiment
    from lab.search.sweep import run_sweep
    from lab.train import ProxyRecipe

    monkeypatch.setenv("SEARCH_TEST_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SEARCH_TEST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SEARCH_TEST_NAME", "tinymo")
    monkeypatch.chdir(tmp_path)
    base = load_experiment(TINY)
    exp = dataclasses.replace(base, pruner="mo_asha", mo_asha=MOASHA(eta=2, min_epochs=1), recipe=ProxyRecipe(
        epochs=3, batch_size=8, eval_batch_size=16, warmup_epochs=0.0, lr=3e-3))
    out = tmp_path / "runs"
    result = run_sweep(exp, n_trials=6, workers=1, out=out, progress=False, report=False)
    assert result["counts"]["finished"] == 6
    import pandas as pd

    df = pd.read_parquet(out / "tinymo" / "trials.parquet").set_index("trial")
    trained = df[df["status"].isin(["complete", "stopped"]) & df["reused_from"].isna()]
    assert len(trained) >= 3
    assert (df.loc[df["status"] == "complete", "epochs"] == 3).all()
    stopped = df[df["status"] == "stopped"]
    assert len(stopped) >= 1, "eta=2 over >= 3 trained trials must stop someone"
    assert stopped["epochs"].isin([1, 2]).all()
    assert stopped["reason"].str.match(r"^stopped at rung [12] \(epoch [12]\)").all()
    study = optuna.load_study(study_name="tinymo", storage=f"sqlite:///{out / 'tinymo' / 'study.db'}")
    by_number = {t.number: t for t in study.trials}
    for n in stopped.index:
        assert by_number[n].state == optuna.trial.TrialState.PRUNED
    # replay: one worker, so arrivals at every rung are in trial order
    led = Ledger(MOASHA(eta=2, min_epochs=1), 3, ("maximize", "minimize"))
    replayed = {}
    for n in sorted(trained.index):
        rungs = json.loads(by_number[n].user_attrs["mo_asha"])
        assert set(rungs) <= {"1", "2"}
        assert rungs["1"][1] == df.loc[n, "params"]
        assert rungs["1"][0] == pytest.approx(json.loads(df.loc[n, "epoch_top1"])[0], abs=1e-3)
        verdict = "complete"
        for e in (1, 2):
            d = led.report(int(n), e, rungs[str(e)])
            if not d.promoted:
                verdict = "stopped"
                assert df.loc[n, "reason"] == d.reason and df.loc[n, "epochs"] == e
                break
        replayed[n] = verdict
    assert replayed == {n: df.loc[n, "status"] for n in trained.index}
    # the report states the stopped trials and the epochs they saved
    from reports.report import ReportOptions, build_report

    rep = build_report(out / "tinymo", options=ReportOptions(erf=False, bootstrap=20, svg=False))
    saved = int((3 - stopped["epochs"]).sum())
    assert rep.facts["epochs_saved"] == saved == epochs_saved(df.to_dict("records"), 3)[0]
    assert rep.facts["epochs_trained"] == int(trained["epochs"].sum())
    assert f"stopped {len(stopped)} trial(s) at a rung: {saved} of" in rep.report_md.read_text()


# ----------------------------------------------------------------------------- Ray Tune scheduler


def test_ray_scheduler_follows_the_ledger_and_pickles():
    pytest.importorskip("ray.tune")
    import pickle
    from types import SimpleNamespace

    from lab.search import mo_asha

    stops = []
    cls = mo_asha.MOASHAScheduler
    sched = cls(MOASHA(eta=2, min_epochs=1), directions=MAXMIN, max_epochs=4,
                on_stop=lambda trial, d: stops.append((trial.config["_optuna_number"], d.reason)))
    led = Ledger(MOASHA(eta=2, min_epochs=1), 4, MAXMIN)
    rng = np.random.default_rng(0)
    expected = []
    for n in range(8):
        trial = SimpleNamespace(config={"_optuna_number": n}, trial_id=f"t{n}")
        for epoch in (1, 2, 3):
            vec = [float(rng.integers(0, 50)), float(rng.integers(1, 5))]
            assert sched.on_trial_result(None, trial, {"epoch": epoch, "done_training": False}) == "CONTINUE"
            action = sched.on_trial_result(None, trial, {"epoch": epoch, mo_asha.ATTR: vec})
            d = led.report(n, epoch, vec)
            if d is None:
                assert action == "CONTINUE" and epoch == 3  # 3 is no rung below 4 epochs
                continue
            assert action == ("CONTINUE" if d.promoted else "STOP")
            if not d.promoted:
                expected.append((n, d.reason))
                break
    assert stops == expected and len(stops) >= 2
    assert sched.decisions and "rung decisions" in sched.debug_string()
    again = pickle.loads(pickle.dumps(cls(MOASHA(eta=3), directions=MAXMIN, max_epochs=9)))
    assert type(again) is cls and again.ledger.rungs == (1, 3)


@pytest.mark.slow
def test_ray_backend_with_mo_asha_scheduler(tmp_path, monkeypatch):
    """A real (local) Ray Tune run of the tiny sweep with MOASHAScheduler: stopped rows, PRUNED Optuna trials."""
    pytest.importorskip("ray.tune")
    import optuna
    import pandas as pd

    from lab.search import load_experiment
    from lab.search.sweep import run_sweep
    from lab.train import ProxyRecipe

    monkeypatch.setenv("SEARCH_TEST_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SEARCH_TEST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SEARCH_TEST_NAME", "tinymoray")
    monkeypatch.chdir(tmp_path)
    base = load_experiment(TINY)
    exp = dataclasses.replace(base, pruner="mo_asha", mo_asha=MOASHA(eta=2, min_epochs=1), recipe=ProxyRecipe(
        epochs=3, batch_size=8, eval_batch_size=16, warmup_epochs=0.0, lr=3e-3))
    out = tmp_path / "runs"
    result = run_sweep(exp, backend="ray", n_trials=6, workers=2, out=out, progress=False, report=False)
    assert result["counts"]["finished"] == 6
    df = pd.read_parquet(out / "tinymoray" / "trials.parquet").set_index("trial")
    assert set(df["status"]) <= {"complete", "stopped", "infeasible"}
    assert (df.loc[df["status"] == "complete", "epochs"] == 3).all()
    stopped = df[df["status"] == "stopped"]
    assert len(stopped) >= 1 and stopped["epochs"].isin([1, 2]).all()
    assert stopped["reason"].str.match(r"^stopped at rung [12] \(epoch [12]\): rank \d+ of \d+").all()
    study = optuna.load_study(study_name="tinymoray", storage=f"sqlite:///{out / 'tinymoray' / 'study.db'}")
    states = {t.number: t.state for t in study.trials}
    assert all(states[n] == optuna.trial.TrialState.PRUNED for n in stopped.index)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert {t.number for t in done} == set(df.index[df["status"] == "complete"])
