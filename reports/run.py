"""Reading a sweep's run directory (the contract the sweep area writes).

``runs/<exp>/`` holds ``experiment.json``, ``trials.parquet`` (or ``trials.csv``) and optionally
``reference_points.json``, ``study.db`` (Optuna SQLite, study name = experiment name) and
``trials/<trial>/checkpoint.pt``. Missing optional parts become notes, never crashes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

STATUSES = ("complete", "pruned", "infeasible", "failed", "stopped")
NUMERIC = ("top1", "top5", "params", "flops", "throughput", "latency_ms", "train_seconds", "epochs", "reused_from",
           "seed", "trial")


@dataclass(frozen=True)
class RunData:
    """Everything a report needs from one run directory."""

    root: Path
    experiment: dict[str, Any]
    trials: pd.DataFrame
    reference_points: list[dict[str, Any]]
    study_db: Path | None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.experiment.get("name") or self.root.name)

    @property
    def complete(self) -> pd.DataFrame:
        """Trials with status ``complete``."""
        if not len(self.trials):
            return self.trials
        return self.trials[self.trials["status"] == "complete"]

    def checkpoint(self, trial: int) -> Path | None:
        p = self.root / "trials" / str(int(trial)) / "checkpoint.pt"
        return p if p.is_file() else None

    def status_counts(self) -> dict[str, int]:
        if not len(self.trials):
            return {}
        counts = self.trials["status"].value_counts()
        return {s: int(counts[s]) for s in [*STATUSES, *sorted(set(counts.index) - set(STATUSES))] if s in counts}


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: {what} is not valid JSON ({exc}); fix or delete the file") from exc


def load_run(run_dir: str | Path) -> RunData:
    """Load a run directory; raises only when it is not a run directory at all."""
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"run directory {root} does not exist; pass runs/<experiment>")
    notes: list[str] = []
    exp_path = root / "experiment.json"
    parquet, csv = root / "trials.parquet", root / "trials.csv"
    if not exp_path.is_file() and not parquet.is_file() and not csv.is_file():
        raise FileNotFoundError(f"{root} is not a run directory: it has no experiment.json and no trials.parquet/.csv")
    experiment: dict[str, Any] = {}
    if exp_path.is_file():
        experiment = _read_json(exp_path, "experiment.json")
        if not isinstance(experiment, dict):
            raise ValueError(f"{exp_path}: expected a JSON object, got {type(experiment).__name__}")
    else:
        notes.append("experiment.json is missing: provenance and objectives are unknown (top1 and throughput, "
                     "both maximised, are assumed).")
    if parquet.is_file():
        trials = pd.read_parquet(parquet)
    elif csv.is_file():
        trials = pd.read_csv(csv, keep_default_na=True)
        notes.append("trials.parquet is missing; read trials.csv instead.")
    else:
        trials = pd.DataFrame(columns=["trial", "status"])
        notes.append("No trials file (trials.parquet / trials.csv): the run has no trials yet.")
    trials = _normalise_trials(trials, notes)
    refs: list[dict[str, Any]] = []
    ref_path = root / "reference_points.json"
    if ref_path.is_file():
        refs = _read_json(ref_path, "reference_points.json")
        if not isinstance(refs, list) or not all(isinstance(r, dict) and "name" in r for r in refs):
            raise ValueError(f"{ref_path}: expected a list of objects with a 'name', e.g. "
                             '[{"name": "mobilemamba_t2", "throughput": 1234.0, "top1": null}]')
    study = root / "study.db"
    return RunData(root=root, experiment=experiment, trials=trials, reference_points=refs,
                   study_db=study if study.is_file() else None, notes=notes)


def _normalise_trials(trials: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    trials = trials.copy()
    if "status" not in trials.columns:
        if len(trials):
            raise ValueError("trials table has no 'status' column; the sweep must write one of " + ", ".join(STATUSES))
        trials["status"] = pd.Series(dtype=str)
    if "trial" not in trials.columns:
        trials["trial"] = np.arange(len(trials))
        if len(trials):
            notes.append("trials table has no 'trial' column; rows are numbered in file order.")
    trials["status"] = trials["status"].astype(str)
    for col in NUMERIC:
        if col in trials.columns:
            trials[col] = pd.to_numeric(trials[col], errors="coerce")
    unknown = sorted(set(trials["status"]) - set(STATUSES))
    if unknown:
        notes.append(f"unknown trial status value(s) {unknown}; they are listed but never treated as complete.")
    for col in ("reason", "config_id"):
        if col in trials.columns:
            trials[col] = [("" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)) for v in trials[col]]
    return trials.sort_values("trial", kind="stable").reset_index(drop=True)
