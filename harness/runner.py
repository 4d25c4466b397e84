"""The runner: build each index, sweep its query parameters, time, score, and write records.

Data flows one way: the dataset's arrays go into an adapter (fit, search); the runner times
the calls, scores the answers against the ground truth, and writes one record per query
configuration. It never plots; plots read the records.
"""
from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from algorithms.base import Adapter, SearchStats

from . import metrics, records
from .clocks import Timing, rss_bytes, timed
from .distances import row_distances
from .errors import HarnessError
from .loader import Dataset
from .provenance import now_iso
from .sweeps import BuildConfig

log = logging.getLogger("harness")

WARMUP_QUERIES = 100
NN_TOLERANCE = 1e-3


@dataclass
class RunOptions:
    """What the user chose on the command line, shared by every configuration of a run."""

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


@dataclass
class RunSummary:
    written: list[Path] = field(default_factory=list)
    reused: list[Path] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)


@dataclass
class _Query:
    """One query configuration of a build configuration, with its record identity."""

    params: dict[str, Any]
    key: str
    stem: str
    path: Path


def run_sweep(
    dataset: Dataset,
    configs: Sequence[BuildConfig],
    options: RunOptions,
    provenance: dict[str, Any],
    report: Callable[[str], None] = tqdm.write,
) -> RunSummary:
    """Run every build configuration in turn; returns what was written, reused and failed."""
    summary = RunSummary()
    bar = tqdm(configs, desc="sweep", unit="index", disable=not options.progress, leave=False)
    for config in bar:
        bar.set_postfix_str(config.entry)
        run_build_config(dataset, config, options, provenance, summary, report)
    bar.close()
    return summary


def query_count(dataset: Dataset, options: RunOptions, config: BuildConfig) -> int:
    """How many test queries this configuration runs on (a documented prefix of the test set)."""
    limits = [n for n in (options.queries, config.max_queries) if n is not None]
    return min([dataset.n_test, *limits])


def device_for(config: BuildConfig, requested: str) -> str:
    """The device an adapter runs on: the requested one when it supports it, else the CPU."""
    return requested if requested in config.spec.adapter.devices else "cpu"


def _plan(dataset: Dataset, config: BuildConfig, options: RunOptions, n_queries: int, device: str) -> list[_Query]:
    directory = records.record_dir(options.results_dir, dataset.name, config.entry)
    plan = []
    for params in config.query_params:
        key = records.record_key(
            config.entry, config.build_params, params, options.mode, options.k, n_queries, device, options.threads
        )
        stem = records.record_stem(config.entry, config.build_params, params, key)
        plan.append(_Query(params, key, stem, directory / f"{stem}.json"))
    return plan


def _reusable(query: _Query, force: bool) -> bool:
    if force or not query.path.exists():
        return False
    try:
        return records.read_record(query.path).get("status") == "ok"
    except records.IncompleteRecord as exc:
        log.warning("ignoring incomplete record (it will be recomputed): %s", exc)
        return False


def run_build_config(
    dataset: Dataset,
    config: BuildConfig,
    options: RunOptions,
    provenance: dict[str, Any],
    summary: RunSummary,
    report: Callable[[str], None] = tqdm.write,
) -> None:
    """Build one index, then run and record each of its query configurations not yet on disk."""
    n_queries = query_count(dataset, options, config)
    device = device_for(config, options.device)
    plan = _plan(dataset, config, options, n_queries, device)
    todo = [q for q in plan if not _reusable(q, options.force)]
    summary.reused.extend(q.path for q in plan if q not in todo)
    if not todo:
        return
    if n_queries < dataset.n_test:
        report(f"  note: {config.entry} runs on the first {n_queries} of {dataset.n_test} test queries")
    base = _base_document(dataset, config, options, provenance, n_queries, device)
    try:
        adapter, build = _build(dataset, config, options, device)
    except Exception as exc:  # noqa: BLE001 - any adapter failure becomes a failed record
        reason = _reason(exc)
        report(f"  FAILED to build {config.entry} {config.build_params}: {reason}")
        for query in todo:
            _write_failure(query, base, reason, summary)
        return
    for query in todo:
        try:
            document, arrays = run_query_config(dataset, adapter, query.params, options, n_queries)
        except HarnessError:
            raise
        except Exception as exc:  # noqa: BLE001
            reason = _reason(exc)
            report(f"  FAILED {config.entry} {query.params}: {reason}")
            _write_failure(query, {**base, "build": build}, reason, summary)
            continue
        document = {**base, **document, "key": query.key, "label": adapter.label}
        document["metrics"] = {**build, **document["metrics"]}
        document["provenance"] = {**base["provenance"], "finished": now_iso()}
        summary.written.append(records.write_record(query.path.parent, query.stem, document, arrays))
        m = document["metrics"]
        report(f"  {adapter.label:<60} recall@1 {m['recall_at_1']:.4f}  {m['qps']:>10.1f} q/s")
    del adapter
    gc.collect()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _base_document(
    dataset: Dataset, config: BuildConfig, options: RunOptions, provenance: dict[str, Any], n_queries: int, device: str
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
        "metrics": {},
        "provenance": provenance,
    }


