"""Fused evaluation paths: the Gaussian step as fused attention, and compiled per-block functions.

Attention (docs/design.md section 3). The Gaussian mean-shift step is softmax_x(beta q.x - beta ||x||^2 / 2) X,
i.e. attention with keys = values = the data and one bias per key. The bias rides inside the
vectors, so fused kernels (cuDNN, flash) that take no mask can run it:

    q~ = s [q, 1],   k~ = s [x, c - ||x||^2 / 2],   s = sqrt(beta),   q~ . k~ = beta (q.x - ||x||^2/2 + c)

with SDPA's `scale=1.0`. The constant c (the same for every key) leaves the softmax unchanged; it
centres the bias column so that its largest magnitude is half what it would be. Splitting beta as
sqrt(beta) on both sides (instead of docs/design.md section 3's [beta q, 1] / [x, -beta ||x||^2 / 2]) gives the
same logits with the smallest largest entry, which is what fp16's range needs. Keys are padded
with zeros to a multiple of 8 (fused kernels want aligned head dimensions) and serve as values
too, so no second copy of the data is made: the first D output columns, divided by s, are the
softmax-weighted mean. The data must already be centred and in scale units (the adapter's fit
does both), else ||x||^2 dwarfs the differences between keys and fp16 cancels them.

SDPA gives neither log Psi nor the top contributors: the Evaluation's `value` is NaN on this
path, and top-m ids come from one extra blocked fp32 matmul pass (see gaussian.py). Recall claims
stay exact because the snap re-ranks in fp32 or better (snap.rerank).

Compiled blocks. The other potentials are elementwise maps of distances or differences followed by
reductions; eager torch writes every intermediate block to memory. `compiled_call` runs a per-block
function through torch.compile when it is available and works, and falls back to the eager
function (once, with a warning) when it is not: a missing C++ compiler or an unsupported op must
never cost a user their results.
"""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

from harness.errors import ParameterError

LOW_PRECISION = {"fp16": torch.float16, "bf16": torch.bfloat16}
#: fused kernels want head dimensions that are multiples of 8 elements (16 bytes in fp16)
ALIGN = 8


def precision_dtype(precision: str, data_dtype: torch.dtype) -> torch.dtype:
    """The dtype the scores are computed in: 'fp32' means the data's own dtype (fp32 or fp64)."""
    if precision == "fp32":
        return data_dtype
    if precision not in LOW_PRECISION:
        raise ParameterError(f"unknown precision {precision!r}", "allowed: fp32, fp16, bf16")
    return LOW_PRECISION[precision]


