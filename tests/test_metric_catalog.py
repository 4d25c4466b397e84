"""The metric catalogue is the one declaration of every metric: what the measuring code produces
is declared there, and the results CSV, the figures and the explorer show what it declares."""
from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
from records_factory import DEFAULT_DATASET, make_document, write_one, write_synthetic_records

from algorithms import registry
from harness.cli import main
from harness.data.loader import open_dataset
from harness.metric_catalog import BY_NAME, CATALOGUE, CSV_INTERVALS, CSV_METRICS, MetricSpec, problems
from harness.records import load_records
from harness.report import metric_table
from harness.report.interactive import figure_data, hover_text
from harness.report.plots import FIGURES, plot_all, plot_metrics
from harness.report.summary import RESULT_COLUMNS
from harness.measure.measure import build_index, run_query_config
from harness.measure.job import MeasureOptions

N_QUERIES = 20
#: one method that moves a point (positions, iterations) and one exact baseline
MEASURED = {
    "faiss-flat": ({}, {}),
    "potential-gaussian": ({}, {"beta": 20.0, "m": 16, "max_iters": 10}),
}


@pytest.mark.slow
@pytest.mark.parametrize("mode, batch_size", [("batch", "mode"), ("single", "mode"), ("batch", 7)])
def test_every_metric_the_measuring_code_produces_is_declared_and_every_declared_one_is_produced(make_tiny_dataset, mode,
                                                                                                  batch_size):
    dataset = open_dataset(str(make_tiny_dataset(n_train=400, n_test=N_QUERIES, dim=8)), progress=False)
    options = MeasureOptions(k=5, runs=2, mode=mode)
    produced: set[str] = set()
    for name, (build_params, query_params) in MEASURED.items():
        adapter, built = build_index(dataset, registry.get(name), dict(build_params), options, "cpu")
        document, _ = run_query_config(dataset, adapter, dict(query_params), options, N_QUERIES, warmup_queries=2,
                                       batch_size=batch_size)
        produced |= set(built) | set(document["metrics"])
    produced.discard("adapter_stats")  # the adapter's own counters, named by each adapter
    assert not produced - set(BY_NAME), f"produced but not declared in harness/metric_catalog.py: {sorted(produced - set(BY_NAME))}"
    assert not set(BY_NAME) - produced, f"declared but never produced: {sorted(set(BY_NAME) - produced)}"


def _every_metric_document() -> dict:
    """An ok record in which every declared metric has its own value (per-run lists: three runs)."""
    document = make_document(DEFAULT_DATASET, "hnswlib", {"M": 8}, {"ef": 10}, 0.9, 1000.0, n_queries=40)
    for n, spec in enumerate(CATALOGUE):
        document["metrics"][spec.name] = [1.0 + n, 2.0 + n, 3.0 + n] if spec.per_run else 0.5 if spec.interval == "wilson" else 1000.0 + n
    return document


