"""The run table: every finished trial of a study -> one row of ``trials.parquet`` / ``trials.csv``.

Each worker stores its trial's full row as the Optuna user attribute ``row`` (JSON), so the
study database is the single record for both backends and the table can be rebuilt from it at
any time (``export_trials``). A trial with no row (its worker was killed or interrupted) appears
as ``failed`` with the reason; running and waiting trials are left out.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lab.search.pipeline import BASE_COLUMNS, COMPLETE, FAILED, INFEASIBLE, PRUNED, STOPPED, empty_row

ROW_ATTR = "row"
INTERRUPTED_ATTR = "interrupted"


def row_of(trial: Any) -> dict[str, Any] | None:
    """The stored row of an Optuna ``FrozenTrial`` (``None`` when its worker never finished it)."""
    raw = trial.user_attrs.get(ROW_ATTR)
    if raw is None:
        return None
    return json.loads(raw) if isinstance(raw, str) else dict(raw)


def counts(trials: Iterable[Any]) -> dict[str, int]:
    """Trials per outcome: complete/pruned/infeasible/failed/stopped (rows), ``lost`` (FAIL without a
    row: killed or interrupted, retried), ``running`` and ``waiting`` (Optuna states)."""
    import optuna

    out = dict.fromkeys(("complete", "pruned", "infeasible", "failed", "stopped", "lost", "running", "waiting"), 0)
    for t in trials:
        if t.state == optuna.trial.TrialState.RUNNING:
            out["running"] += 1
        elif t.state == optuna.trial.TrialState.WAITING:
            out["waiting"] += 1
        else:
            row = row_of(t)
            if row is None:
                out["lost"] += 1
            else:
                out[row["status"]] = out.get(row["status"], 0) + 1
    out["finished"] = sum(out[k] for k in (COMPLETE, PRUNED, INFEASIBLE, FAILED, STOPPED))
    return out


def rows_from_trials(trials: Iterable[Any], *, space: Any = None) -> list[dict[str, Any]]:
    """One row per finished trial, in trial-number order."""
    import optuna

    rows = []
    for t in trials:
        if t.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING):
            continue
        row = row_of(t)
        if row is None:
            params = dict(t.params)
            if space is not None:
                try:
                    params = space.resolve(params)
                except ValueError:
                    pass
            row = empty_row(t.number, params, seed=-1, env={})
            why = "interrupted (Ctrl-C)" if t.user_attrs.get(INTERRUPTED_ATTR) else "worker died (no heartbeat)"
            row["status"], row["reason"] = FAILED, f"{why}; the sampled config was queued again"
        row["trial"] = t.number
        rows.append(row)
    rows.sort(key=lambda r: r["trial"])
    return rows


def to_frame(rows: list[Mapping[str, Any]]) -> Any:
    """A pandas DataFrame with the contract's columns first, then ``p.*`` and ``zc.*``, dtypes fixed."""
    import pandas as pd

    extra_p = sorted({k for r in rows for k in r if k.startswith("p.")})
    extra_zc = sorted({k for r in rows for k in r if k.startswith("zc.")})
    cols = [*BASE_COLUMNS, *extra_p, *extra_zc]
    df = pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)
    ints = ("trial", "seed", "params", "flops", "epochs")
    floats = ("top1", "top5", "throughput", "latency_ms", "train_seconds", "reused_from", "measure_seconds",
              "duration_s", *extra_zc)
    for c in ints:
        df[c] = pd.to_numeric(df[c], errors="coerce").fillna(-1).astype("int64")
    for c in floats:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    for c in ("status", "reason", "config_id", "config_json", "epoch_top1", "recipe_id", "dup_key", "git_sha", "env"):
        df[c] = df[c].fillna("").astype(str)
    for c in extra_p:  # mixed types (a knob absent when its condition fails) -> keep numbers numeric if possible
        col = df[c]
        if col.dropna().map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).all():
            df[c] = pd.to_numeric(col, errors="coerce")
        else:
            df[c] = col.map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return df


def write_table(df: Any, run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``trials.parquet`` and ``trials.csv`` atomically (readers never see half a file)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for name, write in (("trials.parquet", lambda p: df.to_parquet(p, index=False)),
                        ("trials.csv", lambda p: df.to_csv(p, index=False))):
        path = run_dir / name
        tmp = run_dir / f".{name}.tmp-{os.getpid()}"
        write(tmp)
        os.replace(tmp, path)
        out.append(path)
    return out[0], out[1]


def export_trials(study: Any, run_dir: str | Path, *, space: Any = None) -> Any:
    """Rebuild the run table from ``study`` and write it; returns the DataFrame."""
    df = to_frame(rows_from_trials(study.get_trials(deepcopy=False), space=space))
    write_table(df, run_dir)
    return df


def find_duplicate(trials: Iterable[Any], dup_key: str) -> dict[str, Any] | None:
    """The row of the earliest finished trial with ``dup_key`` that was trained (complete or pruned)."""
    best = None
    for t in trials:
        row = row_of(t)
        if row is None or row.get("dup_key") != dup_key or row.get("status") not in (COMPLETE, PRUNED):
            continue
        if not math.isnan(float(row.get("reused_from", math.nan))):
            continue  # point at the original, not at another copy
        if best is None or t.number < best["trial"]:
            best = {**row, "trial": t.number}
    return best
