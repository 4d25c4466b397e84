"""Figures from run records: recall against speed, time, iterations, build cost and memory.

Every figure is drawn from records alone (design.md section 6: a plot never reruns anything) and
written as PNG (for the report and quick looks) and SVG (for papers). Choices worth knowing:

- Each series (an algorithm, tagged with device and mode when not batch CPU; see
  `harness.report.summary.series_name`) is drawn as its Pareto front, a line, over all its points, faint.
- Log-scale axes cannot show values <= 0: such points are left out of that figure, and the
  figure says how many. Recall is on a logit axis (ticks 0.5 ... 0.999), where 0 and 1 are drawn
  just inside the edges (LOGIT_CLIP), so no recall is ever dropped.
- Each front point carries its 95 % interval as error bars (a recall's Wilson interval from the
  number of queries; q/s from the slowest to the fastest timed run); `--no-intervals` leaves them out.
- A figure with nothing to show for these runs (GPU time on a CPU-only run, no iterative method) is
  left out, its file (from an earlier run) removed; `FigureInfo.notes` and `left_out_reason` say
  why, and the report says it where the figure would be.
- Points of one series that coincide (the exact-search controls of a potential) are drawn once.
- Log axes label their major ticks only; logit recall axes tick below 0.5 when the data goes there.
- Colours and markers come from `harness.report.style` (one colour-blind-safe palette, every
  algorithm of a dataset in its own hue), so an algorithm looks the same in every figure.
- Figures are built with `matplotlib.figure.Figure`, never pyplot: no global state, no GUI
  backend, nothing left open after a long run.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogFormatter, LogLocator, NullFormatter

from harness.records import load_arrays
from harness.report.metric_table import SCALES, Metric, get_metric
from harness.report.pareto import pareto_front
from harness.report.style import CONTROL_LINESTYLE, AlgorithmStyle, assign_styles, linestyle_for, mpl_linestyle
from harness.report.summary import compact_json, is_control, is_ok, label_maker, metric, series_name, series_namer

Record = Mapping[str, Any]

FORMATS: tuple[str, ...] = ("png", "svg")
MAX_DISTRIBUTIONS = 12
_DPI = 110


@dataclass
class FigureInfo:
    """What one figure shows: for the report, the CLI's messages and tests."""

    name: str
    title: str
    paths: list[Path]
    series: list[str] = field(default_factory=list)
    algorithms: list[str] = field(default_factory=list)
    n_points: int = 0
    notes: list[str] = field(default_factory=list)
    #: the axes' labels as drawn ("" for an axis without one)
    x_label: str = ""
    y_label: str = ""


@dataclass
class _Point:
    x: float
    y: float
    series: str
    record: Record
    #: the 95 % interval of x and of y (see `Metric.bounds`); NaN where there is none or it is not drawn
    x_bounds: tuple[float, float] = (math.nan, math.nan)
    y_bounds: tuple[float, float] = (math.nan, math.nan)


def _point(record: Record, x: str, y: str, intervals: bool, series: str | None = None) -> _Point:
    """A record as a point of metric `y` against metric `x`, with their intervals when wanted,
    each in the unit it is shown in (its declaration's display unit: bytes as MiB)."""
    x_metric, y_metric = get_metric(x), get_metric(y)
    point = _Point(x_metric.shown_value(record), y_metric.shown_value(record), series or series_name(record), record)
    if intervals:
        point.x_bounds, point.y_bounds = x_metric.shown_bounds(record), y_metric.shown_bounds(record)
    return point


def make_plots(records: Sequence[Record], out_dir: Path, dataset: str, intervals: bool = True) -> list[Path]:
    """Write every figure for `dataset` into `out_dir` (PNG and SVG); return the files."""
    return [path for info in plot_all(records, out_dir, dataset, intervals=intervals) for path in info.paths]


