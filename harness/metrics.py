"""Quality and speed metrics computed from an adapter's answers and the run's clocks.

Recall follows ann-benchmarks' definition, which counts ties by distance rather than by id:
a returned point counts for recall@k when its true distance to the query is within the k-th
true distance + EPSILON. Distances are recomputed here from the returned ids (float64), never
taken from the adapter. The id-based recall is reported beside it.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

EPSILON = 1e-3


def recall_by_distance(found: np.ndarray, true_distances: np.ndarray, k: int, epsilon: float = EPSILON) -> np.ndarray:
    """Per-query fraction of the first k returned points within the k-th true distance + epsilon.

    `found` holds the recomputed distances of the returned points (NaN for missing ones, which
    never count). `true_distances` holds the sorted true distances, at least k columns.
    """
    found = np.asarray(found, dtype=np.float64)[:, :k]
    threshold = np.asarray(true_distances, dtype=np.float64)[:, k - 1 : k] + epsilon
    with np.errstate(invalid="ignore"):
        hits = np.nan_to_num(found, nan=np.inf) <= threshold
    return hits.sum(1) / k


def recall_by_id(ids: np.ndarray, true_ids: np.ndarray, k: int) -> np.ndarray:
    """Per-query fraction of the true k nearest ids found among the first k returned ids."""
    ids = np.asarray(ids)[:, :k]
    truth = np.asarray(true_ids)[:, :k]
    hits = (ids[:, :, None] == truth[:, None, :]).any(axis=2) & (ids >= 0)
    return hits.sum(1) / k


def quality(
    ids: np.ndarray, distances: np.ndarray, true_ids: np.ndarray, true_distances: np.ndarray, k: int
) -> dict[str, float]:
    """recall@1 and recall@k, by distance (ties count) and by id."""
    return {
        "recall_at_1": float(recall_by_distance(distances, true_distances, 1).mean()),
        "recall_at_1_id": float(recall_by_id(ids, true_ids, 1).mean()),
        "recall_at_k": float(recall_by_distance(distances, true_distances, k).mean()),
        "recall_at_k_id": float(recall_by_id(ids, true_ids, k).mean()),
    }


def _median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64)))


def throughput(n_queries: int, wall: Sequence[float], cpu: Sequence[float], gpu: Sequence[float] | None) -> dict[str, Any]:
    """Queries per second measured per repetition (median and best) and seconds per query.

    QPS is n_queries / the measured batch wall time of each repetition, never derived from a
    latency. Per-query CPU and GPU seconds are the medians over repetitions divided by n.
    """
    qps = [n_queries / w if w > 0 else float("inf") for w in wall]
    return {
        "qps": _median(qps),
        "qps_best": float(max(qps)),
        "qps_runs": qps,
        "query_wall_s": _median(wall) / n_queries,
        "query_cpu_s": _median(cpu) / n_queries,
        "query_gpu_s": _median(gpu) / n_queries if gpu else None,
        "batch_wall_s": list(wall),
        "batch_cpu_s": list(cpu),
        "batch_gpu_s": list(gpu) if gpu else None,
    }


def latency_percentiles(latencies: np.ndarray | None) -> dict[str, float | None]:
    if latencies is None or len(latencies) == 0:
        return {"latency_p50_s": None, "latency_p95_s": None, "latency_p99_s": None}
    p50, p95, p99 = np.percentile(np.asarray(latencies, dtype=np.float64), [50, 95, 99])
    return {"latency_p50_s": float(p50), "latency_p95_s": float(p95), "latency_p99_s": float(p99)}


def per_query_summary(iterations: np.ndarray | None, dist_comps: np.ndarray | None) -> dict[str, float | None]:
    """Iteration statistics (mean, median, p95, max) and mean distance computations per query."""
    out: dict[str, float | None] = dict.fromkeys(
        ["iterations_mean", "iterations_median", "iterations_p95", "iterations_max", "dist_comps_mean"]
    )
    if iterations is not None and len(iterations):
        it = np.asarray(iterations, dtype=np.float64)
        out.update(
            iterations_mean=float(it.mean()),
            iterations_median=float(np.median(it)),
            iterations_p95=float(np.percentile(it, 95)),
            iterations_max=float(it.max()),
        )
    if dist_comps is not None and len(dist_comps):
        out["dist_comps_mean"] = float(np.asarray(dist_comps, dtype=np.float64).mean())
    return out


def position_to_true_nn(positions: np.ndarray, train: np.ndarray, true_ids: np.ndarray) -> np.ndarray:
    """Per-query float64 distance from a final position to the query's true nearest neighbour.

    For methods that move a point (the potential method): the seed note's own success measure
    is the fraction of these under 1e-3 in the data's units. `true_ids` is (Q,) or the (Q, K)
    ground-truth table, whose first column is used.
    """
    ids = np.asarray(true_ids)
    ids = ids[:, 0] if ids.ndim == 2 else ids
    nearest = np.asarray(train, dtype=np.float64)[ids]
    return np.linalg.norm(np.asarray(positions, dtype=np.float64) - nearest, axis=1)


def merge(*parts: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(part)
    return merged
