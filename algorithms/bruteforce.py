"""Exact k-NN by brute force in torch: the ground truth every approximate method is measured against.

The squared distance is expanded as ||x||^2 - 2 q.x (+ ||q||^2, constant per query, so left
out for ranking), which turns the scan into one matrix product per block: the fastest exact
search on both CPU and GPU. The expansion loses precision when ||x|| is large against
||x - q||, so it only *selects* candidates: a few more than k are kept, their distances are
recomputed directly as ||x - q|| in fp32, and the final order is by (distance, id). That makes
the returned distances exact to fp32 and ties come out in id order, whatever the device.
The data are centred on their mean once in fit (queries on the way in): distances do not
change, but ||x||^2 shrinks to the data's spread, so the expansion cancels far less when the
data sit far from the origin. Candidates can still be missed only when more than the margin's
worth of points lie within fp32 rounding of ||x||^2 from the k-th neighbour.

Memory is bounded by `memory_mb`: the (queries x points) score block never exceeds it, so the
same adapter runs a 10k-point test set and sift-1M on a laptop or a GPU.

`precision` fp16/bf16 is the fair exact baseline for low-precision potential kernels on a GPU:
candidates are *selected* by scores in that precision (tensor cores), then re-ranked exactly in
fp32 as always, so the answer stays exact unless more than the margin's worth of points tie
within the low precision's rounding. The low-precision copy is divided by the largest centred
norm first, so ||x||^2 <= 1 and fp16 cannot overflow. fp16 is refused on the CPU (no fast kernel;
measured 5x slower than fp32 on the development machine); bf16 runs there.

Inner-product datasets (`metric="dot"`): the score is -q.x alone (no norms, no centring, which
would change the order), candidates are the largest inner products, re-ranked exactly by the
fp32 inner product; the distances returned are -q.x, nearest (largest) first.
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Any, ContextManager, Iterator, Mapping

import numpy as np
import torch

from harness.errors import ParameterError

from ._tensors import tensor_of
from ._threads import torch_threads
from .base import Adapter, Cost, Param, positive
from .registry import register

_FLOAT32_BYTES = 4
LOW_PRECISION = {"fp16": torch.float16, "bf16": torch.bfloat16}
PRECISIONS = ("fp32", *LOW_PRECISION)


@contextmanager
def _full_fp32_matmul() -> Iterator[None]:
    """Forbid TF32/bf16 shortcuts in fp32 matmuls for the block (they reorder near-ties)."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def candidate_count(k: int, n: int) -> int:
    """How many candidates the matmul stage keeps for the exact re-rank.

    The margin over k absorbs the rounding error of the expansion: a true k-th neighbour whose
    expanded score lands just behind a slightly farther point is still re-ranked correctly.
    """
    return min(n, 2 * k + 8)


