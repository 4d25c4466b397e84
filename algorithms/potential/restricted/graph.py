"""Graph-local potential: the sum runs over a small frontier of data points and their
neighbours in a k-nearest-neighbour graph of the data.

Build: an hnswlib index over the data (M, ef_construction, seeded), queried with every data
point for its graph_k nearest others (beam graph_ef): that adjacency (n x graph_k) is the
graph. `entries` k-means centroids, each replaced by its nearest data point, are the entry
points. Search: a query's frontier starts as its `frontier` nearest entry points (`entries`
distances). Each step sums the potential over frontier + neighbours (duplicates removed),
and the new frontier is the `frontier` largest contributors at the current position.

The snap's pool at a position is where the frontier settles there (`_pool_at` walks it), so
the control (`ascent=none`: the position stays at the query) is a graph search from the query
at the same frontier width, and the climb is measured against that.

With `settle` (default) a query's position waits while its frontier is still changing: the
frontier first walks the graph towards the position (a beam search driven by the potential's
own ranking), and only a settled neighbourhood moves the position. Without it, the first
step's softmax sees only the entry points and mean-shift jumps onto the nearest of them, far
from the query: the climb then converges there. Both are kept so that the difference can be
measured. Every candidate distance of every step is counted, also those recomputed at an
unchanged position (a cache would save them; `new_dist_comps` reports what it would cost).
"""
from __future__ import annotations

from typing import Any, Mapping

import hnswlib
import numpy as np
import torch

from algorithms import _costs
from algorithms.base import Param, at_least
from harness.errors import ParameterError

from .base import RestrictedAdapter, make_variant, tensor_bytes
from .candidates import evaluate_on_candidates, unique_rows
from ..ascent import StepResult, fit_width
from .ivf import KMEANS_ITERS, kmeans_centroids, nearest_rows


def knn_graph(X: np.ndarray, graph_k: int, M: int, ef_construction: int, ef: int, seed: int, threads: int) -> np.ndarray:
    """(n x graph_k) ids of each point's nearest other points, from an hnswlib index."""
    n = len(X)
    index = hnswlib.Index(space="l2", dim=X.shape[1])
    index.init_index(max_elements=n, M=M, ef_construction=ef_construction, random_seed=seed)
    index.set_num_threads(threads)
    index.add_items(X, np.arange(n), num_threads=threads)
    index.set_ef(max(ef, graph_k + 1))
    labels, _ = index.knn_query(X, k=min(n, graph_k + 1), num_threads=threads)
    labels = labels.astype(np.int64)
    drop = labels == np.arange(n)[:, None]
    no_self = ~drop.any(1)
    drop[no_self, -1] = True  # the point itself was not returned: drop the farthest instead
    keep = labels[~drop].reshape(n, labels.shape[1] - 1)
    return keep


