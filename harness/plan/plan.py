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
counts both apart.

The plan decides once: `make_plan` reads each record it looks at once (its checksum verified
once, `RecordsSeen`) and keeps, per build configuration, a `BuildDecision`: what to do with
each query configuration and why. The runner (and the Ray driver) take that decision from the
plan (`RunPlan.decide`); when the run's measurements change a configuration's query count
before it starts, the plan decides that configuration again from what it has already read.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from algorithms.fingerprint import code_fingerprint
from harness import records
from harness.data.loader import DatasetLike
from harness.plan.axes import batch_at, mode_of, threads_of
from harness.plan.budget import Allotment, Budget, allot, format_plan
from harness.plan.cost import Rates, default_rates, estimate_config, query_grid, rates_for
from harness.plan.options import RunOptions

log = logging.getLogger("harness")


@dataclass
class Query:
    """One query configuration of a build configuration, with its record identity."""

    params: dict[str, Any]
    key: str
    stem: str
    path: Path
    #: queries per search call (None: the whole set; 1: single mode), `harness.plan.axes`
    batch_size: int | None = None
    #: the thread count it is measured with
    threads: int = 1


#: `batch` of `identity` and `choose` when not given: the options' default batch size
OPTIONS_BATCH = "options"


def query_count(dataset: DatasetLike, options: RunOptions, config: Any) -> int:
    """How many test queries this configuration may run on (a documented prefix of the test
    set): the test set, cut by --queries and the sweep's max_queries; a budget may take fewer."""
    limits = [n for n in (options.queries, config.max_queries) if n is not None]
    return min([dataset.n_test, *limits])


def device_for(config: Any, requested: str) -> str:
    """The device an adapter runs on: the requested one when it supports it, else the CPU."""
    return requested if requested in config.spec.adapter.devices else "cpu"


def identity(dataset: DatasetLike, config: Any, params: dict[str, Any], options: RunOptions, n_queries: int,
             device: str, batch: Any = OPTIONS_BATCH) -> Query:
    """The record identity of one query configuration measured on `n_queries` queries with
    `batch` queries per call (default: the options'), at the configuration's thread count."""
    batch = options.batch_axis()[0] if batch == OPTIONS_BATCH else batch
    threads = threads_of(config, options)
    key = records.record_key(
        config.entry, config.build_params, params, mode_of(batch), options.k, n_queries, device, threads,
        config.spec.adapter.revision, batch,
    )
    # the thread count was always part of the key, never of the file name: a records directory
    # written before threads became an axis keeps its paths (and so its reuse)
    axes = {"b": batch} if batch is not None and batch > 1 else {}
    stem = records.record_stem(config.entry, config.build_params, {**params, **axes}, key)
    directory = records.record_dir(options.results_dir, dataset.name, config.entry)
    return Query(params, key, stem, directory / f"{stem}.json", batch, threads)


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


class RecordsSeen:
    """What lies at each record path a run looked at, read once: a record is read and its
    checksum verified once per run, however many decisions look at it. The runner says when
    it moved or removed one (`forget`); the records it writes are at paths no later decision
    of the run looks at (one build configuration's identities are its own)."""

    def __init__(self) -> None:
        self._found: dict[Path, Found] = {}

    def at(self, path: Path) -> Found:
        if path not in self._found:
            self._found[path] = found_at(path)
        return self._found[path]

    def forget(self, path: Path) -> None:
        """The record at `path` was moved aside or removed by this run: nothing is there now."""
        self._found[path] = Found(None)


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
    #: why, in words (the plan's debug log says it per query configuration)
    reason: str = ""
    #: a `skipped` record on the full count (an earlier run with less time) that gives way to
    #: the record on fewer queries computed now, or found
    gives_way: Path | None = None

    @property
    def stale_kept(self) -> bool:
        return self.action == REUSE and bool(self.stale)


