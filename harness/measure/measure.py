"""Measuring one build configuration: build the index, run its query configurations, score.

This is the only part of a run that touches an adapter. It reports what happened as a stream
of events (`Built`, `BuildFailed`, `QueryDone`, `QueryFailed`) instead of writing records, so
that the same code runs in the harness's own process (`--workers 0`), in a child process
(`--workers N`, see `harness.run.isolation`) and in a Ray task (`--ray`, see
`harness.run.ray_executor`), where each event is sent to the parent or driver as soon as it
exists. Records are written by whoever consumes the events: the runner, always in the
parent process.
"""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from algorithms.base import Adapter, SearchStats, validate_params
from algorithms.registry import AlgorithmSpec
from harness.data.distances import row_distances
from harness.data.loader import Dataset
from harness.measure import metrics
from harness.measure.clocks import QUERY_CLOCK, QUERY_CLOCK_S, Timing, peak_rss_during, rss_bytes, timed
from harness.measure.job import BuildJob, Deadline, MeasureOptions

if TYPE_CHECKING:
    pass

WARMUP_QUERIES = 100
NN_TOLERANCE = 1e-3


@dataclass
class Built:
    """The index is built; `metrics` holds build time, CPU time and index memory."""

    metrics: dict[str, Any]


@dataclass
class BuildFailed:
    """The index could not be built: every query configuration of it fails with `reason`
    (`status` as for QueryFailed)."""

    reason: str
    status: str = "failed"


@dataclass
class QueryDone:
    """Query configuration `index` (of the ones asked for) finished: the record's content."""

    index: int
    document: dict[str, Any]
    arrays: dict[str, np.ndarray]
    label: str


@dataclass
class QueryFailed:
    """Query configuration `index` did not finish: `status` failed or timeout (a record says
    so), or interrupted (its process was stopped from outside: no record, computed next run)."""

    index: int
    reason: str
    status: str = "failed"


Event = Built | BuildFailed | QueryDone | QueryFailed


def reason_of(exc: BaseException) -> str:
    """The one-line failure reason stored in a record: exception type and message."""
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def build_events(dataset: Dataset, spec: AlgorithmSpec, job: BuildJob, started: float | None = None) -> Iterator[Event]:
    """Build the index of `job` with the adapter of `spec`, then run each of its query
    configurations on it, as events.

    An exception of an adapter becomes a failure event and the next configuration goes on;
    a crash of the process itself cannot be caught here (that is what isolation is for).
    Under a deadline (`job.deadline`, counted from `started`, default now), a query
    configuration expected to end past it is not started: it is skipped, saying why.
    """
    options, n_queries = job.options, job.n_queries
    clock = _JobClock(job.deadline, time.monotonic() if started is None else started)
    try:
        adapter, build = build_index(dataset, spec, job.build_params, options, job.device)
    except Exception as exc:  # noqa: BLE001 - any adapter failure becomes a failed record
        yield BuildFailed(reason_of(exc))
        return
    yield Built(build)
    for index, params in enumerate(job.query_params):
        late = clock.too_late(index)
        if late is not None:
            yield QueryFailed(index, late, "skipped")
            continue
        began = time.monotonic()
        batch_size = job.batch_sizes[index] if job.batch_sizes else default_batch(options)
        try:
            document, arrays = run_query_config(dataset, adapter, params, options, n_queries, job.warmup_queries,
                                                batch_size)
        except Exception as exc:  # noqa: BLE001
            yield QueryFailed(index, reason_of(exc))
            continue
        clock.took(index, time.monotonic() - began)
        yield QueryDone(index, document, arrays, adapter.label)
    del adapter
    gc.collect()


class _JobClock:
    """A build job's time against its deadline: whether the next query configuration can end
    before it, by the plan's estimate corrected by this job's measured-to-estimated ratio."""

    def __init__(self, deadline: Deadline | None, started: float) -> None:
        self.deadline, self.started = deadline, started
        self.estimated = self.measured = 0.0

    def took(self, index: int, seconds: float) -> None:
        if self.deadline is not None and index < len(self.deadline.estimates_s):
            self.estimated += self.deadline.estimates_s[index]
            self.measured += seconds

    def too_late(self, index: int) -> str | None:
        """Why query configuration `index` is not started (None: it fits, or no deadline)."""
        deadline = self.deadline
        if deadline is None:
            return None
        ratio = self.measured / self.estimated if self.estimated > 0 else 1.0
        expected = deadline.estimates_s[index] * ratio if index < len(deadline.estimates_s) else 0.0
        elapsed = time.monotonic() - self.started
        if elapsed + expected <= deadline.seconds:
            return None
        return deadline.not_started(elapsed, expected)


