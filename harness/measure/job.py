"""One build job as plain data: what measuring needs of the user's options (`MeasureOptions`),
when the job must be over (`Deadline`) and the job itself (`BuildJob`). What crosses a process
boundary: a child process or a Ray worker unpickles these without importing the planner or the
runner (`harness.plan.options` holds what the user chose).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MeasureOptions:
    """What measuring one build configuration needs of the user's options."""

    k: int = 10
    runs: int = 3
    threads: int = 1
    mode: str = "batch"
    seed: int = 0


@dataclass(frozen=True)
class Deadline:
    """When a build job must be over, in seconds from its start: its budget with some slack
    (`harness.plan.budget.DEADLINE_FACTOR`). The budget sized the job from estimates; the
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
    #: each query configuration's batch size, parallel to `query_params` (None: the whole test
    #: set in one call; 1: one query per call, single mode); empty: every one `options.mode`'s
    batch_sizes: list[int | None] = field(default_factory=list)
    #: when the job must be over (None: no budget bounds it)
    deadline: Deadline | None = None
    #: the folder of the dataset's cache files (the shared training copy) when it is not beside
    #: the file (a read-only folder: under --data-dir); None: the loader's own choice
    side_dir: str | None = None
