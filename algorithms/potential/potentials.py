"""Potentials: a peak on every data point, their sum climbed from the query.

A potential is a registered object that, given a batch of positions (Q x D) and the data
(N x D, already centred and measured in scale units), returns the potential, its gradient and
the ids of the top contributors. Two families cover the note and most new ideas:

- `RadialPotential`: a function psi(r) of the distance r = ||x - q||. Distances come from
  matrix products (||q||^2 + ||x||^2 - 2 q.x), so an evaluation costs about one brute-force
  pass. Its gradient is sum_x psi'(r) (q - x) / r: two more matrix-vector style reductions.
- `CoordinatePotential` (coordinate.py): a function of the per-coordinate differences
  x - q, for potentials that split the space into low-dimensional pieces (potential_2, naive).

A new variant defines psi(r) (or a per-point contribution of the differences) and nothing
else: the derivative then comes from autograd, elementwise, which is exact and still cheap.
Registering it (`register_potential`, or the `radial_potential` decorator) also registers an
algorithm `potential-<name>` with the harness, see adapter.py.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field as dataclass_field
from typing import Any, Callable, ClassVar, Mapping

import torch

from algorithms._sources import Source, source_of_class, source_of_function
from algorithms.base import Param
from harness.errors import ConfigError

from .checks import DTYPES, SAMPLE_DISTANCES, CheckFailed, attempt, autograd_slope, call_text, expect_tensor
from .chunks import RunningTopM, block_shape, blocks, cpu_capped
from .fused import compiled_call

Hyper = Mapping[str, Any]

#: how an evaluation is computed: streaming eager blocks, fused attention (Gaussian), compiled blocks
KERNELS = ("matmul", "sdpa", "compiled")
#: score precision of the sdpa kernel; 'fp32' means the data's own dtype (fp32, or fp64 if stored so)
PRECISIONS = ("fp32", "fp16", "bf16")
#: query rows a radial block keeps at least, so its matrix products are not memory-bound (chunks.py)
RADIAL_MIN_ROWS = 256
#: a radial block's budget on a CPU at most (chunks.cpu_capped): 256 rows x 4096 points per temporary
RADIAL_CPU_MB = 32.0


@dataclass
class Field:
    """The data a potential is summed over: centred, in scale units, on the compute device.

    `kernel` and `precision` choose how (not what) a potential evaluates, see KERNELS; a
    potential that lacks the kernel asked for evaluates with its streaming eager path.
    `cache` holds what a kernel derives from the data once per field (e.g. the sdpa kernel's
    low-precision augmented keys) so that a climb's iterations do not rebuild it.
    """

    X: torch.Tensor
    sq_norms: torch.Tensor
    memory_mb: float = 128.0
    kernel: str = "matmul"
    precision: str = "fp32"
    cache: dict[Any, Any] = dataclass_field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, X: torch.Tensor, memory_mb: float = 128.0, kernel: str = "matmul", precision: str = "fp32") -> "Field":
        return cls(X=X, sq_norms=squared_norms(X), memory_mb=memory_mb, kernel=kernel, precision=precision)

    @property
    def n(self) -> int:
        return self.X.shape[0]


def squared_norms(X: torch.Tensor, rows: int = 65536) -> torch.Tensor:
    """||x||^2 per row, in row blocks: `(X * X).sum(1)` would allocate a second copy of the data
    (measured by bench/memory.py: +488 MiB on 1M x 128), far beyond any evaluation budget."""
    if len(X) <= rows:
        return (X * X).sum(1)
    return torch.cat([(part * part).sum(1) for part in torch.split(X, rows)])


def nearest_candidates(positions: torch.Tensor, field: Field, count: int) -> torch.Tensor:
    """Ids (Q x count) of the data points nearest to each position, by chunked matmul."""
    qc, nc = block_shape(len(positions), field.n, 1, positions.element_size(), field.memory_mb)
    out = []
    for rows in blocks(len(positions), qc):
        p = positions[rows]
        best_d = p.new_full((len(p), 0), float("inf"))
        best_i = torch.zeros((len(p), 0), dtype=torch.long, device=p.device)
        for cols in blocks(field.n, nc):
            d2 = field.sq_norms[cols] - 2.0 * (p @ field.X[cols].T)
            take = min(count, d2.shape[1])
            d, i = d2.topk(take, dim=1, largest=False)
            best_d = torch.cat([best_d, d], 1)
            best_i = torch.cat([best_i, i + cols.start], 1)
            if best_d.shape[1] > count:
                best_d, order = best_d.topk(count, dim=1, largest=False)
                best_i = best_i.gather(1, order)
        out.append(best_i)
    return torch.cat(out) if out else torch.zeros((0, count), dtype=torch.long, device=positions.device)


@dataclass
class Evaluation:
    """The potential at a batch of positions.

    `value` and `grad` are of the potential itself, except for log-domain potentials (the
    Gaussian), where they are of log Psi: the same ascent direction, without underflow.
    `top_ids` are the m data points contributing most. `mean` is the potential's fixed-point
    map, where one is defined: grad Psi = 0 solved for q as a weighted mean of the data. For the
    Gaussian it is the softmax-weighted mean (mean-shift); for a radial psi the mean with weights
    -psi'(r)/r (see `RadialPotential`). The Gaussian's sdpa kernel cannot see the normaliser, so
    there `value` is NaN (no ascent rule reads it).
    """

    value: torch.Tensor
    grad: torch.Tensor
    top_ids: torch.Tensor | None = None
    mean: torch.Tensor | None = None


class Potential(abc.ABC):
    """A registered potential: its name, hyper-parameters (scale units) and evaluation."""

    name: str = ""
    params: ClassVar[dict[str, Param]] = {}
    description: str = ""
    #: default sweep of the algorithm this potential is registered as (None: adapter's default)
    sweep: Mapping[str, Any] | None = None
    #: value and gradient are of log Psi (see Evaluation)
    log_domain: bool = False
    #: whether Evaluation.mean is the Gaussian's softmax mean, i.e. whether the mean-shift rule applies
    has_mean: bool = False
    #: whether Evaluation.mean is filled with the potential's fixed-point map (the `fixed-point` rule)
    has_fixed_point: bool = False
    #: Field.kernel values this potential implements (others are refused by the adapter)
    kernels: ClassVar[tuple[str, ...]] = ("matmul",)
    #: dataset distances its adapter serves (algorithms.base.Adapter.metrics). "dot" only where the
    #: evaluation reads the data's squared norms from `Field.sq_norms` alone and means inner-product
    #: attention when they are zero (the Gaussian: logits beta q.x, no bias)
    metrics: ClassVar[tuple[str, ...]] = ("euclidean", "angular")
    #: the function a decorator wrapped into this class (register_function_potential), if any
    defined_by: ClassVar[Source | None] = None

    def source(self) -> Source:
        """The file and the class (or decorated function) that define this potential."""
        return type(self).defined_by or source_of_class(type(self))

    def self_check(self, hp: Hyper) -> None:
        """Evaluate once on a tiny field (6 points, 2 positions, 3 dimensions, float32) with the
        hyper-parameters `hp`; raise CheckFailed if the evaluation fails or gives a value,
        gradient or fixed-point map of the wrong shape or dtype, or not finite. Subclasses
        first check their elementwise function, where a message can be more precise."""
        generator = torch.Generator().manual_seed(0)
        X = torch.randn(6, 3, generator=generator)
        Q = X[:2] + 0.1 * torch.randn(2, 3, generator=generator)
        what = call_text("evaluate", "positions", hp)
        with torch.no_grad():  # as a climb evaluates it
            ev = attempt(what, self.evaluate, Q, Field.of(X), hp, 2, hp=hp)
        if not isinstance(ev, Evaluation):
            raise CheckFailed(f"{what} returned {type(ev).__name__}, expected an Evaluation")
        expect_tensor(f"{what}: the value", ev.value, (2,), X.dtype)
        expect_tensor(f"{what}: the gradient", ev.grad, (2, 3), X.dtype)
        if ev.mean is not None:
            expect_tensor(f"{what}: the fixed-point map", ev.mean, (2, 3), X.dtype)

    @abc.abstractmethod
    def evaluate(self, Q: torch.Tensor, field: Field, hp: Hyper, track_m: int = 0) -> Evaluation:
        """Potential, gradient and (if track_m > 0) top-m contributor ids at positions Q."""

    #: share of max_iters a gradient climb is expected to take (the time estimate only; the
    #: measured iterations are in every record): most never get below tol before their cap
    climb_share: float = 1.0

    def evaluation_work(self, dimension: int) -> dict[str, float]:
        """Work of one evaluation per (position, data point), by kind (`algorithms.base.Cost`),
        for the harness's time estimate: two products (distances, weighted sum) and an eager
        elementwise chain (psi, its slope, the weights: about 40 operations, measured)."""
        return {"matmul": 2.0, "pointwise": 40.0}

    def __call__(self, Q: torch.Tensor, field: Field, hp: Hyper) -> torch.Tensor:
        return self.evaluate(Q, field, hp).value

    def top_contributors(self, Q: torch.Tensor, field: Field, hp: Hyper, m: int) -> torch.Tensor:
        """Ids (Q x m) of the m points contributing most to the potential at positions Q.

        What the snap's pool is made of. By default one evaluation with tracking; potentials
        whose contributions fall with distance override it with a cheaper nearest-points pass.
        """
        return self.evaluate(Q, field, hp, m).top_ids


class RadialPotential(Potential):
    """Psi(q) = sum_x psi(||x - q||) with psi decreasing in r (a peak on every point).

    Subclasses define `psi`, and `dpsi` when they know it; otherwise autograd supplies it.
    Top contributors are ranked by distance, which for a decreasing psi is the same order
    and is not spoiled by contributions that underflow to equal zeros.

    Fixed-point map (`Evaluation.mean`): grad Psi = sum_x psi'(r) (q - x) / r = 0 solved for q
    gives q = sum_x a_x x / sum_x a_x with a_x = -psi'(r)/r >= 0, the weights the gradient
    already computes. For the Gaussian a_x is proportional to psi: mean-shift. Iterating it is
    the generalised mean-shift of Comaniciu and Meer, which never decreases Psi when the
    profile k(s) = psi(sqrt(s)) is convex and decreasing (true of potential_1 and cauchy). A
    position on a data point (r = 0, infinite weight) maps to that point; where every weight is
    zero (all points past a clamp, or underflowed) the map leaves the position where it is.
    """

    has_fixed_point = True

    def psi(self, r: torch.Tensor, hp: Hyper) -> torch.Tensor:
        raise NotImplementedError

    def dpsi(self, r: torch.Tensor, hp: Hyper) -> torch.Tensor:
        """d psi / d r, elementwise; by autograd unless a subclass knows it analytically."""
        with torch.enable_grad():
            rr = r.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.psi(rr, hp).sum(), rr)
        return grad

    def psi_and_dpsi(self, r: torch.Tensor, hp: Hyper) -> tuple[torch.Tensor, torch.Tensor]:
        """Both at once: autograd gets them in one pass, analytic forms share exponentials."""
        if type(self).dpsi is not RadialPotential.dpsi:
            return self.psi(r, hp), self.dpsi(r, hp)
        with torch.enable_grad():
            rr = r.detach().requires_grad_(True)
            value = self.psi(rr, hp)
            (grad,) = torch.autograd.grad(value.sum(), rr)
        return value.detach(), grad

    kernels: ClassVar[tuple[str, ...]] = ("matmul", "compiled")

    def self_check(self, hp: Hyper) -> None:
        """psi (and dpsi, analytic or by autograd) on a few distances in each dtype, then the
        evaluation on a tiny field (Potential.self_check)."""
        analytic = type(self).dpsi is not RadialPotential.dpsi
        psi_call, dpsi_call = call_text("psi", "r", hp), call_text("dpsi", "r", hp)
        for dtype in DTYPES:
            r = torch.tensor(SAMPLE_DISTANCES, dtype=dtype)
            with torch.enable_grad():
                # with dpsi given, psi is called as a climb calls it: on distances without a graph
                rr = r if analytic else r.clone().requires_grad_(True)
                value = expect_tensor(psi_call, attempt(psi_call, self.psi, rr, hp, hp=hp), r.shape, dtype)
                if analytic:
                    expect_tensor(dpsi_call, attempt(dpsi_call, self.dpsi, r, hp, hp=hp), r.shape, dtype)
                else:
                    autograd_slope(psi_call, value, rr)
            both = call_text("psi_and_dpsi", "r", hp)
            value, slope = attempt(both, self.psi_and_dpsi, r.clone(), hp, hp=hp)
            expect_tensor(f"{both}: psi", value, r.shape, dtype)
            expect_tensor(f"{both}: dpsi", slope, r.shape, dtype)
        super().self_check(hp)

    def top_contributors(self, Q: torch.Tensor, field: Field, hp: Hyper, m: int) -> torch.Tensor:
        """psi decreases with r: the top contributors are the nearest points (one matmul pass)."""
        return nearest_candidates(Q, field, m)

    def evaluate(self, Q: torch.Tensor, field: Field, hp: Hyper, track_m: int = 0) -> Evaluation:
        budget = cpu_capped(field.memory_mb, Q.device, RADIAL_CPU_MB)
        qc, nc = block_shape(len(Q), field.n, 1, Q.element_size(), budget, min_rows=RADIAL_MIN_ROWS)
        parts = [self._evaluate_rows(Q[rows], field, hp, nc, track_m) for rows in blocks(len(Q), qc)]
        return _concat(parts)

    def block_terms(
        self, q: torch.Tensor, q_sq: torch.Tensor, x: torch.Tensor, x_sq: torch.Tensor, hp: Hyper
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One (query block x data block): (sum psi, sum w, w @ x, squared distances), w = psi'(r)/r.

        A pure function of its inputs so that the compiled kernel can fuse the elementwise
        chain (distances, psi, slope, weights) into the reductions around it.
        """
        d2 = torch.addmm(x_sq[None, :], q, x.T, alpha=-2.0).add_(q_sq).clamp_min_(0.0)
        r = d2.sqrt()
        contrib, slope = self.psi_and_dpsi(r, hp)
        # psi'(r)/r; at r = 0 the direction is undefined (a cone tip): no pull
        w = slope.div_(r.clamp_min(torch.finfo(r.dtype).tiny)).masked_fill_(r == 0, 0.0)
        return contrib.sum(1), w.sum(1), w @ x, d2

    def _evaluate_rows(self, q: torch.Tensor, field: Field, hp: Hyper, nc: int, track_m: int) -> Evaluation:
        q_sq = (q * q).sum(1, keepdim=True)
        value = q.new_zeros(len(q))
        weight_sum = q.new_zeros(len(q))
        weighted_x = torch.zeros_like(q)
        top = RunningTopM(len(q), track_m, q) if track_m else None
        on_point = torch.full((len(q),), -1, dtype=torch.long, device=q.device)
        key = (f"{type(self).__qualname__}.block_terms", id(self), q.device.type)
        for cols in blocks(field.n, nc):
            args = (q, q_sq, field.X[cols], field.sq_norms[cols], dict(hp))
            if field.kernel == "compiled":
                block_value, block_w, block_wx, d2 = compiled_call(key, self.block_terms, *args)
            else:
                block_value, block_w, block_wx, d2 = self.block_terms(*args)
            value += block_value
            weight_sum += block_w
            weighted_x += block_wx
            closest, at = d2.min(1)
            on_point = torch.where(closest == 0, at + cols.start, on_point)
            if top is not None:
                top.update(-d2, cols.start)
        grad = q * weight_sum[:, None] - weighted_x
        mean = fixed_point_map(q, weight_sum, weighted_x, on_point, field.X)
        return Evaluation(value=value, grad=grad, top_ids=None if top is None else top.ids, mean=mean)


