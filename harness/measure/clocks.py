"""Clocks for one timed call: wall (perf_counter), process CPU time, and GPU time.

GPU time is measured with CUDA events recorded on the current stream around the call, and
read after a synchronise, so it is the device time of the work the call enqueued. Wall time
of a CUDA call is taken after that synchronise as well: queries are not done until the GPU is.

`timed` reads three clocks (and on CUDA synchronises), so it times whole runs: a batch, or a
whole loop of single queries. A single query is timed by `QUERY_CLOCK` alone, a pair of
integer nanosecond readings around the adapter's bare call (`Adapter.search_each`), the
cheapest clock Python offers (about 50 ns a reading, no float object).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

T = TypeVar("T")

#: the per-query clock handed to `Adapter.search_each`: integer nanoseconds, monotonic
QUERY_CLOCK: Callable[[], int] = time.perf_counter_ns
#: seconds per unit of QUERY_CLOCK
QUERY_CLOCK_S = 1e-9


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float
    gpu_s: float | None


def timed(call: Callable[[], T], device: str = "cpu") -> tuple[T, Timing]:
    """Run `call()` once and return its result with its wall, CPU and (on CUDA) GPU time (a whole
    run: see QUERY_CLOCK for one query)."""
    if device.startswith("cuda"):
        return _timed_cuda(call)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = call()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return result, Timing(wall, cpu, None)


def _timed_cuda(call: Callable[[], Any]) -> tuple[Any, Timing]:
    import torch

    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    start.record()
    result = call()
    end.record()
    torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return result, Timing(wall, cpu, start.elapsed_time(end) / 1000.0)


def rss_bytes() -> int | None:
    """Resident set size of this process now (Linux /proc), or None where unavailable."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> bool:
    """Start a new peak of this process's resident set (Linux >= 4.0: writing 5 to
    /proc/self/clear_refs resets VmHWM); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int | None:
    """The peak resident set of this process since it started or since `reset_peak_rss`
    (VmHWM of /proc/self/status), or None where unavailable."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_during(call: Callable[[], T]) -> tuple[T, int | None]:
    """`call()` and the peak resident set of this process while it ran (None where the peak
    cannot be reset and read: not Linux). Includes what was resident when it started."""
    if not reset_peak_rss():
        return call(), None
    result = call()
    return result, peak_rss_bytes()


#: the /proc smaps fields `memory_breakdown` adds up (kB there, bytes here)
SMAPS_FIELDS = ("Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty", "Anonymous")


def memory_breakdown(pid: int | str = "self", mapped_file: str | None = None) -> dict[str, int] | None:
    """Where a process's resident memory lives (Linux /proc smaps), in bytes: all of it, or
    only the mappings of `mapped_file`; None where unavailable.

    RSS alone cannot tell a memory-mapped file shared by several processes (the kernel's page
    cache, held once) from a private copy in each: `Shared_*` pages are mapped by more than one
    process, `Pss` splits them between their mappers, `Private_*` + `Anonymous` are this
    process's own (USS = Private_Clean + Private_Dirty). A file mapped by one process alone
    shows as Private_Clean: clean file pages, reclaimable, not anonymous memory.
    """
    name = "smaps" if mapped_file is not None else "smaps_rollup"
    try:
        with open(f"/proc/{pid}/{name}") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    totals = dict.fromkeys(SMAPS_FIELDS, 0)
    counting = False
    for line in lines:
        key, _, rest = line.partition(":")
        if " " in key:  # a mapping's first line: address perms offset dev inode [path]
            parts = line.split(None, 5)
            counting = mapped_file is None or (len(parts) == 6 and parts[5] == mapped_file)
        elif counting and key in totals:
            totals[key] += int(rest.split()[0]) * 1024
    return totals
