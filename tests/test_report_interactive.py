"""The interactive report's data, checked without a browser (tests/test_report_browser.py drives
a real one): what every point says on hover, the fronts for any pair of axes, the index page."""
from __future__ import annotations

import json
import math
import re

from records_factory import DEFAULT_DATASET, make_document, write_synthetic_records

from harness.records import load_records
from harness.report.interactive import figure_data, figures_html, hover_text
from harness.report.metric_table import BY_NAME, METRICS
from harness.report.page import write_index, write_report
from harness.report.pareto import pareto_front


def _records(tmp_path):
    write_synthetic_records(tmp_path / "results", DEFAULT_DATASET, gpu=True)
    return load_records(tmp_path / "results", DEFAULT_DATASET)


def test_figure_data_lists_measured_metrics_and_every_ok_record(tmp_path):
    records = _records(tmp_path)
    data = figure_data(records, DEFAULT_DATASET)
    ok = [r for r in records if r.get("status") == "ok"]
    names = [m["name"] for m in data["metrics"]]
    assert names == [m.name for m in METRICS if any(math.isfinite(m.value(r)) for r in ok)]
    assert sum(len(s["values"]) for s in data["series"]) == len(ok)
    assert ("recall_at_1", "qps") in [tuple(v) for v in data["views"]]
    json.dumps(data, allow_nan=False)  # strict JSON: NaN became null


def test_fronts_are_the_tested_pareto_fronts_oriented_by_each_metric(tmp_path):
    data = figure_data(_records(tmp_path), DEFAULT_DATASET)
    names = [m["name"] for m in data["metrics"]]
    hnsw = next(s for s in data["series"] if s["name"] == "hnswlib")
    for x, y in (("recall_at_1", "qps"), ("recall_at_1", "build_s"), ("qps", "recall_at_k")):
        xi, yi = names.index(x), names.index(y)
        xs = [math.nan if v[xi] is None else v[xi] for v in hnsw["values"]]
        ys = [math.nan if v[yi] is None else v[yi] for v in hnsw["values"]]
        expected = pareto_front(xs, ys, BY_NAME[x].higher_is_better, BY_NAME[y].higher_is_better)
        assert hnsw["fronts"][f"{x} {y}"] == expected
    # a slower-is-better axis picks other points than a faster-is-better one would
    assert hnsw["fronts"]["recall_at_1 qps"] != pareto_front(
        [v[names.index("recall_at_1")] for v in hnsw["values"]], [v[names.index("qps")] for v in hnsw["values"]], True, False)


def test_hover_text_names_the_run_its_parameters_and_intervals():
    record = make_document(DEFAULT_DATASET, "hnswlib", {"M": 16}, {"ef": 40}, 0.9, 2000.0, n_queries=100)
    record["metrics"]["qps_runs"] = [1900.0, 2000.0, 2100.0]
    text = hover_text("hnswlib", record, METRICS)
    for needle in ("M=16", "ef=40", "Recall@1: 0.9 fraction [0.8256, 0.9448] 95 % Wilson",
                   "Queries per second: 2,000 1/s [1,900, 2,100] runs", "queries: 100 queries, k: 10"):
        assert needle in text, (needle, text)
    hostile = make_document(DEFAULT_DATASET, "hnswlib", {"M": "<img src=x onerror=alert(1)>"}, {"ef": 1}, 0.5, 10.0)
    assert "<img" not in hover_text("hnswlib", hostile, METRICS)


def test_the_page_inlines_plotly_and_one_panel_per_view(tmp_path):
    records = _records(tmp_path)
    fragment = figures_html(records, DEFAULT_DATASET)
    assert "Plotly" in fragment and "cdn" not in re.findall(r'<script[^>]*>', fragment)[0]
    assert not re.search(r'<script[^>]+src=', fragment)
    assert fragment.count('class="explorer"') == len(figure_data(records, DEFAULT_DATASET)["views"])
    assert figures_html([], DEFAULT_DATASET) == "<p>No successful runs to draw.</p>"


def test_index_page_links_each_dataset_and_marks_the_leader(tmp_path):
    write_synthetic_records(tmp_path / "results", DEFAULT_DATASET)
    write_synthetic_records(tmp_path / "results", "other-8-euclidean")
    records = load_records(tmp_path / "results")
    write_report([r for r in records if r["dataset"] == DEFAULT_DATASET], tmp_path / "plots" / DEFAULT_DATASET,
                 DEFAULT_DATASET, [], static=True)
    page = write_index(records, tmp_path / "plots").read_text()
    assert f'<a href="{DEFAULT_DATASET}/index.html">' in page  # a report was written for it
    assert "other-8-euclidean</td>" in page and 'href="other-8-euclidean/index.html"' not in page  # none for it
    assert page.count('class="num leader"') + page.count('class="num tied"') >= 2 * 4  # per dataset, per threshold
    assert "&ge; 0.99" in page and "<script" not in page
