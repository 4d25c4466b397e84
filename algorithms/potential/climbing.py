"""What every potential adapter shares: the frame, the climb, the snap, the control, the stats.

A potential adapter (full: adapter.py; restricted to candidate sets: restricted/) differs from
the others in one place only: where the potential is summed at each step (`_step`). Fit puts
the data in one frame (centred, divided by the length scale, on the device), so that the
potentials' parameters mean the same thing everywhere; then a variant builds its structure.
Search climbs with `ascent.climb`, gathers the snap's pool (snap.py) and returns the k pool
points nearest to the query. On inner-product data (`metric="dot"`, served by the Gaussian's
attention form only) the frame is not centred, the field's squared norms are zero, and the pool
is ranked by the largest inner product with the query.

Every configuration has a control: the same configuration with `ascent=none` (the position
never leaves the query), so that recall, cost and the note's converged-onto-NN rate of the
climb can be set beside what the same snap finds without it. The sweep runs both.

Distance computations per query: the variant's start-up look-ups + every distance of every
climbing evaluation + the snap's extra evaluation where one is made (or the exact pass) + the
pool's distances to the query.
"""
from __future__ import annotations

from contextlib import ExitStack
from typing import Any, ClassVar, ContextManager, Mapping

import numpy as np
import torch

from algorithms._threads import torch_threads
from algorithms.base import Adapter, Cost, Param, SearchStats, positive
from harness.errors import ParameterError

from .ascent import Climb, StepResult, climb, fit_width, make_rule, rule_class, rule_names
from .potentials import Field, Potential, nearest_candidates
from .scale import SAMPLE, Units, check_scale
from .snap import SNAP_MODES, nearest_in_pool, rerank

DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: for the time estimate only (records hold the measured iterations): mean-shift settles within
#: a few steps (2-6 on siftsmall), and so does potential_1's fixed-point map (a weighted mean
#: too); a gradient rule runs until its step is shorter than tol, for the potential's
#: `climb_share` of max_iters
MEANSHIFT_STEPS = 4


def _optional_positive(value: Any) -> str | None:
    return None if value is None or value > 0 else "must be > 0 (or null for the rule's default)"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be >= 0"


COMMON_BUILD: dict[str, Param] = {
    "scale": Param((str, float), "auto", "length unit: 'auto' (median NN spacing of a sample) or a number; 1.0 = raw units", check_scale),
    "dtype": Param(str, "float32", "compute precision", choices=tuple(DTYPES)),
}


def common_query(potential: Potential) -> dict[str, Param]:
    """Query parameters shared by every potential; the default rule depends on the potential."""
    default_rule = "meanshift" if potential.has_mean else "adam"
    return {
        "ascent": Param(str, default_rule, "ascent rule; 'none' is the control (no climb, snap from the query)", choices=tuple(rule_names())),
        "rate": Param((float, type(None)), None, "step size in scale units (null: rule default, normalised 5e-4, adam 1e-2)", _optional_positive),
        "power": Param(float, 1.1, "normalised rule: step = rate * g / |g|^power (the note's code: 1.1)", _non_negative),
        "max_iters": Param(int, 100, "iteration cap per query", positive),
        "tol": Param(float, 1e-3, "stop a query when its step (scale units) is shorter", _non_negative),
        "snap": Param(str, "final", "pool of the snap: 'final' (top-m contributors of an evaluation at the landing "
                      "position) or 'exact' (the m points nearest it, full pass); the k pool points nearest the query "
                      "are returned", choices=SNAP_MODES),
        "m": Param(int, 16, "snap pool size (at least k are used)", positive),
        "memory_mb": Param(float, 128.0, "memory budget of one evaluation block, MiB", positive),
    }


