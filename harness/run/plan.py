"""What a run will do, decided before it starts: each query configuration's record identity,
whether it is computed, reused or left as it is, and (`make_plan`) the run's plan: each build
configuration's estimate (`harness.run.cost`) and query count under the budgets
(`harness.run.budget`), printed before anything is built.

A budget chooses a query count from a grid, so a rerun with a little more or less time keeps
its records: a whole record of the same configuration on at least the chosen count is reused.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from harness import records
from harness.data.loader import DatasetLike
from harness.run.budget import Allotment, Budget, allot, format_plan
from harness.run.cost import Rates, default_rates, estimate_config, query_grid
from harness.run.options import RunOptions

log = logging.getLogger("harness")


@dataclass
class Query:
    """One query configuration of a build configuration, with its record identity."""

    params: dict[str, Any]
    key: str
    stem: str
    path: Path


def query_count(dataset: DatasetLike, options: RunOptions, config: Any) -> int:
    """How many test queries this configuration may run on (a documented prefix of the test
    set): the test set, cut by --queries and the sweep's max_queries; a budget may take fewer."""
    limits = [n for n in (options.queries, config.max_queries) if n is not None]
    return min([dataset.n_test, *limits])


def device_for(config: Any, requested: str) -> str:
    """The device an adapter runs on: the requested one when it supports it, else the CPU."""
    return requested if requested in config.spec.adapter.devices else "cpu"


def identity(dataset: DatasetLike, config: Any, params: dict[str, Any], options: RunOptions, n_queries: int,
             device: str) -> Query:
    """The record identity of one query configuration measured on `n_queries` queries."""
    key = records.record_key(
        config.entry, config.build_params, params, options.mode, options.k, n_queries, device, options.threads,
        config.spec.adapter.revision,
    )
    stem = records.record_stem(config.entry, config.build_params, params, key)
    directory = records.record_dir(options.results_dir, dataset.name, config.entry)
    return Query(params, key, stem, directory / f"{stem}.json")


def identities(dataset: DatasetLike, config: Any, options: RunOptions, n_queries: int, device: str) -> list[Query]:
    return [identity(dataset, config, params, options, n_queries, device) for params in config.query_params]


def status_of(path: Path) -> str | None:
    """The status of the record at `path`: ok, failed, timeout, skipped; None when there is
    none or it is incomplete (recomputed, with a warning); 'newer' for a newer schema's."""
    if not path.exists():
        return None
    try:
        return records.read_record(path).get("status")
    except records.IncompleteRecord as exc:
        log.warning("ignoring incomplete record (it will be recomputed): %s", exc)
        return None
    except records.UnknownSchema as exc:
        log.warning("leaving a record of a newer harness as it is: %s", exc)
        return "newer"


def decide(query: Query, options: RunOptions) -> str:
    """'compute', 'reuse' (a whole ok record) or 'skip' (an earlier failure, kept unless
    retried; a newer harness's record). A record skipped for a budget is planned again."""
    for leftover in records.leftover_temporaries(query.path.parent, query.stem):
        log.warning("removing a temporary file left by an interrupted run: %s", leftover)
        leftover.unlink(missing_ok=True)
    return "compute" if options.force else _decision(status_of(query.path), options)


def _decision(status: str | None, options: RunOptions) -> str:
    if status in (None, "skipped"):
        return "compute"
    if status == "ok":
        return "reuse"
    if status == "newer":
        return "skip"
    return "compute" if options.retry_failed else "skip"


def larger_record(dataset: DatasetLike, config: Any, params: dict[str, Any], options: RunOptions, n_queries: int,
                  n_max: int, device: str) -> Path | None:
    """A whole ok record of this query configuration on more than `n_queries` of the grid's
    counts (an earlier run with more time), the largest first; None when there is none."""
    if options.force:
        return None
    for count in reversed([c for c in query_grid(n_max) if c > n_queries]):
        path = identity(dataset, config, params, options, count, device).path
        if status_of(path) == "ok":
            return path
    return None


# --- the run's plan --------------------------------------------------------------------------


@dataclass
class RunPlan:
    """Every build configuration's allotment, in sweep order, and what they were made from."""

    allotments: list[Allotment]
    budget: Budget
    rates: Rates
    by_config: dict[int, Allotment]

    def of(self, config: Any) -> Allotment | None:
        return self.by_config.get(id(config))

    def lines(self, n_test: int, dimension: int) -> list[str]:
        return format_plan(self.allotments, self.budget, self.rates.describe(dimension), n_test)


def make_plan(dataset: DatasetLike, configs: Sequence[Any], options: RunOptions, rates: Rates | None = None) -> RunPlan:
    """Estimate every build configuration, leave out the query configurations whose records
    are reused, and size the rest under the options' budgets."""
    rates = rates or default_rates(options.threads)
    budget = Budget(options.config_budget, options.budget, options.parallel)
    isolated = options.isolation == "process" or options.executor == "ray"
    allotments = []
    for config in configs:
        estimate = estimate_config(config, dataset.n_train, dataset.dimension, options.k, rates, isolated, options.mode)
        n_max = query_count(dataset, options, config)
        todo = list(range(len(config.query_params)))
        allotments.append(Allotment(config, estimate, n_max, todo, options.runs))
    allot(allotments, Budget(budget.config_s, None, budget.parallel, budget.min_queries))
    for item in allotments:  # the records a first sizing would reuse cost nothing: size the rest
        item.todo = _left(dataset, item, options)
    allot(allotments, budget)
    for item in allotments:
        item.todo = _left(dataset, item, options)
    return RunPlan(allotments, budget, rates, {id(a.config): a for a in allotments})


def _left(dataset: DatasetLike, item: Allotment, options: RunOptions) -> list[int]:
    """The query configurations of `item` that need computing: no whole record on at least its
    count (any worth keeping when it is skipped), and no earlier failure to keep."""
    device = device_for(item.config, options.device)
    at_least = item.sizing.minimum - 1 if item.skipped else item.n_queries
    left = []
    for index in item.todo:
        params = item.config.query_params[index]
        exact = identity(dataset, item.config, params, options, item.n_queries, device)
        decision = "compute" if options.force else _decision(status_of(exact.path), options)
        if decision == "compute" and larger_record(dataset, item.config, params, options, at_least, item.n_max, device) is None:
            left.append(index)
    return left
