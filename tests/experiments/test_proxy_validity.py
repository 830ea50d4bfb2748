"""experiments/proxy_validity.py: the pure analysis against references, and the smoke scale end to end."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pv():
    path = ROOT / "experiments" / "proxy_validity.py"
    spec = importlib.util.spec_from_file_location("proxy_validity_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _ref_overlap(score, target, k):
    s = [(-v if np.isfinite(v) else np.inf, i) for i, v in enumerate(score)]
    t = [(-v, i) for i, v in enumerate(target)]
    return len({i for _, i in sorted(s)[:k]} & {i for _, i in sorted(t)[:k]}) / k


@pytest.mark.parametrize("seed", range(6))
def test_top_k_overlap_matches_brute_force(pv, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 20))
    score = rng.integers(0, 4, n).astype(float) if seed % 2 else rng.normal(size=n)
    if seed == 3:
        score[0] = np.nan
    target = rng.normal(size=n)
    for k in (1, n // 2 or 1, n):
        assert pv.top_k_overlap(score, target, k) == _ref_overlap(score, target, k)
    assert pv.top_k_overlap(target, target, max(1, n // 3)) == 1.0
    with pytest.raises(ValueError, match="k=0"):
        pv.top_k_overlap(score, target, 0)


def test_analyse_uses_the_shared_correlations(pv):
    from analysis.correlation import kendall_tau, spearman_rho

    rng = np.random.default_rng(0)
    top1 = rng.normal(size=12)
    frame = pd.DataFrame({"top1": top1, "zc.good": top1 + 0.1 * rng.normal(size=12), "params": rng.normal(size=12),
                          "zc.bad": -top1})
    table, results = pv.analyse(frame, ["zc.good", "params", "zc.bad", "zc.missing"], k=3, n_boot=50)
    assert list(table["x"]) == ["zc.good", "params", "zc.bad"] and len(results) == 3
    row = table.set_index("x")
    assert row.loc["zc.good", "kendall_tau"] == pytest.approx(kendall_tau(frame["zc.good"], top1))
    assert row.loc["params", "spearman_rho"] == pytest.approx(spearman_rho(frame["params"], top1))
    assert row.loc["zc.bad", "kendall_tau"] == pytest.approx(-1.0) and row.loc["zc.bad", "top3_overlap"] == 0.0
    assert row.loc["zc.good", "tau_lo"] <= row.loc["zc.good", "kendall_tau"] <= row.loc["zc.good", "tau_hi"]


def test_scales_and_bad_settings(pv):
    d = pv.scale("default")
    assert d.n_archs >= 30 and d.short_epochs == (1, 3) and d.recipe.epochs > 3 and d.top_k == 6
    assert d.signals()[:5] == [f"zc.{z}" for z in pv.ZERO_COST] and {"params", "flops", "zc.train_3ep"} <= set(
        d.signals())
    with pytest.raises(ValueError, match="scales: default, smoke"):
        pv.scale("huge")
    with pytest.raises(ValueError, match="at least 3"):
        pv.Study(**{**d.__dict__, "n_archs": 2})
    with pytest.raises(ValueError, match="below the reference"):
        pv.Study(**{**d.__dict__, "short_epochs": (1, 15)})


def test_sampled_architectures_are_distinct_valid_and_seeded(pv):
    from lab.config import config_id

    a = pv.sample_architectures(6, seed=3)
    assert a == pv.sample_architectures(6, seed=3) and a != pv.sample_architectures(6, seed=4)
    assert len({config_id(pv.space().to_config(p)) for p in a}) == 6


def test_smoke_scale_writes_table_scatter_inputs_and_report(pv, tmp_path):
    from lab.measure.params import count_parameters
    from lab.models import build_model

    study = pv.scale("smoke", data_root=str(tmp_path / "data"))
    study = pv.Study(**{**study.__dict__, "n_archs": 3})
    out = tmp_path / "run"
    result = pv.run(study, out=out, workers=1, report=True, log=lambda m: None)
    df = pd.read_parquet(out / "trials.parquet")
    assert sorted(df["trial"]) == [0, 1, 2] and (df["status"] == "complete").all()
    for col in study.signals():
        assert col in df.columns, col
    assert (df["epochs"] == study.recipe.epochs).all() and df["top1"].between(0, 100).all()
    assert df["zc.train_1ep"].between(0, 100).all() and df["zc.synflow"].notna().all()
    # costs are those of the network the row describes
    row = df.iloc[0]
    import lab.config

    cfg = lab.config.ModelConfig.from_dict(json.loads(row["config_json"]))
    assert count_parameters(build_model(cfg)) == row["params"]
    table = pd.read_csv(out / "proxy_validity.csv")
    assert list(table["x"]) == study.signals() and table["top1_overlap"].between(0, 1).all()
    assert (out / "proxy_validity.md").read_text().count("\n| ") == len(study.signals()) + 1
    md = result["report"].with_name("report.md").read_text()
    assert "Rank correlations of proxies" in md and "zc.train_1ep" in md
    assert (out / "report" / "tables" / "rank_correlations.csv").is_file()
    meta = json.loads((out / "experiment.json").read_text())
    assert meta["proxy_validity"]["n_archs"] == 3 and meta["recipe"]["epochs"] == study.recipe.epochs


def test_interrupted_run_keeps_finished_networks(pv, tmp_path):
    """Each finished network is appended to rows.partial.jsonl; a rerun evaluates only the missing ones,
    refuses a file written by a different setup, and a cut-off last line (a crash mid-write) is ignored."""
    study = pv.scale("smoke", data_root=str(tmp_path / "data"))
    study = pv.Study(**{**study.__dict__, "n_archs": 3})
    out = tmp_path / "run"
    pv.run(study, out=out, workers=1, report=False, log=lambda m: None)
    first = pd.read_parquet(out / "trials.parquet").set_index("trial")
    partial = out / pv.PARTIAL
    lines = partial.read_text().splitlines()
    assert len(lines) == 3
    kept = [ln for ln in lines if json.loads(ln)["row"]["trial"] != 1]
    partial.write_text("\n".join(kept) + "\n" + lines[0][: len(lines[0]) // 2] + "\n")  # network 1 lost, a torn line
    logs: list[str] = []
    pv.run(study, out=out, workers=1, report=False, log=logs.append)
    assert any("reusing 2 network(s)" in m for m in logs)
    assert [m for m in logs if m.startswith("[")] == [m for m in logs if "network 1:" in m]  # only 1 was redone
    again = pd.read_parquet(out / "trials.parquet").set_index("trial")
    assert sorted(again.index) == [0, 1, 2]
    assert again.loc[[0, 2], "duration_s"].tolist() == first.loc[[0, 2], "duration_s"].tolist()  # reused rows
    assert again.loc[1, "top1"] == pytest.approx(first.loc[1, "top1"])  # redone: same seed, same answer
    other = pv.Study(**{**study.__dict__, "seed": 1})
    with pytest.raises(ValueError, match="different study setup"):
        pv.run(other, out=out, workers=1, report=False, log=lambda m: None)
