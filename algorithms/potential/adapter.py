"""The harness adapter: one algorithm `potential-<name>` per registered potential.

`fit` only stores the data: centred (so fp32 distance expansions lose little), divided by
the length scale (so parameters are dimensionless) and moved to the device. Everything that
shapes the climb is a query parameter, so one fit serves a whole sweep. Each potential gets
its own adapter subclass, whose query parameters are the common ones plus the potential's
own hyper-parameters: `python -m harness list` then shows exactly what each one takes.
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch

from algorithms import registry
from algorithms.base import Param
from harness.errors import ParameterError

from .ascent import StepResult
from .climbing import COMMON_BUILD, DTYPES, ClimbingAdapter, common_query
from .potentials import KERNELS, PRECISIONS, Field, Potential, on_register

__all__ = ["COMMON_BUILD", "DTYPES", "PotentialAdapter", "adapter_class", "algorithm_name", "common_query"]


def evaluation_query() -> dict[str, Param]:
    """How a `potential-<name>` evaluates (not what): the kernel and the sdpa kernel's precision.

    Kept out of `common_query` on purpose: adapters that build their own fields (the restricted
    variants) share the common parameters but not these, and must not advertise knobs they ignore.
    """
    return {
        "kernel": Param(str, "matmul", "evaluation kernel: 'matmul' (streaming eager blocks), 'sdpa' (gaussian: "
                        "fused attention), 'compiled' (torch.compile of the block, eager if compile fails)",
                        choices=KERNELS),
        "precision": Param(str, "fp32", "sdpa kernel's score precision: fp32 (= the build dtype), fp16, bf16; "
                           "the snap re-ranks in fp32 or better whatever this is", choices=PRECISIONS),
    }


class PotentialAdapter(ClimbingAdapter):
    """Gradient-potential search over the whole data: climb from the query, snap to data points."""

    potential_impl: ClassVar[Potential]

    def check_query_params(self, values: Mapping[str, Any]) -> None:
        super().check_query_params(values)
        check_kernel(self.name, self.potential_impl, values, self.device, self.params["dtype"])

    def field(self) -> Field:
        v = self.query_values
        return Field(X=self._X, sq_norms=self._sq, memory_mb=v["memory_mb"], kernel=v["kernel"], precision=v["precision"])

    def _prepare(self, q: torch.Tensor) -> torch.Tensor:
        self._search_field = self.field()  # one per search: the sdpa kernel caches its keys in it
        return super()._prepare(q)

    def _step(self, positions: torch.Tensor, active: torch.Tensor, track_m: int) -> StepResult:
        ev = self.potential_impl.evaluate(positions, self._search_field, self.hyper(), track_m)
        return StepResult(ev, float(self.n_train))

    def _tracked_during_climb(self, m: int) -> int:
        # the sdpa kernel cannot see its top contributors: the snap gathers them once, at the
        # landing positions, instead of a tracking pass per iteration
        return 0 if self.query_values["kernel"] == "sdpa" else m

    def _pool_at(self, positions: torch.Tensor, rows: torch.Tensor, m: int) -> tuple[torch.Tensor, float]:
        pool = self.potential_impl.top_contributors(positions, self._search_field, self.hyper(), m)
        return pool, float(self.n_train)


def check_kernel(owner: str, potential: Potential, values: Mapping[str, Any], device: str, dtype: str) -> None:
    """Refuse a kernel or precision this potential, device or dtype cannot run, saying what can."""
    kernel, precision = values["kernel"], values["precision"]
    if kernel not in potential.kernels:
        raise ParameterError(
            f"{owner}: kernel {kernel!r} is not implemented for the {potential.name} potential",
            f"kernels of {potential.name}: {', '.join(potential.kernels)}",
        )
    if precision != "fp32" and kernel != "sdpa":
        raise ParameterError(
            f"{owner}: precision {precision!r} needs kernel 'sdpa' (the {kernel!r} kernel computes in the build dtype)",
            "set kernel: sdpa, or precision: fp32",
        )
    if kernel == "sdpa" and device == "cuda" and precision == "fp32" and dtype == "float64":
        raise ParameterError(
            f"{owner}: kernel 'sdpa' on CUDA has no fused float64 kernel",
            "use dtype float32, precision fp16/bf16, or kernel 'matmul'",
        )


def algorithm_name(potential_name: str) -> str:
    """`potential_1` -> `potential-1`, `gaussian` -> `potential-gaussian`."""
    short = potential_name.removeprefix("potential_").replace("_", "-")
    return f"potential-{short}"


def default_sweep() -> dict[str, Any]:
    """The sweep of a potential that declares none: one Adam climb on a query subset. The same
    for every potential (nothing in a potential says which rate suits it); a fresh dict each
    call, so one registration cannot edit another's."""
    return {"query": {"ascent": ["adam"], "rate": [0.05], "max_iters": [40]}, "max_queries": 100}


def adapter_class(potential: Potential) -> type[PotentialAdapter]:
    """A PotentialAdapter subclass bound to `potential`, with its parameters declared."""
    common = common_query(potential)
    taken = set(common) | set(evaluation_query()) | set(COMMON_BUILD) | {"potential"}
    clash = sorted(set(potential.params) & taken)
    if clash:
        raise ValueError(f"potential {potential.name!r}: parameter names {clash} are taken by the adapter")
    name = algorithm_name(potential.name)
    build = {"potential": Param(str, potential.name, "the potential (fixed)", choices=(potential.name,)), **COMMON_BUILD}
    attrs = {
        "name": name,
        "potential_impl": potential,
        "metrics": tuple(potential.metrics),
        "build_params": build,
        "query_params": {**potential.params, **common, **evaluation_query()},
        "__doc__": f"Gradient-potential search with the {potential.name} potential. {potential.description}",
        "__module__": __name__,
    }
    return type(f"PotentialAdapter_{potential.name}", (PotentialAdapter,), attrs)


_CLASSES: dict[str, type[PotentialAdapter]] = {}


def register_algorithm(potential: Potential) -> None:
    """Listener: register `potential-<name>` with the harness when a potential is registered.

    Registering the same potential again (its module reloaded: the same file and definition)
    rebinds the existing adapter class instead of clashing with it in the algorithm registry.
    The algorithm is registered as defined where the potential is, so that a name clash names
    the potential's file, not this one.
    """
    known = _CLASSES.get(potential.name)
    if known is not None and known.potential_impl.source() == potential.source():
        known.potential_impl = potential
        return
    cls = adapter_class(potential)
    registry.add(
        algorithm_name(potential.name),
        cls,
        fixed={"potential": potential.name},
        sweep=potential.sweep if potential.sweep is not None else default_sweep(),
        description=potential.description or cls.__doc__,
        source=potential.source(),
    )
    _CLASSES[potential.name] = cls


on_register(register_algorithm)