def choose(dataset: DatasetLike, config: Any, params: dict[str, Any], options: RunOptions, n_queries: int,
           at_least: int, n_max: int, device: str, fingerprint: str | None, seen: RecordsSeen | None = None,
           batch: Any = OPTIONS_BATCH) -> Choice:
    """What to do with one query configuration measured on `n_queries` queries: the exact
    record's `decision`, else a whole ok record on more than `at_least` queries of the grid
    (the largest first). `seen` holds what the run has read already (default: read afresh)."""
    seen = seen if seen is not None else RecordsSeen()
    query = identity(dataset, config, params, options, n_queries, device, batch)
    found = seen.at(query.path)
    if options.force:  # computed again whatever is there; one of other code is moved aside all the same
        other_code = found.status == "ok" and fingerprint is not None and found.fingerprint != fingerprint
        return _with_stale(Choice(query, COMPUTE, reason="--force"), [(query.path, found)] if other_code else [])
    verdict = decision(found, options, fingerprint)
    if verdict in (REUSE, REUSE_STALE):
        why = "a whole ok record" + (" of code changed since, kept (--reuse-stale)" if verdict == REUSE_STALE else "")
        return _with_stale(Choice(query, REUSE, query.path, reason=why), [(query.path, found)] if verdict == REUSE_STALE else [])
    if verdict == SKIP:
        why = "a record of a newer harness" if found.status == "newer" else f"an earlier {found.status} record, kept (--retry-failed)"
        return Choice(query, SKIP, reason=why)
    stale = [(query.path, found)] if verdict == STALE else []
    for count in reversed([c for c in query_grid(n_max) if c > at_least and c != n_queries]):
        path = identity(dataset, config, params, options, count, device, batch).path
        larger = seen.at(path)
        verdict = decision(larger, options, fingerprint)
        if verdict == REUSE:
            return Choice(query, REUSE, path, reason=f"a whole ok record on {count} queries")
        if verdict == REUSE_STALE:
            return _with_stale(Choice(query, REUSE, path, reason=f"a record on {count} queries of code changed since, "
                                      "kept (--reuse-stale)"), [(path, larger)])
        if verdict == STALE:
            stale.append((path, larger))
    for count in query_grid(n_max):  # stale ones on fewer queries go too: they would stand beside the new one
        path = identity(dataset, config, params, options, count, device, batch).path
        if count <= at_least and count != n_queries and path.exists():
            smaller = seen.at(path)
            if decision(smaller, options, fingerprint) == STALE:
                stale.append((path, smaller))
    why = "no whole record" if found.status in (None, "skipped") else f"an earlier {found.status} record (--retry-failed)"
    if stale:
        why = f"{why}; {len(stale)} record(s) of code changed since, moved aside"
    return _with_stale(Choice(query, COMPUTE, reason=why), stale)


def _with_stale(choice: Choice, stale: list[tuple[Path, Found]]) -> Choice:
    choice.stale = [path for path, _ in stale]
    choice.predating = sum(1 for _, found in stale if found.fingerprint is None)
    return choice


def remove_leftovers(query: Query) -> None:
    """Remove the temporary files of `query`'s record that an interrupted writer left."""
    for leftover in records.leftover_temporaries(query.path.parent, query.stem):
        log.warning("removing a temporary file left by an interrupted run: %s", leftover)
        leftover.unlink(missing_ok=True)


@dataclass
class BuildDecision:
    """The plan's decision for one build configuration: the count its query configurations run
    on, and what to do with each (`choices`, in the order of its query parameters). Pure: it
    reads records (once, through `RecordsSeen`) and changes no file; the runner acts on it."""

    config: Any
    n_queries: int
    n_max: int
    device: str
    fingerprint: str
    #: the whole configuration does not fit its budget: what it would compute gets `skipped` records
    skipping: bool
    choices: list[Choice]

    @property
    def compute(self) -> list[int]:
        """The indexes (into the configuration's query parameters) of what is computed."""
        return [index for index, choice in enumerate(self.choices) if choice.action == COMPUTE]


