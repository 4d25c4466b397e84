"""Distances as the datasets define them, and exact k-NN ground truth.

The harness supports three distances. Euclidean is the L2 norm. Angular is ann-benchmarks'
cosine distance 1 - cos(a, b); the loader normalises angular data to unit length, after which
Euclidean distance ranks points exactly as angular distance does (||a-b||^2 = 2 - 2 cos), so
adapters serving only Euclidean distance serve angular data too.

Dot is inner-product search: the vectors are stored as they are and the nearest neighbours are
the points of LARGEST inner product with the query. Its recorded distance is the negative inner
product -q.x, so that smaller is nearer here as for every other distance: ground truth ascends,
recall's threshold (k-th true distance + epsilon, `harness.hits`) and every sort in the harness
apply unchanged. Ties (equal inner products) go to the smaller id, as for the others. No
rescaling makes it Euclidean (norms differ), so an adapter serves it only where it says so
(`algorithms.base.Adapter.metrics`). ann-benchmarks itself has no dot metric: its
`lastfm-64-dot` file is stored transformed to an angular problem (see datasets.yaml).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

SUPPORTED = ("euclidean", "angular", "dot")


def normalise(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms == 0, 1, norms)


def row_distances(
    metric: str, queries: np.ndarray, points: np.ndarray, ids: np.ndarray, chunk: int = 1024
) -> np.ndarray:
    """Distance (float64) from query i to points[ids[i, j]]; NaN where ids is -1 or out of range.

    Computed in float64 from the vectors, never taken from an adapter, so every algorithm's
    answer is scored with the same arithmetic. Chunked over queries to bound memory.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) > chunk:
        return np.concatenate(
            [row_distances(metric, queries[part], points, ids[part], chunk) for part in _chunks(len(ids), chunk)]
        )
    valid = (ids >= 0) & (ids < len(points))
    safe = np.where(valid, ids, 0)
    q = np.asarray(queries, dtype=np.float64)[:, None, :]
    x = np.asarray(points[safe], dtype=np.float64)  # the rows named, never the whole (mapped) train
    if metric == "euclidean":
        d = np.sqrt(((x - q) ** 2).sum(-1))
    elif metric == "angular":
        qn = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-300)
        xn = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-300)
        d = 1.0 - (qn * xn).sum(-1)
    elif metric == "dot":
        d = -(x * q).sum(-1)
    else:
        raise ValueError(f"unsupported distance {metric!r}; supported: {', '.join(SUPPORTED)}")
    return np.where(valid, d, np.nan)


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def exact_knn(
    metric: str, train: np.ndarray, test: np.ndarray, k: int, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of each test row: (ids int64 (nq, k), distances float64 (nq, k)).

    Candidates are ranked in float64 by squared distance (angular: on normalised vectors; dot:
    by the negative inner product), then distances are recomputed in the dataset's metric.
    Ties are broken by the smaller id.
    """
    if metric not in SUPPORTED:
        raise ValueError(f"unsupported distance {metric!r}; supported: {', '.join(SUPPORTED)}")
    X = np.asarray(train, dtype=np.float64)
    Q = np.asarray(test, dtype=np.float64)
    if metric == "angular":
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-300)
        Q = Q / np.maximum(np.linalg.norm(Q, axis=1, keepdims=True), 1e-300)
    k = min(k, len(X))
    x_sq = (X**2).sum(1) if metric != "dot" else np.zeros(len(X))
    ids = np.empty((len(Q), k), dtype=np.int64)
    for part in _chunks(len(Q), chunk):
        q = Q[part]
        d2 = x_sq[None, :] - 2.0 * q @ X.T
        if metric != "dot":
            d2 += (q**2).sum(1)[:, None]
        top = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < len(X) else np.tile(np.arange(len(X)), (len(q), 1))
        top_d = np.take_along_axis(d2, top, 1)
        order = np.lexsort((top, top_d), axis=1)
        ids[part] = np.take_along_axis(top, order, 1)
    return ids, row_distances(metric, test, train, ids)
