"""The Ray executor (`--ray [ADDRESS]`): each build configuration is one Ray task.

Why Ray: a sweep of many index builds spreads over every core of one machine, or over the
nodes of a cluster, while each timed run still gets the cores (and the GPU) it asked for.
Each task declares `num_cpus = --threads` and, for an adapter running on CUDA, `num_gpus = 1`,
so Ray never runs two tasks on the same logical core or GPU at once.

What stays as with the local executor:

- The plan decides what has work left (`harness.plan.plan.RunPlan.decide`: reuse, skip,
  recompute), and the runner acts on it (`harness.run.runner.plan_build_config`) before anything
  is submitted, so a rerun resumes the same way.
- The task runs the very worker code of the process-isolation child
  (`harness.measure.worker.job_events`: plugins, adapter lookup, seeding, `harness.measure.measure`).
- Records are written by this process (the driver) only, atomically, by the runner's own
  `Recorder`, into the driver's `--results-dir`; a record gains the node it was measured on
  (hostname, platform, CPU, GPU, Ray node id) in its provenance.

How data and events travel: the driver loads the dataset once and puts it into Ray's object
store once (`ray.put`); every task receives that reference, so a node fetches the arrays at
most once, and no worker downloads or reads a file. A task is a Ray generator: it yields
`WorkerStarted` (the node's facts), then the events of `harness.measure.measure` one by one, which
the driver writes as records as they arrive: a crash later keeps what came before.

Failures become records or retries, never a hung driver: the driver waits with `ray.wait`
and its own deadlines (`--timeout` for the build phase, counted from the task's start, not
its time in the queue; `--query-timeout` per query configuration) and ends an overrunning
task with `ray.cancel(force=True)`. A worker that dies (segfault, `os._exit`, out-of-memory
kill) or a node that is lost fails the configuration with the reason, or, with `--retries N`,
resubmits it up to N times for the query configurations that have no record yet. Ray's own
`max_retries` is set to 0 on purpose: Ray would re-run a generator task from its start
unseen by the driver, whose deadlines would then count the retry against one query.
A job under a budget has a deadline (`options.Deadline`): the worker keeps to it between query
configurations, and the driver cancels a task still running `isolation.DEADLINE_GRACE_S` past
it, recording what it did not do as skipped. The progress (bar, ETA, `progress.jsonl`) is the
local executor's (`harness.plan.progress`), with a task counted from its start, not its time
in Ray's queue, and the cluster's task slots as the parallelism.
Ctrl-C cancels every outstanding task and keeps the records written.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from harness.data.loader import Dataset, DatasetRef
from harness.errors import HarnessError
from harness.run import isolation, provenance
from harness.measure.measure import BuildFailed, Built, Event, QueryDone, QueryFailed, reason_of
from harness.measure.job import BuildJob, Deadline
from harness.plan.options import RunOptions
from harness.run.runner import PlannedBuild, Recorder, RunContext, RunSummary, plan_build_config, start_progress
from harness.plan.sweeps import BuildConfig
from harness.measure.worker import job_events

log = logging.getLogger("harness")

INSTALL_HINT = "install it with `pip install 'gpnn-harness[ray]'` (or `pip install 'ray>=2.9'`)"
POLL_S = 1.0  # longest blocking wait: Ctrl-C and SIGTERM are handled within this time


def require_ray() -> Any:
    """The `ray` module, or a HarnessError (exit code 2) saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise HarnessError(f"--ray needs Ray, which is not installed here ({exc})", INSTALL_HINT) from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """Connect to the Ray cluster at `address`, or start a local instance on every core of
    this machine; always disconnected (a local instance stopped) at the end, on errors and
    interrupts too. An instance the caller already started is used and left running."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline-friendly; the user may override
    on_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            ray.shutdown()  # a start cut short (Ctrl-C) must not leave Ray's processes behind
        if not isinstance(exc, Exception):
            raise  # noqa: BLE001 - Ray raises many kinds (ConnectionError, RuntimeError, ValueError)
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise HarnessError(
            f"cannot connect to {where}: {reason_of(exc)}",
            "start the head with `ray start --head --port=6379` and pass --ray HEAD:6379 (or --ray auto)"
            if address else "check `ray start` works here, or pass --ray ADDRESS of a running cluster",
        ) from None
    _restore_sigterm(on_sigterm)
    try:
        yield ray
    finally:
        ray.shutdown()


def _restore_sigterm(handler: Any) -> None:
    """`ray.init` installs its own SIGTERM handler (exit at once); the harness's own one stops
    the tasks, says what was kept and exits with 143, as without Ray (`ray_session` still
    shuts Ray down on the way out)."""
    if handler is None:
        return
    with contextlib.suppress(ValueError):  # not the main thread: signals are not ours to set
        signal.signal(signal.SIGTERM, handler)


def resolve_device(ray: Any, requested: str) -> str:
    """The device of the run, from the cluster's GPUs (not the driver's: it may have none)."""
    gpus = max((node["Resources"].get("GPU", 0) for node in _alive_nodes(ray)), default=0)
    if requested == "auto":
        return "cuda" if gpus >= 1 else "cpu"
    if requested == "cuda" and gpus < 1:
        raise HarnessError(
            "--device cuda was asked for, but no node of the Ray cluster has a GPU",
            "use --device cpu or auto, or start nodes with GPUs (`ray start ... --num-gpus N`)",
        )
    return requested


def _alive_nodes(ray: Any) -> list[dict[str, Any]]:
    return [node for node in ray.nodes() if node.get("Alive")]


# --- worker side ---------------------------------------------------------------------------------


@dataclass
class WorkerStarted:
    """First item of every task: where it runs; starts the driver's build-phase clock."""

    node: dict[str, Any]


