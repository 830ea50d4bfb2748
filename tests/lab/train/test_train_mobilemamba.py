"""The trainer and zero-cost proxies on the lab's own network (tiny MobileMamba, 64 px proxy preset)."""

from __future__ import annotations

import math

import pytest
import torch

import lab
from lab.data import DataSpec, load_proxy_data
from lab.data.synthetic import SynthSpec, generate
from lab.train import ProxyRecipe, train_proxy
from lab.train.zero_cost import zero_cost_scores


@pytest.fixture(scope="module")
def tiny_synth(tmp_path_factory):
    root = generate(tmp_path_factory.mktemp("mm") / "s", SynthSpec(num_classes=3, train_per_class=8, val_per_class=4))
    return load_proxy_data(DataSpec(root=str(root), resolution=64, cache_dir=str(root.parent / "c")), progress=False)


def test_mobilemamba_tiny_trains_one_epoch_and_scores(tiny_synth):
    torch.manual_seed(0)
    model = lab.build_model("mobilemamba_tiny", num_classes=3)
    recipe = ProxyRecipe(epochs=1, batch_size=12, warmup_epochs=0.5)
    r = train_proxy(model, tiny_synth, recipe, threads=1)
    assert r.epochs_completed == 1 and len(r.loss_curve) == 2 and all(math.isfinite(v) for v in r.loss_curve)
    x, y = next(tiny_synth.train_batches(4, seed=0))
    scores = zero_cost_scores(model, x, y, proxies=["synflow", "naswot", "grad_norm", "snip", "params"])
    assert all(isinstance(v, float) and not math.isnan(v) for v in scores.values()), scores


@pytest.mark.slow
def test_acceptance_mobilemamba_tiny_3_epochs_above_chance(tmp_path):
    """Issue-4 acceptance: 10 synthetic classes, 2,000 train images, 64 px, 3 epochs, 2 threads."""
    root = generate(tmp_path / "synth", SynthSpec())
    data = load_proxy_data(DataSpec(root=str(root), resolution=64, cache_dir=str(tmp_path / "c")), progress=False)
    assert data.train_images.shape[0] == 2000 and data.num_classes == 10
    torch.manual_seed(0)
    r = train_proxy(lab.build_model("mobilemamba_tiny", num_classes=10), data, ProxyRecipe(epochs=3), threads=2)
    print(
        f"mobilemamba_tiny: top1 {r.top1:.1f}% top5 {r.top5:.1f}% wall {r.wall_time_s:.1f}s {r.images_per_s:.0f} img/s"
    )
    assert r.top1 > 20.0  # chance is 10 %
