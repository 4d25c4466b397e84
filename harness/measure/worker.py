"""The worker's part of a build job, wherever it runs (this process, a child process, a Ray
task): import the plugins, find the adapter, load the dataset unless it was handed over, seed
the generators, then measure (`harness.measure.measure`), yielding events.
"""
from __future__ import annotations

import importlib
import random
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from algorithms import tune_malloc
from harness.data.loader import Dataset, load_file
from harness.errors import ConfigError
from harness.measure.measure import BuildFailed, Event, build_events, reason_of
from harness.measure.job import BuildJob
from harness.measure.plugins import PLUGINS_ENV, load_plugins
from harness.measure.threads import set_job_threads


def job_events(job: BuildJob, dataset: Dataset | None = None) -> Iterator[Event]:
    """The worker's part of a build configuration, wherever it runs (a child process here, a
    Ray task in `harness.run.ray_executor`): import the plugins, find the adapter, load the
    dataset from `job.dataset_path` unless it was handed over, seed, then measure."""
    started = time.monotonic()  # the job's deadline counts from here
    tune_malloc()  # the one C allocator setting every measuring process runs with (algorithms/_allocator.py)
    try:
        load_plugins(job.plugins)
        spec = _find_spec(job)
        if dataset is None:
            # the parent verified the shared copy of the vectors this run: map it after the cheap checks
            dataset = load_file(Path(job.dataset_path), name=job.dataset_name, full_check=False,
                                side_dir=Path(job.side_dir) if job.side_dir else None)
        seed_everything(job.options.seed)
        set_job_threads(job.options.threads)  # per job: a run may measure several thread counts
    except Exception as exc:  # noqa: BLE001 - reported as the build's failure
        yield BuildFailed(f"child process could not start the build: {reason_of(exc)}")
        return
    yield from build_events(dataset, spec, job, started)


def _find_spec(job: BuildJob) -> Any:
    """The adapter to build: imported from its own module (fast: only the libraries it needs),
    else found through the registry's full discovery (adapters made at run time)."""
    from algorithms import registry
    from algorithms.base import Adapter
    from algorithms.registry import AlgorithmSpec

    target: Any = None
    if "<locals>" not in job.adapter_qualname:
        try:
            target = importlib.import_module(job.adapter_module)
            for part in job.adapter_qualname.split("."):
                target = getattr(target, part, None)
        except ImportError:
            target = None
    if isinstance(target, type) and issubclass(target, Adapter) and target.name == job.algorithm:
        return AlgorithmSpec(name=job.algorithm, adapter=target)
    try:
        return registry.get(job.algorithm)
    except ConfigError as exc:
        raise ConfigError(
            f"algorithm {job.algorithm!r} is not registered in the child process",
            f"register it in a module listed with --plugins or ${PLUGINS_ENV} ({exc.message})",
        ) from None


def seed_everything(seed: int) -> None:
    """Seed the global generators of this process: random, numpy, and torch if it is loaded
    (an adapter that uses torch has imported it by now; the others need not pay for it)."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)
