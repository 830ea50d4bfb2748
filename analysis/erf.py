"""Effective receptive field (ERF) by the RepLKNet protocol (Ding et al., CVPR 2022).

For each input image: take the feature map of a chosen stage (``forward_intermediates``), the
ReLU of its central location summed over channels, back-propagate to the input, ReLU the input
gradient and sum it over channels. The map is averaged over ``N`` images, normalised with
``log10(x + 1)`` (or VMamba's ``x ** 0.2``) and rescaled to [0, 1]. The *high-contribution area
ratio* at threshold ``t`` is the area of the smallest centred square whose normalised mass
exceeds ``t`` of the total, divided by the image area; a larger ratio means a larger ERF.

Works with any model that has timm's ``forward_intermediates(x, indices=..., intermediates_only=True)``
(the lab's MobileMamba and timm models) and, with ``stage=None``, with any model whose
``forward`` returns an NCHW map. The result records what went in (image source, weights) so a
report can say whether it is an ERF at initialisation or after training.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

THRESHOLDS = (0.2, 0.3, 0.5, 0.99)
NORMALIZATIONS = {"log": "log10(x+1)", "power": "x^0.2"}


@dataclass(frozen=True)
class ErfResult:
    """One averaged ERF map and its area ratios.

    ``raw`` is the mean over images of ``relu(d center / d input)`` summed over channels (H x W);
    ``normalized`` is ``raw`` after ``normalization`` and rescaling to [0, 1]; ``area_ratios`` maps
    each threshold to its high-contribution area ratio (NaN when the map is all zero).
    """

    raw: np.ndarray
    normalized: np.ndarray
    area_ratios: dict[float, float]
    side_lengths: dict[float, int]
    stage: int | None
    n_images: int
    source: str
    weights: str
    normalization: str
    label: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def input_size(self) -> tuple[int, int]:
        return (int(self.raw.shape[0]), int(self.raw.shape[1]))

    def describe(self) -> str:
        """One line saying what this map is (stage, weights, images, normalisation)."""
        where = "model output" if self.stage is None else f"stage {self.stage}"
        h, w = self.input_size
        return (f"{where}, {self.weights}, {self.n_images} {self.source} images at {h}x{w}, "
                f"{NORMALIZATIONS.get(self.normalization, self.normalization)} normalisation")


def normalize_map(raw: np.ndarray, *, normalization: str = "log") -> np.ndarray:
    """``log10(x+1)`` (``"log"``, RepLKNet) or ``x**0.2`` (``"power"``, VMamba), then divided by the max."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {sorted(NORMALIZATIONS)}, got {normalization!r}")
    x = np.clip(np.asarray(raw, dtype=np.float64), 0.0, None)
    x = np.log10(x + 1.0) if normalization == "log" else x**0.2
    peak = x.max() if x.size else 0.0
    return x / peak if peak > 0 else x


