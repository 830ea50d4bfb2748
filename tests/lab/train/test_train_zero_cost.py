"""Zero-cost proxies against answers worked out by hand from their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from lab.train.zero_cost import PROXIES, grad_norm, jacob_cov, naswot, params, snip, synflow, zero_cost_scores


def _chain(seed: int, dims=(5, 4, 3, 2)) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(*[nn.Linear(a, b, bias=False) for a, b in zip(dims, dims[1:], strict=False)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synflow_of_linear_chain_is_depth_times_path_sum(seed):
    """R = 1^T |W3||W2||W1| 1 is linear in each layer, so sum(|theta| * dR/dtheta) = R per layer."""
    model = _chain(seed)
    ws = [m.weight.detach().double().abs().numpy() for m in model]
    r = np.ones(5)
    for w in ws:
        r = w @ r
    expected = len(ws) * r.sum()
    assert synflow(model, torch.randn(7, 5)) == pytest.approx(expected, rel=1e-10)
    assert (model[0].weight < 0).any()  # the caller's weights were not sign-flipped in place


def test_naswot_identical_patterns_are_singular_distinct_patterns_exact():
    class Identity(nn.Module):  # activation codes = sign pattern of the input itself
        def __init__(self):
            super().__init__()
            self.act = nn.ReLU()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.act(x))

    same = torch.tensor([[1.0, 2.0, -1.0, -3.0], [5.0, 0.5, -2.0, -1.0], [0.1, 9.0, -7.0, -0.2]])
    assert naswot(Identity(), same) == -math.inf  # every input shares one code: K is all-equal, singular

    distinct = torch.tensor([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0], [-1.0, -1.0, -1.0, 1.0]])
    c = (distinct > 0).double()
    k = c @ c.T + (1 - c) @ (1 - c).T  # matches: 4 minus Hamming distance
    assert k.tolist() == [[4, 2, 1], [2, 4, 1], [1, 1, 4]]
    assert naswot(Identity(), distinct) == pytest.approx(math.log(np.linalg.det(k.numpy())), rel=1e-12)


def test_naswot_needs_activation_modules():
    with pytest.raises(ValueError, match="no activation modules"):
        naswot(nn.Linear(3, 2), torch.randn(4, 3))


def _softmax_grad(model: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """dCE/dW for one linear layer: (softmax(Wx + b) - onehot(y))^T x / N."""
    with torch.no_grad():
        p = torch.softmax(model(x), dim=1).double()
    p[torch.arange(len(y)), y] -= 1
    return (p.T @ x.double() / len(y)).numpy()


def test_grad_norm_and_snip_of_one_linear_layer():
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    x, y = torch.randn(8, 6), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    g = _softmax_grad(model, x, y)
    w = model.weight.detach().double().numpy()
    assert grad_norm(model, x, y) == pytest.approx(np.linalg.norm(g), rel=1e-5)
    assert snip(model, x, y) == pytest.approx(np.abs(w * g).sum(), rel=1e-5)
    assert model.weight.grad is None  # the caller's model is untouched


def test_jacob_cov_of_linear_model_has_identical_rows():
    """d(sum f)/dx = 1^T W for every image: corrcoef is all ones, eigenvalues N, 0, ..., 0."""
    torch.manual_seed(0)
    n, k = 6, 1e-5
    score = jacob_cov(nn.Linear(10, 3), torch.randn(n, 10))
    expected = -((math.log(n + k) + 1 / (n + k)) + (n - 1) * (math.log(k) + 1 / k))
    assert score == pytest.approx(expected, rel=1e-6)


def test_jacob_cov_prefers_decorrelated_jacobians():
    torch.manual_seed(0)
    relu_net = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 3))
    x = torch.randn(6, 10)
    assert jacob_cov(relu_net, x) > jacob_cov(nn.Linear(10, 3), x)


def test_params_counts_trainable_only():
    m = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    m[1].requires_grad_(False)
    assert params(m) == 4 * 3 + 3


def test_all_proxies_return_floats_on_a_timm_cnn_and_leave_it_unchanged():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet10t", num_classes=5).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    scores = zero_cost_scores(model, x, y)
    assert set(scores) == set(PROXIES)
    assert all(isinstance(v, float) and math.isfinite(v) for v in scores.values()), scores
    assert scores["flops"] > 0 and scores["params"] == sum(p.numel() for p in model.parameters())
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_unknown_proxy_name():
    with pytest.raises(ValueError, match="unknown zero-cost proxies"):
        zero_cost_scores(nn.Linear(2, 2), torch.randn(2, 2), proxies=["synflo"])
