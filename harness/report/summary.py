"""Tables from records: the per-dataset summary and the flat results table (text, CSV, HTML).

The summary answers the question a reader asks first: at recall 0.9 / 0.95 / 0.99, how fast is
each algorithm, and with which parameters. The results table is one flat row per record, for
spreadsheets and for the report's full listing (failed runs included, with their error).

Runs of one algorithm on another device or in single-query mode are different trade-offs (a GPU
brute force is not a CPU brute force), so they form their own series: see `series_name`.
"""
from __future__ import annotations

import csv
import difflib
import io
import json
import math
import re
import textwrap
from collections import defaultdict
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from harness.metric_catalog import BY_NAME as CATALOGUE_BY_NAME
from harness.metric_catalog import CSV_INTERVALS, CSV_METRICS, MetricSpec
from harness.report.difficulty import tercile_columns
from harness.report.paired import PAIRED_COLUMNS, Answers, pair, tune_split

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.9, 0.95, 0.99)

#: measurements a results row shows, read from the record's metrics: every declared metric that is
#: a results column (`harness.metric_catalog`, `csv=True`)
_METRIC_COLUMNS: tuple[str, ...] = CSV_METRICS
#: derived from each record: the interval of each of those metrics that has one, 95 % Wilson
#: intervals of the recalls and rates (`recall_interval`), the spread of q/s over the timed runs
_INTERVAL_COLUMNS: tuple[str, ...] = CSV_INTERVALS
#: derived from each record's per-query answers and its dataset file's ground truth (given
#: `Answers`; None without): recall@1 within each LID tercile of the test queries (t1 the lowest
#: LID, the easiest third: `harness.report.difficulty`) and, on a corrupted-pattern dataset, the
#: fraction of queries whose first answer is the pattern the query was made from
DIFFICULTY_COLUMNS: tuple[str, ...] = ("recall_at_1_lid_t1", "recall_at_1_lid_t2", "recall_at_1_lid_t3", "source_recovery_rate")
#: one results row per record: what the record is, its measurements, how it ended
RESULT_COLUMNS: tuple[str, ...] = (
    "dataset", "algorithm", "label", "build_params", "query_params", "mode", "device", "k", "n_queries", "n_queries_total",
    "scale", *_METRIC_COLUMNS, *_INTERVAL_COLUMNS, *DIFFICULTY_COLUMNS,
    "estimated_s", "measured_s", "role", "status", "error", "budget_note", "stale",
)
#: build configurations the budget left out, one row each, with the reason
SKIPPED_COLUMNS: tuple[str, ...] = ("dataset", "algorithm", "build_params", "query_configs", "n_queries_total", "reason")
#: what the climb adds: each method configuration beside each of its controls (the same, one part
#: under test off), with the paired statistics of the queries both answered (`harness.report.paired`)
CONTROL_COLUMNS: tuple[str, ...] = (
    "dataset", "algorithm", "label", "control", "n_queries", "recall_at_1", "control_recall_at_1", "recall_gain",
    "recall_gain_low", "recall_gain_high", "only_method", "only_control", "mcnemar_p",
    "converged_onto_nn_rate", "recall_at_k", "control_recall_at_k", "dist_comps_mean",
    "control_dist_comps_mean", "dist_ratio", "dist_ratio_low", "dist_ratio_high", "qps", "control_qps",
)
SUMMARY_COLUMNS: tuple[str, ...] = (
    "dataset", "metric", "threshold", "series", "method", "qps", "qps_min", "qps_max", "recall", "recall_low", "recall_high",
    "verdict", "k", "label", "stale",
)
#: the summary as people read it (text, Markdown, LaTeX, HTML): what the data columns above hold
#: once per table (dataset, metric, k) goes into the heading; `method` is the compact label
SUMMARY_SHOWN: tuple[str, ...] = (
    "threshold", "method", "qps", "qps_min", "qps_max", "recall", "recall_low", "recall_high", "verdict",
)
#: the control table as people read it; the rest (recall@k, converged rate, the discordant
#: counts, the ratio's interval) stays in CSV and JSON
CONTROL_SHOWN: tuple[str, ...] = (
    "method", "control", "n_queries", "recall_at_1", "control_recall_at_1", "recall_gain", "recall_gain_low",
    "recall_gain_high", "mcnemar_p", "dist_ratio", "dist_ratio_low", "dist_ratio_high",
)
#: where width is no object (Markdown, LaTeX, HTML): both q/s beside
CONTROL_SHOWN_WIDE: tuple[str, ...] = (*CONTROL_SHOWN, "qps", "control_qps")
#: with a tuning split (`heldout_columns`): the configuration chosen on the tuning queries and its
#: recall on the held-out ones, beside the in-sample choice of SUMMARY_COLUMNS
TUNED_COLUMNS: tuple[str, ...] = (
    "tuned_label", "tuned_qps", "recall_tune", "recall_heldout", "recall_heldout_low", "recall_heldout_high",
    "heldout_reaches", "n_tune", "n_heldout",
)
# Tolerance for a recall stored as 0.8999999999 meaning 0.9 (a float sum of 0/1 hits).
_THRESHOLD_SLACK = 1e-9
#: set by `mark_stale` on a record read for a report: True when the code that made it changed
#: since (its fingerprint differs from the code loaded now), None when that code is not loaded
STALE_KEY = "_stale"
#: the `stale` cell of a row whose record is stale
STALE_MARK = "stale"
#: the libraries whose versions shape the numbers (a record's `provenance.libraries`)
MEASURED_LIBRARIES: tuple[str, ...] = ("torch", "faiss-cpu", "faiss-gpu", "faiss", "hnswlib", "numpy")


