"""What the user chose for a run (`RunOptions`), and the build job made of one build
configuration under those options (`job_for`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.measure.job import BuildJob, Deadline, MeasureOptions

if TYPE_CHECKING:
    from harness.data.loader import DatasetLike
    from harness.plan.sweeps import BuildConfig


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
