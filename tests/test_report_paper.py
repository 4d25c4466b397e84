"""From records to a paper without hand edits: summary tables with chosen columns, compact labels
and units, figures that stay readable for a weak method, the comparison's figure and messages."""
from __future__ import annotations

import re

import numpy as np
import pytest
from records_factory import DEFAULT_DATASET, make_document, write_one, write_synthetic_records

from harness.records import load_records

DATASET = DEFAULT_DATASET
SCALE = 277.38


def _potential(recall: float, qps: float, beta: float, ascent: str = "meanshift", n: int = 50, role: str = "method",
               dist: float = 20_000.0) -> dict:
    query = {"beta": beta, "ascent": ascent, "snap": "final", "m": 100, "memory_mb": 128.0, "precision": "fp32"}
    fields = ({"role": "control", "control_switch": "ascent=none"} if role == "control" else
              {"role": "method", "controls": [{"switch": "ascent=none", "query_params": {**query, "ascent": "none"}}]})
    document = make_document(DATASET, "potential-laplace", {"potential": "laplace"}, query, recall, qps, n_queries=n,
                             **fields)
    document["metrics"].update(dist_comps_mean=dist, adapter_stats={"scale": SCALE})
    return document


def _write(root, documents) -> None:
    rng = np.random.default_rng(0)
    for document in documents:
        write_one(root, document, rng)


@pytest.fixture
def paper_results(tmp_path):
    """faiss-ivf and hnswlib (synthetic), potential-gaussian at three betas, each with its exact-search
    control (ascent=none: the same point for every beta)."""
    root = tmp_path / "results"
    write_synthetic_records(root, DATASET, include_failed=False)
    documents = []
    for beta, recall, qps in ((100.0, 0.93, 900.0), (300.0, 0.97, 1500.0), (1000.0, 0.99, 2100.0)):
        documents.append(_potential(recall, qps, beta))
        documents.append(_potential(1.0, 4000.0, beta, ascent="none", role="control", dist=10_100.0))
    _write(root, documents)
    return root


def _run(capsys, *argv) -> tuple[int, str, str]:
    from harness.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _tabulars(latex: str) -> list[list[str]]:
    return [block.split("\\midrule")[0].split("\\toprule")[1].strip().removesuffix("\\\\").split(" & ")
            for block in latex.split("\\begin{tabular}")[1:]]


@pytest.mark.slow
def test_latex_summary_has_exactly_the_chosen_columns_compact_labels_and_the_control_table(paper_results, capsys):
    code, out, _ = _run(capsys, "results", "--dataset", DATASET, "--results-dir", str(paper_results), "--summary",
                        "--format", "latex", "--columns", "recall_at_1,qps,dist_comps_mean")
    assert code == 0
    summary, controls = _tabulars(out)
    assert [h.strip() for h in summary] == ["threshold", "method", "recall\\_at\\_1", "qps (1/s)", "dist\\_comps\\_mean"]
    assert "\\begin{tabular}{rlrrr}" in out  # text left, numbers right
    assert "% needs \\usepackage{booktabs}" in out
    assert out.index("What the climb adds") > out.index("\\end{tabular}")  # the control table after the summary
    assert "control\\_dist\\_comps\\_mean" in " ".join(controls) and "recall\\_gain" in " ".join(controls)
    body = out.split("\\midrule\n")[1]
    # compact labels: the series and the one parameter that differs within it, none of the shared ones
    assert "potential-laplace beta=1000" in body
    for shared in ("ascent=meanshift", "snap=final", "memory", "precision"):
        assert shared not in body
    assert f"{SCALE:g} raw units" in out  # the length unit, said once


@pytest.mark.slow
def test_markdown_summary_has_the_chosen_columns_aligned_and_the_control_table(paper_results, capsys):
    code, out, _ = _run(capsys, "results", "--dataset", DATASET, "--results-dir", str(paper_results), "--summary",
                        "--format", "markdown", "--columns", "recall_at_1,qps,dist_comps_mean")
    assert code == 0
    tables = [line for line in out.splitlines() if line.startswith("| threshold") or line.startswith("| method")]
    assert tables[0] == "| threshold | method | recall_at_1 | qps (1/s) | dist_comps_mean |"
    lines = out.splitlines()
    assert lines[lines.index(tables[0]) + 1] == "| ---: | :--- | ---: | ---: | ---: |"
    assert len(tables) == 2 and out.index(tables[1]) > out.index(tables[0])  # the control table after it


@pytest.mark.slow
def test_text_summary_fits_120_columns_with_one_number_format_per_column(paper_results, capsys):
    code, out, _ = _run(capsys, "results", "--dataset", DATASET, "--results-dir", str(paper_results), "--summary")
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 120
    code, out, _ = _run(capsys, "results", "--dataset", DATASET, "--results-dir", str(paper_results), "--summary",
                        "--columns", "bogus_metric")
    assert code == 2


def test_a_column_has_one_number_format():
    from harness.report.summary import column_formatter

    cells = [column_formatter("dist_comps_mean", [45_900.0, 10_100.0, 208_200.0, 1_387.5])(v)
             for v in (45_900.0, 10_100.0, 208_200.0, 1_387.5)]
    assert cells == ["45,900", "10,100", "208,200", "1,388"]
    qps = column_formatter("qps", [147.7, 16_620.5])
    assert [qps(147.7), qps(16_620.5)] == ["148", "16,620"]


