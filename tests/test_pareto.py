"""The Pareto front: every documented case, then a brute-force cross-check on random points."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from harness.report.pareto import pareto_front


def brute_force_front(xs, ys, x_larger_better=True, y_larger_better=True) -> list[int]:
    """The definition, checked pair by pair: slow, obviously right, the reference for the sweep."""
    sx = 1 if x_larger_better else -1
    sy = 1 if y_larger_better else -1
    points = [(sx * x, sy * y) for x, y in zip(xs, ys)]
    keep = []
    for i, (xi, yi) in enumerate(points):
        if math.isnan(xi) or math.isnan(yi):
            continue
        dominated = False
        for j, (xj, yj) in enumerate(points):
            if j == i or math.isnan(xj) or math.isnan(yj):
                continue
            better_or_equal = xj >= xi and yj >= yi
            if better_or_equal and (xj > xi or yj > yi):
                dominated = True
            elif (xj, yj) == (xi, yi) and j < i:
                dominated = True  # an exact duplicate: the lowest index represents it
            if dominated:
                break
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda i: (xs[i], i))


def test_simple_front_in_x_order():
    xs = [0.5, 0.9, 0.7, 0.99, 0.6]
    ys = [1000, 100, 500, 10, 200]  # index 4 is dominated by index 2
    assert pareto_front(xs, ys) == [0, 2, 1, 3]


def test_empty_and_single_point():
    assert pareto_front([], []) == []
    assert pareto_front([0.3], [7.0]) == [0]


def test_equal_points_are_kept_once_lowest_index():
    xs = [0.9, 0.9, 0.5, 0.9]
    ys = [100, 100, 200, 100]
    assert pareto_front(xs, ys) == [2, 0]


def test_equal_x_keeps_best_y_only():
    assert pareto_front([0.9, 0.9, 0.9], [10, 30, 20]) == [1]
    assert pareto_front([0.9, 0.9, 0.9], [10, 30, 20], y_larger_better=False) == [0]


def test_equal_y_keeps_best_x_only():
    assert pareto_front([0.1, 0.8, 0.5], [5, 5, 5]) == [1]


def test_zero_is_a_real_result():
    # A recall of 0 with the highest QPS is on the front; ann-benchmarks would drop it.
    assert pareto_front([0.0, 0.5, 1.0], [1e6, 1e4, 1e2]) == [0, 1, 2]
    assert pareto_front([0.0, 0.0], [0.0, 0.0]) == [0]


def test_nan_is_excluded():
    xs = [float("nan"), 0.5, 0.8, 0.9]
    ys = [1e9, 100, float("nan"), 50]
    assert pareto_front(xs, ys) == [1, 3]
    assert pareto_front([float("nan")], [1.0]) == []


def test_minimising_y_axis():
    # recall (maximise) against seconds per query (minimise)
    xs = [0.5, 0.9, 0.7, 0.95]
    ys = [1e-5, 1e-3, 2e-3, 1e-2]  # index 2 is slower and less accurate than index 1
    assert pareto_front(xs, ys, y_larger_better=False) == [0, 1, 3]


def test_minimising_both_axes():
    xs = [1, 2, 3, 1.5]
    ys = [3, 2, 1, 3.5]
    assert pareto_front(xs, ys, x_larger_better=False, y_larger_better=False) == [0, 1, 2]


def test_minimising_x_axis():
    xs = [1, 2, 3]
    ys = [1, 2, 3]
    assert pareto_front(xs, ys, x_larger_better=False) == [0, 1, 2]
    assert pareto_front(xs, ys) == [2]


def test_infinities_compare_as_numbers():
    assert pareto_front([0.5, 0.9], [float("inf"), 1.0]) == [0, 1]


def test_accepts_numpy_arrays_and_checks_lengths():
    assert pareto_front(np.array([0.1, 0.2]), np.array([2.0, 1.0])) == [0, 1]
    with pytest.raises(ValueError, match="same length"):
        pareto_front([1, 2], [1])


@pytest.mark.parametrize("x_larger, y_larger", list(itertools.product([True, False], repeat=2)))
def test_matches_brute_force_on_random_points(x_larger, y_larger):
    rng = np.random.default_rng(1234)
    for trial in range(200):
        n = int(rng.integers(0, 40))
        # a coarse grid makes ties and duplicates common; some NaN and zeros too
        xs = rng.integers(0, 8, n).astype(float) / 7
        ys = rng.integers(0, 8, n).astype(float) * 10.0
        xs[rng.random(n) < 0.05] = np.nan
        ys[rng.random(n) < 0.05] = np.nan
        expected = brute_force_front(list(xs), list(ys), x_larger, y_larger)
        assert pareto_front(xs, ys, x_larger, y_larger) == expected, (trial, xs, ys)


def test_front_is_monotone_trade_off():
    rng = np.random.default_rng(7)
    xs, ys = rng.random(500), rng.random(500)
    front = pareto_front(xs, ys)
    fx, fy = xs[front], ys[front]
    assert np.all(np.diff(fx) > 0)
    assert np.all(np.diff(fy) < 0)  # better recall costs speed along a front