def fixed_point_map(
    q: torch.Tensor, weight_sum: torch.Tensor, weighted_x: torch.Tensor, on_point: torch.Tensor, X: torch.Tensor
) -> torch.Tensor:
    """sum_x w x / sum_x w (w = psi'(r)/r, so the signs cancel); the point itself where a position
    sits on one (`on_point` >= 0); the position unchanged where every weight is zero."""
    safe = torch.where(weight_sum != 0, weight_sum, torch.ones_like(weight_sum))
    mean = torch.where((weight_sum != 0)[:, None], weighted_x / safe[:, None], q)
    return torch.where((on_point >= 0)[:, None], X[on_point.clamp_min(0)].to(q.dtype), mean)


def _concat(parts: list[Evaluation]) -> Evaluation:
    """Join evaluations of consecutive query blocks."""

    def cat(name: str) -> torch.Tensor | None:
        items = [getattr(p, name) for p in parts]
        return None if items[0] is None else torch.cat(items)

    return Evaluation(value=cat("value"), grad=cat("grad"), top_ids=cat("top_ids"), mean=cat("mean"))


# -- registry -------------------------------------------------------------------------------
_POTENTIALS: dict[str, Potential] = {}
_LISTENERS: list[Callable[[Potential], None]] = []


#: what a refused potential should be; the check's finding says what it is instead
CHECK_HINT = (
    "a potential must evaluate with its default parameters: its function receives the tensor and every "
    "parameter declared in `params` as a keyword argument, and returns a finite tensor of the input's dtype, "
    "one value per input, computed with torch operations so that autograd can differentiate it"
)


