"""Near -> exact: from the landing position to the k returned ids.

The snap gathers a pool of candidate points around the landing position, then returns the k
pool points nearest to the *query*, distinct, nearest first (-1 with distance inf where the
pool holds fewer than k distinct points). Two ways to gather the pool (`snap=`):

- `final` (default): the top-m contributors of an evaluation of the potential at the landing
  position itself. The climb's last evaluation is reused when its position lies within `tol`
  of the landing position (a converged query); otherwise one more evaluation there is made and
  counted. For the full Gaussian and radial potentials the top contributors are the m points
  nearest the landing position; for a restricted variant, the nearest within its candidate set.
- `exact`: the max(m, k) data points nearest the landing position, by a full pass (N distances).

Ranking by the distance to the query makes recall@k comparable with every other algorithm:
the answer is "the k nearest points to the query among those the climb led to". What the climb
contributes is then measured against the control (`ascent=none`): the same pool gathered at the
query itself, which for the full potential is an exact m-NN search.

Distances are computed by direct differences in fp32 or better, because the matrix product
expansion used for selection loses precision near a peak (fp32 cancellation).
"""
from __future__ import annotations

import torch

from .chunks import blocks
from .potentials import nearest_candidates

SNAP_MODES = ("final", "exact")

__all__ = ["SNAP_MODES", "distinct", "nearest_candidates", "nearest_in_pool", "rerank"]


def distinct(pool: torch.Tensor) -> torch.Tensor:
    """The pool with every repeat of an id (and every negative id) replaced by -1."""
    if pool.shape[1] == 0:
        return pool
    ordered, order = pool.sort(1)
    repeat = torch.zeros_like(ordered, dtype=torch.bool)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    keep = torch.empty_like(repeat)
    keep.scatter_(1, order, ~repeat)
    return pool.masked_fill(~keep | (pool < 0), -1)


def rerank(
    targets: torch.Tensor, X: torch.Tensor, pool: torch.Tensor, k: int, inner: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k distinct pool points nearest to each target, by direct differences: (ids, distances).

    Pool slots holding -1 (or repeating an id) are no points. Where fewer than k remain, the
    answer is padded with id -1 and distance inf. Computed in fp32 or better whatever the
    inputs' dtype, so the final order, and any exact-recall claim, is an fp32 one. `inner`
    (inner-product data): nearest means the largest target.x, and the distances are -target.x.
    """
    pool = distinct(pool)
    work = torch.promote_types(torch.promote_types(X.dtype, targets.dtype), torch.float32)
    ids_out, d_out = [], []
    rows_per_block = max(1, 2**22 // max(1, pool.shape[1] * X.shape[1]))
    for rows in blocks(len(targets), rows_per_block):
        cand = pool[rows]
        points, target = X[cand.clamp_min(0)].to(work), targets[rows][:, None, :].to(work)
        d = -(points * target).sum(dim=2) if inner else (points - target).norm(dim=2)
        d = d.masked_fill(cand < 0, float("inf"))
        if d.shape[1] < k:
            d = torch.cat([d, d.new_full((len(d), k - d.shape[1]), float("inf"))], 1)
            cand = torch.cat([cand, cand.new_full((len(cand), k - cand.shape[1]), -1)], 1)
        best, order = d.topk(k, dim=1, largest=False)
        ids_out.append(cand.gather(1, order).masked_fill(torch.isinf(best), -1))
        d_out.append(best)
    if not ids_out:
        return torch.zeros((0, k), dtype=torch.long, device=pool.device), torch.zeros((0, k), dtype=work, device=pool.device)
    return torch.cat(ids_out), torch.cat(d_out)


def nearest_in_pool(positions: torch.Tensor, X: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """Distance from each position to the nearest point of its pool (inf for an empty pool)."""
    return rerank(positions, X, pool, 1)[1][:, 0]


