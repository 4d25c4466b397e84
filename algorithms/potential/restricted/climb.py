"""The climbing loop of the restricted variants: `ascent.climb`, plus exact per-query costs.

`algorithms.potential.climb` hands a potential only the active positions, so a restricted
evaluation could not say which query paid for which distances, and some variants keep
per-query state (a graph frontier). Here the step function receives the active query ids
and returns what each of them computed. The stopping rule is `climb`'s, line for line (step
shorter than tol, with the two-step displacement that ends 2-cycles), so that a restriction
covering every point retraces the full method's path exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from ..ascent import AscentRule
from ..potentials import Evaluation


class StepResult(NamedTuple):
    """One evaluation of the active queries.

    `cost`: distance computations per active query in this evaluation. `hold`: queries whose
    position must stay put this step (their candidate set is still changing), or None.
    """

    evaluation: Evaluation
    cost: torch.Tensor
    hold: torch.Tensor | None = None


#: step(positions of the active queries (a, D), their query ids (a,)) -> StepResult
StepFn = Callable[[torch.Tensor, torch.Tensor], StepResult]


@dataclass
class CountedClimb:
    """Where each query ended, how many iterations and distance computations it took."""

    positions: torch.Tensor
    iterations: torch.Tensor
    last_step: torch.Tensor
    top_ids: torch.Tensor | None
    dist_comps: torch.Tensor


def climb_counted(
    start: torch.Tensor, rule: AscentRule, step: StepFn, *, max_iters: int, tol: float, track_m: int = 0
) -> CountedClimb:
    """Climb every query from `start` with `rule`, evaluating through `step`."""
    n = len(start)
    device = start.device
    pos, before = start.clone(), start.clone()
    iterations = torch.zeros(n, dtype=torch.long, device=device)
    cost = torch.zeros(n, dtype=torch.float64, device=device)
    last_step = torch.full((n,), float("inf"), dtype=start.dtype, device=device)
    top_ids = torch.zeros((n, track_m), dtype=torch.long, device=device) if track_m else None
    active = torch.arange(n, device=device)
    rule.start(n, start)
    for it in range(max_iters):
        if len(active) == 0:
            break
        current = pos[active]
        result = step(current, active)
        new = rule.step(current, result.evaluation)
        moved = (new - current).norm(dim=1)
        if it > 0:
            moved = torch.minimum(moved, (new - before[active]).norm(dim=1))
        if result.hold is not None:
            new = torch.where(result.hold[:, None], current, new)
            moved = moved.masked_fill(result.hold, float("inf"))
        before[active] = current
        pos[active] = new
        iterations[active] += 1
        cost[active] += result.cost.to(cost.dtype)
        last_step[active] = moved
        if top_ids is not None:
            top_ids[active] = _fit_width(result.evaluation.top_ids, track_m)
        going = ~(moved < tol)
        active = active[going]
        rule.keep(going)
    return CountedClimb(positions=pos, iterations=iterations, last_step=last_step, top_ids=top_ids, dist_comps=cost)


def _fit_width(ids: torch.Tensor | None, width: int) -> torch.Tensor:
    """Top ids padded (by repeating the last) to `width` when a candidate set was narrower."""
    assert ids is not None, "track_m > 0 needs the step to return top contributor ids"
    if ids.shape[1] >= width:
        return ids[:, :width]
    if ids.shape[1] == 0:
        return torch.zeros((len(ids), width), dtype=ids.dtype, device=ids.device)
    return torch.cat([ids, ids[:, -1:].expand(len(ids), width - ids.shape[1])], 1)
