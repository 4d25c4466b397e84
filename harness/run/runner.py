"""The runner: act on the plan's decision for each build configuration, write its records.

Data flows one way: the dataset goes into an adapter (fit, search), `harness.measure.measure`
times the calls and scores the answers, and the runner writes one record per query
configuration. It never plots; plots read the records.

Wherever a build configuration is measured (in this process, a child process or a Ray task:
`harness.run.executors`), what to compute was decided once by the plan
(`harness.plan.plan.RunPlan.decide`), the runner acts on that decision (`plan_build_config`:
reuse, leave, move aside, or hand on as a `PlannedBuild`), the events come back here, and
records are written by this process only (`Recorder`), atomically, one per finished query
configuration, as soon as it is finished.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from tqdm import tqdm

from harness import records
from harness.data.loader import DatasetLike
from harness.plan.axes import axis_tags, mode_of, threads_of
from harness.plan.budget import Allotment
from harness.plan.cost import Rates
from harness.measure.measure import WARMUP_QUERIES, BuildFailed, Built, Event, QueryDone, QueryFailed
from harness.measure.job import BuildJob, Deadline
from harness.plan.options import RunOptions, job_for
from harness.plan.plan import COMPUTE, REUSE, Query, RunPlan, make_plan, remove_leftovers
from harness.plan.progress import BUILD, Progress
from harness.run.provenance import now_iso
from harness.plan.sweeps import BuildConfig

log = logging.getLogger("harness")

__all__ = [
    "PlannedBuild", "Recorder", "RunContext", "RunSummary", "Terminated", "interrupt_code", "plan_build_config",
    "sigterm_as_interrupt", "start_progress",
]

@dataclass
class RunSummary:
    """Record paths by what this run did with them; filled as the run goes (read on Ctrl-C too).

    `skipped` holds earlier failures kept as they are; `budget_skipped` the records this run
    wrote for query configurations that did not fit the budget (status skipped)."""

    written: list[Path] = field(default_factory=list)
    reused: list[Path] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    budget_skipped: list[Path] = field(default_factory=list)
    #: stale records (made by code changed since) moved into `superseded/`, at their new paths
    superseded: list[Path] = field(default_factory=list)
    #: stale records reused as they are (--reuse-stale); also in `reused`
    stale_kept: list[Path] = field(default_factory=list)


@dataclass
class RunContext:
    """What every build configuration of a run shares: the dataset (or its reference), the
    options, the provenance every record carries, what was done so far, where lines go; the
    cost model's rates (None: the reference machine's), the plan and the progress, once made."""

    dataset: DatasetLike
    options: RunOptions
    provenance: dict[str, Any]
    summary: RunSummary = field(default_factory=lambda: RunSummary())
    report: Callable[[str], None] = tqdm.write
    rates: Rates | None = None
    plan: RunPlan | None = None
    progress: Progress | None = None


def ensure_plan(context: RunContext, configs: Sequence[BuildConfig]) -> RunPlan:
    """The run's plan (made and printed once): estimates, query counts, what is skipped."""
    if context.plan is None:
        context.plan = make_plan(context.dataset, configs, context.options, context.rates)
        for line in context.plan.lines(context.dataset.n_test, context.dataset.dimension):
            context.report(line)
    return context.plan


def start_progress(context: RunContext, configs: Sequence[BuildConfig], parallel: int | None = None) -> Progress:
    """The plan, then the progress over its estimated work (bar, ETA, `progress.jsonl`), for
    `parallel` configurations at once (default: the options')."""
    plan = ensure_plan(context, configs)
    options = context.options
    # a run with nothing to measure leaves the log of the last one that had something
    busy = any(a.todo and not a.skipped for a in plan.allotments)
    log_path = records.record_dir(options.results_dir, context.dataset.name, "progress.jsonl") if busy else None
    context.progress = Progress(plan.allotments, parallel or options.parallel, log_path, options.progress)
    return context.progress