def area_ratio(normalized: np.ndarray, threshold: float) -> tuple[float, int]:
    """Smallest centred square (side ``2i+1``, clipped at the borders) holding more than ``threshold``
    of the map's mass: returns (its area / the map's area, its side). ``(nan, 0)`` for an all-zero map."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    data = np.asarray(normalized, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"ERF map must be 2-D (H, W), got shape {data.shape}")
    h, w = data.shape
    total = data.sum()
    if total <= 0:
        return float("nan"), 0
    ch, cw = h // 2, w // 2
    for i in range(max(h, w)):
        sq = data[max(ch - i, 0) : ch + i + 1, max(cw - i, 0) : cw + i + 1]
        if sq.sum() / total > threshold:
            return sq.size / (h * w), 2 * i + 1
    return 1.0, 2 * max(h, w) - 1  # unreachable for threshold < 1; keeps the type checker honest


def noise_images(n: int, size: int | tuple[int, int], *, in_chans: int = 3, seed: int = 0) -> torch.Tensor:
    """``n`` standard-normal images (the usual stand-in for normalised natural images)."""
    if n < 1:
        raise ValueError(f"need at least one image, got n={n}")
    hw = (size, size) if isinstance(size, int) else tuple(size)
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, in_chans, *hw), generator=g)


def _features(model: nn.Module, x: torch.Tensor, stage: int | None) -> torch.Tensor:
    if stage is None:
        out = model(x)
    else:
        fi = getattr(model, "forward_intermediates", None)
        if fi is None:
            raise TypeError(f"{type(model).__name__} has no forward_intermediates; pass stage=None to use its "
                            "output, or use a timm / lab model")
        kwargs: dict = {"indices": [stage], "intermediates_only": True}
        if "output_fmt" in inspect.signature(fi).parameters:
            kwargs["output_fmt"] = "NCHW"
        out = fi(x, **kwargs)
        if isinstance(out, (list, tuple)):
            if not out:
                raise ValueError(f"{type(model).__name__}.forward_intermediates returned no feature map for stage "
                                 f"{stage}; use a stage index the model has")
            out = out[-1]
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"ERF needs an NCHW feature map, got {shape}; choose a convolutional stage")
    return out


def _batches(images: torch.Tensor | Iterable[torch.Tensor], batch_size: int) -> Iterable[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
        yield from images.split(batch_size)
    else:
        for b in images:
            b = b[0] if isinstance(b, (list, tuple)) else b  # (images, labels) batches from a DataLoader
            if b.ndim != 4:
                raise ValueError(f"image batches must be (N, C, H, W), got shape {tuple(b.shape)}")
            yield b


def erf_map(
    model: nn.Module,
    images: torch.Tensor | Iterable[torch.Tensor],
    *,
    stage: int | None = -1,
    normalization: str = "log",
    thresholds: Sequence[float] = THRESHOLDS,
    source: str = "noise",
    weights: str = "initialisation",
    label: str = "",
    batch_size: int = 8,
    max_images: int | None = None,
) -> ErfResult:
    """ERF of ``model`` at ``stage`` (timm ``forward_intermediates`` index; ``None`` = ``model(x)``).

    ``images``: an ``(N, C, H, W)`` tensor or an iterable of batches (a DataLoader), already
    normalised as the model expects; ``source`` and ``weights`` are recorded verbatim (say
    ``"noise"`` / ``"imagenet val"`` and ``"initialisation"`` / ``"trained (epoch 300)"``).
    The model is put in eval mode and its parameters are not changed; gradients are taken per
    image (eval-mode models have no cross-sample coupling, so one batched backward is exact).
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {sorted(NORMALIZATIONS)}, got {normalization!r}")
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    total: torch.Tensor | None = None
    n = 0
    try:
        for batch in _batches(images, batch_size):
            if max_images is not None:
                batch = batch[: max_images - n]
            if len(batch) == 0:
                break
            x = batch.to(device=device, dtype=dtype).detach().requires_grad_(True)
            feat = _features(model, x, stage)
            h, w = feat.shape[-2:]
            center = torch.relu(feat[:, :, h // 2, w // 2]).sum()
            (grad,) = torch.autograd.grad(center, x)
            contrib = torch.relu(grad).sum(dim=(0, 1)).double().cpu()
            total = contrib if total is None else total + contrib
            n += len(batch)
            if max_images is not None and n >= max_images:
                break
    finally:
        model.train(was_training)
    if total is None:
        raise ValueError("no images given; pass an (N, C, H, W) tensor or a non-empty iterable of batches")
    raw = (total / n).numpy()
    if not np.isfinite(raw).all():
        raise ValueError(f"the input gradient of {type(model).__name__} has NaN/inf values (overflow in the forward "
                         "or backward pass); check the weights, or use float64 / smaller inputs")
    norm = normalize_map(raw, normalization=normalization)
    ratios, sides = {}, {}
    for t in thresholds:
        ratios[float(t)], sides[float(t)] = area_ratio(norm, float(t))
    return ErfResult(raw=raw, normalized=norm, area_ratios=ratios, side_lengths=sides, stage=stage, n_images=n,
                     source=source, weights=weights, normalization=normalization, label=label)


def erf_table(results: Mapping[str, ErfResult] | Sequence[ErfResult]) -> list[dict[str, object]]:
    """Rows (one per map) with the area ratio at each threshold; e.g. before vs after training."""
    items = results.items() if isinstance(results, Mapping) else [(r.label, r) for r in results]
    rows = []
    for name, r in items:
        row: dict[str, object] = {"map": name or r.label, "weights": r.weights, "stage": r.stage,
                                  "images": f"{r.n_images} {r.source}"}
        row.update({f"t={t:g}": r.area_ratios[t] for t in sorted(r.area_ratios)})
        rows.append(row)
    return rows