def block_sizes(n_points: int, n_queries: int, memory_mb: int) -> tuple[int, int]:
    """(query rows, data columns) per score block so that one block fits in `memory_mb` MiB."""
    budget = max(1, memory_mb * 2**20 // _FLOAT32_BYTES)
    point_block = min(n_points, budget)
    query_block = max(1, min(n_queries, budget // point_block))
    return query_block, point_block


@register("bruteforce", description="exact k-NN, chunked fp32 matrix products in torch (CPU or CUDA)")
class BruteForce(Adapter):
    """Exact k-NN by chunked matrix products with an exact fp32 re-rank of the winners."""

    build_params = {
        "memory_mb": Param(
            int, 256, "MiB for one block of the query x data score matrix (sets the chunk sizes)", check=positive
        ),
        "precision": Param(
            str, "fp32", "precision of the candidate-selecting scores (fp16 CUDA only); the re-rank is always fp32",
            choices=PRECISIONS,
        ),
    }
    devices = ("cpu", "cuda")
    metrics = ("euclidean", "angular", "dot")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ParameterError(
                "bruteforce: device 'cuda' was asked for but torch sees no CUDA GPU",
                "use device cpu, or install a CUDA build of torch on a machine with a GPU",
            )
        if self.device == "cpu" and self.params["precision"] == "fp16":
            raise ParameterError(
                "bruteforce: precision 'fp16' is not offered on the CPU (torch has no fast fp16 matmul there; "
                "it runs several times slower than fp32)",
                "use precision bf16 or fp32 on the CPU; fp16 on device cuda",
            )
        self._low: torch.Tensor | None = None
        self._low_sq: torch.Tensor | None = None
        self._low_scale = 1.0
        self._data: torch.Tensor | None = None
        self._mean: torch.Tensor | None = None
        self._sq_norms: torch.Tensor | None = None
        self._bias: torch.Tensor | None = None  # the per-point term of the selecting score (dot: zero)

    @classmethod
    def cost(cls, build: Mapping[str, Any], query: Mapping[str, Any], n_train: int, dimension: int, k: int) -> Cost:
        """One product over the data per query and a top-k over its scores (about as much again
        on a CPU); the build centres and copies the data."""
        return Cost(query={"matmul": 2.0 * n_train}, build={"scan": 2.0 * n_train})

    # -- lifecycle -------------------------------------------------------------------------
    def _fit(self, X: np.ndarray) -> None:
        """Move the centred data to the device once; searches then only move queries."""
        dot = self.metric == "dot"
        mean = np.zeros(X.shape[1], np.float32) if dot else X.mean(axis=0, dtype=np.float64).astype(np.float32)
        self._mean = torch.from_numpy(mean).to(self.device)
        self._data = tensor_of(X, self.device) - self._mean
        self._sq_norms = (self._data * self._data).sum(dim=1)
        scores_bias = torch.zeros_like(self._sq_norms) if dot else self._sq_norms  # dot: score -2 q.x
        precision = self.params["precision"]
        if precision in LOW_PRECISION:
            largest = float(self._sq_norms.max().sqrt()) if len(X) else 0.0
            self._low_scale = largest if largest > 0 else 1.0
            scaled = self._data / self._low_scale
            self._low = scaled.to(LOW_PRECISION[precision])
            self._low_sq = (scaled * scaled).sum(dim=1).to(self._low.dtype) if not dot else scores_bias.to(self._low.dtype)
        self._bias = scores_bias

    def _search_scope(self) -> ContextManager[Any]:
        """torch's thread count (CPU), full-fp32 matmuls, no autograd: once per search or loop."""
        scope = ExitStack()
        if self.device == "cpu":
            scope.enter_context(torch_threads(self.threads))
        scope.enter_context(_full_fp32_matmul())
        scope.enter_context(torch.inference_mode())
        return scope

    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._mean is not None, "fit must run before search"
        queries = tensor_of(Q, self.device) - self._mean
        ids, dists = self._search_all(queries, k)
        self._stats.dist_comps = np.full(len(Q), self.n_train, dtype=np.int64)
        return ids.cpu().numpy(), dists.cpu().numpy()

    def search_tensor(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, distances) as device tensors for raw queries already on the device.

        The same scan as `search` without the host transfers, for benchmarks that time one
        pass against a potential step on device-resident data (bench/step_cost.py).
        """
        with self._search_scope():
            assert self._mean is not None, "fit must run before search"
            return self._search_all(queries.to(self._mean.dtype) - self._mean, k)

    def index_bytes(self) -> int | None:
        """The centred data on the device plus its squared norms and mean (and the low-precision copy)."""
        if self._data is None or self._sq_norms is None or self._mean is None:
            return None
        tensors = [t for t in (self._data, self._sq_norms, self._mean, self._low, self._low_sq) if t is not None]
        return sum(t.nelement() * t.element_size() for t in tensors)

    # -- the scan --------------------------------------------------------------------------
    def _search_all(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        n_cand = candidate_count(k, self.n_train)
        query_block, point_block = block_sizes(self.n_train, len(queries), self.params["memory_mb"])
        all_ids, all_dists = [], []
        for start in range(0, len(queries), query_block):
            block = queries[start : start + query_block]
            candidates = self._select_candidates(block, n_cand, point_block)
            ids, dists = self._rerank(block, candidates, k)
            all_ids.append(ids)
            all_dists.append(dists)
        return torch.cat(all_ids), torch.cat(all_dists)

    def _select_candidates(self, queries: torch.Tensor, n_cand: int, point_block: int) -> torch.Tensor:
        """Ids of the `n_cand` smallest expanded scores per query, merged over data blocks.

        In the low precision when one is set (data and queries divided by the same scale: the
        order is unchanged); otherwise in fp32.
        """
        assert self._data is not None and self._bias is not None
        data, sq_norms = self._data, self._bias
        if self._low is not None and self._low_sq is not None:
            data, sq_norms = self._low, self._low_sq
            queries = (queries / self._low_scale).to(data.dtype)
        best_scores: torch.Tensor | None = None
        best_ids: torch.Tensor | None = None
        for start in range(0, self.n_train, point_block):
            points = data[start : start + point_block]
            scores = torch.addmm(sq_norms[start : start + point_block], queries, points.T, alpha=-2.0)
            take = min(n_cand, len(points))
            scores, ids = torch.topk(scores, take, dim=1, largest=False, sorted=False)
            ids += start
            if best_scores is not None and best_ids is not None:
                scores, ids = torch.cat([best_scores, scores], 1), torch.cat([best_ids, ids], 1)
                scores, where = torch.topk(scores, min(n_cand, scores.shape[1]), dim=1, largest=False, sorted=False)
                ids = ids.gather(1, where)
            best_scores, best_ids = scores, ids
        assert best_ids is not None
        return best_ids

    def _rerank(self, queries: torch.Tensor, candidates: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact fp32 distances of the candidates, ordered by (distance, id); the first k."""
        if self.metric == "dot":
            return self._rerank_inner(queries, candidates, k)
        squared = self._exact_squared(queries, candidates)
        by_id = torch.argsort(candidates, dim=1, stable=True)
        candidates, squared = candidates.gather(1, by_id), squared.gather(1, by_id)
        by_distance = torch.argsort(squared, dim=1, stable=True)[:, :k]
        ids = candidates.gather(1, by_distance)
        dists = squared.gather(1, by_distance).clamp_min(0.0).sqrt()
        return ids, dists

    def _exact_squared(self, queries: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """||x - q||^2 by direct differences, in row blocks that keep the gathered vectors in budget."""
        assert self._data is not None
        per_row = candidates.shape[1] * self.dimension
        rows = max(1, self.params["memory_mb"] * 2**20 // _FLOAT32_BYTES // per_row)
        parts = []
        for start in range(0, len(queries), rows):
            vectors = self._data[candidates[start : start + rows]]
            diff = vectors - queries[start : start + rows, None, :]
            parts.append((diff * diff).sum(dim=2))
        return torch.cat(parts)

    def _rerank_inner(self, queries: torch.Tensor, candidates: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Dot: the candidates ordered by (-q.x, id), -q.x computed directly in fp32; the first k."""
        assert self._data is not None
        per_row = candidates.shape[1] * self.dimension
        rows = max(1, self.params["memory_mb"] * 2**20 // _FLOAT32_BYTES // per_row)
        parts = [-(self._data[candidates[start : start + rows]] * queries[start : start + rows, None, :]).sum(dim=2)
                 for start in range(0, len(queries), rows)]
        negative = torch.cat(parts)
        by_id = torch.argsort(candidates, dim=1, stable=True)
        candidates, negative = candidates.gather(1, by_id), negative.gather(1, by_id)
        by_score = torch.argsort(negative, dim=1, stable=True)[:, :k]
        return candidates.gather(1, by_score), negative.gather(1, by_score)
