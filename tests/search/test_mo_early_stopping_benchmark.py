"""The bookkeeping of benchmarks/mo_early_stopping.py on hand-made trial tables (the runs themselves are
the benchmark, not a test)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    path = ROOT / "benchmarks" / "mo_early_stopping.py"
    spec = importlib.util.spec_from_file_location("mo_early_stopping_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def frame(rows):
    cols = ["trial", "status", "config_id", "top1", "throughput", "measure_seconds", "train_seconds", "epochs",
            "reused_from"]
    return pd.DataFrame([dict(zip(cols, r)) for r in rows])


OBJ = ["maximize", "maximize"]


def test_measured_costs_are_the_median_over_both_runs_and_only_complete_trials_score(bench):
    full = frame([(0, "complete", "a", 50.0, 100.0, 1, 9, 9, math.nan),
                  (1, "complete", "b", 60.0, 50.0, 1, 9, 9, math.nan)])
    es = frame([(0, "complete", "a", 50.0, 140.0, 1, 9, 9, math.nan),
                (1, "stopped", "b", 30.0, 52.0, 1, 2, 2, math.nan),
                (2, "complete", "a", 50.0, 120.0, 0, 0, 9, 0.0)])
    v = bench.canonical_values({"full": full, "es": es}, ["top1", "throughput"])
    assert v["full"][0].tolist() == [50.0, 120.0]  # median of 100, 140, 120
    assert v["full"][1].tolist() == [60.0, 50.0]  # only complete measurements of b count
    assert np.isnan(v["es"][1]).all()  # a stopped trial never scores
    assert v["es"][2].tolist() == [50.0, 120.0]


def test_anytime_curve_counts_compute_and_grows_with_the_front(bench):
    df = frame([(0, "complete", "a", 50.0, 100.0, 2, 10, 9, math.nan),
                (1, "stopped", "b", 20.0, 300.0, 1, 3, 2, math.nan),
                (2, "complete", "c", 70.0, 50.0, 2, 10, 9, math.nan),
                (3, "complete", "a", 50.0, 100.0, 0.5, 0, 9, 0.0)])  # a duplicate: reused, no epochs
    v = df[["top1", "throughput"]].to_numpy(float).copy()
    v[1] = np.nan
    curve = bench.anytime(df, v, np.array([10.0, 0.0]), OBJ)
    assert [c["cost_s"] for c in curve] == [12, 16, 28, 28.5]
    assert [c["epochs"] for c in curve] == [9, 11, 20, 20]
    hv0 = (50 - 10) * 100
    hv2 = hv0 + (70 - 50) * 50
    assert [c["hv"] for c in curve] == pytest.approx([hv0, hv0, hv2, hv2])
    assert bench.first_reaching(curve, hv0 + 1)["trial"] == 2 and bench.first_reaching(curve, 1e9) is None
    assert bench.at_cost(curve, 20) == pytest.approx(hv0) and bench.at_cost(curve, 5) == 0.0