def is_ok(record: Mapping[str, Any]) -> bool:
    """Whether a record holds measurements (failed and timed-out runs are listed, never plotted)."""
    return record.get("status") == "ok" and bool(record.get("metrics"))


def metric(record: Mapping[str, Any], name: str) -> float:
    """A metric as a float, NaN when absent or null, so callers can filter with one test."""
    value = (record.get("metrics") or {}).get(name)
    if value is None or isinstance(value, (list, dict, str)):
        return math.nan
    return float(value)


def series_name(record: Mapping[str, Any], axes: bool = True) -> str:
    """The algorithm, tagged with device and mode when they are not the batch-CPU default, and
    (with `axes`) with the batch size when it cuts the set (`b=100`) and the thread count when
    not 1 (`t=2`): each is its own trade-off, never one front."""
    name = str(record.get("algorithm", "?"))
    tags = []
    if record.get("device", "cpu") != "cpu":
        tags.append(str(record.get("device")))
    if record.get("mode", "batch") != "batch" and axes:
        tags.append(str(record.get("mode")))
    batch, threads = record.get("batch_size"), record.get("threads", 1)
    if axes and isinstance(batch, int) and batch > 1:
        tags.append(f"b={batch}")
    if axes and threads not in (None, 1):
        tags.append(f"t={threads}")
    if record.get("role") == "control":
        tags.append(str(record.get("control_switch") or "control"))
    return f"{name} [{', '.join(tags)}]" if tags else name


def compact_json(params: Any) -> str:
    """Parameters as short, stable JSON (sorted keys, no spaces) for one table cell."""
    return json.dumps(params if params is not None else {}, sort_keys=True, separators=(",", ":"), default=str)


# --- what a row is called: compact labels, series told apart by their number of queries --------


def series_namer(records: Iterable[Mapping[str, Any]]) -> Callable[[Mapping[str, Any]], str]:
    """`series_name`, tagged `n=N` where one series holds records measured on different numbers of
    queries (per dataset): their recalls and q/s are not measured alike, so they are told apart
    rather than mixed (the summary would otherwise take the fastest of both without saying which)."""
    sizes: dict[tuple[str, str], set[Any]] = defaultdict(set)
    for record in records:
        if is_ok(record):
            sizes[(str(record.get("dataset")), series_name(record))].add(record.get("n_queries"))
    mixed = {key for key, seen in sizes.items() if len(seen) > 1}

    def name(record: Mapping[str, Any]) -> str:
        series = series_name(record)
        if (str(record.get("dataset")), series) not in mixed:
            return series
        tag = f"n={record.get('n_queries')}"
        return f"{series[:-1]}, {tag}]" if series.endswith("]") else f"{series} [{tag}]"

    return name


def record_params(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record's build and query parameters in one mapping (query parameters win a shared name)."""
    return {**(record.get("build_params") or {}), **(record.get("query_params") or {})}


def varying_params(records: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], str] = series_name
                   ) -> dict[str, tuple[str, ...]]:
    """Per group (`key`, the series by default): the parameters whose value is not the same in
    every record of the group, in first-seen order. The others (defaults, fixed settings such as
    precision or a memory cap) say nothing that tells two rows apart."""
    seen: dict[str, dict[str, set[str]]] = defaultdict(dict)
    present: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    counts: dict[str, int] = defaultdict(int)
    for record in records:
        group = key(record)
        counts[group] += 1
        for name, value in record_params(record).items():
            seen[group].setdefault(name, set()).add(compact_json(value))
            present[group][name] += 1
    return {group: tuple(name for name, values in params.items()
                         if len(values) > 1 or present[group][name] < counts[group])
            for group, params in seen.items()}


def param_text(params: Mapping[str, Any], names: Sequence[str]) -> str:
    """`beta=1000 m=100`: the named parameters, numbers as short as they read (1000.0 as 1000)."""
    return " ".join(f"{name}={_short_param(params.get(name))}" for name in names if name in params)


