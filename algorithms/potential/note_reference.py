"""The seed note's own code path, kept faithful, to check this implementation against.

Full (queries x points x D) tensors, autograd, the note's constants and update
`gd * (sum gd^2)^(-1/2 - 0.05)`, i.e. q += RATE * g / |g|^1.1. Only the wrapping differs:
functions instead of globals, a device and dtype argument, no progress printing. Used by
tests/test_potential_note.py (small scale) and bench/seed_repro.py (the note's scale).
"""
from __future__ import annotations

import torch as pt

C = 10**8
EPS = 0.5
RATE = 0.5 * 1e-3


def note_data(S: int = 1000, Q: int = 1000, D: int = 64, device: str = "cpu") -> tuple[pt.Tensor, pt.Tensor]:
    """The note's dataset (seed 100, uniform in [0,2]^D) and queries (seed 1000, uniform in [0,1]^D).

    Drawn on the CPU generator and then moved, so every device sees the same numbers.
    """
    pt.manual_seed(100)
    ds = pt.rand(S, D, dtype=pt.double) * 2
    pt.manual_seed(1000)
    qs = pt.rand(Q, D, dtype=pt.double)
    return ds.to(device), qs.to(device)


def potential_1(qs: pt.Tensor, ds: pt.Tensor) -> pt.Tensor:
    di = pt.abs(ds - qs.unsqueeze(-2))
    po = (C ** (di.pow(2).sum(-1).pow(1 / 2)).clamp(max=16) - EPS) ** -1 * (1 - EPS)
    qs.grad = None
    return po.sum()


def potential_2(qs: pt.Tensor, ds: pt.Tensor) -> pt.Tensor:
    D = ds.shape[-1]
    di = pt.abs(ds - qs.unsqueeze(-2)).pow(2)
    po = (C ** (di[:, :, -1] + di[:, :, 0]).pow(1 / 2).clamp(max=16) - EPS) ** -1 * (1 - EPS)
    po = po.sum() + ((C ** (di[:, :, :-1] + di[:, :, 1:]).pow(1 / 2).clamp(max=16) - EPS) ** -1 * (1 - EPS)).sum()
    qs.grad = None
    return po / D


NOTE_POTENTIALS = {"potential_1": potential_1, "potential_2": potential_2}


def note_ascent(ds: pt.Tensor, queries: pt.Tensor, steps: int, potential: str = "potential_1", rate: float = RATE) -> pt.Tensor:
    """Run the note's loop for `steps` steps from `queries`; returns the final positions."""
    fn = NOTE_POTENTIALS[potential]
    qs = queries.detach().clone().requires_grad_(True)
    for _ in range(steps):
        po = fn(qs, ds)
        (-po).backward()
        with pt.no_grad():
            gd = qs.grad
            gd = gd * gd.pow(2).sum(-1).pow(-1 / 2 - 0.05).unsqueeze(-1)
            qs -= rate * gd
    return qs.detach()
