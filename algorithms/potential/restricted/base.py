"""What every restricted variant shares: units, the counted climb, snap, stats, registration.

A restricted variant differs from `potential-<name>` in one place only: where the potential
is summed at each step. Fit puts the data in the same units as `PotentialAdapter` (centred,
divided by the length scale, on the device) so that the potentials' parameters mean the same
thing in both; then the variant builds its structure. Search climbs with `climb_counted`,
snaps with `algorithms.potential.snap`, and reports distance computations per query:
structure look-ups (centroids, entry points) + every candidate distance of every step +
the snap's distances + the k distances of the returned answer to the query.

Search structures: FAISS k-means and hnswlib run on the CPU at fit time only; what the climb
needs (centroids, cell lists, graph adjacency, plane grids) is converted to torch tensors on
the adapter's device, so a CUDA search never leaves the GPU.
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

import numpy as np
import torch

from algorithms import registry
from algorithms._threads import torch_threads
from algorithms.base import Adapter, Param, SearchStats
from harness.errors import ParameterError

from ..adapter import COMMON_BUILD, DTYPES, common_query
from ..ascent import make_rule
from ..potentials import Field, Potential, get_potential
from ..scale import Units
from ..snap import snap
from .climb import CountedClimb, StepResult, climb_counted


class RestrictedAdapter(Adapter):
    """Gradient-potential search whose every step sums the potential over a small candidate set."""

    devices = ("cpu", "cuda")
    potential_impl: ClassVar[Potential]
    #: the variant's own build / query parameters (beside the potential's and the common ones)
    structure_build: ClassVar[dict[str, Param]] = {}
    structure_query: ClassVar[dict[str, Param]] = {}

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
            self.units = Units(X, self.params["scale"], self.dtype, self.device, seed=self.seed)
            self.scale, self._X = self.units.scale, self.units.data
            self._sq = (self._X * self._X).sum(1)
            self._build_structure(self._X)

    def _build_structure(self, X: torch.Tensor) -> None:
        """Build the variant's search structure on the data in scale units (device tensor)."""

    def to_units(self, Q: np.ndarray) -> torch.Tensor:
        return self.units.inward(Q)

    def field(self) -> Field:
        return Field(X=self._X, sq_norms=self._sq, memory_mb=self.query_values["memory_mb"])

    # -- search ----------------------------------------------------------------------------
    def check_query_params(self, values: Mapping[str, Any]) -> None:
        make_rule(values["ascent"], self.potential_impl, values["rate"])
        self.check_config(self.params, values, 1, self.n_train, self.dimension)

    def hyper(self) -> dict[str, Any]:
        return {name: self.query_values[name] for name in self.potential_impl.params}

    def _prepare(self, q: torch.Tensor) -> torch.Tensor:
        """Per-search state (e.g. a frontier); returns distance computations spent per query."""
        return torch.zeros(len(q), dtype=torch.float64, device=q.device)

    def _step(self, positions: torch.Tensor, active: torch.Tensor, track_m: int) -> StepResult:
        raise NotImplementedError

    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        with torch_threads(self.threads), torch.no_grad():
            return self._climb_and_snap(self.to_units(Q), k)

    def _climb_and_snap(self, q: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        v = self.query_values
        rule = make_rule(v["ascent"], self.potential_impl, v["rate"], power=v["power"])
        track_m = min(self.n_train, max(v["m"], k)) if v["snap"] == "topm" else 0
        start_cost = self._prepare(q)
        result = climb_counted(
            q, rule, lambda p, a: self._step(p, a, track_m), max_iters=v["max_iters"], tol=v["tol"], track_m=track_m
        )
        ids, to_position, snap_cost = snap(result.positions, self.field(), k, v["snap"], result.top_ids)
        to_query = (self._X[ids] - q[:, None, :]).norm(dim=2) * self.scale
        dist_comps = result.dist_comps + start_cost + snap_cost + ids.shape[1]
        self._record(result, to_position, dist_comps, track_m)
        return ids.cpu().numpy(), to_query.float().cpu().numpy()

    def _record(self, result: CountedClimb, to_position: torch.Tensor, dist_comps: torch.Tensor, track_m: int) -> None:
        positions = self.units.outward(result.positions)
        self.last_positions = positions.cpu().numpy()
        self._stats = SearchStats(
            iterations=result.iterations.cpu().numpy(),
            dist_comps=dist_comps.cpu().numpy(),
            extra={
                "position_to_snap": (to_position[:, 0].double() * self.scale).cpu().numpy(),
                "last_step": (result.last_step.double() * self.scale).cpu().numpy(),
                "positions": self.last_positions,
                **self._extra_stats(),
            },
            scalars={"scale": self.scale, "track_m": float(track_m), **self._scalar_stats()},
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


def tensor_bytes(*tensors: torch.Tensor) -> int:
    """Bytes held by the given tensors (a structure's share of `index_bytes`)."""
    return sum(t.element_size() * t.numel() for t in tensors)


def make_variant(
    base: type[RestrictedAdapter],
    potential_name: str,
    name: str,
    sweep: Mapping[str, Any],
    doc: str,
    default_run: bool = True,
) -> type[RestrictedAdapter]:
    """Register `name`: `base` bound to a potential, with every parameter declared."""
    potential = get_potential(potential_name)
    common = common_query(potential)
    build = {
        "potential": Param(str, potential.name, "the potential (fixed)", choices=(potential.name,)),
        **COMMON_BUILD,
        **base.structure_build,
    }
    attrs = {
        "name": name,
        "potential_impl": potential,
        "build_params": build,
        "query_params": {**potential.params, **base.structure_query, **common},
        "__doc__": doc,
        "__module__": base.__module__,
    }
    cls = type(f"{base.__name__}_{potential.name}", (base,), attrs)
    registry.add(
        name, cls, fixed={"potential": potential.name}, sweep=sweep, description=doc, default_run=default_run
    )
    return cls
