"""FAISS baselines: exact flat search, IVF-Flat, IVF-PQ and HNSW-Flat (CPU).

These are the reference points the gradient-potential method is compared with, so they are
run the way FAISS users run them: default training (k-means seeded from the adapter's seed,
so that two builds with the same seed are identical), squared-L2 metric with the square root
taken on the way out, and FAISS's own thread pool sized to the adapter's `threads`. On
inner-product (`dot`) data, flat and IVF-Flat use METRIC_INNER_PRODUCT (the IVF's coarse
quantizer too, as FAISS advises) and return -q.x; IVF-PQ and HNSW serve L2 only.

Distance computations come from FAISS's global counters (`indexIVF_stats`, `hnsw_stats`),
which count in aggregate over a search call: `SearchStats.dist_comps` therefore holds the
*mean* per query repeated for every query, not a per-query count. One query per call
(`search_each`) reads them once for the whole loop too, so both modes report the same numbers,
and the loop times FAISS's own `index.search(q, k)` bare: query parameters are pushed into the
index by `set_query_params`, the thread scope is entered once, and the square roots are taken
once for all queries afterwards.
"""
from __future__ import annotations

from typing import Any, Callable, ContextManager, Mapping

import faiss
import numpy as np

from harness.errors import ParameterError

from ._threads import faiss_threads
from . import _costs
from .base import Adapter, Cost, Param, at_least, in_range, positive
from .registry import register


