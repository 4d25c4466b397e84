"""The Gaussian potential, evaluated as attention with an online log-sum-exp.

log Psi(q) = log sum_x exp(-beta ||x - q||^2 / 2). Expanding the square, the logits are
beta q.x - beta ||x||^2 / 2 (a matrix product plus a per-point bias) minus beta ||q||^2 / 2,
constant per query. Streaming over data blocks with a running max, running sum and running
weighted sum of x (as flash attention does) gives log Psi, the softmax-weighted mean of the
data and grad log Psi = beta (mean - q) without ever underflowing, whatever beta, in memory
O(query block x data block). The weighted mean is the mean-shift / Hopfield fixed-point map.
"""
from __future__ import annotations

import torch

from algorithms.base import Param, positive

from .chunks import RunningTopM, block_shape, blocks
from .potentials import Evaluation, Field, Hyper, Potential, _concat, register_potential


class Gaussian(Potential):
    """Psi(q) = sum_x exp(-beta ||x - q||^2 / 2); value and gradient are of log Psi."""

    name = "gaussian"
    params = {"beta": Param(float, 200.0, "inverse bandwidth, in 1 / scale unit^2", positive)}
    description = "Gaussian potential sum_x exp(-beta||x-q||^2/2), log domain; mean-shift = attention"
    # beta * (d2^2 - d1^2) must reach ~2 ln N (design.md 3): 200 does on siftsmall and random-xs
    sweep = {"query": {"ascent": ["meanshift"], "beta": [30.0, 100.0, 300.0, 1000.0], "snap": ["topm"]}}
    log_domain = True
    has_mean = True

    def evaluate(self, Q: torch.Tensor, field: Field, hp: Hyper, track_m: int = 0) -> Evaluation:
        qc, nc = block_shape(len(Q), field.n, 1, Q.element_size(), field.memory_mb)
        parts = [self._evaluate_rows(Q[rows], field, hp["beta"], nc, track_m) for rows in blocks(len(Q), qc)]
        return _concat(parts)

    def _evaluate_rows(self, q: torch.Tensor, field: Field, beta: float, nc: int, track_m: int) -> Evaluation:
        run_max = q.new_full((len(q),), float("-inf"))
        run_sum = q.new_zeros(len(q))
        run_x = torch.zeros_like(q)
        top = RunningTopM(len(q), track_m, q) if track_m else None
        for cols in blocks(field.n, nc):
            x = field.X[cols]
            logits = beta * (q @ x.T - 0.5 * field.sq_norms[cols])
            new_max = torch.maximum(run_max, logits.max(1).values)
            decay = torch.exp(run_max - new_max)
            weights = torch.exp(logits - new_max[:, None])
            run_sum = run_sum * decay + weights.sum(1)
            run_x = run_x * decay[:, None] + weights @ x
            run_max = new_max
            if top is not None:
                top.update(logits, cols.start)
        mean = run_x / run_sum[:, None]
        value = run_max + run_sum.log() - 0.5 * beta * (q * q).sum(1)
        return Evaluation(
            value=value, grad=beta * (mean - q), top_ids=None if top is None else top.ids, mean=mean
        )


register_potential(Gaussian())
