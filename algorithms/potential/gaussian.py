"""The Gaussian potential, evaluated as attention with an online log-sum-exp.

log Psi(q) = log sum_x exp(-beta ||x - q||^2 / 2). Expanding the square, the logits are
beta q.x - beta ||x||^2 / 2 (a matrix product plus a per-point bias) minus beta ||q||^2 / 2,
constant per query. Streaming over data blocks with a running max, running sum and running
weighted sum of x (as flash attention does) gives log Psi, the softmax-weighted mean of the
data and grad log Psi = beta (mean - q) without ever underflowing, whatever beta, in memory
O(query block x data block). The weighted mean is the mean-shift / Hopfield fixed-point map.

Two kernels (Field.kernel). `matmul`: the stream above, written so a block keeps one
(rows x points) tensor alive: the bias is added in place, exp and the max shift run in place,
top-m tracking costs a topk only when asked for. Tiles of at most 512 query rows and 512 x 4096
logits (fewer if the budget says so) keep the product compute-bound and the logits in cache on
a CPU. Where beta is large, most weights lie below a rounding step of the sum: those blocks skip
the full exp and second product and work on the survivors alone (ColumnGroups,
_accumulate_survivors), so the step costs little more than the one product a brute-force pass
also pays. `sdpa`: the same step through fused attention with the bias carried in augmented
vectors, in fp32/fp16/bf16 (fused.py); for GPUs, where cuDNN/flash kernels run it in low precision.

The attention form (inner-product data, `metric="dot"`): the adapter keeps the data uncentred
and hands the field zero squared norms, so the logits are beta q.x with no bias, the weights
softmax(beta q.x) and the step the weighted mean: the modern Hopfield update. log Psi is then
lse(beta q.x) - beta ||q||^2 / 2, the negative Hopfield energy (times beta), and the top
contributors are the points of largest inner product. The same code serves both forms.
"""
from __future__ import annotations

import math
import warnings

import torch

from algorithms.base import Param, positive

from .chunks import RunningTopM, block_shape, blocks
from .fused import augmented_keys, augmented_queries, padded_width, precision_dtype, sdpa_weighted_mean
from .potentials import Evaluation, Field, Hyper, Potential, _concat, register_potential

#: live (rows x points) tensors in a matmul-kernel block: the logits (exponentiated in place) and
#: the topk / reduction scratch
TEMPORARIES = 2
#: shifted logits below this are raised to it before exp. exp(-80) = 1.8e-35 is still a normal fp32
#: number, so neither exp nor the weights @ x product meets subnormals, which x86 CPUs handle tens
#: of times slower (measured: half the step's time was exp of underflowing logits). Each raised
#: weight is < 1.8e-35 of the largest, so even 1e9 of them change the sum by < 1e-25 relative.
EXP_FLOOR = -80.0
#: the sparse path drops weights below e^-(SURVIVOR_MARGIN + ln(1/eps) + ln N) of the running max,
#: eps the dtype's rounding unit: all N of them together are < e^-2 eps (0.14 of a rounding step)
#: of the sum, which the largest weight alone already reaches. fp32, N = 1e5: e^-29.4; fp64: e^-49.5.
SURVIVOR_MARGIN = 2.0
#: columns of a block are searched for survivors in this many interleaved groups (column
#: g * width + j, g < SURVIVOR_GROUPS, is in group j): one strided max over the block finds the
#: groups that hold a survivor, and only those are read again
SURVIVOR_GROUPS = 16
#: a block takes the sparse path where at most this share of its (row, group) pairs hold a survivor
SPARSE_FRACTION = 0.25
#: the sparse path on/off (tests compare both; CPU only); its answers equal the dense path's to fp32 rounding
SPARSE_WEIGHTS = True
#: the matmul kernel's tile, at most TILE_ROWS query rows and TILE_ELEMENTS logits: 512 rows
#: keep a CPU's products compute-bound, and a 512 x 4096 fp32 tile (8 MiB) stays in a server
#: CPU's last-level cache, so the passes after the product (max, exp or survivor search) do not
#: go to DRAM (measured on a 2-core EPYC: 1k x 16k tiles made the strided group max 2-5x
#: slower). Fewer rows (the last queries of a climb) get more points per tile: fewer, larger calls.
TILE_ROWS, TILE_ELEMENTS = 512, 512 * 4096
#: query rows per block at least on a GPU (see chunks.block_shape)
GPU_MIN_ROWS = 1024


