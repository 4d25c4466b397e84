"""The runner end to end: builds, sweeps, scores, writes, reuses, and records failures."""
from __future__ import annotations

import re

import numpy as np
import pytest

from algorithms import registry
from algorithms.base import Adapter, Param, SearchStats
from harness import records
from harness.data.loader import open_dataset
from harness.plan import sweeps
from harness.run import provenance
from harness.plan.options import RunOptions
from harness.run.executors import run_sweep


class _Broken(Adapter):
    """Raises in search when asked to: a failing configuration must not stop the sweep."""

    query_params = {"explode": Param(bool, False)}

    def _fit(self, X):
        self._X = X

    def _search(self, Q, k):
        if self.query_values["explode"]:
            raise RuntimeError("boom")
        d = ((Q[:, None, :] - self._X[None]) ** 2).sum(-1)
        ids = np.argsort(d, 1)[:, :k]
        self._stats = SearchStats(
            iterations=np.arange(len(Q)), dist_comps=np.full(len(Q), len(self._X)),
            extra={"positions": self._X[ids[:, 0]]},
        )
        return ids, np.sqrt(np.take_along_axis(d, ids, 1))


class _BrokenBuild(_Broken):
    """Raises in fit."""

    def _fit(self, X):
        raise MemoryError("pretend the index did not fit")


registry.add("test-broken", _Broken)
registry.add("test-broken-build", _BrokenBuild)


def _run(dataset, results_dir, names, **option_values):
    entries = sweeps.default_entries(names)
    configs = sweeps.expand(entries, dataset.n_train)
    options = RunOptions(results_dir=results_dir, progress=False, runs=2, **option_values)
    lines: list[str] = []
    summary = run_sweep(dataset, configs, options, provenance.collect(1), report=lines.append)
    return summary, lines


@pytest.fixture
def tiny(make_tiny_dataset):
    return open_dataset(str(make_tiny_dataset(n_train=600, n_test=40, dim=8)), progress=False)


@pytest.mark.slow
def test_baselines_end_to_end(tiny, tmp_path):
    summary, _ = _run(tiny, tmp_path, ["bruteforce", "faiss-flat", "hnswlib"])
    assert not summary.failed and len(summary.written) == 2 + 12
    found = records.load_records(tmp_path, tiny.name)
    by_algo = {}
    for r in found:
        by_algo.setdefault(r["algorithm"], []).append(r)
        m = r["metrics"]
        assert r["status"] == "ok" and r["n_queries"] == 40 and r["k"] == 10
        assert len(m["qps_runs"]) == 2 and m["qps"] > 0 and m["build_s"] >= 0
        assert m["query_peak_rss_bytes"] > 10_000_000 and m["build_peak_rss_bytes"] > 10_000_000  # the whole process
        assert r["provenance"]["libraries"]["numpy"] and r["provenance"]["cpu_model"]
        arrays = records.load_arrays(r)
        assert arrays["ids"].shape == (40, 10) and arrays["distances"].dtype == np.float64
    for exact in ("bruteforce", "faiss-flat"):
        [r] = by_algo[exact]
        assert r["metrics"]["recall_at_1"] == 1.0 and r["metrics"]["recall_at_k"] == 1.0
    assert max(r["metrics"]["recall_at_1"] for r in by_algo["hnswlib"]) >= 0.99


@pytest.mark.slow
def test_rerun_reuses_and_force_recomputes(tiny, tmp_path):
    first, _ = _run(tiny, tmp_path, ["faiss-flat"])
    again, _ = _run(tiny, tmp_path, ["faiss-flat"])
    assert again.reused == first.written and not again.written
    forced, _ = _run(tiny, tmp_path, ["faiss-flat"], force=True)
    assert forced.written == first.written


@pytest.mark.slow
def test_incomplete_record_is_recomputed(tiny, tmp_path):
    [path] = _run(tiny, tmp_path, ["faiss-flat"])[0].written
    path.with_suffix(".h5").write_bytes(b"torn write")
    summary, _ = _run(tiny, tmp_path, ["faiss-flat"])
    assert summary.written == [path] and records.read_record(path)["status"] == "ok"


def test_failures_become_records_and_the_sweep_goes_on(tiny, tmp_path):
    entries = [
        sweeps.SweepEntry("test-broken", "test-broken", {}, {"explode": [False, True]}),
        sweeps.SweepEntry("test-broken-build", "test-broken-build", {}, {}),
    ]
    configs = sweeps.expand(entries, tiny.n_train)
    summary = run_sweep(tiny, configs, RunOptions(results_dir=tmp_path, progress=False), provenance.collect(1), report=lambda _: None)
    assert len(summary.written) == 1 and len(summary.failed) == 2
    failed = [records.read_record(p) for p in summary.failed]
    assert {f["status"] for f in failed} == {"failed"}
    assert any("RuntimeError: boom" in f["error"] for f in failed)
    assert any("MemoryError" in f["error"] for f in failed)


