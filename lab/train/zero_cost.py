"""Zero-cost proxies: score an (untrained) classifier from one minibatch, no training.

Each proxy takes ``(model, inputs, targets)`` and returns a float; higher is meant to predict
higher trained accuracy. All run on a deep copy, so the caller's model (weights, grads, BN
statistics, train/eval mode) is untouched, and work on any ``nn.Module`` classifier.

* ``synflow`` (Tanaka et al. 2020, as scored by Abdelfattah et al. 2021): take |theta| for every
  state entry, feed an all-ones input (one image, float64, eval mode), R = sum of the logits;
  score = sum over Conv/Linear weights of |theta * dR/dtheta|.
* ``naswot`` (Mellor et al. 2021): binary activation codes c (sign of every activation-module
  output, ReLU/GELU/SiLU/...) for the N inputs; K = c c^T + (1-c)(1-c)^T (codes matching);
  score = log|det K| (``-inf`` when two inputs share one code, i.e. K is singular).
* ``grad_norm``: sum over Conv/Linear weights of ||dL/dW||_2, L = cross-entropy of the batch.
* ``snip`` (Lee et al. 2019): sum over Conv/Linear weights of |W * dL/dW|.
* ``jacob_cov`` (Mellor et al. 2020, v1): J = d(sum logits)/d(input) per image, C = corrcoef(J),
  score = -sum_i (log(v_i + k) + 1 / (v_i + k)) over eigenvalues v of C, k = 1e-5.
* baselines: ``params`` (trainable parameter count) and ``flops`` (multiply-accumulates of one
  image, the paper convention of ``lab.measure.count_flops``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.Mish,
)
"""Modules whose output sign is the sign of their input: their outputs give NASWOT's binary codes."""


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    layers = [m for m in model.modules() if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear)]
    if not layers:
        raise ValueError("model has no Conv/Linear layers; synflow/grad_norm/snip score those layers' weights")
    return layers


def _check_inputs(inputs: torch.Tensor, targets: torch.Tensor | None = None) -> None:
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2 or inputs.shape[0] < 1:
        raise ValueError("inputs must be a (N, C, H, W) tensor batch with N >= 1")
    if targets is not None and targets.shape != (inputs.shape[0],):
        raise ValueError(f"targets must have shape ({inputs.shape[0]},), got {tuple(targets.shape)}")


def synflow(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None) -> float:
    """SynFlow saliency of the whole network (see module docstring)."""
    _check_inputs(inputs)
    m = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for t in m.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    m.zero_grad(set_to_none=True)
    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64, device=inputs.device)
    m(ones).sum().backward()
    with torch.no_grad():
        return float(
            sum(float((l.weight * l.weight.grad).abs().sum()) for l in _weighted_layers(m) if l.weight.grad is not None)
        )


def naswot(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    activation_types: tuple[type[nn.Module], ...] = ACTIVATIONS,
) -> float:
    """NASWOT log-determinant of the activation-code kernel (see module docstring)."""
    _check_inputs(inputs)
    if inputs.shape[0] < 2:
        raise ValueError("naswot needs a batch of at least 2 inputs")
    m = copy.deepcopy(model).train()
    codes: list[torch.Tensor] = []
    hooks = [
        mod.register_forward_hook(lambda _m, _i, out: codes.append((out.detach() > 0).flatten(1).double()))
        for mod in m.modules()
        if isinstance(mod, activation_types)
    ]
    if not hooks:
        raise ValueError(
            f"naswot: the model has no activation modules of types {[t.__name__ for t in activation_types]}; "
            "pass activation_types= with the module types it uses"
        )
    try:
        with torch.no_grad():
            m(inputs)
    finally:
        for h in hooks:
            h.remove()
    c = torch.cat(codes, dim=1)
    k = c @ c.T + (1 - c) @ (1 - c).T
    _, logdet = torch.linalg.slogdet(k.cpu())
    return float(logdet)


def _loss_grads(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> nn.Module:
    if targets is None:
        raise ValueError("this proxy needs targets (class indices) for its cross-entropy loss")
    _check_inputs(inputs, targets)
    m = copy.deepcopy(model).train()
    m.zero_grad(set_to_none=True)
    F.cross_entropy(m(inputs), targets).backward()
    return m


def grad_norm(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Sum of per-layer gradient L2 norms of the Conv/Linear weights."""
    m = _loss_grads(model, inputs, targets)
    return float(sum(float(l.weight.grad.norm()) for l in _weighted_layers(m) if l.weight.grad is not None))


def snip(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """SNIP connection sensitivity summed over the Conv/Linear weights."""
    m = _loss_grads(model, inputs, targets)
    with torch.no_grad():
        return float(
            sum(float((l.weight * l.weight.grad).abs().sum()) for l in _weighted_layers(m) if l.weight.grad is not None)
        )


def jacob_cov(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None, *, k: float = 1e-5) -> float:
    """Jacobian-covariance score (see module docstring); NaN if some image's Jacobian is constant."""
    _check_inputs(inputs)
    if inputs.shape[0] < 2:
        raise ValueError("jacob_cov needs a batch of at least 2 inputs")
    m = copy.deepcopy(model).train()
    x = inputs.detach().clone().requires_grad_(True)
    m(x).sum().backward()
    jac = x.grad.flatten(1).double().cpu().numpy()
    corr = np.corrcoef(jac)
    if not np.all(np.isfinite(corr)):
        return math.nan
    v = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


def params(model: nn.Module, inputs: torch.Tensor | None = None, targets: torch.Tensor | None = None) -> float:
    """Trainable parameter count (baseline)."""
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))


def flops(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None) -> float:
    """Multiply-accumulates of one image at the batch's resolution (paper convention; baseline)."""
    from lab.measure import count_flops

    _check_inputs(inputs)
    c, h, w = inputs.shape[1:]
    return float(count_flops(model, res=(int(h), int(w)), in_chans=int(c), device=inputs.device, warn=False).paper)


PROXIES: dict[str, Callable[..., float]] = {
    "synflow": synflow,
    "naswot": naswot,
    "grad_norm": grad_norm,
    "snip": snip,
    "jacob_cov": jacob_cov,
    "params": params,
    "flops": flops,
}


def zero_cost_scores(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    proxies: Iterable[str] = tuple(PROXIES),
) -> dict[str, float]:
    """Run the named proxies on one minibatch and return ``{name: score}``."""
    names = list(proxies)
    unknown = [n for n in names if n not in PROXIES]
    if unknown:
        raise ValueError(f"unknown zero-cost proxies {unknown}; choose from {list(PROXIES)}")
    return {n: PROXIES[n](model, inputs, targets) for n in names}
