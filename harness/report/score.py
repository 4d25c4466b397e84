"""One number per series across datasets: the area under its q/s-recall@1 front, normalised per
dataset by the best series there, averaged over the datasets the series ran on.

The front of a series on a dataset is a step function of recall r: F(r) = the largest
log10(q/s) among its successful runs whose recall@1 is at least r (its best speed at that
accuracy), 0 where no run reaches r. No point between two measured runs is interpolated: a
series gets credit only for the accuracy a run of it reached. q/s below 1 counts as 0
(log10 1), so that F is never negative and an area is never below that of a series that never
reached the recall at all.

    area(series, dataset) = integral over r in [RECALL_FLOOR, 1] of F(r) dr      (RECALL_FLOOR = 0.5)
    score(series, dataset) = area / max over the dataset's series of area        (in [0, 1]; 1: the best)
    score(series) = mean of score(series, dataset) over the datasets it ran on, with their number

A dataset where no series reaches the floor gives no score to any series (there is no best to
normalise by). The mean is over the datasets a series ran on, so a series measured on one easy
dataset is not comparable with one measured on five: the count stands beside the mean.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable, Mapping

from harness.report.summary import is_ok, metric, series_name

RECALL_FLOOR = 0.5
#: the columns of a score row
SCORE_COLUMNS: tuple[str, ...] = ("series", "score", "n_datasets", "datasets")


def front_area(points: Iterable[tuple[float, float]], floor: float = RECALL_FLOOR) -> float:
    """The area under the step front of (recall, q/s) points over recall [floor, 1], in
    log10(q/s) x recall (as the module says)."""
    kept = [(min(1.0, float(r)), math.log10(max(1.0, float(q)))) for r, q in points
            if math.isfinite(r) and math.isfinite(q) and r >= floor]
    levels = sorted({r for r, _ in kept})
    area, previous = 0.0, floor
    for level in levels:
        best = max(speed for r, speed in kept if r >= level)
        area += best * (level - previous)
        previous = level
    return area


def dataset_scores(records: Iterable[Mapping[str, Any]], metric_name: str = "recall_at_1",
                   floor: float = RECALL_FLOOR) -> dict[str, dict[str, dict[str, float]]]:
    """Per dataset, per series: {"area", "score"} (score = area / the dataset's best area); a
    dataset whose best area is 0 is left out."""
    points: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        if is_ok(record):
            points[str(record.get("dataset"))][series_name(record)].append((metric(record, metric_name), metric(record, "qps")))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for dataset, by_series in points.items():
        areas = {series: front_area(p, floor) for series, p in by_series.items()}
        best = max(areas.values(), default=0.0)
        if best > 0:
            out[dataset] = {series: {"area": area, "score": area / best} for series, area in areas.items()}
    return out


def score_rows(records: Iterable[Mapping[str, Any]], metric_name: str = "recall_at_1",
               floor: float = RECALL_FLOOR) -> list[dict[str, Any]]:
    """One row per series: its mean normalised score over the datasets it ran on, their number,
    and `datasets` (each dataset's score, as text); the best mean first."""
    per_dataset = dataset_scores(records, metric_name, floor)
    by_series: dict[str, dict[str, float]] = defaultdict(dict)
    for dataset, entries in per_dataset.items():
        for series, entry in entries.items():
            by_series[series][dataset] = entry["score"]
    rows = []
    for series, scores in by_series.items():
        rows.append({
            "series": series, "score": sum(scores.values()) / len(scores), "n_datasets": len(scores),
            "datasets": "; ".join(f"{d} {scores[d]:.3f}" for d in sorted(scores)),
        })
    rows.sort(key=lambda r: (-r["score"], r["series"]))
    return rows


def score_note(floor: float = RECALL_FLOOR) -> str:
    """What a score is, in one line for a table's reader."""
    return (f"score: the area under each series' q/s-recall@1 front (a step function of log10 q/s, no interpolation) over "
            f"recall [{floor:g}, 1], divided by the best series' area on the same dataset, then averaged over the "
            "datasets the series ran on (n_datasets)")

