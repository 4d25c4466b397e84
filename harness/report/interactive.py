"""Interactive figures for the report: hover a point for its parameters, toggle series, pick the axes.

The page stays one self-contained file: plotly.js (the `plotly` package's own bundle) is inlined
once, and so is everything a figure needs, as a JSON block that this module writes from the
records. No CDN, no fetch: the page works offline and can be mailed.

What the JSON holds, and why the browser does little:
- the metrics of `metric_table.METRICS` (every metric `harness.metric_catalog` declares, per-run
  lists aside) that at least one record of the dataset has, with their labels and units,
  directions and default scales (the axis pickers list exactly these);
- per series (as `summary.series_namer` names it): its style (`style.assign_styles`, so colours and
  markers are those of the static figures), whether it is a control, and per record the value
  of every metric and its 95 % interval (`Metric.bounds`), both in the unit the metric is shown in
  (its declaration's display unit: bytes as MiB), and a hover text with the algorithm, the
  build and query parameters, recall with its interval, q/s with its spread and the other metrics;
- per series and per pair of metrics, the Pareto front (`pareto.pareto_front`, oriented by the
  metrics' directions). The front is computed here, by the one tested implementation, never
  again in JavaScript.
The script only maps values onto the chosen scales (a logit axis is drawn as log10(p / (1 - p))
with ticks labelled 0.5 ... 0.999, as plotly has no logit axis; 0 and 1 are clipped to
`plots.LOGIT_CLIP` as in the static figures) and calls `Plotly.react`.
"""
from __future__ import annotations

import html
import json
import math
import re
from collections import defaultdict
from functools import lru_cache
from typing import Any, Mapping, Sequence

from harness.report.metric_table import METRICS, Metric
from harness.report.pareto import pareto_front
from harness.report.plots import LOGIT_CLIP, LOGIT_TICKS
from harness.report.style import AlgorithmStyle, assign_styles, linestyle_for
from harness.report.summary import (
    is_control, is_ok, label_maker, param_text, record_params, record_scale, series_namer, varying_params,
)

Record = Mapping[str, Any]

#: the figures the report opens with (x metric, y metric); each can be switched to any metric pair
VIEWS: tuple[tuple[str, str], ...] = (
    ("recall_at_1", "qps"),
    ("recall_at_k", "qps"),
    ("recall_at_1", "dist_comps_mean"),
    ("recall_at_1", "build_s"),
)

# matplotlib markers (style.py) as plotly marker symbols
_SYMBOLS = {
    "X": "x", "x": "x-thin", "o": "circle", "v": "triangle-down", "D": "diamond", "s": "square",
    "^": "triangle-up", "<": "triangle-left", ">": "triangle-right", "P": "cross", "*": "star",
    "h": "hexagon", "d": "diamond-tall", "p": "pentagon", "8": "octagon",
}
_DASHES = {"-": "solid", "--": "dash", ":": "dot", "-.": "dashdot", "longdashdot": "longdashdot"}
# metrics the hover text shows first, in this order (the rest follow in the table's order)
_HOVER_FIRST = ("recall_at_1", "recall_at_k", "qps", "dist_comps_mean", "iterations_mean", "build_s")


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle of the installed `plotly` package, to inline in a page."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def figure_data(records: Sequence[Record], dataset: str) -> dict[str, Any]:
    """Everything the page's interactive figures draw, as JSON-ready data (see the module doc)."""
    ok = [r for r in records if is_ok(r) and r.get("dataset", dataset) == dataset]
    metrics = [m for m in METRICS if any(math.isfinite(m.value(r)) for r in ok)]
    namer, labeller = series_namer(ok), label_maker(ok)
    styles = assign_styles(str(r.get("algorithm")) for r in ok)
    # a parameter is shown in a hover text where it is not the same in every run of the algorithm
    # (the report cannot know every adapter's declared defaults, so "default" here means "shared")
    varying = varying_params(ok, lambda r: str(r.get("algorithm")))
    by_series: dict[str, list[Record]] = defaultdict(list)
    for record in ok:
        by_series[namer(record)].append(record)
    series = [_series(name, by_series[name], metrics, styles, varying, labeller) for name in sorted(by_series)]
    views = [(x, y) for x, y in VIEWS if any(m.name == x for m in metrics) and any(m.name == y for m in metrics)]
    return {
        "dataset": dataset,
        "metrics": [
            {"name": m.name, "label": m.axis_label, "higher": m.higher_is_better, "scale": m.scale} for m in metrics
        ],
        "series": series,
        "views": views,
        "logit": {"ticks": list(LOGIT_TICKS), "clip": LOGIT_CLIP},
    }