def register_potential(potential: Potential) -> Potential:
    """Make `potential` available by name; listeners (the adapter module) are told of it.

    Refused with a ConfigError naming the file and function at fault: a name already taken by
    another definition (both files named; the same definition registered again, e.g. its module
    reloaded, replaces the entry), and a potential that fails `check_potential`.
    """
    if not potential.name:
        raise ValueError("a potential needs a non-empty name")
    source = potential.source()
    existing = _POTENTIALS.get(potential.name)
    if existing is not None and existing.source() != source:
        raise ConfigError(
            f"{source.describe()}: potential {potential.name!r} ({source.what}) is already registered by "
            f"{existing.source().describe()} ({existing.source().what})",
            "give the new potential another name; the registered ones are listed by `python -m harness list`",
        )
    check_potential(potential)
    _POTENTIALS[potential.name] = potential
    try:
        for listener in _LISTENERS:
            listener(potential)
    except BaseException:  # e.g. its algorithm name is taken: the potential is not registered either
        if existing is None:
            del _POTENTIALS[potential.name]
        else:
            _POTENTIALS[potential.name] = existing
        raise
    return potential


def check_potential(potential: Potential) -> None:
    """Evaluate `potential` once on tiny tensors with its default parameters (checks.py), or
    raise a ConfigError naming its file, its function and what went wrong."""
    if any(param.required for param in potential.params.values()):
        return  # no defaults to evaluate with: the run checks the values it is given
    hp = {name: param.default for name, param in potential.params.items()}
    try:
        potential.self_check(hp)
    except CheckFailed as exc:
        source = potential.source()
        raise ConfigError(f"{source.describe()}: potential {potential.name!r} ({source.what}): {exc}", CHECK_HINT) from None


