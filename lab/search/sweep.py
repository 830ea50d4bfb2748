"""``run_sweep``: validate everything, prepare ``runs/<exp>/``, run a backend, export, report.

All checks that can fail on bad input (experiment file, search-space keys, constraints, data,
backend availability, Ray address, an existing run without ``--resume``) run before any trial,
so each costs one clear error line (``SweepError`` and the other ``ValueError`` subclasses).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from lab.search.experiment import Experiment, ExperimentError, load_experiment
from lab.search.progress import Progress, format_duration

BACKENDS = ("optuna", "ray")


class SweepError(ValueError):
    """A sweep cannot start (bad option, unreachable cluster, missing package); names the fix."""


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def default_storage(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'study.db').resolve()}"


def check_ray(address: str | None) -> None:
    """Ray importable and, for ``host:port`` addresses, the cluster's GCS port reachable."""
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError:
        raise SweepError("--backend ray needs Ray Tune: pip install -e '.[ray]' (or pip install 'ray[tune]')") from None
    if not address or address in ("auto", "local"):
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"--ray-address {address!r}: expected HOST:PORT (e.g. 10.0.0.1:6379, the address "
                         "`ray start --head` prints) or 'auto'")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as exc:
        raise SweepError(f"cannot reach the Ray cluster at {address} ({exc}); start it with `ray start --head` "
                         "on the head node or fix --ray-address") from None