def _short_param(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return compact_json(value)
    return "null" if value is None else str(value)


def label_maker(records: Sequence[Mapping[str, Any]]) -> Callable[[Mapping[str, Any]], str]:
    """A compact label for each record: its series (`series_namer`) and only the parameters that
    differ within that series (`varying_params`): `potential-gaussian beta=1000`, not the full
    `potential-gaussian ascent=meanshift beta=1000 snap=final m=100`."""
    ok = [r for r in records if is_ok(r)]
    namer = series_namer(ok)
    varying = varying_params(ok, namer)

    def label(record: Mapping[str, Any]) -> str:
        series = namer(record)
        params = param_text(record_params(record), varying.get(series, ()))
        return f"{series} {params}".strip()

    return label


def details_text(record: Mapping[str, Any]) -> str:
    """Every parameter of a record, one `name=value` each: what a compact label leaves out."""
    params = record_params(record)
    return f"{record.get('label')}: " + " ".join(f"{k}={_short_param(v)}" for k, v in params.items())


# --- the dataset's length unit ------------------------------------------------------------------


def record_scale(record: Mapping[str, Any]) -> float | None:
    """The length unit a potential's parameters are in (the median nearest-neighbour spacing of a
    sample of the dataset, `metrics.adapter_stats.scale`), in raw data units; None for other methods."""
    stats = (record.get("metrics") or {}).get("adapter_stats") or {}
    value = stats.get("scale") if isinstance(stats, Mapping) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def scale_note(records: Iterable[Mapping[str, Any]]) -> str | None:
    """One sentence saying what the potentials' length parameters mean in raw units, None when no
    record holds a scale."""
    values = sorted({round(v, 2) for v in (record_scale(r) for r in records if is_ok(r)) if v is not None})
    if not values:
        return None
    raw = f"{values[0]:g}" if len(values) == 1 else f"{values[0]:g} to {values[-1]:g} (it varies by build)"
    return (f"length unit of the potentials' parameters (beta, width, radius ...): the median nearest-neighbour "
            f"spacing of the dataset, 1 unit = {raw} raw units (column scale)")


def summary_rows(
    records: Iterable[Mapping[str, Any]],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    metric: str = "recall_at_1",
    columns: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Per dataset, threshold and series: the best QPS among runs whose `metric` reaches it.

    A series that never reaches a threshold still gets a row, with qps/recall/label None, so
    the table shows "not reached" rather than hiding the algorithm. `method` is the chosen
    record's compact label (`label_maker`); `columns` (metrics of the catalogue, or interval
    columns) are read from the chosen record too. A series whose records were measured on
    different numbers of queries is split (`series_namer`).
    """
    metric_name = metric
    records = list(records)
    namer, labeller = series_namer(records), label_maker(records)
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        if is_ok(record):
            groups[(str(record.get("dataset")), namer(record))].append(record)
    rows = []
    for (dataset, series), members in groups.items():
        for threshold in thresholds:
            rows.append(_best_row(dataset, series, members, float(threshold), metric_name, labeller, columns))
    rows.sort(key=lambda r: (r["dataset"], r["threshold"], r["qps"] is None, -(r["qps"] or 0.0), r["series"]))
    return mark_leaders(rows)


def _best_row(
    dataset: str, series: str, members: list[Mapping[str, Any]], threshold: float, metric_name: str,
    labeller: Callable[[Mapping[str, Any]], str] | None = None, columns: Sequence[str] = (),
) -> dict[str, Any]:
    """The fastest member reaching the threshold (ties: higher recall, then label)."""
    reaching = [
        r for r in members
        if metric(r, metric_name) >= threshold - _THRESHOLD_SLACK and math.isfinite(metric(r, "qps"))
    ]
    row: dict[str, Any] = {
        "dataset": dataset, "metric": metric_name, "threshold": threshold, "series": series,
        "algorithm": members[0].get("algorithm"), "qps": None, "qps_min": None, "qps_max": None, "recall": None,
        "recall_low": None, "recall_high": None, "k": None, "label": None, "build_params": None, "query_params": None,
        "verdict": None, "stale": None, "method": series, "details": None,
    }
    row.update(dict.fromkeys(c for c in columns if c not in row))
    if reaching:
        best = min(reaching, key=lambda r: (-metric(r, "qps"), -metric(r, metric_name), str(r.get("label"))))
        low, high = recall_interval(best, metric_name)
        spread = intervals(best)
        row.update(
            qps=metric(best, "qps"), qps_min=spread["qps_min"], qps_max=spread["qps_max"], recall=metric(best, metric_name),
            recall_low=_finite(low), recall_high=_finite(high), k=best.get("k"), label=best.get("label"),
            build_params=compact_json(best.get("build_params")), query_params=compact_json(best.get("query_params")),
            stale=STALE_MARK if best.get(STALE_KEY) else None, details=details_text(best),
            method=labeller(best) if labeller else series,
        )
        row.update(record_columns(best, [c for c in columns if c not in _SUMMARY_OWN]))
    return row


_SUMMARY_OWN = frozenset(("qps", "qps_min", "qps_max", "recall", "recall_low", "recall_high", "k", "label"))


def record_columns(record: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """The named metrics and interval columns of one record (None where it has no value)."""
    spread = intervals(record)
    out: dict[str, Any] = {}
    for column in columns:
        if column in spread:
            out[column] = spread[column]
        elif column == "scale":
            out[column] = record_scale(record)
        else:
            out[column] = _finite(metric(record, column))
    return out


def table_columns() -> tuple[str, ...]:
    """Every column `results --summary --columns` takes: the catalogue's metrics (per-run lists
    aside), their interval columns and the length unit `scale`."""
    return (*(spec.name for spec in CATALOGUE_BY_NAME.values() if not spec.per_run), *CSV_INTERVALS, "scale")


def check_columns(text: str) -> list[str]:
    """`--columns a,b,c` as a list; ValueError naming an unknown column and the closest known ones."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    known = table_columns()
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"columns: {', '.join(known)}"
            raise ValueError(f"--columns: unknown column {name!r}; {hint}")
    if not names:
        raise ValueError("--columns: name at least one metric, e.g. recall_at_1,qps,dist_comps_mean")
    return names


def heldout_columns(
    rows: Sequence[dict[str, Any]], records: Iterable[Mapping[str, Any]], answers: Answers, fraction: float, seed: int,
) -> list[str]:
    """Add TUNED_COLUMNS to summary rows: per series and threshold, the fastest configuration
    whose recall on the tuning queries (`paired.tune_split` of each record's own queries) reaches
    the threshold, and its recall on the held-out queries with a 95 % Wilson interval. Its q/s is
    the record's, a whole-run measurement. Returns, once each, why records were left out."""
    records = list(records)
    namer = series_namer(records)
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        if is_ok(record):
            groups[(str(record.get("dataset")), namer(record))].append(record)
    left_out: dict[str, int] = defaultdict(int)
    for row in rows:
        scored = []
        for record in groups.get((str(row["dataset"]), str(row["series"])), []):
            why = answers.why_not(record) or ("fewer than 2 queries" if int(record.get("n_queries") or 0) < 2 else None)
            if why is None and math.isfinite(metric(record, "qps")):
                scored.append(_split_recalls(record, answers.scores(record, row["metric"]), fraction, seed))
            elif why is not None and row["threshold"] == rows[0]["threshold"]:
                left_out[why] += 1
        row.update(_tuned_choice(scored, float(row["threshold"]), str(row["metric"])))
    return [f"left out of the tuning choice: {n} record(s): {why}" for why, n in left_out.items()]


