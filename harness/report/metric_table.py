"""Every metric a figure axis or a table can show, declared once.

A metric has a name (its key in a record's `metrics`), a label and unit for axes and tables,
a direction (whether higher is better: it orients Pareto fronts and thresholds) and the axis
scale it reads best on. `harness plot --x NAME --y NAME` takes any of them; adding a metric is
one entry here (and its computation in `harness.measure.metrics`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from harness.report.summary import metric, recall_interval, run_spread

Record = Mapping[str, Any]
SCALES = ("linear", "log", "logit")


@dataclass(frozen=True)
class Metric:
    """One measurement of a record: what it is called, how to read it, which way is better."""

    name: str
    label: str
    unit: str
    higher_is_better: bool
    scale: str = "linear"
    #: how its uncertainty is known: "wilson" (a fraction of queries or neighbour slots: the 95 %
    #: Wilson interval from their number), "runs" (min and max over the timed repetitions) or ""
    interval: str = ""

    def value(self, record: Record) -> float:
        """The metric as a float, NaN when the record has none (not measured, or not a number)."""
        return metric(record, self.name)

    def bounds(self, record: Record) -> tuple[float, float]:
        """The metric's interval in `record` (see `interval`), (nan, nan) when it has none."""
        if self.interval == "wilson":
            return recall_interval(record, self.name)
        if self.interval == "runs":
            return run_spread(record, self.name)
        return math.nan, math.nan

    @property
    def axis_label(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label


METRICS: tuple[Metric, ...] = (
    Metric("recall_at_1", "Recall@1", "fraction of queries, ties by distance", True, "logit", "wilson"),
    Metric("recall_at_1_id", "Recall@1 by id", "fraction of queries", True, "logit", "wilson"),
    Metric("recall_at_k", "Recall@k", "fraction of true neighbours, ties by distance", True, "logit", "wilson"),
    Metric("recall_at_k_id", "Recall@k by id", "fraction of true neighbours", True, "logit", "wilson"),
    Metric("recall_at_k_eps001", "Epsilon recall@k, eps 0.01", "within 1.01 x the k-th true distance", True, "logit", "wilson"),
    Metric("recall_at_k_eps01", "Epsilon recall@k, eps 0.1", "within 1.1 x the k-th true distance", True, "logit", "wilson"),
    Metric("rel_error_at_k", "Relative error of the k distances", "sum returned / sum true - 1", False, "log"),
    Metric("qps", "Queries per second", "1/s, median of the timed runs", True, "log", "runs"),
    Metric("qps_best", "Queries per second, best run", "1/s", True, "log"),
    Metric("query_wall_s", "Wall time per query", "s", False, "log"),
    Metric("query_cpu_s", "CPU time per query", "s", False, "log"),
    Metric("query_gpu_s", "GPU time per query", "s", False, "log"),
    Metric("latency_p50_s", "Latency p50", "s, single-query mode", False, "log"),
    Metric("latency_p95_s", "Latency p95", "s, single-query mode", False, "log"),
    Metric("latency_p99_s", "Latency p99", "s, single-query mode", False, "log"),
    Metric("latency_p999_s", "Latency p99.9", "s, single-query mode", False, "log"),
    Metric("build_s", "Build time", "s", False, "log"),
    Metric("index_bytes", "Index size", "bytes", False, "log"),
    Metric("build_peak_rss_bytes", "Peak memory while building", "bytes, the measuring process's resident set", False, "log"),
    Metric("query_peak_rss_bytes", "Peak memory while querying", "bytes, the measuring process's resident set", False, "log"),
    Metric("dist_comps_mean", "Distance computations per query", "mean", False, "log"),
    Metric("iterations_mean", "Iterations per query", "mean", False, "linear"),
    Metric("converged_onto_nn_rate", "Converged onto the NN", "fraction of queries, the note's measure", True, "linear", "wilson"),
    Metric("position_to_true_nn_median", "Landing position to the true NN", "median, data units", False, "log"),
)
BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}


def get_metric(name: str) -> Metric:
    """The metric called `name`; ValueError listing the known ones otherwise."""
    if name not in BY_NAME:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(BY_NAME)}")
    return BY_NAME[name]