def worker_task(job: BuildJob, dataset: Dataset) -> Iterator[WorkerStarted | Event]:
    """The body of a Ray task: the process-isolation child's work, on a dataset handed over
    through the object store instead of a file path."""
    yield WorkerStarted(_node_facts())
    try:
        from harness.measure.threads import set_threads

        set_threads(job.options.threads)  # a reused worker may have run a task with other threads
        dataset = _writable(dataset)
    except Exception as exc:  # noqa: BLE001 - reported as the build's failure
        yield BuildFailed(f"Ray worker could not start the build: {reason_of(exc)}")
        return
    yield from job_events(job, dataset)


def _node_facts() -> dict[str, Any]:
    facts = provenance.node_facts()
    try:
        import ray

        facts["ray_node_id"] = ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - an id is nice to have, never worth a failure
        pass
    return facts


def _writable(dataset: Dataset) -> Dataset:
    """Arrays from the object store are read-only views of shared memory; adapters get what a
    file load gives them, so results cannot depend on the executor: the training vectors
    read-only and shared (a file load maps them, `harness.data.train_copy`), the rest writable."""
    copies = {
        name: np.array(value)
        for name in ("test", "neighbors", "distances")
        if not (value := getattr(dataset, name)).flags.writeable
    }
    return dataclasses.replace(dataset, **copies) if copies else dataset


# --- driver side ---------------------------------------------------------------------------------


@dataclass
class _Task:
    """One submitted build configuration and what the driver knows of its progress."""

    planned: PlannedBuild
    recorder: Recorder
    generator: Any
    indexes: list[int]  # the task's query index i is the planned query indexes[i]
    attempt: int = 0
    built: bool = False
    deadline: float = math.inf  # none while the task waits in Ray's queue
    limit: float = 0.0
    #: the budget's deadline of the whole job (`options.Deadline`), counted from the task's start
    budget: Deadline | None = None
    last: float = math.inf
    left: set[int] = field(default_factory=set)


def run_sweep_on_ray(ray: Any, context: RunContext, configs: Sequence[BuildConfig]) -> RunSummary:
    """Run every build configuration with work left as a Ray task; records as with `run_sweep`.

    `context.dataset` is the dataset in memory: it goes into Ray's object store once.
    """
    dataset, options, summary, report = context.dataset, context.options, context.summary, context.report
    planning = replace(context, dataset=DatasetRef.of(dataset))  # the driver plans from metadata only
    # budgets size the query counts as on the local executor; the ETA schedules onto the cluster's slots
    progress = start_progress(planning, configs, parallel=task_slots(ray, options))
    try:
        planned = [p for c in configs if (p := plan_build_config(planning, c))]
        if not planned:
            return summary
        _check_resources(ray, planned, options)
        driver = _Driver(ray, ray.put(dataset), options, report)
        try:
            driver.run([Recorder(p, summary, report, progress, started=False) for p in planned])
        finally:
            driver.cancel_all()
    finally:
        progress.close()
    return summary


