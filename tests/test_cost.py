"""The cost model, budgets, the plan and the ETA: properties, never timings.

Estimates are checked for their shape (monotonic in N, in nprobe, in ef), budgets for the count
they choose with rates fixed by the test, the ETA with a clock the test moves. No test asserts
how long anything took.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from algorithms import registry
from algorithms.base import Adapter, Cost, Param
from harness import records
from harness.data.loader import open_dataset
from harness.report.page import write_report
from harness.report.summary import results_table, skipped_rows
from harness.plan import budget, cost, sweeps
from harness.run import provenance
from harness.plan.budget import Allotment, Budget, allot, makespan
from harness.plan.cost import ConfigEstimate, Rates, estimate_config, parse_duration, query_grid, size_queries
from harness.run.executors import run_sweep
from harness.plan.options import RunOptions
from harness.plan.progress import Progress

#: one unit of pointwise work = 1 ms: a test adapter's work reads as milliseconds
MS_RATES = Rates(matmul=1e-9, scan=1e-9, pointwise=1e-3)


class _Costly(Adapter):
    """Exact search whose declared cost the test chooses: `work` ms per query, `build_work` ms to build."""

    build_params = {"build_work": Param(float, 0.0)}
    query_params = {"work": Param(float, 1.0)}

    @classmethod
    def cost(cls, build, query, n_train, dimension, k):
        return Cost(query={"pointwise": query["work"]}, build={"pointwise": build["build_work"]})

    def _fit(self, X):
        self._X = X

    def _search(self, Q, k):
        d = ((Q[:, None, :] - self._X[None]) ** 2).sum(-1)
        ids = np.argsort(d, 1)[:, :k]
        return ids, np.sqrt(np.take_along_axis(d, ids, 1))


class _Undescribed(_Costly):
    """No cost hint: the harness charges one brute-force pass per query."""

    @classmethod
    def cost(cls, build, query, n_train, dimension, k):
        return None


class _Slower(_Costly):
    """Declares `work` ms per query but sleeps `sleep_s` per search: the model is wrong about it."""

    query_params = {**_Costly.query_params, "sleep_s": Param(float, 0.0)}

    def _search(self, Q, k):
        time.sleep(self.query_values["sleep_s"])
        return super()._search(Q, k)


registry.add("test-costly", _Costly)
registry.add("test-undescribed", _Undescribed)
registry.add("test-slower", _Slower)


def _configs(name, n_train, build=None, query=None, dataset=None):
    entry = sweeps.SweepEntry(name, name, build or {}, query or {})
    return sweeps.expand([entry], n_train, dataset)


def _config(name, n_train=1000, **query):
    return _configs(name, n_train, query={k: [v] for k, v in query.items()})[0]


# -- the model's shape ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,build,query", [
    ("bruteforce", {}, {}),
    ("faiss-flat", {}, {}),
    ("faiss-ivf", {"nlist": [64]}, {"nprobe": [4]}),
    ("faiss-ivfpq", {"nlist": [64]}, {"nprobe": [4]}),
    ("faiss-hnsw", {"M": [16]}, {"efSearch": [40]}),
    ("hnswlib", {"M": [16]}, {"ef": [40]}),
    ("potential-gaussian", {}, {"beta": [300.0]}),
    ("potential-1", {}, {}),
    ("potential-2", {}, {}),
    ("potential-gaussian-ivf", {"nlist": [64]}, {"nprobe": [4]}),
    ("potential-gaussian-graph", {}, {"frontier": [8]}),
    ("potential-probe", {"nlist": [64]}, {}),
    ("potential-tree", {}, {}),
    ("potential-1-fixedpoint", {}, {}),
])
def test_estimates_grow_with_the_data_and_every_builtin_describes_itself(name, build, query):
    def estimate(n):
        [config] = _configs(name, n, build, query)
        return estimate_config(config, n, 128, 10, cost.DEFAULT_RATES, isolated=False)

    small, large = estimate(100_000), estimate(1_000_000)
    assert small.described and large.described
    assert large.build_s > small.build_s > 0
    assert all(b >= a > 0 for a, b in zip(small.per_query, large.per_query))  # the graph walk's width is N-free


@pytest.mark.parametrize("name,build,param,values", [
    ("faiss-ivf", {"nlist": [1024]}, "nprobe", [1, 4, 16, 64, 256]),
    ("faiss-ivfpq", {"nlist": [1024]}, "nprobe", [1, 4, 16, 64, 256]),
    ("faiss-hnsw", {"M": [16]}, "efSearch", [10, 40, 160, 640]),
    ("hnswlib", {"M": [16]}, "ef", [10, 40, 160, 640]),
    ("potential-gaussian-ivf", {"nlist": [64]}, "nprobe", [1, 4, 16]),
])
def test_estimates_grow_with_the_search_width(name, build, param, values):
    [config] = _configs(name, 1_000_000, build, {param: values})
    per_query = estimate_config(config, 1_000_000, 128, 10, cost.DEFAULT_RATES).per_query
    methods = [t for t, q in zip(per_query, config.query_params) if q.get("ascent") != "none"]
    assert methods == sorted(methods) and len(set(methods)) == len(methods)


def test_a_climb_costs_more_than_its_control_and_potential_2_more_than_potential_1():
    [p1] = sweeps.expand(sweeps.default_entries(["potential-1"]), 1_000_000)  # the registered sweeps
    [p2] = sweeps.expand(sweeps.default_entries(["potential-2"]), 1_000_000)
    e1 = estimate_config(p1, 1_000_000, 128, 10, cost.DEFAULT_RATES)
    e2 = estimate_config(p2, 1_000_000, 128, 10, cost.DEFAULT_RATES)
    controls = [t for t, q in zip(e1.per_query, p1.query_params) if q["ascent"] == "none"]
    climbs = [t for t, q in zip(e1.per_query, p1.query_params) if q["ascent"] != "none"]
    assert max(controls) < min(climbs)
    assert e2.per_query[0] > e1.per_query[0]


def test_the_fixed_points_climbing_control_is_charged_its_climb_and_the_climb_less_one_a_single_pass():
    """potential-1-fixedpoint has two controls: the note's rule climbs (its share of max_iters), no
    climb evaluates once; the fixed-point map, a weighted mean, settles in a few steps."""
    [config] = sweeps.expand(sweeps.default_entries(["potential-1-fixedpoint"]), 1_000_000)
    per_query = estimate_config(config, 1_000_000, 128, 10, cost.DEFAULT_RATES).per_query
    by_rule = {q["ascent"]: t for t, q in zip(per_query, config.query_params)}
    assert set(by_rule) == {"fixed-point", "normalised", "none"}
    assert by_rule["none"] < by_rule["fixed-point"] < by_rule["normalised"]


def test_every_default_sweep_configuration_is_described_by_its_adapter():
    """The plan of `python -m harness --dataset sift-128` (and of the small datasets): every
    configuration of every default entry, controls included, through its adapter's own hint."""
    for n_train in (10_000, 1_000_000):
        for config in sweeps.expand(sweeps.default_entries(None), n_train):
            if not config.spec.adapter.__module__.startswith("algorithms."):
                continue  # a test plugin registered by another test of this session
            estimate = estimate_config(config, n_train, 128, 10, cost.DEFAULT_RATES)
            assert estimate.described, config.algorithm
            assert all(t > 0 for t in estimate.per_query), config.algorithm


