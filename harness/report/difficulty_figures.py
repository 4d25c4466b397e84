"""Where a method fails: recall, iterations and distance computations by query difficulty, and
recall and source recovery against the corruption of the corrupted-pattern workload.

Both need per-query answers scored against the dataset file's ground truth (`Answers`, which the
command layer builds); neither reruns anything. Each series (`summary.series_name`: a method and
its control are separate series) is shown by one configuration, `representative`: its fastest
run reaching recall@1 >= REPRESENTATIVE_RECALL, else its most accurate run; every record's
recall per LID tercile is in `harness results --format csv` (`recall_at_1_lid_t1..t3`).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from harness.report.difficulty import MEASURES, TERCILE_NAMES, by_tercile
from harness.report.paired import Answers
from harness.report.plots import save_figure
from harness.report.style import assign_styles
from harness.report.summary import is_control, is_ok, metric, natural_key, series_name

Record = Mapping[str, Any]
REPRESENTATIVE_RECALL = 0.9
DIFFICULTY_FIGURE = "difficulty"
SIGMA_FIGURE = "corrupted-sigma"
#: the per-query quantities drawn against difficulty: (Answers accessor, axis label)
_QUANTITIES: tuple[tuple[str, str], ...] = (
    ("recall_at_1", "recall@1"), ("iterations", "iterations per query"), ("dist_comps", "distance computations per query"),
)


def representative(members: Sequence[Record]) -> Record:
    """The run a series is shown by: the fastest reaching recall@1 >= REPRESENTATIVE_RECALL, else
    the most accurate (ties: the fastest, then the label)."""
    reaching = [r for r in members if metric(r, "recall_at_1") >= REPRESENTATIVE_RECALL - 1e-9]
    if reaching:
        return min(reaching, key=lambda r: (-metric(r, "qps"), str(r.get("label"))))
    return min(members, key=lambda r: (-metric(r, "recall_at_1"), -metric(r, "qps"), str(r.get("label"))))


def chosen(records: Sequence[Record], answers: Answers) -> dict[str, Record]:
    """Per series, its representative among the ok records that have per-query scores."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        if is_ok(record) and answers.why_not(record) is None:
            groups[series_name(record)].append(record)
    return {series: representative(groups[series]) for series in sorted(groups, key=natural_key)}


def _per_query(answers: Answers, record: Record, quantity: str) -> np.ndarray | None:
    if quantity == "recall_at_1":
        return answers.scores(record, "recall_at_1")
    return answers.iterations(record) if quantity == "iterations" else answers.dist_comps(record)


def difficulty_figure(records: Sequence[Record], answers: Answers, out_dir: Path, dataset: str) -> tuple[list[Path], dict[str, Record]]:
    """Recall@1, iterations and distance computations per difficulty tercile (rows: LID, relative
    contrast, d2/d1; t1 easiest), one line per series' representative; ([], {}) when no record
    has per-query scores."""
    picked = {s: r for s, r in chosen(records, answers).items() if answers.terciles(r) is not None}
    if not picked:
        return [], {}
    styles = assign_styles(sorted({str(r.get("algorithm")) for r in picked.values()}))
    figure = Figure(figsize=(13, 10), layout="constrained")
    axes = figure.subplots(len(MEASURES), len(_QUANTITIES), squeeze=False)
    x = np.arange(1, 4)
    for row, (measure, (measure_label, _)) in enumerate(MEASURES.items()):
        for column, (quantity, label) in enumerate(_QUANTITIES):
            ax = axes[row][column]
            for series, record in picked.items():
                values, labels = _per_query(answers, record, quantity), answers.terciles(record)
                if values is None or labels is None:
                    continue
                means = by_tercile(values, labels[measure])
                style, control = styles[str(record.get("algorithm"))], is_control(record)
                ax.plot(x, [np.nan if m is None else m for m in means], color=style.colour, marker=style.marker,
                        linestyle="--" if control else "-", markerfacecolor="none" if control else style.colour,
                        label=series if row == 0 and column == 0 else None)
            ax.set_xticks(x, [f"{name}\n({'easiest' if i == 0 else 'hardest' if i == 2 else 'middle'})"
                              for i, name in enumerate(TERCILE_NAMES)])
            ax.set_xlabel(f"tercile of {measure_label}", fontsize=8)
            ax.set_ylabel(label)
            if quantity == "dist_comps" and ax.has_data():
                ax.set_yscale("log")
    figure.suptitle(f"{dataset}: by query difficulty (each series by one configuration: its fastest reaching "
                    f"recall@1 >= {REPRESENTATIVE_RECALL:g}, else its most accurate)", fontsize=10)
    figure.legend(loc="outside lower center", ncols=3, fontsize=8)
    out_dir.mkdir(parents=True, exist_ok=True)
    return save_figure(figure, out_dir, DIFFICULTY_FIGURE), picked


def sigma_rows(records: Sequence[Record], answers: Answers) -> list[dict[str, Any]]:
    """Per corrupted-pattern dataset (its `corruption_sigma`) and series: the representative's
    recall@1 and source recovery rate."""
    by_dataset: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_dataset[str(record.get("dataset"))].append(record)
    rows = []
    for dataset, members in by_dataset.items():
        for series, record in chosen(members, answers).items():
            truth, recovered = answers.truth(record), answers.source_recovered(record)
            if truth is None or truth.sigma is None or recovered is None:
                continue
            rows.append({"sigma": truth.sigma, "dataset": dataset, "series": series, "label": record.get("label"),
                         "n_queries": record.get("n_queries"), "recall_at_1": metric(record, "recall_at_1"),
                         "source_recovery_rate": float(np.mean(recovered)), "algorithm": record.get("algorithm"),
                         "control": is_control(record)})
    rows.sort(key=lambda r: (natural_key(r["series"]), r["sigma"]))
    return rows


def sigma_figure(rows: Sequence[Mapping[str, Any]], out_dir: Path) -> list[Path]:
    """Recall@1 and source recovery against sigma, one line per series (`sigma_rows`)."""
    if not rows:
        return []
    styles = assign_styles(sorted({str(r["algorithm"]) for r in rows}))
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    axes = figure.subplots(1, 2)
    series_rows: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        series_rows[str(row["series"])].append(row)
    for ax, column, label in ((axes[0], "recall_at_1", "recall@1 (the exact nearest neighbour)"),
                              (axes[1], "source_recovery_rate", "source recovery (first answer = the stored pattern)")):
        for series, members in series_rows.items():
            style, control = styles[str(members[0]["algorithm"])], bool(members[0]["control"])
            ax.plot([m["sigma"] for m in members], [m[column] for m in members], color=style.colour, marker=style.marker,
                    linestyle="--" if control else "-", markerfacecolor="none" if control else style.colour,
                    label=series if ax is axes[0] else None)
        ax.set_xlabel("corruption sigma (noise length / median NN spacing)")
        ax.set_ylabel(label)
        ax.set_ylim(-0.02, 1.02)
    figure.suptitle(f"Corrupted patterns: each series by its fastest run reaching recall@1 >= {REPRESENTATIVE_RECALL:g}, "
                    "else its most accurate", fontsize=10)
    figure.legend(loc="outside lower center", ncols=3, fontsize=8)
    out_dir.mkdir(parents=True, exist_ok=True)
    return save_figure(figure, out_dir, SIGMA_FIGURE)