def test_compact_labels_scale_column_and_series_split_by_number_of_queries():
    from harness.report.summary import label_maker, results_table, summary_rows

    records = [_potential(0.95, 1000.0, 100.0, n=50), _potential(0.96, 900.0, 1000.0, n=50),
               _potential(0.99, 3000.0, 1000.0, n=200)]
    assert label_maker(records)(records[1]) == "potential-laplace [n=50] beta=1000"
    series = {row["series"] for row in summary_rows(records, (0.9,))}
    assert series == {"potential-laplace [n=50]", "potential-laplace [n=200]"}
    assert {row["scale"] for row in results_table(records)} == {SCALE}


def test_latex_and_markdown_align_text_left_even_when_a_text_column_is_empty():
    from harness.report.summary import format_latex, format_markdown

    rows = [{"series": "a vs b", "ratio": None, "label_a": None, "verdict": "reached by neither"}]
    columns = ["series", "ratio", "label_a", "verdict"]
    assert "\\begin{tabular}{lrll}" in format_latex(rows, columns)
    assert format_markdown(rows, columns).splitlines()[1] == "| :--- | ---: | :--- | :--- |"


# --- figures --------------------------------------------------------------------------------------


def test_a_logit_axis_ticks_below_one_half_when_a_series_goes_there():
    from matplotlib.figure import Figure

    from harness.report.plots import _apply_scale

    ax = Figure().add_subplot()
    ax.plot([0.02, 0.9], [1, 2])
    _apply_scale(ax, "x", "logit", [0.02, 0.9])
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert any(float(label) < 0.5 for label in labels if label), labels


def test_coinciding_controls_are_one_point_naming_both(tmp_path):
    from matplotlib.figure import Figure

    from harness.report.interactive import figure_data
    from harness.report.plots import _draw_series, _Point

    controls = [_potential(1.0, 4000.0, beta, ascent="none", role="control", dist=10_100.0) for beta in (100.0, 1000.0)]
    data = figure_data(controls, DATASET)
    [series] = data["series"]
    assert series["same"]["recall_at_1 dist_comps_mean"] == [[0, 1]]
    assert series["labels"] == ["potential-laplace [ascent=none] beta=100", "potential-laplace [ascent=none] beta=1000"]
    ax = Figure().add_subplot()
    _draw_series(ax, "c", [_Point(1.0, 10_100.0, "c", controls[0]), _Point(1.0, 10_100.0, "c", controls[1])], False)
    assert len(ax.collections[0].get_offsets()) == 1


def test_colours_differ_within_a_report_and_single_mode_is_not_dotted():
    from harness.report.style import CONTROL_LINESTYLE, assign_styles, linestyle_for, style_for

    styles = assign_styles(["potential-gaussian", "faiss-ivf", "potential-laplace", "potential-imq", "hnswlib"])
    assert len({s.colour for s in styles.values()}) == 5
    assert styles["potential-gaussian"] == style_for("potential-gaussian")
    assert all(linestyle_for(d, "single") != CONTROL_LINESTYLE for d in ("cpu", "cuda"))


def test_hover_gives_units_and_only_the_parameters_that_vary():
    from harness.report.interactive import figure_data

    records = [_potential(0.93, 900.0, 100.0), _potential(0.99, 2100.0, 1000.0)]
    text = figure_data(records, DATASET)["series"][0]["text"][0]
    assert "beta=100" in text and "memory_mb" not in text and "precision" not in text
    for line in text.split("<br>"):
        found = re.match(r"^([^:<]+): (-?[\d.,]+(?:e-?\d+)?)(.*)$", line)
        if found:
            assert found.group(3).strip() and not found.group(3).strip().startswith("["), line
    assert f"1 = {SCALE:g} raw units" in text


@pytest.mark.slow
def test_a_cpu_only_report_has_no_gpu_time_figure_and_says_why(tmp_path):
    from harness.report.page import write_report
    from harness.report.plots import make_plots

    write_synthetic_records(tmp_path / "results", DATASET, gpu=False)
    records = load_records(tmp_path / "results", DATASET)
    figures = make_plots(records, tmp_path / "plots", DATASET)
    assert not [p for p in figures if p.stem == "recall1-gpu-time"]
    assert not (tmp_path / "plots" / "recall1-gpu-time.png").exists()
    page = write_report(records, tmp_path / "plots", DATASET, figures).read_text(encoding="utf-8")
    assert 'id="fig-recall1-gpu-time"' not in page
    assert "Left out" in page and "no GPU runs" in page


# --- compare --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_compare_names_its_figure_after_the_pair_and_suggests_a_misspelt_series(paper_results, tmp_path, capsys):
    base = ["compare", "--dataset", DATASET, "--results-dir", str(paper_results), "--plots-dir", str(tmp_path / "p")]
    code, _, err = _run(capsys, *base, "--series", "faiss-ivf,hnswlib", "--thresholds", "0.5")
    assert code == 0 and (tmp_path / "p" / DATASET / "compare-faiss-ivf-vs-hnswlib.png").is_file()
    code, out, err = _run(capsys, *base, "--series", "faiss-ivf,hnswlib", "--thresholds", "1.0")
    assert code == 0 and "no figure" in err
    assert not list((tmp_path / "p" / DATASET).glob("compare-*-vs-*.png"))[1:]  # nothing new drawn
    code, _, err = _run(capsys, *base, "--series", "faiss-ivv,hnswlib")
    assert code == 2 and "did you mean faiss-ivf" in err


def test_compare_says_which_side_reached_a_threshold():
    from harness.report.compare import compare_rows

    a = [_potential(0.99, 2000.0, 100.0)]
    b = [_potential(0.5, 9000.0, 100.0)]
    [row] = compare_rows(a, b, [("potential-laplace", "potential-laplace")], [0.9])
    assert row["verdict"].startswith("reached by A only")
    [row] = compare_rows(b, b, [("potential-laplace", "potential-laplace")], [0.9])
    assert row["verdict"] == "reached by neither"