def _write_failure(query: _Query, base: dict[str, Any], reason: str, summary: RunSummary) -> None:
    document = {**base, "status": "failed", "error": reason, "query_params": query.params, "key": query.key}
    document.pop("build", None)
    summary.failed.append(records.write_record(query.path.parent, query.stem, document, {}))


def _build(dataset: Dataset, config: BuildConfig, options: RunOptions, device: str) -> tuple[Adapter, dict[str, Any]]:
    """Construct and fit the adapter; returns it with the build metrics."""
    adapter = config.spec.make(device=device, threads=options.threads, seed=options.seed, **config.build_params)
    gc.collect()
    rss_before = rss_bytes()
    _, timing = timed(lambda: adapter.fit(dataset.train), device)
    rss_after = rss_bytes()
    growth = rss_after - rss_before if rss_before is not None and rss_after is not None else None
    reported = adapter.index_bytes()
    return adapter, {
        "build_s": timing.wall_s,
        "build_cpu_s": timing.cpu_s,
        "build_gpu_s": timing.gpu_s,
        "index_bytes": reported if reported is not None else growth,
        "build_rss_bytes": growth,
    }


def run_query_config(
    dataset: Dataset, adapter: Adapter, query_params: dict[str, Any], options: RunOptions, n_queries: int
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Warm up, time `options.runs` repetitions, score: the record's query part and its arrays."""
    adapter.set_query_params(**query_params)
    Q = dataset.test[:n_queries]
    k = options.k
    adapter.search(Q[: min(n_queries, WARMUP_QUERIES)], k)
    if options.mode == "single":
        timings, ids, stats, latencies = _single_runs(adapter, Q, k, options)
    else:
        timings, ids, stats = _batch_runs(adapter, Q, k, options)
        latencies = None
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
    )
    if stats.scalars:
        scored["adapter_stats"] = dict(stats.scalars)
    for name, value in (("iterations", stats.iterations), ("dist_comps", stats.dist_comps), ("latencies", latencies)):
        if value is not None:
            arrays[name] = np.asarray(value)
    for name, value in stats.extra.items():
        if name != "positions":
            arrays[name] = np.asarray(value)
    return {"query_params": adapter.query_values, "metrics": scored}, arrays


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
    nearest = dataset.train[true_ids[:, 0]].astype(np.float64)
    gap = np.linalg.norm(np.asarray(positions, dtype=np.float64) - nearest, axis=1)
    arrays["position_to_true_nn"] = gap
    return {"converged_onto_nn_rate": float((gap < NN_TOLERANCE).mean()), "position_to_true_nn_median": float(np.median(gap))}


def _batch_runs(
    adapter: Adapter, Q: np.ndarray, k: int, options: RunOptions
) -> tuple[list[Timing], np.ndarray, SearchStats]:
    timings = []
    ids = np.empty((0, k), dtype=np.int64)
    for _ in range(options.runs):
        (ids, _), timing = timed(lambda: adapter.search(Q, k), adapter.device)
        timings.append(timing)
    return timings, ids, adapter.stats()


def _single_runs(
    adapter: Adapter, Q: np.ndarray, k: int, options: RunOptions
) -> tuple[list[Timing], np.ndarray, SearchStats, np.ndarray]:
    """Queries one at a time: each repetition is timed as a whole (throughput) and per query."""
    timings, latencies = [], np.empty((options.runs, len(Q)))
    collected: list[SearchStats] = []
    ids = np.empty((len(Q), k), dtype=np.int64)
    for run in range(options.runs):
        collected = []

        def loop() -> None:
            for i in range(len(Q)):
                (ids[i], _), t = timed(lambda: adapter.search(Q[i : i + 1], k), adapter.device)
                latencies[run, i] = t.wall_s
                collected.append(adapter.stats())

        timings.append(timed(loop, adapter.device)[1])
    return timings, ids.copy(), _concat_stats(collected), latencies.reshape(-1)


def _concat_stats(parts: list[SearchStats]) -> SearchStats:
    def cat(values: list[np.ndarray | None]) -> np.ndarray | None:
        return None if not values or any(v is None for v in values) else np.concatenate([np.atleast_1d(v) for v in values])

    extra_keys = set(parts[0].extra) if parts else set()
    return SearchStats(
        iterations=cat([p.iterations for p in parts]),
        dist_comps=cat([p.dist_comps for p in parts]),
        extra={key: np.concatenate([np.atleast_1d(p.extra[key]) for p in parts]) for key in extra_keys},
        scalars=dict(parts[-1].scalars) if parts else {},
    )
