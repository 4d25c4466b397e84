"""Every metric a record's `metrics` holds, declared once: what it is called, what it means, its
unit, which way is better, how its uncertainty is known, how it reads best on an axis, and
whether it is a column of `harness results`.

The measuring code writes these keys (`harness.measure.metrics`, `harness.measure.measure`'s build and
query metrics; `adapter_stats`, the adapter's own counters, aside); the report derives from this
table the results columns and their intervals (`harness.report.summary`), the metrics any figure
axis can show (`harness.report.metric_table`, `harness plot --x/--y`), the static figures' axis
labels and directions (`harness.report.plots`) and the interactive explorer's pickers
(`harness.report.interactive`). Adding a metric is one `MetricSpec` here, plus computing it.

A leaf: it imports nothing of the project, so the measuring code and the report may both read it.
"""
from __future__ import annotations

from dataclasses import dataclass

#: axis scales a metric may read best on
SCALES: tuple[str, ...] = ("linear", "log", "logit")
#: how a metric's uncertainty is known: "wilson" (a fraction of queries or of neighbour slots: the
#: 95 % Wilson interval from their number; results columns `<name>_low`, `<name>_high`), "runs"
#: (min and max over the timed repetitions, read from the per-run list `<name>_runs`; columns
#: `<name>_min`, `<name>_max`) or "" (none)
INTERVALS: tuple[str, ...] = ("wilson", "runs", "")
_MIB = float(1 << 20)


@dataclass(frozen=True)
class MetricSpec:
    """One measurement of a record, as every view shows it."""

    #: its key in a record's `metrics`
    name: str
    #: how an axis, a picker or a hover line names it, without the unit
    label: str
    #: the unit the record stores it in ("s", "1/s", "bytes", "steps", "data units"; "" for a
    #: fraction or a count)
    unit: str
    higher_is_better: bool
    #: one line: what it measures and how
    meaning: str
    #: "wilson", "runs" or "" (see INTERVALS)
    interval: str = ""
    #: the axis scale it reads best on (a figure's default)
    scale: str = "linear"
    #: whether `harness results` has a column of it (and of its interval)
    csv: bool = True
    #: the unit figures and hover texts show it in, when not the stored one (bytes shown in MiB)
    display_unit: str = ""
    #: stored value x display_scale = the value shown in `display_unit`
    display_scale: float = 1.0
    #: a list, one value per timed repetition (the raw material of a "runs" interval): never a
    #: column nor an axis
    per_run: bool = False
    #: what a value without a unit is ("fraction", "ratio", "count"), so a hover text or a
    #: reader never meets a bare number; "" for a metric with a unit
    plain_unit: str = ""

    @property
    def hover_unit(self) -> str:
        """The word a hover text writes after a value: the shown unit, else what the number is."""
        return self.shown_unit or self.plain_unit

    @property
    def shown_unit(self) -> str:
        """The unit a figure or a hover text shows the metric in."""
        return self.display_unit or self.unit

    @property
    def axis_label(self) -> str:
        """Label and shown unit: "Build time (s)", "Peak memory while building (MiB)"."""
        return f"{self.label} ({self.shown_unit})" if self.shown_unit else self.label

    def shown(self, value: float) -> float:
        """A stored value in the unit it is shown in."""
        return value * self.display_scale

    @property
    def interval_columns(self) -> tuple[str, ...]:
        """The results columns of its interval (none unless it is a column with an interval)."""
        if not self.csv or self.per_run:
            return ()
        if self.interval == "wilson":
            return f"{self.name}_low", f"{self.name}_high"
        if self.interval == "runs":
            return f"{self.name}_min", f"{self.name}_max"
        return ()


def _recall(name: str, label: str, meaning: str, csv: bool = True) -> MetricSpec:
    return MetricSpec(name, label, "", True, meaning, "wilson", "logit", csv, plain_unit="fraction")


def _seconds(name: str, label: str, meaning: str, csv: bool = True) -> MetricSpec:
    return MetricSpec(name, label, "s", False, meaning, "", "log", csv)


def _per_run(name: str, unit: str, higher_is_better: bool, meaning: str) -> MetricSpec:
    return MetricSpec(name, f"{name} (each timed run)", unit, higher_is_better, meaning, csv=False, per_run=True)


def _memory(name: str, label: str, meaning: str, csv: bool = True) -> MetricSpec:
    return MetricSpec(name, label, "bytes", False, meaning, "", "log", csv, display_unit="MiB", display_scale=1.0 / _MIB)


