"""`lab report` end to end: files, stated facts, edge cases, CLI, and rendering in headless Chromium."""

from __future__ import annotations

import base64
import html as html_lib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DS, LK, REFS, WL, experiment, quickstart_trials, write_run
from PIL import Image

from analysis.pareto import compare_fronts, hypervolume, pareto_mask
from reports.report import ReportOptions, build_report

FAST = ReportOptions(erf=False, bootstrap=100, svg=False)
REAL_RUN = Path(__file__).resolve().parents[1] / "data" / "report_quickstart_run"


@pytest.fixture(scope="session")
def quickstart_report(quickstart_run):
    return build_report(quickstart_run, options=ReportOptions(erf_images=2, bootstrap=200))


def test_quickstart_report_files_and_numbers(quickstart_run, quickstart_report):
    res = quickstart_report
    assert res.index_html == quickstart_run / "report" / "index.html" and res.report_md.is_file()
    figures = [*res.facts["frontier_figures"], "hypervolume", "erf_grid", "importance", "proxy_scatter"]
    assert len(res.facts["frontier_figures"]) == 3
    for name in figures:
        for ext in ("png", "svg"):
            assert (res.out_dir / "figures" / f"{name}.{ext}").stat().st_size > 1000, (name, ext)
    # the Pareto set and hypervolume the report states are those of the trials table
    trials = pd.read_parquet(quickstart_run / "trials.parquet")
    done = trials[trials["status"] == "complete"]
    vals = done[["top1", "throughput"]].to_numpy()
    dirs = ["maximize", "maximize"]
    expected = sorted(done["trial"][pareto_mask(vals, dirs)].tolist())
    assert sorted(res.facts["pareto_trials"]) == expected
    assert sorted(pd.read_csv(res.out_dir / "tables" / "pareto_set.csv")["trial"]) == expected
    assert res.facts["hypervolume"] == pytest.approx(hypervolume(vals, res.facts["reference_point"], dirs))
    assert res.facts["best_trial"] == int(done.loc[done["top1"].idxmax(), "trial"])
    maps = res.facts["erf_maps"]
    assert any("trained" in m for m in maps) and any("initialisation" in m for m in maps)
    assert set(res.facts["importance"]) == {"top1", "throughput"}
    assert res.facts["correlations"]["zc.synflow"] > 0.5  # synflow was built to track top1
    md = res.report_md.read_text()
    for heading in ("Summary and provenance", "Frontier plots", "Pareto set", "Hypervolume", "Effective receptive",
                    "Parameter importance", "Rank correlations", "All trials"):
        assert f"## {heading}" in md
    assert "0123abcd" in md and "synthetic-64" in md and "measured on this machine" in md
    assert "N(0,1) noise" in md and "CUDA OOM" in md
    html = res.index_html.read_text()
    assert html.count('<img src="data:image/png;base64,') == len(figures)
    assert not re.search(r'(src|href)="(?!data:|#)', html), "the HTML must not load anything external"
    assert "<script" not in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || (e.target && e.target.src || '')
  ).slice(0, 80)), true);
window.addEventListener('load', () => {
  const out = [...document.images].map(img => {
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    let dark = 0, n = 0;
    if (img.naturalWidth) {
      const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
      const d = ctx.getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < d.length; i += 16) { n++; if (d[i] + d[i + 1] + d[i + 2] < 384) dark++; }
    }
    const r = img.getBoundingClientRect();
    return {id: img.closest('figure') ? img.closest('figure').id : '', w: img.naturalWidth, shown: r.width,
            height: r.height, top: r.top + window.scrollY, left: r.left + window.scrollX, dark: n ? dark / n : 0};
  });
  const pre = document.createElement('pre'); pre.id = 'probe-result';
  pre.textContent = JSON.stringify({images: out, errors: window.__errors});
  document.body.appendChild(pre);
});
</script>"""


def _run_chromium(*args: str) -> subprocess.CompletedProcess:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(_chromium() is None, reason="the chromium binary is missing (Debian package 'chromium', "
                    "installed by .ci/run); this test renders the report in headless Chromium")
def test_report_renders_in_headless_chromium(quickstart_report, tmp_path):
    """Open index.html in headless Chromium: no console message or load error, every figure decoded and laid out,
    and each figure's area in a full-page screenshot is not blank."""
    res = quickstart_report
    index = res.index_html
    figures = [*res.facts["frontier_figures"], "hypervolume", "erf_grid", "importance", "proxy_scatter"]
    # 1. a probed copy reports, from inside the browser, each figure's decode state, pixels and page position
    probed = tmp_path / "probed.html"
    probed.write_text(index.read_text().replace("</head>", PROBE + "</head>", 1))
    dom = _run_chromium("--dump-dom", "--virtual-time-budget=5000", "--window-size=1280,1000", probed.as_uri())
    m = re.search(r'<pre id="probe-result">(.*?)</pre>', dom.stdout, re.S)
    assert m, dom.stderr[-2000:]
    probe = json.loads(html_lib.unescape(m.group(1)))
    assert probe["errors"] == []
    assert sorted(i["id"] for i in probe["images"]) == sorted(f"fig-{n}" for n in figures)
    for i in probe["images"]:
        assert i["w"] > 200 and i["shown"] > 200, i
        assert 0.005 < i["dark"] < 0.9, f"figure {i['id']} looks blank when decoded: {i}"
    # 2. the report itself, unmodified: no console output (it has no scripts) and a screenshot tall enough to
    #    hold every figure, whose figure areas must each be drawn
    bottom = max(i["top"] + i["height"] for i in probe["images"])
    height = int(min(bottom + 200, 16000))
    shot = tmp_path / "shot.png"
    run = _run_chromium(f"--screenshot={shot}", f"--window-size=1280,{height}", index.as_uri())
    console = [ln for ln in run.stderr.splitlines() if ":CONSOLE" in ln]
    assert not console, console
    assert shot.is_file(), run.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert img.shape[:2] == (height, 1280)
    for i in probe["images"]:
        top, left = int(i["top"]), int(i["left"])
        crop = img[top : top + int(i["height"]), left : left + int(i["shown"])]
        gray = crop.mean(-1)
        assert crop.shape[0] > 100 and crop.shape[1] > 200, (i["id"], crop.shape)
        assert gray.std() > 15 and (gray < 128).mean() > 0.005, f"figure {i['id']} is blank in the screenshot"
    red = (img[..., 0] > 150) & (img[..., 1] < 90) & (img[..., 2] < 90)
    assert red.sum() > 300, "the red Pareto-front markers are not visible in the screenshot"


