"""Which returned points count as hits: the one rule the run's metrics and the report share.

Recall follows ann-benchmarks' definition, which counts ties by distance rather than by id: a
returned point counts for recall@k when its true distance to the query is within the k-th true
distance + EPSILON. `harness.measure.metrics` scores a run with these functions; the report
(`harness.report.paired`) recomputes the per-query hits of stored answers with the same ones, so
that the mean of a record's per-query hits is its stored recall.
"""
from __future__ import annotations

import numpy as np

EPSILON = 1e-3


def first_occurrences(ids: np.ndarray) -> np.ndarray:
    """Mask of the slots of each row that hold an id not seen earlier in the row (-1 never counts).

    A repeated id must not count twice: an answer [5, 5] is one point, not two hits.
    """
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[1] == 0:
        return np.zeros(ids.shape, dtype=bool)
    order = np.argsort(ids, axis=1, kind="stable")
    ordered = np.take_along_axis(ids, order, axis=1)
    fresh_sorted = np.ones(ids.shape, dtype=bool)
    fresh_sorted[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    fresh = np.empty_like(fresh_sorted)
    np.put_along_axis(fresh, order, fresh_sorted, axis=1)
    return fresh & (ids >= 0)


def hits_by_distance(
    found: np.ndarray, true_distances: np.ndarray, k: int, epsilon: float = EPSILON, ids: np.ndarray | None = None
) -> np.ndarray:
    """Per-query count of the first k returned points within the k-th true distance + epsilon.

    `found` holds the recomputed distances of the returned points (NaN for missing ones, which
    never count). `true_distances` holds the sorted true distances, at least k columns. With
    `ids`, a point returned twice counts once (ann-benchmarks refuses such answers; the harness
    fails their records, and the count stays honest in any case).
    """
    found = np.asarray(found, dtype=np.float64)[:, :k]
    threshold = np.asarray(true_distances, dtype=np.float64)[:, k - 1 : k] + epsilon
    with np.errstate(invalid="ignore"):
        hits = np.nan_to_num(found, nan=np.inf) <= threshold
    if ids is not None:
        hits &= first_occurrences(np.asarray(ids)[:, :k])
    return hits.sum(1)


def hits_by_id(ids: np.ndarray, true_ids: np.ndarray, k: int) -> np.ndarray:
    """Per-query count of the true k nearest ids found among the first k returned ids, each once."""
    ids = np.asarray(ids)[:, :k]
    truth = np.asarray(true_ids)[:, :k]
    hits = (ids[:, :, None] == truth[:, None, :]).any(axis=2) & first_occurrences(ids)
    return hits.sum(1)