def test_a_faulty_hint_falls_back_to_the_generic_estimate_with_a_warning(monkeypatch):
    spec = registry.get("hnswlib")

    def broken(*args, **kwargs):
        raise KeyError("ascent")

    monkeypatch.setattr(spec.adapter, "cost", classmethod(broken))
    monkeypatch.setattr(cost, "_FAULTY_HINTS", set())
    with pytest.warns(UserWarning, match="hnswlib: its cost hint .* failed with KeyError"):
        estimate = estimate_config(_config("hnswlib"), 1000, 16, 10, MS_RATES, isolated=False)
    assert not estimate.described
    assert estimate.per_query == [pytest.approx(1000 * 16 * MS_RATES.matmul)] * len(estimate.per_query)


def test_an_adapter_without_a_hint_is_charged_a_brute_force_pass():
    config = _config("test-undescribed")
    estimate = estimate_config(config, 1000, 16, 10, MS_RATES, isolated=False)
    assert not estimate.described
    assert estimate.per_query == [pytest.approx(1000 * 16 * MS_RATES.matmul)]


def test_isolation_pays_start_up_and_the_dataset_load():
    config = _config("test-costly")
    alone = estimate_config(config, 1000, 16, 10, MS_RATES, isolated=False)
    child = estimate_config(config, 1000, 16, 10, MS_RATES, isolated=True)
    assert child.startup_s >= cost.CHILD_STARTUP_S > alone.startup_s == 0