def on_register(listener: Callable[[Potential], None]) -> None:
    """Call `listener` for every potential registered so far and every one registered later."""
    _LISTENERS.append(listener)
    for potential in list(_POTENTIALS.values()):
        listener(potential)


def get_potential(name: str) -> Potential:
    if name not in _POTENTIALS:
        raise ConfigError(f"unknown potential {name!r}", f"registered potentials: {', '.join(sorted(_POTENTIALS))}")
    return _POTENTIALS[name]


def potential_names() -> list[str]:
    return sorted(_POTENTIALS)


def radial_potential(
    name: str,
    *,
    params: Mapping[str, Param] | None = None,
    sweep: Mapping[str, Any] | None = None,
    description: str = "",
    dpsi: Callable[..., torch.Tensor] | None = None,
) -> Callable[[Callable[..., torch.Tensor]], Potential]:
    """Decorator: register psi(r, **hyper) as a radial potential named `name`.

    The decorated function receives the distances (scale units) and the hyper-parameters
    declared in `params` as keyword arguments. Without `dpsi` the derivative is by autograd.
    """

    def decorate(fn: Callable[..., torch.Tensor]) -> Potential:
        methods = {"psi": fn} if dpsi is None else {"psi": fn, "dpsi": dpsi}
        return register_function_potential(RadialPotential, name, params, sweep, description or fn.__doc__, methods)

    return decorate


def register_function_potential(
    base: type[Potential],
    name: str,
    params: Mapping[str, Param] | None,
    sweep: Mapping[str, Any] | None,
    description: str | None,
    methods: Mapping[str, Callable[..., torch.Tensor]],
) -> Potential:
    """Register a subclass of `base` whose `methods` call plain functions f(x, **hyper).

    What the decorators share: a user writes a function of the distances (or differences) and
    the hyper-parameters as keywords; the class around it is made here.
    """
    attrs: dict[str, Any] = {
        "name": name,
        "params": dict(params or {}),
        "sweep": sweep,
        "description": (description or "").strip().split("\n")[0],
    }
    for method, fn in methods.items():
        attrs[method] = lambda self, x, hp, fn=fn: fn(x, **hp)
    attrs["defined_by"] = source_of_function(next(iter(methods.values())))
    cls = type(f"{base.__name__}_{name}", (base,), attrs)
    return register_potential(cls())