def test_cli_writes_the_report(quickstart_run, tmp_path, capsys):
    from lab.cli import main

    out = tmp_path / "r"
    assert main(["report", str(quickstart_run), "--no-erf", "--no-svg", "--bootstrap", "50", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "r" / "index.html")
    assert "ERF maps were switched off" in (out / "report.md").read_text()
    assert (out / "figures" / "hypervolume.png").is_file() and not (out / "figures" / "hypervolume.svg").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "notarun").mkdir()
    assert main(["report", str(tmp_path / "notarun")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_empty_run(tmp_path):
    root = write_run(tmp_path / "empty", experiment("empty"), [])
    res = build_report(root, options=FAST)
    md = res.report_md.read_text()
    assert res.facts["state"] == "empty" and "no trials" in md
    assert "No completed trial with every objective measured" in md and "No Pareto set" in md
    assert res.index_html.is_file()
    # and a run directory with only experiment.json
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "experiment.json").write_text(json.dumps(experiment("bare")))
    md = build_report(bare, options=FAST).report_md.read_text()
    assert "No trials file" in md and "the run has no trials" in md


def test_every_trial_failed(tmp_path):
    trials = quickstart_trials(5, statuses=["failed", "pruned", "infeasible"])
    res = build_report(write_run(tmp_path / "failed", experiment("failed"), trials, study=True), options=FAST)
    md = res.report_md.read_text()
    assert res.facts["state"] == "all_failed" and "No trial completed: all 5 trials" in md
    assert "CUDA OOM" in md and "params > 5M" in md
    assert "No Pareto set" in md and "No hypervolume" in md
    assert "0 completed trial(s): importance needs at least two" in md
    assert "No completed trials with top1" in md


def test_single_objective_run(tmp_path):
    exp = experiment("single", objectives=[{"name": "top1", "direction": "maximize"}])
    trials = quickstart_trials(8, seed=1)
    res = build_report(write_run(tmp_path / "single", exp, trials, study=True), options=FAST)
    md = res.report_md.read_text()
    assert res.facts.get("single_objective") and "Single-objective run (top1, maximize)" in md
    done = [r for r in trials if r["status"] == "complete"]
    best = max(done, key=lambda r: r["top1"])
    assert res.facts["pareto_trials"] == [best["trial"]] and res.facts["knee_trial"] == best["trial"]
    assert set(res.facts["importance"]) == {"top1"}


def test_one_trial_run_with_erf(tmp_path):
    trials = quickstart_trials(1, seed=2)
    res = build_report(write_run(tmp_path / "one", experiment("one"), trials),
                       options=ReportOptions(erf_images=1, bootstrap=50, svg=False))
    md = res.report_md.read_text()
    assert res.facts["state"] == "single_trial" and "single trial" in md
    assert res.facts["pareto_trials"] == [0] and res.facts["hypervolume"] > 0
    assert "No study.db" in md and "No reference_points.json" in md
    assert "Fewer than 3 completed trials" in md
    assert "knee = best accuracy (trial 0)" in md and "at initialisation" in md  # one model, no checkpoint


def test_ablation_run_from_csv_only(tmp_path):
    rows = []
    for t, (wl, seed) in enumerate([(w, s) for w in (0, 1, 2) for s in (0, 1)]):
        row = quickstart_trials(1, seed=10 + t)[0]
        row.update({"trial": t, "seed": seed, WL: wl, DS: 1, LK: "7", "top1": 60.0 + 3 * wl + seed})
        rows.append(row)
    exp = experiment("wavelet_ablation", kind="ablation",
                     ablation={"factors": [WL], "baseline": {WL: 1}})
    root = write_run(tmp_path / "abl", exp, rows, refs=REFS, csv_only=True)
    res = build_report(root, options=FAST)
    md = res.report_md.read_text()
    assert "## Ablation" in md and res.facts["ablation_rows"] == 3
    assert "trials.parquet is missing; read trials.csv" in md
    table = pd.read_csv(res.out_dir / "tables" / "ablation.csv")
    assert table[WL].tolist() == [1, 0, 2]
    np.testing.assert_allclose(table["delta_top1"], [0.0, -3.0, 3.0])
    tex = (res.out_dir / "tables" / "ablation.tex").read_text()
    assert "\\toprule" in tex and "63.50 $\\pm$ 0.71" in tex


def test_reference_point_from_experiment_is_used(tmp_path):
    exp = experiment("refpt", reference_point={"top1": 50.0, "throughput": 1000.0})
    trials = quickstart_trials(6, seed=3)
    res = build_report(write_run(tmp_path / "refpt", exp, trials), options=FAST)
    assert res.facts["reference_point"] == [50.0, 1000.0]
    assert "from experiment.json" in res.report_md.read_text()


def test_reused_trial_is_listed_once_in_the_pareto_set(tmp_path):
    trials = quickstart_trials(6, seed=3)
    done = [r for r in trials if r["status"] == "complete"]
    best = max(done, key=lambda r: r["top1"])  # always on the front
    dup = {**best, "trial": len(trials), "reused_from": float(best["trial"]), "train_seconds": 0.0}
    res = build_report(write_run(tmp_path / "dup", experiment("dup"), trials + [dup]), options=FAST)
    assert best["trial"] in res.facts["pareto_trials"] and dup["trial"] not in res.facts["pareto_trials"]
    assert res.facts["n_scored"] == len(done)
    assert "1 trial(s) reused the result" in res.report_md.read_text()


def test_bad_run_files_give_clear_errors(tmp_path):
    root = write_run(tmp_path / "bad", experiment("bad"), quickstart_trials(2))
    (root / "reference_points.json").write_text('{"name": "x"}')
    with pytest.raises(ValueError, match="list of objects"):
        build_report(root, options=FAST)
    (root / "reference_points.json").unlink()
    (root / "experiment.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        build_report(root, options=FAST)


def test_figures_match_between_png_on_disk_and_embedded(quickstart_report):
    html = quickstart_report.index_html.read_text()
    m = re.search(r'<figure id="fig-hypervolume"><img src="data:image/png;base64,([^"]+)"', html)
    on_disk = (quickstart_report.out_dir / "figures" / "hypervolume.png").read_bytes()
    assert m and base64.b64decode(m.group(1)) == on_disk
    assert Image.open(io.BytesIO(base64.b64decode(m.group(1)))).size[0] > 300


def test_compare_two_sweeps(tmp_path):
    a = write_run(tmp_path / "a", experiment("a"), quickstart_trials(10, seed=4))
    b = write_run(tmp_path / "b", experiment("b"), quickstart_trials(10, seed=5))
    res = build_report(a, options=FAST, compare_with=b)
    ta, tb = pd.read_csv(a / "trials.csv"), pd.read_csv(b / "trials.csv")
    va = ta[ta["status"] == "complete"][["top1", "throughput"]].to_numpy()
    vb = tb[tb["status"] == "complete"][["top1", "throughput"]].to_numpy()
    expected = compare_fronts(va, vb, ["maximize", "maximize"]).summary()
    assert res.facts["comparison"] == pytest.approx(expected)
    assert "## Comparison with b" in res.report_md.read_text()
    other = write_run(tmp_path / "c", experiment("c", objectives=[{"name": "top1", "direction": "maximize"}]),
                      quickstart_trials(3))
    assert "not the same objectives" in build_report(a, options=FAST, compare_with=other).report_md.read_text()


def test_report_on_a_real_sweep_output(tmp_path):
    """The sweep's own files (copied from a real quickstart run) go through the report unchanged."""
    run = tmp_path / "quickstart"
    shutil.copytree(REAL_RUN, run)
    res = build_report(run, options=FAST)
    md = res.report_md.read_text()
    trials = pd.read_csv(run / "trials.csv")
    done = trials[trials["status"] == "complete"]
    reused = done["reused_from"].notna() & done["reused_from"].isin(done["trial"])
    assert reused.any()  # the fixture holds a duplicate: it is scored once, as its original
    done = done[~reused]
    front = done["trial"][pareto_mask(done[["top1", "flops"]].to_numpy(), ["maximize", "minimize"])]
    assert sorted(res.facts["pareto_trials"]) == sorted(front.tolist())
    assert res.facts["objectives"] == [("top1", "maximize"), ("flops", "minimize")]
    assert "p.stages.*.mixer.wavelet_levels" in md and "No study.db" in md
    assert len(res.facts["frontier_figures"]) == 3
