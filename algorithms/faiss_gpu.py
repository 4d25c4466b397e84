"""FAISS's GPU indexes: exact flat search and IVF-Flat on one CUDA device.

`faiss-gpu-flat` and `faiss-gpu-ivf` are faiss-flat and faiss-ivf moved to the GPU: the same
CPU index is made with the same parameters and metric (inner product on `dot` data, the IVF's
coarse quantizer too), handed to FAISS's `index_cpu_to_gpu` before it is trained, then trained
(k-means on the GPU, seeded from the adapter's seed), filled and searched there. They answer
the question the CPU baselines cannot: what FAISS itself does with the GPU the potentials run on.

They exist only where the installed faiss is a GPU build that sees a GPU. faiss-cpu (the
project's default dependency) has no `StandardGpuResources` and `get_num_gpus()` is 0 there:
this module then raises ImportError on import, so the registry does not register these
adapters and `python -m harness list` names the reason on its "unavailable" line. FAISS's GPU
build is the optional extra `gpu` (pyproject.toml), installed in place of faiss-cpu.

FAISS's GPU indexes keep no distance counters: IVF-Flat's `dist_comps` is not reported (flat
search computes n distances per query, as on the CPU). GPU search takes k <= 2048 and, for
IVF, nprobe <= 2048 (FAISS's GPU selection limit).
"""
from __future__ import annotations

from typing import Any, Mapping

import faiss
import numpy as np

from harness.errors import ParameterError

from ._gpu_support import gpu_support_problem
from ._threads import faiss_threads
from .faiss_indexes import FaissFlat, FaissIVF, _FaissAdapter
from .registry import register

#: the largest k (and IVF nprobe) FAISS's GPU k-selection serves
GPU_MAX_K = 2048


_PROBLEM = gpu_support_problem()
if _PROBLEM is not None:
    raise ImportError(_PROBLEM)

_RESOURCES: list[Any] = []


def gpu_resources() -> Any:
    """One `StandardGpuResources` per process (its scratch memory and streams), made on first use."""
    if not _RESOURCES:
        _RESOURCES.append(faiss.StandardGpuResources())
    return _RESOURCES[0]


def to_gpu(index: Any) -> Any:
    """The CPU index's GPU counterpart on device 0 (untrained in, untrained out)."""
    return faiss.index_cpu_to_gpu(gpu_resources(), 0, index)


def to_cpu(index: Any) -> Any:
    """A CPU copy of a GPU index (to serialise it)."""
    return faiss.index_gpu_to_cpu(index)


def _refuse_above_gpu_limit(owner: str, what: str, value: int) -> None:
    if value > GPU_MAX_K:
        raise ParameterError(f"{owner}: {what} = {value} is above FAISS's GPU limit of {GPU_MAX_K}",
                             f"use {what} <= {GPU_MAX_K} on the GPU, or the CPU adapter")


class _GpuAdapter(_FaissAdapter):
    """The CPU adapter's index, moved to the GPU before training; the search path is FAISS's own."""

    devices = ("cuda",)

    def _fit(self, X: np.ndarray) -> None:
        with faiss_threads(self.threads):  # the CPU side of the copy and of training
            index = to_gpu(self._make_index(X))
            if hasattr(index, "cp"):  # the GPU IVF's own k-means parameters: not copied from the CPU index
                index.cp.seed = self.seed
            if not index.is_trained:
                index.train(X)
            index.add(X)
        self._index = index
        self._serialized_bytes = None

    @classmethod
    def check_config(cls, build: Mapping[str, Any], query: Mapping[str, Any], k: int, n_train: int, dimension: int) -> None:
        super().check_config(build, query, k, n_train, dimension)
        _refuse_above_gpu_limit(cls.name, "k", k)

    def _check_k(self, k: int) -> None:
        _refuse_above_gpu_limit(self.name, "k", k)

    def index_bytes(self) -> int | None:
        """Size of the serialized index, copied back to the CPU once (what FAISS would write to disk)."""
        if self._index is None:
            return None
        if self._serialized_bytes is None:
            self._serialized_bytes = int(faiss.serialize_index(to_cpu(self._index)).size)
        return self._serialized_bytes


@register("faiss-gpu-flat", default_run=False,
          description="FAISS GpuIndexFlat (L2; inner product on dot data): exact brute force on the GPU, no parameters")
class FaissGpuFlat(_GpuAdapter, FaissFlat):
    """faiss-flat on the GPU: FAISS's exact search, the GPU reference for brute force."""


# faiss-ivf's sweep from harness/plan/sweeps/default.yaml, registered here: an entry in that file
# would join every default run, CPU-only ones included; these run only when named (--algorithms)
@register("faiss-gpu-ivf", default_run=False, sweep={"build": {"nlist": [64]}, "query": {"nprobe": [1, 2, 4, 8, 16, 32]},
                                                    "large": {"build": {"nlist": [1024, 4096]},
                                                              "query": {"nprobe": [1, 2, 4, 8, 16, 32, 64, 128, 256]}}},
          description="FAISS GpuIndexIVFFlat: faiss-ivf's k-means lists and exact distances, trained and searched on the GPU")
class FaissGpuIVF(_GpuAdapter, FaissIVF):
    """faiss-ivf on the GPU: the same nlist / nprobe, k-means seeded from the adapter's seed."""

    @classmethod
    def check_config(cls, build: Mapping[str, Any], query: Mapping[str, Any], k: int, n_train: int, dimension: int) -> None:
        super().check_config(build, query, k, n_train, dimension)
        _refuse_above_gpu_limit(cls.name, "nprobe", query["nprobe"])

    def check_query_params(self, values: Mapping[str, Any]) -> None:
        super().check_query_params(values)
        _refuse_above_gpu_limit(self.name, "nprobe", values["nprobe"])

    def _read_counters(self, n_queries: int, k: int) -> None:
        return None  # FAISS's GPU IVF updates no counters: not measured, rather than a guess