def _series(name: str, members: list[Record], metrics: list[Metric], styles: Mapping[str, AlgorithmStyle],
            varying: Mapping[str, Sequence[str]], labeller: Any) -> dict[str, Any]:
    first = members[0]
    style = styles[str(first.get("algorithm"))]
    values = [[_json_number(m.shown_value(r)) for m in metrics] for r in members]
    bounds = [[[_json_number(b) for b in m.shown_bounds(r)] for m in metrics] for r in members]
    fronts: dict[str, list[int]] = {}
    same: dict[str, list[list[int]]] = {}
    for i, x in enumerate(metrics):
        for j, y in enumerate(metrics):
            if i == j:
                continue
            xs = [math.nan if v[i] is None else v[i] for v in values]
            ys = [math.nan if v[j] is None else v[j] for v in values]
            front = pareto_front(xs, ys, x_larger_better=x.higher_is_better, y_larger_better=y.higher_is_better)
            if front:
                fronts[f"{x.name} {y.name}"] = front
            groups = coinciding(xs, ys)
            if groups:
                same[f"{x.name} {y.name}"] = groups
    return {
        "name": name,
        "algorithm": str(first.get("algorithm")),
        "colour": style.colour,
        "symbol": _SYMBOLS.get(style.marker, "circle"),
        "dash": _DASHES.get(linestyle_for(first.get("device"), first.get("mode")), "solid"),
        "control": is_control(first),
        "values": values,
        "bounds": bounds,
        "text": [hover_text(name, r, metrics, varying.get(str(r.get("algorithm")), ())) for r in members],
        "labels": [labeller(r) for r in members],
        "fronts": fronts,
        "same": same,
    }


def coinciding(xs: Sequence[float], ys: Sequence[float]) -> list[list[int]]:
    """Groups (two or more) of the indices whose points are exactly the same, NaN left out: the
    page draws each group once, every member named in its hover text."""
    groups: dict[tuple[float, float], list[int]] = defaultdict(list)
    for i, (x, y) in enumerate(zip(xs, ys)):
        if math.isfinite(x) and math.isfinite(y):
            groups[(x, y)].append(i)
    return [members for members in groups.values() if len(members) > 1]


def hover_text(series: str, record: Record, metrics: Sequence[Metric], varying: Sequence[str] | None = None) -> str:
    """What hovering a point shows: which run it is, the parameters that tell it apart from the
    algorithm's other runs (`varying`; all of them when None), and every measurement with its unit
    (a unitless one says what it is: fraction, ratio, count). Everything from the record is escaped
    (plotly renders a little HTML in hover labels and decodes &lt; &gt; &amp;, but shows &quot; as
    it is: quotes are left alone, harmless outside a tag)."""
    params = record_params(record)
    names = list(params) if varying is None else list(varying)
    lines = [f"<b>{_escape(series)}</b>"]
    if names:
        lines += _wrapped("parameters: ", param_text(params, names))
    if varying is not None and len(names) < len(params):
        lines.append(_escape(f"(the others as in every {record.get('algorithm')} run: see All runs)"))
    scale = record_scale(record)
    if scale is not None:
        lines.append(_escape(f"lengths in scale units: 1 = {scale:.5g} raw units"))
    if record.get("role") == "control":
        lines.append(f"control of the method: {_escape(str(record.get('control_switch') or ''))}")
    ordered = sorted(metrics, key=lambda m: (_HOVER_FIRST.index(m.name) if m.name in _HOVER_FIRST else len(_HOVER_FIRST)))
    for metric in ordered:
        value = metric.shown_value(record)
        if not math.isfinite(value):
            continue
        unit = metric.hover_unit
        text = f"{metric.label}: {_short(value)}" + (f" {unit}" if unit else "")
        low, high = metric.shown_bounds(record)
        if math.isfinite(low) and math.isfinite(high):
            text += f" [{_short(low)}, {_short(high)}]" + (" 95 % Wilson" if metric.interval == "wilson" else " runs")
        lines.append(_escape(text))
    lines.append(_escape(f"queries: {record.get('n_queries')} queries, k: {record.get('k')} neighbours"))
    return "<br>".join(lines)


def _wrapped(head: str, text: str, width: int = 72) -> list[str]:
    """`head` and `text`, broken at spaces into lines of about `width` characters."""
    lines, line = [], head
    for part in re.split(r"(?<= )", text):
        if len(line) + len(part) > width and line.strip():
            lines.append(line)
            line = "  "
        line += part
    lines.append(line)
    return [_escape(entry) for entry in lines]


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


