"""IVF-local potential: each step sums the potential over the `nprobe` k-means cells nearest
the *current position* (not the query), re-chosen as the position moves.

Build: FAISS k-means (seeded from the adapter seed) on the data in scale units, every point
assigned to its nearest centroid, and the point ids sorted by cell so that a cell is one
contiguous range. A step: nlist centroid distances per query, the nprobe nearest cells, their
ranges gathered into a padded (queries x candidates) id tensor (each query its own cells),
and the potential summed over those candidates by `evaluate_on_candidates`.
Cost per step and query: nlist + the sizes of its probed cells.

Why it cannot beat IVF-Flat on distance computations: the first step already scans what
IVF-Flat scans (same cells around the query), and a climb needs at least a second step to
see that it has stopped; with the Gaussian at the beta where the ascent is reliable, the
first step's top contributor *is* IVF's answer. The variant exists to measure that.
"""
from __future__ import annotations

from typing import Any, Mapping

import faiss
import numpy as np
import torch

from algorithms import _costs
from algorithms._threads import faiss_threads
from algorithms.base import Param, at_least
from harness.errors import ParameterError

from .base import RestrictedAdapter, make_variant, tensor_bytes
from .candidates import evaluate_on_candidates, ranges_to_padded
from ..ascent import StepResult


KMEANS_ITERS = 20


def kmeans_centroids(X: np.ndarray, count: int, seed: int, threads: int, niter: int = KMEANS_ITERS) -> np.ndarray:
    """FAISS k-means centroids (count x D) of float32 data, seeded for reproducible builds."""
    count = min(count, len(X))
    with faiss_threads(threads):
        km = faiss.Kmeans(X.shape[1], count, niter=niter, seed=seed, verbose=False)
        km.train(np.ascontiguousarray(X, dtype=np.float32))
    return km.centroids.copy()


def nearest_rows(points: torch.Tensor, sq_points: torch.Tensor, targets: torch.Tensor, count: int) -> torch.Tensor:
    """Ids (len(targets) x count) of the `count` points nearest each target, by matmul."""
    d2 = sq_points[None, :] - 2.0 * (targets @ points.T)
    return d2.topk(min(count, len(points)), dim=1, largest=False).indices


class IVFLocal(RestrictedAdapter):
    """Potential summed over the nprobe k-means cells nearest the current position."""

    structure_build = {
        "nlist": Param(int, 64, "k-means cells over the data", check=at_least(1)),
    }
    structure_query = {
        "nprobe": Param(int, 4, "cells nearest the current position summed over each step; nprobe = nlist is the full potential", check=at_least(1)),
    }

    @classmethod
    def points_per_evaluation(cls, build: Mapping[str, Any], query: Mapping[str, Any], n_train: int) -> tuple[float, float]:
        """The probed cells' points and nlist centroid distances; gathering and padding the
        candidates costs about 25 distances' worth per point (measured at 30k and 100k x 128)."""
        points = n_train * min(query["nprobe"], build["nlist"]) / max(1, build["nlist"])
        return points, 25.0 * points + build["nlist"]

    @classmethod
    def structure_work(cls, build: Mapping[str, Any], n_train: int) -> dict[str, float]:
        return {"matmul": _costs.kmeans(n_train, build["nlist"], KMEANS_ITERS) + n_train * build["nlist"]}

    @classmethod
    def check_config(cls, build: Mapping[str, Any], query: Mapping[str, Any], k: int, n_train: int, dimension: int) -> None:
        if query["nprobe"] > build["nlist"]:
            raise ParameterError(
                f"{cls.name}: nprobe = {query['nprobe']} is larger than nlist = {build['nlist']}",
                f"use 1 <= nprobe <= {build['nlist']} (nprobe = nlist sums over every point)",
            )
        if build["nlist"] > n_train > 0:
            raise ParameterError(f"{cls.name}: nlist = {build['nlist']} is larger than the number of points ({n_train})")

    def _build_structure(self, X: torch.Tensor) -> None:
        host = X.float().cpu().numpy()
        centroids = torch.as_tensor(kmeans_centroids(host, self.params["nlist"], self.seed, self.threads))
        self._centroids = centroids.to(device=X.device, dtype=X.dtype)
        self._c_sq = (self._centroids * self._centroids).sum(1)
        assign = nearest_rows(self._centroids, self._c_sq, X, 1)[:, 0]
        self._order = torch.argsort(assign, stable=True)
        sizes = torch.bincount(assign, minlength=len(self._centroids))
        self._sizes = sizes
        self._offsets = sizes.cumsum(0) - sizes

    def cells_of(self, positions: torch.Tensor) -> torch.Tensor:
        """The nprobe cells nearest each position (positions x nprobe)."""
        nprobe = min(self.query_values["nprobe"], len(self._centroids))
        return nearest_rows(self._centroids, self._c_sq, positions, nprobe)

    def candidates(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids of the points in each position's probed cells, and their mask."""
        cells = self.cells_of(positions)
        slots, valid = ranges_to_padded(self._offsets[cells], self._sizes[cells])
        return self._order[slots], valid

    def _step(self, positions: torch.Tensor, active: torch.Tensor, track_m: int) -> StepResult:
        cand, valid = self.candidates(positions)
        ev = evaluate_on_candidates(
            self.potential_impl, positions, self._X, self._sq, cand, valid, self.hyper(), track_m,
            self.query_values["memory_mb"],
        )
        return StepResult(ev, valid.sum(1) + len(self._centroids))

    def _scalar_stats(self) -> dict[str, float]:
        sizes = self._sizes.double()
        return {"nlist": float(len(sizes)), "cell_size_mean": float(sizes.mean()), "cell_size_max": float(sizes.max())}

    def _structure_bytes(self) -> int:
        return tensor_bytes(self._centroids, self._order, self._sizes, self._offsets)


GAUSSIAN_IVF = make_variant(
    IVFLocal,
    "gaussian",
    "potential-gaussian-ivf",
    sweep={
        "build": {"nlist": [64]},
        "query": {"ascent": ["meanshift"], "beta": [300.0], "nprobe": [1, 2, 4, 8, 16], "max_iters": [20]},
    },
    doc="Gaussian potential summed over the nprobe k-means cells nearest the moving position (mean-shift)",
)

POTENTIAL_1_IVF = make_variant(
    IVFLocal,
    "potential_1",
    "potential-1-ivf",
    sweep={
        "build": {"nlist": [64]},
        "query": {"ascent": ["adam"], "rate": [0.05], "nprobe": [2, 8], "max_iters": [60]},
        "max_queries": 300,
    },
    doc="note's potential_1 summed over the nprobe k-means cells nearest the moving position (Adam)",
    default_run=False,  # ~1 query/s on 100k points: run it by name (--algorithms), as bench/cheap_steps.py does
)