def test_every_declared_csv_column_is_in_results_csv_with_its_value_and_interval(tmp_path, capsys):
    results = tmp_path / "results"
    document = _every_metric_document()
    write_one(results, document, np.random.default_rng(0), None)
    assert main(["results", "--dataset", DEFAULT_DATASET, "--format", "csv", "--results-dir", str(results)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1
    row = rows[0]
    for name in CSV_METRICS:
        assert name in row, f"declared CSV metric {name} is not a column of `results --format csv`"
        assert float(row[name]) == pytest.approx(document["metrics"][name]), name
    for column in CSV_INTERVALS:
        assert column in row and row[column] != "", column
    # the peak-memory metrics, once on the figures' axes only, are columns too
    assert float(row["build_peak_rss_bytes"]) == document["metrics"]["build_peak_rss_bytes"]
    assert float(row["query_peak_rss_bytes"]) == document["metrics"]["query_peak_rss_bytes"]
    # intervals as declared: Wilson around a fraction, the spread of the runs for q/s
    assert float(row["recall_at_1_id_low"]) < 0.5 < float(row["recall_at_1_id_high"])
    assert (float(row["qps_min"]), float(row["qps_max"])) == tuple(document["metrics"]["qps_runs"][i] for i in (0, 2))
    # what is not a column stays out: per-run lists and metrics declared csv=False
    for spec in CATALOGUE:
        if spec.per_run or not spec.csv:
            assert spec.name not in RESULT_COLUMNS, spec.name


def test_the_catalogue_is_sound_and_its_checks_catch_a_broken_one():
    assert problems() == []
    broken = (
        MetricSpec("a", "A", "s", False, "one"), MetricSpec("a", "A again", "s", False, "two"),
        MetricSpec("b", "B", "1/s", True, "runs without their list", interval="runs"),
        MetricSpec("c", "C", "", True, "unknown scale", scale="sqrt"),
    )
    found = problems(broken)
    assert any("a: declared twice" in p for p in found)
    assert any("b: a 'runs' interval needs the per-run list b_runs" in p for p in found)
    assert any("c: scale 'sqrt'" in p for p in found)


def test_labels_carry_units_and_bytes_are_shown_in_mib():
    assert BY_NAME["build_s"].axis_label == "Build time (s)"
    assert BY_NAME["build_peak_rss_bytes"].axis_label == "Peak memory while building (MiB)"
    assert BY_NAME["qps"].axis_label == "Queries per second (1/s)"
    assert BY_NAME["recall_at_1"].axis_label == "Recall@1"
    assert BY_NAME["index_bytes"].shown(3 * (1 << 20)) == pytest.approx(3.0)
    record = make_document(DEFAULT_DATASET, "hnswlib", {"M": 8}, {"ef": 10}, 0.9, 1000.0)
    record["metrics"]["build_peak_rss_bytes"] = 5 * (1 << 20)
    text = hover_text("hnswlib", record, metric_table.METRICS)
    assert "Peak memory while building: 5 MiB" in text and "Build time: 1 s" in text


def test_the_metric_table_and_plot_choices_are_the_catalogue():
    assert [m.name for m in metric_table.METRICS] == [s.name for s in CATALOGUE if not s.per_run]
    for m in metric_table.METRICS:
        spec = BY_NAME[m.name]
        assert (m.label, m.unit, m.higher_is_better, m.interval, m.scale) == (
            spec.label, spec.unit, spec.higher_is_better, spec.interval, spec.scale)


def test_plot_refuses_an_undeclared_metric_and_names_the_declared_ones(tmp_path, capsys):
    write_synthetic_records(tmp_path / "results", DEFAULT_DATASET)
    code = main(["plot", "--dataset", DEFAULT_DATASET, "--x", "qps_runs", "--y", "qps",
                 "--results-dir", str(tmp_path / "results"), "--plots-dir", str(tmp_path / "plots")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown metric 'qps_runs'" in err and "build_peak_rss_bytes" in err


@pytest.mark.slow
def test_static_figures_name_declared_metrics_and_take_their_labels(tmp_path):
    for spec in FIGURES:
        assert spec.x in BY_NAME and (spec.y == "" or spec.y in BY_NAME), spec.name
    write_synthetic_records(tmp_path / "results", DEFAULT_DATASET)
    records = load_records(tmp_path / "results", DEFAULT_DATASET)
    infos = {info.name: info for info in plot_all(records, tmp_path / "plots", DEFAULT_DATASET,
                                                   names=["recall1-qps", "recallk-qps", "build-time", "index-memory"])}
    assert infos["recall1-qps"].x_label == "Recall@1 (logit scale, 1.0 drawn at 0.9995)"
    assert infos["recall1-qps"].y_label == "Queries per second (1/s, log scale)"
    assert infos["recallk-qps"].x_label.startswith("Recall@10 (")
    assert infos["build-time"].y_label == "Build time (s, log scale)"
    assert infos["index-memory"].x_label == "Recall@1 (best over the query parameters of an index)"
    assert infos["index-memory"].y_label == "Index size (MiB, log scale)"


def test_plot_of_a_byte_metric_draws_mib(tmp_path):
    results = tmp_path / "results"
    rng = np.random.default_rng(0)
    for n, rss in enumerate((64, 128, 256)):
        document = make_document(DEFAULT_DATASET, "hnswlib", {"M": 8}, {"ef": 10 * (n + 1)}, 0.8 + 0.05 * n, 1000.0 / (n + 1))
        document["metrics"]["query_peak_rss_bytes"] = rss * (1 << 20)
        write_one(results, document, rng, None)
    records = load_records(results, DEFAULT_DATASET)
    info = plot_metrics(records, tmp_path / "plots", DEFAULT_DATASET, "recall_at_1", "query_peak_rss_bytes", formats=("png",))
    assert info.y_label == "Peak memory while querying (MiB, log scale)" and info.n_points == 3
    data = figure_data(records, DEFAULT_DATASET)
    names = [m["name"] for m in data["metrics"]]
    column = names.index("query_peak_rss_bytes")
    assert data["metrics"][column]["label"] == "Peak memory while querying (MiB)"
    assert sorted(v[column] for s in data["series"] for v in s["values"]) == [64.0, 128.0, 256.0]
    assert all(math.isfinite(v[column]) for s in data["series"] for v in s["values"])
