"""Tables from records: the per-dataset summary and the flat results table (text, CSV, HTML).

The summary answers the question a reader asks first: at recall 0.9 / 0.95 / 0.99, how fast is
each algorithm, and with which parameters. The results table is one flat row per record, for
spreadsheets and for the report's full listing (failed runs included, with their error).

Runs of one algorithm on another device or in single-query mode are different trade-offs (a GPU
brute force is not a CPU brute force), so they form their own series: see `series_name`.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

from harness.metric_catalog import BY_NAME as CATALOGUE_BY_NAME
from harness.metric_catalog import CSV_INTERVALS, CSV_METRICS
from harness.report.paired import PAIRED_COLUMNS, Answers, pair, tune_split

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.9, 0.95, 0.99)

#: measurements a results row shows, read from the record's metrics: every declared metric that is
#: a results column (`harness.metric_catalog`, `csv=True`)
_METRIC_COLUMNS: tuple[str, ...] = CSV_METRICS
#: derived from each record: the interval of each of those metrics that has one, 95 % Wilson
#: intervals of the recalls and rates (`recall_interval`), the spread of q/s over the timed runs
_INTERVAL_COLUMNS: tuple[str, ...] = CSV_INTERVALS
#: one results row per record: what the record is, its measurements, how it ended
RESULT_COLUMNS: tuple[str, ...] = (
    "dataset", "algorithm", "label", "build_params", "query_params", "mode", "device", "k", "n_queries", "n_queries_total",
    *_METRIC_COLUMNS, *_INTERVAL_COLUMNS, "estimated_s", "measured_s", "role", "status", "error", "budget_note", "stale",
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
    "dataset", "metric", "threshold", "series", "qps", "qps_min", "qps_max", "recall", "recall_low", "recall_high",
    "verdict", "k", "label", "stale",
)
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


def summary_rows(
    records: Iterable[Mapping[str, Any]],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    metric: str = "recall_at_1",
) -> list[dict[str, Any]]:
    """Per dataset, threshold and series: the best QPS among runs whose `metric` reaches it.

    A series that never reaches a threshold still gets a row, with qps/recall/label None, so
    the table shows "not reached" rather than hiding the algorithm.
    """
    metric_name = metric
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        if is_ok(record):
            groups[(str(record.get("dataset")), series_name(record))].append(record)
    rows = []
    for (dataset, series), members in groups.items():
        for threshold in thresholds:
            rows.append(_best_row(dataset, series, members, float(threshold), metric_name))
    rows.sort(key=lambda r: (r["dataset"], r["threshold"], r["qps"] is None, -(r["qps"] or 0.0), r["series"]))
    return mark_leaders(rows)


def _best_row(
    dataset: str, series: str, members: list[Mapping[str, Any]], threshold: float, metric_name: str
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
        "verdict": None, "stale": None,
    }
    if reaching:
        best = min(reaching, key=lambda r: (-metric(r, "qps"), -metric(r, metric_name), str(r.get("label"))))
        low, high = recall_interval(best, metric_name)
        spread = intervals(best)
        row.update(
            qps=metric(best, "qps"), qps_min=spread["qps_min"], qps_max=spread["qps_max"], recall=metric(best, metric_name),
            recall_low=_finite(low), recall_high=_finite(high), k=best.get("k"), label=best.get("label"),
            build_params=compact_json(best.get("build_params")), query_params=compact_json(best.get("query_params")),
            stale=STALE_MARK if best.get(STALE_KEY) else None,
        )
    return row


def heldout_columns(
    rows: Sequence[dict[str, Any]], records: Iterable[Mapping[str, Any]], answers: Answers, fraction: float, seed: int,
) -> list[str]:
    """Add TUNED_COLUMNS to summary rows: per series and threshold, the fastest configuration
    whose recall on the tuning queries (`paired.tune_split` of each record's own queries) reaches
    the threshold, and its recall on the held-out queries with a 95 % Wilson interval. Its q/s is
    the record's, a whole-run measurement. Returns, once each, why records were left out."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        if is_ok(record):
            groups[(str(record.get("dataset")), series_name(record))].append(record)
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
    same = [record.get(f) for f in ("dataset", "algorithm", "k", "mode", "device", "threads")]
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


def control_rows(records: Iterable[Mapping[str, Any]], answers: Answers | None = None) -> list[dict[str, Any]]:
    """Each method configuration beside each of its controls: recalls, the climb's gain, the cost
    ratio, and (with `answers`) the paired statistics of the queries both answered.

    `recall_gain` = recall@1 - the control's recall@1 (what the climb adds; negative when it
    costs recall); `dist_ratio` = distance computations per query / the control's. A method
    whose control has no record (not run yet, or failed) gets a row with the control cells empty.
    `paired_note` says why a row's paired cells are empty (`control_notes` gathers them).
    """
    ok = [r for r in records if is_ok(r)]
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
            rows.append(_control_row(record, entry.get("switch"), control, answers))
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


def format_controls(rows: Sequence[Mapping[str, Any]]) -> str:
    """The method-vs-control table as text, with a heading that says how to read it."""
    if not rows:
        return ""
    heading = (
        "What the climb adds: each configuration beside its control (the same configuration with the part under\n"
        "test switched off, as the control column says; ascent=none: no climb, the same snap from the query)\n"
        "recall_gain = recall@1 - control recall@1; dist_ratio = distances per query / the control's\n"
        f"{PAIRED_LEGEND}\n"
    )
    notes = "".join(f"{note}\n" for note in control_notes(rows))
    return heading + notes + format_table(rows, CONTROL_COLUMNS)


def format_summary(rows: Sequence[Mapping[str, Any]]) -> str:
    """The summary as an aligned text table; "-" where a threshold is not reached."""
    if not rows:
        return "no successful runs to summarise\n"
    return format_table(rows, SUMMARY_COLUMNS)


def results_table(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per record (failed ones too), sorted by dataset, algorithm and label."""
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
        for column in _METRIC_COLUMNS:
            row[column] = metrics.get(column)
        row.update(intervals(record))
        for column in ("estimated_s", "measured_s", "role", "status", "error", "budget_note"):
            row[column] = record.get(column)
        row["stale"] = STALE_MARK if record.get(STALE_KEY) else None
        rows.append(row)
    rows.sort(key=lambda r: (str(r["dataset"]), str(r["algorithm"]), str(r["label"]), str(r["mode"])))
    return rows


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


def format_value(column: str, value: Any) -> str:
    """A cell for people: recalls to 4 decimals, times and rates to 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    if column.startswith(("recall", "control_recall")) or column in ("threshold", "converged_onto_nn_rate"):
        return f"{value:.4f}"
    if column in ("qps", "control_qps", "qps_min", "qps_max", "qps_best", "qps_a", "qps_b", "tuned_qps"):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as an aligned text table; numbers right-aligned, text left-aligned."""
    columns = list(columns or (rows[0].keys() if rows else RESULT_COLUMNS))
    cells = [[format_value(c, row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]
    numeric = [all(_is_number(row.get(c)) for row in rows) and bool(rows) for c in columns]
    def render(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()
    lines = [render(columns), "  ".join("-" * w for w in widths)]
    lines.extend(render(line) for line in cells)
    return "\n".join(lines) + "\n"


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
    """Rows as a GitHub-flavoured Markdown table (cells as in the text table)."""
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---:" if _numeric(rows, c) else "---" for c in columns) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(format_value(c, row.get(c)).replace("|", "\\|") for c in columns) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def format_latex(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], caption: str = "") -> str:
    """Rows as a LaTeX table (booktabs: \\toprule, \\midrule, \\bottomrule), special characters escaped."""
    def esc(text: str) -> str:
        return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)

    align = "".join("r" if _numeric(rows, c) else "l" for c in columns)
    lines = [r"\begin{table}[ht]", r"\centering", rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(esc(c) for c in columns) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(format_value(c, row.get(c))) for c in columns) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{esc(caption)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _numeric(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    return bool(rows) and all(_is_number(row.get(column)) for row in rows)


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
