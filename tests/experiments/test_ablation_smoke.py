"""Every ablation end to end at ``--scale smoke`` (seconds, 1 seed): trials, table rows, Δ vs the official row."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.tables import ablation_table
from lab.search.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[2]
ABLATIONS = sorted(p for p in (ROOT / "experiments").glob("ablation_*.py") if p.stem != "ablation_common")
CASES = [pytest.param(p, id=p.stem) for p in ABLATIONS]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One working directory for the module: the smoke dataset is generated once and shared."""
    d = tmp_path_factory.mktemp("ablations")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        mp.setenv("LAB_CACHE_DIR", str(d / "cache"))
        mp.delenv("LAB_KD_TEACHER", raising=False)
        yield d


def _table(run_dir: Path):
    exp = json.loads((run_dir / "experiment.json").read_text())
    trials = pd.read_parquet(run_dir / "trials.parquet")
    ab = exp["ablation"]
    return exp, trials, ablation_table(trials, factors=ab["factors"], baseline=ab["baseline"])


@pytest.mark.parametrize("path", CASES)
def test_ablation_runs_at_smoke_scale(workdir, path):
    with_report = path.stem == "ablation_training"  # the full report once (it is the slow part)
    result = run_sweep(path, scale="smoke", out=workdir / "runs", progress=False, report=with_report)
    run_dir = result["run_dir"]
    assert run_dir.name == f"{path.stem}-smoke"
    exp, trials, table = _table(run_dir)
    names = exp["space"]["params"][0]["choices"]
    assert len(trials) == len(names) and set(trials["status"]) == {"complete"}, trials[["status", "reason"]]
    assert set(trials["seed"]) == {0}
    assert table.baseline_found
    assert list(table.frame["p.variant"])[0] == exp["ablation"]["baseline"]["p.variant"]
    assert sorted(table.frame["p.variant"]) == sorted(names)
    assert table.frame.loc[0, "delta_top1"] == 0
    assert (table.frame["params"] > 0).all() and (table.frame["flops"] > 0).all()
    assert table.frame["throughput"].gt(0).all()
    head, _ = table.display()
    assert {"variant", "top1", "Params", "FLOPs", "Throughput (img/s)", "Δ top1"} <= set(head)
    md = table.to_markdown()
    assert all(n.replace("|", "\\|") in md for n in names)
    if with_report:
        tables = run_dir / "report" / "tables"
        for ext in ("md", "csv", "tex"):
            assert (tables / f"ablation.{ext}").is_file()
        assert "\\toprule" in (tables / "ablation.tex").read_text()
        assert (run_dir / "report" / "index.html").is_file()
        _check_training_rows(trials, exp)


def _check_training_rows(trials: pd.DataFrame, exp: dict) -> None:
    rows = trials.set_index("p.variant")
    base = rows.loc[exp["ablation"]["baseline"]["p.variant"]]
    unfused = rows.loc["BN not fused at test (throughput only)"]
    # same network and weights: one of the two was trained, the other reuses it (no retraining)
    reused = [r for r in (base, unfused) if not math.isnan(float(r["reused_from"]))]
    assert len(reused) == 1 and "duplicate of trial" in reused[0]["reason"]
    assert unfused["top1"] == base["top1"] and unfused["flops"] == base["flops"]
    assert "fused" in json.dumps(exp["measure"])
    teacher = Path(".cache/teachers/ablation_training-smoke.pt")
    assert teacher.is_file() and json.loads(teacher.with_suffix(".json").read_text())["top1"] >= 0
    kd = rows.loc["+ KD"]
    assert math.isnan(float(kd["reused_from"]))  # a different recipe (teacher): trained
