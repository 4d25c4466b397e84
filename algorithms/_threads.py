"""Thread-count scopes for the libraries the baselines run on.

torch and FAISS each keep one process-wide thread count (FAISS through OpenMP). An adapter
sets its own `threads` for the duration of a fit or search and restores the previous value
afterwards, so that one adapter's setting never leaks into the next one the runner builds
(or into another test in the same process).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, ContextManager, Iterator


@contextmanager
def _scoped(get: Callable[[], int], set_: Callable[[int], None], threads: int) -> Iterator[None]:
    """Run the block with `set_(threads)`, then restore what `get()` said before."""
    previous = get()
    set_(threads)
    try:
        yield
    finally:
        set_(previous)


def torch_threads(threads: int) -> ContextManager[None]:
    """Run the block with `torch.set_num_threads(threads)`, then restore the previous count."""
    import torch

    return _scoped(torch.get_num_threads, torch.set_num_threads, threads)


def faiss_threads(threads: int) -> ContextManager[None]:
    """Run the block with `faiss.omp_set_num_threads(threads)`, then restore the previous count."""
    import faiss

    return _scoped(faiss.omp_get_max_threads, faiss.omp_set_num_threads, threads)
