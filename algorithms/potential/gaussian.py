"""The Gaussian potential, evaluated as attention with an online log-sum-exp.

log Psi(q) = log sum_x exp(-beta ||x - q||^2 / 2). Expanding the square, the logits are
beta q.x - beta ||x||^2 / 2 (a matrix product plus a per-point bias) minus beta ||q||^2 / 2,
constant per query. Streaming over data blocks with a running max, running sum and running
weighted sum of x (as flash attention does) gives log Psi, the softmax-weighted mean of the
data and grad log Psi = beta (mean - q) without ever underflowing, whatever beta, in memory
O(query block x data block). The weighted mean is the mean-shift / Hopfield fixed-point map.

Two kernels (Field.kernel). `matmul`: the stream above, written so a block keeps one
(rows x points) tensor alive: the bias enters through addmm, exp and the max shift run in place,
top-m tracking costs a topk only when asked for. Tiles are ~1k query rows x as many points as
the budget allows (chunks.block_shape's min_rows), which keeps both products compute-bound on a
CPU. `sdpa`: the same step through fused attention with the bias carried in augmented vectors,
in fp32/fp16/bf16 (fused.py); for GPUs, where cuDNN/flash kernels run it in low precision.
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
#: a block whose share of non-negligible weights (logit > running max + EXP_FLOOR) is at most this
#: takes the sparse path (_accumulate_survivors): exp and the weighted sum over the survivors only
SPARSE_FRACTION = 0.03
#: columns sampled per block to estimate that share before building the full mask
SPARSE_SAMPLE = 256
#: the sparse path on/off (tests compare both; CPU only); its answers equal the dense path's to fp32 rounding
SPARSE_WEIGHTS = True
#: query rows per tile at least (see chunks.block_shape): ~1k keeps a CPU's matmuls compute-bound
MIN_ROWS = 1024


class Gaussian(Potential):
    """Psi(q) = sum_x exp(-beta ||x - q||^2 / 2); value and gradient are of log Psi."""

    name = "gaussian"
    params = {"beta": Param(float, 200.0, "inverse bandwidth, in 1 / scale unit^2", positive)}
    description = "Gaussian potential sum_x exp(-beta||x-q||^2/2), log domain; mean-shift = attention"
    # beta * (d2^2 - d1^2) must reach ~2 ln N (design.md 3): 200 does on siftsmall and random-xs
    sweep = {"query": {"ascent": ["meanshift"], "beta": [30.0, 100.0, 300.0, 1000.0], "snap": ["topm"]}}
    log_domain = True
    has_mean = True
    kernels = ("matmul", "sdpa")

    def evaluate(self, Q: torch.Tensor, field: Field, hp: Hyper, track_m: int = 0) -> Evaluation:
        if field.kernel == "sdpa":
            return self._evaluate_sdpa(Q, field, hp["beta"], track_m)
        qc, nc = block_shape(len(Q), field.n, 1, Q.element_size(), field.memory_mb, TEMPORARIES, MIN_ROWS)
        parts = [self._evaluate_rows(Q[rows], field, hp["beta"], nc, track_m) for rows in blocks(len(Q), qc)]
        return _concat(parts)

    def _evaluate_rows(self, q: torch.Tensor, field: Field, beta: float, nc: int, track_m: int) -> Evaluation:
        run_max = q.new_full((len(q),), float("-inf"))
        run_sum = q.new_zeros(len(q))
        run_x = torch.zeros_like(q)
        q_beta = q * beta
        top = RunningTopM(len(q), track_m, q) if track_m else None
        sparse = SPARSE_WEIGHTS and q.device.type == "cpu"  # measured on CPUs only
        for cols in blocks(field.n, nc):
            x = field.X[cols]
            logits = torch.addmm(field.sq_norms[cols][None, :], q_beta, x.T, beta=-0.5 * beta)
            if top is not None:
                top.update(logits, cols.start)
            new_max = torch.maximum(run_max, logits.amax(1))
            decay = (run_max - new_max).exp_()
            run_sum.mul_(decay)
            run_x.mul_(decay[:, None])
            if not (sparse and _accumulate_survivors(logits, new_max, x, run_sum, run_x)):
                weights = logits.sub_(new_max[:, None]).clamp_min_(EXP_FLOOR).exp_()
                run_sum.add_(weights.sum(1))
                run_x.addmm_(weights, x)
            run_max = new_max
        mean = run_x / run_sum[:, None]
        value = run_max + run_sum.log() - 0.5 * beta * (q * q).sum(1)
        return Evaluation(
            value=value, grad=beta * (mean - q), top_ids=None if top is None else top.ids, mean=mean
        )

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


def _accumulate_survivors(
    logits: torch.Tensor, new_max: torch.Tensor, x: torch.Tensor, run_sum: torch.Tensor, run_x: torch.Tensor
) -> bool:
    """Add a block's weights to run_sum / run_x from its non-negligible entries only, if they are few.

    An entry whose logit is <= its row's running max + EXP_FLOOR has weight <= e^EXP_FLOOR of the
    largest, which the dense path floors and adds anyway; leaving it out changes the sums by less
    than the block size x 1.8e-35 relative. Where few entries survive (large beta: the step is
    dominated by a handful of neighbours), exp and the weighted sum run over the survivors alone
    (a CSR sparse x dense product) instead of the whole block and a full product.
    A strided sample of columns estimates the survivors' share first, so a block where most
    survive costs only that sample. Returns False, having changed nothing, where the dense path
    should run; `logits` is left untouched either way.
    """
    rows, cols = logits.shape
    threshold = (new_max + EXP_FLOOR)[:, None]
    step = max(1, cols // SPARSE_SAMPLE)
    sample = logits[:, ::step]
    if int((sample > threshold).sum()) > SPARSE_FRACTION * sample.numel():
        return False
    row_ids, col_ids = (logits > threshold).nonzero(as_tuple=True)
    if len(row_ids) > SPARSE_FRACTION * logits.numel():
        return False
    weights = (logits[row_ids, col_ids] - new_max[row_ids]).exp_()
    run_sum.index_add_(0, row_ids, weights)
    row_starts = torch.zeros(rows + 1, dtype=torch.long, device=logits.device)
    torch.cumsum(torch.bincount(row_ids, minlength=rows), 0, out=row_starts[1:])
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the product used here is stable
        warnings.simplefilter("ignore", UserWarning)
        matrix = torch.sparse_csr_tensor(row_starts, col_ids, weights, (rows, cols), check_invariants=False)
        run_x.add_(matrix @ x)
    return True


def top_contributors(Q: torch.Tensor, field: Field, beta: float, m: int) -> torch.Tensor:
    """Ids of the m largest Gaussian contributions at Q (= the m nearest points), by fp32 matmul logits."""
    qc, nc = block_shape(len(Q), field.n, 1, Q.element_size(), field.memory_mb, TEMPORARIES, MIN_ROWS)
    out = []
    for rows in blocks(len(Q), qc):
        q_beta = Q[rows] * beta
        top = RunningTopM(len(q_beta), m, q_beta)
        for cols in blocks(field.n, nc):
            top.update(torch.addmm(field.sq_norms[cols][None, :], q_beta, field.X[cols].T, beta=-0.5 * beta), cols.start)
        out.append(top.ids)
    return torch.cat(out) if out else torch.zeros((0, m), dtype=torch.long, device=Q.device)


register_potential(Gaussian())
