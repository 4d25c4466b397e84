"""The run's measurement axes besides the sweep's parameters: the batch size and the thread
count. Each value of `--batch-size` and of `--threads` is a separate measurement, its own
record (both are part of the record's identity, `harness.records.record_key`).

A thread count is a property of a build configuration: the index is built and searched with
it (each count its own build job, so its build time is measured with it too, and the worker
sets the libraries' thread pools once per job). A batch size is a property of a query
configuration: the same index answers the test set cut into batches of each size, so the
index is built once per thread count, whatever the number of batch sizes.

`with_axes` expands the sweep's build configurations by both axes; every configuration it
returns says its thread count and each query configuration's batch size, so the plan, the
cost model and the runner read them from the configuration (`threads_of`, `batch_at`).
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from harness.plan.sweeps import BuildConfig

#: `RunOptions` (harness.plan.options imports this module; typed loosely to keep it one way)
RunOptions = Any

#: the mode a batch size means: one query per call is "single", anything else "batch"
SINGLE, BATCH = "single", "batch"


def mode_of(batch_size: int | None) -> str:
    """The record's `mode` for a batch size: 1 is single mode (one query per call)."""
    return SINGLE if batch_size == 1 else BATCH


def threads_of(config: Any, options: RunOptions) -> int:
    """The thread count `config` is measured with."""
    threads = getattr(config, "threads", None)
    return options.threads if threads is None else threads


def batch_at(config: Any, index: int, options: RunOptions) -> int | None:
    """The batch size of `config`'s query configuration `index` (None: the whole set)."""
    sizes = getattr(config, "batch_sizes", None)
    if sizes:
        return sizes[index]
    return options.batch_axis()[0]


def axis_tags(batch_size: int | None, threads: int) -> str:
    """What a label says of the axes when they are not the default (whole set, one thread):
    `b=100 t=2`; single mode (b=1) is said by the series' `single` tag already."""
    tags = [f"b={batch_size}"] if batch_size is not None and batch_size > 1 else []
    if threads != 1:
        tags.append(f"t={threads}")
    return " ".join(tags)


def with_axes(configs: Sequence[BuildConfig], options: RunOptions) -> list[BuildConfig]:
    """Each build configuration once per thread count, each of its query configurations once
    per batch size (in that order: a query configuration's batch sizes run one after another on
    the same index). A configuration that already says its axes is kept as it is."""
    threads, batches = options.thread_axis(), options.batch_axis()
    expanded = []
    for config in configs:
        if config.threads is not None or config.batch_sizes:
            expanded.append(config)
            continue
        query = [params for params in config.query_params for _ in batches]
        sizes = [size for _ in config.query_params for size in batches]
        for count in threads:
            expanded.append(replace(config, threads=count, query_params=[dict(p) for p in query], batch_sizes=list(sizes)))
    return expanded
