"""hnswlib baseline: the graph index that tops most ann-benchmarks Pareto plots on CPU.

Run as its users run it: space 'l2' (squared distances, rooted on the way out; space 'ip' on
inner-product data, whose 1 - q.x becomes the harness's -q.x on the way out), level
generation seeded from the adapter's seed, hnswlib's own thread pool sized to `threads`.
hnswlib inserts in parallel, so two builds with the same seed are identical only with
threads = 1. It keeps no distance counters, so `dist_comps` stays None.
`ef` is set on the index once per query configuration, and one query per call (`search_each`)
times hnswlib's own `knn_query(q, k)` bare, taking the square roots once afterwards.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import hnswlib
import numpy as np

from harness.errors import ParameterError

from . import _costs
from .base import Adapter, Cost, Param, at_least, join_rows, time_each
from .registry import register


@register("hnswlib", description="hnswlib HNSW graph (M, ef_construction; query ef)")
class Hnswlib(Adapter):
    """hnswlib's HNSW: `M` links per node, `ef_construction` / `ef` beam widths."""

    build_params = {
        "M": Param(int, 16, "links per node (layer 0 keeps 2*M)", check=at_least(2)),
        "ef_construction": Param(int, 200, "beam width while inserting", check=at_least(1)),
    }
    query_params = {
        "ef": Param(int, 50, "beam width while searching; must be >= k", check=at_least(1)),
    }
    metrics = ("euclidean", "angular", "dot")

    @classmethod
    def check_config(cls, build: Mapping[str, Any], query: Mapping[str, Any], k: int, n_train: int, dimension: int) -> None:
        _refuse_beam_below_k(cls.name, "ef", query["ef"], k)

    @classmethod
    def cost(cls, build: Mapping[str, Any], query: Mapping[str, Any], n_train: int, dimension: int, k: int) -> Cost:
        """Graph walks: one per query with beam ef, one per inserted point with ef_construction."""
        return Cost(query={"scan": _costs.graph_search(build["M"], max(query["ef"], k), n_train)},
                    build={"scan": _costs.graph_build(build["M"], build["ef_construction"], n_train)})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._index: hnswlib.Index | None = None

    def _fit(self, X: np.ndarray) -> None:
        index = hnswlib.Index(space="ip" if self.metric == "dot" else "l2", dim=X.shape[1])
        index.init_index(
            max_elements=len(X),
            M=self.params["M"],
            ef_construction=self.params["ef_construction"],
            random_seed=self.seed,
        )
        index.set_num_threads(self.threads)
        index.add_items(X, np.arange(len(X)), num_threads=self.threads)
        self._index = index

    def _apply_query_params(self, values: Mapping[str, Any]) -> None:
        if self._index is not None:
            self._index.set_ef(values["ef"])

    def _check_k(self, k: int) -> None:
        _refuse_beam_below_k(self.name, "ef", self.query_values["ef"], k)

    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._index is not None, "fit must run before search"
        labels, squared = self._index.knn_query(Q, k=k, num_threads=self.threads)
        return labels.astype(np.int64), self._distances(squared)

    def _search_each(
        self, Q: np.ndarray, k: int, clock: Callable[[], int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """hnswlib's own `knn_query(q, k)` per query, timed bare (one row runs on one thread
        whatever `threads` says, as hnswlib decides for batches under 4 x threads rows)."""
        assert self._index is not None, "fit must run before search"
        labels, squared, latencies = time_each(self._index.knn_query, Q, k, clock)
        return join_rows(labels, k).astype(np.int64), self._distances(join_rows(squared, k)), latencies

    def _distances(self, raw: np.ndarray) -> np.ndarray:
        """hnswlib's distances as the harness's: roots of 'l2', and 'ip''s 1 - q.x as -q.x."""
        return (np.asarray(raw, dtype=np.float32) - 1.0) if self.metric == "dot" else _roots(raw)

    def index_bytes(self) -> int | None:
        """hnswlib's own size of the index (data, links and level lists), as it would save it."""
        if self._index is None:
            return None
        return int(self._index.index_file_size())


def _roots(squared: np.ndarray) -> np.ndarray:
    """hnswlib's 'l2' space returns squared distances: their roots, float32."""
    return np.sqrt(np.maximum(squared, 0.0)).astype(np.float32)


def _refuse_beam_below_k(owner: str, name: str, ef: int, k: int) -> None:
    if ef < k:
        raise ParameterError(
            f"{owner}: {name} = {ef} is smaller than k = {k}",
            f"the search beam must hold k results; use {name} >= {k} (or a smaller --count)",
        )
