"""Ascent rules, swappable by name as torch.optim optimisers are, and the one climbing loop.

A rule is a small object with `step(q, evaluation) -> new q` and per-query state that it
can shrink when queries leave the active batch. `climb` runs every query until its own step
is shorter than `tol` (scale units) or `max_iters` is reached; converged queries are dropped
from the batch, so they cost nothing more. The loop does not know where the potential is
summed: a step function evaluates it (over the whole data, or over a per-query candidate set
for the restricted variants) and says how many distances each active query paid.

Step length is the shorter of the last step and the two-step displacement |q_t - q_{t-2}|:
a fixed-length step (the note's normalised rule) never shrinks, but around a cone-shaped peak
it settles into a 2-cycle straddling the peak, which the two-step displacement sees as zero.

The rule `none` never moves: the climb is skipped and the position stays at the query. It is
the control of every potential configuration (same snap, same candidates, no climb), so that
what the climb itself adds can be measured.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, NamedTuple

import torch

from harness.errors import ConfigError, ParameterError

from .potentials import Evaluation, Field, Hyper, Potential


class AscentRule(abc.ABC):
    """One way of moving every active query uphill; holds per-query state, if any."""

    name: ClassVar[str] = ""
    default_rate: ClassVar[float | None] = None
    #: needs Evaluation.mean (only potentials with `has_mean`, i.e. the Gaussian)
    needs_mean: ClassVar[bool] = False
    #: needs Evaluation.mean as the potential's fixed-point map (potentials with `has_fixed_point`)
    needs_fixed_point: ClassVar[bool] = False
    #: False for the control rule `none`: the climb is skipped, the position stays at the query
    moves: ClassVar[bool] = True

    def __init__(self, rate: float | None = None, **options: Any) -> None:
        self.rate = self.default_rate if rate is None else rate
        self.options = options

    def start(self, n: int, like: torch.Tensor) -> None:
        """Reset per-query state for a batch of n queries shaped like `like` (n x D)."""

    def keep(self, mask: torch.Tensor) -> None:
        """Keep the state of the queries where `mask` is True (the others converged)."""

    @abc.abstractmethod
    def step(self, q: torch.Tensor, ev: Evaluation) -> torch.Tensor:
        """New positions of the active queries."""


class Normalised(AscentRule):
    """The note's step q += rate * g / |g|^power.

    The note's code computes gd * (sum gd^2)^(-1/2 - 0.05), i.e. g / |g|^1.1 (its text says
    1.05, its code 1.1, docs/design.md section 2; the code is followed). The step length
    rate * |g|^-0.1 grows where the gradient vanishes, the note's remedy for flat regions.
    """

    name = "normalised"
    default_rate = 5e-4

    def step(self, q: torch.Tensor, ev: Evaluation) -> torch.Tensor:
        power = self.options.get("power", 1.1)
        norm = ev.grad.norm(dim=1, keepdim=True)
        scale = torch.where(norm > 0, norm.clamp_min(torch.finfo(norm.dtype).tiny) ** -power, 0.0)
        return q + self.rate * ev.grad * scale


class Adam(AscentRule):
    """torch-style Adam on the ascent direction, with per-query moments.

    Adam is invariant to the gradient's magnitude, so vanishing gradients far from every
    point do not stall it; the note found it "good enough" for potential_1.
    """

    name = "adam"
    default_rate = 1e-2

    def start(self, n: int, like: torch.Tensor) -> None:
        self.m = torch.zeros_like(like)
        self.v = torch.zeros_like(like)
        self.t = 0

    def keep(self, mask: torch.Tensor) -> None:
        self.m, self.v = self.m[mask], self.v[mask]

    def step(self, q: torch.Tensor, ev: Evaluation) -> torch.Tensor:
        beta1, beta2 = self.options.get("betas", (0.9, 0.999))
        eps = self.options.get("adam_eps", 1e-8)
        self.t += 1
        self.m.mul_(beta1).add_(ev.grad, alpha=1 - beta1)
        self.v.mul_(beta2).addcmul_(ev.grad, ev.grad, value=1 - beta2)
        m_hat = self.m / (1 - beta1**self.t)
        v_hat = self.v / (1 - beta2**self.t)
        return q + self.rate * m_hat / (v_hat.sqrt() + eps)


class MeanShift(AscentRule):
    """Gaussian mean-shift: q <- softmax_x(-beta ||x - q||^2 / 2)-weighted mean of the data.

    No step size, and log Psi never decreases (it is an EM / minorise-maximise step).
    """

    name = "meanshift"
    needs_mean = True

    def step(self, q: torch.Tensor, ev: Evaluation) -> torch.Tensor:
        assert ev.mean is not None, "meanshift needs a potential that provides the weighted mean"
        return ev.mean


class FixedPoint(MeanShift):
    """q <- the potential's fixed-point map: grad Psi = 0 solved for q as a weighted mean of the data.

    No step size. For a radial psi the weights are -psi'(r)/r (potentials.RadialPotential), which
    the gradient computes anyway; for the Gaussian this is mean-shift. Where the gradient vanishes
    far from the data (the note's concern with potential_1) the weights vanish with it, but their
    ratio does not: the step goes to the weighted mean whatever the gradient's size, as long as one
    weight is representable in the dtype.
    """

    name = "fixed-point"
    needs_mean = False
    needs_fixed_point = True


class AnchoredMeanShift(AscentRule):
    """q <- (mean + pull * anchor) / (1 + pull): mean-shift with a pull back toward the query.

    It maximises log Psi(q) - (pull * beta / 2) |q - anchor|^2 for the Gaussian (the same
    minorise-maximise step as mean-shift, so it never decreases that objective): the quadratic
    keeps a small-beta climb from drifting to a density mode far from the query. `anchor`
    (an option: positions n x D) defaults to where the climb starts; pull = 0 is mean-shift.
    """

    name = "anchored"
    needs_mean = True

    def start(self, n: int, like: torch.Tensor) -> None:
        anchor = self.options.get("anchor")
        self.anchor = (like if anchor is None else anchor).clone()

    def keep(self, mask: torch.Tensor) -> None:
        self.anchor = self.anchor[mask]

    def step(self, q: torch.Tensor, ev: Evaluation) -> torch.Tensor:
        assert ev.mean is not None, "anchored needs a potential that provides the weighted mean"
        pull = float(self.options.get("pull", 1.0))
        return (ev.mean + pull * self.anchor) / (1.0 + pull)


class NoAscent(AscentRule):
    """The control: no climb at all. The snap then reads the potential at the query itself."""

    name = "none"
    moves = False

    def step(self, q: torch.Tensor, ev: Evaluation) -> torch.Tensor:
        return q


_RULES: dict[str, type[AscentRule]] = {}


def register_rule(cls: type[AscentRule]) -> type[AscentRule]:
    _RULES[cls.name] = cls
    return cls


for _rule in (Normalised, Adam, MeanShift, FixedPoint, AnchoredMeanShift, NoAscent):
    register_rule(_rule)


def rule_names() -> list[str]:
    return list(_RULES)


def rule_class(name: str) -> type[AscentRule]:
    """The rule registered as `name` (KeyError if none)."""
    return _RULES[name]


def make_rule(name: str, potential: Potential, rate: float | None = None, **options: Any) -> AscentRule:
    """The rule `name`, after checking it applies to `potential`."""
    if name not in _RULES:
        raise ConfigError(f"unknown ascent rule {name!r}", f"known rules: {', '.join(_RULES)}")
    cls = _RULES[name]
    if cls.needs_mean and not potential.has_mean:
        raise ParameterError(
            f"ascent rule {name!r} is only defined for the gaussian potential, not {potential.name!r}",
            "use ascent 'normalised' or 'adam' with this potential",
        )
    if cls.needs_fixed_point and not potential.has_fixed_point:
        raise ParameterError(
            f"ascent rule {name!r} needs a potential with a fixed-point map (gaussian, radial ones), not {potential.name!r}",
            "use ascent 'normalised' or 'adam' with this potential",
        )
    return cls(rate=rate, **options)


class StepResult(NamedTuple):
    """One evaluation of the active queries.

    `cost`: distance computations per active query in this evaluation (a tensor, or one number
    for all). `hold`: queries whose position must stay put this step (their candidate set is
    still changing), or None.
    """

    evaluation: Evaluation
    cost: torch.Tensor | float
    hold: torch.Tensor | None = None


#: step(positions of the active queries (a, D), their query ids (a,), top-m to track) -> StepResult
StepFn = Callable[[torch.Tensor, torch.Tensor, int], StepResult]


@dataclass
class Climb:
    """Where each query ended and what it cost.

    `positions` (scale units), `iterations` (evaluations made), `last_step` (the stopping
    measure), `dist_comps` (distance computations per query, float64). `top_ids` are the top
    contributors of each query's last evaluation, or None; `pool_at_landing` says for which
    queries that evaluation was at the landing position itself (within `tol`): for the others
    the snap must evaluate there once more.
    """

    positions: torch.Tensor
    iterations: torch.Tensor
    last_step: torch.Tensor
    top_ids: torch.Tensor | None
    pool_at_landing: torch.Tensor
    dist_comps: torch.Tensor


def climb(
    start: torch.Tensor,
    rule: AscentRule,
    step: StepFn,
    *,
    max_iters: int,
    tol: float,
    track_m: int = 0,
    trace: list[torch.Tensor] | None = None,
) -> Climb:
    """Climb every query from `start` until its step is under `tol` or `max_iters` is reached.

    With `trace`, a copy of every query's position is appended after each iteration (for the
    landscape figures; converged queries stay where they stopped).
    """
    n, device = len(start), start.device
    pos, before = start.clone(), start.clone()
    iterations = torch.zeros(n, dtype=torch.long, device=device)
    cost = torch.zeros(n, dtype=torch.float64, device=device)
    last_step = torch.full((n,), float("inf"), dtype=start.dtype, device=device)
    at_landing = torch.zeros(n, dtype=torch.bool, device=device)
    top_ids = torch.full((n, track_m), -1, dtype=torch.long, device=device) if track_m else None
    active = torch.arange(n, device=device) if rule.moves else torch.zeros(0, dtype=torch.long, device=device)
    rule.start(n, start)
    for it in range(max_iters):
        if len(active) == 0:
            break
        current = pos[active]
        result = step(current, active, track_m)
        new = rule.step(current, result.evaluation)
        jump = (new - current).norm(dim=1)
        moved = jump if it == 0 else torch.minimum(jump, (new - before[active]).norm(dim=1))
        if result.hold is not None:
            new = torch.where(result.hold[:, None], current, new)
            jump = jump.masked_fill(result.hold, 0.0)
            moved = moved.masked_fill(result.hold, float("inf"))
        before[active] = current
        pos[active] = new
        iterations[active] += 1
        cost[active] += torch.as_tensor(result.cost, dtype=torch.float64, device=device)
        last_step[active] = moved
        at_landing[active] = jump < tol
        if top_ids is not None:
            top_ids[active] = fit_width(result.evaluation.top_ids, track_m)
        if trace is not None:
            trace.append(pos.clone())
        going = ~(moved < tol)
        active = active[going]
        rule.keep(going)
    if not rule.moves:
        last_step.zero_()
    return Climb(pos, iterations, last_step, top_ids, at_landing, cost)


def fit_width(ids: torch.Tensor | None, width: int) -> torch.Tensor:
    """Top ids padded with -1 (no point) to `width` when a candidate set was narrower."""
    assert ids is not None, "track_m > 0 needs the step to return top contributor ids"
    if ids.shape[1] >= width:
        return ids[:, :width]
    pad = torch.full((len(ids), width - ids.shape[1]), -1, dtype=ids.dtype, device=ids.device)
    return torch.cat([ids, pad], 1)


def field_step(potential: Potential, field: Field, hp: Hyper) -> StepFn:
    """The step of the full potential: every query evaluates over all N points."""

    def step(positions: torch.Tensor, active: torch.Tensor, track_m: int) -> StepResult:
        return StepResult(potential.evaluate(positions, field, hp, track_m), float(field.n))

    return step
