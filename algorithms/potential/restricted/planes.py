"""The note's 2-D decomposition of potential_2: one grid index per cyclic coordinate pair.

potential_2 sums psi(r_j) / d over the planes (j, j+1 mod d), r_j the distance in plane j.
psi decays as C^-r, so the points of plane j farther than a radius R from the position add
at most psi(R) each: choosing R with psi(R) / psi(0) = `tolerance` bounds the truncation,
and only the points within R in each plane are summed. A uniform grid of cell size R per
plane (point ids sorted by cell key, cells found by binary search) returns them: the 3 x 3
cells around the position hold every point within R. numpy/torch only, no scipy.

Cost accounting: every 2-D distance evaluated in the 3 x 3 cells is counted
(`pair_dist_comps`); `dist_comps` reports them as full-distance equivalents (x 2 / d, a 2-D
distance being 2 of the d coordinates), plus the snap's and the answer's full distances.
Truncation: `truncation_value_bound` (per query, at the last step) = omitted (point, plane)
terms x psi(R) / d bounds |Psi - Psi_truncated|; `truncation_grad_bound` likewise with
|psi'(R)| bounds the gradient's error. tolerance = 0 sums every point (the full potential_2).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from algorithms.base import Param
from harness.errors import ParameterError

from ..builtin import exp_l2_psi_dpsi
from ..chunks import blocks
from ..potentials import Evaluation
from .base import RestrictedAdapter, make_variant, tensor_bytes
from .candidates import ranges_to_padded, segment_sums
from ..ascent import StepResult

_NEIGHBOUR_CELLS = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]


def _tolerance(value: float) -> str | None:
    return None if 0 <= value < 1 else "must be in [0, 1) (0 sums every point)"


def truncation_radius(tolerance: float, c: float, eps: float, clamp: float) -> float:
    """Smallest R with psi(R) / psi(0) <= tolerance for psi = (1-eps) u / (1 - eps u), u = C^-r.

    psi(0) = 1. Infinite when tolerance is 0 or when psi's flat tail (beyond the clamp) is
    still above the tolerance: then no finite radius bounds the truncation.
    """
    if tolerance <= 0:
        return math.inf
    u = tolerance / ((1.0 - eps) + eps * tolerance)
    radius = -math.log(u) / math.log(c)
    return radius if radius < clamp else math.inf


class PlaneGrid:
    """Points of one coordinate plane bucketed in square cells of side `cell`."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, cell: float) -> None:
        self.cell = cell
        ca, cb = torch.floor(a / cell).long(), torch.floor(b / cell).long()
        self.low_a, self.low_b = int(ca.min()), int(cb.min())
        self.size_a, self.size_b = int(ca.max()) - self.low_a + 1, int(cb.max()) - self.low_b + 1
        keys = (ca - self.low_a) * self.size_b + (cb - self.low_b)
        self.keys, self.order = keys.sort()

    def near(self, qa: torch.Tensor, qb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(starts, counts), (Q x 9), of the sorted ranges of the 3 x 3 cells around each point."""
        ca = torch.floor(qa / self.cell).long() - self.low_a
        cb = torch.floor(qb / self.cell).long() - self.low_b
        starts, counts = [], []
        for dx, dy in _NEIGHBOUR_CELLS:
            ka, kb = ca + dx, cb + dy
            inside = (ka >= 0) & (ka < self.size_a) & (kb >= 0) & (kb < self.size_b)
            key = ka * self.size_b + kb
            lo = torch.searchsorted(self.keys, key)
            hi = torch.searchsorted(self.keys, key, right=True)
            starts.append(lo)
            counts.append(torch.where(inside, hi - lo, torch.zeros_like(lo)))
        return torch.stack(starts, 1), torch.stack(counts, 1)

    def nbytes(self) -> int:
        return tensor_bytes(self.keys, self.order)


class Planes(RestrictedAdapter):
    """potential_2 with each plane's term summed over the points within R of the position there."""

    structure_build = {
        "tolerance": Param(float, 1e-3, "truncation: psi(R)/psi(0) <= tolerance fixes the radius R (0: every point)", _tolerance),
    }

    def _build_structure(self, X: torch.Tensor) -> None:
        p = self.params
        if X.shape[1] < 2:
            raise ParameterError(f"{self.name}: the 2-D decomposition needs at least 2 dimensions, got {X.shape[1]}")
        c, eps, clamp = (self.potential_impl.params[n].default for n in ("c", "eps", "clamp"))
        self._built_for = (c, eps, clamp)
        self.radius = truncation_radius(p["tolerance"], c, eps, clamp)
        d = X.shape[1]
        self._grids = None if math.isinf(self.radius) else [PlaneGrid(X[:, j], X[:, (j + 1) % d], self.radius) for j in range(d)]

    def check_query_params(self, values: Any) -> None:
        super().check_query_params(values)
        if (values["c"], values["eps"], values["clamp"]) != getattr(self, "_built_for", (values["c"], values["eps"], values["clamp"])):
            raise ParameterError(
                f"{self.name}: c, eps and clamp fix the grid radius at build time and cannot be swept at query time",
                "keep them at their defaults (or register another variant)",
            )

    def _prepare(self, q: torch.Tensor) -> torch.Tensor:
        self._value_bound = torch.zeros(len(q), dtype=torch.float64, device=q.device)
        self._pairs = torch.zeros(len(q), dtype=torch.float64, device=q.device)
        return torch.zeros(len(q), dtype=torch.float64, device=q.device)

    def plane_candidates(self, j: int, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids (and mask) of the points in the 3 x 3 cells of plane j around each position."""
        if self._grids is None:
            n = self.n_train
            return torch.arange(n, device=positions.device).expand(len(positions), n), torch.ones(
                (len(positions), n), dtype=torch.bool, device=positions.device
            )
        grid = self._grids[j]
        starts, counts = grid.near(positions[:, j], positions[:, (j + 1) % positions.shape[1]])
        slots, valid = ranges_to_padded(starts, counts)
        return grid.order[slots], valid

    def _step(self, positions: torch.Tensor, active: torch.Tensor, track_m: int) -> StepResult:
        rows = max(1, int(self.query_values["memory_mb"] * 2**20) // (positions.element_size() * 8 * self.n_train))
        parts = [self._step_rows(positions[sl], track_m) for sl in blocks(len(positions), rows)]
        ev = Evaluation(
            value=torch.cat([p[0].value for p in parts]), grad=torch.cat([p[0].grad for p in parts]),
            top_ids=torch.cat([p[0].top_ids for p in parts]) if track_m else None,
        )
        pairs = torch.cat([p[1] for p in parts])
        inside = torch.cat([p[2] for p in parts])
        d = positions.shape[1]
        self._pairs[active] += pairs
        self._value_bound[active] = (self.n_train * d - inside) * self._psi_radius() / d
        return StepResult(ev, pairs * 2.0 / d)

    def _step_rows(self, q: torch.Tensor, track_m: int) -> tuple[Evaluation, torch.Tensor, torch.Tensor]:
        """Value, gradient and top ids of the truncated potential_2; pair counts; terms inside R."""
        hp = self.hyper()
        n_rows, d = q.shape
        value, grad = q.new_zeros(n_rows), torch.zeros_like(q)
        pairs = torch.zeros(n_rows, dtype=torch.float64, device=q.device)
        inside_count = torch.zeros_like(pairs)
        tops_ids, tops_val = [], []
        for j in range(d):
            j1 = (j + 1) % d
            cand, valid = self.plane_candidates(j, q)
            da, db = self._X[cand, j] - q[:, j, None], self._X[cand, j1] - q[:, j1, None]
            r = (da * da + db * db).sqrt()
            inside = valid & (r <= self.radius)
            psi, slope = exp_l2_psi_dpsi(r, hp["c"], hp["eps"], hp["clamp"])
            psi = psi.masked_fill(~inside, 0.0)
            w = torch.where(inside & (r > 0), slope / r.clamp_min(torch.finfo(r.dtype).tiny), 0.0)
            value += psi.sum(1) / d
            grad[:, j] -= (w * da).sum(1) / d
            grad[:, j1] -= (w * db).sum(1) / d
            pairs += valid.sum(1).double()
            inside_count += inside.sum(1).double()
            if track_m:
                take = min(track_m, psi.shape[1])
                top_val, at = psi.masked_fill(~inside, -1.0).topk(take, dim=1)
                tops_ids.append(cand.gather(1, at))
                tops_val.append(top_val)
        top = self._top(tops_ids, tops_val, track_m) if track_m else None
        return Evaluation(value=value, grad=grad, top_ids=top), pairs, inside_count

    def _top(self, ids: list[torch.Tensor], vals: list[torch.Tensor], m: int) -> torch.Tensor:
        """Top-m points by their contribution summed over the planes where they rank top-m.

        Ranking by the full per-point sum would need every point's every plane; this bounded
        pool is what the snap then re-ranks by exact distance.
        """
        all_ids, all_vals = torch.cat(ids, 1), torch.cat(vals, 1)
        keyed, sums, last = segment_sums(all_ids, all_vals.clamp_min(0.0), all_vals >= 0, self.n_train)
        take = min(m, keyed.shape[1])
        order = sums.masked_fill(~last, float("-inf")).topk(take, dim=1).indices
        return keyed.gather(1, order).masked_fill_(~last.gather(1, order), -1)

    def _psi_radius(self) -> float:
        if math.isinf(self.radius):
            return 0.0
        c, eps, clamp = self._built_for
        return float(exp_l2_psi_dpsi(torch.tensor([self.radius], dtype=torch.float64), c, eps, clamp)[0])

    def _grad_bound_per_term(self) -> float:
        if math.isinf(self.radius):
            return 0.0
        c, eps, clamp = self._built_for
        return float(exp_l2_psi_dpsi(torch.tensor([self.radius], dtype=torch.float64), c, eps, clamp)[1].abs())

    def _extra_stats(self) -> dict[str, np.ndarray]:
        grad_bound = self._value_bound * (self._grad_bound_per_term() / max(self._psi_radius(), 1e-300))
        return {
            "pair_dist_comps": self._pairs.cpu().numpy(),
            "truncation_value_bound": self._value_bound.cpu().numpy(),
            "truncation_grad_bound": grad_bound.cpu().numpy(),
        }

    def _scalar_stats(self) -> dict[str, float]:
        return {"radius_units": float(self.radius), "truncation_ratio": self._psi_radius()}

    def _structure_bytes(self) -> int:
        return sum(g.nbytes() for g in self._grids) if self._grids else 0


POTENTIAL_2_PLANES = make_variant(
    Planes,
    "potential_2",
    "potential-2-planes",
    sweep={
        "build": {"tolerance": [1e-2, 1e-4]},
        "query": {"ascent": ["normalised"], "rate": [0.05], "max_iters": [30]},
        "max_queries": 100,
    },
    doc="note's potential_2, each cyclic coordinate pair summed over a 2-D grid's points within a bounded radius",
    default_run=False,  # ~0.1 query/s at d = 100: run it by name (--algorithms), as bench/cheap_steps.py does
)
