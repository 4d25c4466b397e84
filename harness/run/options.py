"""What a run was asked to do, as plain data: the user's options, the part measuring needs,
and one build job. A leaf of harness.run: a child process or a Ray worker unpickles these
without importing the runner.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.data.loader import DatasetLike
    from harness.run.sweeps import BuildConfig


@dataclass(frozen=True)
class MeasureOptions:
    """What measuring one build configuration needs of the user's options."""

    k: int = 10
    runs: int = 3
    threads: int = 1
    mode: str = "batch"
    seed: int = 0


@dataclass
class RunOptions:
    """What the user chose on the command line, shared by every configuration of a run.

    `isolation` defaults to "none" here because a caller from Python hands over a dataset
    already in memory; the command line defaults to "process". `timeout` bounds the build
    phase of a build configuration (child start, dataset load, fit), `query_timeout` each
    query configuration, both in seconds, under process isolation and on Ray. `executor` is
    "local" (this machine, per `isolation`) or "ray" (`harness.run.ray_executor`), where a build
    configuration whose worker or node died is resubmitted up to `retries` times.

    Budgets (`harness.run.budget`, seconds, None: unbounded): `config_budget` bounds one build
    configuration's estimated time, `budget` the whole run's; a configuration over its budget
    runs on fewer queries or is skipped with a note. `parallel` build configurations run at
    once on the local executor (each in its own child process, with `threads` each).
    """

    k: int = 10
    runs: int = 3
    queries: int | None = None
    threads: int = 1
    device: str = "cpu"
    mode: str = "batch"
    seed: int = 0
    force: bool = False
    results_dir: Path = Path("results")
    progress: bool = True
    isolation: str = "none"
    timeout: float = 3600.0
    query_timeout: float = 900.0
    retry_failed: bool = False
    plugins: tuple[str, ...] = ()
    executor: str = "local"
    retries: int = 0
    config_budget: float | None = None
    budget: float | None = None
    parallel: int = 1
    #: reuse records made by code that changed since (stale, `algorithms.fingerprint`) as if
    #: current, instead of recomputing them; the report marks them
    reuse_stale: bool = False

    def measuring(self) -> MeasureOptions:
        """The part of these options that measuring a build configuration reads."""
        return MeasureOptions(k=self.k, runs=self.runs, threads=self.threads, mode=self.mode, seed=self.seed)


@dataclass(frozen=True)
class Deadline:
    """When a build job must be over, in seconds from its start: its budget with some slack
    (`harness.run.budget.DEADLINE_FACTOR`). The budget sized the job from estimates; the
    deadline holds when an estimate was wrong. The worker does not start a query configuration
    that it expects to end past it (the plan's estimate, `estimates_s`, corrected by how this
    job's earlier ones compared with theirs); the parent stops a child still running at it.
    What was not done is recorded as skipped, with `why` (which budget, how much slack)."""

    seconds: float
    why: str
    #: the plan's estimate of each of the job's query configurations, in the job's order
    estimates_s: tuple[float, ...] = ()

    def not_started(self, elapsed: float, expected: float) -> str:
        """Why the worker did not start a query configuration expected to end past it."""
        return self._skipped(f"{elapsed:.0f} s into its build configuration, expected to take {expected:.0f} s more, "
                             "past the configuration's")

    def stopped(self) -> str:
        """Why the work of a worker stopped at the deadline from outside was not done."""
        return self._skipped("stopped at its build configuration's")

    def _skipped(self, how: str) -> str:
        return (f"skipped at run time: {how} deadline of {self.seconds:.4g} s ({self.why}); "
                "a larger --config-budget or --budget runs it")


@dataclass
class BuildJob:
    """One build configuration to measure, as plain picklable data: what every executor runs
    (in this process, a child process or a Ray task) and what crosses a process boundary."""

    dataset_path: str
    dataset_name: str
    entry: str
    algorithm: str
    adapter_module: str
    adapter_qualname: str
    build_params: dict[str, Any]
    query_params: list[dict[str, Any]]
    options: MeasureOptions
    n_queries: int
    device: str
    plugins: tuple[str, ...] = ()
    parent_pid: int = field(default_factory=os.getpid)
    #: queries searched once before the timed runs (a few for a slow configuration)
    warmup_queries: int = 100
    #: when the job must be over (None: no budget bounds it)
    deadline: Deadline | None = None


def job_for(
    dataset: DatasetLike,
    config: BuildConfig,
    query_params: list[dict[str, Any]],
    options: RunOptions,
    n_queries: int,
    device: str,
    warmup_queries: int = 100,
    deadline: Deadline | None = None,
) -> BuildJob:
    """The job of `config`'s build and the given query configurations."""
    adapter = config.spec.adapter
    return BuildJob(
        dataset_path=str(Path(dataset.path).resolve()), dataset_name=dataset.name, entry=config.entry,
        algorithm=config.spec.name, adapter_module=adapter.__module__, adapter_qualname=adapter.__qualname__,
        build_params=dict(config.build_params), query_params=list(query_params), options=options.measuring(),
        n_queries=n_queries, device=device, plugins=tuple(options.plugins), warmup_queries=warmup_queries,
        deadline=deadline,
    )