class ClimbingAdapter(Adapter):
    """Gradient-potential search: climb the potential from the query, then snap to data points."""

    devices = ("cpu", "cuda")
    potential_impl: ClassVar[Potential]
    #: 2: the snap's pool is gathered at the landing position and ranked by distance to the query
    revision = 2
    control_switch = {"ascent": "none"}
    control_resets = ("rate", "power", "max_iters", "tol")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ParameterError(f"{self.name}: device 'cuda' requested but no CUDA GPU is visible to torch")
        self.scale = 1.0
        self.last_positions: np.ndarray | None = None

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.params["dtype"]]

    # -- fit -------------------------------------------------------------------------------
    def _fit(self, X: np.ndarray) -> None:
        with torch_threads(self.threads):
            dot = self.metric == "dot"
            self.units = Units(X, self.params["scale"], self.dtype, self.device, seed=self.seed, centred=not dot)
            self.scale, self._X = self.units.scale, self.units.data
            # dot (served by the Gaussian only, see Potential.metrics): zero norms turn its logits into beta q.x
            self._sq = torch.zeros(len(self._X), dtype=self._X.dtype, device=self._X.device) if dot else (self._X * self._X).sum(1)
            self._build_structure(self._X)

    def _build_structure(self, X: torch.Tensor) -> None:
        """Build the variant's search structure on the data in scale units (device tensor)."""

    def to_units(self, Q: np.ndarray) -> torch.Tensor:
        return self.units.inward(Q)

    def field(self) -> Field:
        """The whole data as a potential sees it, with this search's evaluation settings."""
        return Field(X=self._X, sq_norms=self._sq, memory_mb=self.query_values["memory_mb"])

    def hyper(self) -> dict[str, Any]:
        return {name: self.query_values[name] for name in self.potential_impl.params}

    def check_query_params(self, values: Mapping[str, Any]) -> None:
        make_rule(values["ascent"], self.potential_impl, values["rate"])

    # -- hooks of a variant ----------------------------------------------------------------
    def _prepare(self, q: torch.Tensor) -> torch.Tensor:
        """Per-search state (e.g. a frontier); returns distance computations spent per query."""
        return torch.zeros(len(q), dtype=torch.float64, device=q.device)

    def _step(self, positions: torch.Tensor, active: torch.Tensor, track_m: int) -> StepResult:
        """Evaluate the potential at the active queries' positions (see ascent.StepFn)."""
        raise NotImplementedError

    def _tracked_during_climb(self, m: int) -> int:
        """Top contributors each climbing evaluation tracks (0: the snap gathers them afterwards)."""
        return m

    def _pool_at(self, positions: torch.Tensor, rows: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor | float]:
        """The snap's pool at landing positions of queries `rows`: one more evaluation there."""
        result = self._step(positions, rows, m)
        return fit_width(result.evaluation.top_ids, m), result.cost

    # -- search ----------------------------------------------------------------------------
    def _search_scope(self) -> ContextManager[Any]:
        """torch's thread count and no autograd, once per search or single-query loop."""
        scope = ExitStack()
        scope.enter_context(torch_threads(self.threads))
        scope.enter_context(torch.no_grad())
        return scope

    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._climb_and_snap(self.to_units(Q), k)

    def _climb_and_snap(self, q: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        v = self.query_values
        rule = make_rule(v["ascent"], self.potential_impl, v["rate"], power=v["power"])
        m = min(self.n_train, max(v["m"], k))
        start_cost = self._prepare(q)
        tracked = self._tracked_during_climb(m) if v["snap"] == "final" else 0
        result = climb(q, rule, self._step, max_iters=v["max_iters"], tol=v["tol"], track_m=tracked)
        pool, snap_cost, reevaluated = self._gather_pool(result, m, v["snap"])
        dot = self.metric == "dot"
        ids, to_query = rerank(q, self._X, pool, k, inner=dot)
        pool_size = (pool >= 0).sum(1).double()
        dist_comps = start_cost + result.dist_comps + snap_cost + pool_size
        self._record(result, nearest_in_pool(result.positions, self._X, pool), dist_comps, reevaluated, m)
        raw = to_query.double() * (self.scale**2 if dot else self.scale)  # dot: q.x in scale units is q.x / scale^2
        return ids.cpu().numpy(), raw.float().cpu().numpy()

    def _gather_pool(self, result: Climb, m: int, mode: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pool ids Q x m, distance computations per query, which queries were evaluated again)."""
        n, device = len(result.positions), result.positions.device
        cost = torch.zeros(n, dtype=torch.float64, device=device)
        if mode == "exact":
            cost += float(self.n_train)
            return nearest_candidates(result.positions, self.field(), m), cost, torch.ones(n, dtype=torch.bool, device=device)
        if result.top_ids is None:
            pool = torch.full((n, m), -1, dtype=torch.long, device=device)
            again = torch.ones(n, dtype=torch.bool, device=device)
        else:
            pool, again = result.top_ids.clone(), ~result.pool_at_landing
        rows = again.nonzero().flatten()
        if len(rows):
            fresh, fresh_cost = self._pool_at(result.positions[rows], rows, m)
            pool[rows] = fresh
            cost[rows] += torch.as_tensor(fresh_cost, dtype=torch.float64, device=device)
        return pool, cost, again

    def _record(
        self, result: Climb, to_snap: torch.Tensor, dist_comps: torch.Tensor, reevaluated: torch.Tensor, m: int
    ) -> None:
        positions = self.units.outward(result.positions)
        self.last_positions = positions.cpu().numpy()
        self._stats = SearchStats(
            iterations=result.iterations.cpu().numpy(),
            dist_comps=dist_comps.cpu().numpy(),
            extra={
                "position_to_snap": (to_snap.double() * self.scale).cpu().numpy(),
                "last_step": (result.last_step.double() * self.scale).cpu().numpy(),
                "snap_reevaluated": reevaluated.cpu().numpy(),
                "positions": self.last_positions,
                **self._extra_stats(),
            },
            scalars={
                "scale": self.scale, "pool_m": float(m), "snap_reevaluated_rate": float(reevaluated.double().mean()),
                **self._scalar_stats(),
            },
        )

    def _extra_stats(self) -> dict[str, np.ndarray]:
        """Further per-query arrays of the last search (variant specific)."""
        return {}

    def _scalar_stats(self) -> dict[str, float]:
        """Further per-search numbers of the last search (variant specific)."""
        return {}

    def index_bytes(self) -> int | None:
        X = getattr(self, "_X", None)
        return None if X is None else X.element_size() * X.numel() + self._structure_bytes()

    def _structure_bytes(self) -> int:
        return 0

    # -- the cost estimate (algorithms.base.Cost) -------------------------------------------------
    @classmethod
    def cost(cls, build: Mapping[str, Any], query: Mapping[str, Any], n_train: int, dimension: int, k: int) -> Cost:
        """Evaluations x the points each sums x the potential's work per point, plus the snap."""
        per_point = cls.potential_impl.evaluation_work(dimension)
        points, lookups = cls.points_per_evaluation(build, query, n_train)
        evaluations = cls.expected_evaluations(query)
        work = {kind: evaluations * points * amount for kind, amount in per_point.items()}
        work["scan"] = work.get("scan", 0.0) + evaluations * lookups
        if query.get("snap") == "exact":
            work["matmul"] = work.get("matmul", 0.0) + n_train
        built = {"scan": 2.0 * n_train}
        if build.get("scale") == "auto":
            built["matmul"] = 3.0 * min(n_train, SAMPLE) * n_train  # an exact search of the sample, with its top-2
        for kind, amount in cls.structure_work(build, n_train).items():
            built[kind] = built.get(kind, 0.0) + amount
        return Cost(query=work, build=built)

    @classmethod
    def expected_evaluations(cls, query: Mapping[str, Any]) -> float:
        """Evaluations per query: the first, one per expected step, and the snap's pool (the
        top-m tracking of an evaluation costs about as much as one more); the climb-less control
        (`ascent=none`) evaluates once, at the query, and ranks its pool there (half an evaluation
        more, measured). A control that climbs (potential-1-fixedpoint's note's rule) climbs."""
        rule = rule_class(query["ascent"])
        if not rule.moves:
            return 1.5
        if rule.needs_mean or rule.needs_fixed_point:  # a weighted-mean map: mean-shift or the fixed point
            steps = min(query["max_iters"], MEANSHIFT_STEPS)
        else:
            steps = cls.potential_impl.climb_share * query["max_iters"]
        return 2.0 + steps

    @classmethod
    def points_per_evaluation(cls, build: Mapping[str, Any], query: Mapping[str, Any], n_train: int) -> tuple[float, float]:
        """(points one evaluation sums, look-ups it makes to find them, in "scan" units): every
        point and none for the full potential; a variant's candidate set otherwise."""
        return float(n_train), 0.0

    @classmethod
    def structure_work(cls, build: Mapping[str, Any], n_train: int) -> dict[str, float]:
        """Work of building the variant's search structure (k-means, a graph), by kind."""
        return {}


def tensor_bytes(*tensors: torch.Tensor) -> int:
    """Bytes held by the given tensors (a structure's share of `index_bytes`)."""
    return sum(t.element_size() * t.numel() for t in tensors)