def plot_all(
    records: Sequence[Record], out_dir: Path, dataset: str, names: Sequence[str] | None = None,
    intervals: bool = True,
) -> list[FigureInfo]:
    """Write every figure for `dataset` (or only those in `names`), returning what each shows.

    Records of other datasets and records that are not "ok" are ignored here; the report lists
    failed runs in its table instead. With `intervals`, each front point carries its 95 % interval
    (Wilson for a recall, min-max of the timed runs for q/s) as error bars.
    """
    unknown = sorted(set(names or ()) - set(FIGURE_TITLES))
    if unknown:
        raise ValueError(f"unknown figure name(s) {unknown}; known: {list(FIGURE_TITLES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ok = [r for r in records if is_ok(r) and r.get("dataset", dataset) == dataset]
    caption = figure_caption([r for r in records if r.get("dataset", dataset) == dataset], dataset)
    k_label = _k_label(ok)
    infos = []
    for spec in FIGURES:
        name = spec.name
        if names is not None and name not in names:
            continue
        figure = Figure(figsize=(8.5, 5.2), layout="constrained")
        ax = figure.add_subplot()
        info = spec.draw(ax, ok, intervals)
        info.name, info.title = name, spec.title
        if info.n_points == 0:
            # nothing of this run to show (GPU time on a CPU-only run): no file, the reason kept
            # for the report (`left_out_reason`); a file an earlier run wrote is removed
            info.notes = [spec.empty]
            for fmt in FORMATS:
                (out_dir / f"{name}.{fmt}").unlink(missing_ok=True)
            infos.append(info)
            continue
        _label_axes(ax, spec, k_label)
        info.x_label, info.y_label = ax.get_xlabel(), ax.get_ylabel()
        figure.suptitle(f"{spec.title}\n{caption}", fontsize=9)
        if info.series and name != "iterations-distribution":
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8,
                      title="front (line), all runs (faint)", title_fontsize=7)
        _finish_log_axes(ax)
        info.paths = save_figure(figure, out_dir, name)
        infos.append(info)
    infos += plot_axes(ok, out_dir, dataset, names, caption)  # q/s against --batch-size / --threads
    return infos


def left_out_reason(name: str) -> str:
    """Why a figure of `FIGURES` is not drawn when the runs hold nothing for it."""
    return next((spec.empty for spec in FIGURES if spec.name == name), "no data for it in these runs")


def _finish_log_axes(ax: Axes) -> None:
    """Log axes label their major ticks only, as plain numbers: every decade, or 1-2-5 of each
    decade when the axis spans less than about one and a half decades (minor ticks unlabelled)."""
    for axis, scale, (low, high) in ((ax.xaxis, ax.get_xscale(), ax.get_xlim()), (ax.yaxis, ax.get_yscale(), ax.get_ylim())):
        if scale != "log" or low <= 0:
            continue
        subs = (1.0, 2.0, 5.0) if high / low < 30 else (1.0,)
        axis.set_major_locator(LogLocator(base=10, subs=subs))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def _label_axes(ax: Axes, spec: FigureSpec, k_label: str) -> None:
    """Axis labels from the metrics' declarations and the scales the figure was drawn on."""
    ax.set_xlabel(axis_title(get_metric(spec.x), ax.get_xscale(), k_label, spec.x_note))
    if spec.y:
        ax.set_ylabel(axis_title(get_metric(spec.y), ax.get_yscale(), k_label))
    ax.grid(True, which="major", alpha=0.3)


def axis_title(metric: Metric, scale: str, k: str = "k", note: str = "") -> str:
    """A metric's axis label: its declared label (recall@k with the runs' k) and, in brackets, the
    unit it is shown in, `note`, and the scale when not linear: "Build time (s, log scale)"."""
    label = metric.label.replace("@k", f"@{k}")
    parts = [part for part in (metric.shown_unit, note) if part]
    if scale in ("log", "logit"):
        parts.append(f"{scale} scale")
    if scale == "logit":
        parts.append(f"1.0 drawn at {1.0 - LOGIT_CLIP:g}")
    return f"{label} ({', '.join(parts)})" if parts else label


def _k_label(records: Sequence[Record]) -> str:
    """The k of recall@k: a number when every run used the same k, else "k"."""
    ks = {r.get("k") for r in records}
    return str(ks.pop()) if len(ks) == 1 else "k"


