"""Pareto analysis for any number of objectives with mixed directions.

All functions take ``values`` as an ``(n, d)`` array and ``objectives`` as a sequence of
``Objective`` (or ``"maximize"``/``"minimize"`` strings); internally everything is converted to
minimisation by negating maximised columns. A point ``a`` dominates ``b`` when it is no worse in
every objective and strictly better in at least one; equal points do not dominate each other.

Hypervolume is measured against a fixed reference point that the caller passes (and reports):
exact sweeps in 2-D and 3-D and, beyond, the exact HSO slicing algorithm (While et al. 2006) that
recurses down to the 3-D sweep. Points that do not strictly dominate the reference point
contribute nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Objective:
    """One objective: a column ``name`` and whether it is maximised or minimised."""

    name: str
    direction: str = "maximize"

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"objective {self.name!r}: direction must be one of {DIRECTIONS}, got {self.direction!r}")

    @property
    def sign(self) -> float:
        """Multiplier that turns this objective into one to minimise."""
        return -1.0 if self.direction == "maximize" else 1.0


ObjectivesLike = Sequence["Objective | str | Mapping[str, str]"]


def as_objectives(objectives: ObjectivesLike) -> tuple[Objective, ...]:
    """Normalise ``Objective`` / direction strings / ``{"name", "direction"}`` dicts to ``Objective``s."""
    out = []
    for i, o in enumerate(objectives):
        if isinstance(o, Objective):
            out.append(o)
        elif isinstance(o, str):
            out.append(Objective(f"f{i}", o))
        elif isinstance(o, Mapping):
            if "name" not in o:
                raise ValueError(f"objective #{i} {dict(o)!r} has no 'name'; write {{'name': ..., 'direction': ...}}")
            out.append(Objective(str(o["name"]), str(o.get("direction", "maximize"))))
        else:
            raise TypeError(f"objective #{i}: expected Objective, direction string or dict, got {type(o).__name__}")
    if not out:
        raise ValueError("need at least one objective")
    return tuple(out)


def to_minimization(values: np.ndarray | Sequence[Sequence[float]], objectives: ObjectivesLike) -> np.ndarray:
    """``(n, d)`` float array with maximised columns negated; validates shape and NaNs."""
    objs = as_objectives(objectives)
    v = np.asarray(values, dtype=float)
    if v.ndim == 1 and v.size == 0:
        v = v.reshape(0, len(objs))
    if v.ndim != 2 or v.shape[1] != len(objs):
        raise ValueError(f"values must have shape (n, {len(objs)}) for {len(objs)} objectives, got {v.shape}")
    if np.isnan(v).any():
        bad = sorted(set(np.nonzero(np.isnan(v))[0].tolist()))[:5]
        raise ValueError(f"values contain NaN (rows {bad}...); keep only trials with every objective measured")
    return v * np.array([o.sign for o in objs])


def _dominance_matrix(m: np.ndarray, *, chunk: int = 1024) -> np.ndarray:
    """``D[i, j]`` is True when minimisation row ``i`` dominates row ``j``."""
    n = len(m)
    out = np.zeros((n, n), dtype=bool)
    for s in range(0, n, chunk):
        a = m[s : s + chunk, None, :]
        le = (a <= m[None, :, :]).all(-1)
        lt = (a < m[None, :, :]).any(-1)
        out[s : s + chunk] = le & lt
    return out


def dominates(a: Sequence[float], b: Sequence[float], objectives: ObjectivesLike) -> bool:
    """True when point ``a`` dominates point ``b``."""
    m = to_minimization([a, b], objectives)
    return bool((m[0] <= m[1]).all() and (m[0] < m[1]).any())


def non_dominated_sort(values: np.ndarray | Sequence[Sequence[float]], objectives: ObjectivesLike) -> list[np.ndarray]:
    """Fronts (arrays of row indices, ascending) from the Pareto front outwards (Deb's fast sort)."""
    m = to_minimization(values, objectives)
    dom = _dominance_matrix(m)
    remaining = dom.sum(0)  # how many points dominate each point
    alive = np.ones(len(m), dtype=bool)
    fronts = []
    while alive.any():
        front = np.nonzero(alive & (remaining == 0))[0]
        fronts.append(front)
        alive[front] = False
        remaining = remaining - dom[front].sum(0)
    return fronts


def pareto_mask(values: np.ndarray | Sequence[Sequence[float]], objectives: ObjectivesLike) -> np.ndarray:
    """Boolean mask of the non-dominated rows."""
    m = to_minimization(values, objectives)
    return ~_dominance_matrix(m).any(0)


def crowding_distance(values: np.ndarray | Sequence[Sequence[float]], objectives: ObjectivesLike) -> np.ndarray:
    """NSGA-II crowding distance of each row within the given set (normally one front).

    Boundary points of every objective get ``inf``; an objective with zero range adds nothing.
    """
    m = to_minimization(values, objectives)
    n, d = m.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(d):
        order = np.argsort(m[:, k], kind="stable")
        col = m[order, k]
        span = col[-1] - col[0]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (col[2:] - col[:-2]) / span
    return dist


# ----------------------------------------------------------------------------- hypervolume


def _hv2d(p: np.ndarray, ref: np.ndarray) -> float:
    """Exact 2-D hypervolume (minimisation, every row strictly below ``ref``)."""
    p = p[np.lexsort((p[:, 1], p[:, 0]))]
    hv, cur_y = 0.0, ref[1]
    for x, y in p:
        if y < cur_y:
            hv += (ref[0] - x) * (cur_y - y)
            cur_y = y
    return hv


def _hv3d(p: np.ndarray, ref: np.ndarray) -> float:
    """Exact 3-D hypervolume: slabs between consecutive z values, each a 2-D sweep."""
    p = p[np.argsort(p[:, 2], kind="stable")]
    hv = 0.0
    for i in range(len(p)):
        z_next = p[i + 1, 2] if i + 1 < len(p) else ref[2]
        if z_next > p[i, 2]:
            hv += _hv2d(p[: i + 1, :2], ref[:2]) * (z_next - p[i, 2])
    return hv


def _hv_nd(p: np.ndarray, ref: np.ndarray) -> float:
    d = p.shape[1]
    if len(p) == 0:
        return 0.0
    if d == 1:
        return float(ref[0] - p[:, 0].min())
    if d == 2:
        return _hv2d(p, ref)
    if d == 3:
        return _hv3d(p, ref)
    # HSO: slice along the last objective; each slab's cross-section is the (d-1)-D hypervolume of
    # the points at or below it, reduced to their non-dominated subset.
    p = p[np.argsort(p[:, -1], kind="stable")]
    hv = 0.0
    for i in range(len(p)):
        z_next = p[i + 1, -1] if i + 1 < len(p) else ref[-1]
        if z_next > p[i, -1]:
            sub = p[: i + 1, :-1]
            sub = sub[~_dominance_matrix(sub).any(0)]
            hv += _hv_nd(np.unique(sub, axis=0), ref[:-1]) * (z_next - p[i, -1])
    return hv


def hypervolume(
    values: np.ndarray | Sequence[Sequence[float]],
    reference: Sequence[float],
    objectives: ObjectivesLike,
) -> float:
    """Volume dominated by ``values`` and bounded by ``reference`` (in the objectives' own units).

    ``reference`` must be worse than the interesting points in every objective (below them for
    maximised objectives, above for minimised ones); points that do not strictly beat it in every
    objective contribute 0.
    """
    objs = as_objectives(objectives)
    m = to_minimization(values, objs)
    r = np.asarray(reference, dtype=float).reshape(-1)
    if r.shape != (len(objs),) or not np.isfinite(r).all():
        raise ValueError(f"reference point must be {len(objs)} finite numbers (one per objective), got {reference!r}")
    r = r * np.array([o.sign for o in objs])
    m = m[(m < r).all(1)]
    if len(m) == 0:
        return 0.0
    m = np.unique(m[~_dominance_matrix(m).any(0)], axis=0)
    return float(_hv_nd(m, r))


def hypervolume_contributions(
    values: np.ndarray | Sequence[Sequence[float]],
    reference: Sequence[float],
    objectives: ObjectivesLike,
) -> np.ndarray:
    """Exclusive hypervolume of each row: ``HV(all) - HV(all without that row)`` (SMS-EMOA's measure).

    Meant for one non-dominated front; a dominated or duplicated row contributes 0, and so does a
    row not strictly better than ``reference`` in every objective.
    """
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n == 0:
        return np.zeros(0)
    total = hypervolume(v, reference, objectives)
    keep = np.ones(n, dtype=bool)
    out = np.zeros(n)
    for i in range(n):
        keep[i] = False
        out[i] = max(0.0, total - hypervolume(v[keep], reference, objectives))
        keep[i] = True
    return out


def hypervolume_history(
    values: np.ndarray | Sequence[Sequence[float]],
    reference: Sequence[float],
    objectives: ObjectivesLike,
) -> np.ndarray:
    """Hypervolume of the first ``k`` points for ``k = 1..n`` (rows in trial order)."""
    v = np.asarray(values, dtype=float)
    objs = as_objectives(objectives)
    out = np.zeros(len(v))
    front = np.zeros((0, len(objs)))
    hv = 0.0
    for k in range(len(v)):
        cand = np.vstack([front, v[k : k + 1]])
        mask = pareto_mask(cand, objs)
        if mask[-1]:  # the new point is on the front: the hypervolume may have grown
            front = cand[mask]
            hv = hypervolume(front, reference, objs)
        out[k] = hv
    return out


def nadir_reference(
    values: np.ndarray | Sequence[Sequence[float]], objectives: ObjectivesLike, *, margin: float = 0.1
) -> np.ndarray:
    """A reference point just worse than the worst value of each objective.

    Each coordinate is the worst value moved by ``margin`` x the objective's range (or x its
    magnitude, or 1, when the range is 0) so every point contributes volume. Use it once per run
    and report it: hypervolumes are comparable only against the same reference point.
    """
    objs = as_objectives(objectives)
    m = to_minimization(values, objs)
    if len(m) == 0:
        raise ValueError("cannot derive a reference point from zero points; pass one explicitly")
    worst, best = m.max(0), m.min(0)
    span = worst - best
    span = np.where(span > 0, span, np.where(np.abs(worst) > 0, np.abs(worst), 1.0))
    return (worst + margin * span) * np.array([o.sign for o in objs])


# ----------------------------------------------------------------------------- knee point


@dataclass(frozen=True)
class Knee:
    """Knee of a front: ``index`` into the rows passed, the ``method`` actually used and its ``score``s."""

    index: int
    method: str
    scores: np.ndarray


def knee_point(
    values: np.ndarray | Sequence[Sequence[float]], objectives: ObjectivesLike, *, method: str = "hyperplane"
) -> Knee:
    """Knee of a Pareto front (pass only the front's rows).

    Objectives are first normalised over the front to [0, 1] (0 = best, 1 = worst value).

    - ``"hyperplane"`` (Das 1999; Deb & Gupta 2011): the point farthest from the hyperplane
      through the ``d`` extreme points (each the point nearest one objective axis by the
      achievement scalarising function; in 2-D, the two ends of the front), on the side
      of the ideal point — the point where improving one objective starts to cost most in the
      others. Falls back to ``"utopia"`` when the extremes do not span a hyperplane (fewer than
      ``d`` distinct extremes), and reports it in ``Knee.method``.
    - ``"utopia"``: the point nearest to the ideal point (Euclidean, normalised).

    Ties go to the point nearer the ideal point, then the lower index.
    """
    if method not in ("hyperplane", "utopia"):
        raise ValueError(f"knee method must be 'hyperplane' or 'utopia', got {method!r}")
    m = to_minimization(values, objectives)
    n, d = m.shape
    if n == 0:
        raise ValueError("knee_point needs at least one point")
    lo, hi = m.min(0), m.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    z = (m - lo) / span
    utopia = np.linalg.norm(z, axis=1)
    used = method
    scores = -utopia
    if method == "hyperplane" and n > 1 and d > 1:
        # extreme point of axis k: minimises the achievement scalarising function max_j z_j / w_j with
        # w = e_k (1e-6 elsewhere), i.e. the point lying nearest axis k (as in NSGA-III)
        weights = np.where(np.eye(d) > 0, 1.0, 1e-6)
        asf = (z[None, :, :] / weights[:, None, :]).max(-1)  # (axis, point)
        extremes = np.unique(z[np.argmin(asf, axis=1)], axis=0)
        if len(extremes) == d:
            base = extremes[0]
            # normal orthogonal to every edge between extremes: the last right-singular vector
            _, sing, vt = np.linalg.svd(extremes[1:] - base)
            normal = vt[-1]  # orthogonal to every edge between extremes
            if sing.min() > 1e-12 and abs(normal @ base) > 1e-12:
                if normal @ base < 0:  # orient so the ideal point (origin) lies on the positive side
                    normal = -normal
                scores = (base - z) @ normal  # > 0 on the ideal side of the hyperplane
            else:
                used = "utopia"
        else:
            used = "utopia"
    elif method == "hyperplane":
        used = "utopia"
    order = np.lexsort((np.arange(n), utopia, -np.round(scores, 12)))
    return Knee(index=int(order[0]), method=used, scores=scores)


# ----------------------------------------------------------------------------- comparing two sweeps


@dataclass(frozen=True)
class FrontComparison:
    """Two sweeps' fronts against one reference point.

    ``a_dominating`` are indices (into ``a``'s front rows) of points that dominate at least one of
    ``b``'s front points, and vice versa; ``coverage_a_over_b`` is the fraction of ``b``'s front
    weakly dominated by some point of ``a`` (Zitzler's C metric).
    """

    reference: tuple[float, ...]
    hv_a: float
    hv_b: float
    hv_union: float
    front_a: np.ndarray
    front_b: np.ndarray
    a_dominating: np.ndarray
    b_dominating: np.ndarray
    coverage_a_over_b: float
    coverage_b_over_a: float

    def summary(self) -> dict[str, float | int]:
        return {
            "hv_a": self.hv_a,
            "hv_b": self.hv_b,
            "hv_union": self.hv_union,
            "front_a": len(self.front_a),
            "front_b": len(self.front_b),
            "a_points_dominating_b": len(self.a_dominating),
            "b_points_dominating_a": len(self.b_dominating),
            "coverage_a_over_b": self.coverage_a_over_b,
            "coverage_b_over_a": self.coverage_b_over_a,
        }


def compare_fronts(
    a: np.ndarray | Sequence[Sequence[float]],
    b: np.ndarray | Sequence[Sequence[float]],
    objectives: ObjectivesLike,
    *,
    reference: Sequence[float] | None = None,
) -> FrontComparison:
    """Compare the Pareto fronts of two sweeps (rows of ``a`` and ``b`` are all their points).

    Without ``reference`` the nadir of both sweeps together (``nadir_reference``) is used, so both
    hypervolumes use the same point; it is returned in ``FrontComparison.reference``.
    """
    objs = as_objectives(objectives)
    ma, mb = to_minimization(a, objs), to_minimization(b, objs)
    va = np.asarray(a, dtype=float).reshape(-1, len(objs))
    vb = np.asarray(b, dtype=float).reshape(-1, len(objs))
    fa, fb = np.nonzero(pareto_mask(va, objs))[0], np.nonzero(pareto_mask(vb, objs))[0]
    both = np.vstack([va, vb])
    ref = np.asarray(reference, dtype=float) if reference is not None else nadir_reference(both, objs)
    pa, pb = ma[fa], mb[fb]
    le = (pa[:, None, :] <= pb[None, :, :]).all(-1)
    lt = (pa[:, None, :] < pb[None, :, :]).any(-1)
    ge = (pb[:, None, :] <= pa[None, :, :]).all(-1)
    gt = (pb[:, None, :] < pa[None, :, :]).any(-1)
    a_dom = le & lt  # (|fa|, |fb|)
    b_dom = ge & gt  # (|fb|, |fa|)
    cov_ab = float(le.any(0).mean()) if len(fb) else 0.0
    cov_ba = float(ge.any(0).mean()) if len(fa) else 0.0
    return FrontComparison(
        reference=tuple(float(x) for x in ref),
        hv_a=hypervolume(va, ref, objs),
        hv_b=hypervolume(vb, ref, objs),
        hv_union=hypervolume(both, ref, objs),
        front_a=fa,
        front_b=fb,
        a_dominating=fa[a_dom.any(1)],
        b_dominating=fb[b_dom.any(1)],
        coverage_a_over_b=cov_ab,
        coverage_b_over_a=cov_ba,
    )
