"""What every restricted variant adds to `ClimbingAdapter`: its structure, its checks, registration.

A restricted variant differs from `potential-<name>` in one place only: where the potential
is summed at each step (`_step`, over a per-query candidate set). Frame, climb, snap,
control and stats are `algorithms.potential.climbing`'s. The variant reports distance
computations per query exactly: structure look-ups (centroids, entry points) + every
candidate distance of every step + the snap's + the pool's distances to the query.

Search structures: FAISS k-means and hnswlib run on the CPU at fit time only; what the climb
needs (centroids, cell lists, graph adjacency, plane grids) is converted to torch tensors on
the adapter's device, so a CUDA search never leaves the GPU.
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

from algorithms import registry
from algorithms.base import Param

from ..climbing import COMMON_BUILD, ClimbingAdapter, common_query, tensor_bytes
from ..potentials import get_potential

__all__ = ["RestrictedAdapter", "make_variant", "tensor_bytes"]


class RestrictedAdapter(ClimbingAdapter):
    """Gradient-potential search whose every step sums the potential over a small candidate set."""

    #: the variant's own build / query parameters (beside the potential's and the common ones)
    structure_build: ClassVar[dict[str, Param]] = {}
    structure_query: ClassVar[dict[str, Param]] = {}

    def check_query_params(self, values: Mapping[str, Any]) -> None:
        super().check_query_params(values)
        self.check_config(self.params, values, 1, self.n_train, self.dimension)


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
