"""measure(): model resolution, rows, cache reuse, clear errors."""

from __future__ import annotations

import pytest
import torch

import lab
from lab.measure import MeasureCache, count_flops, flop_counter_mode_macs, measure, param_counts
from lab.measure import api as api_mod

ROW_KEYS = {"model", "config_id", "res", "params", "params_trainable", "params_fused", "flops", "flops_full",
            "unsupported_ops", "env", "batch", "precision", "fused", "threads"}


def test_counts_row_matches_the_counters():
    row = measure("mobilemamba_tiny", what=("params", "flops"))
    assert ROW_KEYS <= set(row)
    model = lab.build_model("mobilemamba_tiny")
    assert row["config_id"] == model.config_id and row["res"] == 64
    assert row["params"] == param_counts(model).total
    assert row["flops"] == count_flops(model, res=64).paper
    assert row["env"]["fused"] is False and row["env"]["batch"] == 1  # the FLOP convention: unfused, batch 1


def test_cache_serves_repeats_without_measuring(tmp_path, monkeypatch):
    cache = MeasureCache(tmp_path)
    first = measure("mobilemamba_tiny", res=32, what=("params", "flops"), cache=cache)
    assert first["cached"] == []

    def boom(*a, **k):
        raise AssertionError("measured twice")

    monkeypatch.setattr(api_mod, "count_flops", boom)
    monkeypatch.setattr(api_mod, "param_counts", boom)
    again = measure(lab.get_config("mobilemamba_tiny"), res=32, what=("flops", "params"), cache=cache)
    assert again["cached"] == ["params", "flops"]
    assert {k: again[k] for k in ("params", "flops", "flops_full")} == {k: first[k] for k in ("params", "flops",
                                                                                            "flops_full")}
    with pytest.raises(AssertionError, match="measured twice"):
        measure("mobilemamba_tiny", res=48, what="flops", cache=cache)  # another resolution is another key


def test_timing_row_has_the_promised_keys(tmp_path):
    row = measure("mobilemamba_tiny", what=("throughput", "memory"), batch=2, warmup=0, iters=2, latency_warmup=0,
                  latency_iters=2, cache=MeasureCache(tmp_path))
    assert {"throughput", "latency_ms", "peak_mem_mb", "peak_mem_train_mb", "env", "protocol"} <= set(row)
    env = row["env"]
    assert {"device_name", "torch", "triton", "TRITON_INTERPRET", "git_sha", "timestamp"} <= set(env)
    assert (row["batch"], row["threads"], row["fused"], row["precision"]) == (2, 1, True, "fp32")


def test_timm_model_by_name():
    row = measure("resnet18", res=64, what=("params", "flops"))
    model = __import__("timm").create_model("resnet18")
    assert row["config_id"] == "timm:resnet18" and row["params"] == sum(p.numel() for p in model.parameters())
    assert row["unsupported_ops"] == {}
    ops = row["flops_by_operator"]
    assert "full:max_pool2d" in row["flops_skipped_by_convention"]
    # fvcore's convention = FlopCounterMode's convs/linear + BN + global pool
    macs = flop_counter_mode_macs(model, torch.randn(1, 3, 64, 64))
    assert row["flops"] == macs + ops["batch_norm"] + ops["adaptive_avg_pool2d"]


def test_clear_errors():
    with pytest.raises(KeyError, match="Did you mean.*mobilemamba_t2"):
        measure("mobilemamba_t3")
    with pytest.raises(ValueError, match="total stride"):
        measure("mobilemamba_t2", res=32)
    with pytest.raises(ValueError, match="positive int"):
        measure("mobilemamba_tiny", res=-3)
    with pytest.raises(ValueError, match="amp-fp16"):
        measure("mobilemamba_tiny", what="throughput", precision="amp-fp16")
    with pytest.raises(ValueError, match="unknown measurement"):
        measure("mobilemamba_tiny", what=("params", "speed"))
