"""Two result sets side by side: is one faster than the other at the same recall?

`harness compare` takes two results directories of one dataset (the same algorithms before and
after a change of the code, or of the machine), or two series of one directory (a new potential
variant against `potential-gaussian`). For each recall threshold it takes each side's fastest
configuration reaching it, and reports the ratio of their q/s with the interval the timed runs
allow: [min q/s of A / max q/s of B, max of A / min of B]. The verdict is `faster` when the whole
interval lies above 1, `slower` when it lies below, and `no significant difference` otherwise.

When both chosen configurations answered the same queries (the same first n of the same dataset
file) and their answers can be scored, the row also holds the paired test of their recall@1
(`harness.report.paired`): the queries only A / only B answers right and the exact McNemar p.
"""
from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from matplotlib.figure import Figure

from harness.report.paired import Answers, discordant, mcnemar_p, same_queries
from harness.report.summary import intervals, is_ok, metric, series_name

Record = Mapping[str, Any]
COMPARE_COLUMNS: tuple[str, ...] = (
    "series", "threshold", "qps_a", "qps_b", "ratio", "ratio_low", "ratio_high", "verdict", "label_a", "label_b",
    "only_a", "only_b", "mcnemar_p",
)


def best_reaching(records: Sequence[Record], series: str, threshold: float, recall: str) -> Record | None:
    """The fastest ok record of `series` whose `recall` reaches `threshold`."""
    reaching = [
        r for r in records
        if is_ok(r) and series_name(r) == series and metric(r, recall) >= threshold - 1e-9 and math.isfinite(metric(r, "qps"))
    ]
    return max(reaching, key=lambda r: metric(r, "qps"), default=None)


def compare_rows(
    side_a: Sequence[Record], side_b: Sequence[Record], pairs: Sequence[tuple[str, str]], thresholds: Sequence[float],
    recall: str = "recall_at_1", answers: Answers | None = None,
) -> list[dict[str, Any]]:
    """One row per (series pair, threshold): both q/s, their ratio with its interval, a verdict,
    and with `answers` the paired recall test (`paired_note` says why it is empty)."""
    rows = []
    for series_a, series_b in pairs:
        for threshold in thresholds:
            a, b = best_reaching(side_a, series_a, threshold, recall), best_reaching(side_b, series_b, threshold, recall)
            name = series_a if series_a == series_b else f"{series_a} vs {series_b}"
            row: dict[str, Any] = dict.fromkeys(COMPARE_COLUMNS)
            row.update(series=name, threshold=threshold, verdict=_one_side(a, b))
            if a is not None and b is not None:
                row.update(_ratio(a, b), label_a=a.get("label"), label_b=b.get("label"))
                row.update(_paired(answers, a, b, recall))
            rows.append(row)
    return rows


def _one_side(a: Record | None, b: Record | None) -> str:
    """The verdict where a side has no configuration reaching the threshold: which side did."""
    if a is None and b is None:
        return "reached by neither"
    if b is None:
        return f"reached by A only ({a.get('label')})"
    return f"reached by B only ({b.get('label')})"


def figure_name(first: str, second: str) -> str:
    """The comparison figure's file name, after the pair compared: `compare-A-vs-B.png` with
    each side reduced to letters, digits, dots and dashes."""
    def slug(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "side"

    return f"compare-{slug(first)}-vs-{slug(second)}.png"


def suggest(name: str, known: Sequence[str]) -> str:
    """`did you mean X?` for a misspelt series name (difflib's closest), else the list of all."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f"did you mean {' or '.join(close)}?" if close else f"series: {', '.join(sorted(known))}"


def _paired(answers: Answers | None, a: Record, b: Record, recall: str) -> dict[str, Any]:
    """Discordant counts and the exact McNemar p of two chosen configurations' per-query hits."""
    metric_name = recall if recall.startswith("recall_at_1") else "recall_at_1"
    why = "per-query answers were not read" if answers is None else same_queries(a, b) or answers.why_not(a) or answers.why_not(b)
    if why is not None:
        return {"paired_note": why}
    only_a, only_b = discordant(answers.scores(a, metric_name) > 0.5, answers.scores(b, metric_name) > 0.5)
    note = None if metric_name == recall else f"the paired test compares {metric_name} hits (a 0/1 outcome per query)"
    return {"only_a": only_a, "only_b": only_b, "mcnemar_p": mcnemar_p(only_a, only_b), "paired_note": note}


def compare_notes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each distinct reason about the paired test, once."""
    return list(dict.fromkeys(str(r["paired_note"]) for r in rows if r.get("paired_note")))


def _ratio(a: Record, b: Record) -> dict[str, Any]:
    qa, qb = metric(a, "qps"), metric(b, "qps")
    spread_a, spread_b = intervals(a), intervals(b)
    a_min, a_max = spread_a["qps_min"] or qa, spread_a["qps_max"] or qa
    b_min, b_max = spread_b["qps_min"] or qb, spread_b["qps_max"] or qb
    low, high = a_min / b_max, a_max / b_min
    verdict = "faster" if low > 1.0 else "slower" if high < 1.0 else "no significant difference"
    return {"qps_a": qa, "qps_b": qb, "ratio": qa / qb, "ratio_low": low, "ratio_high": high, "verdict": verdict}


def draw_comparison(rows: Sequence[Mapping[str, Any]], path: Path, title: str) -> Path | None:
    """The ratios with their intervals, one marker per (series, threshold), a line at 1; None
    (nothing drawn) when no threshold is reached by both sides."""
    shown = [r for r in rows if r["ratio"] is not None]
    if not shown:
        return None
    figure = Figure(figsize=(8.5, 0.9 + 0.35 * max(1, len(shown))), layout="constrained")
    ax = figure.add_subplot()
    for i, row in enumerate(shown):
        colour = {"faster": "#2ca02c", "slower": "#d62728"}.get(row["verdict"], "#7f7f7f")
        ax.errorbar([row["ratio"]], [i], xerr=[[row["ratio"] - row["ratio_low"]], [row["ratio_high"] - row["ratio"]]],
                    fmt="o", color=colour, capsize=3)
    ax.set_yticks(range(len(shown)), [f"{r['series']} @ {r['threshold']:g}" for r in shown], fontsize=8)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("q/s of A / q/s of B (interval from the timed runs; > 1: A is faster)")
    ax.set_title(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
