"""The Pareto front of a trade-off: the configurations no other configuration beats on both axes.

ann-benchmarks computes its fronts in plotting code with no tests and silently drops points at
zero. Here the front is one small, tested function that knows nothing about plots:

- a point with a zero coordinate is a real result (a recall of 0 is what the algorithm achieved)
  and takes part like any other;
- NaN coordinates mean "not measured" and are excluded;
- equal points are kept once (the lowest index), so the result is deterministic;
- each axis may be maximised (recall, QPS) or minimised (seconds, bytes, iterations).

Log-scale axes cannot show zero or negative values. That is a drawing problem, not a Pareto one:
`harness.report.plots` removes such points before it calls `pareto_front` and says on the figure how
many it removed, so the drawn front is the front of the drawn points.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def pareto_front(
    xs: Sequence[float] | np.ndarray,
    ys: Sequence[float] | np.ndarray,
    x_larger_better: bool = True,
    y_larger_better: bool = True,
) -> list[int]:
    """Indices of the non-dominated points, ordered by increasing x.

    Point i dominates point j when it is at least as good on both axes and strictly better on
    one. The front is every point that nothing dominates, with exact duplicates reduced to the
    one with the lowest index. Points whose x or y is NaN are excluded; infinities compare as
    usual. The front's x values are distinct, so "ordered by increasing x" is unambiguous and
    the indices can be drawn as a line directly.
    """
    x = np.asarray(xs, dtype=float).ravel()
    y = np.asarray(ys, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"xs and ys must have the same length, got {x.size} and {y.size}")
    # Turn both axes into "larger is better" so one sweep serves all four combinations.
    gx = x if x_larger_better else -x
    gy = y if y_larger_better else -y
    valid = np.flatnonzero(~(np.isnan(gx) | np.isnan(gy)))
    # Best x first; among equal x, best y first; among equal points, lowest index first.
    order = valid[np.lexsort((valid, -gy[valid], -gx[valid]))]
    front: list[int] = []
    best_y = -np.inf
    for index in order:
        # Everything seen so far has x >= this x, so this point survives only by beating their y.
        if not front or gy[index] > best_y:
            front.append(int(index))
            best_y = gy[index]
    return sorted(front, key=lambda i: (x[i], i))
