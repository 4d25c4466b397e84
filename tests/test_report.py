"""Summary and results tables, and the self-contained HTML report."""
from __future__ import annotations

import base64
import html
import csv
import io
from html.parser import HTMLParser
from pathlib import Path

import pytest
from records_factory import DEFAULT_DATASET, make_document, write_synthetic_records

from harness.records import load_records
from harness.report.page import write_report
from harness.report.plots import make_plots
from harness.report.summary import (
    RESULT_COLUMNS,
    format_csv,
    format_summary,
    format_table,
    results_table,
    series_name,
    summary_rows,
)

DATASET = DEFAULT_DATASET
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class PageParser(HTMLParser):
    """Collects text, images, links and tables, and checks that tags nest properly."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.tables = 0
        self.external: list[str] = []
        self.scripts: list[dict] = []
        self.doctype = None

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "a":
            self.links.append(attrs.get("href", ""))
        if tag == "script":
            self.scripts.append(attrs)
        # a script or stylesheet with a source, or an image that is not a data URI, would be fetched
        if (tag in ("script", "link") and (attrs.get("src") or attrs.get("href"))) or (
                tag == "img" and not attrs.get("src", "").startswith("data:")):
            self.external.append(tag)
        if tag == "table":
            self.tables += 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    write_synthetic_records(root / "results", DATASET, gpu=True)
    records = load_records(root / "results", DATASET)
    figures = make_plots(records, root / "plots", DATASET)
    page = write_report(records, root / "plots", DATASET, figures)
    parser = PageParser()
    parser.feed(page.read_text(encoding="utf-8"))
    parser.close()
    return records, figures, page, parser


def test_report_is_well_formed_html5(site):
    _, _, page, parser = site
    assert page.name == "index.html"
    assert parser.doctype and parser.doctype.lower() == "doctype html"
    assert parser.errors == [] and parser.stack == []


def test_report_embeds_every_figure_and_loads_nothing_external(site):
    _, figures, _, parser = site
    stems = {Path(f).stem for f in figures}
    assert len(parser.images) == len(stems)
    assert all(src.startswith("data:image/png;base64,") for src in parser.images)
    for src in parser.images:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert parser.external == []
    for figure in figures:
        assert Path(figure).name in parser.links


def test_report_lists_every_record_summary_and_provenance(site):
    records, _, page, parser = site
    text = "".join(parser.text)
    for record in records:  # in a cell, or in the hover (title) of its compact label
        assert record["label"] in text or html.escape(record["label"]) in page.read_text(encoding="utf-8")
    assert "ParameterError: ef_construction=4 must be &gt;= M=64" not in text  # unescaped by parser
    assert "ParameterError: ef_construction=4 must be >= M=64" in text
    assert "Summary" in text and "0.9000" in text and "0.9900" in text
    assert parser.tables >= 4
    for needle in ("Synthetic CPU @ 3.0GHz", "NVIDIA H100", "f30824a0", "ab" * 32, "hnswlib", "python -m harness run"):
        assert needle in text


def test_report_escapes_text_from_records(tmp_path):
    document = make_document(DATASET, "hnswlib", {"M": 4}, {"ef": 1}, 0.5, 10.0, status="failed",
                             error="<script>alert('x')</script>")
    document["_path"] = str(tmp_path / "x.json")
    page = write_report([document], tmp_path, DATASET, [])
    content = page.read_text()
    assert "<script>alert('x')</script>" not in content and "&lt;script&gt;" in content


def test_report_text_from_records_cannot_leave_the_figure_data(tmp_path):
    """The interactive figures carry record text (parameters, labels) in a JSON <script> block:
    a parameter that tries to close it stays inside, escaped."""
    hostile = "</script><script>alert(1)</script>"
    document = make_document(DATASET, "hnswlib", {"M": hostile}, {"ef": 1}, 0.5, 10.0)
    document["_path"] = str(tmp_path / "x.json")
    content = write_report([document], tmp_path, DATASET, []).read_text()
    assert hostile not in content and "alert(1)" in content
    parser = PageParser()
    parser.feed(content)
    assert parser.errors == [] and parser.external == []


def test_static_report_has_no_script(tmp_path):
    document = make_document(DATASET, "hnswlib", {"M": 4}, {"ef": 1}, 0.5, 10.0)
    document["_path"] = str(tmp_path / "x.json")
    parser = PageParser()
    parser.feed(write_report([document], tmp_path, DATASET, [], static=True).read_text())
    assert parser.scripts == [] and parser.errors == []
    interactive = PageParser()
    interactive.feed(write_report([document], tmp_path, DATASET, []).read_text())
    assert len(interactive.scripts) == 3  # plotly.js, the figures' JSON, the figures' script


def test_summary_best_qps_per_threshold(site):
    records, _, _, _ = site
    rows = summary_rows(records)
    by = {(r["series"], r["threshold"]): r for r in rows}
    hnsw = by[("hnswlib", 0.9)]
    assert hnsw["recall"] >= 0.9
    reaching = [r for r in records if series_name(r) == "hnswlib" and r["status"] == "ok"
                and r["metrics"]["recall_at_1"] >= 0.9]
    assert hnsw["qps"] == max(r["metrics"]["qps"] for r in reaching)
    assert hnsw["label"] in {r["label"] for r in reaching}
    potential = by[("potential-gaussian", 0.99)]
    assert potential["qps"] is None and potential["label"] is None
    assert {r["threshold"] for r in rows} == {0.9, 0.95, 0.99}
    text = format_summary(rows)
    assert "hnswlib" in text and sum(1 for line in text.splitlines() if line.strip()[:1].isdigit()) == len(rows)


def test_summary_other_metric_and_thresholds(site):
    records, _, _, _ = site
    rows = summary_rows(records, thresholds=(0.5,), metric="recall_at_k")
    assert {r["metric"] for r in rows} == {"recall_at_k"}
    assert all(r["recall"] >= 0.5 for r in rows if r["qps"] is not None)


def test_results_table_has_one_row_per_record_with_failures(site):
    records, _, _, _ = site
    rows = results_table(records)
    assert len(rows) == len(records)
    assert all(list(row) == list(RESULT_COLUMNS) for row in rows)
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["recall_at_1"] is None and "ParameterError" in failed[0]["error"]
    assert failed[0]["build_params"] == '{"M":64,"ef_construction":4}'


def test_csv_round_trips(site):
    records, _, _, _ = site
    rows = results_table(records)
    parsed = list(csv.DictReader(io.StringIO(format_csv(rows))))
    assert len(parsed) == len(rows)
    assert parsed[0].keys() == set(RESULT_COLUMNS) or list(parsed[0]) == list(RESULT_COLUMNS)
    for original, back in zip(rows, parsed):
        assert back["label"] == original["label"]
        if original["qps"] is not None:
            assert float(back["qps"]) == original["qps"]


def test_text_table_is_aligned(site):
    records, _, _, _ = site
    text = format_table(results_table(records))
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == len(records) + 2
    assert lines[0].split()[:3] == ["dataset", "algorithm", "label"]
    assert format_table([]).startswith("dataset")


# -- intervals, ties and tables for papers -----------------------------------------------------
def test_wilson_intervals_match_the_formula_and_bound_the_recall():
    from harness.report.summary import recall_interval, wilson

    low, high = wilson(19, 20)
    assert (round(low, 4), round(high, 4)) == (0.7639, 0.9911)
    assert wilson(20, 20)[1] == 1.0 and wilson(0, 20)[0] == 0.0
    record = {"metrics": {"recall_at_1": 0.9, "recall_at_k": 0.9}, "n_queries": 200, "k": 10}
    one, at_k = recall_interval(record, "recall_at_1"), recall_interval(record, "recall_at_k")
    assert one[0] < 0.9 < one[1] and at_k[0] < 0.9 < at_k[1]
    assert at_k[1] - at_k[0] < one[1] - one[0]  # 2000 slots pin recall@k down more than 200 queries


def test_a_leader_whose_qps_overlaps_the_runner_up_is_marked_tied():
    from harness.report.summary import mark_leaders

    def row(series, qps, low, high):
        return {"dataset": "d", "threshold": 0.9, "series": series, "qps": qps, "qps_min": low, "qps_max": high}

    clear = mark_leaders([row("a", 100.0, 95.0, 105.0), row("b", 50.0, 45.0, 55.0)])
    assert [r["verdict"] for r in clear] == ["leader", None]
    close = mark_leaders([row("a", 100.0, 80.0, 105.0), row("b", 90.0, 85.0, 95.0)])
    assert [r["verdict"] for r in close] == ["tied", "tied"]


@pytest.mark.slow
def test_summary_as_latex_and_markdown_and_csv_with_intervals(tmp_path, capsys):
    from harness.cli import main
    from records_factory import DEFAULT_DATASET, write_synthetic_records

    write_synthetic_records(tmp_path / "r", DEFAULT_DATASET)
    base = ["results", "--dataset", DEFAULT_DATASET, "--results-dir", str(tmp_path / "r")]
    assert main([*base, "--summary", "--metric", "recall_at_k", "--thresholds", "0.5,0.9", "--format", "latex"]) == 0
    latex = capsys.readouterr().out
    assert "% needs \\usepackage{booktabs}" in latex and "\\toprule" in latex and "recall\\_at\\_k" in latex
    assert main([*base, "--summary", "--format", "markdown"]) == 0
    markdown = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| threshold")]
    assert markdown[0].startswith("| threshold | method | qps (1/s)") and "recall_low" in markdown[0]
    assert main([*base, "--format", "csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    for column in ("recall_at_1_low", "recall_at_1_high", "recall_at_k_id", "qps_best", "qps_min", "qps_max",
                   "n_queries", "latency_p50_s", "latency_p99_s"):
        assert column in header
    assert main([*base, "--summary", "--thresholds", "1.5"]) == 2


@pytest.mark.slow
def test_compare_two_result_sets_gives_ratios_intervals_and_verdicts(tmp_path, capsys):
    import json
    import shutil

    from harness.cli import main
    from records_factory import DEFAULT_DATASET, write_synthetic_records

    write_synthetic_records(tmp_path / "a", DEFAULT_DATASET, include_failed=False)
    shutil.copytree(tmp_path / "a", tmp_path / "same")
    shutil.copytree(tmp_path / "a", tmp_path / "fast")
    for path in (tmp_path / "fast").rglob("*.json"):  # the same runs, three times the q/s
        document = json.loads(path.read_text())
        m = document["metrics"]
        m["qps"], m["qps_runs"] = m["qps"] * 3, [q * 3 for q in m["qps_runs"]]
        path.write_text(json.dumps(document))
    base = ["compare", "--dataset", DEFAULT_DATASET, "--results-dir", str(tmp_path / "a"), "--plots-dir", str(tmp_path / "p"),
            "--format", "csv", "--thresholds", "0.5"]
    assert main([*base, "--against", str(tmp_path / "same")]) == 0
    same = capsys.readouterr().out.splitlines()
    assert same[0].startswith("series,threshold,qps_a,qps_b,ratio,ratio_low,ratio_high,verdict")
    assert all("no significant difference" in line for line in same[1:])
    assert main([*base, "--against", str(tmp_path / "fast")]) == 0
    slower = capsys.readouterr().out.splitlines()[1:]
    assert slower and all(",slower," in line for line in slower)
    ratio = float(slower[0].split(",")[4])
    assert abs(ratio - 1 / 3) < 1e-9
    assert (tmp_path / "p" / DEFAULT_DATASET / "compare-a-vs-fast.png").is_file()
    assert main([*base, "--series", "faiss-ivf,hnswlib"]) == 0
    [row] = capsys.readouterr().out.splitlines()[1:]
    assert row.startswith("faiss-ivf vs hnswlib,0.5,")
