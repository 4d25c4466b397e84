"""The harness adapter: one algorithm `potential-<name>` per registered potential.

`fit` only stores the data: centred (so fp32 distance expansions lose little), divided by
the length scale (so parameters are dimensionless) and moved to the device. Everything that
shapes the climb is a query parameter, so one fit serves a whole sweep. Each potential gets
its own adapter subclass, whose query parameters are the common ones plus the potential's
own hyper-parameters: `python -m harness list` then shows exactly what each one takes.
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

import numpy as np
import torch

from algorithms import registry
from algorithms._threads import torch_threads
from algorithms.base import Adapter, Param, SearchStats, positive
from harness.errors import ParameterError

from .ascent import climb, make_rule, rule_names
from .potentials import KERNELS, PRECISIONS, Field, Potential, on_register
from .scale import Units, check_scale
from .snap import SNAP_MODES, nearest_candidates, snap

DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
        "ascent": Param(str, default_rule, "ascent rule", choices=tuple(rule_names())),
        "rate": Param((float, type(None)), None, "step size in scale units (null: rule default, normalised 5e-4, adam 1e-2)", _optional_positive),
        "power": Param(float, 1.1, "normalised rule: step = rate * g / |g|^power (the note's code: 1.1)", _non_negative),
        "max_iters": Param(int, 100, "iteration cap per query", positive),
        "tol": Param(float, 1e-3, "stop a query when its step (scale units) is shorter", _non_negative),
        "snap": Param(str, "topm", "near -> exact: 'exact' (full pass) or 'topm' (top-m contributors)", choices=SNAP_MODES),
        "m": Param(int, 16, "topm snap: contributors tracked (at least k are used)", positive),
        "memory_mb": Param(float, 128.0, "memory budget of one evaluation block, MiB", positive),
    }


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


class PotentialAdapter(Adapter):
    """Gradient-potential search: climb the potential from the query, then snap to a data point."""

    devices = ("cpu", "cuda")
    potential_impl: ClassVar[Potential]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ParameterError(f"{self.name}: device 'cuda' requested but no CUDA GPU is visible to torch")
        self.last_positions: np.ndarray | None = None
        self.scale = 1.0

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.params["dtype"]]

    def check_query_params(self, values: Mapping[str, Any]) -> None:
        make_rule(values["ascent"], self.potential_impl, values["rate"])
        check_kernel(self.name, self.potential_impl, values, self.device, self.params["dtype"])

    def _fit(self, X: np.ndarray) -> None:
        with torch_threads(self.threads):
            self.units = Units(X, self.params["scale"], self.dtype, self.device, seed=self.seed)
            self.scale, self._X = self.units.scale, self.units.data

    def to_units(self, Q: np.ndarray) -> torch.Tensor:
        return self.units.inward(Q)

    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        with torch_threads(self.threads), torch.no_grad():
            return self._climb_and_snap(self.to_units(Q), k)

    def _climb_and_snap(self, q: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        v = self.query_values
        potential = self.potential_impl
        field = Field.of(self._X, v["memory_mb"], kernel=v["kernel"], precision=v["precision"])
        hp = {name: v[name] for name in potential.params}
        rule = make_rule(v["ascent"], potential, v["rate"], power=v["power"])
        track_m = min(field.n, max(v["m"], k)) if v["snap"] == "topm" else 0
        # the sdpa kernel cannot see its top contributors: one extra pass after the climb, at the
        # final positions, instead of one per iteration; it is counted as a full pass
        during = 0 if v["kernel"] == "sdpa" else track_m
        result = climb(q, potential, field, hp, rule, max_iters=v["max_iters"], tol=v["tol"], track_m=during)
        top_ids, extra_cost = result.top_ids, 0
        if track_m and not during:
            top_ids = top_contributors(result.positions, field, track_m)
            extra_cost = field.n
        ids, to_position, snap_cost = snap(result.positions, field, k, v["snap"], top_ids)
        snap_cost += extra_cost
        to_query = (self._X[ids] - q[:, None, :]).norm(dim=2) * self.scale
        positions = self.units.outward(result.positions)
        self.last_positions = positions.cpu().numpy()
        iterations = result.iterations.cpu().numpy()
        self._stats = SearchStats(
            iterations=iterations,
            dist_comps=iterations * field.n + snap_cost,
            extra={
                "position_to_snap": (to_position[:, 0].double() * self.scale).cpu().numpy(),
                "last_step": (result.last_step.double() * self.scale).cpu().numpy(),
                "positions": self.last_positions,
            },
            scalars={"scale": self.scale, "track_m": float(track_m)},
        )
        return ids.cpu().numpy(), to_query.float().cpu().numpy()

    def index_bytes(self) -> int | None:
        X = getattr(self, "_X", None)
        return None if X is None else X.element_size() * X.numel()


def top_contributors(positions: torch.Tensor, field: Field, m: int) -> torch.Tensor:
    """The m data points nearest to each position: for radial potentials, the top-m contributors."""
    return nearest_candidates(positions, field, m)


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


def default_sweep(potential: Potential) -> dict[str, Any]:
    """The sweep of a potential that declares none: a few Adam rates on a query subset."""
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
        "build_params": build,
        "query_params": {**potential.params, **common, **evaluation_query()},
        "__doc__": f"Gradient-potential search with the {potential.name} potential. {potential.description}",
        "__module__": __name__,
    }
    return type(f"PotentialAdapter_{potential.name}", (PotentialAdapter,), attrs)


_CLASSES: dict[str, type[PotentialAdapter]] = {}


def register_algorithm(potential: Potential) -> None:
    """Listener: register `potential-<name>` with the harness when a potential is registered.

    Registering the same kind of potential again (a reloaded module) rebinds the existing
    adapter class instead of clashing with it in the algorithm registry.
    """
    known = _CLASSES.get(potential.name)
    if known is not None and type(known.potential_impl) is type(potential):
        known.potential_impl = potential
        return
    cls = adapter_class(potential)
    registry.add(
        algorithm_name(potential.name),
        cls,
        fixed={"potential": potential.name},
        sweep=potential.sweep if potential.sweep is not None else default_sweep(potential),
        description=potential.description or cls.__doc__,
    )
    _CLASSES[potential.name] = cls


on_register(register_algorithm)
