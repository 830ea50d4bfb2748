"""Rank correlations (Kendall tau-b, Spearman rho) with percentile-bootstrap confidence intervals.

Used to ask how well a cheap score (a zero-cost proxy ``zc.*``, FLOPs, a short-training
accuracy) ranks architectures the way the expensive target (trained top-1) does. Pure numpy:
ties get average ranks; tau-b corrects for ties in either variable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


def rankdata(x: np.ndarray | Sequence[float]) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (scipy's ``method='average'``)."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    ranks = np.empty(len(x))
    starts = np.r_[0, np.nonzero(np.diff(xs))[0] + 1]
    ends = np.r_[starts[1:], len(x)]
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2.0  # mean of ranks s+1 .. e
    return ranks


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def spearman_rho(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float]) -> float:
    """Spearman's rho: Pearson correlation of the average ranks; NaN when either side is constant."""
    x, y = _pair(x, y)
    return _pearson(rankdata(x), rankdata(y)) if len(x) > 1 else float("nan")


def kendall_tau(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float], *, chunk: int = 2048) -> float:
    """Kendall's tau-b, ``(C - D) / sqrt((n0 - n1)(n0 - n2))``; NaN when either side is constant.

    O(n^2) over all pairs, in row chunks to bound memory (fine for sweeps of thousands of trials).
    """
    x, y = _pair(x, y)
    n = len(x)
    if n < 2:
        return float("nan")
    s = tx = ty = 0.0
    for i in range(0, n, chunk):
        dx = np.sign(x[i : i + chunk, None] - x[None, :])
        dy = np.sign(y[i : i + chunk, None] - y[None, :])
        s += float((dx * dy).sum())
        tx += float((dx == 0).sum())
        ty += float((dy == 0).sum())
    # every unordered pair is counted twice and the diagonal once in the tie counts
    n0 = n * (n - 1) / 2
    n1, n2 = (tx - n) / 2, (ty - n) / 2
    den = np.sqrt((n0 - n1) * (n0 - n2))
    return float(s / 2 / den) if den > 0 else float("nan")


def _pair(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("x or y contains NaN; drop rows where either score is missing first")
    return x, y


def bootstrap_ci(
    x: np.ndarray | Sequence[float],
    y: np.ndarray | Sequence[float],
    statistic: Callable[[np.ndarray, np.ndarray], float],
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over resampled (x, y) pairs.

    Resamples where the statistic is undefined (a constant side) are dropped; NaNs when fewer
    than 3 pairs or no resample is defined.
    """
    x, y = _pair(x, y)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if len(x) < 3:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    stats = np.array([statistic(x[i], y[i]) for i in idx])
    stats = stats[np.isfinite(stats)]
    if len(stats) == 0:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


@dataclass(frozen=True)
class RankCorrelation:
    """Kendall tau-b and Spearman rho between columns ``x`` and ``y`` with bootstrap intervals."""

    x: str
    y: str
    n: int
    tau: float
    tau_ci: tuple[float, float]
    rho: float
    rho_ci: tuple[float, float]
    level: float
    x_values: np.ndarray
    y_values: np.ndarray

    def row(self) -> dict[str, float | int | str]:
        return {"x": self.x, "y": self.y, "n": self.n, "kendall_tau": self.tau, "tau_lo": self.tau_ci[0],
                "tau_hi": self.tau_ci[1], "spearman_rho": self.rho, "rho_lo": self.rho_ci[0],
                "rho_hi": self.rho_ci[1]}


def rank_correlation(
    frame: pd.DataFrame, x: str, y: str, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> RankCorrelation:
    """Correlate two columns of ``frame`` over the rows where both are finite."""
    for col in (x, y):
        if col not in frame.columns:
            raise KeyError(f"column {col!r} not in the table; available: {', '.join(map(str, frame.columns))}")
    xs = pd.to_numeric(frame[x], errors="coerce").to_numpy(dtype=float)
    ys = pd.to_numeric(frame[y], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[ok], ys[ok]
    return RankCorrelation(
        x=x, y=y, n=int(ok.sum()),
        tau=kendall_tau(xs, ys), tau_ci=bootstrap_ci(xs, ys, kendall_tau, n_boot=n_boot, level=level, seed=seed),
        rho=spearman_rho(xs, ys), rho_ci=bootstrap_ci(xs, ys, spearman_rho, n_boot=n_boot, level=level, seed=seed),
        level=level, x_values=xs, y_values=ys,
    )


def correlation_table(
    frame: pd.DataFrame, xs: Sequence[str], y: str, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[pd.DataFrame, list[RankCorrelation]]:
    """One row per score column in ``xs`` against ``y`` (e.g. every ``zc.*`` column vs ``top1``)."""
    results = [rank_correlation(frame, x, y, n_boot=n_boot, level=level, seed=seed) for x in xs]
    columns = ["x", "y", "n", "kendall_tau", "tau_lo", "tau_hi", "spearman_rho", "rho_lo", "rho_hi"]
    return pd.DataFrame([r.row() for r in results], columns=columns), results