class Gaussian(Potential):
    """Psi(q) = sum_x exp(-beta ||x - q||^2 / 2); value and gradient are of log Psi."""

    name = "gaussian"
    params = {"beta": Param(float, 200.0, "inverse bandwidth, in 1 / scale unit^2", positive)}
    description = "Gaussian potential sum_x exp(-beta||x-q||^2/2), log domain; mean-shift = attention"
    # beta * (d2^2 - d1^2) must reach ~2 ln N (docs/design.md section 3): 200 does on siftsmall and random-xs
    # m = 100: the pool is wide enough for recall@10 from a landing on (or near) the nearest neighbour
    sweep = {"query": {"ascent": ["meanshift"], "beta": [30.0, 100.0, 300.0, 1000.0], "snap": ["final"], "m": [100]}}
    log_domain = True
    has_mean = True
    has_fixed_point = True  # its softmax mean is its fixed-point map
    kernels = ("matmul", "sdpa")
    # the attention form: on dot data the adapter zeroes Field.sq_norms, the logits become beta q.x
    metrics = ("euclidean", "angular", "dot")

    def evaluation_work(self, dimension: int) -> dict[str, float]:
        """One product for the logits, a sparse weighted sum and exp over the few weights that
        matter (README, Performance), and the top-m tracking of the snap's pool (m = 100 in the
        default sweep: about as much again, measured at 100k x 128)."""
        return {"matmul": 2.0, "pointwise": 20.0}

    def evaluate(self, Q: torch.Tensor, field: Field, hp: Hyper, track_m: int = 0) -> Evaluation:
        if field.kernel == "sdpa":
            return self._evaluate_sdpa(Q, field, hp["beta"], track_m)
        qc, nc = _tile(Q, field)
        parts = [self._evaluate_rows(Q[rows], field, hp["beta"], nc, track_m) for rows in blocks(len(Q), qc)]
        return _concat(parts)

    def _evaluate_rows(self, q: torch.Tensor, field: Field, beta: float, nc: int, track_m: int) -> Evaluation:
        rows = len(q)
        run_max = q.new_full((rows,), float("-inf"))
        run_sum = q.new_zeros(rows)
        run_x = torch.zeros_like(q)
        q_beta = q * beta
        top = RunningTopM(rows, track_m, q) if track_m else None
        sparse = SPARSE_WEIGHTS and q.device.type == "cpu"  # measured on CPUs only
        cut = survivor_cut(field.n, q.dtype) if sparse else None
        buffer = q.new_empty(rows * min(nc, field.n))  # one logits block, reused: no page faults per block
        for cols in blocks(field.n, nc):
            x = field.X[cols]
            logits = buffer[: rows * len(x)].view(rows, len(x))
            # the bias added in place: addmm(out=) would copy it into the block first, a pass more
            torch.mm(q_beta, x.T, out=logits).add_(field.sq_norms[cols], alpha=-0.5 * beta)
            if top is not None:
                top.update(logits, cols.start)
            groups = ColumnGroups(logits) if cut is not None else None
            new_max = torch.maximum(run_max, logits.amax(1) if groups is None else groups.row_max)
            decay = (run_max - new_max).exp_()
            run_sum.mul_(decay)
            run_x.mul_(decay[:, None])
            if groups is None or not _accumulate_survivors(groups, new_max, new_max - cut, x, run_sum, run_x):
                weights = logits.sub_(new_max[:, None]).clamp_min_(EXP_FLOOR).exp_()
                run_sum.add_(weights.sum(1))
                run_x.addmm_(weights, x)
            run_max = new_max
        mean = run_x / run_sum[:, None]
        value = run_max + run_sum.log() - 0.5 * beta * (q * q).sum(1)
        return Evaluation(
            value=value, grad=beta * (mean - q), top_ids=None if top is None else top.ids, mean=mean
        )

    def top_contributors(self, Q: torch.Tensor, field: Field, hp: Hyper, m: int) -> torch.Tensor:
        return top_contributors(Q, field, hp["beta"], m)

    def _evaluate_sdpa(self, Q: torch.Tensor, field: Field, beta: float, track_m: int) -> Evaluation:
        """The mean-shift step by fused attention; top-m (if asked) by one extra fp32 matmul pass.

        Queries are blocked by the memory budget on the CPU only: there SDPA may fall back to its
        math backend, which materialises (rows x points) scores. CUDA runs fused kernels only,
        whose memory is O(rows x D), so all queries go in one call.
        """
        dtype = precision_dtype(field.precision, field.X.dtype)
        cache_key = ("sdpa-keys", float(beta), dtype)
        keys = field.cache.get(cache_key)
        if keys is None:
            field.cache.clear()  # one beta per climb: never hold two copies of the keys
            keys = field.cache[cache_key] = augmented_keys(field.X, field.sq_norms, beta, dtype)
        if Q.device.type == "cuda":
            rows = len(Q)
        else:
            rows = block_shape(len(Q), field.n, 1, 4, field.memory_mb)[0]
        means = []
        for part in blocks(len(Q), max(1, rows)):
            q_aug = augmented_queries(Q[part], beta, padded_width(Q.shape[1]), dtype)
            means.append(sdpa_weighted_mean(q_aug, keys, Q.shape[1], beta))
        mean = torch.cat(means).to(Q.dtype) if means else Q.new_zeros(Q.shape)
        top_ids = top_contributors(Q, field, beta, track_m) if track_m else None
        return Evaluation(
            value=Q.new_full((len(Q),), math.nan), grad=beta * (mean - Q), top_ids=top_ids, mean=mean
        )


