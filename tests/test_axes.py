"""Batch size and threads as measurement axes: each value of --batch-size and --threads is its
own measurement and record (harness.plan.axes), measured as asked."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from algorithms import registry
from algorithms.base import Adapter, SearchStats
from algorithms.bruteforce import BruteForce
from algorithms.faiss_indexes import FaissIVF
from harness import records
from harness.cli import run_parser
from harness.data.loader import open_dataset
from harness.errors import ConfigError
from harness.measure.job import MeasureOptions
from harness.measure.measure import run_query_config
from harness.plan import sweeps
from harness.plan.axes import with_axes
from harness.plan.cost import DEFAULT_RATES, estimate_config, rates_for
from harness.plan.options import RunOptions
from harness.plan.plan import make_plan
from harness.report.plots import plot_all
from harness.run import provenance
from harness.run.executors import run_sweep
from records_factory import make_document


class _Counting(Adapter):
    """Exact search that notes each call's batch length and the threads the process runs with
    inside the call (no scope of its own: what the worker set for the job)."""

    def _fit(self, X):
        self._X = X
        self.calls: list[int] = []

    def _search(self, Q, k):
        import torch

        self.calls.append(len(Q))
        d = ((Q[:, None, :] - self._X[None]) ** 2).sum(-1)
        ids = np.argsort(d, 1, kind="stable")[:, :k]
        self._stats = SearchStats(iterations=np.full(len(Q), len(Q)), scalars={"torch_threads": torch.get_num_threads()})
        return ids, np.sqrt(np.take_along_axis(d, ids, 1))


class _TorchThreads(BruteForce):
    """The brute force, noting torch's thread count inside its own search scope."""

    def _search(self, Q, k):
        import torch

        seen = torch.get_num_threads()
        ids, dists = super()._search(Q, k)
        self._stats.scalars["torch_threads"] = seen
        return ids, dists


class _FaissThreads(FaissIVF):
    """FAISS IVF, noting OpenMP's thread count inside its own search scope."""

    def _search(self, Q, k):
        import faiss

        seen = faiss.omp_get_max_threads()
        ids, dists = super()._search(Q, k)
        self._stats.scalars["faiss_threads"] = seen
        return ids, dists


registry.add("test-axes-counting", _Counting, default_run=False)
registry.add("test-axes-torch", _TorchThreads, default_run=False)
registry.add("test-axes-faiss", _FaissThreads, default_run=False)


@pytest.fixture
def tiny(make_tiny_dataset):
    return open_dataset(str(make_tiny_dataset(n_train=300, n_test=25, dim=8)), progress=False)


def _config(name, build=None, query=None):
    return sweeps.BuildConfig(name, registry.get(name), dict(build or {}), list(query or [{}]))


def _run(dataset, tmp_path, configs, **values):
    options = RunOptions(results_dir=tmp_path, progress=False, runs=2, **values)
    lines: list[str] = []
    summary = run_sweep(dataset, configs, options, provenance.collect(1), report=lines.append)
    return summary, records.load_records(tmp_path, dataset.name), lines


@pytest.mark.slow
def test_a_record_for_every_combination(tiny, tmp_path):
    configs = [_config("test-axes-counting"), _config("faiss-ivf", {"nlist": 8}, [{"nprobe": 1}, {"nprobe": 4}])]
    summary, found, lines = _run(tiny, tmp_path, configs, threads=1, thread_counts=(1, 2), batch_sizes=(1, 7, None))
    assert not summary.failed
    combos = {(r["algorithm"], json.dumps(r["query_params"], sort_keys=True), r["batch_size"], r["threads"])
              for r in found}
    assert len(found) == len(combos) == (1 + 2) * 3 * 2
    assert {(b, t) for _, _, b, t in combos} == {(b, t) for b in (1, 7, None) for t in (1, 2)}
    assert len({r["key"] for r in found}) == len(found)
    for r in found:
        assert r["mode"] == ("single" if r["batch_size"] == 1 else "batch")
        assert ("b=7" in r["label"]) == (r["batch_size"] == 7) and ("t=2" in r["label"]) == (r["threads"] == 2)
        # the thread count is in the key, not the file name: records made before it was an axis keep their paths
        assert not any(part.startswith("t=") for part in Path(r["_path"]).stem.split("__")[0].split("_"))
    # the plan lists each build configuration at each thread count, with its batch sizes
    plan = [line for line in lines if "faiss-ivf(nlist=8)" in line and "25/25" in line]
    assert len(plan) == 2 and any("t=2" in line for line in plan) and all("b=1,7,all" in line for line in plan)
    # a rerun reuses every one of them
    again, _, _ = _run(tiny, tmp_path, configs, threads=1, thread_counts=(1, 2), batch_sizes=(1, 7, None))
    assert not again.written and len(again.reused) == len(found)


