"""Proxy training and zero-cost proxies for ranking architectures cheaply.

``train_proxy(model, data, recipe, *, callback=None, checkpoint_dir=None, threads=None, device="cpu")``
trains any ``nn.Module`` classifier on ``lab.data.ProxyData``; ``lab.train.zero_cost`` scores an
untrained network from one minibatch.
"""

from lab.train.proxy import CheckpointMismatch, StopTrial, TrialDiverged, train_proxy
from lab.train.recipe import EpochMetrics, ProxyRecipe, ProxyResult, RecipeError

__all__ = [
    "CheckpointMismatch",
    "EpochMetrics",
    "ProxyRecipe",
    "ProxyResult",
    "RecipeError",
    "StopTrial",
    "TrialDiverged",
    "train_proxy",
]