def _metadata(exp: Experiment, *, backend: str, storage: str, n_trials: int) -> dict[str, Any]:
    from lab.measure.env import environment

    env = environment(device="cpu")
    return {
        **exp.to_json(),
        "backend": backend,
        "storage": storage,
        "n_trials": n_trials,
        "git_sha": env.get("git_sha") or "",
        "env": env,
    }


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def run_sweep(
    experiment: str | Path | Experiment,
    *,
    backend: str = "optuna",
    n_trials: int | None = None,
    timeout_s: float | None = None,
    workers: int | None = None,
    storage: str | None = None,
    ray_address: str | None = None,
    resume: bool = False,
    out: str | Path = "runs",
    progress: bool = True,
    report: bool = True,
    command: str | None = None,
    scale: str | None = None,
    data_root: str | Path | None = None,
) -> dict[str, Any]:
    """Run one sweep; returns ``{"run_dir", "counts", "stopped", "interrupted"}``. Raises ``ValueError``
    subclasses for bad input before any work; on Ctrl-C exports the table and returns ``interrupted=True``.
    ``scale`` / ``data_root``: see ``load_experiment`` (only with an experiment file)."""
    if isinstance(experiment, Experiment) and (scale is not None or data_root is not None):
        raise SweepError("scale/data_root need an experiment file, not an Experiment object")
    exp = (experiment if isinstance(experiment, Experiment)
           else load_experiment(experiment, scale=scale, data_root=data_root))
    if isinstance(experiment, Experiment):
        exp.validate()
    if backend not in BACKENDS:
        raise SweepError(f"--backend must be one of {BACKENDS}, got {backend!r}")
    n = exp.budget.n_trials if n_trials is None else n_trials
    if not isinstance(n, int) or n < 1:
        raise SweepError(f"--n-trials must be >= 1, got {n!r}")
    timeout = exp.budget.timeout_s if timeout_s is None else timeout_s
    if timeout is not None and timeout <= 0:
        raise SweepError(f"--timeout must be > 0 seconds, got {timeout!r}")
    k = exp.budget.workers if workers is None else workers
    if not isinstance(k, int) or k < 1:
        raise SweepError(f"--workers must be >= 1, got {k!r}")
    if exp.resolved_sampler() == "gp":
        try:
            import scipy  # noqa: F401
        except ImportError:
            raise SweepError("sampler='gp' (Optuna GPSampler) needs scipy: pip install scipy") from None
    if backend == "ray":
        check_ray(ray_address)
    elif ray_address:
        raise SweepError("--ray-address only applies to --backend ray")

    # the data is checked (and the synthetic set generated, the decode cache built) before any trial
    from lab.search.pipeline import load_data

    data = load_data(exp)
    if exp.prepare is not None:  # once, here; workers get the experiment without it
        exp.prepare(exp, data)
        exp = dataclasses.replace(exp, prepare=None)

    run_dir = Path(out) / exp.name
    run_dir.mkdir(parents=True, exist_ok=True)
    storage_url = storage or default_storage(run_dir)
    from lab.search import optuna_backend

    opt_storage = optuna_backend.make_storage(storage_url, heartbeat_s=exp.heartbeat_s)
    optuna_backend.create_or_load(exp, opt_storage, resume=resume)

    meta_path = run_dir / "experiment.json"
    meta = _metadata(exp, backend=backend, storage=storage_url, n_trials=n)
    old = json.loads(meta_path.read_text()) if (resume and meta_path.is_file()) else {}
    meta["started"] = old.get("started", _now())
    meta["sessions"] = [*old.get("sessions", []), {"started": _now(), "backend": backend, "n_trials": n}]
    meta["finished"] = None
    _write_json(meta_path, meta)

    bar = Progress(enabled=progress)
    how = command or f"python run_sweep.py <experiment.py> --backend {backend}"
    interrupted = False
    try:
        if backend == "optuna":
            summary = optuna_backend.run(exp, run_dir=run_dir, storage_url=storage_url, n_trials=n, timeout_s=timeout,
                                         workers=k, resume=resume, progress=bar, data=data)
        else:
            from lab.search import ray_backend

            summary = ray_backend.run(exp, run_dir=run_dir, storage_url=storage_url, n_trials=n, timeout_s=timeout,
                                      workers=k, resume=resume, progress=bar, address=ray_address, data=data)
    except KeyboardInterrupt:
        interrupted = True
        summary = {"stopped": "interrupted", "counts": _counts(exp, opt_storage)}
    finally:
        bar.close()
    c = summary["counts"]
    meta["sessions"][-1]["ended"] = _now()
    meta["sessions"][-1]["stopped"] = summary["stopped"]
    if not interrupted and c.get("finished", 0) >= n:
        meta["finished"] = _now()
    _write_json(meta_path, meta)
    elapsed = format_duration(bar_elapsed(bar))
    table = run_dir / "trials.parquet"
    if interrupted:
        print(f"\ninterrupted after {elapsed}: {c.get('finished', 0)}/{n} trials finished, all kept in {table} and "
              f"{run_dir / 'study.db'}.\nresume with: {how} --resume", file=sys.stderr)
    else:
        print(f"{exp.name}: {c.get('finished', 0)}/{n} trials finished in {elapsed} ({c.get('complete', 0)} complete, "
              + (f"{c['stopped']} stopped early, " if c.get("stopped") else "")
              + f"{c.get('pruned', 0)} pruned, {c.get('infeasible', 0)} infeasible, "
              f"{c.get('failed', 0) + c.get('lost', 0)} failed) -> {table}", file=sys.stderr)
        if summary["stopped"] == "timeout" and c.get("finished", 0) < n:
            print(f"stopped by the timeout; continue with: {how} --resume", file=sys.stderr)
    if report and not interrupted:
        _report(run_dir)
    return {"run_dir": run_dir, "counts": c, "stopped": summary["stopped"], "interrupted": interrupted}


def bar_elapsed(bar: Progress) -> float:
    import time

    return time.monotonic() - bar.started


def _counts(exp: Experiment, storage: Any) -> dict[str, int]:
    from lab.search.optuna_backend import _quiet_optuna
    from lab.search.results import counts

    optuna = _quiet_optuna()
    study = optuna.load_study(study_name=exp.name, storage=storage)
    return counts(study.get_trials(deepcopy=False))


def _report(run_dir: Path) -> None:
    """Write the run report when the ``reports`` package is importable; a failure never loses results."""
    try:
        from reports.report import build_report
    except ImportError:
        return
    try:
        result = build_report(run_dir)
        print(f"report: {result.index_html}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - the sweep's results are already on disk
        print(f"warning: the report failed ({type(exc).__name__}: {exc}); the results are intact in {run_dir}; "
              f"retry with `lab report {run_dir}`", file=sys.stderr)


__all__ = ["BACKENDS", "ExperimentError", "SweepError", "check_ray", "default_storage", "run_sweep"]
