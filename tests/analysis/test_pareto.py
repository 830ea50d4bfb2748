"""Pareto sorting, hypervolume, knee and front comparison against brute force, Optuna and hand cases."""

from __future__ import annotations

import itertools

import numpy as np
import optuna
import pytest

from analysis.pareto import (
    Objective,
    compare_fronts,
    crowding_distance,
    dominates,
    hypervolume,
    hypervolume_history,
    knee_point,
    nadir_reference,
    non_dominated_sort,
    pareto_mask,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _brute_dominates(a, b, dirs) -> bool:
    better_or_equal = all((x >= y) if d == "maximize" else (x <= y) for x, y, d in zip(a, b, dirs, strict=True))
    strictly = any((x > y) if d == "maximize" else (x < y) for x, y, d in zip(a, b, dirs, strict=True))
    return better_or_equal and strictly


def _random_cloud(rng, n, d, *, ties: bool):
    if ties:  # small integer grid: many duplicates and equal coordinates
        return rng.integers(0, 5, size=(n, d)).astype(float)
    return rng.normal(size=(n, d))


@pytest.mark.parametrize("d", [1, 2, 3, 4])
@pytest.mark.parametrize("ties", [False, True])
def test_front_and_sort_match_brute_force(d, ties):
    rng = np.random.default_rng(100 * d + ties)
    for _ in range(5):
        n = int(rng.integers(1, 60))
        v = _random_cloud(rng, n, d, ties=ties)
        dirs = [str(x) for x in rng.choice(["maximize", "minimize"], size=d)]
        dom = np.array([[_brute_dominates(v[i], v[j], dirs) for j in range(n)] for i in range(n)]).reshape(n, n)
        expected = ~dom.any(0)
        np.testing.assert_array_equal(pareto_mask(v, dirs), expected)
        fronts = non_dominated_sort(v, dirs)
        assert sorted(np.concatenate(fronts).tolist()) == list(range(n))
        np.testing.assert_array_equal(np.sort(fronts[0]), np.nonzero(expected)[0])
        for k, front in enumerate(fronts):
            later = np.concatenate(fronts[k:])
            assert not dom[np.ix_(later, front)].any(), "a point of front k is dominated by a later/equal front"
            if k:
                assert dom[np.ix_(fronts[k - 1], front)].any(0).all(), "needs a dominator in the front before"
        assert dominates(v[0], v[0], dirs) is False


@pytest.mark.parametrize("d", [2, 3])
def test_front_matches_optuna_best_trials(d):
    rng = np.random.default_rng(7 + d)
    dirs = ["maximize", "minimize", "maximize"][:d]
    v = np.round(rng.normal(size=(80, d)), 1)  # rounding makes ties and duplicates
    study = optuna.create_study(directions=dirs)
    for i, row in enumerate(v):
        study.add_trial(
            optuna.trial.create_trial(
                values=row.tolist(), params={"i": i}, distributions={"i": optuna.distributions.IntDistribution(0, 100)}
            )
        )
    optuna_front = sorted(t.params["i"] for t in study.best_trials)
    assert np.nonzero(pareto_mask(v, dirs))[0].tolist() == optuna_front


def test_hypervolume_2d_by_hand():
    pts = [[1, 3], [2, 2], [3, 1]]
    # staircase under (4, 4): strips 3x1 + 2x1 + 1x1
    assert hypervolume(pts, [4, 4], ["minimize", "minimize"]) == pytest.approx(6.0)
    # the same set with the first objective maximised (negated) and its reference mirrored
    mixed = [[-1, 3], [-2, 2], [-3, 1]]
    assert hypervolume(mixed, [-4, 4], ["maximize", "minimize"]) == pytest.approx(6.0)
    # a dominated point and a duplicate add nothing
    assert hypervolume([*pts, [3, 3], [2, 2]], [4, 4], ["minimize"] * 2) == pytest.approx(6.0)
    # accuracy/throughput style: maximise both, reference at the origin
    assert hypervolume([[0.7, 100.0], [0.5, 300.0]], [0.0, 0.0], ["maximize", "maximize"]) == pytest.approx(
        0.7 * 100 + 0.5 * 200
    )


def test_hypervolume_3d_by_hand():
    dirs = ["minimize"] * 3
    assert hypervolume([[0, 0, 0]], [2, 3, 4], dirs) == pytest.approx(24.0)
    # two boxes 2x2x1 and 1x1x2 overlapping in a unit cube
    assert hypervolume([[0, 0, 1], [1, 1, 0]], [2, 2, 2], dirs) == pytest.approx(4 + 2 - 1)
    # three unit-corner boxes of the 2-cube: 3 * 4 minus pairwise overlaps (3 * 2) plus triple (1)
    assert hypervolume([[0, 1, 1], [1, 0, 1], [1, 1, 0]], [2, 2, 2], dirs) == pytest.approx(3 * 2 - 3 * 1 + 1 + 0)


def _inclusion_exclusion(m: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume (minimisation) by inclusion-exclusion over all subsets; tiny n only."""
    m = m[(m < ref).all(1)]
    total = 0.0
    for k in range(1, len(m) + 1):
        for sub in itertools.combinations(range(len(m)), k):
            corner = m[list(sub)].max(0)
            total += (-1) ** (k + 1) * np.prod(ref - corner)
    return float(total)


@pytest.mark.parametrize("d", [2, 3, 4, 5])
def test_hypervolume_matches_inclusion_exclusion(d):
    rng = np.random.default_rng(d)
    for _ in range(6):
        n = int(rng.integers(1, 9))
        m = rng.uniform(0, 1, size=(n, d))
        ref = np.full(d, 0.9)  # some points beyond the reference in some objective
        dirs = [str(x) for x in rng.choice(["maximize", "minimize"], size=d)]
        sign = np.array([-1.0 if x == "maximize" else 1.0 for x in dirs])
        got = hypervolume(m * sign, ref * sign, dirs)
        assert got == pytest.approx(_inclusion_exclusion(m, ref), rel=1e-10, abs=1e-12)


def test_points_not_beating_the_reference_contribute_zero():
    dirs = ["maximize", "maximize"]
    ref = [0.5, 100.0]
    base = hypervolume([[0.8, 200.0]], ref, dirs)
    # worse than the reference in one objective, or exactly on it: no volume, alone or added
    for p in ([0.4, 500.0], [0.9, 50.0], [0.5, 300.0], [0.9, 100.0], [0.1, 10.0]):
        assert hypervolume([p], ref, dirs) == 0.0
        assert hypervolume([[0.8, 200.0], p], ref, dirs) == pytest.approx(base)
    assert hypervolume(np.zeros((0, 2)), ref, dirs) == 0.0


def test_hypervolume_history_is_prefix_hypervolume():
    rng = np.random.default_rng(3)
    v = rng.uniform(size=(25, 3))
    dirs = ["maximize", "minimize", "maximize"]
    ref = [0.0, 1.0, 0.0]
    hist = hypervolume_history(v, ref, dirs)
    expected = [hypervolume(v[: k + 1], ref, dirs) for k in range(len(v))]
    np.testing.assert_allclose(hist, expected, rtol=1e-12)
    assert (np.diff(hist) >= -1e-12).all()


def test_nadir_reference_is_worse_than_every_point():
    v = np.array([[0.7, 100.0], [0.5, 300.0], [0.6, 300.0]])
    ref = nadir_reference(v, ["maximize", "minimize"], margin=0.1)
    np.testing.assert_allclose(ref, [0.5 - 0.02, 300 + 20])
    assert hypervolume(v, ref, ["maximize", "minimize"]) > 0


def test_crowding_distance_by_hand():
    v = np.array([[0.0, 4.0], [1.0, 2.0], [3.0, 1.0], [4.0, 0.0]])
    cd = crowding_distance(v, ["minimize", "minimize"])
    assert np.isinf(cd[0]) and np.isinf(cd[3])
    np.testing.assert_allclose(cd[1:3], [(3 - 0) / 4 + (4 - 1) / 4, (4 - 1) / 4 + (2 - 0) / 4])


def test_knee_hyperplane_and_utopia():
    # convex front: the bulge at (0.2, 0.2) is farthest from the line through the ends
    front = np.array([[0.0, 1.0], [0.1, 0.5], [0.2, 0.2], [0.5, 0.1], [1.0, 0.0]])
    knee = knee_point(front, ["minimize", "minimize"])
    assert knee.index == 2 and knee.method == "hyperplane"
    assert knee_point(front * -1, ["maximize", "maximize"]).index == 2
    # utopia distance picks the point nearest the normalised ideal point
    lopsided = np.array([[0.0, 1.0], [0.05, 0.3], [0.3, 0.05], [1.0, 0.0]])
    assert knee_point(lopsided, ["minimize", "minimize"], method="utopia").index in (1, 2)
    # 3-D: the point far below the plane x+y+z=1 through the unit extremes
    f3 = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.2, 0.2, 0.2], [0.4, 0.4, 0.1]], dtype=float)
    k3 = knee_point(f3, ["minimize"] * 3)
    assert k3.index == 3 and k3.method == "hyperplane"
    # one point, and degenerate extremes, fall back to utopia (reported)
    assert knee_point([[1.0, 2.0]], ["minimize"] * 2).index == 0
    assert knee_point([[0, 0, 1], [1, 1, 0]], ["minimize"] * 3).method == "utopia"


def test_compare_fronts_by_hand():
    dirs = ["maximize", "maximize"]
    a = np.array([[0.7, 100.0], [0.5, 300.0], [0.4, 50.0]])  # last one dominated
    b = np.array([[0.6, 90.0], [0.45, 400.0]])
    cmp = compare_fronts(a, b, dirs, reference=[0.0, 0.0])
    assert cmp.front_a.tolist() == [0, 1] and cmp.front_b.tolist() == [0, 1]
    assert cmp.hv_a == pytest.approx(0.7 * 100 + 0.5 * 200)
    assert cmp.hv_b == pytest.approx(0.6 * 90 + 0.45 * 310)
    assert cmp.hv_union == pytest.approx(hypervolume(np.vstack([a, b]), [0, 0], dirs))
    assert cmp.a_dominating.tolist() == [0]  # (0.7, 100) dominates (0.6, 90)
    assert cmp.b_dominating.tolist() == []
    assert cmp.coverage_a_over_b == 0.5 and cmp.coverage_b_over_a == 0.0


def test_bad_input_errors_name_the_problem():
    with pytest.raises(ValueError, match="direction"):
        Objective("top1", "max")
    with pytest.raises(ValueError, match="shape"):
        pareto_mask(np.zeros((3, 2)), ["maximize"] * 3)
    with pytest.raises(ValueError, match="NaN"):
        pareto_mask([[1.0, np.nan]], ["maximize"] * 2)
    with pytest.raises(ValueError, match="reference point"):
        hypervolume([[1.0, 1.0]], [0.0], ["maximize"] * 2)


def test_hypervolume_contributions_known_answers():
    from analysis.pareto import hypervolume_contributions

    # three points of a 2-D front (minimise both), reference (4, 4): each keeps a 1x1 box of its own
    pts = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    assert hypervolume_contributions(pts, [4.0, 4.0], ["minimize", "minimize"]).tolist() == [1.0, 1.0, 1.0]
    pts2 = np.array([[1.0, 3.0], [2.0, 1.0]])
    assert hypervolume_contributions(pts2, [4.0, 4.0], ["minimize", "minimize"]).tolist() == [1.0, 4.0]
    # a dominated row and a duplicate add nothing; maximised columns are handled
    pts3 = np.array([[3.0, 3.0], [2.0, 2.0], [2.0, 2.0]])
    assert hypervolume_contributions(pts3, [0.0, 0.0], ["maximize", "maximize"]).tolist() == [5.0, 0.0, 0.0]
    assert hypervolume_contributions(np.zeros((0, 2)), [0.0, 0.0], ["maximize", "maximize"]).shape == (0,)
