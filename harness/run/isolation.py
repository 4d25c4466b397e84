"""Process isolation: each build configuration runs in a child process with a time limit.

Why: an adapter can take the whole harness down with it: a segmentation fault in a C++
library, the kernel's out-of-memory killer, a search that never returns, a CUDA context in a
bad state. In a child process each of those ends one build configuration, not the sweep, and
the parent's memory and CUDA state stay as they were (the parent never initialises CUDA).

The protocol (multiprocessing "spawn" context, one child per build configuration):

1. The parent starts the child with a `BuildJob`: plain data only, no arrays. The child
   loads the dataset itself from `dataset_path` (the file the parent validated), imports
   the plugin modules and the adapter's module, and seeds the random generators.
2. The child builds the index and runs the query configurations (`harness.measure.measure`),
   sending each event down a one-way pipe as soon as it exists: `Built`, then one
   `QueryDone` (record content: metrics document + per-query numpy arrays) or `QueryFailed`
   per query configuration; or `BuildFailed`. It never writes a file.
3. The parent writes each record when its event arrives, so a child that dies later keeps
   every query configuration finished before. A child that dies, exits early or overruns
   its limit (`timeout` for the build phase, counted from the child's start, then
   `query_timeout` for each query configuration) becomes a `BuildFailed`/`QueryFailed`
   with status `failed` or `timeout` and the reason; the query configurations it did not
   reach fail with "not run: ...", and are retried by `--retry-failed`. A job under a budget
   has a deadline (`options.Deadline`): the child does not start what would end past it, and
   one still running `DEADLINE_GRACE_S` after it is stopped; what it did not do is recorded
   as `skipped` (computed by a later run with more time), not failed.
4. The child ignores SIGINT (the parent decides what happens on Ctrl-C and terminates it)
   and, on Linux, dies with its parent (PR_SET_PDEATHSIG), so `kill -9` of the harness
   leaves no orphan running on.

The child's work (`harness.measure.worker.job_events`) and the failure events made up for a dead
worker (`failure_events`) are shared with the Ray executor (`harness.run.ray_executor`), whose tasks
do the same work on a dataset handed over through Ray's object store.

Messages cross the pipe pickled by multiprocessing: that is our own process boundary between
two processes of this program, never data read from disk.

Plugins: adapters defined outside `algorithms/` (a user's module, the crash adapters of the
tests) are registered by importing a module named with `--plugins` or `$GPNN_PLUGINS`
(comma-separated module names or .py file paths); the child imports the same list first.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import signal
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Generator, Iterator

from harness.measure.measure import BuildFailed, Built, Event, QueryDone, QueryFailed, reason_of
from harness.measure.job import BuildJob
from harness.measure.worker import job_events

STOP_GRACE_S = 5.0
#: how long past its deadline a child is left to finish by itself (the worker keeps to it)
DEADLINE_GRACE_S = 10.0
#: how often a child's relay looks at its `stop` flag (`harness.run.local`: Ctrl-C in the main thread)
STOP_POLL_S = 0.5
_CONTEXT = multiprocessing.get_context("spawn")


# --- parent side ---------------------------------------------------------------------------------


@dataclass
class _Ended:
    """The child stopped talking: it died, exited, or ran out of time."""

    status: str
    reason: str


def child_events(job: BuildJob, timeout: float, query_timeout: float, stop: Any = None) -> Iterator[Event]:
    """Run `job` in a fresh child process and yield its events; crashes and hangs become failures.

    `stop` (a threading.Event, for a relay thread of `harness.run.local`): when set, the child
    is stopped within STOP_POLL_S and its work reads as interrupted."""
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    # Not a daemon, so that an adapter may start processes of its own; `_stop` always reaps it.
    process = _CONTEXT.Process(target=_child_main, args=(sender, job), name=f"gpnn-{job.entry}")
    _start(process)
    sender.close()  # the child holds the only sending end: its death reads as end-of-file here
    answered = False  # the child said all it had to say: give it time to exit by itself
    try:
        answered = yield from _relay(process, receiver, job, timeout, query_timeout, stop)
    finally:
        receiver.close()
        _stop(process, grace=STOP_GRACE_S if answered else 0.0)


def _start(process: Any) -> None:
    """Start the child with SIGINT ignored from its first instruction (an ignored signal stays
    ignored across exec): Ctrl-C reaches the whole process group, and only the parent decides."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: no signal handling to adjust
        process.start()
        return
    try:
        process.start()
    finally:
        signal.signal(signal.SIGINT, previous)


def _relay(
    process: Any, receiver: Connection, job: BuildJob, timeout: float, query_timeout: float, stop: Any = None
) -> Generator[Event, None, bool]:
    """Pass the child's events on; returns False if it died or overran (events made up for it)."""
    pending = list(range(len(job.query_params)))
    built = False
    started = time.monotonic()
    # the budget's deadline of the whole job (measure.build_events keeps to it; this stops a child that does not)
    last = started + job.deadline.seconds + DEADLINE_GRACE_S if job.deadline is not None else math.inf
    deadline, limit = started + timeout, timeout
    while pending:
        if deadline < last:
            expired = _Ended("timeout", f"timed out after {limit:g} s")
        else:
            expired = _Ended("skipped", job.deadline.stopped())
        message = _receive(process, receiver, min(deadline, last), expired, stop)
        if isinstance(message, _Ended):
            yield from _ended(message, built, pending, job)
            return False
        yield message
        if isinstance(message, BuildFailed):
            return True
        if isinstance(message, Built):
            built = True
        elif isinstance(message, (QueryDone, QueryFailed)):
            pending.remove(message.index)
        deadline, limit = time.monotonic() + query_timeout, query_timeout
    return True