@dataclass
class PlannedBuild:
    """A build configuration with work left: the query configurations to compute, and the part
    of their records known before measuring. Made by the runner from the plan's decision for
    every executor, so that what is computed is the same wherever the measuring happens."""

    dataset: DatasetLike
    config: BuildConfig
    todo: list[Query]
    base: dict[str, Any]
    n_queries: int
    device: str
    #: the index in the configuration's query parameters of each of `todo`
    indexes: list[int] = field(default_factory=list)
    allotment: Allotment | None = None
    warmup: int = WARMUP_QUERIES

    def job(self, options: RunOptions, positions: Sequence[int] | None = None) -> BuildJob:
        """The job of the query configurations at `positions` of `todo` (default: all)."""
        positions = range(len(self.todo)) if positions is None else positions
        return job_for(self.dataset, self.config, [self.todo[p].params for p in positions], options, self.n_queries,
                       self.device, self.warmup, self.deadline(positions),
                       batch_sizes=[self.todo[p].batch_size for p in positions])

    def deadline(self, positions: Sequence[int]) -> Deadline | None:
        """When the job of `todo[positions]` must be over (None without a budget)."""
        if self.allotment is None:
            return None
        return self.allotment.deadline([self.index_of(p) for p in positions])

    def index_of(self, position: int) -> int:
        """The index in the configuration's query parameters of `todo[position]`."""
        return self.indexes[position] if self.indexes else position

    def estimated_s(self, position: int) -> float | None:
        """The plan's estimate of `todo[position]`'s seconds (None without a plan)."""
        return None if self.allotment is None else self.allotment.query_seconds(self.index_of(position))


def plan_build_config(context: RunContext, config: BuildConfig) -> PlannedBuild | None:
    """Act on the plan's decision for `config` (`RunPlan.decide`: the runner decides nothing
    itself): note the records reused or left as they are in the context's summary, move the
    stale ones about to be replaced aside, remove what gives way, and return the query
    configurations to compute (None: nothing to do). The count is the budget's, chosen again
    with what the run has measured so far; a configuration that does not fit gets a `skipped`
    record per query configuration, saying why."""
    dataset, options, summary = context.dataset, context.options, context.summary
    plan = context.plan if context.plan is not None else ensure_plan(context, [config])
    allotment = plan.of(config)
    if allotment is not None and context.progress is not None:
        context.progress.resize(allotment, plan.budget.min_queries)
    decided = plan.decide(config)
    n_queries, device, skipping = decided.n_queries, decided.device, decided.skipping
    todo, indexes, stale = [], [], []
    for index, choice in enumerate(decided.choices):
        remove_leftovers(choice.query)
        if choice.gives_way is not None:
            _drop(choice.gives_way)
            plan.seen.forget(choice.gives_way)
        if choice.action == REUSE:
            summary.reused.append(choice.reused)
            if choice.stale_kept:
                summary.stale_kept.append(choice.reused)
        elif choice.action == COMPUTE:
            todo.append(choice.query)
            indexes.append(index)
            stale += choice.stale
        else:
            summary.skipped.append(choice.query.path)
    if stale and not skipping:  # a configuration the budget skips is not recomputed: its stale records stay
        _supersede(context, config, stale)
    if not todo:
        _drop_progress(context, allotment)
        return None
    base = _base_document(dataset, config, options, context.provenance, n_queries, device, decided.fingerprint)
    if allotment is not None:
        base.update(estimated_build_s=allotment.build_seconds(), budget_note=allotment.note(),
                    warmup_queries=None if skipping else allotment.sizing.warmup)
    planned = PlannedBuild(dataset, config, todo, base, n_queries, device, indexes, allotment,
                           allotment.sizing.warmup if allotment is not None else WARMUP_QUERIES)
    if skipping:
        _write_skipped(planned, summary, context.report)
        _drop_progress(context, allotment)
        return None
    if n_queries < dataset.n_test:
        context.report(f"  note: {config.entry} runs on the first {n_queries} of {dataset.n_test} test queries")
    return planned


def _supersede(context: RunContext, config: BuildConfig, stale: list[Path]) -> None:
    """Move the stale records about to be replaced into `superseded/` beside them, and say where."""
    moved = [records.supersede(path) for path in dict.fromkeys(stale) if path.exists()]
    if context.plan is not None:
        for path in stale:
            context.plan.seen.forget(path)
    context.summary.superseded += moved
    if moved:
        context.report(f"  {len(moved)} stale record(s) of {config.entry} (made by code that changed since) moved to "
                       f"{moved[0].parent}; recomputing them")


def _drop_progress(context: RunContext, allotment: Allotment | None) -> None:
    if allotment is not None and context.progress is not None:
        context.progress.drop(allotment)


def _drop(path: Path) -> None:
    """Remove the record at `path` (a `skipped` one giving way to a record on fewer queries)."""
    path.unlink(missing_ok=True)
    path.with_suffix(".h5").unlink(missing_ok=True)