def test_batches_cut_the_set_and_answer_as_one_call(tiny):
    adapter = registry.get("test-axes-counting").make(threads=1)
    adapter.fit(tiny.train)
    options = MeasureOptions(k=5, runs=2)
    whole, whole_arrays = run_query_config(tiny, adapter, {}, options, 25, warmup_queries=3, batch_size=None)
    adapter.calls.clear()
    cut, cut_arrays = run_query_config(tiny, adapter, {}, options, 25, warmup_queries=3, batch_size=7)
    assert adapter.calls == [3] + [7, 7, 7, 4] * 2  # the warm-up, then each run: three whole batches, a short one
    assert cut["batch_size"] == 7 and whole["batch_size"] is None
    np.testing.assert_array_equal(cut_arrays["ids"], whole_arrays["ids"])
    np.testing.assert_array_equal(cut_arrays["distances"], whole_arrays["distances"])
    assert cut_arrays["batch_latencies"].shape == (2 * 4,) and (cut_arrays["batch_latencies"] > 0).all()
    assert cut["metrics"]["batch_latency_p50_s"] > 0 and "batch_latencies" not in whole_arrays
    assert whole["metrics"]["batch_latency_p50_s"] is None
    # the stats cover every query, each from its own batch
    np.testing.assert_array_equal(cut_arrays["iterations"], [7] * 21 + [4] * 4)
    # q/s is the queries over each run's whole wall time
    assert cut["metrics"]["qps_runs"] == pytest.approx([25 / w for w in cut["metrics"]["batch_wall_s"]])


@pytest.mark.slow
def test_threads_are_applied_inside_the_measurement(tiny, tmp_path):
    configs = [_config("test-axes-counting"), _config("test-axes-torch"),
               _config("test-axes-faiss", {"nlist": 8}, [{"nprobe": 2}])]
    summary, found, _ = _run(tiny, tmp_path, configs, threads=1, thread_counts=(2, 1), batch_sizes=(None, 5))
    assert not summary.failed and len(found) == 3 * 2 * 2
    for r in found:
        seen = r["metrics"]["adapter_stats"]
        name = "faiss_threads" if r["algorithm"] == "test-axes-faiss" else "torch_threads"
        assert seen[name] == r["threads"], (r["algorithm"], r["threads"], seen)


def test_record_identity_differs_per_combination():
    base = ("alg", {"n": 1}, {"q": 2})
    keys = {
        records.record_key(*base, "batch", 10, 100, "cpu", threads, 0, size)
        for threads in (1, 2) for size in (None, 50, 100)
    } | {records.record_key(*base, "single", 10, 100, "cpu", threads, 0, 1) for threads in (1, 2)}
    assert len(keys) == 8
    # the whole set and single mode keep the keys records had before batch sizes existed
    assert records.record_key(*base, "batch", 10, 100, "cpu", 2, 0, None) == records.record_key(*base, "batch", 10, 100, "cpu", 2)
    assert records.record_key(*base, "single", 10, 100, "cpu", 1, 0, 1) == records.record_key(*base, "single", 10, 100)
    with pytest.raises(ValueError):
        records.record_key(*base, "batch", 10, 100, "cpu", 1, 0, 1)