def survivor_cut(n_points: int, dtype: torch.dtype) -> float:
    """How far below the running max a logit may lie and still count (see SURVIVOR_MARGIN)."""
    return SURVIVOR_MARGIN - math.log(torch.finfo(dtype).eps) + math.log(max(1, n_points))


class ColumnGroups:
    """A (rows x cols) logits block seen as SURVIVOR_GROUPS interleaved column groups.

    Column g * width + j (g < SURVIVOR_GROUPS, j < width = cols // SURVIVOR_GROUPS) belongs to
    group j; the last cols % SURVIVOR_GROUPS columns are groups of one. `group_max` (rows x
    groups) costs one strided max over the block, and its row max is the block's row max, so
    the dense path loses nothing by having computed it.
    """

    def __init__(self, logits: torch.Tensor) -> None:
        rows, cols = logits.shape
        self.logits = logits
        self.width = cols // SURVIVOR_GROUPS
        self.grouped = logits.as_strided((rows, SURVIVOR_GROUPS, self.width), (logits.stride(0), self.width, 1))
        self.rest = SURVIVOR_GROUPS * self.width  # first column of the groups of one
        parts = [self.grouped.amax(1)] if self.width else []
        if self.rest < cols:
            parts.append(logits[:, self.rest:])
        self.group_max = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        self.row_max = self.group_max.amax(1)

    def entries_above(self, threshold: torch.Tensor, limit: float) -> tuple[torch.Tensor, ...] | None:
        """(row ids, column ids, logits) of the entries above their row's threshold, rows ascending;
        None where more than `limit` of the (row, group) pairs hold one."""
        holding = self.group_max > threshold[:, None]
        if int(torch.count_nonzero(holding)) > limit * holding.numel():
            return None  # counted first: nonzero would cost several times more on a dense block
        group_rows, group_ids = holding.nonzero(as_tuple=True)
        single = group_ids >= self.width
        rows, groups = group_rows[~single], group_ids[~single]
        values = self.grouped[rows, :, groups]  # (selected groups x SURVIVOR_GROUPS)
        pick, member = (values > threshold[rows, None]).nonzero(as_tuple=True)
        row_ids, col_ids, logits = rows[pick], groups[pick] + member * self.width, values[pick, member]
        if bool(single.any()):
            rest_rows, rest_cols = group_rows[single], group_ids[single] - self.width + self.rest
            row_ids = torch.cat([row_ids, rest_rows])
            col_ids = torch.cat([col_ids, rest_cols])
            logits = torch.cat([logits, self.logits[rest_rows, rest_cols]])
            order = torch.argsort(row_ids, stable=True)
            row_ids, col_ids, logits = row_ids[order], col_ids[order], logits[order]
        return row_ids, col_ids, logits


