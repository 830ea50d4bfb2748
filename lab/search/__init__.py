"""Sweeps: search spaces, experiments, the per-trial pipeline and the Optuna / Ray Tune backends.

``run_sweep(path_or_experiment, backend="optuna"|"ray", ...)`` is the one call behind
``run_sweep.py``; every trial becomes one row of ``runs/<exp>/trials.parquet``.
"""

from lab.search.experiment import (
    Budget,
    Constraints,
    Experiment,
    ExperimentError,
    MeasureSpec,
    Objective,
    load_experiment,
)
from lab.search.space import Categorical, Cond, Float, Int, LogFloat, Param, SearchSpace, SpaceError

__all__ = [
    "Budget",
    "Categorical",
    "Cond",
    "Constraints",
    "Experiment",
    "ExperimentError",
    "Float",
    "Int",
    "LogFloat",
    "MeasureSpec",
    "Objective",
    "Param",
    "SearchSpace",
    "SpaceError",
    "load_experiment",
]