def figure_caption(records: Sequence[Record], dataset: str) -> str:
    """Dataset, dates and hardware of the runs (two lines), for the figure's title and the report."""
    provenance = [r.get("provenance") or {} for r in records]
    cpus = sorted({str(p["cpu_model"]) for p in provenance if p.get("cpu_model")})
    gpus = sorted({str(p["gpu_name"]) for p in provenance if p.get("gpu_name")})
    days = sorted({str(p.get("finished") or p.get("started") or "")[:10] for p in provenance} - {""})
    first = records[0] if records else {}
    shape = ", ".join(
        part for part in (
            first.get("distance"),
            f"n={first['n_train']:,}" if first.get("n_train") else None,
            f"d={first['dimension']}" if first.get("dimension") else None,
        ) if part
    )
    cpu = "; ".join(cpus) if len(cpus) <= 2 else f"{len(cpus)} CPU models"
    gpu = "; ".join(gpus) if gpus else "none"
    when = days[0] if len(days) == 1 else (f"{days[0]} to {days[-1]}" if days else "date unknown")
    head = f"{dataset} ({shape})" if shape else dataset
    return f"{head} | runs: {when}\nCPU: {cpu or 'unknown'} | GPU: {gpu}"


def _log_y(y_metric: Metric) -> bool | None:
    """A y axis on the metric's own scale: log when it reads best on one, else log only when the
    values span more than a factor of 50 (None: decided from the values)."""
    return True if y_metric.scale == "log" else None


def _record_tradeoff(
    ax: Axes, records: Sequence[Record], x_metric: str, y_metric: str, empty: str = "no successful runs to show",
    intervals: bool = True,
) -> FigureInfo:
    """One point per record: x and y metrics, NaN (not measured) left out, each front oriented by
    the metrics' declared directions. The x axis is on its metric's scale (a recall: logit, so the
    high-recall region where competitive methods differ is readable)."""
    x_spec, y_spec = get_metric(x_metric), get_metric(y_metric)
    namer = series_namer(records)
    points = [_point(r, x_metric, y_metric, intervals, namer(r)) for r in records]
    points = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
    if x_spec.scale != "linear":
        points = _fit_scale(points, x_spec.scale, "x")
    info = _draw_tradeoff(ax, points, y_spec.higher_is_better, _log_y(y_spec), empty, y_metric, x_spec.higher_is_better,
                          styles=_styles(records))
    _apply_scale(ax, "x", x_spec.scale, [p.x for p in points])
    return info


def _index_tradeoff(ax: Axes, records: Sequence[Record], y_metric: str) -> FigureInfo:
    """One point per index (series + build parameters): best recall@1 against a build cost (the
    median over the index's records, in the unit the cost is shown in)."""
    y_spec = get_metric(y_metric)
    groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
    namer = series_namer(records)
    for record in records:
        groups[(namer(record), compact_json(record.get("build_params")))].append(record)
    points = []
    for (series, _), members in sorted(groups.items()):
        recall = max(metric(r, "recall_at_1") for r in members)
        costs = [y_spec.shown_value(r) for r in members if math.isfinite(y_spec.value(r))]
        if costs and math.isfinite(recall):
            best = max(members, key=lambda r: metric(r, "recall_at_1"))
            points.append(_Point(recall, float(np.median(costs)), series, best))
    return _draw_tradeoff(ax, points, y_spec.higher_is_better, _log_y(y_spec), f"no index has a recorded {y_metric}", y_metric,
                          styles=_styles(records))


def _styles(records: Sequence[Record]) -> dict[str, AlgorithmStyle]:
    """The style of every algorithm of the figure's records (`style.assign_styles`): the same in
    every figure of one dataset, every colour different."""
    return assign_styles(str(r.get("algorithm")) for r in records)