def _receive(process: Any, receiver: Connection, deadline: float, expired: _Ended, stop: Any = None) -> Event | _Ended:
    """The next event, or why there is none (`expired` at the deadline): data already sent is
    read before a death is seen."""
    while True:
        if stop is not None and stop.is_set():
            return _Ended("interrupted", "stopped by the harness")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return expired
        ready = wait([receiver, process.sentinel], timeout=remaining if stop is None else min(remaining, STOP_POLL_S))
        if receiver in ready or (ready and receiver.poll()):
            try:
                return receiver.recv()
            except Exception:  # noqa: BLE001 - end of file, or a message cut short by the child's death
                return _death(process)
        if ready:
            return _death(process)


def _death(process: Any) -> _Ended:
    process.join(STOP_GRACE_S)
    code = process.exitcode
    stopped = code is not None and -code in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    return _Ended("interrupted" if stopped else "failed", describe_exit(code))


def _ended(ended: _Ended, built: bool, pending: list[int], job: BuildJob) -> Iterator[Event]:
    yield from failure_events(ended.status, ended.reason, built, pending, job.query_params)


def failure_events(
    status: str, reason: str, built: bool, pending: list[int], query_params: list[dict[str, Any]],
    who: str = "the child process",
) -> Iterator[Event]:
    """Failure events for what a worker (`who`) did not finish: the build, else the first
    pending query configuration with `reason` and the rest as "not run". A worker stopped
    from outside (status interrupted: SIGTERM, SIGINT, SIGHUP) did not fail: its configuration
    is left without a record and computed by the next run. Shared with the Ray executor."""
    if not built:
        yield BuildFailed(f"{reason} in the build", status)
        return
    first, *rest = pending
    where = f"in query configuration {format_params(query_params[first])}"
    yield QueryFailed(first, f"{reason} {where}", status)
    for index in rest:
        rest_status = status if status in ("interrupted", "skipped") else "failed"
        yield QueryFailed(index, f"not run: {who} {_short(status)} {where}", rest_status)


def _short(status: str) -> str:
    return {"timeout": "timed out", "interrupted": "was stopped",
            "skipped": "was stopped at the configuration's deadline"}.get(status, "died")


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items()) or "(defaults)"


def describe_exit(exitcode: int | None) -> str:
    """A reason a person understands: the signal by name, with the usual cause of SIGKILL."""
    if exitcode is None:
        return "child process stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (the kernel's out-of-memory killer sends SIGKILL)" if -exitcode == signal.SIGKILL else ""
        return f"child process died with signal {name}{hint}"
    if exitcode == 0:
        return "child process exited before it had finished"
    return f"child process exited with code {exitcode}"


def _stop(process: Any, grace: float) -> None:
    """End the child: wait `grace` seconds for a clean exit, then SIGTERM, then SIGKILL."""
    process.join(grace)
    if process.is_alive():
        process.terminate()
        process.join(STOP_GRACE_S)
    if process.is_alive():
        process.kill()
        process.join()
    process.close()


# --- child side ----------------------------------------------------------------------------------


def _child_main(conn: Connection, job: BuildJob) -> None:
    """Entry point of the child process: measure one build configuration, send each event."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(job.parent_pid)
    try:
        events = job_events(job)
        for event in events:
            conn.send(event)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent is gone or gave up on us: nothing left to tell
    finally:
        conn.close()


def _die_with_parent(parent_pid: int) -> None:
    """On Linux, ask the kernel to SIGKILL this process when the parent dies (even by kill -9)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


# --- a function evaluated in a child process -----------------------------------------------------


def call_in_child(function: Callable[..., Any], *args: Any, timeout: float = 300.0) -> Any:
    """`function(*args)` evaluated in a spawned child (e.g. reading the GPU's name, which
    initialises CUDA); raises RuntimeError if the child fails or overruns."""
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(target=_call_and_send, args=(sender, function, args), daemon=True)
    _start(process)
    sender.close()
    try:
        if not receiver.poll(timeout):
            raise RuntimeError(f"{function.__name__} did not answer within {timeout:g} s")
        ok, value = receiver.recv()
    except EOFError:
        process.join(STOP_GRACE_S)
        raise RuntimeError(f"{function.__name__}: {describe_exit(process.exitcode)}") from None
    finally:
        receiver.close()
        _stop(process, grace=STOP_GRACE_S)
    if not ok:
        raise RuntimeError(f"{function.__name__} failed in a child process: {value}")
    return value


def _call_and_send(conn: Connection, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        conn.send((True, function(*args)))
    except Exception as exc:  # noqa: BLE001
        conn.send((False, reason_of(exc)))
    finally:
        conn.close()
