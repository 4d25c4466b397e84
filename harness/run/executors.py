"""How a build job is run: the one seam between the runner and isolation.

An executor turns a `BuildJob` into the stream of events of `harness.run.measure`. The
runner asks `executor_for(options)` once per build and never looks at how the work is done:

- `InProcess` (`--isolation none`): the worker's code in this process, on the dataset in memory;
- `ChildProcess` (`--isolation process`, the command line's default): one spawned child per
  build job with time limits (`harness.run.isolation`), so a crash or hang of an adapter
  ends that configuration only;
- Ray (`--executor ray`): tasks on a cluster (`harness.run.ray_executor`), which runs many
  jobs at once and so drives the sweep itself, with the same jobs, worker and events.

Changing how a run is isolated means changing this module (and the one it names).
"""
from __future__ import annotations

import abc
from typing import Iterator

from harness.data.loader import Dataset, DatasetLike
from harness.run import isolation
from harness.run.measure import Event
from harness.run.options import BuildJob, RunOptions
from harness.run.worker import job_events


class Executor(abc.ABC):
    """Runs build jobs; yields each job's events as they happen."""

    name = ""

    @abc.abstractmethod
    def events(self, job: BuildJob, dataset: DatasetLike) -> Iterator[Event]:
        """The events of `job` (Built or BuildFailed, then one per query configuration)."""


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

    def events(self, job: BuildJob, dataset: DatasetLike) -> Iterator[Event]:
        return isolation.child_events(job, self.timeout, self.query_timeout)


def executor_for(options: RunOptions) -> Executor:
    """The local executor the options ask for (Ray's driver is `harness.run.ray_executor`)."""
    if options.isolation == "process":
        return ChildProcess(options.timeout, options.query_timeout)
    if options.isolation == "none":
        return InProcess()
    raise ValueError(f"unknown isolation {options.isolation!r}; known: process, none")
