"""Quality and speed metrics computed from an adapter's answers and the run's clocks.

Recall follows ann-benchmarks' definition, which counts ties by distance rather than by id:
a returned point counts for recall@k when its true distance to the query is within the k-th
true distance + EPSILON. Distances are recomputed here from the returned ids (float64), never
taken from the adapter. The id-based recall is reported beside it. The hit rule itself lives in
`harness.hits`, shared with the report's per-query statistics.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from harness.hits import EPSILON, first_occurrences, hits_by_distance, hits_by_id



def recall_by_distance(
    found: np.ndarray, true_distances: np.ndarray, k: int, epsilon: float = EPSILON, ids: np.ndarray | None = None
) -> np.ndarray:
    """Per-query recall@k by distance (ties count), see `hits_by_distance`."""
    return hits_by_distance(found, true_distances, k, epsilon, ids) / k


def recall_by_id(ids: np.ndarray, true_ids: np.ndarray, k: int) -> np.ndarray:
    """Per-query fraction of the true k nearest ids found among the first k returned ids, each once."""
    return hits_by_id(ids, true_ids, k) / k


def mean_recall(hits: np.ndarray, k: int) -> float:
    """Total hits / (queries x k), computed as ann-benchmarks does (mean of counts, then / k)."""
    return float(np.mean(hits) / float(k))


def quality(
    ids: np.ndarray, distances: np.ndarray, true_ids: np.ndarray, true_distances: np.ndarray, k: int
) -> dict[str, float]:
    """recall@1 and recall@k, by distance (ties count) and by id; epsilon recall@k at 0.01 and
    0.1; the relative error of the k returned distances."""
    return {
        "recall_at_1": mean_recall(hits_by_distance(distances, true_distances, 1, ids=ids), 1),
        "recall_at_1_id": mean_recall(hits_by_id(ids, true_ids, 1), 1),
        "recall_at_k": mean_recall(hits_by_distance(distances, true_distances, k, ids=ids), k),
        "recall_at_k_id": mean_recall(hits_by_id(ids, true_ids, k), k),
        "recall_at_k_eps001": mean_recall(epsilon_hits(distances, true_distances, k, 0.01, ids), k),
        "recall_at_k_eps01": mean_recall(epsilon_hits(distances, true_distances, k, 0.1, ids), k),
        "rel_error_at_k": relative_error(distances, true_distances, k),
    }


def epsilon_hits(found: np.ndarray, true_distances: np.ndarray, k: int, eps: float, ids: np.ndarray) -> np.ndarray:
    """Per-query count of the first k returned points within (1 + eps) x the k-th true distance
    (ann-benchmarks' epsilon recall), each point once. A negative k-th distance (dot data: -q.x)
    is loosened the same way, to d_k + eps |d_k| = (1 - eps) d_k."""
    found = np.asarray(found, dtype=np.float64)[:, :k]
    kth = np.asarray(true_distances, dtype=np.float64)[:, k - 1 : k]
    threshold = np.where(kth >= 0, kth * (1.0 + eps), kth * (1.0 - eps))
    with np.errstate(invalid="ignore"):
        hits = (np.nan_to_num(found, nan=np.inf) <= threshold) & first_occurrences(np.asarray(ids)[:, :k])
    return hits.sum(1)


def relative_error(found: np.ndarray, true_distances: np.ndarray, k: int) -> float:
    """Sum of the k returned distances over the sum of the k true ones, minus 1, over all queries.

    Truncated to k on both sides: ann-benchmarks' `rel` divides by the sum of all 100 true
    distances, which gives an exact search of k = 10 a "relative error" of about 0.06 (or, read as
    their ratio, far below 1). Missing answers (-1, NaN) make the error infinite (reported null).
    """
    returned = np.asarray(found, dtype=np.float64)[:, :k].sum()
    true = np.asarray(true_distances, dtype=np.float64)[:, :k].sum()
    if not np.isfinite(returned) or true <= 0:
        return float("nan") if true <= 0 else float("inf")
    return float(returned / true - 1.0)


def repeated_id(ids: np.ndarray) -> tuple[int, int] | None:
    """(query row, id) of the first id an answer repeats (-1 padding aside), or None."""
    ids = np.asarray(ids)
    repeats = ~first_occurrences(ids) & (ids >= 0)
    if not repeats.any():
        return None
    row, col = np.argwhere(repeats)[0]
    return int(row), int(ids[row, col])


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
        return {"latency_p50_s": None, "latency_p95_s": None, "latency_p99_s": None, "latency_p999_s": None}
    p50, p95, p99, p999 = np.percentile(np.asarray(latencies, dtype=np.float64), [50, 95, 99, 99.9])
    return {"latency_p50_s": float(p50), "latency_p95_s": float(p95), "latency_p99_s": float(p99), "latency_p999_s": float(p999)}


def batch_latency_percentiles(latencies: np.ndarray | None) -> dict[str, float | None]:
    """The median and 99th percentile of the per-batch latencies of a run cut into batches
    (seconds per `search` call of one batch); None when the run was not cut."""
    if latencies is None or len(latencies) == 0:
        return {"batch_latency_p50_s": None, "batch_latency_p99_s": None}
    p50, p99 = np.percentile(np.asarray(latencies, dtype=np.float64), [50, 99])
    return {"batch_latency_p50_s": float(p50), "batch_latency_p99_s": float(p99)}


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
    nearest = np.asarray(train[ids], dtype=np.float64)  # the rows named, never a float64 copy of all of train
    return np.linalg.norm(np.asarray(positions, dtype=np.float64) - nearest, axis=1)


def merge(*parts: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(part)
    return merged
