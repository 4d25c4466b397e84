"""Figures drawn from synthetic records on disk: files, image validity, series drawn, styles."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import matplotlib.image
import pytest
from records_factory import DEFAULT_DATASET, write_synthetic_records

from harness.records import load_records
from harness.report.plots import AXIS_FIGURES, FIGURE_TITLES, FORMATS, figure_caption, make_plots, plot_all

from harness.report.style import KNOWN_STYLES, linestyle_for, style_for

DATASET = DEFAULT_DATASET
#: the figures every results directory gets (those over --batch-size / --threads need several values)
ALWAYS = [name for name in FIGURE_TITLES if name not in {spec[0] for spec in AXIS_FIGURES}]


def _render(tmp_path_factory: pytest.TempPathFactory, gpu: bool):
    root = tmp_path_factory.mktemp("gpu" if gpu else "cpu")
    write_synthetic_records(root / "results", DATASET, gpu=gpu)
    records = load_records(root / "results", DATASET)
    infos = plot_all(records, root / "plots", DATASET)
    return records, {info.name: info for info in infos}


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    return _render(tmp_path_factory, gpu=False)


@pytest.fixture(scope="module")
def gpu_records(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu")
    write_synthetic_records(root / "results", DATASET, gpu=True)
    return load_records(root / "results", DATASET)


def test_every_figure_written_in_every_format(cpu_run):
    _, infos = cpu_run
    assert list(infos) == ALWAYS + ["qps-batch-size"]  # the records hold batch sizes 1 (single mode) and the whole set
    for info in infos.values():
        if info.n_points == 0:  # nothing of these runs to draw: left out, the reason kept
            assert info.paths == [] and info.notes
            continue
        assert sorted(p.suffix for p in info.paths) == sorted(f".{fmt}" for fmt in FORMATS)
        for path in info.paths:
            assert path.is_file() and path.stat().st_size > 1000


def test_png_files_are_images_and_svg_files_parse(cpu_run):
    _, infos = cpu_run
    for info in infos.values():
        for path in info.paths:
            if path.suffix == ".png":
                pixels = matplotlib.image.imread(path)
                assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 200
            else:
                root = ET.parse(path).getroot()
                assert root.tag.endswith("svg")


def test_recall_qps_figures_show_every_successful_algorithm(cpu_run):
    records, infos = cpu_run
    ok_algorithms = {r["algorithm"] for r in records if r["status"] == "ok"}
    assert ok_algorithms == {"bruteforce", "faiss-ivf", "hnswlib", "potential-gaussian"}
    for name in ("recall1-qps", "recallk-qps", "recall1-cpu-time", "build-time"):
        assert set(infos[name].algorithms) == ok_algorithms, name
    assert "hnswlib [single]" in infos["recall1-qps"].series
    n_ok = sum(1 for r in records if r["status"] == "ok")
    assert infos["recall1-qps"].n_points == n_ok  # failed record not drawn, every ok one is


def test_figure_caption_names_dataset_hardware_and_date(cpu_run):
    records, _ = cpu_run
    caption = figure_caption(records, DATASET)
    assert DATASET in caption and "Synthetic CPU" in caption and "2025-03-01" in caption and "GPU: none" in caption


def test_gpu_figure_without_gpu_runs_says_so(cpu_run):
    _, infos = cpu_run
    gpu = infos["recall1-gpu-time"]
    assert gpu.series == [] and gpu.n_points == 0
    assert any("no GPU runs" in note for note in gpu.notes)
    assert gpu.paths == []


@pytest.mark.slow
def test_gpu_figure_with_gpu_runs(gpu_records, tmp_path):
    names = ["recall1-qps", "recall1-gpu-time"]
    infos = {i.name: i for i in plot_all(gpu_records, tmp_path, DATASET, names=names)}
    assert list(infos) == names
    assert set(infos["recall1-gpu-time"].series) == {"bruteforce [cuda]", "potential-gaussian [cuda]"}
    assert "bruteforce" in infos["recall1-qps"].series and "bruteforce [cuda]" in infos["recall1-qps"].series
    assert "GPU: NVIDIA H100" in figure_caption(gpu_records, DATASET)


def test_unknown_figure_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown figure"):
        plot_all([], tmp_path, DATASET, names=["recall-qps"])


def test_iteration_figures_only_show_iterative_methods(cpu_run):
    _, infos = cpu_run
    assert infos["recall1-iterations"].algorithms == ["potential-gaussian"]
    distribution = infos["iterations-distribution"]
    assert distribution.algorithms == ["potential-gaussian"]
    assert distribution.n_points >= 2
    assert all(label.startswith("potential-gaussian(") for label in distribution.series)


def test_index_memory_skips_indexes_without_size(cpu_run):
    _, infos = cpu_run
    # the potential method records index_bytes = None: nothing to plot for it
    assert "potential-gaussian" not in infos["index-memory"].algorithms
    assert "hnswlib" in infos["index-memory"].algorithms


@pytest.mark.slow
def test_non_positive_values_on_log_axes_are_dropped_with_a_note(tmp_path):
    write_synthetic_records(tmp_path / "results", DATASET, include_failed=False)
    records = load_records(tmp_path / "results", DATASET)
    records[0]["metrics"]["qps"] = 0.0
    [info] = plot_all(records, tmp_path / "plots", DATASET, names=["recall1-qps"])
    assert info.n_points == len(records) - 1
    assert any("not shown (log scale)" in note for note in info.notes)


@pytest.mark.slow
def test_no_records_writes_no_figure(tmp_path):
    (tmp_path / "recall1-qps.png").write_bytes(b"from an earlier run")
    assert make_plots([], tmp_path, DATASET) == []
    assert not (tmp_path / "recall1-qps.png").exists()


@pytest.mark.slow
def test_other_datasets_are_ignored(tmp_path):
    write_synthetic_records(tmp_path / "results", "other-8-angular", include_failed=False)
    records = load_records(tmp_path / "results")
    infos = plot_all(records, tmp_path / "plots", DATASET, names=["recall1-qps", "build-time"])
    assert [info.n_points for info in infos] == [0, 0]


def test_known_styles_are_fixed_and_distinct():
    assert style_for("hnswlib") == KNOWN_STYLES["hnswlib"]
    colours = [s.colour for s in KNOWN_STYLES.values()]
    assert len(set(colours)) == len(colours)


def test_unknown_names_get_a_stable_style():
    first = style_for("my-new-method")
    assert style_for("my-new-method") == first
    assert len({style_for(f"algo-{i}") for i in range(20)}) > 5  # spread, not one style for all


def test_linestyles_tell_device_and_mode_apart():
    styles = {linestyle_for(d, m) for d in ("cpu", "cuda") for m in ("batch", "single")}
    assert len(styles) == 4
    assert linestyle_for(None, None) == "-"


def test_a_control_is_drawn_muted_in_its_methods_colour():
    from matplotlib.figure import Figure

    from harness.report.plots import _draw_series, _Point

    ax = Figure().add_subplot()
    method = {"algorithm": "potential-gaussian", "role": "method"}
    control = {"algorithm": "potential-gaussian", "role": "control", "control_switch": "ascent=none"}
    _draw_series(ax, "potential-gaussian", [_Point(0.9, 100.0, "m", method), _Point(0.99, 50.0, "m", method)], True)
    _draw_series(ax, "potential-gaussian [ascent=none]", [_Point(1.0, 300.0, "c", control)], True)
    drawn_method, drawn_control = ax.lines
    assert drawn_method.get_color() == drawn_control.get_color() == style_for("potential-gaussian").colour
    assert drawn_control.get_linestyle() == ":" and drawn_control.get_markerfacecolor() == "none"
    assert drawn_method.get_linestyle() != ":" and drawn_control.get_alpha() < 1.0


# -- any metric on any axis ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("axis", ["x", "y"])
def test_every_metric_can_go_on_either_axis(cpu_run, tmp_path, axis):
    from harness.report.metric_table import METRICS
    from harness.report.plots import plot_metrics

    records, _ = cpu_run
    for m in METRICS:
        x, y = (m.name, "qps") if axis == "x" else ("recall_at_1", m.name)
        info = plot_metrics(records, tmp_path, DATASET, x, y, formats=("png",))
        assert [p.name for p in info.paths] == [f"{y}-vs-{x}.png"] and info.paths[0].stat().st_size > 1000
        present = any(math.isfinite(m.value(r)) for r in records if r.get("status") == "ok")
        assert (info.n_points > 0) == present, m.name  # drawn where measured, a note where not


def test_a_logit_recall_axis_reads_from_one_half_to_three_nines(cpu_run, tmp_path):
    from matplotlib.figure import Figure

    from harness.report.plots import LOGIT_TICKS, _apply_scale

    ax = Figure().add_subplot()
    ax.plot([0.6, 0.95, 0.999], [1, 2, 3])
    _apply_scale(ax, "x", "logit", [0.6, 0.95, 0.999])
    assert ax.get_xscale() == "logit"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "0.9", "0.99", "0.999"]
    assert ax.get_xlim()[0] <= 0.5 and ax.get_xlim()[1] >= LOGIT_TICKS[-1]


@pytest.mark.slow
def test_plot_command_takes_metrics_scales_and_formats(tmp_path, capsys):
    from harness.cli import main

    write_synthetic_records(tmp_path / "results", DATASET)
    dirs = ["--results-dir", str(tmp_path / "results"), "--plots-dir", str(tmp_path / "plots")]
    argv = ["plot", "--dataset", DATASET, "--x", "recall_at_k", "--y", "qps", "--x-scale", "logit",
            "--exclude", "bruteforce", "--format", "png,pdf", *dirs]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "qps-vs-recall_at_k.png" in out and "qps-vs-recall_at_k.pdf" in out
    assert (tmp_path / "plots" / DATASET / "qps-vs-recall_at_k.pdf").read_bytes()[:4] == b"%PDF"
    assert main(["plot", "--dataset", DATASET, "--x", "recal", "--y", "qps", *dirs]) == 2
    assert "unknown metric 'recal'" in capsys.readouterr().err


# -- intervals ------------------------------------------------------------------------------------
def test_front_points_carry_their_intervals_as_error_bars_unless_switched_off():
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    from harness.report.plots import _draw_series, _point
    from harness.report.summary import recall_interval

    record = {"algorithm": "hnswlib", "status": "ok", "n_queries": 100, "k": 10,
              "metrics": {"recall_at_1": 0.9, "qps": 1000.0, "qps_runs": [900.0, 1000.0, 1100.0]}}
    for intervals, expected in ((True, 2), (False, 0)):
        ax = Figure().add_subplot()
        point = _point(record, "recall_at_1", "qps", intervals)
        _draw_series(ax, "hnswlib", [point], True)
        bars = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert len(bars) == expected  # one horizontal (recall), one vertical (q/s)
        if intervals:
            (x_bar,), (y_bar,) = (b.get_segments() for b in bars)
            assert x_bar[:, 0] == pytest.approx(recall_interval(record, "recall_at_1"))  # Wilson, n = 100
            assert sorted(y_bar[:, 1]) == pytest.approx([900.0, 1100.0])  # slowest to fastest run


@pytest.mark.slow
def test_no_intervals_flag_draws_figures_without_error_bars(tmp_path):
    from harness.cli import main

    write_synthetic_records(tmp_path / "results", DATASET)
    svg_paths = {}
    for flag in ([], ["--no-intervals"]):
        plots = tmp_path / ("plain" if flag else "bars")
        assert main(["plot", "--dataset", DATASET, "--results-dir", str(tmp_path / "results"),
                     "--plots-dir", str(plots), *flag]) == 0
        svg_paths[bool(flag)] = (plots / DATASET / "recall1-qps.svg").read_text()
    # the error bars are extra line collections in the SVG: more paths with them than without
    assert svg_paths[False].count("<path") > svg_paths[True].count("<path")
