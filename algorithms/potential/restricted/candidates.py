"""The potential summed over a per-query candidate set, and the padded-set plumbing.

Every restricted variant (IVF cells, graph neighbourhoods) ends in the same computation: for
each query row, the potential and its gradient summed over *its own* candidate points only.
Rows have different candidate counts, so candidates travel as a padded (Q, Cmax) id tensor
with a validity mask; padded slots repeat the row's first valid id (never a made-up point)
and are masked out of every sum. One helper then serves the three families a restriction
makes sense for: the Gaussian (log domain, with the mean-shift mean), radial potentials
(potential_1, cauchy) and coordinate potentials (naive, potential_2 on a candidate set).

The sums follow the full evaluations of `algorithms.potential` term by term (same expansion,
same masking of r = 0), so a candidate set covering every point gives the full potential.
"""
from __future__ import annotations

import torch

from harness.errors import ConfigError

from ..chunks import blocks
from ..coordinate import CoordinatePotential
from ..potentials import Evaluation, Hyper, Potential, RadialPotential, fixed_point_map

#: live temporaries per gathered (row, candidate, coordinate) element, for block sizing
_GATHER_TEMPORARIES = 3


def ranges_to_padded(starts: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of R contiguous ranges per row, concatenated and padded: (Q, Cmax) and mask.

    `starts`, `counts`: (Q, R) integer tensors; range r of row i covers positions
    starts[i, r] .. starts[i, r] + counts[i, r] - 1 of some sorted array. Vectorised: slot p
    of row i falls in the range whose cumulative end first exceeds p.
    """
    counts = counts.clamp_min(0)
    ends = counts.cumsum(1)
    total = ends[:, -1] if ends.shape[1] else counts.new_zeros(len(counts))
    width = int(total.max()) if len(total) else 0
    slots = torch.arange(width, device=starts.device).expand(len(starts), width).contiguous()
    which = torch.searchsorted(ends, slots, right=True).clamp_max(max(0, ends.shape[1] - 1))
    first = (ends - counts).gather(1, which)
    pos = starts.gather(1, which) + slots - first
    valid = slots < total[:, None]
    return fill_invalid(pos, valid), valid


def fill_invalid(ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Replace invalid slots by the row's first valid id (0 for an empty row).

    Keeps every gathered id a real point, so gathers never go out of range and a snap that
    reads a padded slot still gets a true distance to a real point.
    """
    if ids.shape[1] == 0:
        return ids
    first_valid = valid.to(torch.int8).argmax(1)
    filler = ids.gather(1, first_valid[:, None]).masked_fill_(~valid.any(1, keepdim=True), 0)
    return torch.where(valid, ids, filler)


def unique_rows(ids: torch.Tensor, valid: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's valid ids, sorted, duplicates masked: (ids, mask) of the same width.

    A potential sums each point once; a graph neighbourhood lists a point once per frontier
    member that links to it, so duplicates must go before the sum (and before counting).
    """
    keyed = torch.where(valid, ids, torch.full_like(ids, n))
    keyed, _ = keyed.sort(1)
    fresh = torch.ones_like(valid)
    fresh[:, 1:] = keyed[:, 1:] != keyed[:, :-1]
    mask = fresh & (keyed < n)
    return fill_invalid(keyed, mask), mask


def segment_sums(
    ids: torch.Tensor, values: torch.Tensor, valid: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row, the sum of `values` over equal ids: (sorted ids, sums, mask of segment ends).

    Used to add up one point's contributions listed several times (one per coordinate plane).
    A segment's sum is the running sum at its last slot minus that at the previous segment's
    last slot, whose position a running maximum of end positions carries along the row.
    """
    keyed = torch.where(valid, ids, torch.full_like(ids, n))
    keyed, order = keyed.sort(1)
    running = values.masked_fill(~valid, 0.0).gather(1, order).cumsum(1)
    last = torch.ones_like(valid)
    last[:, :-1] = keyed[:, 1:] != keyed[:, :-1]
    slot = torch.arange(keyed.shape[1], device=keyed.device).expand_as(keyed)
    end_slot = torch.where(last, slot, torch.full_like(slot, -1))
    shifted = torch.cat([torch.full_like(end_slot[:, :1], -1), end_slot[:, :-1]], 1)
    prev_end = torch.cummax(shifted, 1).values
    before = torch.where(prev_end >= 0, running.gather(1, prev_end.clamp_min(0)), torch.zeros_like(running))
    last &= keyed < n
    return fill_invalid(keyed, last), (running - before).masked_fill(~last, 0.0), last


def evaluate_on_candidates(
    potential: Potential,
    q: torch.Tensor,
    X: torch.Tensor,
    sq_norms: torch.Tensor,
    cand: torch.Tensor,
    valid: torch.Tensor,
    hp: Hyper,
    track_m: int = 0,
    memory_mb: float = 128.0,
    log_weights: torch.Tensor | None = None,
) -> Evaluation:
    """The potential at positions q (B, D), each row summed over its own candidates only.

    `cand` (B, C) ids into X with `valid` (B, C); `sq_norms` = |X|^2 per point. With
    `track_m`, the m best candidates per row (ranked as the full evaluation ranks them).
    `log_weights` (Gaussian only): a log weight per point of X added to its logit, so that a
    point stands for several (a centroid for its cell's points: a mixture weighted by counts).
    """
    kind = _kind(potential)
    extra = {}
    if log_weights is not None:
        if kind is not _gaussian_rows:
            raise ConfigError(f"potential {potential.name!r}: weighted points are only supported for the gaussian")
        extra["log_weights"] = log_weights
    budget = max(1, int(memory_mb * 2**20) // (q.element_size() * _GATHER_TEMPORARIES))
    rows = max(1, budget // max(1, cand.shape[1] * q.shape[1]))
    parts = []
    for sl in blocks(len(q), rows):
        parts.append(kind(potential, q[sl], X, sq_norms, cand[sl], valid[sl], hp, track_m, **extra))
    return Evaluation(
        value=torch.cat([p.value for p in parts]),
        grad=torch.cat([p.grad for p in parts]),
        top_ids=None if parts[0].top_ids is None else torch.cat([p.top_ids for p in parts]),
        mean=None if parts[0].mean is None else torch.cat([p.mean for p in parts]),
    )


def _kind(potential: Potential):  # noqa: ANN202 - returns one of the three row evaluators
    if potential.has_mean and potential.log_domain:
        return _gaussian_rows
    if isinstance(potential, RadialPotential):
        return _radial_rows
    if isinstance(potential, CoordinatePotential):
        return _coordinate_rows
    raise ConfigError(
        f"potential {potential.name!r} cannot be restricted to a candidate set",
        "restricted variants support the gaussian, radial potentials (potential_1, cauchy) and coordinate potentials",
    )


def _top(scores: torch.Tensor, cand: torch.Tensor, valid: torch.Tensor, m: int) -> torch.Tensor | None:
    if not m:
        return None
    take = min(m, scores.shape[1])
    ranked = scores.masked_fill(~valid, float("-inf"))
    order = ranked.topk(take, dim=1).indices
    # -1 where a row has fewer than m candidates: padded slots repeat a real id, never to be returned twice
    return cand.gather(1, order).masked_fill_(~valid.gather(1, order), -1)


def _dots(q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """q_i . x_ic for every candidate: one batched matrix-vector product."""
    return torch.bmm(x, q[:, :, None]).squeeze(2)


def _gaussian_rows(potential, q, X, sq_norms, cand, valid, hp, track_m, log_weights=None) -> Evaluation:  # noqa: ANN001
    """log sum_c w_c exp(-beta |x_c - q|^2 / 2) (w_c = 1 unless weighted), its gradient beta (mean - q), the mean."""
    beta = hp["beta"]
    x = X[cand]
    logits = beta * (_dots(q, x) - 0.5 * sq_norms[cand])
    if log_weights is not None:
        logits = logits + log_weights[cand]
    logits = logits.masked_fill_(~valid, float("-inf"))
    top = logits.max(1).values
    empty = ~torch.isfinite(top)
    shift = torch.where(empty, torch.zeros_like(top), top)
    weights = torch.exp(logits - shift[:, None])
    total = weights.sum(1)
    mean = torch.bmm(weights[:, None, :], x).squeeze(1) / total.clamp_min(torch.finfo(q.dtype).tiny)[:, None]
    mean = torch.where(empty[:, None], q, mean)
    value = top + total.log() - 0.5 * beta * (q * q).sum(1)
    return Evaluation(value=value, grad=beta * (mean - q), top_ids=_top(logits, cand, valid, track_m), mean=mean)


def _radial_rows(potential, q, X, sq_norms, cand, valid, hp, track_m) -> Evaluation:  # noqa: ANN001
    """sum_c psi(|x_c - q|) and sum_c psi'(r)/r (q - x_c), as RadialPotential computes them."""
    x = X[cand]
    d2 = ((q * q).sum(1, keepdim=True) + sq_norms[cand] - 2.0 * _dots(q, x)).clamp_min_(0.0)
    r = d2.sqrt()
    contrib, slope = potential.psi_and_dpsi(r, hp)
    contrib = contrib.masked_fill(~valid, 0.0)
    w = slope.div(r.clamp_min(torch.finfo(r.dtype).tiny)).masked_fill_((r == 0) | ~valid, 0.0)
    weight_sum, weighted_x = w.sum(1), torch.bmm(w[:, None, :], x).squeeze(1)
    grad = q * weight_sum[:, None] - weighted_x
    closest, at = d2.masked_fill(~valid, float("inf")).min(1)
    on_point = torch.where(closest == 0, cand.gather(1, at[:, None])[:, 0], torch.full_like(at, -1))
    mean = fixed_point_map(q, weight_sum, weighted_x, on_point, X)
    return Evaluation(value=contrib.sum(1), grad=grad, top_ids=_top(-d2, cand, valid, track_m), mean=mean)


def _coordinate_rows(potential, q, X, sq_norms, cand, valid, hp, track_m) -> Evaluation:  # noqa: ANN001
    """Per-point coordinate terms: each candidate evaluated as its own one-point batch.

    `terms` returns gradients already summed over its points axis, so the (row, candidate)
    pairs are flattened into rows of one point each; then padded slots can be masked out.
    """
    b, c = cand.shape
    diff = X[cand] - q[:, None, :]
    contrib, grad = potential.terms(diff.reshape(b * c, 1, -1), hp)
    contrib = contrib.reshape(b, c).masked_fill(~valid, 0.0)
    grad = grad.reshape(b, c, -1).masked_fill(~valid[:, :, None], 0.0).sum(1)
    return Evaluation(value=contrib.sum(1), grad=grad, top_ids=_top(contrib, cand, valid, track_m))
