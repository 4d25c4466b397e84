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

    Where build configurations run: `workers` child processes at once on this machine, each
    measuring one build configuration (`0`: in this process, for debugging: no protection from
    a crashing adapter and no time limits; the default here because a caller from Python hands
    over a dataset already in memory, the command line's is 1), or, with `ray`, as Ray tasks on
    the Ray instance this process is connected to (`harness.run.ray_executor`), where a build
    configuration whose worker or node died is resubmitted up to `retries` times. `timeout`
    bounds the build phase of a build configuration (child start, dataset load, fit),
    `query_timeout` each query configuration, both in seconds, in a child process and on Ray.

    Budgets (`harness.plan.budget`, seconds, None: unbounded): `config_budget` bounds one build
    configuration's estimated time, `budget` the whole run's; a configuration over its budget
    runs on fewer queries or is skipped with a note.
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
    workers: int = 0
    ray: bool = False
    timeout: float = 3600.0
    query_timeout: float = 900.0
    retry_failed: bool = False
    plugins: tuple[str, ...] = ()
    retries: int = 0
    config_budget: float | None = None
    budget: float | None = None
    #: reuse records made by code that changed since (stale, `algorithms.fingerprint`) as if
    #: current, instead of recomputing them; the report marks them
    reuse_stale: bool = False

    @classmethod
    def from_args(cls, args: Any, device: str, plugins: tuple[str, ...]) -> RunOptions:
        """The options of the command line's parsed arguments (`harness.cli.run_parser`), with
        the device and plugins as resolved for this run; `args.workers` and `args.ray` as the
        command resolved them from the flags (the deprecated ones included)."""
        return cls(
            k=args.count, runs=args.runs, queries=args.queries, threads=args.threads, device=device, mode=args.mode,
            seed=args.seed, force=args.force, results_dir=args.results_dir, progress=args.progress,
            workers=args.workers, ray=args.ray is not None, timeout=args.timeout, query_timeout=args.query_timeout,
            retry_failed=args.retry_failed, plugins=plugins, retries=args.retries, config_budget=args.config_budget,
            budget=args.budget, reuse_stale=args.reuse_stale,
        )

    @property
    def isolation(self) -> str:
        """How a build configuration is kept apart (the records' `isolation`): "none" in this
        process (`workers` 0), "process" in a child process or a Ray worker."""
        return "none" if self.workers == 0 and not self.ray else "process"

    @property
    def executor(self) -> str:
        """Where build configurations run (the records' `executor`): "local" or "ray"."""
        return "ray" if self.ray else "local"

    @property
    def parallel(self) -> int:
        """How many build configurations this machine measures at once (the records'
        provenance `parallel`; on Ray, the cluster schedules its tasks itself: 1)."""
        return 1 if self.ray else max(1, self.workers)

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
        deadline=deadline, side_dir=str(dataset.side_dir) if getattr(dataset, "side_dir", None) else None,
    )
