"""Where a run's build configurations are measured: the one seam between the command line and
the executors, chosen once per run by the options (`--workers`, `--ray`).

- on this machine (`harness.run.local`): `--workers N` child processes at once (the command
  line's default is 1), each build configuration in its own (`harness.run.isolation`), so a
  crash or hang of an adapter ends that configuration only; `--workers 0` in this process;
- on Ray (`--ray [ADDRESS]`, `harness.run.ray_executor`): every build configuration as a Ray
  task, many at once, on a local Ray instance or a cluster.

Both act on the same plan (`harness.plan.plan`: one decision per build configuration), run the
same worker code (`harness.measure.worker`), keep to the same deadlines, and hand the same
events to the runner's `Recorder`, which writes the records in this process.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from tqdm import tqdm

from harness.data.loader import DatasetLike
from harness.plan.axes import with_axes
from harness.plan.cost import Rates
from harness.plan.options import RunOptions
from harness.plan.sweeps import BuildConfig
from harness.run.local import run_local
from harness.run.runner import RunContext, RunSummary


def run_sweep(
    dataset: DatasetLike,
    configs: Sequence[BuildConfig],
    options: RunOptions,
    provenance: dict[str, Any],
    report: Callable[[str], None] = tqdm.write,
    summary: RunSummary | None = None,
    rates: Rates | None = None,
) -> RunSummary:
    """Run every build configuration where the options say; returns what was written, reused,
    failed, skipped. Pass `summary` to see what was done when interrupted, `rates` from
    `cost.probe` for estimates of this machine (default: the reference machine's). With
    `options.ray`, this process must be connected to Ray (`ray_executor.ray_session`). Each
    configuration is measured at each of the options' thread counts and batch sizes
    (`harness.plan.axes.with_axes`; configurations that say theirs are kept as they are)."""
    configs = with_axes(configs, options)
    context = RunContext(dataset, options, provenance, summary if summary is not None else RunSummary(), report, rates)
    if options.ray:
        import ray

        from harness.run.ray_executor import run_sweep_on_ray

        return run_sweep_on_ray(ray, context, configs)
    if options.workers < 0:
        raise ValueError(f"workers must be 0 (in this process) or more, got {options.workers}")
    return run_local(context, configs)