def _draw_tradeoff(
    ax: Axes, points: list[_Point], y_larger_better: bool, log_y: bool | None, empty: str, y_name: str,
    x_larger_better: bool = True, styles: dict[str, AlgorithmStyle] | None = None,
) -> FigureInfo:
    """Each series' front as a line over its points drawn faint, oriented by both directions."""
    info = FigureInfo(name="", title="", paths=[])
    if log_y is None:
        log_y = _wants_log([p.y for p in points])
    if log_y:
        dropped = [p for p in points if p.y <= 0]
        points = [p for p in points if p.y > 0]
        _set_log(ax.yaxis)
        if dropped:
            info.notes.append(f"{len(dropped)} point(s) with {y_name} <= 0 not shown (log scale)")
    by_series: dict[str, list[_Point]] = defaultdict(list)
    for point in points:
        by_series[point.series].append(point)
    styles = styles or _styles([p.record for p in points])
    for series in sorted(by_series):
        _draw_series(ax, series, by_series[series], y_larger_better, x_larger_better, styles)
    info.series = sorted(by_series)
    info.algorithms = sorted({str(p.record.get("algorithm")) for p in points})
    info.n_points = len(points)
    if not points:
        info.notes.insert(0, empty)
    _write_notes(ax, info.notes, centred=not points)
    return info


def _draw_series(ax: Axes, series: str, points: list[_Point], y_larger_better: bool, x_larger_better: bool = True,
                 styles: dict[str, AlgorithmStyle] | None = None) -> None:
    first = points[0].record
    algorithm = str(first.get("algorithm"))
    style = (styles or {}).get(algorithm) or _styles([first])[algorithm]
    xs = np.array([p.x for p in points])
    ys = np.array([p.y for p in points])
    front = pareto_front(xs, ys, x_larger_better=x_larger_better, y_larger_better=y_larger_better)
    # a control (the method with the part under test switched off) is drawn muted in the
    # method's colour: hollow markers, a thin dotted line, so the two read as a pair
    control = is_control(first)
    # points that coincide (every exact-search control of a potential lands on one) are drawn once
    unique = np.unique(np.column_stack([xs, ys]), axis=0) if len(xs) else np.empty((0, 2))
    ax.scatter(unique[:, 0], unique[:, 1], color=style.colour, marker=style.marker, alpha=0.12 if control else 0.25, s=22)
    _draw_intervals(ax, [points[i] for i in front], style.colour, 0.3 if control else 0.6)
    ax.plot(
        xs[front], ys[front], color=style.colour, marker=style.marker, markersize=5,
        linestyle=CONTROL_LINESTYLE if control else mpl_linestyle(linestyle_for(first.get("device"), first.get("mode"))),
        linewidth=1.0 if control else 1.4, alpha=0.55 if control else 1.0, label=series,
        markerfacecolor="none" if control else style.colour,
    )


def _draw_intervals(ax: Axes, points: Sequence[_Point], colour: str, alpha: float) -> None:
    """Error bars from each point's x and y interval (where it has one): thin, capless, in the
    series' colour, so a front shows at a glance where two algorithms cannot be told apart."""
    def errors(values: list[float], bounds: list[tuple[float, float]]) -> np.ndarray | None:
        below = [v - lo if math.isfinite(lo) else 0.0 for v, (lo, _) in zip(values, bounds)]
        above = [hi - v if math.isfinite(hi) else 0.0 for v, (_, hi) in zip(values, bounds)]
        spread = np.clip(np.array([below, above], dtype=float), 0.0, None)
        return spread if spread.any() else None

    xerr = errors([p.x for p in points], [p.x_bounds for p in points])
    yerr = errors([p.y for p in points], [p.y_bounds for p in points])
    if xerr is None and yerr is None:
        return
    ax.errorbar([p.x for p in points], [p.y for p in points], xerr=xerr, yerr=yerr, fmt="none",
                ecolor=colour, elinewidth=0.8, capsize=0, alpha=alpha)


def _set_log(axis: Axis) -> None:
    """Log scale with plain numbers (0.9, 2, 300) instead of 9x10^-1 on narrow ranges."""
    if axis is axis.axes.xaxis:
        axis.axes.set_xscale("log")
    else:
        axis.axes.set_yscale("log")
    axis.set_major_formatter(_PlainLogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1.5, 0.6)))


