"""End-to-end sweeps through ``run_sweep.py`` on the tiny test experiment (tests/data/search_tiny_experiment.py):
Ctrl-C and kill -9 followed by ``--resume``, two workers on one SQLite study, and bad input."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXP = ROOT / "tests" / "data" / "search_tiny_experiment.py"
LOST = ("interrupted", "worker died")
FINISHED = {"complete", "pruned", "infeasible", "failed", "stopped"}


@pytest.fixture(scope="module")
def tiny_env(tmp_path_factory):
    """Environment for the tiny experiment: its synthetic data generated once, caches in a temp dir."""
    base = tmp_path_factory.mktemp("search_sweep")
    env = dict(os.environ, SEARCH_TEST_DATA=str(base / "data"), SEARCH_TEST_CACHE=str(base / "cache"),
               OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    old = {k: os.environ.get(k) for k in ("SEARCH_TEST_DATA", "SEARCH_TEST_CACHE")}
    os.environ.update(SEARCH_TEST_DATA=env["SEARCH_TEST_DATA"], SEARCH_TEST_CACHE=env["SEARCH_TEST_CACHE"])
    try:
        from lab.search import load_experiment
        from lab.search.pipeline import load_data

        load_data(load_experiment(EXP))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return env


def _sweep(env, out, *args, cwd=None) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "run_sweep.py"), str(EXP), "--out", str(out), "--no-report", *args]
    return subprocess.Popen(cmd, env=env, cwd=cwd or out.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _rows(run_dir: Path) -> pd.DataFrame:
    path = run_dir / "trials.parquet"
    return pd.read_parquet(path) if path.is_file() else pd.DataFrame({"trial": [], "status": [], "reason": []})


def _wait_rows(proc: subprocess.Popen, run_dir: Path, n: int, timeout: float = 240) -> pd.DataFrame:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            df = _rows(run_dir)
        except Exception:  # noqa: BLE001 - the file is replaced atomically, but be lenient
            df = None
        if df is not None and len(df) >= n:
            return df
        if proc.poll() is not None:
            raise AssertionError(f"sweep exited early (rc {proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no {n} rows in {run_dir} within {timeout}s")


def _lost(df: pd.DataFrame) -> pd.Series:
    return df["reason"].str.startswith(LOST)


@pytest.mark.slow
def test_interrupt_kill9_and_resume_keep_every_finished_trial(tiny_env, tmp_path):
    out = tmp_path / "runs"
    run_dir = out / "tiny"
    n = 4

    # 1. Ctrl-C: clean stop, one line saying how to resume, the table written
    p = _sweep(tiny_env, out, "--n-trials", str(n))
    _wait_rows(p, run_dir, 1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "interrupted" in err and "--resume" in err
    after_int = _rows(run_dir)

    # 2. a second run without --resume refuses to touch the study
    p = _sweep(tiny_env, out, "--n-trials", str(n))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "pass --resume" in err and len(err.strip().splitlines()) == 1, err

    # 3. --resume, then kill -9 right after one more trial finished (the next one is running)
    p = _sweep(tiny_env, out, "--n-trials", str(n), "--resume")
    _wait_rows(p, run_dir, len(after_int) + 1)
    p.kill()
    p.communicate(timeout=60)
    after_kill = _rows(run_dir)

    # 4. --resume again: the dead worker's trial goes stale (3 heartbeats = 6 s), is failed and retried
    p = _sweep(tiny_env, out, "--n-trials", str(n), "--resume")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    final = _rows(run_dir)

    assert final["trial"].is_unique and sorted(final["trial"]) == list(range(len(final)))
    done = final[~_lost(final)]
    assert len(done) == n and set(done["status"]) <= FINISHED
    # every trial finished before the interruptions is still there, unchanged
    for before in (after_int, after_kill):
        kept = before[~_lost(before)]
        merged = kept.merge(final, on="trial", suffixes=("_a", "_b"))
        assert len(merged) == len(kept)
        for col in ("status", "config_id", "top1", "params"):
            assert merged[f"{col}_a"].equals(merged[f"{col}_b"]), col
    # the interrupted trial was queued again with the same knobs
    lost = final[_lost(final)]
    assert len(lost) >= 1
    knobs = [c for c in final.columns if c.startswith("p.")]
    for _, row in lost.iterrows():
        if row[knobs].isna().all():
            continue  # killed before its knobs were sampled
        later = final[(final["trial"] > row["trial"]) & ~_lost(final)]
        assert (later[knobs] == row[knobs]).all(axis=1).any(), f"trial {row['trial']} was not retried"
    meta = json.loads((run_dir / "experiment.json").read_text())
    assert meta["finished"] and len(meta["sessions"]) == 3 and meta["started"] == meta["sessions"][0]["started"]


def test_two_workers_share_one_sqlite_study(tiny_inprocess, monkeypatch):
    from lab.search.sweep import run_sweep

    monkeypatch.setenv("SEARCH_TEST_NAME", "tiny2")  # inherited by the spawned worker
    out = tiny_inprocess / "runs"
    result = run_sweep(EXP, n_trials=5, workers=2, out=out, progress=False, report=False)
    assert result["counts"]["finished"] == 5
    df = _rows(out / "tiny2")
    assert sorted(df["trial"]) == [0, 1, 2, 3, 4], "lost or duplicated trial numbers"
    assert set(df["status"]) <= {"complete", "infeasible"} and not _lost(df).any()
    assert df.loc[df["status"] == "complete", "top1"].notna().all()
    reused = df[df["reused_from"].notna()]
    for _, row in reused.iterrows():  # a reused row points at a trained trial of the same network (with two
        src = df[df["trial"] == int(row["reused_from"])].iloc[0]  # workers it may have a higher number)
        assert src["config_id"] == row["config_id"] and src["trial"] != row["trial"] and pd.isna(src["reused_from"])
    meta = json.loads((out / "tiny2" / "experiment.json").read_text())
    for key in ("name", "description", "kind", "objectives", "constraints", "dataset", "recipe", "base", "git_sha",
                "env", "started", "finished"):
        assert key in meta, key
    assert meta["objectives"] == [{"name": "top1", "direction": "maximize"}, {"name": "params",
                                                                              "direction": "minimize"}]
    for col in ("trial", "status", "reason", "config_id", "config_json", "seed", "top1", "top5", "params", "flops",
                "throughput", "latency_ms", "train_seconds", "epochs", "epoch_top1", "reused_from", "git_sha", "env",
                "p.stages.*.mixer.wavelet_levels"):
        assert col in df.columns, col
    assert (out / "tiny2" / "trials.csv").is_file() and (out / "tiny2" / "study.db").is_file()


def _cli():
    spec = importlib.util.spec_from_file_location("run_sweep_cli", ROOT / "run_sweep.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def _one_error_line(capsys, rc: int) -> str:
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("run_sweep.py: error: ")
    return err


_BAD_TEMPLATE = """
from lab.data import DataSpec
from lab.search import Constraints, Experiment
from lab.search.space import Categorical, Param, SearchSpace
from lab.train import ProxyRecipe
EXPERIMENT = Experiment(name="bad", data=DataSpec(root="nowhere"), recipe=ProxyRecipe(),
    space=SearchSpace(base="mobilemamba_tiny", params=(Param({key!r}, Categorical((1, 2))),)),
    constraints=Constraints({constraints}))