class Recorder:
    """Turns the events of one build configuration into records, one as each event arrives,
    so that a crash later loses nothing written here. Every executor feeds one.

    A query configuration is recorded once: an event for one already recorded (a retried
    task repeating itself) is ignored, and a build failure fails only those not recorded.
    Each record carries the plan's estimate beside the seconds it took (from the previous
    event of this configuration to its own; `at` is when an event arrived, default now).
    """

    def __init__(self, planned: PlannedBuild, summary: RunSummary, report: Callable[[str], None] = tqdm.write,
                 progress: Progress | None = None, slot: int = 0, started: bool = True) -> None:
        self.planned, self.summary, self.report, self.progress = planned, summary, report, progress
        self.build: dict[str, Any] = {}
        self.recorded: set[int] = set()
        self.last = time.monotonic()
        if started:
            self.begin(range(len(planned.todo)), slot)

    def begin(self, positions: Sequence[int], slot: int = 0) -> None:
        """The worker started on `todo[positions]` now (a queued Ray task starts later than it
        was made; a retried one starts again on what is left): times count from here."""
        self.last = time.monotonic()
        planned = self.planned
        if self.progress is not None and planned.allotment is not None:
            self.progress.start(planned.allotment, [planned.index_of(p) for p in positions], slot)

    def set_node(self, facts: dict[str, Any]) -> None:
        """Merge the facts of the machine that measures (another node of a cluster) into the
        provenance of the records still to come."""
        base = self.planned.base
        base["provenance"] = {**base["provenance"], **facts}

    def handle(self, event: Event, at: float | None = None) -> None:
        config, todo = self.planned.config, self.planned.todo
        now = time.monotonic() if at is None else at
        took, self.last = now - self.last, now
        if isinstance(event, Built):
            self.build = event.metrics
            self._part(BUILD, took, True, now)
        elif isinstance(event, (BuildFailed, QueryFailed)) and event.status == "interrupted":
            self.report(f"  STOPPED {config.entry}: {event.reason} (no record written; the next run computes it)")
        elif isinstance(event, BuildFailed):
            what = "" if event.status == "skipped" else " to build"
            self.report(f"  {_failure_word(event.status)}{what} {config.entry} {config.build_params}: {event.reason}")
            for index in range(len(todo)):
                self._failure(index, event.reason, event.status, None)
        elif isinstance(event, QueryFailed):
            if event.index not in self.recorded:
                self.report(f"  {_failure_word(event.status)} {config.entry} {todo[event.index].params}: {event.reason}")
            self._failure(event.index, event.reason, event.status, took)
            self._part(self.planned.index_of(event.index), took, False, now)
        elif isinstance(event, QueryDone) and event.index not in self.recorded:
            self.recorded.add(event.index)
            timing = {"estimated_s": self.planned.estimated_s(event.index), "measured_s": took}
            _write_success(todo[event.index], self.planned.base, self.build, event, self.summary, self.report, timing)
            self._part(self.planned.index_of(event.index), took, True, now)

    def close(self) -> None:
        """The configuration's events are over (its progress counts whatever did not report)."""
        if self.progress is not None and self.planned.allotment is not None:
            self.progress.finish(self.planned.allotment)

    def _part(self, part: Any, took: float, learn: bool, at: float) -> None:
        if self.progress is not None and self.planned.allotment is not None:
            self.progress.part_done(self.planned.allotment, part, took, learn, at)

    def _failure(self, index: int, reason: str, status: str, took: float | None) -> None:
        if index not in self.recorded:
            self.recorded.add(index)
            timing = {"estimated_s": self.planned.estimated_s(index), "measured_s": took}
            _write_failure(self.planned.todo[index], self.planned.base, reason, status, self.summary, timing)


def _failure_word(status: str) -> str:
    return {"timeout": "TIMEOUT", "skipped": "SKIPPED"}.get(status, "FAILED")


def _write_success(
    query: Query, base: dict[str, Any], build: dict[str, Any], event: QueryDone, summary: RunSummary,
    report: Callable[[str], None], timing: dict[str, Any] | None = None,
) -> None:
    label = f"{event.label} {axis_tags(query.batch_size, query.threads)}".strip()
    document = records.new_document(**{
        **base, **event.document, **(timing or {}), **_axes(query), "key": query.key, "label": label,
        "metrics": {**build, **event.document["metrics"]}, "provenance": {**base["provenance"], "finished": now_iso()},
    })
    summary.written.append(records.write_record(query.path.parent, query.stem, document, event.arrays))
    m = document["metrics"]
    report(f"  {label:<60} recall@1 {m['recall_at_1']:.4f}  {_speed(document['mode'], m)}")


