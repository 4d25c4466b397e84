"""How a run is executed: the one seam between the harness and isolation, chosen once.

`executor_for(options)` picks one executor per run; `run_sweep` is the entry point that hands
it the sweep. Every executor runs the same `BuildJob`s with the same worker code
(`harness.measure.worker`) and yields the same events, which the runner turns into records in this
process:

- `InProcess` (`--isolation none`): the worker's code in this process, on the dataset in memory;
- `ChildProcess` (`--isolation process`, the command line's default): one spawned child per
  build job with time limits (`harness.run.isolation`), so a crash or hang of an adapter ends
  that configuration only; with `--parallel N`, N children at once (`harness.run.parallel`);
- `OnRay` (`--executor ray`): every build job as a Ray task, many at once, on this machine or a
  cluster (`harness.run.ray_executor`); it drives the sweep itself.

Changing how a run is isolated means changing this module (and the one it names).
"""
from __future__ import annotations

import abc
from typing import Any, Callable, Iterator, Sequence

from tqdm import tqdm

from harness.data.loader import Dataset, DatasetLike
from harness.run import isolation
from harness.measure.measure import Event
from harness.plan.cost import Rates
from harness.measure.job import BuildJob
from harness.plan.options import RunOptions
from harness.run.parallel import run_parallel
from harness.run.runner import RunContext, RunSummary, run_builds
from harness.plan.sweeps import BuildConfig
from harness.measure.worker import job_events


class Executor(abc.ABC):
    """Runs a sweep's build jobs; by default one after another, each through `events`."""

    name = ""

    @abc.abstractmethod
    def events(self, job: BuildJob, dataset: DatasetLike) -> Iterator[Event]:
        """The events of `job` (Built or BuildFailed, then one per query configuration)."""

    def run_sweep(self, context: RunContext, configs: Sequence[BuildConfig]) -> RunSummary:
        return run_builds(context, configs, self.events)


class InProcess(Executor):
    """In this process: fastest start, no protection from a crashing adapter."""

    name = "none"

    def events(self, job: BuildJob, dataset: DatasetLike) -> Iterator[Event]:
        if not isinstance(dataset, Dataset):
            raise TypeError("isolation 'none' needs the dataset in memory (a harness.data.loader.Dataset)")
        return job_events(job, dataset)


class ChildProcess(Executor):
    """In a spawned child process per job, within the build and query time limits."""

    name = "process"

    def __init__(self, timeout: float, query_timeout: float) -> None:
        self.timeout = timeout
        self.query_timeout = query_timeout

    def events(self, job: BuildJob, dataset: DatasetLike, stop: Any = None) -> Iterator[Event]:
        return isolation.child_events(job, self.timeout, self.query_timeout, stop)

    def run_sweep(self, context: RunContext, configs: Sequence[BuildConfig]) -> RunSummary:
        if context.options.parallel > 1:
            return run_parallel(context, configs, self.events, context.options.parallel)
        return run_builds(context, configs, self.events)


class OnRay(Executor):
    """As Ray tasks on the Ray instance this process is connected to (`ray_executor.ray_session`)."""

    name = "ray"

    def events(self, job: BuildJob, dataset: DatasetLike) -> Iterator[Event]:
        raise NotImplementedError("Ray runs a whole sweep at once: use run_sweep")

    def run_sweep(self, context: RunContext, configs: Sequence[BuildConfig]) -> RunSummary:
        import ray

        from harness.run.ray_executor import run_sweep_on_ray

        return run_sweep_on_ray(ray, context, configs)


def executor_for(options: RunOptions) -> Executor:
    """The executor the options ask for: `executor` (local or ray), then `isolation`."""
    if options.executor == "ray":
        return OnRay()
    if options.parallel > 1 and options.isolation != "process":
        raise ValueError("parallel configurations need process isolation (each its own child process)")
    if options.isolation == "process":
        return ChildProcess(options.timeout, options.query_timeout)
    if options.isolation == "none":
        return InProcess()
    raise ValueError(f"unknown isolation {options.isolation!r}; known: process, none")


def run_sweep(
    dataset: DatasetLike,
    configs: Sequence[BuildConfig],
    options: RunOptions,
    provenance: dict[str, Any],
    report: Callable[[str], None] = tqdm.write,
    summary: RunSummary | None = None,
    rates: Rates | None = None,
) -> RunSummary:
    """Run every build configuration with the executor the options choose; returns what was
    written, reused, failed, skipped. Pass `summary` to see what was done when interrupted,
    `rates` from `cost.probe` for estimates of this machine (default: the reference machine's)."""
    context = RunContext(dataset, options, provenance, summary if summary is not None else RunSummary(), report, rates)
    return executor_for(options).run_sweep(context, configs)
