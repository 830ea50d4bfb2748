"""Ablation tables (grouping, mean ± std, Δ, writers) and rank correlations (hand values, brute force, bootstrap)."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pandas as pd
import pytest

from analysis.correlation import bootstrap_ci, correlation_table, kendall_tau, rank_correlation, rankdata, spearman_rho
from analysis.tables import ablation_table, latex_escape

WL = "p.stages.0.mixer.wavelet_levels"
KS = "p.stages.0.mixer.local_kernels"


def _ablation_trials() -> pd.DataFrame:
    rows = []
    top1 = {0: [70.0, 71.0, 72.0], 1: [73.0, 74.0], 2: [74.5]}
    params = {0: 4.0e6, 1: 4.2e6, 2: 4.4e6}
    t = 0
    for level, accs in top1.items():
        for seed, acc in enumerate(accs):
            rows.append({"trial": t, "status": "complete", WL: level, KS: [7], "seed": seed, "top1": acc,
                         "top5": acc + 15, "params": params[level], "flops": params[level] * 100,
                         "throughput": 1000.0 - 100 * level + seed, "latency_ms": 1.0 + level})
            t += 1
    # a failed trial of level 2 is counted but does not enter the means
    rows.append({"trial": t, "status": "failed", WL: 2, KS: [7], "seed": 1, "top1": np.nan, "top5": np.nan,
                 "params": params[2], "flops": params[2] * 100, "throughput": np.nan, "latency_ms": np.nan})
    return pd.DataFrame(rows)


def test_ablation_table_numbers():
    table = ablation_table(_ablation_trials(), factors=[WL], baseline={WL: 1, "p.other": 3})
    f = table.frame
    assert f[WL].tolist() == [1, 0, 2] and f["is_baseline"].tolist() == [True, False, False]
    assert f["n"].tolist() == [2, 3, 1] and f["n_other"].tolist() == [0, 0, 1]
    np.testing.assert_allclose(f["top1_mean"], [73.5, 71.0, 74.5])
    np.testing.assert_allclose(f["top1_std"], [np.std([73, 74], ddof=1), 1.0, np.nan])
    np.testing.assert_allclose(f["delta_top1"], [0.0, -2.5, 1.0])
    np.testing.assert_allclose(f["delta_params_pct"], [0.0, 100 * (4.0 / 4.2 - 1), 100 * (4.4 / 4.2 - 1)])
    np.testing.assert_allclose(f["throughput"], [900.5, 1001.0, 800.0])
    md = table.to_markdown()
    assert "| wavelet_levels" in md.splitlines()[0].replace("stages.0.mixer.", "")
    assert "73.50 ± 0.71" in md and "-2.50" in md and "1 (baseline)" in md and "(+1 not complete)" in md
    tex = table.to_latex(caption="Wavelet levels_ablation", label="tab:wl")
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "$\\pm$" in tex
    assert "levels\\_ablation" in tex and "$\\Delta$ top1" in tex
    back = pd.read_csv(io.StringIO(table.to_csv()))
    np.testing.assert_allclose(back["top1_mean"], f["top1_mean"])


def test_ablation_two_factors_list_values_and_no_baseline():
    trials = _ablation_trials()
    trials.loc[trials["seed"] == 0, KS] = pd.Series([[3, 5]] * int((trials["seed"] == 0).sum()),
                                                    index=trials.index[trials["seed"] == 0])
    table = ablation_table(trials, factors=[WL, KS])
    assert len(table.frame) == 6 and not table.baseline_found
    assert table.frame["delta_top1"].isna().all()
    assert "No baseline" in table.to_markdown()
    with pytest.raises(KeyError, match="sampled columns"):
        ablation_table(trials, factors=["p.nope"])
    with pytest.raises(ValueError, match="matches 2 settings"):
        ablation_table(trials, factors=[WL, KS], baseline={WL: 0})
    assert latex_escape("a_b & 5% ±") == "a\\_b \\& 5\\% $\\pm$"


def _brute_tau_b(x, y):
    c = d = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        if sx == 0 and sy == 0:
            tx += 1
            ty += 1
        elif sx == 0:
            tx += 1
        elif sy == 0:
            ty += 1
        elif sx == sy:
            c += 1
        else:
            d += 1
    n0 = len(x) * (len(x) - 1) / 2
    return (c - d) / np.sqrt((n0 - tx) * (n0 - ty))


def test_rank_correlations_hand_values_and_brute_force():
    # published values (scipy documentation examples)
    assert kendall_tau([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]) == pytest.approx(-0.47140452079103173)
    assert spearman_rho([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233)
    np.testing.assert_allclose(rankdata([3, 1, 3, 2]), [3.5, 1, 3.5, 2])
    rng = np.random.default_rng(0)
    for _ in range(10):
        n = int(rng.integers(3, 40))
        x = rng.integers(0, 6, n).astype(float)
        y = x + rng.integers(-3, 4, n)
        assert kendall_tau(x, y, chunk=7) == pytest.approx(_brute_tau_b(x, y))
        if len(set(x)) == n and len(set(y)) == n:  # no ties: the closed form
            d = rankdata(x) - rankdata(y)
            assert spearman_rho(x, y) == pytest.approx(1 - 6 * (d * d).sum() / (n * (n * n - 1)))
    assert np.isnan(kendall_tau([1, 1, 1], [1, 2, 3])) and np.isnan(spearman_rho([1, 1, 1], [1, 2, 3]))


def test_bootstrap_intervals():
    rng = np.random.default_rng(1)
    x = rng.normal(size=60)
    y = x + rng.normal(scale=0.7, size=60)
    lo, hi = bootstrap_ci(x, y, kendall_tau, n_boot=300, seed=3)
    tau = kendall_tau(x, y)
    assert lo < tau < hi and 0 < lo and hi < 1
    assert (lo, hi) == bootstrap_ci(x, y, kendall_tau, n_boot=300, seed=3)
    narrow = bootstrap_ci(x, y, kendall_tau, n_boot=300, level=0.5, seed=3)
    assert lo < narrow[0] < narrow[1] < hi
    assert bootstrap_ci(x, 2 * x + 1, spearman_rho, n_boot=50) == (1.0, 1.0)
    assert all(np.isnan(bootstrap_ci([1, 2], [2, 1], kendall_tau)))


def test_correlation_table_from_frame_drops_missing_rows():
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"zc.synflow": rng.normal(size=30), "zc.params": np.arange(30.0), "top1": np.arange(30.0)})
    df.loc[3, "top1"] = np.nan
    table, results = correlation_table(df, ["zc.synflow", "zc.params"], "top1", n_boot=100)
    assert table["n"].tolist() == [29, 29]
    assert table.loc[1, "kendall_tau"] == pytest.approx(1.0) and table.loc[1, "rho_lo"] == pytest.approx(1.0)
    assert results[0].x_values.shape == (29,)
    with pytest.raises(KeyError, match="available"):
        rank_correlation(df, "zc.nope", "top1")
