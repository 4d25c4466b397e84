"""Whether the installed faiss can run GPU indexes here: the condition for algorithms/faiss_gpu.py.

A module of its own (not discovered by the registry, importable anywhere) so that tests and
scripts can ask the question without importing the GPU adapters, which refuse to import where
the answer is no.
"""
from __future__ import annotations

from typing import Any


def gpu_support_problem(module: Any = None) -> str | None:
    """Why `module` (default: the installed faiss) cannot run GPU indexes here, or None when it can.

    faiss-cpu has `get_num_gpus` (it returns 0) and a few GPU helper functions, but no
    `StandardGpuResources`: that class is what only FAISS's GPU build has.
    """
    if module is None:
        import faiss as module
    version = getattr(module, "__version__", "?")
    if not hasattr(module, "StandardGpuResources"):
        return (f"faiss {version} is a CPU-only build (no faiss.StandardGpuResources): faiss-gpu-flat and faiss-gpu-ivf "
                "need FAISS's GPU build (pip uninstall faiss-cpu, then pip install '.[gpu]')")
    count = module.get_num_gpus()
    if count < 1:
        return f"faiss {version} is a GPU build but sees no GPU (faiss.get_num_gpus() = {count})"
    return None
