"""Potentials built from per-coordinate differences (the note's low-dimensional pieces).

The note splits the space into small coordinate groups (single coordinates for the naive
potential, cyclic pairs for potential_2) hoping each piece is cheap on its own. Evaluating
them needs the (queries x points x D) differences, which a matrix product cannot give, so
these potentials are chunked over queries *and* data to keep that block inside the budget.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Mapping

import torch

from algorithms.base import Param

from .checks import DTYPES, attempt, autograd_slope, call_text, expect_tensor
from .chunks import RunningTopM, block_shape, blocks, cpu_capped
from .fused import compiled_call
from .potentials import Evaluation, Field, Hyper, Potential, _concat, register_function_potential

#: a coordinate block's budget on a CPU at most (chunks.cpu_capped): each of its 8 temporaries
#: of (rows x points x D) is then 512 KiB, within a core's L2 cache
COORDINATE_CPU_MB = 4.0


class CoordinatePotential(Potential):
    """Psi(q) = sum_x f(x - q), with f a per-point contribution of the coordinate differences.

    Subclasses define `contributions(diff)` -> (queries x points); `terms` adds the gradient
    with respect to q summed over the points, by autograd unless a subclass knows it.
    Top contributors are ranked by contribution.
    """

    kernels: ClassVar[tuple[str, ...]] = ("matmul", "compiled")

    def contributions(self, diff: torch.Tensor, hp: Hyper) -> torch.Tensor:
        raise NotImplementedError

    def evaluation_work(self, dimension: int) -> dict[str, float]:
        """Eager elementwise work over (positions x points x D) blocks: about ten operations per
        coordinate (differences, the terms, their gradient) and no matrix product."""
        return {"pointwise": self.ops_per_coordinate * dimension}

    #: elementwise operations per (position, point, coordinate) of one evaluation (measured)
    ops_per_coordinate: float = 10.0

    def terms(self, diff: torch.Tensor, hp: Hyper) -> tuple[torch.Tensor, torch.Tensor]:
        """(contributions (q x n), gradient w.r.t. q summed over points (q x D))."""
        with torch.enable_grad():
            d = diff.detach().requires_grad_(True)
            contrib = self.contributions(d, hp)
            (g,) = torch.autograd.grad(contrib.sum(), d)
        # diff = x - q, so d/dq = -d/d(diff)
        return contrib.detach(), -g.sum(1)

    def self_check(self, hp: Hyper) -> None:
        """`contributions` (where `terms` is by autograd) and `terms` on (2 positions x 3 points x
        4 coordinates) differences in each dtype, then the evaluation on a tiny field."""
        generator = torch.Generator().manual_seed(0)
        by_autograd = type(self).terms is CoordinatePotential.terms
        f_call, terms_call = call_text("contributions", "diff", hp), call_text("terms", "diff", hp)
        for dtype in DTYPES:
            diff = torch.randn(2, 3, 4, generator=generator, dtype=dtype)
            if by_autograd:
                with torch.enable_grad():
                    d = diff.clone().requires_grad_(True)
                    value = expect_tensor(f_call, attempt(f_call, self.contributions, d, hp, hp=hp), (2, 3), dtype)
                    autograd_slope(f_call, value, d)
            contrib, grad = attempt(terms_call, self.terms, diff, hp, hp=hp)
            expect_tensor(f"{terms_call}: the contributions", contrib, (2, 3), dtype)
            expect_tensor(f"{terms_call}: the gradient", grad, (2, 4), dtype)
        super().self_check(hp)

    def block_terms(self, q: torch.Tensor, x: torch.Tensor, hp: Hyper) -> tuple[torch.Tensor, torch.Tensor]:
        """`terms` of one (query block x data block), differences included.

        Kept as one pure function so that the compiled kernel can fuse the (queries x points x D)
        differences into the elementwise chain and the reductions instead of writing them out.
        """
        return self.terms(x[None, :, :] - q[:, None, :], hp)

    def evaluate(self, Q: torch.Tensor, field: Field, hp: Hyper, track_m: int = 0) -> Evaluation:
        budget = cpu_capped(field.memory_mb, Q.device, COORDINATE_CPU_MB)
        qc, nc = block_shape(len(Q), field.n, Q.shape[1], Q.element_size(), budget)
        parts = [self._evaluate_rows(Q[rows], field, hp, nc, track_m) for rows in blocks(len(Q), qc)]
        return _concat(parts)

    def _evaluate_rows(self, q: torch.Tensor, field: Field, hp: Hyper, nc: int, track_m: int) -> Evaluation:
        value = q.new_zeros(len(q))
        grad = torch.zeros_like(q)
        top = RunningTopM(len(q), track_m, q) if track_m else None
        key = (f"{type(self).__qualname__}.block_terms", id(self), q.device.type)
        for cols in blocks(field.n, nc):
            if field.kernel == "compiled":
                contrib, g = compiled_call(key, self.block_terms, q, field.X[cols], dict(hp))
            else:
                contrib, g = self.block_terms(q, field.X[cols], hp)
            value += contrib.sum(1)
            grad += g
            if top is not None:
                top.update(contrib, cols.start)
        return Evaluation(value=value, grad=grad, top_ids=None if top is None else top.ids)


def coordinate_potential(
    name: str,
    *,
    params: Mapping[str, Param] | None = None,
    sweep: Mapping[str, Any] | None = None,
    description: str = "",
) -> Callable[[Callable[..., torch.Tensor]], Potential]:
    """Decorator: register f(diff, **hyper) -> (queries x points) as a coordinate potential.

    `diff` is x - q with shape (queries, points, D), in scale units; the gradient is by autograd.
    """

    def decorate(fn: Callable[..., torch.Tensor]) -> Potential:
        return register_function_potential(
            CoordinatePotential, name, params, sweep, description or fn.__doc__, {"contributions": fn}
        )

    return decorate
