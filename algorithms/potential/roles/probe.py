"""The Gaussian potential as a stopping rule for IVF probing (the first of three roles, beside
the climb, for the potential; see roles/__init__.py).

Fixed `nprobe` wastes work: most queries are answered by their first cell or two, a few need
many. Here each query probes the cells of a FAISS IVF-Flat index one at a time, in order of
centroid distance, and stops on its own:

- `stop=potential`: the probed points' Gaussian contributions exp(-beta |x - q|^2 / 2) are summed
  as they come (a running log-sum-exp over the m largest of each probed cell) and the mass the
  unprobed cells could still add is estimated from their sizes, centroid distances and radii:
  each of a cell's n_c points is put at the cell's bound distance b_c = max(0, |q - c| - alpha
  rho_c) (rho_c the cell's radius; alpha = 1 is the triangle inequality's bound, which makes the
  estimate an upper bound), so the cell adds at most n_c exp(-beta b_c^2 / 2). The query stops
  when the unprobed mass is below `tolerance` x the probed mass: the unprobed cells can no
  longer change which points dominate the potential at the query.
- `stop=geometric` (the control): the same loop and the same bound distances, without the
  potential: stop when every unprobed cell's bound distance is at least the best distance found,
  min_c b_c >= d_1 (at alpha = 1 an exact guarantee). It is the potential rule's limit of
  infinite beta without the cell sizes, so what the sizes and the soft sum over cells add is
  what the pair measures.

Both share `alpha` (the knob that trades recall for work); the index is built exactly as the
`faiss-ivf` adapter builds it (same nlist, seed, training), so `faiss-ivf` at fixed nprobe
on the same nlist is the other control. Distances counted per query: the nlist centroid
distances plus every point of every probed cell (FAISS's own counter's convention).

CPU only: the cells are scanned by FAISS's `search_preassigned` (one call per round for the
queries still probing). A GPU path would use faiss-gpu's; it is not written.
"""
from __future__ import annotations

import math
from typing import Any, ContextManager, Mapping

import numpy as np
import torch

from algorithms import registry
from algorithms._threads import faiss_threads
from algorithms.base import Adapter, Cost, Param, SearchStats, at_least, positive
from algorithms.faiss_indexes import FaissIVF
from harness.errors import ParameterError

from ..climbing import COMMON_BUILD
from ..scale import resolve_scale

STOP_RULES = ("potential", "geometric")


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be >= 0"


def _probe_limit(value: Any) -> str | None:
    return None if value is None or value >= 1 else "must be >= 1 (or null: every cell)"


def suffix_after(values: np.ndarray, reduce: Any, empty: float) -> np.ndarray:
    """out[:, j] = reduce over values[:, j+1:] (the cells ranked after j); `empty` where none are.

    `reduce` is a ufunc with `accumulate` (np.logaddexp for a log-sum-exp, np.minimum for a minimum).
    """
    out = np.full(values.shape, empty, dtype=np.float64)
    if values.shape[1] > 1:
        out[:, :-1] = reduce.accumulate(values[:, :0:-1], axis=1)[:, ::-1]
    return out


def log_sum_exp(values: np.ndarray) -> np.ndarray:
    """Row-wise log sum exp, -inf for a row of -inf only."""
    top = values.max(1)
    shift = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return shift + np.log(np.exp(values - shift[:, None]).sum(1))


