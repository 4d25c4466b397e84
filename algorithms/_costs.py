"""Work formulas several adapters' cost hints share (`algorithms.base.Cost`), in distance
computations. The constants were fitted once on the reference machine (2-core AMD EPYC, 1
thread, 50k-100k x 128 points) against the probe's units; the harness corrects the remaining
error as it measures (harness/plan/cost.py, harness/plan/progress.py).
"""
from __future__ import annotations

import math

#: distances per visited node of an HNSW walk, relative to M (hnswlib and FAISS alike)
HNSW_FACTOR = 1.1
#: k-means iterations of FAISS's IVF training (its ClusteringParameters for a coarse quantizer)
IVF_KMEANS_ITERS = 10
#: FAISS k-means samples at most this many points per centroid
POINTS_PER_CENTROID = 256


def graph_search(M: int, ef: int, n_train: int) -> float:
    """Distances of one HNSW search with beam `ef`: about HNSW_FACTOR x M x (ef + 2 ln N)
    (the beam's nodes on the bottom layer, the greedy descent through the upper layers)."""
    return HNSW_FACTOR * M * (ef + 2.0 * math.log(max(2, n_train)))


def graph_build(M: int, ef_construction: int, n_train: int) -> float:
    """Distances of inserting every point: one search with beam ef_construction each."""
    return n_train * graph_search(M, ef_construction, n_train)


def kmeans(n_train: int, count: int, iterations: int) -> float:
    """Distances of FAISS k-means: each iteration compares its sample with every centroid."""
    sample = min(n_train, POINTS_PER_CENTROID * count)
    return float(iterations) * sample * count
