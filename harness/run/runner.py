"""The runner: decide what to (re)compute, measure each build configuration, write records.

Data flows one way: the dataset goes into an adapter (fit, search), `harness.run.measure` times
the calls and scores the answers, and the runner writes one record per query configuration.
It never plots; plots read the records.

Each build configuration is measured either in this process (`isolation="none"`) or in a
child process (`isolation="process"`, `harness.run.isolation`), which turns a segfault, an
out-of-memory kill or a hang of an adapter into a failure record instead of the end of the
sweep; or as a Ray task (`harness.run.ray_executor`) on this machine or a cluster. Every way, the
decision of what to compute is taken here (`plan_build_config`), the events come back here,
and records are written by this process only (`Recorder`), atomically, one per finished
query configuration, as soon as it is finished.
"""
from __future__ import annotations

import contextlib
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from tqdm import tqdm

from harness import records
from harness.data.loader import DatasetLike
from harness.run.measure import BuildFailed, Built, Event, QueryDone, QueryFailed, run_query_config
from harness.run.options import BuildJob, RunOptions, job_for
from harness.run.provenance import now_iso
from harness.run.sweeps import BuildConfig

log = logging.getLogger("harness")

__all__ = [
    "PlannedBuild", "Recorder", "RunContext", "RunSummary", "Terminated", "interrupt_code", "plan_build_config",
    "query_count", "run_build_config", "run_builds", "run_query_config", "sigterm_as_interrupt",
]



@dataclass
class RunSummary:
    """Record paths by what this run did with them; filled as the run goes (read on Ctrl-C too)."""

    written: list[Path] = field(default_factory=list)
    reused: list[Path] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


@dataclass
class _Query:
    """One query configuration of a build configuration, with its record identity."""

    params: dict[str, Any]
    key: str
    stem: str
    path: Path


@dataclass
class RunContext:
    """What every build configuration of a run shares: the dataset (or its reference), the
    options, the provenance every record carries, what was done so far, where lines go."""

    dataset: DatasetLike
    options: RunOptions
    provenance: dict[str, Any]
    summary: RunSummary = field(default_factory=lambda: RunSummary())
    report: Callable[[str], None] = tqdm.write


#: how a build job is run: a BuildJob and the dataset -> its events (an executor's `events`)
JobEvents = Callable[[BuildJob, DatasetLike], Iterator[Event]]


def run_builds(context: RunContext, configs: Sequence[BuildConfig], events: JobEvents) -> RunSummary:
    """Run every build configuration in turn through `events`; returns what was written,
    reused, failed, skipped (the context's summary, filled as the run goes)."""
    bar = tqdm(configs, desc="sweep", unit="index", disable=not context.options.progress, leave=False)
    try:
        for config in bar:
            bar.set_postfix_str(config.entry)
            run_build_config(context, config, events)
    finally:
        bar.close()
    return context.summary


def query_count(dataset: DatasetLike, options: RunOptions, config: BuildConfig) -> int:
    """How many test queries this configuration runs on (a documented prefix of the test set)."""
    limits = [n for n in (options.queries, config.max_queries) if n is not None]
    return min([dataset.n_test, *limits])


def device_for(config: BuildConfig, requested: str) -> str:
    """The device an adapter runs on: the requested one when it supports it, else the CPU."""
    return requested if requested in config.spec.adapter.devices else "cpu"


def _plan(dataset: DatasetLike, config: BuildConfig, options: RunOptions, n_queries: int, device: str) -> list[_Query]:
    directory = records.record_dir(options.results_dir, dataset.name, config.entry)
    plan = []
    for params in config.query_params:
        key = records.record_key(
            config.entry, config.build_params, params, options.mode, options.k, n_queries, device, options.threads,
            config.spec.adapter.revision,
        )
        stem = records.record_stem(config.entry, config.build_params, params, key)
        plan.append(_Query(params, key, stem, directory / f"{stem}.json"))
    return plan


def _decide(query: _Query, options: RunOptions) -> str:
    """'compute', 'reuse' (a whole ok record) or 'skip' (an earlier failure, kept unless retried)."""
    for leftover in records.leftover_temporaries(query.path.parent, query.stem):
        log.warning("removing a temporary file left by an interrupted run: %s", leftover)
        leftover.unlink(missing_ok=True)
    if options.force or not query.path.exists():
        return "compute"
    try:
        status = records.read_record(query.path).get("status")
    except records.IncompleteRecord as exc:
        log.warning("ignoring incomplete record (it will be recomputed): %s", exc)
        return "compute"
    except records.UnknownSchema as exc:
        log.warning("leaving a record of a newer harness as it is: %s", exc)
        return "skip"
    if status == "ok":
        return "reuse"
    return "compute" if options.retry_failed else "skip"


@dataclass
class PlannedBuild:
    """A build configuration with work left: the query configurations to compute, and the part
    of their records known before measuring. Made by the runner for every executor, so that
    reuse, skip and recompute are decided the same way wherever the measuring happens."""

    dataset: DatasetLike
    config: BuildConfig
    todo: list[_Query]
    base: dict[str, Any]
    n_queries: int
    device: str