def _short(value: float) -> str:
    """4 significant digits, thousands as 12,345 (q/s, bytes), tiny values in e-notation."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.3g}"
    return f"{value:.4g}"


def _json_number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def figures_html(records: Sequence[Record], dataset: str) -> str:
    """The interactive figures of one dataset: plotly.js, the data block, one panel per view, the script."""
    data = figure_data(records, dataset)
    if not data["views"]:
        return "<p>No successful runs to draw.</p>"
    # JSON inside <script>: "<" escaped, so nothing from a record can close the element
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    options = "".join(f'<option value="{html.escape(m["name"])}">{html.escape(m["label"])}</option>' for m in data["metrics"])
    scales = "".join(f'<option value="{s}">{s}</option>' for s in ("linear", "log", "logit"))
    panels = []
    for n, (x, y) in enumerate(data["views"]):
        panels.append(
            f'<div class="explorer" data-x="{html.escape(x)}" data-y="{html.escape(y)}">\n'
            f'<div class="pickers"><label>x <select class="pick-x" aria-label="x metric">{options}</select></label>'
            f'<label><select class="pick-x-scale" aria-label="x scale">{scales}</select></label>'
            f'<label>y <select class="pick-y" aria-label="y metric">{options}</select></label>'
            f'<label><select class="pick-y-scale" aria-label="y scale">{scales}</select></label>'
            f'<label><input type="checkbox" class="pick-intervals" checked> intervals</label></div>\n'
            f'<div class="plot" id="explorer-{n}"></div>\n</div>'
        )
    return (
        f"<script>{plotly_js()}</script>\n"
        f'<script type="application/json" id="harness-data">{payload}</script>\n'
        "<p>Hover a point for its parameters and measurements; click a legend entry to hide or show "
        "a series (double-click: only that one); pick any metric and scale for either axis. Lines are "
        "each series' Pareto front, faint markers every run; error bars are 95 % intervals (recall: "
        "Wilson, from the number of queries; q/s: slowest to fastest timed run). Controls are dotted "
        "with hollow markers, in their method's colour; single-query runs are dash-dotted, GPU runs dashed. "
        "Points that coincide are drawn once, their hover naming each run.</p>\n"
        + "\n".join(panels) + f"\n<script>{_SCRIPT}</script>"
    )


_SCRIPT = r"""
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("harness-data").textContent);
  var CLIP = DATA.logit.clip;
  var index = {};
  DATA.metrics.forEach(function (m, i) { index[m.name] = i; });
  function logit(p) { p = Math.min(Math.max(p, CLIP), 1 - CLIP); return Math.log10(p / (1 - p)); }
  function place(v, scale) {
    if (v === null || v === undefined) { return null; }
    if (scale === "log") { return v > 0 ? v : null; }
    if (scale === "logit") { return (v >= 0 && v <= 1) ? logit(v) : null; }
    return v;
  }
  function fmt(v) { return v >= 1000 ? v.toLocaleString("en-US") : String(+v.toPrecision(6)); }
  function logTicks(values) {
    // major ticks only, labelled in full: each decade, or 1-2-5 when the data spans under 1.5 decades
    var positive = values.filter(function (v) { return v !== null && v > 0; });
    if (!positive.length) { return null; }
    var lo = Math.min.apply(null, positive), hi = Math.max.apply(null, positive);
    var subs = Math.log10(hi / lo) < 1.5 ? [1, 2, 5] : [1], vals = [];
    for (var e = Math.floor(Math.log10(lo)) - 1; e <= Math.ceil(Math.log10(hi)) + 1; e++) {
      subs.forEach(function (m) { vals.push(+(m * Math.pow(10, e)).toPrecision(6)); });
    }
    return vals;
  }
  function axis(metric, scale, values) {
    var out = {title: {text: metric.label + (scale === "linear" ? "" : " (" + scale + " scale)")},
               type: scale === "log" ? "log" : "linear", zeroline: false, automargin: true};
    var ticks = scale === "log" ? logTicks(values) : null;
    if (ticks) { out.tickmode = "array"; out.tickvals = ticks; out.ticktext = ticks.map(fmt); out.minor = {showgrid: false}; }
    if (scale === "logit") {
      out.tickmode = "array";
      out.tickvals = DATA.logit.ticks.map(logit);
      out.ticktext = DATA.logit.ticks.map(String);
    }
    return out;
  }
  function errors(series, rows, metricIndex, scale, shown) {
    var plus = [], minus = [];
    rows.forEach(function (r) {
      var v = place(series.values[r][metricIndex], scale);
      var b = series.bounds[r][metricIndex];
      var lo = b[0] === null ? null : place(b[0], scale), hi = b[1] === null ? null : place(b[1], scale);
      plus.push(v === null || hi === null ? 0 : Math.max(0, hi - v));
      minus.push(v === null || lo === null ? 0 : Math.max(0, v - lo));
    });
    var any = plus.concat(minus).some(function (e) { return e > 0; });
    return {type: "data", symmetric: false, array: plus, arrayminus: minus, visible: shown && any,
            thickness: 1, width: 0, color: series.colour};
  }
  function traces(x, y, xs, ys, intervals) {
    var out = [];
    DATA.series.forEach(function (s) {
      var xi = index[x], yi = index[y];
      var all = [], front = [], hidden = {}, text = s.text.slice();
      // points that coincide are drawn once, the first of each group, its hover naming all of them
      (s.same[x + " " + y] || []).forEach(function (group) {
        text[group[0]] = s.text[group[0]] + "<br><b>same point:</b> " + group.map(function (r) { return s.labels[r]; }).join("; ");
        group.slice(1).forEach(function (r) { hidden[r] = true; });
      });
      s.values.forEach(function (v, r) {
        if (!hidden[r] && place(v[xi], xs) !== null && place(v[yi], ys) !== null) { all.push(r); }
      });
      (s.fronts[x + " " + y] || []).forEach(function (r) { if (all.indexOf(r) >= 0) { front.push(r); } });
      if (!all.length) { return; }
      var symbol = s.control ? s.symbol + "-open" : s.symbol;
      function pick(rows, i, scale) { return rows.map(function (r) { return place(s.values[r][i], scale); }); }
      out.push({type: "scatter", mode: "markers", name: s.name, legendgroup: s.name, showlegend: false,
                x: pick(all, xi, xs), y: pick(all, yi, ys), text: all.map(function (r) { return text[r]; }),
                hoverinfo: "text", hoverlabel: {align: "left", font: {size: 11}},
                marker: {color: s.colour, symbol: symbol, size: 7, opacity: s.control ? 0.2 : 0.3}});
      out.push({type: "scatter", mode: "lines+markers", name: s.name, legendgroup: s.name,
                x: pick(front, xi, xs), y: pick(front, yi, ys), text: front.map(function (r) { return text[r]; }),
                hoverinfo: "text", hoverlabel: {align: "left", font: {size: 11}}, opacity: s.control ? 0.6 : 1,
                line: {color: s.colour, dash: s.control ? "dot" : s.dash, width: s.control ? 1 : 2},
                marker: {color: s.colour, symbol: symbol, size: 8},
                error_x: errors(s, front, xi, xs, intervals), error_y: errors(s, front, yi, ys, intervals)});
    });
    return out;
  }
  function draw(panel) {
    var q = function (c) { return panel.querySelector(c); };
    var x = q(".pick-x").value, y = q(".pick-y").value;
    var xs = q(".pick-x-scale").value, ys = q(".pick-y-scale").value;
    var column = function (name) {
      var i = index[name], out = [];
      DATA.series.forEach(function (s) { s.values.forEach(function (v) { out.push(v[i]); }); });
      return out;
    };
    var layout = {xaxis: axis(DATA.metrics[index[x]], xs, column(x)), yaxis: axis(DATA.metrics[index[y]], ys, column(y)),
                  hovermode: "closest", margin: {t: 30}, height: 520,
                  title: {text: DATA.dataset, font: {size: 13}},
                  legend: {title: {text: "click: hide / show"}}};
    Plotly.react(q(".plot"), traces(x, y, xs, ys, q(".pick-intervals").checked), layout,
                 {displaylogo: false, responsive: true});
  }
  document.querySelectorAll(".explorer").forEach(function (panel) {
    var q = function (c) { return panel.querySelector(c); };
    q(".pick-x").value = panel.dataset.x;
    q(".pick-y").value = panel.dataset.y;
    q(".pick-x-scale").value = DATA.metrics[index[panel.dataset.x]].scale;
    q(".pick-y-scale").value = DATA.metrics[index[panel.dataset.y]].scale;
    q(".pick-x").addEventListener("change", function () {
      q(".pick-x-scale").value = DATA.metrics[index[q(".pick-x").value]].scale; draw(panel); });
    q(".pick-y").addEventListener("change", function () {
      q(".pick-y-scale").value = DATA.metrics[index[q(".pick-y").value]].scale; draw(panel); });
    [".pick-x-scale", ".pick-y-scale", ".pick-intervals"].forEach(function (c) {
      q(c).addEventListener("change", function () { draw(panel); });
    });
    draw(panel);
  });
})();
"""