class _PlainLogFormatter(LogFormatter):
    """matplotlib's choice of which log ticks to label, written as plain numbers ("%g")."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def _wants_log(values: Sequence[float]) -> bool:
    """Log scale when positive values span more than a factor of 50."""
    positive = [v for v in values if v > 0]
    return bool(positive) and max(positive) / min(positive) > 50


def _write_notes(ax: Axes, notes: list[str], centred: bool) -> None:
    if not notes:
        return
    if centred:
        ax.text(0.5, 0.5, "\n".join(notes), transform=ax.transAxes, ha="center", va="center",
                fontsize=11, color="#444444")
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        ax.text(0.01, 0.01, "\n".join(notes), transform=ax.transAxes, ha="left", va="bottom",
                fontsize=7, color="#666666")


def front_configurations(records: Sequence[Record]) -> list[Record]:
    """Runs of iterative methods on their series' recall@1 / mean-iterations front.

    Sorted by series then recall; thinned evenly to MAX_DISTRIBUTIONS so the figure stays legible.
    """
    iterative = [r for r in records if math.isfinite(metric(r, "iterations_mean"))]
    by_series: dict[str, list[Record]] = defaultdict(list)
    for record in iterative:
        by_series[series_name(record)].append(record)
    chosen: list[Record] = []
    for series in sorted(by_series):
        members = by_series[series]
        front = pareto_front([metric(r, "recall_at_1") for r in members],
                             [metric(r, "iterations_mean") for r in members], y_larger_better=False)
        chosen.extend(members[i] for i in front)
    if len(chosen) > MAX_DISTRIBUTIONS:
        keep = np.unique(np.linspace(0, len(chosen) - 1, MAX_DISTRIBUTIONS).round().astype(int))
        chosen = [chosen[i] for i in keep]
    return chosen


def _iterations_distribution(ax: Axes, records: Sequence[Record]) -> FigureInfo:
    """Per front configuration: p5-p95 whisker, p25-p75 box, median bar, mean diamond, max cross."""
    info = FigureInfo(name="", title="", paths=[])
    rows: list[tuple[Record, np.ndarray]] = []
    for record in front_configurations(records):
        counts = _iteration_counts(record)
        if counts is None:
            info.notes.append(f"no iterations array for {record.get('label')}")
        else:
            rows.append((record, counts))
    styles, labeller = _styles(records), label_maker(records)
    for position, (record, counts) in enumerate(rows):
        _draw_distribution(ax, position, counts, styles[str(record.get("algorithm"))].colour)
    ax.set_yticks(range(len(rows)), [_row_label(record, labeller) for record, _ in rows], fontsize=7)
    if rows and _wants_log([float(c.max()) for _, c in rows] + [float(c.min()) for _, c in rows]):
        _set_log(ax.xaxis)
    info.series = [str(record.get("label")) for record, _ in rows]
    info.algorithms = sorted({str(record.get("algorithm")) for record, _ in rows})
    info.n_points = len(rows)
    if not rows:
        info.notes.insert(0, "no iterative runs with per-query iteration counts")
    else:
        ax.set_title("whisker p5-p95, box p25-p75, | median, diamond mean, x max", fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)
    _write_notes(ax, info.notes, centred=not rows)
    return info


def _iteration_counts(record: Record) -> np.ndarray | None:
    """The record's per-query iteration counts, or None when its arrays file lacks them."""
    try:
        arrays = load_arrays(record)
    except (OSError, KeyError, TypeError):
        return None
    counts = arrays.get("iterations")
    if counts is None or np.size(counts) == 0:
        return None
    return np.asarray(counts, dtype=float).ravel()


def _draw_distribution(ax: Axes, position: int, counts: np.ndarray, colour: str) -> None:
    p5, p25, p50, p75, p95 = np.percentile(counts, [5, 25, 50, 75, 95])
    ax.hlines(position, p5, p95, color=colour, linewidth=1)
    ax.hlines(position, p25, p75, color=colour, linewidth=7, alpha=0.45)
    ax.plot([p50], [position], marker="|", markersize=12, color=colour, linestyle="none")
    ax.plot([counts.mean()], [position], marker="D", markersize=4, color="black", linestyle="none")
    ax.plot([counts.max()], [position], marker="x", markersize=5, color=colour, linestyle="none")


def _row_label(record: Record, labeller: Callable[[Record], str] | None = None, width: int = 44) -> str:
    """A row's compact label (series and the parameters that differ), wrapped onto lines of about
    `width` characters, never cut."""
    import textwrap

    label = labeller(record) if labeller else str(record.get("label") or series_name(record))
    return "\n".join(textwrap.wrap(f"{label}  R@1={metric(record, 'recall_at_1'):.3f}", width, break_on_hyphens=False))