def test_per_query_stats_positions_and_query_subset(tiny, tmp_path):
    entries = [sweeps.SweepEntry("test-broken", "test-broken", {}, {}, max_queries=15)]
    configs = sweeps.expand(entries, tiny.n_train)
    lines: list[str] = []
    summary = run_sweep(tiny, configs, RunOptions(results_dir=tmp_path, progress=False, k=5), provenance.collect(1), report=lines.append)
    record = records.read_record(summary.written[0])
    assert record["n_queries"] == 15 and record["n_queries_total"] == 40
    assert any("first 15 of 40" in line for line in lines)
    m = record["metrics"]
    assert m["iterations_max"] == 14 and m["dist_comps_mean"] == tiny.n_train
    assert m["converged_onto_nn_rate"] == 1.0  # positions were the exact NN
    arrays = records.load_arrays(record)
    assert arrays["iterations"].shape == (15,) and "position_to_true_nn" in arrays


def test_single_mode_records_latencies(tiny, tmp_path):
    summary, _ = _run(tiny, tmp_path, ["faiss-flat"], mode="single", queries=10)
    record = records.read_record(summary.written[0])
    m = record["metrics"]
    assert record["mode"] == "single" and record["n_queries"] == 10
    assert 0 < m["latency_p50_s"] <= m["latency_p95_s"] <= m["latency_p99_s"]
    assert records.load_arrays(record)["latencies"].shape == (2 * 10,)
    assert m["recall_at_1"] == 1.0


def test_single_mode_lines_give_latency_percentiles_batch_lines_qps(tiny, tmp_path):
    """One query at a time is judged by its latency: the line printed per record says p50 and
    p99 (the record's own); a batch's line says q/s."""
    summary, lines = _run(tiny, tmp_path / "single", ["faiss-flat"], mode="single", queries=10)
    m = records.read_record(summary.written[0])["metrics"]
    [line] = [text for text in lines if "recall@1" in text]
    found = re.search(r"p50\s+([\d.]+) ms\s+p99\s+([\d.]+) ms", line)
    assert found and "q/s" not in line, line
    assert float(found[1]) == pytest.approx(m["latency_p50_s"] * 1e3, abs=1e-3)
    assert float(found[2]) == pytest.approx(m["latency_p99_s"] * 1e3, abs=1e-3)
    summary, lines = _run(tiny, tmp_path / "batch", ["faiss-flat"], queries=10)
    [line] = [text for text in lines if "recall@1" in text]
    assert re.search(r"[\d.]+ q/s$", line) and "p50" not in line, line


@pytest.mark.slow
def test_same_seed_same_ids(tiny, tmp_path):
    a, _ = _run(tiny, tmp_path / "a", ["hnswlib"], seed=7)
    b, _ = _run(tiny, tmp_path / "b", ["hnswlib"], seed=7)
    for pa, pb in zip(sorted(a.written), sorted(b.written)):
        ra, rb = records.read_record(pa), records.read_record(pb)
        assert ra["seed"] == 7
        assert np.array_equal(records.load_arrays(ra)["ids"], records.load_arrays(rb)["ids"])
        assert ra["metrics"]["recall_at_1"] == rb["metrics"]["recall_at_1"]


class _Repeats(Adapter):
    """Returns the exact nearest neighbour k times: recall must not be inflated by it."""

    def _fit(self, X):
        self._X = X

    def _search(self, Q, k):
        d = ((Q[:, None, :] - self._X[None]) ** 2).sum(-1)
        nearest = d.argmin(1)
        return np.repeat(nearest[:, None], k, 1), np.repeat(np.sqrt(d.min(1))[:, None], k, 1)


registry.add("test-repeats", _Repeats)


def test_an_answer_repeating_an_id_gets_a_failed_record_naming_row_and_id(tiny, tmp_path):
    summary, lines = _run(tiny, tmp_path, ["test-repeats"], k=5)
    [path] = summary.failed
    record = records.read_record(path)
    assert record["status"] == "failed"
    assert "query row 0" in record["error"] and "more than once" in record["error"]
    assert "returned id" in record["error"]


def test_potential_records_pair_with_their_controls(tiny, tmp_path):
    from harness.report.page import write_report
    from harness.report.summary import control_rows, results_table, series_name

    summary, _ = _run(tiny, tmp_path, ["potential-gaussian"])
    found = [records.read_record(p) for p in summary.written]
    methods = [r for r in found if r["role"] == "method"]
    controls = [r for r in found if r["role"] == "control"]
    assert len(methods) == 4 and len(controls) == 4  # one per beta: beta shapes the pool's ranking
    assert {series_name(r) for r in controls} == {"potential-gaussian [ascent=none]"}
    rows = control_rows(found)
    assert len(rows) == 4 and all(row["control_recall_at_1"] is not None for row in rows)
    for row in rows:
        method = next(r for r in methods if r["label"] == row["label"])
        control = next(r for r in controls if r["query_params"] == method["control_query_params"])
        assert row["recall_gain"] == method["metrics"]["recall_at_1"] - control["metrics"]["recall_at_1"]
        assert row["dist_ratio"] == method["metrics"]["dist_comps_mean"] / control["metrics"]["dist_comps_mean"]
        assert control["metrics"]["iterations_mean"] == 0
    # the full potential's control is an exact search: the climb cannot add recall there
    assert all(row["control_recall_at_1"] == 1.0 and row["recall_gain"] <= 0 for row in rows)
    table = results_table(found)
    assert all("converged_onto_nn_rate" in row and "position_to_true_nn_median" in row for row in table)
    page = write_report(found, tmp_path / "plots", tiny.name, []).read_text()
    assert "What the climb adds" in page and "recall_gain" in page
