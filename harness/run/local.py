"""Build configurations on this machine: `--workers N` child processes at once, or `--workers 0`
in this process; one scheduling loop serves both.

Why child processes: an adapter can take the whole harness down with it (a segfault, the
out-of-memory killer, a search that never returns); in its own child (`harness.run.isolation`)
that ends one build configuration, not the sweep. Why several: a sweep on a dataset of sift-128's
size is hours of builds and queries, mostly on one core each (`--threads 1`, the default, for
clean timings); with N children it uses N cores. The cost is in the timings: the children share
the memory bandwidth and the last-level cache, so a memory-bound search (brute force, IVF lists,
the potentials' passes over the data) measures slower than it would alone. Every record's
provenance says `parallel`. `--workers 0` runs the worker's code in this process, on the dataset
in memory: no protection and no time limits, but a debugger and a traceback reach the adapter.

How: this (main) thread acts on the plan's decision for each build configuration as a slot frees
up (`runner.plan_build_config`), writes every record through the one `Recorder` of its
configuration and keeps the progress, so records are written by one process and one thread,
whatever the number of workers. With workers, one relay thread per running child passes its
events, stamped with the time they arrived, into one queue; in this process the events are
taken from the job as it makes them. Ctrl-C (or SIGTERM) here sets a flag every relay looks at
within `isolation.STOP_POLL_S`: each stops its child, records written so far are kept, and a
rerun resumes.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Any, Iterator, Sequence

from harness.data.loader import Dataset, DatasetLike
from harness.measure.job import BuildJob
from harness.measure.worker import job_events
from harness.plan.sweeps import BuildConfig
from harness.run import isolation
from harness.run.runner import Recorder, RunContext, RunSummary, plan_build_config, start_progress

POLL_S = 0.5
_END = object()
#: what a job source hands the loop: the slot, an event (or `_END`, or what broke), when it arrived
Arrival = tuple[int, Any, float]


def run_local(context: RunContext, configs: Sequence[BuildConfig]) -> RunSummary:
    """Run the build configurations, `options.workers` at a time (one in this process for 0),
    in sweep order as slots free up."""
    options = context.options
    jobs: _InThisProcess | _InChildren = (
        _InThisProcess() if options.workers == 0 else _InChildren(options.timeout, options.query_timeout)
    )
    progress = start_progress(context, configs)
    pending = deque(configs)
    free = list(range(max(1, options.workers)))
    active: dict[int, Recorder] = {}
    try:
        while pending or active:
            while pending and free:
                planned = plan_build_config(context, pending.popleft())
                if planned is None:
                    continue
                slot = free.pop(0)
                active[slot] = Recorder(planned, context.summary, context.report, progress, slot)
                jobs.start(slot, planned.job(options), planned.dataset)
            if not active:
                continue
            arrival = jobs.next()
            if arrival is None:
                progress.tick()
                continue
            slot, item, at = arrival
            if item is _END:
                active.pop(slot).close()
                free = sorted([*free, slot])
            elif isinstance(item, BaseException):
                raise item
            else:
                active[slot].handle(item, at)
    finally:
        jobs.stop()
        progress.close()
    return context.summary


class _InThisProcess:
    """`--workers 0`: the job's events as the worker's code makes them, in this thread."""

    def __init__(self) -> None:
        self.streams: dict[int, Iterator[Any]] = {}

    def start(self, slot: int, job: BuildJob, dataset: DatasetLike) -> None:
        if not isinstance(dataset, Dataset):
            raise TypeError("--workers 0 needs the dataset in memory (a harness.data.loader.Dataset)")
        self.streams[slot] = job_events(job, dataset)

    def next(self) -> Arrival:
        slot, stream = next(iter(self.streams.items()))
        try:
            event = next(stream)
        except StopIteration:
            del self.streams[slot]
            return slot, _END, time.monotonic()
        return slot, event, time.monotonic()

    def stop(self) -> None:
        for stream in self.streams.values():
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        self.streams.clear()


class _InChildren:
    """`--workers N`: each job in its own child process, its events relayed by a thread."""

    def __init__(self, timeout: float, query_timeout: float) -> None:
        self.timeout, self.query_timeout = timeout, query_timeout
        self.arrivals: queue.Queue[Arrival] = queue.Queue()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, slot: int, job: BuildJob, dataset: DatasetLike) -> None:
        thread = threading.Thread(target=self._relay, args=(job, slot), name=f"gpnn-relay-{job.entry}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def next(self) -> Arrival | None:
        try:
            return self.arrivals.get(timeout=POLL_S)
        except queue.Empty:
            return None

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def _relay(self, job: BuildJob, slot: int) -> None:
        """One child's events into the queue, stamped on arrival; then the end (or what broke)."""
        try:
            stream = isolation.child_events(job, self.timeout, self.query_timeout, self.stopping)
            try:
                for event in stream:
                    self.arrivals.put((slot, event, time.monotonic()))
                    if self.stopping.is_set():
                        break
            finally:
                stream.close()  # the generator's `finally` stops its child
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            self.arrivals.put((slot, exc, time.monotonic()))
        finally:
            self.arrivals.put((slot, _END, time.monotonic()))