def test_single_mode_turns_products_into_matrix_vector_passes():
    [config] = _configs("bruteforce", 100_000)
    rates = Rates(matmul=1e-12, scan=1e-10, pointwise=1e-9)
    batch = estimate_config(config, 100_000, 128, 10, rates, mode="batch").per_query[0]
    single = estimate_config(config, 100_000, 128, 10, rates, mode="single").per_query[0]
    assert single == pytest.approx(100 * batch)


@pytest.mark.slow
def test_the_probe_measures_every_kind_with_positive_rates():
    rates = cost.probe(16, 1, seconds=0.05)
    assert rates.measured and min(rates.matmul, rates.scan, rates.pointwise) > 0
    assert "per distance" in rates.describe(16)


# -- the query subset ------------------------------------------------------------------------------


def test_the_grid_steps_by_at_most_one_and_a_half_and_ends_at_the_maximum():
    grid = query_grid(10_000)
    assert grid[0] == 1 and grid[-1] == 10_000 and 7000 in grid and 1500 in grid
    assert all(b / a <= 2.0 for a, b in zip(grid, grid[1:]))
    assert query_grid(37)[-1] == 37


def _estimate(per_query_ms, fixed_ms=0.0):
    return ConfigEstimate("x", 0.0, fixed_ms / 1000, [t / 1000 for t in per_query_ms], overhead_s=0.0)


def test_budget_sizing_picks_the_largest_count_that_fits():
    estimate = _estimate([1.0, 1.0])  # two query configurations of 1 ms per query, 3 runs
    # n queries cost 2 configs x (3 n + warm-up min(n, 100)) ms
    sizing = size_queries(estimate, budget_s=1.0, n_max=10_000, runs=3, min_queries=10)
    assert sizing.n_queries == 100  # 2 x (300 + 100) ms = 0.8 s; the next count, 150, needs 1.1 s
    assert estimate.total_s(sizing.n_queries, 3) <= 1.0
    bigger = [n for n in query_grid(10_000) if n > sizing.n_queries][0]
    assert estimate.total_s(bigger, 3) > 1.0
    assert size_queries(estimate, None, 10_000, 3, 10).n_queries == 10_000


def test_a_configuration_that_cannot_fit_even_the_minimum_is_skipped():
    estimate = _estimate([1.0], fixed_ms=5_000.0)  # the build alone takes 5 s
    sizing = size_queries(estimate, budget_s=4.0, n_max=1000, runs=3, min_queries=10)
    assert sizing.n_queries is None and sizing.minimum == 10 and sizing.seconds > 4.0
    item = Allotment(_config("test-costly"), estimate, 1000, [0], 3)
    item.size(4.0, "the per-configuration budget", 10)
    assert item.skipped and item.seconds == 0.0
    assert "skipped" in item.note() and "to start and build" in item.note()


def test_a_slow_configuration_warms_up_on_a_few_queries():
    assert _estimate([0.01]).warmup(10_000) == cost.WARMUP_QUERIES
    assert _estimate([10_000.0]).warmup(500) == 1
    assert 1 <= _estimate([100.0]).warmup(500) <= 20
    assert _estimate([0.01]).warmup(5) == 5