"""


@pytest.mark.parametrize(
    ("key", "constraints", "fragment"),
    [
        ("stages.1.mixer.d_states", "", "no field 'stages.1.mixer.d_states'"),
        ("stages.1.mixer.d_state", "min_flops=10**9, max_flops=10**6", "contradictory constraints"),
    ],
)
def test_bad_experiment_gives_one_line_before_any_work(tmp_path, capsys, key, constraints, fragment):
    f = tmp_path / "bad.py"
    f.write_text(_BAD_TEMPLATE.format(key=key, constraints=constraints))
    err = _one_error_line(capsys, _cli()([str(f), "--out", str(tmp_path / "runs")]))
    assert fragment in err
    assert not (tmp_path / "runs").exists()


def test_unknown_experiment_file(tmp_path, capsys):
    err = _one_error_line(capsys, _cli()([str(tmp_path / "experiments" / "nope.py"), "--out", str(tmp_path / "r")]))
    assert "does not exist" in err and not (tmp_path / "r").exists()


def test_missing_data_gives_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SEARCH_TEST_DATA", str(tmp_path / "absent"))
    monkeypatch.setenv("SEARCH_TEST_NAME", "nodata")
    f = tmp_path / "exp.py"  # the tiny experiment without its synth spec: a missing root is an error
    f.write_text(EXP.read_text().replace("    synth=SynthSpec(", "    synth=None and SynthSpec("))
    err = _one_error_line(capsys, _cli()([str(f), "--out", str(tmp_path / "runs")]))
    assert "does not exist" in err and "lab data synth" in err and not (tmp_path / "runs").exists()


def test_unreachable_ray_address(tmp_path, capsys):
    pytest.importorskip("ray.tune", reason="ray[tune] not installed (pip install -e '.[ray]')")
    err = _one_error_line(capsys, _cli()([str(EXP), "--backend", "ray", "--ray-address", "127.0.0.1:9",
                                          "--out", str(tmp_path / "runs")]))
    assert "cannot reach the Ray cluster at 127.0.0.1:9" in err and "ray start --head" in err
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def tiny_inprocess(tiny_env, monkeypatch, tmp_path):
    """The tiny experiment's env vars set in this process; cwd in a temp dir (measurement cache)."""
    for k in ("SEARCH_TEST_DATA", "SEARCH_TEST_CACHE"):
        monkeypatch.setenv(k, tiny_env[k])
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_resume_after_dead_worker_retries_its_trial(tiny_inprocess, monkeypatch):
    """What kill -9 leaves behind (a RUNNING trial whose heartbeat stops) is failed, retried, and the
    sweep still reaches its count; trials finished before are kept. In-process, so it is cheap."""
    import optuna

    from lab.search.optuna_backend import make_storage
    from lab.search.sweep import run_sweep

    monkeypatch.setenv("SEARCH_TEST_NAME", "dead")
    out = tiny_inprocess / "runs"
    first = run_sweep(EXP, n_trials=2, out=out, progress=False, report=False)
    assert first["counts"]["finished"] == 2
    before = _rows(out / "dead")
    storage = make_storage(f"sqlite:///{out / 'dead' / 'study.db'}", heartbeat_s=2)
    study = optuna.load_study(study_name="dead", storage=storage)
    ghost = study.ask()  # a worker that sampled a trial, beat once, then died
    ghost.suggest_categorical("stages.*.mixer.wavelet_levels", [0, 1])
    storage.record_heartbeat(ghost._trial_id)
    with pytest.raises(FileExistsError, match="pass --resume"):
        run_sweep(EXP, n_trials=3, out=out, progress=False, report=False)
    second = run_sweep(EXP, n_trials=3, out=out, resume=True, progress=False, report=False)
    assert second["counts"]["finished"] == 3 and second["counts"]["running"] == 0
    final = _rows(out / "dead")
    assert sorted(final["trial"]) == list(range(len(final)))
    ghost_row = final[final["trial"] == ghost.number].iloc[0]
    assert ghost_row["status"] == "failed" and ghost_row["reason"].startswith("worker died")
    retried = final[final["trial"] > ghost.number]
    assert (retried["p.stages.*.mixer.wavelet_levels"] == ghost.params["stages.*.mixer.wavelet_levels"]).any()
    kept = before.merge(final, on="trial", suffixes=("_a", "_b"))
    assert len(kept) == 2 and (kept["config_id_a"] == kept["config_id_b"]).all()
    assert (kept["top1_a"] == kept["top1_b"]).all()