def save_figure(figure: Figure, out_dir: Path, name: str, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write the figure in every format; SVGs are byte-stable (fixed hash salt, no date)."""
    paths = []
    with rc_context({"svg.hashsalt": "gpnn-harness", "svg.fonttype": "path"}):
        for fmt in formats:
            path = out_dir / f"{name}.{fmt}"
            metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {}
            figure.savefig(path, format=fmt, dpi=_DPI, metadata=metadata)
            paths.append(path)
    return paths


@dataclass(frozen=True)
class FigureSpec:
    """One figure: its file name, title, the metrics on its axes and how it is drawn from the ok
    records. The axes' labels, units and the fronts' directions are the metrics' declarations
    (`harness.metric_catalog`), never retyped here."""

    name: str
    title: str
    #: the metric on the x axis
    x: str
    #: the metric on the y axis; "" when the y axis is not a metric (the distribution's rows)
    y: str
    #: draws on the axes from the ok records; the flag says whether to draw intervals
    draw: Callable[[Axes, Sequence[Record], bool], FigureInfo]
    #: said in the x label's brackets after the unit: how a point's x is chosen
    x_note: str = ""
    #: why the figure is left out when the runs hold nothing for it (the report says it)
    empty: str = "no successful runs to show"


def _tradeoff(name: str, title: str, x: str, y: str, **options: Any) -> FigureSpec:
    """A figure of one point per record, metric `y` against metric `x` (see `_record_tradeoff`)."""
    return FigureSpec(name, title, x, y, lambda ax, ok, intervals: _record_tradeoff(ax, ok, x, y, intervals=intervals, **options),
                      empty=options.get("empty", f"no successful run has both {x} and {y}"))


def _per_index(name: str, title: str, y: str) -> FigureSpec:
    """A figure of one point per index: the best recall@1 it reaches against a build cost `y`."""
    return FigureSpec(name, title, "recall_at_1", y, lambda ax, ok, _: _index_tradeoff(ax, ok, y),
                      x_note="best over the query parameters of an index", empty=f"no index has a recorded {y}")


#: every figure `harness plot` draws, in order: adding a figure is one entry
FIGURES: tuple[FigureSpec, ...] = (
    _tradeoff("recall1-qps", "Recall@1 against queries per second", "recall_at_1", "qps"),
    _tradeoff("recallk-qps", "Recall@k against queries per second", "recall_at_k", "qps"),
    _tradeoff("recall1-cpu-time", "Recall@1 against CPU time per query", "recall_at_1", "query_cpu_s"),
    _tradeoff("recall1-gpu-time", "Recall@1 against GPU time per query", "recall_at_1", "query_gpu_s",
              empty="no GPU runs: no record has a GPU time"),
    _tradeoff("recall1-iterations", "Recall@1 against mean iterations per query (iterative methods)", "recall_at_1",
              "iterations_mean", empty="no iterative runs: no record has iterations_mean"),
    FigureSpec("iterations-distribution", "Iterations per query, for the configurations on each front",
               "iterations_mean", "", lambda ax, ok, _: _iterations_distribution(ax, ok),
               empty="no iterative runs with per-query iteration counts"),
    _per_index("build-time", "Build time against the best recall@1 each index reaches", "build_s"),
    _per_index("index-memory", "Index size against the best recall@1 each index reaches", "index_bytes"),
)
FIGURE_TITLES: dict[str, str] = {spec.name: spec.title for spec in FIGURES}


# --- a figure of any two metrics ---------------------------------------------------------------

#: ticks of a logit recall axis: the high-recall region, where competitive methods differ, and
#: below one half the ones a weak method needs (an axis shows those its range reaches)
LOGIT_TICKS = (0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999)
#: values of exactly 0 or 1 are drawn this close to the edge of a logit axis (they are infinite there)
LOGIT_CLIP = 5e-4


def plot_metrics(
    records: Sequence[Record], out_dir: Path, dataset: str, x: str, y: str, *,
    x_scale: str | None = None, y_scale: str | None = None, algorithms: Sequence[str] | None = None,
    exclude: Sequence[str] = (), formats: Sequence[str] = FORMATS, intervals: bool = True,
) -> FigureInfo:
    """One figure of metric `y` against metric `x` (names from `metric_table.METRICS`), each
    series' Pareto front oriented by the metrics' directions; scales default to each metric's own."""
    x_metric, y_metric = get_metric(x), get_metric(y)
    x_scale, y_scale = x_scale or x_metric.scale, y_scale or y_metric.scale
    for scale in (x_scale, y_scale):
        if scale not in SCALES:
            raise ValueError(f"unknown axis scale {scale!r}; known: {', '.join(SCALES)}")
    chosen = [
        r for r in records
        if is_ok(r) and r.get("dataset", dataset) == dataset and str(r.get("algorithm")) not in exclude
        and (algorithms is None or str(r.get("algorithm")) in algorithms)
    ]
    namer = series_namer(chosen)
    points = [_point(r, x, y, intervals, namer(r)) for r in chosen]
    points = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
    points = _fit_scale(points, x_scale, "x") if x_scale != "linear" else points
    points = _fit_scale(points, y_scale, "y") if y_scale != "linear" else points
    figure = Figure(figsize=(8.5, 5.2), layout="constrained")
    ax = figure.add_subplot()
    info = FigureInfo(name=f"{y}-vs-{x}", title=f"{y_metric.label} against {x_metric.label}", paths=[])
    by_series: dict[str, list[_Point]] = defaultdict(list)
    for point in points:
        by_series[point.series].append(point)
    styles = _styles([r for r in records if is_ok(r) and r.get("dataset", dataset) == dataset])
    for series in sorted(by_series):
        _draw_series(ax, series, by_series[series], y_metric.higher_is_better, x_metric.higher_is_better, styles)
    info.series, info.n_points = sorted(by_series), len(points)
    info.algorithms = sorted({str(p.record.get("algorithm")) for p in points})
    _apply_scale(ax, "x", x_scale, [p.x for p in points])
    _apply_scale(ax, "y", y_scale, [p.y for p in points])
    k_label = _k_label([p.record for p in points])
    ax.set_xlabel(axis_title(x_metric, x_scale, k_label))
    ax.set_ylabel(axis_title(y_metric, y_scale, k_label))
    info.x_label, info.y_label = ax.get_xlabel(), ax.get_ylabel()
    ax.grid(True, which="major", alpha=0.3)
    if not points:
        info.notes.append(f"no successful run has both {x} and {y}")
    _write_notes(ax, info.notes, centred=not points)
    figure.suptitle(f"{info.title}\n{figure_caption([r for r in records if r.get('dataset', dataset) == dataset], dataset)}",
                    fontsize=9)
    if info.series:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8,
                  title="front (line), all runs (faint)", title_fontsize=7)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _finish_log_axes(ax)
    info.paths = save_figure(figure, out_dir, info.name, formats)
    return info


