"""What the user chose for a run (`RunOptions`), and the build job made of one build
configuration under those options (`job_for`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError
from harness.plan.axes import threads_of
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

    The measurement axes (`harness.plan.axes`): `thread_counts` lists the thread counts to
    measure, each its own build job (empty: `threads` alone; `threads` is the first of them,
    what this process runs with); `batch_sizes` the batch sizes, each query configuration
    once per size (empty: `mode`'s: the whole set in one call, or 1 in single mode; None in
    it: the whole set).
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
    thread_counts: tuple[int, ...] = ()
    batch_sizes: tuple[int | None, ...] = ()

    def __post_init__(self) -> None:
        sizes = self.batch_sizes
        if any(size is not None and size < 1 for size in sizes):
            raise ConfigError(f"--batch-size {_listed(sizes)}: a batch size must be >= 1",
                              "give positive sizes, or 'all' for the whole set in one call")
        if self.mode == "single" and sizes and tuple(sizes) != (1,):
            raise ConfigError(f"--mode single is --batch-size 1, but --batch-size {_listed(sizes)} was given",
                              "drop --mode single, or give --batch-size 1 (or 1 among the sizes without --mode)")
        if self.mode not in ("batch", "single"):
            raise ConfigError(f"mode {self.mode!r} is not known", "batch or single")
        if len(set(sizes)) != len(sizes) or len(set(self.thread_counts)) != len(self.thread_counts):
            raise ConfigError("a value of --batch-size or --threads is given twice",
                              f"--batch-size {_listed(sizes)} --threads {_listed(self.thread_counts)}")

    def thread_axis(self) -> tuple[int, ...]:
        """The thread counts to measure (`--threads 1,2`: each its own records)."""
        return tuple(self.thread_counts) or (self.threads,)

    def batch_axis(self) -> tuple[int | None, ...]:
        """The batch sizes to measure (None: the whole set in one call; 1: single mode)."""
        if self.batch_sizes:
            return tuple(self.batch_sizes)
        return (1,) if self.mode == "single" else (None,)

    @classmethod
    def from_args(cls, args: Any, device: str, plugins: tuple[str, ...]) -> RunOptions:
        """The options of the command line's parsed arguments (`harness.cli.run_parser`), with
        the device and plugins as resolved for this run; `args.workers` and `args.ray` as the
        command resolved them from the flags (the deprecated ones included)."""
        threads = list(args.threads) if isinstance(args.threads, (list, tuple)) else [args.threads]
        sizes = getattr(args, "batch_size", None)
        return cls(
            thread_counts=tuple(threads) if len(threads) > 1 else (),
            batch_sizes=tuple(sizes) if sizes else (),
            k=args.count, runs=args.runs, queries=args.queries, threads=threads[0], device=device, mode=args.mode,
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

    def measuring(self, threads: int | None = None) -> MeasureOptions:
        """The part of these options that measuring a build configuration reads (with `threads`,
        the configuration's own count, when given)."""
        return MeasureOptions(k=self.k, runs=self.runs, threads=self.threads if threads is None else threads,
                              mode=self.mode, seed=self.seed)


def _listed(values: Any) -> str:
    return ",".join("all" if v is None else str(v) for v in values)


def job_for(
    dataset: DatasetLike,
    config: BuildConfig,
    query_params: list[dict[str, Any]],
    options: RunOptions,
    n_queries: int,
    device: str,
    warmup_queries: int = 100,
    deadline: Deadline | None = None,
    batch_sizes: list[int | None] | None = None,
) -> BuildJob:
    """The job of `config`'s build and the given query configurations (`batch_sizes`: each
    one's batch size, parallel to `query_params`; None: the options' default)."""
    adapter = config.spec.adapter
    sizes = list(batch_sizes) if batch_sizes is not None else [options.batch_axis()[0]] * len(query_params)
    return BuildJob(
        dataset_path=str(Path(dataset.path).resolve()), dataset_name=dataset.name, entry=config.entry,
        algorithm=config.spec.name, adapter_module=adapter.__module__, adapter_qualname=adapter.__qualname__,
        build_params=dict(config.build_params), query_params=list(query_params), batch_sizes=sizes,
        options=options.measuring(threads_of(config, options)),
        n_queries=n_queries, device=device, plugins=tuple(options.plugins), warmup_queries=warmup_queries,
        deadline=deadline, side_dir=str(dataset.side_dir) if getattr(dataset, "side_dir", None) else None,
    )
