"""Shared fixtures for trainer tests: a tiny learnable dataset and a tiny CNN (also run as a script).

As a script (``python train_helpers.py CKPT_DIR KILL_AT``) it trains with a model that SIGKILLs
its own process at the KILL_AT-th training forward pass: a real mid-epoch kill for the resume test.
"""

from __future__ import annotations

import os
import signal
import sys

import torch
import torch.nn as nn

from lab.data import ProxyData
from lab.train import ProxyRecipe, train_proxy

RECIPE = ProxyRecipe(epochs=3, batch_size=16, lr=5e-3, warmup_epochs=0.5, amp=False)


def colour_data(n_train: int = 96, n_val: int = 32, size: int = 20, res: int = 16, classes: int = 4) -> ProxyData:
    """Class k = a noisy image whose mean colour is colour k: learnable in a few epochs."""
    g = torch.Generator().manual_seed(0)
    palette = torch.tensor([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]], dtype=torch.float32)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(n) % classes
        noise = torch.randn(n, size, size, 3, generator=g) * 60
        imgs = (palette[labels][:, None, None, :] + noise).clamp(0, 255).to(torch.uint8)
        return imgs, labels

    tr, va = make(n_train), make(n_val)
    return ProxyData.from_arrays(tr[0], tr[1], va[0], va[1], resolution=res)


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 4, kill_at: int = 0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, 2, 1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(16, num_classes)
        self.kill_at, self.calls = kill_at, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if self.kill_at and self.calls == self.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return self.head(self.body(x))


if __name__ == "__main__":
    ckpt_dir, kill_at = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)
    train_proxy(TinyNet(kill_at=kill_at), colour_data(), RECIPE, checkpoint_dir=ckpt_dir, threads=1)