def build_index(
    dataset: Dataset, spec: AlgorithmSpec, build_params: dict[str, Any], options: MeasureOptions, device: str
) -> tuple[Adapter, dict[str, Any]]:
    """Construct and fit the adapter; returns it with the build metrics."""
    adapter = spec.make(device=device, threads=options.threads, seed=options.seed, metric=dataset.distance, **build_params)
    gc.collect()
    rss_before = rss_bytes()
    (_, timing), peak = peak_rss_during(lambda: timed(lambda: adapter.fit(dataset.train), device))
    rss_after = rss_bytes()
    growth = rss_after - rss_before if rss_before is not None and rss_after is not None else None
    reported = adapter.index_bytes()
    return adapter, {
        "build_s": timing.wall_s,
        "build_cpu_s": timing.cpu_s,
        "build_gpu_s": timing.gpu_s,
        "index_bytes": reported if reported is not None else growth,
        "build_rss_bytes": growth,
        "build_peak_rss_bytes": peak,
    }


def default_batch(options: MeasureOptions) -> int | None:
    """The batch size of a job that names none: 1 in single mode, else the whole set (None)."""
    return 1 if options.mode == "single" else None


def run_query_config(
    dataset: Dataset, adapter: Adapter, query_params: dict[str, Any], options: MeasureOptions, n_queries: int,
    warmup_queries: int = WARMUP_QUERIES, batch_size: int | None | str = "mode",
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Warm up on the first `warmup_queries` queries (at least one), time `options.runs`
    repetitions, score: the record's query part and its arrays.

    `batch_size` is how many queries each timed search call gets: None the whole set in one
    call, 1 one query per call (`search_each`, each query's latency timed alone), b > 1 the
    set cut into consecutive batches of b (the last one shorter), each batch one `search`
    call timed alone (its latency is the batch's). Default: `options.mode`'s (1 or None).
    Q/s is always the queries over a repetition's whole wall time.
    """
    size = default_batch(options) if batch_size == "mode" else batch_size
    adapter.set_query_params(**query_params)
    Q = dataset.test[:n_queries]
    k = options.k
    batch_latencies: list[np.ndarray] = []

    def search() -> tuple[list[Timing], np.ndarray, SearchStats, np.ndarray | None]:
        warmup = Q[: max(1, min(n_queries, warmup_queries))]
        if size == 1:
            adapter.search_each(warmup, k, QUERY_CLOCK)  # warms the very path that is timed
            return _single_runs(adapter, Q, k, options.runs)
        if size is not None and size < n_queries:
            _search_batches(adapter, warmup, k, size)  # warms the very path that is timed
            timings, ids, stats, took = _batched_runs(adapter, Q, k, options.runs, size)
            batch_latencies.append(took)
            return timings, ids, stats, None
        adapter.search(warmup, k)
        return (*_batch_runs(adapter, Q, k, options.runs), None)

    (timings, ids, stats, latencies), peak = peak_rss_during(search)
    check_answer(adapter.name, ids)
    distances = row_distances(dataset.distance, Q, dataset.train, ids)
    true_ids, true_dist = dataset.neighbors[:n_queries], dataset.distances[:n_queries]
    arrays: dict[str, np.ndarray] = {"ids": ids, "distances": distances}
    scored = metrics.merge(
        metrics.quality(ids, distances, true_ids, true_dist, k),
        metrics.throughput(
            n_queries,
            [t.wall_s for t in timings],
            [t.cpu_s for t in timings],
            [t.gpu_s for t in timings] if timings[0].gpu_s is not None else None,
        ),
        metrics.latency_percentiles(latencies),
        metrics.per_query_summary(stats.iterations, stats.dist_comps),
        _position_metrics(dataset, stats, true_ids, arrays),
        {"query_peak_rss_bytes": peak},
        metrics.batch_latency_percentiles(batch_latencies[0] if batch_latencies else None),
    )
    if stats.scalars:
        scored["adapter_stats"] = dict(stats.scalars)
    if batch_latencies:
        arrays["batch_latencies"] = batch_latencies[0]
    for name, value in (("iterations", stats.iterations), ("dist_comps", stats.dist_comps), ("latencies", latencies)):
        if value is not None:
            arrays[name] = np.asarray(value)
    for name, value in stats.extra.items():
        if name != "positions":
            arrays[name] = np.asarray(value)
    document = {"query_params": adapter.query_values, "batch_size": size, "mode": "single" if size == 1 else "batch"}
    return {**document, **control_fields(adapter), "metrics": scored}, arrays


def control_fields(adapter: Adapter) -> dict[str, Any]:
    """How a record relates to its controls: `role` ("control", "method" or None); for a control
    its own switch; for a method every control's switch and complete query parameters
    (`controls`, so a report can pair them), the primary one also as `control_switch` and
    `control_query_params`."""
    cls = type(adapter)
    if not cls.controls:
        return {"role": None}
    query = adapter.query_values
    own = cls.control_matching(query)
    if own is not None:
        return {"role": "control", "control_switch": adapter.describe_switch(own.switch), "revision": adapter.revision}
    controls = [
        {"switch": adapter.describe_switch(control.switch),
         "query_params": validate_params(adapter.name, adapter.query_params, control_query, "query")}
        for control, control_query in cls.controls_of(query)
    ]
    primary = controls[0]
    return {"role": "method", "control_switch": primary["switch"], "revision": adapter.revision,
            "control_query_params": primary["query_params"], "controls": controls}


class InvalidAnswer(Exception):
    """An adapter returned an answer that cannot be scored honestly (its record fails)."""


def check_answer(algorithm: str, ids: np.ndarray) -> None:
    """Refuse an answer that lists one point twice for a query (-1 padding aside).

    ann-benchmarks refuses such answers too: a repeated true neighbour would otherwise look
    like several hits (`[5, 5]` for the true `[5, 7]` would score recall@2 = 1.0).
    """
    repeat = metrics.repeated_id(ids)
    if repeat is not None:
        row, point = repeat
        raise InvalidAnswer(
            f"{algorithm} returned id {point} more than once for query row {row}; "
            "an answer must list distinct points (pad with -1 where fewer than k exist)"
        )


def _position_metrics(
    dataset: Dataset, stats: SearchStats, true_ids: np.ndarray, arrays: dict[str, np.ndarray]
) -> dict[str, float]:
    """For methods that move a point (the potential method): how close it ended to the true NN.

    The converged-onto-NN rate is the seed note's own measure: the fraction of queries whose
    final position lies within 1e-3 (dataset units) of the query's true nearest neighbour.
    """
    positions = stats.extra.get("positions")
    if positions is None:
        return {}
    gap = metrics.position_to_true_nn(positions, dataset.train, true_ids)
    arrays["position_to_true_nn"] = gap
    return {"converged_onto_nn_rate": float((gap < NN_TOLERANCE).mean()), "position_to_true_nn_median": float(np.median(gap))}


def _batch_runs(adapter: Adapter, Q: np.ndarray, k: int, runs: int) -> tuple[list[Timing], np.ndarray, SearchStats]:
    timings = []
    ids = np.empty((0, k), dtype=np.int64)
    for _ in range(runs):
        (ids, _), timing = timed(lambda: adapter.search(Q, k), adapter.device)
        timings.append(timing)
    return timings, ids, adapter.stats()


def _search_batches(
    adapter: Adapter, Q: np.ndarray, k: int, size: int, clock: Any = None,
) -> tuple[np.ndarray, SearchStats, np.ndarray]:
    """Search Q in consecutive batches of `size` rows (the last one shorter), one `search` call
    each, each call alone between two readings of `clock` (QUERY_CLOCK units) when given.
    Returns the ids of all rows in order, the stats of all batches as one search's, and each
    batch's latency (int64 clock units; zeros without a clock)."""
    starts = range(0, len(Q), size)
    ids: list[np.ndarray] = []
    parts: list[SearchStats] = []
    took = np.zeros(len(starts), dtype=np.int64)
    for i, start in enumerate(starts):
        batch = Q[start:start + size]
        if clock is not None:
            began = clock()
            found, _ = adapter.search(batch, k)
            took[i] = clock() - began
        else:
            found, _ = adapter.search(batch, k)
        ids.append(found)
        parts.append(adapter.stats())
    sizes = [min(size, len(Q) - start) for start in starts]
    return np.concatenate(ids) if ids else np.empty((0, k), dtype=np.int64), SearchStats.concat(parts, sizes), took


def _batched_runs(
    adapter: Adapter, Q: np.ndarray, k: int, runs: int, size: int,
) -> tuple[list[Timing], np.ndarray, SearchStats, np.ndarray]:
    """`runs` repetitions of the set cut into batches of `size`: each repetition's whole loop is
    timed with every clock (its wall time gives the q/s), each batch alone by `QUERY_CLOCK`
    around its `search` call; batch latencies in seconds, runs x batches flattened."""
    timings: list[Timing] = []
    latencies: list[np.ndarray] = []
    ids = np.empty((len(Q), k), dtype=np.int64)
    stats = SearchStats()
    for _ in range(runs):
        (ids, stats, took), timing = timed(lambda: _search_batches(adapter, Q, k, size, QUERY_CLOCK), adapter.device)
        timings.append(timing)
        latencies.append(took * QUERY_CLOCK_S)
    return timings, ids, stats, np.concatenate(latencies)


def _single_runs(
    adapter: Adapter, Q: np.ndarray, k: int, runs: int
) -> tuple[list[Timing], np.ndarray, SearchStats, np.ndarray]:
    """Queries one per call (`Adapter.search_each`): each repetition's whole loop is timed with
    every clock (its wall time gives the q/s), each query alone by `QUERY_CLOCK` pairs around
    the adapter's bare call; latencies in seconds, runs x queries flattened. Per-configuration
    work (parameters, thread scopes, counters, distance roots) stays out of the per-query path.
    """
    timings: list[Timing] = []
    latencies = np.empty((runs, len(Q)))
    ids = np.empty((len(Q), k), dtype=np.int64)
    for run in range(runs):
        (ids, _, took), timing = timed(lambda: adapter.search_each(Q, k, QUERY_CLOCK), adapter.device)
        timings.append(timing)
        latencies[run] = took * QUERY_CLOCK_S
    return timings, ids, adapter.stats(), latencies.reshape(-1)