def plan_build_config(context: RunContext, config: BuildConfig) -> PlannedBuild | None:
    """The query configurations of `config` not yet on disk (None: nothing to do); records to
    reuse or skip are noted in the context's summary."""
    dataset, options, summary = context.dataset, context.options, context.summary
    n_queries = query_count(dataset, options, config)
    device = device_for(config, options.device)
    todo = []
    for query in _plan(dataset, config, options, n_queries, device):
        decision = _decide(query, options)
        if decision == "compute":
            todo.append(query)
        else:
            (summary.reused if decision == "reuse" else summary.skipped).append(query.path)
    if not todo:
        return None
    if n_queries < dataset.n_test:
        context.report(f"  note: {config.entry} runs on the first {n_queries} of {dataset.n_test} test queries")
    base = _base_document(dataset, config, options, context.provenance, n_queries, device)
    return PlannedBuild(dataset, config, todo, base, n_queries, device)


def run_build_config(context: RunContext, config: BuildConfig, events: JobEvents) -> None:
    """Build one index, then run and record each of its query configurations not yet on disk."""
    planned = plan_build_config(context, config)
    if planned is None:
        return
    recorder = Recorder(planned, context.summary, context.report)
    job = job_for(planned.dataset, config, [q.params for q in planned.todo], context.options, planned.n_queries, planned.device)
    for event in events(job, planned.dataset):
        recorder.handle(event)


class Recorder:
    """Turns the events of one build configuration into records, one as each event arrives,
    so that a crash later loses nothing written here. Every executor feeds one.

    A query configuration is recorded once: an event for one already recorded (a retried
    task repeating itself) is ignored, and a build failure fails only those not recorded.
    """

    def __init__(self, planned: PlannedBuild, summary: RunSummary, report: Callable[[str], None] = tqdm.write) -> None:
        self.planned, self.summary, self.report = planned, summary, report
        self.build: dict[str, Any] = {}
        self.recorded: set[int] = set()

    def set_node(self, facts: dict[str, Any]) -> None:
        """Merge the facts of the machine that measures (another node of a cluster) into the
        provenance of the records still to come."""
        base = self.planned.base
        base["provenance"] = {**base["provenance"], **facts}

    def handle(self, event: Event) -> None:
        config, todo = self.planned.config, self.planned.todo
        if isinstance(event, Built):
            self.build = event.metrics
        elif isinstance(event, (BuildFailed, QueryFailed)) and event.status == "interrupted":
            self.report(f"  STOPPED {config.entry}: {event.reason} (no record written; the next run computes it)")
        elif isinstance(event, BuildFailed):
            self.report(f"  {_failure_word(event.status)} to build {config.entry} {config.build_params}: {event.reason}")
            for index in range(len(todo)):
                self._failure(index, event.reason, event.status)
        elif isinstance(event, QueryFailed):
            if event.index not in self.recorded:
                self.report(f"  {_failure_word(event.status)} {config.entry} {todo[event.index].params}: {event.reason}")
            self._failure(event.index, event.reason, event.status)
        elif isinstance(event, QueryDone) and event.index not in self.recorded:
            self.recorded.add(event.index)
            _write_success(todo[event.index], self.planned.base, self.build, event, self.summary, self.report)

    def _failure(self, index: int, reason: str, status: str) -> None:
        if index not in self.recorded:
            self.recorded.add(index)
            _write_failure(self.planned.todo[index], self.planned.base, reason, status, self.summary)


def _failure_word(status: str) -> str:
    return "TIMEOUT" if status == "timeout" else "FAILED"


def _write_success(
    query: _Query, base: dict[str, Any], build: dict[str, Any], event: QueryDone, summary: RunSummary,
    report: Callable[[str], None],
) -> None:
    document = records.new_document(**{
        **base, **event.document, "key": query.key, "label": event.label,
        "metrics": {**build, **event.document["metrics"]}, "provenance": {**base["provenance"], "finished": now_iso()},
    })
    summary.written.append(records.write_record(query.path.parent, query.stem, document, event.arrays))
    m = document["metrics"]
    report(f"  {event.label:<60} recall@1 {m['recall_at_1']:.4f}  {m['qps']:>10.1f} q/s")


def _write_failure(query: _Query, base: dict[str, Any], reason: str, status: str, summary: RunSummary) -> None:
    document = records.new_document(**{
        **base, "status": status, "error": reason, "query_params": query.params, "key": query.key,
        "provenance": {**base["provenance"], "finished": now_iso()},
    })
    summary.failed.append(records.write_record(query.path.parent, query.stem, document, {}))


def _base_document(
    dataset: DatasetLike, config: BuildConfig, options: RunOptions, provenance: dict[str, Any], n_queries: int, device: str
) -> dict[str, Any]:
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
        "threads": options.threads,
        "seed": options.seed,
        "runs": options.runs,
        "isolation": "process" if options.executor == "ray" else options.isolation,
        "executor": options.executor,
        "metrics": {},
        "provenance": provenance,
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