@pytest.mark.parametrize("mode, expected", [("batch", None), ("single", 1)])
def test_an_older_record_migrates_to_its_batch_size(tmp_path, mode, expected):
    document = make_document("d", "alg", {}, {"q": 1}, 0.9, 100.0, mode=mode)
    path = records.write_record(tmp_path, "stem", document, {"ids": np.zeros((2, 1), dtype=np.int64)})
    stored = json.loads(path.read_text())
    del stored["batch_size"]
    stored["schema"] = "gpnn-record/4"
    path.write_text(json.dumps(stored))
    read = records.read_record(path, verify=False)
    assert read["schema"] == records.SCHEMA and read["batch_size"] == expected


def _records(tmp_path, sizes, threads):
    out = []
    for size in sizes:
        for count in threads:
            for nprobe, qps in ((1, 1000.0), (4, 400.0)):
                mode = "single" if size == 1 else "batch"
                doc = make_document("d", "faiss-ivf", {"nlist": 8}, {"nprobe": nprobe}, 0.5 + nprobe / 10,
                                    qps * (size or 50) ** 0.3 * count, mode=mode, batch_size=size, threads=count)
                path = records.write_record(tmp_path / "r", f"{nprobe}-{size}-{count}", doc, {"ids": np.zeros((1, 1))})
                out.append(records.read_record(path))
    return out


@pytest.mark.parametrize("sizes, threads, drawn", [
    ((None,), (1,), set()),
    ((1, 10, None), (1,), {"qps-batch-size"}),
    ((None,), (1, 2), {"qps-threads"}),
    ((1, 10), (1, 2), {"qps-batch-size", "qps-threads"}),
])
def test_axis_figures_only_with_several_values(tmp_path, sizes, threads, drawn):
    infos = plot_all(_records(tmp_path, sizes, threads), tmp_path / "plots", "d", names=["qps-batch-size", "qps-threads"])
    axis = {info.name: info for info in infos if info.name in ("qps-batch-size", "qps-threads")}
    assert set(axis) == drawn
    for info in axis.values():
        assert info.series and all(path.is_file() for path in info.paths)
        per_line = len(sizes) if info.name == "qps-batch-size" else len(threads)
        assert info.n_points == len(sizes) * len(threads) * 2 and per_line > 1


def test_cost_per_batch_size_and_thread_count(tiny):
    config = _config("bruteforce")
    rates = DEFAULT_RATES
    single, hundred, whole = (estimate_config(config, 10_000, 128, 10, rates, batch_sizes=[b]).per_query[0]
                              for b in (1, 100, None))
    assert single > hundred > whole
    assert estimate_config(config, 10_000, 128, 10, rates, mode="single").per_query[0] == single
    two = rates_for(rates, 2)
    assert two.matmul == pytest.approx(rates.matmul / 2) and two.scan == rates.scan and two.threads == 2
    options = RunOptions(threads=1, thread_counts=(1, 2), batch_sizes=(1, 100))
    plan = make_plan(tiny, with_axes([config], options), options, rates)
    estimates = [a.estimate for a in plan.allotments]
    assert len(estimates) == 2 and all(len(e.per_query) == 2 for e in estimates)
    assert estimates[1].per_query[1] < estimates[0].per_query[1]  # two threads, a product-bound batch


def test_options_from_the_command_line():
    parser = run_parser()
    args = parser.parse_args(["--dataset", "x", "--batch-size", "1,100,all", "--threads", "1,2"])
    options = RunOptions.from_args(args, "cpu", ())
    assert options.batch_axis() == (1, 100, None) and options.thread_axis() == (1, 2) and options.threads == 1
    single = RunOptions.from_args(parser.parse_args(["--dataset", "x", "--mode", "single"]), "cpu", ())
    assert single.batch_axis() == (1,)
    with pytest.raises(ConfigError, match="--mode single"):
        RunOptions.from_args(parser.parse_args(["--dataset", "x", "--mode", "single", "--batch-size", "100"]),
                             "cpu", ())
    with pytest.raises(SystemExit):
        parser.parse_args(["--dataset", "x", "--batch-size", "0"])