@pytest.fixture
def ray_local():
    """Yields ray; shuts it down even when the test fails, and checks no Ray process outlives it."""
    ray = pytest.importorskip("ray", reason="ray[tune] not installed (pip install -e '.[ray]')")
    pytest.importorskip("ray.tune", reason="ray[tune] not installed (pip install -e '.[ray]')")
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    try:
        yield ray
    finally:
        ray.shutdown()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stray = [p for p in me.children(recursive=True) if p.pid not in before and p.is_running()
                     and p.status() != psutil.STATUS_ZOMBIE]
            if not stray:
                break
            time.sleep(0.5)
        assert not stray, f"stray Ray processes: {[p.name() for p in stray]}"


def test_ray_backend_writes_the_same_table(tiny_inprocess, monkeypatch, ray_local):
    from lab.search import load_experiment
    from lab.search.pipeline import BASE_COLUMNS
    from lab.search.sweep import run_sweep

    monkeypatch.setenv("SEARCH_TEST_NAME", "tinyray")
    out = tiny_inprocess / "runs"
    result = run_sweep(EXP, backend="ray", n_trials=3, workers=2, out=out, progress=False, report=False)
    assert result["counts"]["finished"] == 3
    df = _rows(out / "tinyray")
    exp = load_experiment(EXP)
    assert list(df.columns) == [*BASE_COLUMNS, *sorted(f"p.{p.key}" for p in exp.space.params)]
    assert sorted(df["trial"]) == [0, 1, 2] and set(df["status"]) <= {"complete", "infeasible"}
    assert df.loc[df["status"] == "complete", ["top1", "params", "flops", "throughput"]].notna().all().all()
    assert (out / "tinyray" / "study.db").is_file() and (out / "tinyray" / "ray").is_dir()
    import optuna

    study = optuna.load_study(study_name="tinyray", storage=f"sqlite:///{out / 'tinyray' / 'study.db'}")
    assert len(study.trials) == 3 and all(t.user_attrs.get("row") for t in study.trials)
