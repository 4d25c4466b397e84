"""The C allocator setting every process that measures an algorithm runs with.

Eager torch on a CPU allocates a fresh tensor for each operation. glibc serves allocations above
its mmap threshold with fresh mappings (the threshold starts at 128 KiB and only adapts after
frees), and returns freed memory at the top of the heap to the system beyond its trim threshold,
so the temporaries of a block-sized elementwise chain keep page-faulting their memory back in.
Measured on a 2-core EPYC: one potential_2 step on the note's data (20 queries x 1000 points x
64, fp64, 1 thread) took 19,360 minor page faults and 82 ms with glibc's defaults, 0 faults and
16 ms with the setting below (and the CPU block caps of chunks.cpu_capped). PyTorch's CPU tuning
guide recommends jemalloc or tcmalloc for the same reason; this is the in-process equivalent for
glibc, so it needs no LD_PRELOAD; spawned children apply it themselves (they run the worker).

FAISS and hnswlib allocate little per query; they run under the same setting, which every
record's provenance names (`allocator`). GPNN_MALLOC=default leaves glibc's defaults alone
(to measure the difference). Importing `algorithms` changes nothing: the setting is applied once
per process by whoever measures, explicitly (the harness's worker before it builds an index,
`harness.measure.worker.job_events`; the benchmarks at their start).
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys

#: mallopt parameter numbers (glibc malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: allocations up to this size come from the heap (32 MiB: glibc's largest allowed value on 64-bit)
MMAP_THRESHOLD = 32 * 2**20
#: freed memory at the top of the heap is kept up to this much before it is returned to the system
TRIM_THRESHOLD = 64 * 2**20
#: environment variable: "default" (or "off", "0") keeps glibc's defaults
ENV = "GPNN_MALLOC"

_setting: str | None = None


def tune_malloc() -> str:
    """Apply the setting once per process; returns what the process runs with, in words."""
    global _setting
    if _setting is None:
        _setting = _apply()
    return _setting


def _apply() -> str:
    choice = os.environ.get(ENV, "").strip().lower()
    if choice in ("default", "off", "0"):
        return f"default ({ENV}={os.environ[ENV]})"
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return "default (not glibc)"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "default (no mallopt)"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1 or mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return "default (mallopt refused)"
    return f"glibc mallopt mmap_threshold={MMAP_THRESHOLD} trim_threshold={TRIM_THRESHOLD}"
