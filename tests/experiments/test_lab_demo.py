"""``make demo``'s pipeline (``python -m lab.demo``) on the quickstart space with a smoke budget."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lab import demo

DATA = Path(__file__).resolve().parents[1] / "data"


def test_demo_pipeline_small_budget(tmp_path, monkeypatch, capsys):
    _demo_once(tmp_path, monkeypatch, capsys)


@pytest.mark.slow
def test_demo_twice_resumes(tmp_path, monkeypatch, capsys):
    """A second ``make demo`` resumes the finished run (no new trials) instead of failing on the existing study."""
    _demo_once(tmp_path, monkeypatch, capsys)
    assert demo.main(["--experiment", str(DATA / "ablation_demo_quickstart.py"), "--out", "runs"]) == 0
    assert "resuming" in capsys.readouterr().err
    assert len(pd.read_parquet(tmp_path / "runs" / "quickstart" / "trials.parquet")) == 3


def _demo_once(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    exp_file = str(DATA / "ablation_demo_quickstart.py")
    assert not Path("data/synth-smoke").exists()
    assert demo.main(["--experiment", exp_file, "--out", "runs"]) == 0
    out = capsys.readouterr().out
    report = tmp_path / "runs" / "quickstart" / "report" / "index.html"
    assert report.is_file() and f"report: {report.resolve()}" in out
    assert Path("data/synth-smoke/train").is_dir()  # generated because it was missing
    trials = pd.read_parquet(tmp_path / "runs" / "quickstart" / "trials.parquet")
    assert len(trials) == 3
    done = trials[trials["status"] == "complete"]
    table, n = demo.pareto_table(tmp_path / "runs" / "quickstart")
    assert 1 <= n <= len(done) and f"Pareto set ({n} trials, top1 vs throughput)" in out and table in out
    rows = [line.split(" | ") for line in table.strip().splitlines()[2:]]
    assert len(rows) == n
    top1s = sorted(float(r[1]) for r in rows)
    assert top1s[-1] == round(done["top1"].max(), 2)  # the best accuracy is always on the front
    assert len({r[0] for r in rows}) == n  # each trial once