def _split_recalls(record: Mapping[str, Any], scores: Any, fraction: float, seed: int) -> dict[str, Any]:
    split = tune_split(len(scores), fraction, seed)
    return {"record": record, "tune": float(scores[split.tune].mean()), "heldout": float(scores[split.heldout].mean()),
            "n_tune": len(split.tune), "n_heldout": len(split.heldout)}


def _tuned_choice(scored: Sequence[Mapping[str, Any]], threshold: float, metric_name: str) -> dict[str, Any]:
    """The TUNED_COLUMNS of one summary row: the fastest configuration reaching `threshold` on its tuning queries."""
    row: dict[str, Any] = dict.fromkeys(TUNED_COLUMNS)
    reaching = [s for s in scored if s["tune"] >= threshold - _THRESHOLD_SLACK]
    if not reaching:
        return row
    best = min(reaching, key=lambda s: (-metric(s["record"], "qps"), -s["tune"], str(s["record"].get("label"))))
    record = best["record"]
    trials = best["n_heldout"] * (int(record.get("k") or 1) if metric_name.startswith("recall_at_k") else 1)
    low, high = wilson(best["heldout"] * trials, trials)
    row.update(
        tuned_label=record.get("label"), tuned_qps=metric(record, "qps"), recall_tune=best["tune"],
        recall_heldout=best["heldout"], recall_heldout_low=_finite(low), recall_heldout_high=_finite(high),
        heldout_reaches=best["heldout"] >= threshold - _THRESHOLD_SLACK, n_tune=best["n_tune"], n_heldout=best["n_heldout"],
    )
    return row


def split_header(records: Iterable[Mapping[str, Any]], fraction: float, seed: int) -> str:
    """One line saying how the queries were split, with the sizes per number of queries."""
    sizes = sorted({int(r.get("n_queries") or 0) for r in records if is_ok(r) and int(r.get("n_queries") or 0) >= 2})
    parts = []
    for n in sizes:
        split = tune_split(n, fraction, seed)
        parts.append(f"n={n}: {len(split.tune)} tuning, {len(split.heldout)} held-out")
    return (
        f"tuning split: fraction {fraction:g}, seed {seed} (harness.report.paired.tune_split of each record's first n "
        f"queries; {'; '.join(parts) or 'no records'}); the configuration is chosen on the tuning queries, "
        "recall_heldout is its recall on the others; q/s is the record's whole-run measurement over all n queries"
    )


