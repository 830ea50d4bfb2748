"""``lab measure``: table, JSON lines, CSV, config files, errors."""

from __future__ import annotations

import csv
import json

import pytest
import torch

import lab
from lab.cli import main

FAST = ["--batch", "2", "--warmup", "0", "--iters", "1", "--latency-warmup", "0", "--latency-iters", "1"]
JSON_KEYS = {"model", "config_id", "res", "params", "params_trainable", "flops", "flops_full", "unsupported_ops"}


def test_table_for_t2_at_192(capsys, tmp_path):
    assert main(["measure", "mobilemamba_t2", "--res", "192", "--cache-dir", str(tmp_path), *FAST]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["model", "res", "params", "M"]
    row = out[2].split()
    assert row[:4] == ["mobilemamba_t2", "192", "8.837", "8.807"]
    assert row[5] == "254.7"  # paper-convention MFLOPs
    assert "@bs2" in out[2]


def test_json_lines_without_timing(capsys, tmp_path):
    argv = ["measure", "mobilemamba_tiny", "resnet18", "--res", "64", "--no-timing", "--json", "--cache-dir",
            str(tmp_path), "--csv", str(tmp_path / "rows.csv")]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["model"] for r in rows] == ["mobilemamba_tiny", "resnet18"]
    for r in rows:
        assert JSON_KEYS <= set(r) and "throughput" not in r and r["res"] == 64
    with open(tmp_path / "rows.csv") as f:
        table = list(csv.DictReader(f))
    assert [t["model"] for t in table] == ["mobilemamba_tiny", "resnet18"] and "env_git_sha" in table[0]


def test_json_with_timing_and_config_file(capsys, tmp_path):
    cfg_file = tmp_path / "tiny.json"
    cfg_file.write_text(json.dumps(lab.get_config("mobilemamba_tiny").to_dict()))
    assert main(["measure", str(cfg_file), "--json", "--no-cache", "--no-train-memory", *FAST]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["config_id"] == lab.build_model("mobilemamba_tiny").config_id
    assert {"throughput", "latency_ms", "peak_mem_mb", "env"} <= set(row)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["mobilemamba_t3", "--no-timing"], "unknown model"),
        (["mobilemamba_t2", "--res", "32", "--no-timing"], "total stride"),
        (["mobilemamba_tiny", "--precision", "amp-fp16"], "amp-fp16"),
        (["missing.json"], "does not exist"),
    ],
)
def test_errors_are_one_clear_line(argv, message, capsys):
    assert main(["measure", *argv, "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu(capsys):
    assert main(["measure", "mobilemamba_tiny", "--device", "cuda", "--no-cache"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
