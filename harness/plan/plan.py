"""What a run will do, decided before it starts: each query configuration's record identity,
whether it is computed, reused or left as it is, and (`make_plan`) the run's plan: each build
configuration's estimate (`harness.plan.cost`) and query count under the budgets
(`harness.plan.budget`), printed before anything is built.

A budget chooses a query count from a grid, so a rerun with a little more or less time keeps
its records: a whole record of the same configuration on at least the chosen count is reused.

A record knows the code that made it (`code_fingerprint`, `algorithms.fingerprint`). An ok
record whose fingerprint differs from the code loaded now, or that has none (made before
fingerprints), is stale: it is never reused silently. It is recomputed, after it is moved into
`superseded/` beside it (`records.supersede`), or kept as it is under --reuse-stale; the plan
counts both apart. `choose` is the one rule the plan and the runner both follow.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from algorithms.fingerprint import code_fingerprint
from harness import records
from harness.data.loader import DatasetLike
from harness.plan.budget import Allotment, Budget, allot, format_plan
from harness.plan.cost import Rates, default_rates, estimate_config, query_grid
from harness.plan.options import RunOptions

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


@dataclass(frozen=True)
class Found:
    """What lies at a record's path, as far as planning cares: its status (None: no whole
    record; 'newer': a newer harness's) and the fingerprint of the code that made it."""

    status: str | None
    fingerprint: str | None = None


def found_at(path: Path) -> Found:
    """The record at `path` (an incomplete one is recomputed, with a warning; a newer schema's
    is left as it is)."""
    if not path.exists():
        return Found(None)
    try:
        document = records.read_record(path)
    except records.IncompleteRecord as exc:
        log.warning("ignoring incomplete record (it will be recomputed): %s", exc)
        return Found(None)
    except records.UnknownSchema as exc:
        log.warning("leaving a record of a newer harness as it is: %s", exc)
        return Found("newer")
    return Found(document.get("status"), document.get("code_fingerprint"))


def current_fingerprint(config: Any) -> str:
    """The fingerprint of the code of `config`'s algorithm as loaded now (plugins included)."""
    return code_fingerprint(config.spec)


#: what the plan does with one query configuration's record (`decision`)
COMPUTE, REUSE, SKIP = "compute", "reuse", "skip"
#: an ok record made by other code: recomputed, the old one moved aside (`records.supersede`)
STALE = "stale"
#: ... kept as if current (--reuse-stale)
REUSE_STALE = "reuse-stale"


def decision(found: Found, options: RunOptions, fingerprint: str | None) -> str:
    """The one rule for a record found at a query configuration's identity: 'compute' (none,
    or one skipped for a budget), 'reuse' (a whole ok record of the current code), 'stale' (an
    ok record of other code, or of before fingerprints: recomputed), 'reuse-stale' (the same,
    kept under --reuse-stale), 'skip' (an earlier failure, kept unless retried; a newer
    harness's record). `fingerprint` None: the code is not judged."""
    status = found.status
    if status in (None, "skipped"):
        return COMPUTE
    if status == "ok":
        if fingerprint is None or found.fingerprint == fingerprint:
            return REUSE
        return REUSE_STALE if options.reuse_stale else STALE
    if status == "newer":
        return SKIP
    return COMPUTE if options.retry_failed else SKIP


@dataclass
class Choice:
    """What the plan does with one query configuration: compute it, reuse a record (`reused`:
    the exact one, or one on more queries), or skip it; with the stale records involved."""

    query: Query
    action: str  # COMPUTE, REUSE or SKIP
    reused: Path | None = None
    #: ok records of this query configuration made by other code, at any count: moved aside
    #: before it is computed (COMPUTE), or the one kept (REUSE under --reuse-stale)
    stale: list[Path] = field(default_factory=list)
    #: how many of `stale` were made before records had fingerprints
    predating: int = 0

    @property
    def stale_kept(self) -> bool:
        return self.action == REUSE and bool(self.stale)


def choose(dataset: DatasetLike, config: Any, params: dict[str, Any], options: RunOptions, n_queries: int,
           at_least: int, n_max: int, device: str, fingerprint: str | None) -> Choice:
    """What to do with one query configuration measured on `n_queries` queries: the exact
    record's `decision`, else a whole ok record on more than `at_least` queries of the grid
    (the largest first); the runner and the plan both ask this, so they agree."""
    query = identity(dataset, config, params, options, n_queries, device)
    found = found_at(query.path)
    if options.force:  # computed again whatever is there; one of other code is moved aside all the same
        other_code = found.status == "ok" and fingerprint is not None and found.fingerprint != fingerprint
        return _with_stale(Choice(query, COMPUTE), [(query.path, found)] if other_code else [])
    verdict = decision(found, options, fingerprint)
    if verdict in (REUSE, REUSE_STALE):
        return _with_stale(Choice(query, REUSE, query.path), [(query.path, found)] if verdict == REUSE_STALE else [])
    if verdict == SKIP:
        return Choice(query, SKIP)
    stale = [(query.path, found)] if verdict == STALE else []
    for count in reversed([c for c in query_grid(n_max) if c > at_least and c != n_queries]):
        path = identity(dataset, config, params, options, count, device).path
        larger = found_at(path)
        verdict = decision(larger, options, fingerprint)
        if verdict == REUSE:
            return Choice(query, REUSE, path)
        if verdict == REUSE_STALE:
            return _with_stale(Choice(query, REUSE, path), [(path, larger)])
        if verdict == STALE:
            stale.append((path, larger))
    for count in query_grid(n_max):  # stale ones on fewer queries go too: they would stand beside the new one
        path = identity(dataset, config, params, options, count, device).path
        if count <= at_least and count != n_queries and path.exists():
            smaller = found_at(path)
            if decision(smaller, options, fingerprint) == STALE:
                stale.append((path, smaller))
    return _with_stale(Choice(query, COMPUTE), stale)


def _with_stale(choice: Choice, stale: list[tuple[Path, Found]]) -> Choice:
    choice.stale = [path for path, _ in stale]
    choice.predating = sum(1 for _, found in stale if found.fingerprint is None)
    return choice


def remove_leftovers(query: Query) -> None:
    """Remove the temporary files of `query`'s record that an interrupted writer left."""
    for leftover in records.leftover_temporaries(query.path.parent, query.stem):
        log.warning("removing a temporary file left by an interrupted run: %s", leftover)
        leftover.unlink(missing_ok=True)


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
    """The query configurations of `item` that need computing (`choose`: no whole record of the
    current code on at least its count, any worth keeping when it is skipped, and no earlier
    failure to keep); counts the stale records on the allotment."""
    device = device_for(item.config, options.device)
    at_least = item.sizing.minimum - 1 if item.skipped else item.n_queries
    fingerprint = current_fingerprint(item.config)
    left = []
    for index in item.todo:
        params = item.config.query_params[index]
        choice = choose(dataset, item.config, params, options, item.n_queries, at_least, item.n_max, device, fingerprint)
        item.stale_found.pop(index, None)  # judged again at this count
        if choice.action == COMPUTE:
            left.append(index)
        if choice.stale:
            # a kept one leaves `todo`: the next sizing does not see it again
            (item.kept_found if choice.stale_kept else item.stale_found)[index] = choice.predating > 0
    return left