class GraphLocal(RestrictedAdapter):
    """Potential summed over a frontier of data points and their k-NN graph neighbours."""

    structure_build = {
        "graph_k": Param(int, 16, "neighbours per point in the k-NN graph", check=at_least(1)),
        "M": Param(int, 16, "hnswlib links per node (graph builder)", check=at_least(2)),
        "ef_construction": Param(int, 100, "hnswlib insertion beam (graph builder)", check=at_least(1)),
        "graph_ef": Param(int, 64, "hnswlib beam when finding each point's graph_k neighbours", check=at_least(1)),
        "entries": Param(int, 32, "k-means centroids whose nearest data points are the entry points", check=at_least(1)),
    }
    structure_query = {
        "frontier": Param(int, 8, "data points kept (the largest contributors); each step sums them and their neighbours", check=at_least(1)),
        "settle": Param(bool, True, "hold the position until the frontier stops changing", None),
    }

    @classmethod
    def points_per_evaluation(cls, build: Mapping[str, Any], query: Mapping[str, Any], n_train: int) -> tuple[float, float]:
        """The frontier and its graph neighbours; gathering them and walking the frontier costs
        about 50 distances' worth per point (measured at 30k and 100k x 128)."""
        points = float(query["frontier"] * (build["graph_k"] + 1))
        return points, 50.0 * points

    @classmethod
    def structure_work(cls, build: Mapping[str, Any], n_train: int) -> dict[str, float]:
        """An hnswlib build, a search from every point (twice an ordinary search's cost,
        measured at 100k: k = graph_k + 1 answers each), and k-means for the entry points."""
        graph = _costs.graph_build(build["M"], build["ef_construction"], n_train)
        graph += 2.0 * n_train * _costs.graph_search(build["M"], max(build["graph_ef"], build["graph_k"] + 1), n_train)
        return {"scan": graph, "matmul": _costs.kmeans(n_train, build["entries"], KMEANS_ITERS) + n_train * build["entries"]}

    @classmethod
    def check_config(cls, build: Mapping[str, Any], query: Mapping[str, Any], k: int, n_train: int, dimension: int) -> None:
        entries = min(build["entries"], n_train) if n_train else build["entries"]
        if query["frontier"] > entries:
            raise ParameterError(
                f"{cls.name}: frontier = {query['frontier']} is larger than the entry points ({entries})",
                "the frontier starts as the nearest entry points; use frontier <= entries",
            )

    def _build_structure(self, X: torch.Tensor) -> None:
        p = self.params
        host = X.float().cpu().numpy()
        graph_k = min(p["graph_k"], len(host) - 1)
        adjacency = knn_graph(host, graph_k, p["M"], p["ef_construction"], p["graph_ef"], self.seed, self.threads)
        self._graph = torch.as_tensor(adjacency, device=X.device)
        centroids = torch.as_tensor(kmeans_centroids(host, p["entries"], self.seed, self.threads))
        centroids = centroids.to(device=X.device, dtype=X.dtype)
        self._entries = torch.unique(nearest_rows(X, self._sq, centroids, 1)[:, 0])

    def _prepare(self, q: torch.Tensor) -> torch.Tensor:
        entries = self._X[self._entries]
        width = min(self.query_values["frontier"], len(self._entries))
        picks = nearest_rows(entries, (entries * entries).sum(1), q, width)
        self._frontier = self._entries[picks]
        self._last_pos = torch.full_like(q, float("nan"))
        self._seen = torch.zeros((len(q), 0), dtype=torch.long, device=q.device)
        self._new = torch.zeros(len(q), dtype=torch.float64, device=q.device)
        return torch.full((len(q),), float(len(self._entries)), dtype=torch.float64, device=q.device)

    def _step(self, positions: torch.Tensor, active: torch.Tensor, track_m: int) -> StepResult:
        result, changed = self._walk(positions, active, track_m)
        return result._replace(hold=changed if self.query_values["settle"] else None)

    def _pool_at(self, positions: torch.Tensor, rows: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The pool at fixed positions: walk the frontier there until it settles (a beam search over
        the graph ranked by the potential, i.e. by distance; at most max_iters evaluations, each
        counted), then its top-m. For the control (no climb) this is graph search from the query."""
        pool = torch.full((len(rows), m), -1, dtype=torch.long, device=positions.device)
        cost = torch.zeros(len(rows), dtype=torch.float64, device=positions.device)
        walking = torch.arange(len(rows), device=positions.device)
        for _ in range(self.query_values["max_iters"]):
            result, changed = self._walk(positions[walking], rows[walking], m)
            pool[walking] = fit_width(result.evaluation.top_ids, m)
            cost[walking] += result.cost.to(cost.dtype)
            walking = walking[changed]
            if len(walking) == 0:
                break
        return pool, cost

    def _walk(self, positions: torch.Tensor, active: torch.Tensor, track_m: int) -> tuple[StepResult, torch.Tensor]:
        """One evaluation over frontier + neighbours; the new frontier; which frontiers changed."""
        front = self._frontier[active]
        ids = torch.cat([front, self._graph[front].reshape(len(front), -1)], 1)
        cand, valid = unique_rows(ids, torch.ones_like(ids, dtype=torch.bool), self.n_train)
        width = front.shape[1]
        ev = evaluate_on_candidates(
            self.potential_impl, positions, self._X, self._sq, cand, valid, self.hyper(), max(track_m, width),
            self.query_values["memory_mb"],
        )
        new_front = ev.top_ids[:, :width]
        new_front = torch.where(new_front >= 0, new_front, front)  # -1: fewer candidates than the frontier
        changed = (new_front.sort(1).values != front.sort(1).values).any(1)
        self._frontier[active] = new_front
        self._count_new(positions, active, cand, valid)
        ev.top_ids = ev.top_ids[:, :track_m] if track_m else None
        return StepResult(ev, valid.sum(1)), changed

    def _count_new(self, positions: torch.Tensor, active: torch.Tensor, cand: torch.Tensor, valid: torch.Tensor) -> None:
        """Distances a cache would still compute: all after a move, else those not seen yet."""
        same = (positions == self._last_pos[active]).all(1)
        seen = self._seen[active] if self._seen.shape[1] else cand[:, :0]
        if seen.shape[1]:
            at = torch.searchsorted(seen, cand).clamp_max(seen.shape[1] - 1)
            known = (seen.gather(1, at) == cand) & same[:, None]
        else:
            known = torch.zeros_like(valid)
        self._new[active] += (valid & ~known).sum(1).double()
        width = max(self._seen.shape[1], cand.shape[1])
        self._seen = _widen(self._seen, width)
        self._seen[active] = _widen(torch.where(valid, cand, self.n_train).sort(1).values, width)
        self._last_pos[active] = positions

    def _extra_stats(self) -> dict[str, np.ndarray]:
        return {"new_dist_comps": self._new.cpu().numpy()}

    def _scalar_stats(self) -> dict[str, float]:
        return {"graph_k": float(self._graph.shape[1]), "entry_points": float(len(self._entries))}

    def _structure_bytes(self) -> int:
        return tensor_bytes(self._graph, self._entries)


def _widen(ids: torch.Tensor, width: int) -> torch.Tensor:
    """Sorted id rows padded to `width` by repeating their last id (keeps rows sorted)."""
    if ids.shape[1] >= width:
        return ids
    if ids.shape[1] == 0:
        return torch.zeros((len(ids), width), dtype=torch.long, device=ids.device)
    return torch.cat([ids, ids[:, -1:].expand(len(ids), width - ids.shape[1])], 1)


GAUSSIAN_GRAPH = make_variant(
    GraphLocal,
    "gaussian",
    "potential-gaussian-graph",
    sweep={
        "build": {"graph_k": [16], "entries": [32]},
        "query": {"ascent": ["meanshift"], "beta": [300.0], "frontier": [4, 8, 16, 32], "max_iters": [60]},
    },
    doc="Gaussian potential summed over a frontier and its k-NN graph neighbours (mean-shift)",
)