def _accumulate_survivors(
    groups: ColumnGroups, new_max: torch.Tensor, threshold: torch.Tensor, x: torch.Tensor,
    run_sum: torch.Tensor, run_x: torch.Tensor,
) -> bool:
    """Add a block's weights to run_sum / run_x from its non-negligible entries only, if they are few.

    An entry whose logit is <= its row's threshold (running max - survivor_cut) has weight
    below e^-cut of the largest; leaving all of them out changes the sums by less than e^-2 of
    a rounding step (SURVIVOR_MARGIN). Where few entries survive (large beta:
    the step is dominated by a handful of neighbours), exp and the weighted sum run over the
    survivors alone (a CSR sparse x dense product) instead of the whole block and a full
    product; the column groups find them without a pass over the block per survivor. Returns
    False, having changed nothing, where the dense path should run; the logits are left
    untouched either way.
    """
    found = groups.entries_above(threshold, SPARSE_FRACTION)
    if found is None:
        return False
    row_ids, col_ids, logits = found
    rows, cols = groups.logits.shape
    weights = logits.sub_(new_max[row_ids]).exp_()
    run_sum.index_add_(0, row_ids, weights)
    row_starts = torch.zeros(rows + 1, dtype=torch.long, device=weights.device)
    torch.cumsum(torch.bincount(row_ids, minlength=rows), 0, out=row_starts[1:])
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the product used here is stable
        warnings.simplefilter("ignore", UserWarning)
        matrix = torch.sparse_csr_tensor(row_starts, col_ids, weights, (rows, cols), check_invariants=False)
        run_x.add_(matrix @ x)
    return True


def _tile(Q: torch.Tensor, field: Field) -> tuple[int, int]:
    """(query rows, points) per block of the matmul kernel: the budget's shape, on a CPU capped at the tile.

    A GPU has no cache to fit and pays per kernel launch, so it takes the largest blocks the
    budget allows with at least GPU_MIN_ROWS rows (the shape used before the CPU tiles).
    """
    if Q.device.type != "cpu":
        return block_shape(len(Q), field.n, 1, Q.element_size(), field.memory_mb, TEMPORARIES, GPU_MIN_ROWS)
    qc, nc = block_shape(len(Q), field.n, 1, Q.element_size(), field.memory_mb, TEMPORARIES, TILE_ROWS)
    qc = min(qc, TILE_ROWS)
    nc = min(nc, max(1, TILE_ELEMENTS // qc))
    if SURVIVOR_GROUPS < nc < field.n:
        nc -= nc % SURVIVOR_GROUPS  # whole column groups in every block but the last
    return qc, nc


def top_contributors(Q: torch.Tensor, field: Field, beta: float, m: int) -> torch.Tensor:
    """Ids of the m largest Gaussian contributions at Q (= the m nearest points), by fp32 matmul logits."""
    qc, nc = _tile(Q, field)
    out = []
    for rows in blocks(len(Q), qc):
        q_beta = Q[rows] * beta
        top = RunningTopM(len(q_beta), m, q_beta)
        for cols in blocks(field.n, nc):
            top.update(torch.addmm(field.sq_norms[cols][None, :], q_beta, field.X[cols].T, beta=-0.5 * beta), cols.start)
        out.append(top.ids)
    return torch.cat(out) if out else torch.zeros((0, m), dtype=torch.long, device=Q.device)


register_potential(Gaussian())
