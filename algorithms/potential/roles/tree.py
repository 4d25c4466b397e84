"""Coarse-to-fine climbs down a k-means tree (the second role for the potential: a climb over
centroids weighted by their counts picks the cells, instead of centroid distance).

Build ("IVF over IVF"): `leaves` k-means cells over the data, then `branches` k-means cells over
the leaf centroids, each leaf under its nearest top centroid; points sorted by leaf and leaves
by top cell, so every cell's children are one contiguous range. Three levels: top centroids,
leaf centroids, points; a centroid stands for the points under it (its count).

`descent=climb`: at the top level the potential is the Gaussian mixture over the top centroids
weighted by their counts, climbed from the query with a small beta (`coarse_beta` per squared
median spacing of that level's centroids) by the `anchored` rule: mean-shift with a pull back
toward the query, (mean + pull q) / (1 + pull), which keeps a small-beta climb from drifting to
a density mode. The `top_width` largest contributors at the landing position are kept; at the
leaf level the climb goes on from there over their leaves' centroids (beta raised: the leaf
centroids' spacing is smaller), keeping the `leaf_width` largest contributors; at the points
level over their points with `beta` (per squared data spacing, as potential-gaussian), and the
snap's pool is the m largest contributors at the landing position, ranked by distance to the
query (algorithms.potential.snap).

`descent=greedy` (the control): the same tree searched by centroid distance to the query, no
climb and no counts: the `top_width` nearest top centroids, the `leaf_width` nearest of their
leaves, and the m points of those leaves nearest the query.

Distances per query: every centroid or point distance of every evaluation (a level's climb
evaluates its candidates once per iteration, and once more at the landing position unless the
last step was shorter than `tol`) plus the pool's m distances to the query. Pure torch, so a
CUDA device runs it too (unmeasured: no GPU here); the k-means runs on the CPU at fit time.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import numpy as np
import torch

from algorithms import registry
from algorithms import _costs
from algorithms.base import Param, at_least, positive
from harness.errors import ParameterError

from ..ascent import Climb, StepResult, climb, fit_width, make_rule
from ..climbing import COMMON_BUILD, MEANSHIFT_STEPS, ClimbingAdapter, tensor_bytes
from ..potentials import get_potential
from ..restricted.candidates import evaluate_on_candidates, ranges_to_padded
from ..restricted.ivf import KMEANS_ITERS, kmeans_centroids, nearest_rows
from ..snap import nearest_in_pool, rerank

DESCENTS = ("climb", "greedy")


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be >= 0"


class Level(NamedTuple):
    """One level of the tree: its items (centroids or points), their log counts, their spacing."""

    X: torch.Tensor
    sq: torch.Tensor
    log_count: torch.Tensor | None
    spacing: float


class Descent(NamedTuple):
    """Where one level left the queries: positions, kept items, distances and evaluations spent."""

    positions: torch.Tensor
    kept: torch.Tensor
    cost: torch.Tensor
    iterations: torch.Tensor
    last_step: torch.Tensor


def median_spacing(points: torch.Tensor) -> float:
    """Median distance from each point to its nearest other point (1.0 for fewer than two)."""
    if len(points) < 2:
        return 1.0
    d2 = torch.cdist(points.double(), points.double()).fill_diagonal_(float("inf"))
    return float(d2.min(1).values.median()) or 1.0


def children(offsets: torch.Tensor, counts: torch.Tensor, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ids (and mask) of the children of each row's kept cells (-1 cells have none)."""
    present = kept >= 0
    starts = torch.where(present, offsets[kept.clamp_min(0)], torch.zeros_like(kept))
    sizes = torch.where(present, counts[kept.clamp_min(0)], torch.zeros_like(kept))
    return ranges_to_padded(starts, sizes)


