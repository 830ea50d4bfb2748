"""Knowledge distillation for proxies (the paper's dagger recipe, soft-label form).

``load_teacher`` builds the teacher a recipe names; ``kd_loss`` is Hinton's soft-target loss,
``T^2 * KL(softmax(t / T) || softmax(s / T))`` averaged over the batch.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from lab.train.recipe import ProxyRecipe, RecipeError


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Soft-target distillation loss (scaled by T^2 so its gradient size does not depend on T)."""
    t = temperature
    log_p_s = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.float() / t, dim=-1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)


def load_teacher(recipe: ProxyRecipe, *, num_classes: int, device: torch.device | str) -> nn.Module:
    """The recipe's teacher, in eval mode with frozen weights.

    ``teacher`` is either a path to a file holding a whole pickled ``nn.Module`` (``torch.save(model)``)
    or a timm model name; with a name, ``teacher_checkpoint`` is a state-dict file for a head of
    ``num_classes`` outputs (a name alone asks timm for pretrained weights, which needs them cached).
    """
    if recipe.teacher is None:
        raise RecipeError("load_teacher: the recipe names no teacher")
    path = Path(recipe.teacher).expanduser()
    if path.is_file():
        teacher = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(teacher, nn.Module):
            raise RecipeError(f"teacher file {path} holds a {type(teacher).__name__}, not a whole nn.Module")
    else:
        import timm

        if not timm.is_model(recipe.teacher):
            raise RecipeError(
                f"teacher={recipe.teacher!r} is neither an existing file nor a timm model name (see timm.list_models())"
            )
        try:
            if recipe.teacher_checkpoint is not None:
                teacher = timm.create_model(
                    recipe.teacher, num_classes=num_classes, checkpoint_path=recipe.teacher_checkpoint
                )
            else:
                teacher = timm.create_model(recipe.teacher, pretrained=True, num_classes=num_classes)
        except (RuntimeError, OSError) as exc:
            raise RecipeError(
                f"could not load teacher {recipe.teacher!r}: {exc}; give teacher_checkpoint (a state dict with a "
                f"{num_classes}-class head) or a file with a whole module"
            ) from exc
    teacher.eval().requires_grad_(False)
    return teacher.to(device)