def decide(dataset: DatasetLike, config: Any, options: RunOptions, allotment: Allotment | None,
           seen: RecordsSeen) -> BuildDecision:
    """Decide every query configuration of `config` at its allotment's count (without one: every
    query the options allow). A configuration skipped for its budget keeps any whole record on
    at least the smallest count worth running; the rest is computed, reused or left as it is."""
    n_max = query_count(dataset, options, config)
    n_queries = allotment.n_queries if allotment is not None else n_max
    skipping = allotment is not None and allotment.skipped
    at_least = allotment.sizing.minimum - 1 if skipping else n_queries
    device = device_for(config, options.device)
    fingerprint = current_fingerprint(config)
    full = n_max if n_max != n_queries else None
    choices = []
    for index, params in enumerate(config.query_params):
        batch = batch_at(config, index, options)
        choice = choose(dataset, config, params, options, n_queries, at_least, n_max, device, fingerprint, seen, batch)
        if choice.action == COMPUTE and not skipping:
            path = (choice.query.path if full is None
                    else identity(dataset, config, params, options, full, device, batch).path)
            if seen.at(path).status == "skipped":
                choice.gives_way = path
        choices.append(choice)
    return BuildDecision(config, n_queries, n_max, device, fingerprint, skipping, choices)


# --- the run's plan --------------------------------------------------------------------------


@dataclass
class RunPlan:
    """Every build configuration's allotment and decision, in sweep order, and what they were
    made from; the records read to make them (`seen`), each once."""

    allotments: list[Allotment]
    budget: Budget
    rates: Rates
    by_config: dict[int, Allotment]
    dataset: Any = None
    options: RunOptions | None = None
    seen: RecordsSeen = field(default_factory=RecordsSeen)
    decisions: dict[int, BuildDecision] = field(default_factory=dict)

    def of(self, config: Any) -> Allotment | None:
        return self.by_config.get(id(config))

    def lines(self, n_test: int, dimension: int) -> list[str]:
        return format_plan(self.allotments, self.budget, self.rates.describe(dimension), n_test)

    def decide(self, config: Any) -> BuildDecision:
        """The plan's decision for `config`: the one made with the plan, unless the run has
        since chosen another count for it (`Progress.resize`): then decided again at that
        count, from the records already read."""
        allotment = self.of(config)
        made = self.decisions.get(id(config))
        if made is not None and allotment is not None and (made.n_queries, made.skipping) == (allotment.n_queries, allotment.skipped):
            return made
        if made is not None and allotment is None:
            return made
        made = decide(self.dataset, config, self.options, allotment, self.seen)
        self.decisions[id(config)] = made
        for choice in made.choices:
            log.debug("%s %s: %s (%s)", config.entry, choice.query.params, choice.action, choice.reason)
        return made


def make_plan(dataset: DatasetLike, configs: Sequence[Any], options: RunOptions, rates: Rates | None = None) -> RunPlan:
    """Estimate every build configuration, leave out the query configurations whose records
    are reused, size the rest under the options' budgets, and decide each configuration."""
    rates = rates or default_rates(options.threads)
    budget = Budget(options.config_budget, options.budget, options.parallel)
    isolated = options.isolation == "process" or options.executor == "ray"
    allotments = []
    for config in configs:
        sizes = [batch_at(config, index, options) for index in range(len(config.query_params))]
        estimate = estimate_config(config, dataset.n_train, dataset.dimension, options.k,
                                   rates_for(rates, threads_of(config, options)), isolated, options.mode,
                                   batch_sizes=sizes)
        n_max = query_count(dataset, options, config)
        todo = list(range(len(config.query_params)))
        allotments.append(Allotment(config, estimate, n_max, todo, options.runs))
    plan = RunPlan(allotments, budget, rates, {id(a.config): a for a in allotments}, dataset, options)
    allot(allotments, Budget(budget.config_s, None, budget.parallel, budget.min_queries))
    for item in allotments:  # the records a first sizing would reuse cost nothing: size the rest
        _left(plan, item)
    allot(allotments, budget)
    for item in allotments:
        _left(plan, item)
    return plan


def _left(plan: RunPlan, item: Allotment) -> None:
    """Decide `item` at its count: its `todo` becomes the query configurations that need
    computing (no whole record of the current code on at least its count, any worth keeping
    when it is skipped, and no earlier failure to keep); counts the stale records found."""
    made = decide(plan.dataset, item.config, plan.options, item, plan.seen)
    plan.decisions[id(item.config)] = made
    item.todo = made.compute
    item.stale_found.clear()
    item.kept_found.clear()
    for index, choice in enumerate(made.choices):
        if choice.stale:
            (item.kept_found if choice.stale_kept else item.stale_found)[index] = choice.predating > 0