class TreeAdapter(ClimbingAdapter):
    """Coarse-to-fine climbs down a k-means tree (count-weighted Gaussian mixtures); control: greedy descent."""

    build_params = {
        "leaves": Param(int, 256, "k-means cells over the data (the tree's leaves)", check=at_least(1)),
        "branches": Param(int, 16, "k-means cells over the leaf centroids (the top level)", check=at_least(1)),
        **COMMON_BUILD,
    }
    query_params = {
        "descent": Param(str, "climb", "'climb' (count-weighted potential, anchored mean-shift, kept by contribution at "
                         "the landing position) or 'greedy' (the control: nearest centroids to the query)", choices=DESCENTS),
        "top_width": Param(int, 4, "top cells kept", check=at_least(1)),
        "leaf_width": Param(int, 8, "leaves kept (their points are searched)", check=at_least(1)),
        "coarse_beta": Param(float, 10.0, "beta at the centroid levels, per squared median spacing of that level's centroids", positive),
        "beta": Param(float, 300.0, "beta at the points level, per squared data spacing (scale unit)", positive),
        "pull": Param(float, 10.0, "weight of the query against the weighted mean in each step (0: plain mean-shift)", _non_negative),
        "max_iters": Param(int, 10, "climbing iterations per level at most", positive),
        "tol": Param(float, 1e-3, "a level's climb stops for a query when its step (scale units) is shorter", _non_negative),
        "m": Param(int, 16, "snap pool size (at least k are used)", positive),
        "memory_mb": Param(float, 128.0, "memory budget of one evaluation block, MiB", positive),
    }
    control_switch = {"descent": "greedy"}
    control_resets = ("coarse_beta", "beta", "pull", "max_iters", "tol")
    potential_impl = get_potential("gaussian")

    @classmethod
    def check_config(cls, build: Mapping[str, Any], query: Mapping[str, Any], k: int, n_train: int, dimension: int) -> None:
        if build["leaves"] > n_train > 0:
            raise ParameterError(f"{cls.name}: leaves = {build['leaves']} is larger than the number of points ({n_train})")
        if build["branches"] > build["leaves"]:
            raise ParameterError(f"{cls.name}: branches = {build['branches']} is larger than leaves = {build['leaves']}",
                                 "the top level clusters the leaf centroids: use branches <= leaves")

    def check_query_params(self, values: Mapping[str, Any]) -> None:
        self.check_config(self.params, values, 1, self.n_train, self.dimension)

    # -- the cost estimate (algorithms.base.Cost, through ClimbingAdapter.cost) ---------------
    @classmethod
    def expected_evaluations(cls, query: Mapping[str, Any]) -> float:
        """Three levels, each the first evaluation and the climb's steps (greedy: one ranking per level)."""
        if cls.is_control(query):
            return 3.0
        return 3.0 * (2.0 + min(query["max_iters"], MEANSHIFT_STEPS))

    @classmethod
    def points_per_evaluation(cls, build: Mapping[str, Any], query: Mapping[str, Any], n_train: int) -> tuple[float, float]:
        """A level's evaluation, averaged over the three: the top centroids, the kept top cells'
        leaf centroids, the kept leaves' points; gathering costs about 25 distances per point."""
        leaves, branches = max(1, build["leaves"]), max(1, build["branches"])
        points = branches + query["top_width"] * leaves / branches + query["leaf_width"] * n_train / leaves
        return points / 3.0, 25.0 * points / 3.0

    @classmethod
    def structure_work(cls, build: Mapping[str, Any], n_train: int) -> dict[str, float]:
        """k-means of the points into leaves and of the leaves into top cells, every point assigned."""
        return {"matmul": _costs.kmeans(n_train, build["leaves"], KMEANS_ITERS) + n_train * build["leaves"]}

    # -- build -----------------------------------------------------------------------------
    def _build_structure(self, X: torch.Tensor) -> None:
        host = X.float().cpu().numpy()
        leaf_c = torch.as_tensor(kmeans_centroids(host, self.params["leaves"], self.seed, self.threads))
        top_c = torch.as_tensor(kmeans_centroids(leaf_c.numpy(), self.params["branches"], self.seed, self.threads))
        leaf_c, top_c = leaf_c.to(X.device, X.dtype), top_c.to(X.device, X.dtype)
        leaf_of = nearest_rows(leaf_c, (leaf_c * leaf_c).sum(1), X, 1)[:, 0]
        top_of_leaf = nearest_rows(top_c, (top_c * top_c).sum(1), leaf_c, 1)[:, 0]
        leaf_order = torch.argsort(top_of_leaf, stable=True)
        renumber = torch.empty_like(leaf_order)
        renumber[leaf_order] = torch.arange(len(leaf_order), device=X.device)
        leaf_c, top_of_leaf, leaf_of = leaf_c[leaf_order], top_of_leaf[leaf_order], renumber[leaf_of]
        self._point_order = torch.argsort(leaf_of, stable=True)
        self._leaf_sizes = torch.bincount(leaf_of, minlength=len(leaf_c))
        self._leaf_offsets = self._leaf_sizes.cumsum(0) - self._leaf_sizes
        self._top_leaves = torch.bincount(top_of_leaf, minlength=len(top_c))
        self._top_offsets = self._top_leaves.cumsum(0) - self._top_leaves
        top_points = torch.zeros(len(top_c), dtype=torch.float64, device=X.device).index_add_(
            0, top_of_leaf, self._leaf_sizes.double())
        self._levels = (
            self._level(top_c, top_points),
            self._level(leaf_c, self._leaf_sizes.double()),
            Level(X, self._sq, None, 1.0),
        )

    @staticmethod
    def _level(centroids: torch.Tensor, counts: torch.Tensor) -> Level:
        log_count = counts.clamp_min(1e-300).log().masked_fill(counts == 0, float("-inf")).to(centroids.dtype)
        return Level(centroids, (centroids * centroids).sum(1), log_count, median_spacing(centroids))

    # -- search ----------------------------------------------------------------------------
    def _climb_and_snap(self, q: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        v = self.query_values
        n, device = len(q), q.device
        m = min(self.n_train, max(v["m"], k))
        top, leaf, points = self._levels
        every_top = torch.arange(len(top.X), device=device).expand(n, len(top.X))
        state = Descent(q.clone(), every_top, torch.zeros(n, dtype=torch.float64, device=device),
                        torch.zeros(n, dtype=torch.long, device=device), torch.zeros(n, dtype=q.dtype, device=device))
        cand, valid = every_top, torch.ones_like(every_top, dtype=torch.bool)
        state = self._descend(top, q, state, cand, valid, v["top_width"], v["coarse_beta"] / top.spacing**2)
        cand, valid = children(self._top_offsets, self._top_leaves, state.kept)
        state = self._descend(leaf, q, state, cand, valid, v["leaf_width"], v["coarse_beta"] / leaf.spacing**2)
        slots, valid = children(self._leaf_offsets, self._leaf_sizes, state.kept)
        state = self._descend(points, q, state, self._point_order[slots], valid, m, v["beta"])
        pool = state.kept
        ids, to_query = rerank(q, self._X, pool, k)
        dist_comps = state.cost + (pool >= 0).sum(1).double()
        landing = Climb(state.positions, state.iterations, state.last_step, None,
                        torch.ones(n, dtype=torch.bool, device=device), state.cost)
        self._record(landing, nearest_in_pool(state.positions, self._X, pool), dist_comps,
                     torch.zeros(n, dtype=torch.bool, device=device), m)
        return ids.cpu().numpy(), (to_query.double() * self.scale).float().cpu().numpy()

    def _descend(
        self, level: Level, q: torch.Tensor, state: Descent, cand: torch.Tensor, valid: torch.Tensor, width: int, beta: float
    ) -> Descent:
        """Keep the `width` best of each row's candidates at this level (-1 where fewer exist)."""
        v = self.query_values
        hp = {"beta": beta}

        def evaluate(positions: torch.Tensor, rows: torch.Tensor, track: int) -> StepResult:
            ev = evaluate_on_candidates(self.potential_impl, positions, level.X, level.sq, cand[rows], valid[rows], hp,
                                        track, v["memory_mb"], level.log_count)
            return StepResult(ev, valid[rows].sum(1))

        if v["descent"] == "greedy":  # nearest to the query: the logits without counts rank by distance
            plain = evaluate_on_candidates(self.potential_impl, q, level.X, level.sq, cand, valid, hp, width, v["memory_mb"])
            kept = fit_width(plain.top_ids, width)
            return state._replace(kept=kept, cost=state.cost + valid.sum(1))
        rule = make_rule("anchored", self.potential_impl, pull=v["pull"], anchor=q)
        result = climb(state.positions, rule, evaluate, max_iters=v["max_iters"], tol=v["tol"], track_m=width)
        kept, cost = result.top_ids.clone(), result.dist_comps.clone()
        again = (~result.pool_at_landing).nonzero().flatten()
        if len(again):  # the kept items are the largest contributors at the landing position itself
            fresh = evaluate(result.positions[again], again, width)
            kept[again] = fit_width(fresh.evaluation.top_ids, width)
            cost[again] += torch.as_tensor(fresh.cost, dtype=torch.float64, device=q.device)
        return Descent(result.positions, kept, state.cost + cost, state.iterations + result.iterations, result.last_step)

    def _scalar_stats(self) -> dict[str, float]:
        top, leaf, _ = self._levels
        return {"top_spacing": top.spacing, "leaf_spacing": leaf.spacing, "leaves": float(len(leaf.X)),
                "branches": float(len(top.X)), "leaf_size_mean": float(self._leaf_sizes.double().mean())}

    def _structure_bytes(self) -> int:
        top, leaf, _ = self._levels
        return tensor_bytes(top.X, leaf.X, self._point_order, self._leaf_sizes, self._leaf_offsets,
                            self._top_leaves, self._top_offsets)


registry.add(
    "potential-tree",
    TreeAdapter,
    sweep={
        "build": {"leaves": [256], "branches": [16]},
        # the greedy control of every width is added by the sweep (controls_of); pull and coarse_beta:
        # the best of a 3 x 3 grid on siftsmall's queries (bench/potential_roles.py, README)
        "query": {"descent": ["climb"], "top_width": [4, 8], "leaf_width": [8, 16], "pull": [10.0], "coarse_beta": [10.0]},
        "max_queries": 200,
    },
)