def padded_width(dimension: int) -> int:
    """Augmented width D + 1 rounded up to a multiple of ALIGN."""
    return -(-(dimension + 1) // ALIGN) * ALIGN


def augmented_keys(X: torch.Tensor, sq_norms: torch.Tensor, beta: float, dtype: torch.dtype) -> torch.Tensor:
    """k~ = sqrt(beta) [x, c - ||x||^2 / 2, 0 ...] in `dtype`, built in fp32 or better then rounded once.

    Raises ParameterError when an entry would overflow `dtype` (fp16 with a large beta or data
    far from the origin), naming the remedies, instead of silently turning peaks into infinities.
    """
    n, d = X.shape
    work = torch.promote_types(X.dtype, torch.float32)
    s = math.sqrt(beta)
    bias = sq_norms.to(work) * -0.5
    bias -= 0.5 * (bias.max() + bias.min())
    keys = torch.zeros((n, padded_width(d)), dtype=work, device=X.device)
    keys[:, :d] = X.to(work) * s
    keys[:, d] = bias * s
    largest = float(keys.abs().max()) if n else 0.0
    if largest > torch.finfo(dtype).max:
        raise ParameterError(
            f"sdpa kernel: augmented keys reach {largest:.3g}, beyond the range of {dtype}",
            "use precision bf16 or fp32, a smaller beta, or data in scale units (scale 'auto')",
        )
    return keys.to(dtype)


def augmented_queries(Q: torch.Tensor, beta: float, width: int, dtype: torch.dtype) -> torch.Tensor:
    """q~ = sqrt(beta) [q, 1, 0 ...] in `dtype`."""
    s = math.sqrt(beta)
    work = torch.promote_types(Q.dtype, torch.float32)
    out = torch.zeros((len(Q), width), dtype=work, device=Q.device)
    out[:, : Q.shape[1]] = Q.to(work) * s
    out[:, Q.shape[1]] = s
    return out.to(dtype)


def sdpa_backends(device: torch.device) -> list[Any]:
    """Backends allowed, in priority order: fused ones only on CUDA (memory O(Q x D), never Q x N).

    The math backend would materialise the (Q x N) scores, so it is allowed on the CPU only,
    where the caller blocks the queries to keep that inside the memory budget (and PyTorch's
    CPU flash kernel, which streams over keys, is preferred anyway).
    """
    from torch.nn.attention import SDPBackend

    if device.type == "cuda":
        return [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    return [SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]


@contextmanager
def _only(backends: list[Any]) -> Iterator[None]:
    from torch.nn.attention import sdpa_kernel

    try:
        context = sdpa_kernel(backends, set_priority=True)
    except TypeError:  # torch before set_priority: the listed backends, torch's own order
        context = sdpa_kernel(backends)
    with context:
        yield


def sdpa_weighted_mean(q_aug: torch.Tensor, keys: torch.Tensor, dimension: int, beta: float) -> torch.Tensor:
    """softmax(q~ k~^T) k~ through SDPA (scale 1.0), first `dimension` columns, back in data units.

    Returned in fp32 (the kernels accumulate in fp32; only the inputs were rounded).
    """
    backends = sdpa_backends(q_aug.device)
    try:
        with _only(backends):
            out = torch.nn.functional.scaled_dot_product_attention(
                q_aug[None, None], keys[None, None], keys[None, None], scale=1.0
            )[0, 0]
    except RuntimeError as error:
        names = ", ".join(b.name for b in backends)
        raise ParameterError(
            f"sdpa kernel: no allowed SDPA backend ({names}) runs {q_aug.dtype} with head dim {keys.shape[1]} "
            f"on {q_aug.device}: {error}",
            "use kernel 'matmul', or precision fp16/bf16 on a recent GPU",
        ) from error
    return out[:, :dimension].float() / math.sqrt(beta)


# -- compiled per-block functions ---------------------------------------------------------------
_COMPILED: dict[tuple[Any, ...], Callable[..., Any]] = {}
_FAILED: set[tuple[Any, ...]] = set()


def compile_available() -> bool:
    """Whether torch.compile exists here at all (it may still fail on first use)."""
    return hasattr(torch, "compile")


def compiled_call(key: tuple[Any, ...], fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args), through torch.compile when it works for `key`, else eagerly.

    `key` names the function and the device type: a failure on one device (no C++ compiler for
    the CPU backend, no Triton for CUDA) does not disable the other. A failure is remembered so
    the compile is not retried on every block; `reset_compiled` forgets (for tests).
    """
    if key not in _FAILED and compile_available():
        try:
            compiled = _COMPILED.get(key)
            if compiled is None:
                compiled = _COMPILED[key] = torch.compile(fn, dynamic=None)
            return compiled(*args)
        except Exception as error:  # noqa: BLE001 - any compiler failure means: run eagerly
            _FAILED.add(key)
            _COMPILED.pop(key, None)
            warnings.warn(f"torch.compile failed for {key[0]} ({type(error).__name__}: {error}); running eagerly",
                          RuntimeWarning, stacklevel=2)
    return fn(*args)


def compile_failed(key: tuple[Any, ...]) -> bool:
    """Whether `key` fell back to eager (for tests and the step-cost bench's report)."""
    return key in _FAILED


def reset_compiled() -> None:
    """Forget compiled functions and failures."""
    _COMPILED.clear()
    _FAILED.clear()