def _speed(mode: str, metrics: dict[str, Any]) -> str:
    """How fast, as the mode measures it: one query at a time is about latency (its median
    and tail), a batch about throughput (q/s)."""
    if mode == "single" and metrics.get("latency_p50_s") is not None:
        return f"p50 {_ms(metrics['latency_p50_s'])}  p99 {_ms(metrics.get('latency_p99_s'))}"
    return f"{metrics['qps']:>10.1f} q/s"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:>8.3f} ms"


def _write_failure(
    query: Query, base: dict[str, Any], reason: str, status: str, summary: RunSummary, timing: dict[str, Any] | None = None,
) -> None:
    document = records.new_document(**{
        **base, **(timing or {}), **_axes(query), "status": status, "error": reason, "query_params": query.params,
        "key": query.key,
        "provenance": {**base["provenance"], "finished": now_iso()},
    })
    target = summary.budget_skipped if status == "skipped" else summary.failed
    target.append(records.write_record(query.path.parent, query.stem, document, {}))


def _axes(query: Query) -> dict[str, Any]:
    """The record fields of a query configuration's axes (`harness.plan.axes`)."""
    return {"batch_size": query.batch_size, "mode": mode_of(query.batch_size), "threads": query.threads}


def _write_skipped(planned: PlannedBuild, summary: RunSummary, report: Callable[[str], None]) -> None:
    """A `skipped` record for each query configuration of a build that does not fit its budget."""
    reason = planned.base.get("budget_note") or "skipped: does not fit the budget"
    report(f"  SKIPPED {planned.config.entry} {planned.config.build_params}: {reason}")
    for position, query in enumerate(planned.todo):
        if _holds_a_result(query.path):  # --force under a budget: a whole record is kept, never replaced by a placeholder
            continue
        _write_failure(query, planned.base, reason, "skipped", summary, {"estimated_s": planned.estimated_s(position)})


def _holds_a_result(path: Path) -> bool:
    """Whether `path` holds a record worth more than a `skipped` one: a whole ok record, or one
    of a newer harness (left alone whatever happens)."""
    if not path.exists():
        return False
    try:
        return records.read_record(path, verify=False).get("status") == "ok"
    except records.UnknownSchema:
        return True
    except records.IncompleteRecord:
        return False


def _base_document(
    dataset: DatasetLike, config: BuildConfig, options: RunOptions, provenance: dict[str, Any], n_queries: int,
    device: str, fingerprint: str,
) -> dict[str, Any]:
    """What every record of `config` shares; `fingerprint` is its code's, taken in this process,
    where the plugins are loaded too (`algorithms.fingerprint`)."""
    return {
        "status": "ok",
        "error": None,
        "dataset": dataset.name,
        "distance": dataset.distance,
        "algorithm": config.entry,
        "adapter": config.spec.adapter.__name__,
        "label": config.entry,
        "build_params": config.build_params,
        "query_params": {},
        "mode": options.mode,
        "k": options.k,
        "n_queries": n_queries,
        "n_queries_total": dataset.n_test,
        "n_train": dataset.n_train,
        "dimension": dataset.dimension,
        "device": device,
        "threads": threads_of(config, options),
        "seed": options.seed,
        "runs": options.runs,
        "isolation": options.isolation,
        "executor": options.executor,
        "code_fingerprint": fingerprint,
        "metrics": {},
        "provenance": {**provenance, "parallel": options.parallel},
    }


# --- interruption ------------------------------------------------------------------------------


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (children stopped, summary printed) but exiting with 143."""


_SIGTERM_SEEN = False  # the exception may not survive the trip: Ray re-raises a plain KeyboardInterrupt


def interrupt_code(exc: BaseException) -> int:
    terminated = isinstance(exc, Terminated) or _SIGTERM_SEEN
    return 128 + (signal.SIGTERM if terminated else signal.SIGINT)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM raises Terminated so that `finally` blocks stop children."""
    global _SIGTERM_SEEN

    def raise_terminated(signum: int, frame: Any) -> None:
        global _SIGTERM_SEEN
        _SIGTERM_SEEN = True
        raise Terminated()

    _SIGTERM_SEEN = False
    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread (an embedding program): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