def mark_leaders(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per dataset and threshold, the fastest row is `leader`, or `tied` when its q/s range over
    the timed runs overlaps the runner-up's (the runs cannot tell them apart)."""
    groups: dict[tuple[Any, Any], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        row.setdefault("verdict", None)
        if row["qps"] is not None:
            groups[(row["dataset"], row["threshold"])].append(row)
    for members in groups.values():
        members.sort(key=lambda r: -r["qps"])
        first = members[0]
        first["verdict"] = "leader"
        if len(members) > 1:
            second = members[1]
            low = first["qps_min"] if first["qps_min"] is not None else first["qps"]
            high = second["qps_max"] if second["qps_max"] is not None else second["qps"]
            if low <= high:
                first["verdict"] = second["verdict"] = "tied"
    return rows


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % for z = 1.96); (nan, nan) for n = 0."""
    if n <= 0:
        return math.nan, math.nan
    p = min(1.0, max(0.0, successes / n))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def recall_interval(record: Mapping[str, Any], name: str) -> tuple[float, float]:
    """95 % Wilson interval of a recall, from the number of queries (recall@k: of the
    queries x k neighbour slots, which treats the slots as independent, an approximation)."""
    value, n = metric(record, name), int(record.get("n_queries") or 0)
    if not math.isfinite(value):
        return math.nan, math.nan
    trials = n * int(record.get("k") or 1) if name.startswith("recall_at_k") else n
    return wilson(value * trials, trials)


def intervals(record: Mapping[str, Any]) -> dict[str, float | None]:
    """The derived columns of a results row (`_INTERVAL_COLUMNS`): each column metric's interval as
    its declaration says, a Wilson interval (`recall_interval`) or the spread over the runs."""
    out: dict[str, float | None] = {}
    for name in _METRIC_COLUMNS:
        spec = CATALOGUE_BY_NAME[name]
        if not spec.interval_columns:
            continue
        low, high = recall_interval(record, name) if spec.interval == "wilson" else run_spread(record, name)
        out[spec.interval_columns[0]], out[spec.interval_columns[1]] = _finite(low), _finite(high)
    return out


def run_spread(record: Mapping[str, Any], name: str) -> tuple[float, float]:
    """Min and max of a metric over the timed repetitions (`<name>_runs`), (nan, nan) without them."""
    runs = [float(v) for v in ((record.get("metrics") or {}).get(f"{name}_runs") or [])
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return (min(runs), max(runs)) if runs else (math.nan, math.nan)


def is_control(record: Mapping[str, Any]) -> bool:
    """Whether a record is a control run (drawn muted, paired with its method in `control_rows`)."""
    return record.get("role") == "control"


def _pair_key(record: Mapping[str, Any], query_params: Any) -> str:
    """What a method record and its control share: everything but the query parameters they differ
    in (and the number of queries: a control run on other queries still stands beside, unpaired)."""
    same = [record.get(f) for f in ("dataset", "algorithm", "k", "mode", "device", "threads", "batch_size")]
    return compact_json([same, record.get("build_params"), query_params])


def method_controls(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A method record's controls, each {"switch", "query_params"}: the `controls` list, or the
    single `control_query_params` of a record that has no list."""
    listed = record.get("controls")
    if listed:
        return [dict(entry) for entry in listed if isinstance(entry, Mapping)]
    return [{"switch": record.get("control_switch"), "query_params": record.get("control_query_params")}]


def _matching_control(candidates: Sequence[Mapping[str, Any]], record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The control record run on the method's queries, else the one run on the most queries."""
    same = [c for c in candidates if c.get("n_queries") == record.get("n_queries")]
    return (same or sorted(candidates, key=lambda c: -int(c.get("n_queries") or 0)) or [None])[0]


def control_rows(records: Iterable[Mapping[str, Any]], answers: Answers | None = None, metrics: Sequence[str] = ()
                 ) -> list[dict[str, Any]]:
    """Each method configuration beside each of its controls: recalls, the climb's gain, the cost
    ratio, and (with `answers`) the paired statistics of the queries both answered.

    `recall_gain` = recall@1 - the control's recall@1 (what the climb adds; negative when it
    costs recall); `dist_ratio` = distance computations per query / the control's. A method
    whose control has no record (not run yet, or failed) gets a row with the control cells empty.
    `paired_note` says why a row's paired cells are empty (`control_notes` gathers them).
    `method` is the method's compact label (`label_maker`); `metrics` adds, for each named metric,
    the method's value and the control's (`control_<name>`).
    """
    ok = [r for r in records if is_ok(r)]
    labeller = label_maker(ok)
    controls: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in ok:
        if is_control(r):
            controls[_pair_key(r, r.get("query_params"))].append(r)
    rows = []
    for record in ok:
        if record.get("role") != "method":
            continue
        for entry in method_controls(record):
            control = _matching_control(controls.get(_pair_key(record, entry.get("query_params")), []), record)
            row = _control_row(record, entry.get("switch"), control, answers)
            row["method"] = labeller(record)
            for name in metrics:
                if name in CATALOGUE_BY_NAME and f"control_{name}" not in row:
                    row[name] = _finite(metric(record, name))
                    row[f"control_{name}"] = _finite(metric(control, name)) if control else None
            rows.append(row)
    rows.sort(key=lambda r: (str(r["dataset"]), str(r["algorithm"]), natural_key(str(r["label"])), str(r["control"])))
    return rows


def _control_row(
    record: Mapping[str, Any], switch: Any, control: Mapping[str, Any] | None, answers: Answers | None
) -> dict[str, Any]:
    row: dict[str, Any] = {"dataset": record.get("dataset"), "algorithm": record.get("algorithm"), "label": record.get("label"),
                           "control": switch, "n_queries": record.get("n_queries")}
    for name in ("recall_at_1", "converged_onto_nn_rate", "recall_at_k", "dist_comps_mean", "qps"):
        row[name] = _finite(metric(record, name))
    for name in ("recall_at_1", "recall_at_k", "dist_comps_mean", "qps"):
        row[f"control_{name}"] = _finite(metric(control, name)) if control else None
    row["recall_gain"] = _difference(row["recall_at_1"], row["control_recall_at_1"])
    row["dist_ratio"] = _ratio(row["dist_comps_mean"], row["control_dist_comps_mean"])
    paired, note = pair(answers, record, control) if control else (dict.fromkeys(PAIRED_COLUMNS), "no control record")
    row.update(paired, paired_note=note)
    return row


def control_notes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each distinct reason rows' paired cells are empty, once, with how many rows it concerns."""
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.get("paired_note"):
            counts[str(row["paired_note"])] += 1
    return [f"paired statistics empty in {n} row(s): {reason}" for reason, n in counts.items()]


def natural_key(text: str) -> list[Any]:
    """Sort key that orders numbers inside labels by value: beta=30 before beta=100."""
    return [(0, float(part), "") if part else (1, 0.0, word) for part, word in re.findall(r"(\d+(?:\.\d+)?)|(\D+)", text)]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


#: how to read the paired columns, in every format that has room for a sentence
PAIRED_LEGEND = (
    "paired over the queries both ran: only_method / only_control = queries only the method / only the control "
    "answers right (recall@1), mcnemar_p = exact McNemar test of those counts; recall_gain_low/high and "
    "dist_ratio_low/high = 95 % bootstrap intervals resampling the queries jointly (seed 0)"
)


def control_columns_for(columns: Sequence[str] = (), narrow: bool = False) -> list[str]:
    """The control table's columns as people read it: `CONTROL_SHOWN`, or with `columns` (the
    summary's `--columns`) each chosen metric beside its control's, then what the pairing says
    (the recall gain with its interval, the discordant counts and McNemar's p; the distance ratio
    with its interval when distance computations are among the columns). `narrow`: the default
    for a text table within `TEXT_WIDTH` (no q/s)."""
    if not columns:
        return list(CONTROL_SHOWN if narrow else CONTROL_SHOWN_WIDE)
    chosen = [c for c in columns if c in CATALOGUE_BY_NAME]
    out = ["method", "control", "n_queries"]
    for name in chosen:
        out += [name, f"control_{name}"]
    out += ["recall_gain", "recall_gain_low", "recall_gain_high", "only_method", "only_control", "mcnemar_p"]
    if "dist_comps_mean" in chosen:
        out += ["dist_ratio", "dist_ratio_low", "dist_ratio_high"]
    return out


def summary_columns_for(columns: Sequence[str] = (), stale: bool = False) -> list[str]:
    """The summary's columns as people read it: `SUMMARY_SHOWN`, or the threshold, the compact
    label and exactly the chosen `columns`; `stale` adds the stale mark."""
    out = ["threshold", "method", *columns] if columns else list(SUMMARY_SHOWN)
    return out + (["stale"] if stale else [])


def summary_heading(records: Iterable[Mapping[str, Any]], metric_name: str = "recall_at_1") -> list[str]:
    """What every row of a summary shares, said once above it: the datasets, the recall the
    thresholds apply to, k, the potentials' length unit in raw units (`scale_note`)."""
    ok = [r for r in records if is_ok(r)]
    datasets = sorted({str(r.get("dataset")) for r in ok})
    ks = sorted({str(r.get("k")) for r in ok})
    lines = [f"dataset: {', '.join(datasets) or '-'}; best q/s reaching each {metric_name} threshold; "
             f"k = {', '.join(ks) or '-'}; method = series and the parameters that differ within it"]
    note = scale_note(ok)
    if note:
        lines.append(note)
    return lines


def format_controls(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """The method-vs-control table as text (within `TEXT_WIDTH`), with a heading that says how to
    read it. `columns` default: `CONTROL_SHOWN`."""
    if not rows:
        return ""
    heading = (
        "What the climb adds: each configuration beside its control (the same configuration with the part under\n"
        "test switched off, as the control column says; ascent=none: no climb, the same snap from the query)\n"
        "recall_gain = recall@1 - control recall@1; dist_ratio = distances per query / the control's\n"
        + "\n".join(textwrap.wrap(PAIRED_LEGEND, TEXT_WIDTH)) + "\n"
    )
    notes = "".join(f"{line}\n" for note in control_notes(rows) for line in textwrap.wrap(note, TEXT_WIDTH))
    return heading + notes + format_table(rows, list(columns or CONTROL_SHOWN), width=TEXT_WIDTH, units=True)


def format_summary(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """The summary as an aligned text table within `TEXT_WIDTH`; "-" where a threshold is not reached."""
    if not rows:
        return "no successful runs to summarise\n"
    stale = any(row.get("stale") for row in rows)
    return format_table(rows, list(columns or summary_columns_for(stale=stale)), width=TEXT_WIDTH, units=True)


def results_table(records: Iterable[Mapping[str, Any]], answers: Answers | None = None) -> list[dict[str, Any]]:
    """One flat row per record (failed ones too), sorted by dataset, algorithm and label; with
    `answers`, the DIFFICULTY_COLUMNS of each successful record whose ground truth they hold."""
    rows = []
    for record in records:
        metrics = record.get("metrics") or {}
        row: dict[str, Any] = {
            "dataset": record.get("dataset"),
            "algorithm": record.get("algorithm"),
            "label": record.get("label"),
            "build_params": compact_json(record.get("build_params")),
            "query_params": compact_json(record.get("query_params")),
            "mode": record.get("mode"),
            "device": record.get("device"),
            "k": record.get("k"),
        }
        row["n_queries"] = record.get("n_queries")
        row["n_queries_total"] = record.get("n_queries_total")
        row["scale"] = record_scale(record)
        for column in _METRIC_COLUMNS:
            row[column] = metrics.get(column)
        row.update(intervals(record))
        row.update(difficulty_columns(record, answers))
        for column in ("estimated_s", "measured_s", "role", "status", "error", "budget_note"):
            row[column] = record.get(column)
        row["stale"] = STALE_MARK if record.get(STALE_KEY) else None
        rows.append(row)
    rows.sort(key=lambda r: (str(r["dataset"]), str(r["algorithm"]), str(r["label"]), str(r["mode"])))
    return rows


def difficulty_columns(record: Mapping[str, Any], answers: Answers | None) -> dict[str, Any]:
    """A record's DIFFICULTY_COLUMNS (None where its answers or ground truth are not had)."""
    out: dict[str, Any] = dict.fromkeys(DIFFICULTY_COLUMNS)
    if answers is None or not is_ok(record):
        return out
    scores, labels = answers.scores(record, "recall_at_1"), answers.terciles(record)
    if scores is not None and labels is not None:
        out.update(tercile_columns("recall_at_1", scores, labels["lid"]))
    recovered = answers.source_recovered(record)
    if recovered is not None:
        out["source_recovery_rate"] = float(np.mean(recovered))
    return out


def skipped_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per build configuration whose records say `skipped` (it did not fit the run's
    budget), with how many query configurations it had and why."""
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for record in records:
        if record.get("status") != "skipped":
            continue
        key = (str(record.get("dataset")), str(record.get("algorithm")), compact_json(record.get("build_params")))
        row = groups.setdefault(key, {
            "dataset": key[0], "algorithm": key[1], "build_params": key[2], "query_configs": 0,
            "n_queries_total": record.get("n_queries_total"), "reason": record.get("error") or record.get("budget_note"),
        })
        row["query_configs"] += 1
    return [groups[key] for key in sorted(groups, key=lambda k: (k[0], natural_key(k[1]), k[2]))]


_RECALL_LIKE = ("recall", "control_recall", "converged_onto_nn_rate", "control_converged_onto_nn_rate", "threshold",
                "heldout", "tune")
_QPS_COLUMNS = ("qps", "control_qps", "qps_min", "qps_max", "qps_best", "qps_a", "qps_b", "tuned_qps")


def column_spec(column: str) -> MetricSpec | None:
    """The catalogue's declaration behind a column: the metric itself, its interval columns
    (`qps_min`, `recall_at_1_low`) and its control's (`control_qps`)."""
    name = column.removeprefix("control_")
    if name in CATALOGUE_BY_NAME:
        return CATALOGUE_BY_NAME[name]
    for suffix in ("_low", "_high", "_min", "_max"):
        if name.endswith(suffix) and name[: -len(suffix)] in CATALOGUE_BY_NAME:
            return CATALOGUE_BY_NAME[name[: -len(suffix)]]
    return None


def column_header(column: str) -> str:
    """A column's name with the unit its cells are in, for tables people read: `qps (1/s)`,
    `index_bytes (MiB)`, `scale (raw units)`; a fraction or a count stays bare."""
    if column == "scale":
        return "scale (raw units)"
    if column == "n_queries":
        return "n"
    spec = column_spec(column)
    return f"{column} ({spec.shown_unit})" if spec is not None and spec.shown_unit else column


def _shown(column: str, value: Any) -> Any:
    """A number in the unit its header names (bytes as MiB); anything else as it is."""
    spec = column_spec(column)
    if spec is None or spec.display_scale == 1.0 or not _is_number(value) or value is None:
        return value
    return value * spec.display_scale


def format_value(column: str, value: Any) -> str:
    """A cell for people, alone (a table formats a whole column alike: `column_formatter`)."""
    return column_formatter(column, [value])(value)


def column_formatter(column: str, values: Sequence[Any]) -> Callable[[Any], str]:
    """One number format for every cell of a column, chosen from all its values: recalls and
    fractions to 4 decimals, q/s with thousands separators, counts as integers, other numbers with
    the decimals the smallest needs for 4 significant digits, or all in e-notation when they span
    more than 6 decades (p-values). Missing values are "-", text stays text."""
    numbers = [float(v) for v in values if _is_number(v) and v is not None and math.isfinite(float(v))]
    if column.startswith(_RECALL_LIKE) or column.endswith("_rate"):
        pattern = "{:.4f}"
    elif column in _QPS_COLUMNS:
        pattern = "{:,.0f}" if all(abs(v) >= 100 for v in numbers) else "{:,.1f}"
    elif numbers and all(float(v).is_integer() and isinstance(v, int) for v in values if _is_number(v) and v is not None):
        pattern = "{:,d}"
    else:
        magnitudes = [abs(v) for v in numbers if v != 0]
        if not magnitudes:
            pattern = "{:.4g}"
        elif min(magnitudes) < 1e-3 or max(magnitudes) / min(magnitudes) > 1e6:
            pattern = "{:.2e}"
        else:
            decimals = min(6, max(0, 3 - math.floor(math.log10(min(magnitudes)))))
            pattern = f"{{:,.{decimals}f}}"

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return str(value)
        if isinstance(value, float) and not math.isfinite(value):
            return "-"
        if pattern == "{:,d}":
            return f"{int(value):,d}"
        return pattern.format(value)

    return cell


def table_cells(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], units: bool = False) -> list[list[str]]:
    """The cells of a table for people, one format per column; with `units`, numbers in the unit
    `column_header` names (bytes as MiB)."""
    shown = [[(_shown(c, row.get(c)) if units else row.get(c)) for c in columns] for row in rows]
    formatters = [column_formatter(c, [line[i] for line in shown]) for i, c in enumerate(columns)]
    return [[formatters[i](value) for i, value in enumerate(line)] for line in shown]


#: the width a text table is kept within (a terminal, a code block of a paper's notes)
TEXT_WIDTH = 120


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, width: int | None = None,
                 units: bool = False) -> str:
    """Rows as an aligned text table; numbers right-aligned, text left-aligned, one number format per
    column. With `width`, headers break at their underscores and the widest text columns wrap onto
    continuation lines until the table fits (a column never narrower than 10)."""
    columns = list(columns or (rows[0].keys() if rows else RESULT_COLUMNS))
    cells = table_cells(rows, columns, units)
    headers = [column_header(c) if units else c for c in columns]
    numeric = [_numeric(rows, c) for c in columns]
    data_widths = [max([1] + [len(line[i]) for line in cells]) for i in range(len(columns))]
    if width is None:
        widths = [max(len(h), w) for h, w in zip(headers, data_widths)]
    else:
        widths = [max(w, max(len(part) for part in _header_parts(h))) for h, w in zip(headers, data_widths)]
        least = [max(10, min(20, max([len(word) for line in cells for word in line[i].split()] or [0])))
                 for i in range(len(columns))]
        _narrow(widths, [not n for n in numeric], width - 2 * (len(columns) - 1), least)
    head_lines = [_wrap_header(h, w) for h, w in zip(headers, widths)]

    def render(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    lines = [render([h[i] if i < len(h) else "" for h in head_lines]) for i in range(max(len(h) for h in head_lines))]
    lines.append("  ".join("-" * w for w in widths))
    for line in cells:
        wrapped = [textwrap.wrap(v, w, break_on_hyphens=False) or [""] if len(v) > w else [v] for v, w in zip(line, widths)]
        for i in range(max(len(w) for w in wrapped)):
            lines.append(render([w[i] if i < len(w) else "" for w in wrapped]))
    return "\n".join(lines) + "\n"


def _header_parts(header: str) -> list[str]:
    return [part for part in re.split(r"(?<=_)|(?= \()", header) if part]


def _wrap_header(header: str, width: int) -> list[str]:
    """A header broken at its underscores into lines of at most `width` (longer parts stay whole)."""
    if len(header) <= width:
        return [header]
    lines = [""]
    for part in _header_parts(header):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part.lstrip() if not lines[-1] else part
    return lines


def _narrow(widths: list[int], text: Sequence[bool], room: int, least: Sequence[int]) -> None:
    """Narrow the widest text column, one character at a time (in place), until the widths sum to
    `room` or no text column is wider than its `least` (its longest word, so words stay whole)."""
    while sum(widths) > room:
        candidates = [i for i, w in enumerate(widths) if text[i] and w > least[i]]
        if not candidates:
            return
        widths[max(candidates, key=lambda i: widths[i])] -= 1


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def format_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as CSV with full precision; empty cells for missing values."""
    columns = list(columns or (rows[0].keys() if rows else RESULT_COLUMNS))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return buffer.getvalue()


def format_markdown(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as a GitHub-flavoured Markdown table: headers with units, one number format per column,
    text aligned left (`:---`), numbers right (`---:`)."""
    cells = table_cells(rows, columns, units=True)
    lines = ["| " + " | ".join(column_header(c) for c in columns) + " |",
             "| " + " | ".join("---:" if _numeric(rows, c) else ":---" for c in columns) + " |"]
    for line in cells:
        lines.append("| " + " | ".join(v.replace("|", "\\|") for v in line) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}
#: the first line of every LaTeX table: what the preamble needs
LATEX_NEEDS = r"% needs \usepackage{booktabs} (\toprule, \midrule, \bottomrule)"


def format_latex(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], caption: str = "") -> str:
    """Rows as a LaTeX table (booktabs: \\toprule, \\midrule, \\bottomrule; a comment says so),
    special characters escaped, headers with units, text columns left-aligned and numbers right."""
    def esc(text: str) -> str:
        return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)

    align = "".join("r" if _numeric(rows, c) else "l" for c in columns)
    lines = [LATEX_NEEDS, r"\begin{table}[ht]", r"\centering", rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(esc(column_header(c)) for c in columns) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(v) for v in line) + r" \\" for line in table_cells(rows, columns, units=True)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{esc(caption)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


#: columns that hold numbers even where every cell of a table is empty
_NUMERIC_NAMES = frozenset(("threshold", "n_queries", "n_queries_total", "k", "scale", "ratio", "ratio_low", "ratio_high",
                            "only_a", "only_b", "only_method", "only_control", "mcnemar_p", "recall_gain",
                            "recall_gain_low", "recall_gain_high", "dist_ratio", "dist_ratio_low", "dist_ratio_high",
                            "estimated_s", "measured_s", "query_configs", *_QPS_COLUMNS))


def _numeric(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    """Whether a column holds numbers: every present value is one, and at least one is present, or
    none is and the column is known to hold numbers (a catalogue metric, an interval, a count)."""
    present = [row.get(column) for row in rows if row.get(column) is not None]
    if present:
        return all(_is_number(v) for v in present)
    return column in _NUMERIC_NAMES or column_spec(column) is not None or column.startswith(("recall", "tuned_qps"))


# --- what the records' provenance says about the comparison --------------------------------------


def mark_stale(records: Iterable[dict[str, Any]], fingerprints: Mapping[str, str] | None) -> list[str]:
    """Mark each ok record (`STALE_KEY`) stale when the code that made it changed since: its
    `code_fingerprint` differs from `fingerprints[adapter class name]`, the code loaded now
    (`algorithms.fingerprint`; the command line computes them). Returns the notes to print: the
    algorithms not judged because their code is not loaded (once). `fingerprints` None: no
    judgement at all (STALE_KEY left unset)."""
    if fingerprints is None:
        return []
    unjudged: set[str] = set()
    for record in records:
        if record.get("status") != "ok":
            continue
        current = fingerprints.get(str(record.get("adapter")))
        if current is None:
            unjudged.add(str(record.get("algorithm")))
            record[STALE_KEY] = None
        else:
            record[STALE_KEY] = record.get("code_fingerprint") != current
    if not unjudged:
        return []
    return [f"note: not judged for stale code (their code is not loaded here; name their plugins with --plugins): "
            f"{', '.join(sorted(unjudged))}"]


def stale_warnings(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """One warning per dataset naming the series with stale records (see `mark_stale`): their
    numbers were made by code that has changed since."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    predating: dict[str, int] = defaultdict(int)
    for record in records:
        if record.get(STALE_KEY):
            dataset = str(record.get("dataset"))
            counts[dataset][series_name(record)] += 1
            predating[dataset] += record.get("code_fingerprint") is None
    lines = []
    for dataset in sorted(counts):
        series = ", ".join(f"{name} ({n} record{'s' if n > 1 else ''})" for name, n in sorted(counts[dataset].items()))
        older = f"; {predating[dataset]} of them predate code fingerprints" if predating[dataset] else ""
        lines.append(f"warning: {dataset}: stale records, made by code that has changed since (the same command "
                     f"without --reuse-stale recomputes them{older}): {series}")
    return lines


def provenance_warnings(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Per dataset, a warning for each library (MEASURED_LIBRARIES) and machine fact (hostname,
    cpu_model) whose value differs between its records, with how many records have each value:
    numbers made on other machines or with other libraries are not plainly comparable."""
    values: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    for record in records:
        if record.get("status") != "ok":
            continue
        provenance = record.get("provenance") or {}
        facts = values[str(record.get("dataset"))]
        libraries = provenance.get("libraries") or {}
        for name in MEASURED_LIBRARIES:
            if name in libraries:
                facts[name][str(libraries[name])] += 1
        for name in ("hostname", "cpu_model"):
            if provenance.get(name) is not None:
                facts[name][str(provenance[name])] += 1
    lines = []
    for dataset in sorted(values):
        for name, seen in values[dataset].items():
            if len(seen) > 1:
                what = "machines" if name in ("hostname", "cpu_model") else "library versions"
                each = ", ".join(f"{value} ({n} record{'s' if n > 1 else ''})" for value, n in sorted(seen.items()))
                lines.append(f"warning: {dataset}: records mix {what}: {name} {each}")
    return lines