def _fit_scale(points: list[_Point], scale: str, axis: str) -> list[_Point]:
    """Drop what a log axis cannot show; bring 0 and 1 inside a logit axis (see LOGIT_CLIP)."""
    def fitted(v: float) -> float | None:
        if scale == "log":
            return v if v > 0 else None
        return min(max(v, LOGIT_CLIP), 1.0 - LOGIT_CLIP) if 0.0 <= v <= 1.0 else None

    def fitted_bounds(bounds: tuple[float, float]) -> tuple[float, float]:
        low, high = (fitted(b) if math.isfinite(b) else None for b in bounds)
        return (math.nan if low is None else low, math.nan if high is None else high)

    out = []
    for p in points:
        v = fitted(p.x if axis == "x" else p.y)
        if v is not None:
            if axis == "x":
                out.append(replace(p, x=v, x_bounds=fitted_bounds(p.x_bounds)))
            else:
                out.append(replace(p, y=v, y_bounds=fitted_bounds(p.y_bounds)))
    return out


def _apply_scale(ax: Axes, axis: str, scale: str, values: Sequence[float]) -> None:
    target = ax.xaxis if axis == "x" else ax.yaxis
    if scale == "log":
        _set_log(target)
    elif scale == "logit":
        (ax.set_xscale if axis == "x" else ax.set_yscale)("logit", nonpositive="clip")
        # always from below 0.5 to past 0.999, so every tick reads and the high-recall end is in view
        low = min([0.4, *values]) * 0.9
        (ax.set_xlim if axis == "x" else ax.set_ylim)(low, 1.0 - LOGIT_CLIP / 3)
        target.set_major_locator(FixedLocator([t for t in LOGIT_TICKS if t >= low]))
        target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        target.set_minor_formatter(NullFormatter())


