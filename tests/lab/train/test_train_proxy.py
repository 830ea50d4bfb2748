"""Proxy trainer: learns, reports, stops on request, diverges loudly, resumes after a real kill."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from lab.train import CheckpointMismatch, ProxyRecipe, RecipeError, StopTrial, TrialDiverged, train_proxy
from lab.train.proxy import lr_at, param_groups

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import RECIPE, TinyNet, colour_data  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return colour_data()


def test_learns_well_above_chance_and_reports(data):
    seen = []
    r = train_proxy(TinyNet(), data, RECIPE, callback=seen.append, threads=1)
    assert r.top1 > 60.0  # 4 classes: chance is 25 %
    assert r.top5 == 100.0  # top-min(5, 4): every label is in the top 4
    assert r.epochs_completed == 3 and not r.stopped_early and r.resumed_from_epoch == 0
    assert [m.epoch for m in seen] == [1, 2, 3] and seen[-1].top1 == r.top1
    assert len(r.loss_curve) == 3 * 6 and all(math.isfinite(v) for v in r.loss_curve)
    assert r.loss_curve[-1] < r.loss_curve[0]
    assert r.wall_time_s > 0 and r.images_per_s > 0 and r.recipe_id == RECIPE.recipe_id()
    assert "amp requested but ignored on CPU" in r.notes or not RECIPE.amp
    json.dumps(r.to_dict())  # serialisable for logs


def test_same_seed_same_result_other_seed_differs(data):
    a = train_proxy(TinyNet(), data, RECIPE, threads=1)
    b = train_proxy(TinyNet(), data, RECIPE, threads=1)
    c = train_proxy(TinyNet(), data, dataclasses.replace(RECIPE, seed=1), threads=1)
    assert a.loss_curve == b.loss_curve and a.top1 == b.top1
    assert a.loss_curve != c.loss_curve


@pytest.mark.parametrize("how", ["return", "raise"])
def test_callback_can_stop_the_trial(data, how):
    def cb(m):
        if m.epoch == 2:
            if how == "raise":
                raise StopTrial
            return True
        return None

    r = train_proxy(TinyNet(), data, RECIPE, callback=cb, threads=1)
    assert r.stopped_early and r.epochs_completed == 2 and len(r.loss_curve) == 12


def test_other_callback_exceptions_propagate(data):
    class Pruned(Exception):
        pass

    def cb(m):
        raise Pruned

    with pytest.raises(Pruned):
        train_proxy(TinyNet(), data, RECIPE, callback=cb, threads=1)


class NaNAfter(TinyNet):
    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def forward(self, x):
        out = super().forward(x)
        return out * float("nan") if self.training and self.calls == self.at else out


def test_nan_loss_raises_trial_diverged_naming_the_step(data):
    with pytest.raises(TrialDiverged, match=r"epoch 2, step 1 \(global step 7\)") as info:
        train_proxy(NaNAfter(8), data, RECIPE, threads=1)
    assert info.value.epoch == 2 and info.value.step == 1 and math.isnan(info.value.loss)


def test_wrong_head_size_fails_before_training(data):
    model = TinyNet(num_classes=10)
    with pytest.raises(ValueError, match="num_classes=4"):
        train_proxy(model, data, RECIPE, threads=1)
    assert model.calls == 0  # no training step ran


def test_bad_arguments():
    with pytest.raises(TypeError, match="ProxyData"):
        train_proxy(TinyNet(), object(), RECIPE)
    with pytest.raises(ValueError, match="threads"):
        train_proxy(TinyNet(), colour_data(n_train=16, n_val=4), RECIPE, threads=0)


def test_kill_mid_epoch_then_rerun_resumes_and_matches_uninterrupted(data, tmp_path):
    ckpt = tmp_path / "trial"
    helper = Path(__file__).parent / "train_helpers.py"
    proc = subprocess.run([sys.executable, str(helper), str(ckpt), "9"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr  # SIGKILLed in epoch 2 (6 steps per epoch)
    saved = torch.load(ckpt / "last.pt", weights_only=False)
    assert len(saved["state"]["history"]) == 1

    resumed = train_proxy(TinyNet(), data, RECIPE, checkpoint_dir=ckpt, threads=1)
    fresh = train_proxy(TinyNet(), data, RECIPE, threads=1)
    assert resumed.resumed_from_epoch == 1 and resumed.epochs_completed == 3
    assert resumed.loss_curve == fresh.loss_curve
    assert [m.top1 for m in resumed.epochs] == [m.top1 for m in fresh.epochs]

    again = train_proxy(TinyNet(), data, RECIPE, checkpoint_dir=ckpt, threads=1)  # finished: stored result
    assert again.resumed_from_epoch == 3 and again.top1 == resumed.top1 and again.loss_curve == resumed.loss_curve


def test_checkpoint_of_another_trial_is_refused(data, tmp_path):
    train_proxy(TinyNet(), data, dataclasses.replace(RECIPE, epochs=1, warmup_epochs=0), checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointMismatch, match="recipe"):
        train_proxy(TinyNet(), data, RECIPE, checkpoint_dir=tmp_path)


@pytest.mark.parametrize(
    "changes",
    [
        dict(mixup=0.8, cutmix=1.0),
        dict(ema_decay=0.9),
        dict(channels_last=True, grad_clip=1.0),
        dict(label_smoothing=0.0, hflip=False, rrc_scale=(0.8, 1.0)),
    ],
    ids=["mixup-cutmix", "ema", "channels_last-clip", "plain"],
)
def test_recipe_options_train(data, changes):
    r = train_proxy(TinyNet(), data, dataclasses.replace(RECIPE, epochs=2, **changes), threads=1)
    assert r.epochs_completed == 2 and all(math.isfinite(v) for v in r.loss_curve)
    assert r.top1 > 25.0  # above chance after two epochs even with heavy regularisation


def test_distillation_pulls_the_student_towards_the_teacher(data):
    class ConstantTeacher(nn.Module):
        """Always very sure of class 2: a student distilled with kd_alpha=1 must learn to say 2."""

        def forward(self, x):
            out = torch.full((x.shape[0], 4), -10.0)
            out[:, 2] = 10.0
            return out

    recipe = dataclasses.replace(RECIPE, kd_alpha=1.0, kd_temperature=2.0, label_smoothing=0.0)
    student = TinyNet()
    train_proxy(student, data, recipe, threads=1, teacher_model=ConstantTeacher())
    x, _ = next(data.val_batches(32))
    with torch.no_grad():
        assert (student(x).argmax(1) == 2).float().mean() > 0.9


def test_teacher_with_wrong_head_fails_before_training(data):
    with pytest.raises(RecipeError, match="heads must match"):
        train_proxy(TinyNet(), data, RECIPE, threads=1, teacher_model=TinyNet(num_classes=7))


def test_recipe_is_hashable_serialisable_and_validated():
    r = ProxyRecipe(epochs=5, rrc_scale=(0.5, 1.0))
    d = json.loads(json.dumps(r.to_dict()))
    assert ProxyRecipe.from_dict(d) == r and hash(ProxyRecipe.from_dict(d)) == hash(r)
    assert ProxyRecipe.from_dict(d).recipe_id() == r.recipe_id() != ProxyRecipe(epochs=6).recipe_id()
    with pytest.raises(RecipeError, match="warmup_epochs"):
        ProxyRecipe(epochs=1, warmup_epochs=2)
    with pytest.raises(RecipeError, match="even batch size"):
        ProxyRecipe(batch_size=15, mixup=0.2)
    with pytest.raises(RecipeError, match="unknown ProxyRecipe field"):
        ProxyRecipe.from_dict({"epochz": 3})
    with pytest.raises(TypeError):
        ProxyRecipe(3)  # keyword-only


def test_lr_schedule_warmup_then_cosine():
    kw = dict(total_steps=100, warmup_steps=10, lr=1.0, min_lr=0.0)
    assert lr_at(0, **kw) == pytest.approx(0.1) and lr_at(9, **kw) == pytest.approx(1.0)
    assert lr_at(10, **kw) == pytest.approx(1.0) and lr_at(55, **kw) == pytest.approx(0.5)
    assert lr_at(100, **kw) == pytest.approx(0.0)
    values = [lr_at(s, **kw) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_weight_decay_skips_norms_and_biases():
    groups = param_groups(TinyNet(), 0.05)
    assert all(p.ndim >= 2 for p in groups[0]["params"]) and groups[0]["weight_decay"] == 0.05
    assert all(p.ndim == 1 for p in groups[1]["params"]) and groups[1]["weight_decay"] == 0.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_amp_channels_last_trains(data):
    r = train_proxy(
        TinyNet(), data, dataclasses.replace(RECIPE, amp=True, channels_last=True, ema_decay=0.9), device="cuda"
    )
    assert r.amp_used and r.device.startswith("cuda") and r.epochs_completed == 3
    assert all(math.isfinite(v) for v in r.loss_curve) and r.top1 > 40.0