def task_slots(ray: Any, options: RunOptions) -> int:
    """How many tasks of `--threads` CPUs the cluster runs at once (at least one)."""
    cpus = sum(node["Resources"].get("CPU", 0) for node in _alive_nodes(ray))
    return max(1, int(cpus // max(1, max(options.thread_axis()))))


def _check_resources(ray: Any, planned: list[PlannedBuild], options: RunOptions) -> None:
    """Refuse up front a task no node can ever run: Ray would queue it forever."""
    nodes = _alive_nodes(ray)
    cpus = max((node["Resources"].get("CPU", 0) for node in nodes), default=0)
    most = max(options.thread_axis())
    if most > cpus:
        raise HarnessError(
            f"--threads {most} asks each Ray task for {most} CPUs, "
            f"but the largest node of the Ray cluster has {cpus:g}",
            f"use --threads {int(cpus)} or less, or add a node with more cores",
        )
    if any(p.device == "cuda" for p in planned):
        resolve_device(ray, "cuda")


class _Driver:
    """Submits tasks, relays their events to the recorders, enforces deadlines and retries."""

    def __init__(self, ray: Any, data_ref: Any, options: RunOptions, report: Callable[[str], None]) -> None:
        self.ray, self.data_ref, self.options, self.report = ray, data_ref, options, report
        self.live: list[_Task] = []
        self.plugins = tuple(_absolute_plugin(p) for p in options.plugins)
        self.remote = ray.remote(worker_task)  # exported to the cluster once, options set per task
        self.delivery = _delivery_options(self.remote)

    def run(self, recorders: list[Recorder]) -> None:
        for recorder in recorders:
            indexes = list(range(len(recorder.planned.todo)))
            self.live.append(self._submit(recorder, indexes, attempt=0))
        while self.live:
            wait_s = min([POLL_S, *(min(task.deadline, task.last) - time.monotonic() for task in self.live)])
            generators = [task.generator for task in self.live]
            ready, _ = self.ray.wait(generators, num_returns=1, timeout=max(wait_s, 0.0))
            for generator in ready:
                task = next(t for t in self.live if t.generator is generator)
                self._step(task)
            now = time.monotonic()
            for task in [t for t in self.live if min(t.deadline, t.last) <= now]:
                self.ray.cancel(task.generator, force=True)
                if task.last <= now and task.budget is not None:
                    self._fail(task, "skipped", task.budget.stopped())
                else:
                    self._fail(task, "timeout", f"timed out after {task.limit:g} s")

    def cancel_all(self) -> None:
        """Stop every task still running or queued (Ctrl-C, SIGTERM, an error of the driver)."""
        for task in self.live:
            with contextlib.suppress(Exception):
                self.ray.cancel(task.generator, force=True)
        self.live.clear()

    def _submit(self, recorder: Recorder, indexes: list[int], attempt: int) -> _Task:
        planned = recorder.planned
        job = dataclasses.replace(planned.job(self.options, indexes), plugins=self.plugins)
        remote = self.remote.options(
            num_cpus=job.options.threads,  # the configuration's own count (`--threads 1,2`)
            num_gpus=1 if planned.device == "cuda" else 0,
            max_retries=0,  # retried here instead, see the module docstring
            retry_exceptions=False,
            name=f"gpnn {planned.config.entry}",
            **self.delivery,
        )
        generator = remote.remote(job, self.data_ref)
        return _Task(planned, recorder, generator, indexes, attempt, left=set(range(len(indexes))), budget=job.deadline)

    def _step(self, task: _Task) -> None:
        """Take the task's next item: an event to record, its end, or its failure."""
        try:
            item = self.ray.get(next(task.generator))
        except StopIteration:
            if task.left:
                self._fail(task, "failed", "the Ray task ended before it had reported every result")
            else:
                self.live.remove(task)
            return
        except self.ray.exceptions.RayError as exc:
            self._crashed(task, exc)
            return
        now = time.monotonic()
        if isinstance(item, WorkerStarted):
            task.recorder.set_node(item.node)
            task.recorder.begin(task.indexes)
            if task.budget is not None:
                task.last = now + task.budget.seconds + isolation.DEADLINE_GRACE_S
            task.deadline, task.limit = now + self.options.timeout, self.options.timeout
            return
        if isinstance(item, Built):
            task.built = True
        elif isinstance(item, (QueryDone, QueryFailed)):
            task.left.discard(item.index)
            item = dataclasses.replace(item, index=task.indexes[item.index])
        elif isinstance(item, BuildFailed):
            task.left.clear()
        task.recorder.handle(item)
        task.deadline, task.limit = now + self.options.query_timeout, self.options.query_timeout
        if not task.left:
            self.live.remove(task)  # all said; the worker's clean-up needs no waiting for
            task.recorder.close()

    def _crashed(self, task: _Task, exc: Exception) -> None:
        reason, retryable = describe_failure(self.ray, exc)
        if retryable and task.attempt < self.options.retries:
            left = sorted(task.left)
            self.report(f"  RETRY {task.planned.config.entry} {task.planned.config.build_params}: {reason} "
                        f"(attempt {task.attempt + 2} of {self.options.retries + 1}, {len(left)} query configuration(s) left)")
            self.live[self.live.index(task)] = self._submit(task.recorder, [task.indexes[i] for i in left], task.attempt + 1)
            return
        self._fail(task, "failed", reason)

    def _fail(self, task: _Task, status: str, reason: str) -> None:
        """Failure records for what the task did not report, as process isolation writes them."""
        self.live.remove(task)
        pending = sorted(task.left)
        params = [task.planned.todo[task.indexes[i]].params for i in range(len(task.indexes))]
        for event in isolation.failure_events(status, reason, task.built, pending, params, who="the Ray task"):
            if isinstance(event, QueryFailed):
                event = dataclasses.replace(event, index=task.indexes[event.index])
            task.recorder.handle(event)
        task.recorder.close()


def _delivery_options(remote: Any) -> dict[str, Any]:
    """Make a worker wait at each `yield` until the driver has taken the previous event.

    Without it, Ray reports yielded items asynchronously, and a worker that dies right after
    a yield (a segfault in the next query configuration's warm-up) takes the results it had
    yielded with it: the records process isolation keeps would be lost. The wait is outside
    every timed section. The option is Ray's (underscored) backpressure setting, present
    since Ray 2.8; if a Ray version refuses it, events are delivered without that guarantee.
    """
    option = {"_generator_backpressure_num_objects": 1}
    try:
        remote.options(**option)
    except (TypeError, ValueError) as exc:
        log.warning("this Ray version has no generator backpressure (%s): a worker crash may lose the "
                    "result reported just before it", exc)
        return {}
    return option


def describe_failure(ray: Any, exc: Exception) -> tuple[str, bool]:
    """A reason a person understands, and whether a retry could help (a lost process or node
    can; an error raised by the task's own code would only happen again)."""
    errors = ray.exceptions
    text = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else ""
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if isinstance(exc, errors.WorkerCrashedError):
        return f"Ray worker process died ({detail}; a segfault, os._exit or the out-of-memory killer)", True
    node_died = getattr(errors, "NodeDiedError", ())
    if node_died and isinstance(exc, node_died):
        return f"the Ray node running it was lost ({detail})", True
    if isinstance(exc, errors.RayTaskError):
        return f"the Ray task raised {detail}", False
    return f"Ray system failure ({detail})", True


def _absolute_plugin(plugin: str) -> str:
    """A plugin file path as workers must see it: absolute (their working directory differs)."""
    if plugin.endswith(".py") or os.sep in plugin or "/" in plugin:
        return str(Path(plugin).expanduser().resolve())
    return plugin