#: every metric, in the order of the results columns and the pickers
CATALOGUE: tuple[MetricSpec, ...] = (
    _recall("recall_at_1", "Recall@1", "fraction of queries whose first answer lies at the true nearest distance (ties by distance)"),
    _recall("recall_at_1_id", "Recall@1 by id", "fraction of queries whose first answer is the true nearest neighbour's id"),
    _recall("recall_at_k", "Recall@k", "fraction of the k true neighbour slots found among the k answers (ties by distance)"),
    _recall("recall_at_k_id", "Recall@k by id", "fraction of the k true neighbour ids found among the k answers"),
    _recall("recall_at_k_eps001", "Epsilon recall@k, eps 0.01", "fraction of the k answers within 1.01 x the k-th true distance"),
    _recall("recall_at_k_eps01", "Epsilon recall@k, eps 0.1", "fraction of the k answers within 1.1 x the k-th true distance"),
    MetricSpec("rel_error_at_k", "Relative error of the k distances", "", False,
               "sum of the k returned distances / sum of the k true ones - 1, over all queries", scale="log",
               plain_unit="ratio"),
    MetricSpec("qps", "Queries per second", "1/s", True, "queries / batch wall time, median over the timed runs", "runs", "log"),
    MetricSpec("qps_best", "Queries per second, best run", "1/s", True, "queries / batch wall time of the fastest timed run",
               scale="log"),
    _per_run("qps_runs", "1/s", True, "queries / batch wall time of each timed run"),
    _seconds("query_wall_s", "Wall time per query", "median batch wall time over the timed runs / queries"),
    _seconds("query_cpu_s", "CPU time per query", "median batch CPU time (all threads) over the timed runs / queries"),
    _seconds("query_gpu_s", "GPU time per query", "median batch GPU time over the timed runs / queries (GPU runs only)"),
    _per_run("batch_wall_s", "s", False, "wall time of each timed run of the query batch"),
    _per_run("batch_cpu_s", "s", False, "CPU time of each timed run of the query batch"),
    _per_run("batch_gpu_s", "s", False, "GPU time of each timed run of the query batch (GPU runs only)"),
    _seconds("latency_p50_s", "Latency p50", "median of the single-query latencies (single-query mode)"),
    _seconds("latency_p95_s", "Latency p95", "95th percentile of the single-query latencies (single-query mode)"),
    _seconds("latency_p99_s", "Latency p99", "99th percentile of the single-query latencies (single-query mode)"),
    _seconds("latency_p999_s", "Latency p99.9", "99.9th percentile of the single-query latencies (single-query mode)"),
    _seconds("batch_latency_p50_s", "Batch latency p50", "median of the per-batch latencies (one search call of "
             "--batch-size queries; runs cut into batches only)", csv=False),
    _seconds("batch_latency_p99_s", "Batch latency p99", "99th percentile of the per-batch latencies (runs cut into "
             "batches only)", csv=False),
    _seconds("build_s", "Build time", "wall time of the index's construction and fit"),
    _seconds("build_cpu_s", "Build CPU time", "CPU time (all threads) of the index's construction and fit", csv=False),
    _seconds("build_gpu_s", "Build GPU time", "GPU time of the index's construction and fit (GPU runs only)", csv=False),
    _memory("index_bytes", "Index size", "the index's own size, else the resident memory it added while building"),
    _memory("build_rss_bytes", "Memory added by the build", "resident set after the build - before it", csv=False),
    _memory("build_peak_rss_bytes", "Peak memory while building", "the measuring process's peak resident set during the build"),
    _memory("query_peak_rss_bytes", "Peak memory while querying",
            "the measuring process's peak resident set during the warm-up and timed runs"),
    MetricSpec("dist_comps_mean", "Distance computations per query", "", False, "mean over the queries", scale="log",
               plain_unit="count"),
    MetricSpec("iterations_mean", "Iterations per query", "steps", False, "mean over the queries of the ascent steps (iterative methods)"),
    MetricSpec("iterations_median", "Iterations per query, median", "steps", False, "median over the queries", csv=False),
    MetricSpec("iterations_p95", "Iterations per query, p95", "steps", False, "95th percentile over the queries", csv=False),
    MetricSpec("iterations_max", "Iterations per query, max", "steps", False, "maximum over the queries", csv=False),
    MetricSpec("converged_onto_nn_rate", "Converged onto the NN", "", True,
               "fraction of queries whose final position lies within 1e-3 of the true NN (the seed note's measure)", "wilson",
               plain_unit="fraction"),
    MetricSpec("position_to_true_nn_median", "Landing position to the true NN", "data units", False,
               "median over the queries of the final position's distance to the true NN", scale="log"),
)
BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in CATALOGUE}
#: the metric columns of `harness results`, in order
CSV_METRICS: tuple[str, ...] = tuple(spec.name for spec in CATALOGUE if spec.csv and not spec.per_run)
#: the interval columns of `harness results`, in order
CSV_INTERVALS: tuple[str, ...] = tuple(column for spec in CATALOGUE for column in spec.interval_columns)


def problems(catalogue: tuple[MetricSpec, ...] = CATALOGUE) -> list[str]:
    """What is inconsistent in a catalogue (empty when it is sound): names declared twice, an
    unknown scale or interval kind, a "runs" interval without its per-run list, a per-run list
    marked as a column."""
    found: list[str] = []
    names = [spec.name for spec in catalogue]
    found += [f"{name}: declared twice" for name in sorted({n for n in names if names.count(n) > 1})]
    per_run = {spec.name for spec in catalogue if spec.per_run}
    for spec in catalogue:
        if spec.scale not in SCALES:
            found.append(f"{spec.name}: scale {spec.scale!r} is not one of {', '.join(SCALES)}")
        if spec.interval not in INTERVALS:
            found.append(f"{spec.name}: interval {spec.interval!r} is not one of wilson, runs or ''")
        if spec.interval == "runs" and f"{spec.name}_runs" not in per_run:
            found.append(f"{spec.name}: a 'runs' interval needs the per-run list {spec.name}_runs declared")
        if spec.per_run and spec.interval:
            found.append(f"{spec.name}: a per-run list has no interval of its own")
        if spec.display_scale <= 0:
            found.append(f"{spec.name}: display_scale must be positive")
        if not spec.per_run and not spec.hover_unit:
            found.append(f"{spec.name}: no unit and no plain_unit: say what the number is (fraction, ratio, count)")
    return found
