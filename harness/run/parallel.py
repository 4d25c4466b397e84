"""`--parallel N`: N build configurations at once on this machine, each in its own child process.

Why: a sweep on a dataset of sift-128's size is hours of builds and queries, mostly on one
core each (`--threads 1`, the default, for clean timings). With N children the sweep uses N
cores. The cost is in the timings: the children share the memory bandwidth and the last-level
cache, so a memory-bound search (brute force, IVF lists, the potentials' passes over the data)
measures slower than it would alone. Every record's provenance says `parallel`.

How: one relay thread per running child passes its events, stamped with the time they
arrived, into one queue; this (main) thread plans each configuration as a slot frees up,
writes every record through the one `Recorder` of its configuration and keeps the progress, so
records are written by one process and one thread, as in a serial run. Ctrl-C (or SIGTERM)
here sets a flag every relay looks at within `isolation.STOP_POLL_S`: each stops its child,
records written so far are kept, and a rerun resumes.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Iterator, Sequence

from harness.data.loader import DatasetLike
from harness.measure.measure import Event
from harness.measure.job import BuildJob
from harness.run.runner import Recorder, RunContext, RunSummary, plan_build_config, start_progress
from harness.plan.sweeps import BuildConfig

#: a job's events with a stop flag: `isolation.child_events` bound to the run's time limits
StoppableEvents = Callable[[BuildJob, DatasetLike, threading.Event], Iterator[Event]]
POLL_S = 0.5
_END = object()


def run_parallel(context: RunContext, configs: Sequence[BuildConfig], events: StoppableEvents, parallel: int) -> RunSummary:
    """Run the build configurations, `parallel` at a time, in sweep order as slots free up."""
    progress = start_progress(context, configs)
    arrivals: queue.Queue[tuple[int, Any, float]] = queue.Queue()
    stop = threading.Event()
    pending = list(configs)
    free = list(range(parallel))
    active: dict[int, Recorder] = {}
    threads: list[threading.Thread] = []
    try:
        while pending or active:
            while pending and free:
                planned = plan_build_config(context, pending.pop(0))
                if planned is None:
                    continue
                slot = free.pop(0)
                active[slot] = Recorder(planned, context.summary, context.report, progress, slot)
                thread = threading.Thread(
                    target=_relay, args=(events, planned.job(context.options), planned.dataset, slot, arrivals, stop),
                    name=f"gpnn-relay-{planned.config.entry}", daemon=True,
                )
                threads.append(thread)
                thread.start()
            if not active:
                continue
            try:
                slot, item, at = arrivals.get(timeout=POLL_S)
            except queue.Empty:
                progress.tick()
                continue
            if item is _END:
                active.pop(slot).close()
                free = sorted([*free, slot])
            elif isinstance(item, BaseException):
                raise item
            else:
                active[slot].handle(item, at)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        progress.close()
    return context.summary


def _relay(events: StoppableEvents, job: BuildJob, dataset: DatasetLike, slot: int, arrivals: queue.Queue,
           stop: threading.Event) -> None:
    """One child's events into the queue, stamped on arrival; then the end (or what broke)."""
    try:
        stream = events(job, dataset, stop)
        try:
            for event in stream:
                arrivals.put((slot, event, time.monotonic()))
                if stop.is_set():
                    break
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # a generator's `finally` stops its child
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
        arrivals.put((slot, exc, time.monotonic()))
    finally:
        arrivals.put((slot, _END, time.monotonic()))
