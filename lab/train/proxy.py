"""The proxy trainer: one short, seeded, resumable training run of any ``nn.Module`` classifier.

``train_proxy(model, data, recipe, *, callback=None, checkpoint_dir=None, threads=None, device="cpu")``

* Per-epoch callback: ``callback(metrics: EpochMetrics) -> bool | None``. Return ``True`` (or
  raise ``StopTrial``) to stop after this epoch: the result then has ``stopped_early=True``. Any
  other exception (e.g. ``optuna.TrialPruned``) propagates unchanged, after the epoch's
  checkpoint is written. This is where Optuna pruning and Ray Tune reporting plug in.
* Checkpoints: with ``checkpoint_dir``, ``last.pt`` is written atomically after every epoch.
  Rerunning the same call (same recipe, data and model shapes) resumes after the last finished
  epoch and, on the same device and thread count, ends with the same numbers as an uninterrupted
  run: every epoch's randomness is seeded from (recipe.seed, epoch). A finished trial returns
  its stored result. A checkpoint from a different recipe/data/model is an error, never reused.
* A NaN/inf training loss raises ``TrialDiverged`` naming the epoch and step.
* Bad input (wrong number of outputs, mismatched teacher) fails on a two-image dry run before training.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lab.data.proxy_data import ProxyData
from lab.train.distill import kd_loss, load_teacher
from lab.train.recipe import EpochMetrics, ProxyRecipe, ProxyResult, RecipeError

log = logging.getLogger("lab.train")

CHECKPOINT_VERSION = 1
Callback = Callable[[EpochMetrics], "bool | None"]


class TrialDiverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, *, epoch: int, step: int, global_step: int, loss: float) -> None:
        super().__init__(
            f"training diverged: loss={loss} at epoch {epoch}, step {step} (global step {global_step}); "
            "lower lr, raise warmup_epochs or set grad_clip"
        )
        self.epoch, self.step, self.global_step, self.loss = epoch, step, global_step, loss


class StopTrial(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raise from a callback to end the trial after the current epoch (same as returning True)."""


class CheckpointMismatch(ValueError):
    """``checkpoint_dir`` holds a checkpoint of a different trial."""


def lr_at(step: int, *, total_steps: int, warmup_steps: int, lr: float, min_lr: float) -> float:
    """Linear warm-up over ``warmup_steps`` then cosine from ``lr`` to ``min_lr`` at ``total_steps``."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on >= 2-D weights, none on norms/biases/1-D parameters."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def model_signature(model: nn.Module) -> str:
    """Hash of parameter/buffer names and shapes: detects resuming into a different architecture."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(f"{name}:{tuple(t.shape)};".encode())
    return h.hexdigest()[:16]


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % 2**62


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: ProxyData,
    *,
    batch_size: int,
    device: torch.device,
    memory_format: torch.memory_format,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> tuple[float, float, float]:
    """(mean CE loss, top-1 %, top-5 %) on the val split; top-5 becomes top-min(5, classes)."""
    was_training = model.training
    model.eval()
    k = min(5, data.num_classes)
    n = loss_sum = c1 = c5 = 0.0
    for x, y in data.val_batches(batch_size, device=device):
        with autocast():
            logits = model(x.contiguous(memory_format=memory_format)).float()
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        topk = logits.topk(k, dim=1).indices
        c1 += float((topk[:, 0] == y).sum())
        c5 += float((topk == y[:, None]).any(dim=1).sum())
        n += y.numel()
    model.train(was_training)
    return loss_sum / n, 100.0 * c1 / n, 100.0 * c5 / n


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _result_from_state(
    state: dict, *, resumed_from: int, amp_used: bool, device: str, recipe_id: str, notes
) -> ProxyResult:
    history = [EpochMetrics(**m) for m in state["history"]]
    last = history[-1]
    return ProxyResult(
        top1=last.top1,
        top5=last.top5,
        epochs_completed=len(history),
        stopped_early=bool(state["stopped"]),
        epochs=tuple(history),
        loss_curve=tuple(state["loss_curve"]),
        wall_time_s=float(state["wall_time_s"]),
        images_per_s=float(state["images_seen"]) / max(1e-9, float(state["train_time_s"])),
        resumed_from_epoch=resumed_from,
        amp_used=amp_used,
        device=device,
        recipe_id=recipe_id,
        notes=tuple(notes),
    )


