"""Near -> exact: from the converged position to a data point id, and the note's rate.

Two modes. `exact` finds the data points nearest to the converged position by a full pass
(counted as N distance computations). `topm` picks among the m largest contributors to the
potential remembered during the last evaluation: no extra pass, only m distances, and it
fails exactly when the climb stopped away from the right peak, which is what it measures.
Either way the winners are re-ranked with directly computed differences, because the matrix
product expansion used for selection loses precision near a peak (fp32 cancellation).
"""
from __future__ import annotations

import numpy as np
import torch

from harness.metrics import position_to_true_nn

from .chunks import block_shape, blocks
from .potentials import Field

SNAP_MODES = ("exact", "topm")


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
    return torch.cat(out)


def rerank(positions: torch.Tensor, X: torch.Tensor, candidates: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k candidates nearest to each position, by direct differences: (ids, distances).

    Computed in fp32 or better whatever the inputs' dtype (a low-precision kernel may have
    produced the positions), so the final order, and any exact-recall claim, is an fp32 one.
    """
    k = min(k, candidates.shape[1])
    work = torch.promote_types(torch.promote_types(X.dtype, positions.dtype), torch.float32)
    ids_out, d_out = [], []
    rows_per_block = max(1, 2**22 // max(1, candidates.shape[1] * X.shape[1]))
    for rows in blocks(len(positions), rows_per_block):
        cand = candidates[rows]
        d = (X[cand].to(work) - positions[rows][:, None, :].to(work)).norm(dim=2)
        best, order = d.topk(k, dim=1, largest=False)
        ids_out.append(cand.gather(1, order))
        d_out.append(best)
    return torch.cat(ids_out), torch.cat(d_out)


def snap(
    positions: torch.Tensor, field: Field, k: int, mode: str, top_ids: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(ids Q x k, distances from the position Q x k, distance computations per query)."""
    if mode == "exact":
        candidates = nearest_candidates(positions, field, min(field.n, 2 * k + 8))
        ids, dist = rerank(positions, field.X, candidates, k)
        return ids, dist, field.n
    if mode == "topm":
        if top_ids is None:
            raise ValueError("snap mode 'topm' needs the top contributors tracked during the climb")
        ids, dist = rerank(positions, field.X, top_ids, k)
        return ids, dist, top_ids.shape[1]
    raise ValueError(f"unknown snap mode {mode!r}; known: {', '.join(SNAP_MODES)}")


def converged_onto_nn_rate(
    positions: np.ndarray, train: np.ndarray, true_nn_ids: np.ndarray, tol: float = 1e-3
) -> float:
    """Fraction of queries whose converged position lies within `tol` of its true nearest neighbour.

    The note's success measure ("< 1e-3" in raw units of the data). `true_nn_ids` is (Q,)
    or the (Q, k) ground-truth table, whose first column is used. Computed in float64.
    """
    if len(positions) == 0:
        return float("nan")
    return float((position_to_true_nn(positions, train, true_nn_ids) < tol).mean())