def _to_distances(squared: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """FAISS returns squared L2 (and a huge sentinel where no result was found): take the root."""
    dists = np.sqrt(np.maximum(squared, 0.0)).astype(np.float32)
    dists[ids < 0] = np.inf
    return dists


def _negated(inner: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """FAISS's inner-product metric returns q.x, largest first: the harness's dot distance -q.x."""
    dists = (-inner).astype(np.float32)
    dists[ids < 0] = np.inf
    return dists


def _divisors(d: int) -> list[int]:
    return [m for m in range(1, d + 1) if d % m == 0]


class _FaissAdapter(Adapter):
    """Shared lifecycle: build, train and add under FAISS threads; search with counters."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._index: Any = None
        self._serialized_bytes: int | None = None

    def _make_index(self, X: np.ndarray) -> Any:
        """Return an untrained index for `X`; raise ParameterError if the build params do not fit it."""
        raise NotImplementedError

    @property
    def faiss_metric(self) -> int:
        """FAISS's metric for the dataset's distance: inner product for dot, else squared L2."""
        return faiss.METRIC_INNER_PRODUCT if self.metric == "dot" else faiss.METRIC_L2

    def _distances(self, raw: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return _negated(raw, ids) if self.metric == "dot" else _to_distances(raw, ids)

    def _apply_query_params(self, values: Mapping[str, Any]) -> None:
        if self._index is not None:
            self._push_query_params(values)

    def _push_query_params(self, values: Mapping[str, Any]) -> None:
        """Set the query parameters on the built index (once per query configuration)."""

    def _reset_counters(self) -> None:
        """Zero the FAISS counters this index family updates."""

    def _read_counters(self, n_queries: int, k: int) -> np.ndarray | None:
        """Mean distance computations per query since `_reset_counters`, one entry per query."""
        return None

    def _search_scope(self) -> ContextManager[Any]:
        return faiss_threads(self.threads)

    def _fit(self, X: np.ndarray) -> None:
        with faiss_threads(self.threads):
            index = self._make_index(X)
            if not index.is_trained:
                index.train(X)
            index.add(X)
        self._index = index
        self._serialized_bytes = None

    def _searched_index(self) -> Any:
        """The index a search runs on (a wrapper may be bypassed for some query values)."""
        return self._index

    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self._reset_counters()
        squared, ids = self._searched_index().search(Q, k)
        self._stats.dist_comps = self._read_counters(len(Q), k)
        return ids, self._distances(squared, ids)

    def _search_each(
        self, Q: np.ndarray, k: int, clock: Callable[[], int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """FAISS's own `index.search(q, k, D=, I=)` per query, timed bare, writing straight into
        its row of the answer (no allocation, no gathering afterwards); counters read once for all."""
        n = len(Q)
        squared, ids = np.empty((n, k), dtype=np.float32), np.empty((n, k), dtype=np.int64)
        search = self._searched_index().search
        latencies: list[int] = []
        note = latencies.append
        self._reset_counters()
        for q, d, i in zip(Q[:, None, :], squared[:, None, :], ids[:, None, :]):
            start = clock()
            search(q, k, D=d, I=i)
            end = clock()
            note(end - start)
        self._stats.dist_comps = self._read_counters(n, k)
        return ids, self._distances(squared, ids), np.array(latencies, dtype=np.int64)

    @property
    def faiss_index(self) -> Any:
        """The built FAISS index (None before `fit`), for an adapter that searches it its own way."""
        return self._index

    def index_bytes(self) -> int | None:
        """Size of the serialized index: what FAISS would write to disk, close to what it holds."""
        if self._index is None:
            return None
        if self._serialized_bytes is None:
            self._serialized_bytes = int(faiss.serialize_index(self._index).size)
        return self._serialized_bytes


@register("faiss-flat", description="FAISS IndexFlatL2 (IndexFlatIP on dot data): exact brute force (BLAS), no parameters")
class FaissFlat(_FaissAdapter):
    """FAISS exact search; the CPU reference for what brute force costs with a tuned BLAS."""

    metrics = ("euclidean", "angular", "dot")

    def _make_index(self, X: np.ndarray) -> Any:
        return faiss.IndexFlat(X.shape[1], self.faiss_metric)

    @classmethod
    def cost(cls, build: Mapping[str, Any], query: Mapping[str, Any], n_train: int, dimension: int, k: int) -> Cost:
        """A BLAS product and a heap per query and point (FAISS takes the BLAS path for batches
        of nq x d >= 128,000 floats; smaller batches cost up to ten times more per query)."""
        return Cost(query={"matmul": 1.0 * n_train}, build={"scan": float(n_train)})

    def _read_counters(self, n_queries: int, k: int) -> np.ndarray:
        return np.full(n_queries, float(self.n_train))


def _refuse_nlist_above_n(owner: str, nlist: int, n_train: int) -> None:
    if nlist > n_train:
        raise ParameterError(
            f"{owner}: nlist = {nlist} is larger than the number of training points ({n_train})",
            f"k-means cannot make more lists than points; use nlist <= {n_train} (about sqrt(n) = {int(n_train**0.5)} is usual)",
        )


def _refuse_nprobe_above_nlist(owner: str, nprobe: int, nlist: int) -> None:
    if nprobe > nlist:
        raise ParameterError(
            f"{owner}: nprobe = {nprobe} is larger than nlist = {nlist}",
            f"nprobe counts lists to scan; use 1 <= nprobe <= {nlist} (nprobe = nlist scans everything)",
        )


def _refuse_ef_search_below_k(owner: str, ef: int, k: int) -> None:
    if ef < k:
        raise ParameterError(
            f"{owner}: efSearch = {ef} is smaller than k = {k}",
            f"the search beam must hold k results; use efSearch >= {k} (or a smaller --count)",
        )


class _IVFAdapter(_FaissAdapter):
    """What IVF-Flat and IVF-PQ share: `nlist` k-means cells, `nprobe` of them scanned per query.

    Not registered itself: the registry names a class after its first registration, so the
    registered IVF variants are siblings rather than subclasses of one another.
    dist_comps counts the `nlist` coarse-quantizer distances plus the list entries scanned,
    so it can be compared with brute force's n per query.
    """

    build_params = {
        "nlist": Param(int, 100, "number of k-means cells (inverted lists)", check=at_least(1)),
    }
    query_params = {
        "nprobe": Param(int, 1, "cells scanned per query; nprobe = nlist is exact", check=at_least(1)),
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: kept here too so the coarse quantizer outlives any SWIG ownership mix-up
        self._quantizer: Any = None

    def _make_quantizer_and_check(self, X: np.ndarray) -> Any:
        _refuse_nlist_above_n(self.name, self.params["nlist"], len(X))
        self._quantizer = faiss.IndexFlat(X.shape[1], self.faiss_metric)  # dot: lists by largest q.centroid
        return self._quantizer

    def _seed_training(self, index: Any) -> Any:
        index.cp.seed = self.seed
        return index

    @classmethod
    def check_config(cls, build: Mapping[str, Any], query: Mapping[str, Any], k: int, n_train: int, dimension: int) -> None:
        _refuse_nprobe_above_nlist(cls.name, query["nprobe"], build["nlist"])

    def check_query_params(self, values: Mapping[str, Any]) -> None:
        _refuse_nprobe_above_nlist(self.name, values["nprobe"], self.params["nlist"])

    def _push_query_params(self, values: Mapping[str, Any]) -> None:
        self._index.nprobe = values["nprobe"]

    def _reset_counters(self) -> None:
        faiss.cvar.indexIVF_stats.reset()

    def _read_counters(self, n_queries: int, k: int) -> np.ndarray:
        scanned = faiss.cvar.indexIVF_stats.ndis / max(1, n_queries)
        return np.full(n_queries, scanned + self.params["nlist"])

    @classmethod
    def cost(cls, build: Mapping[str, Any], query: Mapping[str, Any], n_train: int, dimension: int, k: int) -> Cost:
        """nlist centroid distances and the probed lists' nprobe / nlist x N entries per query;
        k-means training, every point assigned to a list. IVF-PQ entries are table look-ups
        (m bytes instead of d floats), plus a table of 256 x d per probed list, and the exact re-rank."""
        nlist, nprobe = build["nlist"], min(query["nprobe"], build["nlist"])
        scanned = n_train * nprobe / nlist
        train = _costs.kmeans(n_train, nlist, _costs.IVF_KMEANS_ITERS) + n_train * nlist
        if "nbits" not in build:
            return Cost(query={"matmul": float(nlist), "scan": 1.3 * scanned}, build={"matmul": train, "scan": float(n_train)})
        codes = 2 * 256 * 25.0 * min(n_train, 256 * 2 ** build["nbits"]) + n_train * 2 ** build["nbits"]
        m = build["m"] or max(1, dimension // 4)
        # the exact re-rank (refine: flat, k_factor > 0): k x k_factor full distances at most
        rerank = float(min(k * (query.get("k_factor") or 0), scanned)) if build.get("refine") == "flat" else 0.0
        return Cost(query={"matmul": nlist + nprobe * 2 ** build["nbits"], "scan": scanned * 4.0 * m / dimension + rerank},
                    build={"matmul": train + codes, "scan": float(n_train)})


@register("faiss-ivf", description="FAISS IVF-Flat: k-means lists, exact distances within the probed lists")
class FaissIVF(_IVFAdapter):
    """Inverted file holding the exact vectors: distances within probed lists are exact."""

    metrics = ("euclidean", "angular", "dot")

    def _make_index(self, X: np.ndarray) -> Any:
        quantizer = self._make_quantizer_and_check(X)
        index = faiss.IndexIVFFlat(quantizer, X.shape[1], self.params["nlist"], self.faiss_metric)
        return self._seed_training(index)


@register("faiss-ivfpq", description="FAISS IVF-PQ: k-means lists holding product-quantized codes, optional exact re-rank")
class FaissIVFPQ(_IVFAdapter):
    """Inverted file with product-quantized residuals: `m` sub-quantizers of `nbits` bits each.

    Without a refine stage, returned distances are PQ approximations (the harness recomputes
    true ones from the ids) and the order is the codes' order: on 1M SIFT vectors recall@1 stays
    near 0.2 at every nprobe. IVF-PQ at scale is run with a refine stage (FAISS's
    IndexRefineFlat, ann-benchmarks' IVF-PQ configurations): `refine = flat` keeps the float32
    vectors beside the codes and, for `k_factor` >= 1, re-ranks the top k * k_factor PQ
    candidates of each query with exact distances; `k_factor = 0` returns the PQ answer as is.
    The index then holds the vectors too, and `index_bytes` says so.

    dist_comps counts the `nlist` coarse distances, the code distances (table look-ups,
    cheaper than exact ones) of the scanned lists, and the exact re-rank distances, counted as
    min(k * k_factor, mean codes scanned): an upper bound where some queries' probed lists hold
    fewer candidates than that.
    """

    build_params = {
        **_IVFAdapter.build_params,
        "m": Param(
            (int, type(None)),
            None,
            "sub-quantizers, must divide d; None picks the divisor of d closest to d/4 (4-dim sub-vectors)",
            check=positive,
        ),
        "nbits": Param(int, 8, "bits per sub-quantizer code (2**nbits centroids each)", check=in_range(1, 16)),
        "refine": Param(
            str, "none", "re-rank stage: 'flat' also keeps the float32 vectors to re-rank with exact distances (k_factor)",
            choices=("none", "flat"),
        ),
    }
    query_params = {
        **_IVFAdapter.query_params,
        "k_factor": Param(
            int, 0, "re-rank the top k * k_factor PQ candidates with exact distances (needs refine = flat); 0: PQ order as is",
            check=at_least(0),
        ),
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ivfpq: Any = None  # the IVF-PQ index itself (inside the refine wrapper, when there is one)

    @classmethod
    def check_config(cls, build: Mapping[str, Any], query: Mapping[str, Any], k: int, n_train: int, dimension: int) -> None:
        super().check_config(build, query, k, n_train, dimension)
        _refuse_k_factor_without_refine(cls.name, query["k_factor"], build["refine"])

    def check_query_params(self, values: Mapping[str, Any]) -> None:
        super().check_query_params(values)
        _refuse_k_factor_without_refine(self.name, values["k_factor"], self.params["refine"])

    def _sub_quantizers(self, d: int) -> int:
        m = self.params["m"]
        allowed = _divisors(d)
        if m is None:
            return min(allowed, key=lambda c: (abs(c - d / 4), c))
        if d % m:
            raise ParameterError(
                f"{self.name}: parameter 'm' = {m} does not divide the dimension d = {d}",
                f"m splits each vector into m equal sub-vectors; allowed for d = {d}: {', '.join(map(str, allowed))}",
            )
        return m

    def _make_index(self, X: np.ndarray) -> Any:
        d = X.shape[1]
        m, nbits = self._sub_quantizers(d), self.params["nbits"]
        self.params["m"] = m  # the label shows the m actually used when it was chosen automatically
        if 2**nbits > len(X):
            raise ParameterError(
                f"{self.name}: nbits = {nbits} needs at least 2**{nbits} = {2**nbits} training points, got {len(X)}",
                "lower nbits",
            )
        quantizer = self._make_quantizer_and_check(X)
        index = faiss.IndexIVFPQ(quantizer, d, self.params["nlist"], m, nbits, faiss.METRIC_L2)
        index.pq.cp.seed = self.seed
        self._ivfpq = self._seed_training(index)
        if self.params["refine"] == "flat":
            return faiss.IndexRefineFlat(self._ivfpq)  # trains the IVF-PQ; `add` fills both
        return self._ivfpq

    def _push_query_params(self, values: Mapping[str, Any]) -> None:
        self._ivfpq.nprobe = values["nprobe"]
        if self._refines():
            self._index.k_factor = float(values["k_factor"])

    def _refines(self) -> bool:
        return self.params["refine"] == "flat" and self.query_values["k_factor"] > 0

    def _searched_index(self) -> Any:
        return self._index if self._refines() else self._ivfpq

    def _read_counters(self, n_queries: int, k: int) -> np.ndarray:
        counts = super()._read_counters(n_queries, k)
        if self._refines():
            scanned = faiss.cvar.indexIVF_stats.ndis / max(1, n_queries)
            counts = counts + min(k * self.query_values["k_factor"], scanned)
        return counts


def _refuse_k_factor_without_refine(owner: str, k_factor: int, refine: str) -> None:
    if k_factor > 0 and refine != "flat":
        raise ParameterError(
            f"{owner}: k_factor = {k_factor} re-ranks candidates with exact distances, but refine = {refine!r} keeps no vectors",
            "add refine: flat to the build parameters, or use k_factor 0",
        )


@register("faiss-hnsw", description="FAISS HNSW-Flat: navigable small-world graph over exact vectors")
class FaissHNSW(_FaissAdapter):
    """FAISS's HNSW graph: `M` links per node, `efConstruction`/`efSearch` beam widths.

    FAISS draws node levels from a fixed internal seed and builds in parallel, so builds are
    only reproducible with threads = 1; `seed` has no effect here.
    """

    build_params = {
        "M": Param(int, 32, "links per node (layer 0 keeps 2*M)", check=at_least(2)),
        "efConstruction": Param(int, 40, "beam width while inserting", check=at_least(1)),
    }
    query_params = {
        "efSearch": Param(int, 16, "beam width while searching; must be >= k", check=at_least(1)),
    }

    def _make_index(self, X: np.ndarray) -> Any:
        index = faiss.IndexHNSWFlat(X.shape[1], self.params["M"], faiss.METRIC_L2)
        index.hnsw.efConstruction = self.params["efConstruction"]
        return index

    @classmethod
    def check_config(cls, build: Mapping[str, Any], query: Mapping[str, Any], k: int, n_train: int, dimension: int) -> None:
        _refuse_ef_search_below_k(cls.name, query["efSearch"], k)

    @classmethod
    def cost(cls, build: Mapping[str, Any], query: Mapping[str, Any], n_train: int, dimension: int, k: int) -> Cost:
        """Graph walks, as hnswlib's (algorithms/_costs.py)."""
        return Cost(query={"scan": _costs.graph_search(build["M"], max(query["efSearch"], k), n_train)},
                    build={"scan": _costs.graph_build(build["M"], build["efConstruction"], n_train)})

    def _check_k(self, k: int) -> None:
        _refuse_ef_search_below_k(self.name, self.query_values["efSearch"], k)

    def _push_query_params(self, values: Mapping[str, Any]) -> None:
        self._index.hnsw.efSearch = values["efSearch"]

    def _reset_counters(self) -> None:
        faiss.cvar.hnsw_stats.reset()

    def _read_counters(self, n_queries: int, k: int) -> np.ndarray:
        return np.full(n_queries, faiss.cvar.hnsw_stats.ndis / max(1, n_queries))
