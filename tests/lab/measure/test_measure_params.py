"""Parameter counts: official totals (frozen Haar filters included), trainable, fused."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import lab
from lab.measure import param_counts


@pytest.fixture(scope="module")
def official(data_dir_module):
    return json.loads((data_dir_module / "official_numbers.json").read_text())["variants"]


@pytest.fixture(scope="module")
def data_dir_module():
    from pathlib import Path

    return Path(__file__).parents[2] / "data"


@pytest.mark.parametrize("name", lab.OFFICIAL_VARIANTS)
def test_official_param_counts(name, official):
    counts = param_counts(lab.build_model(name))
    assert counts.total == official[name]["params"]
    assert counts.trainable == official[name]["trainable"]


def test_fused_count_is_the_fused_models_count_and_model_is_untouched():
    model = lab.build_model("mobilemamba_tiny").train()
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    counts = param_counts(model)
    fused = lab.build_model("mobilemamba_tiny")
    fused.load_state_dict(model.state_dict())
    fused.eval().fuse()
    assert counts.fused == sum(p.numel() for p in fused.parameters())
    assert counts.fused < counts.total
    assert model.training and sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == n_bn


def test_frozen_parameters_count_in_total_not_trainable():
    net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    net[0].weight.requires_grad_(False)
    counts = param_counts(net)
    assert (counts.total, counts.trainable, counts.fused) == (4 * 3 + 3 + 3 * 2 + 2, 3 + 3 * 2 + 2, None)


def test_shared_parameters_counted_once():
    lin = nn.Linear(5, 5)
    net = nn.Sequential(lin, nn.ReLU(), lin)
    assert param_counts(net).total == 30
    assert torch.equal(net[0].weight, net[2].weight)
