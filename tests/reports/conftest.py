"""Synthetic run directories following the sweep contract (trials.parquet/.csv, experiment.json, ...)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

WL, DS, LK = "p.stages.0.mixer.wavelet_levels", "p.stages.0.mixer.d_state", "p.stages.0.mixer.local_kernels"


def experiment(name: str, *, kind: str = "nas", objectives=None, **extra) -> dict:
    exp = {
        "name": name, "description": f"synthetic {kind} run for tests", "kind": kind,
        "objectives": objectives or [{"name": "top1", "direction": "maximize"},
                                     {"name": "throughput", "direction": "maximize"}],
        "constraints": {"params_max": 5_000_000}, "dataset": {"name": "synthetic-64", "img_size": 64},
        "recipe": {"epochs": 2, "lr": 0.001}, "base": "mobilemamba_tiny", "git_sha": "0123abcd",
        "env": {"torch": torch.__version__, "device": "cpu"}, "started": "2025-01-01T00:00:00",
        "finished": "2025-01-01T00:10:00",
    }
    exp.update(extra)
    return exp


def write_run(root: Path, exp: dict, trials: list[dict], *, refs: list[dict] | None = None,
              study: bool = False, csv_only: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "experiment.json").write_text(json.dumps(exp))
    frame = pd.DataFrame(trials, columns=None if trials else ["trial", "status", "reason", "config_id", "top1"])
    if not csv_only:
        frame.to_parquet(root / "trials.parquet")
    frame.to_csv(root / "trials.csv", index=False)
    if refs is not None:
        (root / "reference_points.json").write_text(json.dumps(refs))
    if study:
        _write_study(root / "study.db", exp, frame)
    return root


def _write_study(path: Path, exp: dict, frame: pd.DataFrame) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dirs = [o["direction"] for o in exp["objectives"]]
    st = optuna.create_study(study_name=exp["name"], storage=f"sqlite:///{path}", directions=dirs)
    dists = {WL: optuna.distributions.IntDistribution(0, 2), DS: optuna.distributions.IntDistribution(1, 2),
             LK: optuna.distributions.CategoricalDistribution(["3", "5", "7"])}
    for _, r in frame.iterrows():
        params = {WL: int(r[WL]), DS: int(r[DS]), LK: str(r[LK])}
        if r["status"] == "complete":
            st.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                   values=[float(r[o["name"]]) for o in exp["objectives"]]))
        else:
            st.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                   state=optuna.trial.TrialState.PRUNED))


_PARAMS: dict[str, int] = {}


def _params(cfg) -> int:
    """Parameter count of a built model, cached per config (building is the slow part of the fixtures)."""
    import lab
    from lab.config import config_id

    key = config_id(cfg)
    if key not in _PARAMS:
        _PARAMS[key] = sum(p.numel() for p in lab.build_model(cfg).parameters())
    return _PARAMS[key]


def quickstart_trials(n: int = 14, *, seed: int = 0, statuses=None) -> list[dict]:
    """NAS-style trials over three knobs of mobilemamba_tiny with real configs and params."""
    import lab
    from lab.config import config_id

    rng = np.random.default_rng(seed)
    base = lab.get_config("mobilemamba_tiny")
    rows = []
    cycle = statuses or ["complete"] * 7 + ["pruned", "complete", "failed", "complete", "infeasible", "complete",
                                             "stopped"]
    for t in range(n):
        wl, ds, lk = int(rng.integers(0, 3)), int(rng.integers(1, 3)), int(rng.choice([3, 5, 7]))
        cfg = base.with_mixer(wavelet_levels=wl, d_state=ds, local_kernels=(lk,))
        params = _params(cfg)
        status = cycle[t % len(cycle)]
        done = status == "complete"
        quality = 60 + 4 * wl + 1.5 * ds + 0.5 * lk + rng.normal(0, 1.0)
        tput = 4000 - 600 * wl - 150 * ds - 40 * lk + rng.normal(0, 60)
        rows.append({
            "trial": t, "status": status,
            "reason": {"failed": "CUDA OOM", "infeasible": "params > 5M", "pruned": "rung 1",
                       "stopped": "dominated at rung 1"}.get(status, ""),
            "config_id": config_id(cfg), "config_json": json.dumps(cfg.to_dict()), "seed": 0,
            "top1": quality if done else np.nan, "top5": quality + 20 if done else np.nan,
            "params": params, "flops": params * 40, "throughput": tput if status != "infeasible" else np.nan,
            "latency_ms": 1000 / tput, "train_seconds": 30.0 if done else 5.0, "epochs": 2 if done else 1,
            "epoch_top1": json.dumps([quality - 3, quality] if done else []),
            "reused_from": np.nan, WL: wl, DS: ds, LK: str(lk),
            "zc.synflow": quality * 10 + rng.normal(0, 8), "zc.naswot": rng.normal(),
            "git_sha": "0123abcd", "env": "{}",
        })
    return rows


def save_trained_checkpoint(root: Path, row: dict) -> Path:
    """A 'trained' state_dict for one trial: conv weights of the initial model scaled by noise (differs from init)."""
    import lab
    from lab.config import ModelConfig

    torch.manual_seed(123)
    model = lab.build_model(ModelConfig.from_dict(json.loads(row["config_json"])))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.mul_(1 + 0.5 * torch.rand_like(m.weight))
    path = root / "trials" / str(row["trial"]) / "checkpoint.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


REFS = [{"name": "mobilemamba_t2", "params": 8.8e6, "flops": 255e6, "throughput": 3100.0, "top1": None,
         "note": "measured on this machine"},
        {"name": "mobilemamba_tiny", "params": 0.3e6, "flops": 20e6, "throughput": 3600.0, "top1": 64.0,
         "note": "measured on this machine"}]


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory) -> Path:
    """A finished quickstart-like NAS run with every optional file."""
    root = tmp_path_factory.mktemp("runs") / "quickstart"
    trials = quickstart_trials()
    write_run(root, experiment("quickstart"), trials, refs=REFS, study=True)
    best = max((r for r in trials if r["status"] == "complete"), key=lambda r: r["top1"])
    save_trained_checkpoint(root, best)
    return root