class CellOrder:
    """The cells of each query in order of centroid distance, sorted lazily, with what each rule reads.

    All nlist centroid distances are computed (and counted) up front; only the first PREFIX ranks are
    sorted (most queries stop within them), the other cells enter the rules as one aggregate. A query
    that probes past the prefix gets the rest of its order sorted then. `at(rank, rows)` gives each
    row's cell at that rank and its rule value over the cells ranked after it: the log of their
    estimated mass (potential) or their smallest bound distance (geometric).
    """

    PREFIX = 32

    def __init__(self, owner: "PotentialProbe", Q: np.ndarray, values: Mapping[str, Any]) -> None:
        centroids, radius, sizes = owner._centroids, owner._radius, owner._sizes
        d2 = (Q * Q).sum(1)[:, None] + owner._centroid_sq[None, :] - 2.0 * (Q @ centroids.T)
        self.d2 = np.maximum(d2, 0.0, out=d2)
        bound = np.maximum(np.sqrt(self.d2) - np.float32(values["alpha"]) * radius, 0.0) / np.float32(owner.scale)
        bound[:, sizes == 0] = np.inf
        if values["stop"] == "potential":
            with np.errstate(divide="ignore"):
                self.score = np.log(sizes).astype(np.float32)[None, :] - np.float32(0.5 * values["beta"]) * bound**2
            self.reduce, self.empty = np.logaddexp, -np.inf
        else:
            self.score, self.reduce, self.empty = bound, np.minimum, np.inf
        self.order, self.rest = self._sorted(np.arange(len(Q)), min(self.PREFIX, d2.shape[1]))

    def _sorted(self, rows: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The first `count` cells of `rows` in order, and the rule value after each (the unsorted rest included)."""
        d2, score = self.d2[rows], self.score[rows]
        nlist = d2.shape[1]
        head = np.argpartition(d2, count - 1, axis=1)[:, :count] if count < nlist else np.tile(np.arange(nlist), (len(rows), 1))
        head = np.take_along_axis(head, np.argsort(np.take_along_axis(d2, head, 1), axis=1, kind="stable"), 1)
        head_score = np.take_along_axis(score, head, 1)
        rest = suffix_after(head_score, self.reduce, self.empty)
        if count < nlist:
            outside = score.copy()
            np.put_along_axis(outside, head, self.empty, 1)
            beyond = log_sum_exp(outside) if self.reduce is np.logaddexp else outside.min(1)
            rest = self.reduce(rest, beyond[:, None])
        return head, rest

    def at(self, rank: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if rank >= self.order.shape[1]:  # past the sorted prefix: sort these rows' whole order now
            order = np.zeros((len(self.d2), self.d2.shape[1]), dtype=np.int64)
            rest = np.full(order.shape, self.empty)
            order[rows], rest[rows] = self._sorted(rows, self.d2.shape[1])
            self.order, self.rest = order, rest
        return self.order[rows, rank], self.rest[rows, rank]


class PotentialProbe(Adapter):
    """IVF probing that stops on the Gaussian potential's estimate of the unprobed mass; control: a geometric bound."""

    build_params = {
        "nlist": Param(int, 64, "k-means cells, built as faiss-ivf builds them", check=at_least(1)),
        "scale": COMMON_BUILD["scale"],
    }
    query_params = {
        "stop": Param(str, "potential", "stopping rule: 'potential' (estimated unprobed mass) or 'geometric' "
                      "(the control: bound distance of every unprobed cell >= best distance)", choices=STOP_RULES),
        "alpha": Param(float, 0.2, "radius factor of a cell's bound distance |q - c| - alpha * radius "
                       "(1: the triangle inequality's, exact)", _non_negative),
        "beta": Param(float, 30.0, "potential rule: inverse bandwidth of the Gaussian, 1 / scale unit^2", positive),
        "tolerance": Param(float, 1.0, "potential rule: stop when the unprobed mass < tolerance x the probed mass", positive),
        "max_probe": Param((int, type(None)), None, "cells probed at most (null: nlist)", _probe_limit),
        "m": Param(int, 16, "largest contributions kept per probed cell (the running log-sum-exp; at least k)", positive),
    }
    control_switch = {"stop": "geometric"}
    control_resets = ("beta", "tolerance")

    #: cells a query probes before either rule stops it, for the cost estimate only (siftsmall,
    #: nlist 64: 4-10 cells; bench/results/potential_roles-siftsmall-128-euclidean.txt)
    EXPECTED_CELLS = 8

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ivf: FaissIVF | None = None

    @classmethod
    def cost(cls, build: Mapping[str, Any], query: Mapping[str, Any], n_train: int, dimension: int, k: int) -> Cost:
        """faiss-ivf's at the cells a query is expected to probe (`EXPECTED_CELLS`, at most
        max_probe), plus the scale estimate of the build."""
        cells = min(cls.EXPECTED_CELLS, query.get("max_probe") or build["nlist"], build["nlist"])
        ivf = FaissIVF.cost({"nlist": build["nlist"]}, {"nprobe": cells}, n_train, dimension, k)
        return Cost(query=ivf.query, build={**ivf.build, "scan": ivf.build.get("scan", 0.0) + n_train})

    @classmethod
    def check_config(cls, build: Mapping[str, Any], query: Mapping[str, Any], k: int, n_train: int, dimension: int) -> None:
        if build["nlist"] > n_train > 0:
            raise ParameterError(f"{cls.name}: nlist = {build['nlist']} is larger than the number of points ({n_train})")
        limit = query["max_probe"]
        if limit is not None and limit > build["nlist"]:
            raise ParameterError(f"{cls.name}: max_probe = {limit} is larger than nlist = {build['nlist']}",
                                 f"use 1 <= max_probe <= {build['nlist']}, or null for every cell")

    def check_query_params(self, values: Mapping[str, Any]) -> None:
        self.check_config(self.params, values, 1, self.n_train, self.dimension)

    def _fit(self, X: np.ndarray) -> None:
        self._ivf = FaissIVF(nlist=self.params["nlist"], seed=self.seed, threads=self.threads)
        self._ivf.fit(X)
        index = self._ivf.faiss_index
        index.nprobe = 1  # search_preassigned reads one cell per query from its arguments
        nlist = index.nlist
        with faiss_threads(self.threads):
            to_centroid, cell = index.quantizer.search(X, 1)
        self._sizes = np.array([index.invlists.list_size(c) for c in range(nlist)], dtype=np.int64)
        self._centroids = index.quantizer.reconstruct_n(0, nlist)
        self._centroid_sq = (self._centroids * self._centroids).sum(1)
        self._radius = np.zeros(nlist)
        np.maximum.at(self._radius, cell[:, 0], np.sqrt(np.maximum(to_centroid[:, 0], 0.0)))
        self._radius = self._radius.astype(np.float32)
        centre = torch.as_tensor(np.mean(X, axis=0, dtype=np.float64))
        self.scale = resolve_scale(self.params["scale"], X, seed=self.seed, centre=centre)  # in blocks: no copy of X

    def _search_scope(self) -> ContextManager[Any]:
        return faiss_threads(self.threads)

    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        v = self.query_values
        index = self._ivf.faiss_index
        nlist, width, n = index.nlist, max(k, v["m"]), len(Q)
        cells = CellOrder(self, Q, v)
        rounds_d2, rounds_id = [], []
        nearest = np.full(n, np.inf)
        probed_mass = np.full(n, -np.inf)
        probes = np.zeros(n, dtype=np.int64)
        scanned = np.zeros(n, dtype=np.int64)
        active = np.arange(n)
        for rank in range(min(v["max_probe"] or nlist, nlist)):
            if not len(active):
                break
            cell, rest = cells.at(rank, active)
            d2, ids = index.search_preassigned(Q[active], width, cell[:, None], cells.d2[active, cell][:, None])
            d2 = np.where(ids >= 0, d2, np.inf)
            found_d2 = np.full((n, width), np.inf, dtype=np.float32)
            found_id = np.full((n, width), -1, dtype=np.int64)
            found_d2[active], found_id[active] = d2, ids
            rounds_d2.append(found_d2)
            rounds_id.append(found_id)
            probes[active] += 1
            scanned[active] += self._sizes[cell]
            nearest[active] = np.minimum(nearest[active], d2[:, 0])
            if v["stop"] == "potential":
                probed_mass[active] = np.logaddexp(probed_mass[active], log_sum_exp(-0.5 * v["beta"] / self.scale**2 * d2))
                done = rest < math.log(v["tolerance"]) + probed_mass[active]
            else:
                done = rest >= np.sqrt(nearest[active]) / self.scale
            active = active[~done]
        all_d2 = np.concatenate(rounds_d2, 1) if rounds_d2 else np.full((n, k), np.inf, dtype=np.float32)
        all_id = np.concatenate(rounds_id, 1) if rounds_id else np.full((n, k), -1, dtype=np.int64)
        top = np.argsort(all_d2, axis=1, kind="stable")[:, :k]
        best_d2, best_id = np.take_along_axis(all_d2, top, 1), np.take_along_axis(all_id, top, 1)
        self._stats = SearchStats(
            iterations=probes,
            dist_comps=(nlist + scanned).astype(np.float64),
            extra={"probes": probes},
            scalars={"scale": self.scale, "nlist": float(nlist), "probes_mean": float(probes.mean()) if n else 0.0},
        )
        return best_id, np.where(best_id >= 0, np.sqrt(np.maximum(best_d2, 0.0)), np.inf).astype(np.float32)

    def index_bytes(self) -> int | None:
        return None if self._ivf is None else self._ivf.index_bytes()


registry.add(
    "potential-probe",
    PotentialProbe,
    # the geometric control of every alpha is added by the sweep (controls_of)
    sweep={"build": {"nlist": [64]}, "query": {"stop": ["potential"], "alpha": [0.0, 0.05, 0.1, 0.15, 0.2, 0.3]}},
)