def test_durations_as_people_write_them():
    assert parse_duration("90") == 90 and parse_duration("10m") == 600 and parse_duration("1h30m") == 5400
    assert parse_duration("1.5h") == 5400 and parse_duration("45s") == 45
    for bad in ("", "ten minutes", "-5", "5x", "0"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert cost.format_duration(5400) == "1 h 30 min" and cost.format_duration(390) == "6 min 30 s"


# -- the run budget --------------------------------------------------------------------------------


def test_makespan_schedules_in_order_on_the_free_workers():
    assert makespan([3, 1, 1, 1], 1) == 6
    assert makespan([3, 1, 1, 1], 2) == 3
    assert makespan([1], 2, busy=[5]) == 5


def test_a_run_budget_keeps_cheap_configurations_whole_and_shares_the_rest():
    cheap = Allotment(_config("test-costly"), _estimate([0.01]), 1000, [0], 3)
    slow = [Allotment(_config("test-costly"), _estimate([100.0]), 1000, [0], 3) for _ in range(3)]
    everything = [cheap, *slow]
    allot(everything, Budget(config_s=None, run_s=60.0, parallel=1))
    assert cheap.n_queries == 1000
    assert all(a.n_queries < 1000 and not a.skipped for a in slow)
    assert makespan([a.seconds for a in everything], 1) <= 60.0
    allot(everything, Budget(config_s=None, run_s=60.0, parallel=2))
    assert sum(a.seconds for a in everything) > 60.0 >= makespan([a.seconds for a in everything], 2)


# -- the plan, the records, the report (in process, tiny data) ------------------------------------------


@pytest.fixture
def tiny(make_tiny_dataset):
    return open_dataset(str(make_tiny_dataset(n_train=300, n_test=40, dim=8)), progress=False)


def _sweep(tiny, results_dir, configs, **option_values):
    lines: list[str] = []
    options = RunOptions(results_dir=results_dir, progress=False, runs=1, **option_values)
    summary = run_sweep(tiny, configs, options, provenance.collect(1), report=lines.append, rates=MS_RATES)
    return summary, lines


def test_the_plan_is_printed_and_records_carry_the_estimate(tiny, tmp_path):
    configs = _configs("test-costly", tiny.n_train, query={"work": [0.5, 2.0]})
    summary, lines = _sweep(tiny, tmp_path, configs)
    assert lines[0].startswith("plan (cost model:")
    assert any(line.startswith("total: 1 configuration(s) to run, 0 skipped") for line in lines)
    documents = [records.read_record(p) for p in summary.written]
    assert len(documents) == 2
    for document in documents:
        assert document["estimated_s"] > 0 and document["measured_s"] >= 0 and document["warmup_queries"] >= 1
        assert document["estimated_build_s"] == 0.0 and document["budget_note"] is None
        assert document["provenance"]["parallel"] == 1
    by_work = {d["query_params"]["work"]: d["estimated_s"] for d in documents}
    assert by_work[2.0] > by_work[0.5]
    progress = [json.loads(line) for line in (tmp_path / tiny.name / "progress.jsonl").read_text().splitlines()]
    assert progress[0]["event"] == "plan" and progress[-1]["event"] == "end" and progress[-1]["fraction"] == 1.0
    assert [p["event"] for p in progress].count("query") == 2


def test_a_budget_runs_a_query_subset_and_notes_it(tiny, tmp_path):
    configs = _configs("test-costly", tiny.n_train, query={"work": [100.0]})  # 100 ms per query
    summary, lines = _sweep(tiny, tmp_path, configs, config_budget=3.0)
    [document] = [records.read_record(p) for p in summary.written]
    assert document["n_queries"] == 10 and document["n_queries_total"] == 40  # (1 run + 10 warm-up) x 0.1 s
    assert "first 10 of 40 queries" in document["budget_note"] and document["warmup_queries"] <= 10
    assert any("first 10 of 40" in line for line in lines)


def test_a_configuration_over_budget_is_skipped_with_a_record_the_report_shows(tiny, tmp_path):
    configs = [
        *_configs("test-costly", tiny.n_train, build={"build_work": [60_000.0]}),  # a one-minute build
        *_configs("test-costly", tiny.n_train, query={"work": [0.01]}),
    ]
    summary, lines = _sweep(tiny, tmp_path, configs, config_budget=10.0)
    assert len(summary.written) == 1 and len(summary.budget_skipped) == 1
    [skipped] = [records.read_record(p) for p in summary.budget_skipped]
    assert skipped["status"] == "skipped" and "over the per-configuration budget" in skipped["error"]
    assert any("SKIPPED test-costly" in line for line in lines)
    found = records.load_records(tmp_path, tiny.name)
    [row] = skipped_rows(found)
    assert row["algorithm"] == "test-costly" and row["query_configs"] == 1 and "1 min" in row["reason"]
    assert {r["status"] for r in results_table(found)} == {"ok", "skipped"}
    page = write_report(found, tmp_path / "plots", tiny.name, []).read_text()
    assert "<h2>Skipped</h2>" in page and "over the per-configuration budget" in page
    # with more time, the same command measures it and the skip record gives way
    again, _ = _sweep(tiny, tmp_path, configs, config_budget=None)
    assert len(again.written) == 1 and not again.budget_skipped
    assert not skipped_rows(records.load_records(tmp_path, tiny.name))


def test_a_rerun_with_less_time_reuses_the_records_it_has(tiny, tmp_path):
    configs = _configs("test-costly", tiny.n_train, query={"work": [100.0]})
    first, _ = _sweep(tiny, tmp_path, configs)  # no budget: all 40 queries
    again, _ = _sweep(tiny, tmp_path, configs, config_budget=3.0)  # would run 10
    assert again.reused == first.written and not again.written


@pytest.mark.slow  # sleeps 8 s in all
def test_a_configuration_past_its_deadline_skips_what_it_cannot_finish_and_says_why(tiny, tmp_path, monkeypatch):
    """The model says 1 ms a query; each search sleeps 1 s (warm-up + 1 run: 2 s a query
    configuration). Under a 2 s budget the deadline is 3 s: the first starts (the build and its
    estimate fit, even on a loaded machine), and after it the job knows it is far slower than
    planned and does not start the other two. Without a budget all three run."""
    monkeypatch.setattr(budget, "DEADLINE_MIN_SLACK_S", 0.0)
    configs = _configs("test-slower", tiny.n_train, query={"work": [1.0], "sleep_s": [1.0, 1.0001, 1.0002]})
    summary, lines = _sweep(tiny, tmp_path / "budgeted", configs, config_budget=2.0)
    assert len(summary.written) == 1 and len(summary.budget_skipped) == 2 and not summary.failed
    for path in summary.budget_skipped:
        document = records.read_record(path)
        assert document["status"] == "skipped" and document["estimated_s"] > 0
        assert document["error"].startswith("skipped at run time: ")
        assert "past the configuration's deadline of 3 s (1.5 x the per-configuration budget (--config-budget) of 2.0 s)" \
            in document["error"]
    assert sum("SKIPPED test-slower" in line for line in lines) == 2
    found = records.load_records(tmp_path / "budgeted", tiny.name)
    assert sum(row["query_configs"] for row in skipped_rows(found)) == 2  # the report's Skipped table
    control, _ = _sweep(tiny, tmp_path / "unbounded", configs)
    assert len(control.written) == 3 and not control.budget_skipped


def test_a_deadline_is_its_budget_with_slack_and_none_without_a_budget():
    item = _allotment("test-costly", 1.0, queries=2)
    assert item.deadline([0, 1]) is None  # no budget
    item.size(600.0, budget.CONFIG_REASON, 1)
    deadline = item.deadline([1])
    assert deadline.seconds == 900.0 and deadline.why == "1.5 x the per-configuration budget (--config-budget) of 10 min"
    assert deadline.estimates_s == (item.query_seconds(1),)
    item.size(10.0, budget.CONFIG_REASON, 1)
    assert item.deadline([0]).seconds == 10.0 + budget.DEADLINE_MIN_SLACK_S


# -- the ETA ------------------------------------------------------------------------------------------


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _allotment(name, per_query_ms, n=100, queries=1):
    item = Allotment(_config(name), _estimate([per_query_ms] * queries), n, list(range(queries)), 1)
    item.size(None, "", 1)
    return item


def test_the_eta_learns_the_ratio_of_measured_to_estimated_time(tmp_path):
    clock = _Clock()
    first, second = _allotment("test-costly", 100.0, queries=2), _allotment("test-costly", 100.0)
    progress = Progress([first, second], log_path=tmp_path / "progress.jsonl", clock=clock)
    assert progress.eta_s() == pytest.approx(first.seconds + second.seconds)
    progress.start(first, first.todo)
    progress.part_done(first, "build", 0.0)
    clock.now = 60.0  # the first query configuration took 60 s where 10.1 s were estimated
    progress.part_done(first, 0, 60.0)
    assert progress.ratio("test-costly", "query") > 2.0
    assert progress.eta_s() > 2 * second.seconds  # what is left of the same algorithm is corrected
    lines = [json.loads(line) for line in (tmp_path / "progress.jsonl").read_text().splitlines()]
    assert lines[-1]["event"] == "query" and lines[-1]["measured_s"] == 60.0 and lines[-1]["eta_s"] > lines[0]["eta_s"]


def test_an_unseen_algorithm_takes_the_runs_ratio_and_a_running_part_counts_down():
    clock = _Clock()
    seen, unseen = _allotment("test-costly", 100.0), _allotment("test-undescribed", 100.0)
    progress = Progress([seen, unseen], clock=clock)
    progress.start(seen, seen.todo)
    progress.part_done(seen, "build", 0.0)
    progress.part_done(seen, 0, 40.0)
    progress.finish(seen)
    assert progress.ratio("test-undescribed") == pytest.approx(progress.ratio(""))
    assert progress.ratio("") > 1.0
    progress.start(unseen, unseen.todo)
    progress.part_done(unseen, "build", 0.0)
    before = progress.eta_s()
    clock.now += 5.0
    assert progress.eta_s() < before


def test_an_unseen_algorithm_learns_from_those_dominated_by_the_same_kind_of_work():
    scans, alike, other = (_allotment(name, 100.0) for name in ("test-costly", "test-undescribed", "faiss-flat"))
    scans.estimate.kinds = alike.estimate.kinds = {"build": "startup", "query": "scan"}
    other.estimate.kinds = {"build": "startup", "query": "pointwise"}
    progress = Progress([scans, alike, other])
    progress.start(scans, scans.todo)
    progress.part_done(scans, 0, 3 * scans.query_seconds(0))  # scans ran three times slower than probed
    assert progress.ratio("test-undescribed", "query") > progress.ratio("faiss-flat", "query") > 1.0


def test_parallel_eta_is_the_schedule_not_the_sum():
    items = [_allotment("test-costly", 100.0) for _ in range(4)]
    serial, two = Progress(items, parallel=1), Progress(items, parallel=2)
    assert two.eta_s() == pytest.approx(serial.eta_s() / 2)


# -- the schema ---------------------------------------------------------------------------------------


def test_a_version_2_record_reads_with_no_estimate(tiny, tmp_path):
    [path] = _sweep(tiny, tmp_path, _configs("test-costly", tiny.n_train))[0].written
    document = json.loads(path.read_text())
    for name in ("estimated_s", "measured_s", "estimated_build_s", "warmup_queries", "budget_note"):
        document.pop(name)
    document["schema"] = "gpnn-record/2"
    path.write_text(json.dumps(document))
    migrated = records.read_record(path)
    assert migrated["schema"] == records.SCHEMA and migrated["estimated_s"] is None and migrated["budget_note"] is None


def _one_minute_build(tiny, tmp_path):
    """A configuration whose build the model prices at a minute, measured once without a budget."""
    configs = _configs("test-costly", tiny.n_train, build={"build_work": [60_000.0]})
    first, _ = _sweep(tiny, tmp_path, configs)
    [path] = first.written
    return configs, path


def test_force_under_a_budget_keeps_a_whole_record_instead_of_a_skipped_placeholder(tiny, tmp_path):
    configs, path = _one_minute_build(tiny, tmp_path)
    again, _ = _sweep(tiny, tmp_path, configs, config_budget=10.0, force=True)
    assert not again.written and records.read_record(path)["status"] == "ok"


def test_stale_records_of_a_configuration_the_budget_skips_stay_where_they_are(tiny, tmp_path):
    configs, path = _one_minute_build(tiny, tmp_path)
    document = json.loads(path.read_text())
    document["code_fingerprint"] = "code that has changed since"
    path.write_text(json.dumps(document))
    again, lines = _sweep(tiny, tmp_path, configs, config_budget=10.0)
    assert not again.superseded and not any("superseded" in line for line in lines)
    assert path.is_file() and not list(tmp_path.rglob("superseded/*.json"))  # not moved aside for nothing
    assert any("1 stale, left as they are" in line for line in lines)