# --- figures over the run's measurement axes ---------------------------------------------------

#: q/s against a measurement axis (`--batch-size`, `--threads`): (file name, title, record field,
#: x label); drawn only when the records hold more than one value of the field
AXIS_FIGURES: tuple[tuple[str, str, str, str], ...] = (
    ("qps-batch-size", "Queries per second against the batch size", "batch_size",
     "Batch size (queries per search call; the whole set in one call at its size; log scale)"),
    ("qps-threads", "Queries per second against the thread count", "threads", "Threads (log scale)"),
)
FIGURE_TITLES.update({name: title for name, title, _, _ in AXIS_FIGURES})


def _axis_value(record: Record, field: str) -> float:
    """A record's value on an axis; a batch size of null (the whole set) is its query count."""
    value = record.get(field)
    if field == "batch_size" and value is None:
        value = record.get("n_queries")
    return float(value) if isinstance(value, (int, float)) else math.nan


def plot_axes(
    records: Sequence[Record], out_dir: Path, dataset: str, names: Sequence[str] | None = None, caption: str = "",
) -> list[FigureInfo]:
    """The q/s-against-axis figures (`AXIS_FIGURES`) of the ok records of `dataset` that hold
    more than one value of the axis; none otherwise. One line per configuration (every field but
    the axis the same), coloured by its series; the legend names each series once."""
    ok = [r for r in records if is_ok(r) and r.get("dataset", dataset) == dataset]
    infos = []
    for name, title, field_name, x_label in AXIS_FIGURES:
        if names is not None and name not in names:
            continue
        if len({compact_json(r.get(field_name)) for r in ok}) < 2:
            continue
        lines: dict[str, list[Record]] = defaultdict(list)
        for record in ok:
            other = {key: record.get(key) for key in ("algorithm", "device", "mode", "batch_size", "threads", "role",
                                                        "control_switch", "build_params", "query_params", "k")}
            other.pop(field_name)
            if field_name == "batch_size":
                other.pop("mode")  # single mode is batch size 1: a point of the same line
            lines[compact_json(other)].append(record)
        figure = Figure(figsize=(8.5, 5.2), layout="constrained")
        ax = figure.add_subplot()
        info = FigureInfo(name=name, title=title, paths=[])
        labelled: set[str] = set()
        styles = _styles(ok)
        for key in sorted(lines):
            members = sorted(lines[key], key=lambda r: _axis_value(r, field_name))
            points = [(_axis_value(r, field_name), metric(r, "qps")) for r in members]
            points = [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y) and x > 0 and y > 0]
            if not points:
                continue
            first = members[0]
            series = series_name({**first, field_name: None if field_name == "batch_size" else 1,
                                  "mode": "batch" if field_name == "batch_size" else first.get("mode")})
            style = styles[str(first.get("algorithm"))]
            ax.plot([x for x, _ in points], [y for _, y in points], color=style.colour, marker=style.marker,
                    markersize=4, linewidth=1.0, alpha=0.8,
                    linestyle=":" if is_control(first) else ("--" if first.get("threads", 1) != 1 else "-"),
                    label=None if series in labelled else series)
            labelled.add(series)
            info.n_points += len(points)
        info.series = sorted(labelled)
        info.algorithms = sorted({str(r.get("algorithm")) for r in ok})
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(x_label)
        ax.set_ylabel(axis_title(get_metric("qps"), "log"))
        ax.grid(True, which="major", alpha=0.3)
        figure.suptitle(f"{title}\n{caption}" if caption else title, fontsize=9)
        if labelled:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8,
                      title="one line per configuration", title_fontsize=7)
        info.x_label, info.y_label = ax.get_xlabel(), ax.get_ylabel()
        info.paths = save_figure(figure, out_dir, name)
        infos.append(info)
    return infos
