"""One thread count for every library, set before any of them starts its pools.

Timings compare libraries fairly only when each runs with the same number of threads; the
count is recorded in every record. Environment variables must be set before numpy, torch or
faiss create their thread pools, so `python -m harness` sets them before importing them.
"""
from __future__ import annotations

import os
import sys

ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def set_env_threads(threads: int) -> None:
    """Set the thread environment variables (effective only before the libraries load)."""
    for name in ENV_VARS:
        os.environ[name] = str(threads)


def set_threads(threads: int) -> None:
    """Set the thread count of torch and FAISS now (hnswlib takes it per index, from the adapter)."""
    set_env_threads(threads)
    import torch

    torch.set_num_threads(threads)
    try:
        import faiss
    except ImportError:
        return
    faiss.omp_set_num_threads(threads)


def set_job_threads(threads: int) -> None:
    """Set the thread count of a build job's process: the environment (for libraries loaded
    later, which size their pools from it) and torch and FAISS if they are loaded already (the
    adapter's module has imported what it uses by now); a process that measures several thread
    counts one job after another (`--workers 0`, a reused Ray worker) changes them per job."""
    set_env_threads(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    faiss = sys.modules.get("faiss")
    if faiss is not None:
        faiss.omp_set_num_threads(threads)