def train_proxy(
    model: nn.Module,
    data: ProxyData,
    recipe: ProxyRecipe,
    *,
    callback: Callback | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    device: str | torch.device = "cpu",
    teacher_model: nn.Module | None = None,
) -> ProxyResult:
    """Train ``model`` on ``data`` following ``recipe``; see the module docstring for the contract.

    ``teacher_model`` overrides ``recipe.teacher`` with an in-memory module (tests, custom teachers).
    The model is trained in place and left on ``device`` in eval mode (the EMA weights are *not*
    copied into it; the reported accuracy is the EMA's when ``ema_decay > 0``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(data, ProxyData):
        raise TypeError(f"data must be a ProxyData (see lab.data.load_proxy_data), got {type(data).__name__}")
    if not isinstance(recipe, ProxyRecipe):
        raise TypeError(f"recipe must be a ProxyRecipe, got {type(recipe).__name__}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads={threads}: must be >= 1 or None (leave torch's setting)")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but CUDA is not available; use device='cpu'")
    prev_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _train(model, data, recipe, callback, checkpoint_dir, device, teacher_model)
    finally:
        torch.set_num_threads(prev_threads)


def _train(model, data, recipe, callback, checkpoint_dir, device, teacher_model) -> ProxyResult:
    wall_start = time.perf_counter()
    notes: list[str] = []
    rid = recipe.recipe_id()
    amp_used = recipe.amp and device.type == "cuda"
    if recipe.amp and not amp_used:
        notes.append("amp requested but ignored on CPU")
    autocast = (
        (lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)) if amp_used else contextlib.nullcontext
    )
    memory_format = torch.channels_last if recipe.channels_last else torch.contiguous_format
    _seed_everything(recipe.seed)
    model.to(device=device, memory_format=memory_format)

    teacher = teacher_model
    if teacher is None and recipe.teacher is not None:
        teacher = load_teacher(recipe, num_classes=data.num_classes, device=device)
    if teacher is not None:
        teacher.eval().requires_grad_(False).to(device)

    # dry run on two val images: wrong head size or a broken teacher fails here, before training
    model.eval()
    with torch.no_grad(), autocast():
        x0, _ = next(data.val_batches(2, device=device))
        out = model(x0.contiguous(memory_format=memory_format))
        if not isinstance(out, torch.Tensor) or out.shape != (x0.shape[0], data.num_classes):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"model output is {shape} for a batch of {x0.shape[0]}; expected ({x0.shape[0]}, {data.num_classes}) "
                f"logits: build the model with num_classes={data.num_classes}"
            )
        if teacher is not None:
            t_out = teacher(x0)
            if t_out.shape != out.shape:
                raise RecipeError(
                    f"teacher outputs {tuple(t_out.shape)}, student {tuple(out.shape)}: the heads must match"
                )
    model.train()

    n_train = data.train_images.shape[0]
    steps_per_epoch = max(1, n_train // recipe.batch_size)
    total_steps = steps_per_epoch * recipe.epochs
    warmup_steps = round(recipe.warmup_epochs * steps_per_epoch)
    fused_ok = device.type == "cuda"
    optimizer = torch.optim.AdamW(
        param_groups(model, recipe.weight_decay), lr=recipe.lr, betas=(0.9, 0.999), fused=fused_ok or None
    )
    mixup_fn = None
    if recipe.mixup > 0 or recipe.cutmix > 0:
        from timm.data import Mixup

        mixup_fn = Mixup(
            mixup_alpha=recipe.mixup,
            cutmix_alpha=recipe.cutmix,
            label_smoothing=recipe.label_smoothing,
            num_classes=data.num_classes,
        )
    ema = None
    if recipe.ema_decay > 0:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=recipe.ema_decay, device=device)

    # ---- resume -------------------------------------------------------------------------------
    ckpt_path = Path(checkpoint_dir) / "last.pt" if checkpoint_dir is not None else None
    sig = model_signature(model)
    state = {
        "history": [],
        "loss_curve": [],
        "wall_time_s": 0.0,
        "train_time_s": 0.0,
        "images_seen": 0,
        "stopped": False,
    }
    start_epoch = 0
    if ckpt_path is not None:
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        if ckpt_path.is_file():
            saved = torch.load(ckpt_path, map_location=device, weights_only=False)
            mismatch = [
                what
                for what, mine in (("recipe", rid), ("data", data.fingerprint), ("model", sig))
                if saved.get(what) != mine
            ]
            if saved.get("version") != CHECKPOINT_VERSION or mismatch:
                raise CheckpointMismatch(
                    f"{ckpt_path} belongs to another trial (differs in: {', '.join(mismatch) or 'format version'}); "
                    "use a fresh checkpoint_dir or delete the file"
                )
            model.load_state_dict(saved["model_state"])
            optimizer.load_state_dict(saved["optimizer"])
            if ema is not None:
                ema.load_state_dict(saved["ema"])
            state = saved["state"]
            start_epoch = len(state["history"])
            if start_epoch >= recipe.epochs or state["stopped"]:
                model.eval()
                return _result_from_state(
                    state, resumed_from=start_epoch, amp_used=amp_used, device=str(device), recipe_id=rid, notes=notes
                )
            log.info("resuming %s from epoch %d", ckpt_path, start_epoch)
    resumed_from = start_epoch
    wall_before = state["wall_time_s"]

    if mixup_fn is not None:
        from timm.loss import SoftTargetCrossEntropy

        criterion: nn.Module = SoftTargetCrossEntropy()
    else:
        criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)

    # ---- epochs -------------------------------------------------------------------------------
    for epoch in range(start_epoch, recipe.epochs):
        eseed = _epoch_seed(recipe.seed, epoch)
        _seed_everything(eseed)
        model.train()
        t0 = time.perf_counter()
        loss_sum, n_seen = 0.0, 0
        batches = data.train_batches(
            recipe.batch_size, seed=eseed, scale=recipe.rrc_scale, hflip=recipe.hflip, device=device
        )
        lr = recipe.lr
        for step, (x, y) in enumerate(batches):
            gstep = epoch * steps_per_epoch + step
            lr = lr_at(gstep, total_steps=total_steps, warmup_steps=warmup_steps, lr=recipe.lr, min_lr=recipe.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = x.contiguous(memory_format=memory_format)
            target = y
            if mixup_fn is not None:
                x, target = mixup_fn(x, y)
            with autocast():
                logits = model(x)
                loss = criterion(logits.float(), target)
                if teacher is not None:
                    with torch.no_grad():
                        t_logits = teacher(x)
                    loss = (1 - recipe.kd_alpha) * loss + recipe.kd_alpha * kd_loss(
                        logits, t_logits, recipe.kd_temperature
                    )
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise TrialDiverged(epoch=epoch + 1, step=step, global_step=gstep, loss=loss_value)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update(model, step=gstep)
            state["loss_curve"].append(loss_value)
            loss_sum += loss_value * y.shape[0]
            n_seen += y.shape[0]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_time = time.perf_counter() - t0
        eval_model = ema.module if ema is not None else model
        val_loss, top1, top5 = evaluate(
            eval_model,
            data,
            batch_size=recipe.eval_batch_size,
            device=device,
            memory_format=memory_format,
            autocast=autocast,
        )
        epoch_time = time.perf_counter() - t0
        state["train_time_s"] += train_time
        state["images_seen"] += n_seen
        state["wall_time_s"] = wall_before + (time.perf_counter() - wall_start)
        metrics = EpochMetrics(
            epoch=epoch + 1,
            train_loss=loss_sum / max(1, n_seen),
            val_loss=val_loss,
            top1=top1,
            top5=top5,
            lr=lr,
            epoch_time_s=epoch_time,
            train_images_per_s=n_seen / max(1e-9, train_time),
            elapsed_s=state["wall_time_s"],
        )
        state["history"].append(metrics.to_dict())
        log.info(
            "epoch %d/%d loss %.4f val %.4f top1 %.2f top5 %.2f (%.1fs, %.0f img/s)",
            epoch + 1,
            recipe.epochs,
            metrics.train_loss,
            val_loss,
            top1,
            top5,
            epoch_time,
            metrics.train_images_per_s,
        )
        if ckpt_path is not None:
            _atomic_save(_checkpoint(model, optimizer, ema, rid, data.fingerprint, sig, state), ckpt_path)
        stop = False
        if callback is not None:
            try:
                stop = bool(callback(metrics))
            except StopTrial:
                stop = True
        if stop:
            state["stopped"] = True
            if ckpt_path is not None:
                _atomic_save(_checkpoint(model, optimizer, ema, rid, data.fingerprint, sig, state), ckpt_path)
            break
    model.eval()
    state["wall_time_s"] = wall_before + (time.perf_counter() - wall_start)
    return _result_from_state(
        state, resumed_from=resumed_from, amp_used=amp_used, device=str(device), recipe_id=rid, notes=notes
    )


def _checkpoint(model, optimizer, ema, rid: str, fingerprint: str, sig: str, state: dict) -> dict:
    return {
        "version": CHECKPOINT_VERSION,
        "recipe": rid,
        "data": fingerprint,
        "model": sig,
        "model_state": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "state": state,
    }
