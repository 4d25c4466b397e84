"""Block sizes from a memory budget, and a running top-m over data blocks.

Every potential streams over the data: the largest tensor ever alive is one
(query block x data block [x width]) block, so a 1M-point dataset and a laptop's memory
get along. `width` is 1 for potentials computed from matrix products (radial, Gaussian) and
the dimension for those that need per-coordinate terms (potential_2, naive), which is why
the latter chunk over queries *and* data.
"""
from __future__ import annotations

from typing import Iterator

import torch

#: live temporaries per block element (differences, squares, exponentials, weights, ...);
#: a generous count, so the budget is an upper bound rather than a hope.
TEMPORARIES = 8


def block_shape(
    n_queries: int,
    n_points: int,
    width: int,
    itemsize: int,
    memory_mb: float,
    temporaries: int = TEMPORARIES,
    min_rows: int = 1,
) -> tuple[int, int]:
    """(query rows, data rows) per block so that `temporaries` blocks fit in `memory_mb` MiB.

    Whole data passes are preferred (fewer merges) as long as they leave at least `min_rows`
    query rows per block; past that the data is split instead. `min_rows` exists because a
    matrix product of a handful of query rows against all points is memory-bound (the data is
    streamed once per few rows): the Gaussian's tiles of ~1k rows x ~16k points run the same
    flops several times faster on a CPU. With the defaults the shape is the historical one.
    `temporaries` is how many block-sized tensors the caller keeps alive at once.
    """
    elements = max(1, int(memory_mb * 2**20) // (itemsize * max(1, temporaries) * max(1, width)))
    if elements >= n_points * max(1, min(n_queries, min_rows)):
        return max(1, min(n_queries, elements // n_points)), n_points
    rows = max(1, min(n_queries, min_rows, elements))
    return rows, max(1, min(n_points, elements // rows))


def cpu_capped(memory_mb: float, device: torch.device, cap_mb: float) -> float:
    """The block budget to use on `device`: on a CPU at most `cap_mb`, elsewhere `memory_mb`.

    Eager elementwise chains over blocks that stay in a CPU's caches run several times faster
    than over DRAM-sized ones, whose every temporary is also a fresh allocation with page
    faults (measured on a 2-core EPYC, 32 MiB L3: potential_2 3-4x, potential_1 1.2x). GPUs
    want the largest blocks the budget allows, so their budget is left alone.
    """
    return min(memory_mb, cap_mb) if device.type == "cpu" else memory_mb


def block_bytes(rows: int, cols: int, width: int, itemsize: int, temporaries: int = TEMPORARIES) -> int:
    """Bytes of the `temporaries` block-sized tensors of a (rows x cols [x width]) block."""
    return rows * cols * max(1, width) * itemsize * max(1, temporaries)


def blocks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of length `size` (the last may be shorter) covering range(n)."""
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


class RunningTopM:
    """The m highest scores seen so far per query row, merged block by block.

    Used to remember the top contributors to the potential during an evaluation, so that the
    snap step can pick among them without another pass over the data.
    """

    def __init__(self, rows: int, m: int, like: torch.Tensor) -> None:
        self.m = m
        self.scores = torch.full((rows, 0), float("-inf"), dtype=like.dtype, device=like.device)
        self.ids = torch.zeros((rows, 0), dtype=torch.long, device=like.device)

    def update(self, scores: torch.Tensor, offset: int) -> None:
        """Merge a (rows x block) score block whose column 0 is data point `offset`."""
        take = min(self.m, scores.shape[1])
        top_scores, top_cols = scores.topk(take, dim=1)
        merged_scores = torch.cat([self.scores, top_scores], dim=1)
        merged_ids = torch.cat([self.ids, top_cols + offset], dim=1)
        if merged_scores.shape[1] > self.m:
            merged_scores, order = merged_scores.topk(self.m, dim=1)
            merged_ids = merged_ids.gather(1, order)
        self.scores, self.ids = merged_scores, merged_ids
