"""The HTML report: one self-contained page per dataset, readable offline and mailable, and an
index page across datasets.

Everything the page shows is inside the file: the interactive figures (`harness.report.interactive`:
plotly.js and the figures' data inlined), the static figures as base64 data URIs (PNG preferred,
since every browser and mail client renders it; SVG when a figure has no PNG), CSS in a <style>
element; no fonts, scripts or links to load. `static=True` writes the page without any script.
Next to each static figure there are plain links to the PNG/SVG files written beside the page,
which work when the directory is kept together and break harmlessly when only the page is
copied. All text from records passes through `html.escape`.

`write_index` writes `plots/index.html`: every dataset with records, linked to its page, and a
cross-dataset table (best q/s per series at each recall@1 threshold), like ann-benchmarks' front page.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from harness import __version__
from harness.report.difficulty import MEASURES
from harness.report.difficulty_figures import difficulty_figure, sigma_figure, sigma_rows
from harness.report.interactive import figures_html
from harness.report.paired import Answers
from harness.report.plots import FIGURE_TITLES, FIGURES, figure_caption, left_out_reason
from harness.report.score import SCORE_COLUMNS, score_note, score_rows
from harness.report.summary import (
    CONTROL_SHOWN_WIDE,
    DIFFICULTY_COLUMNS,
    PAIRED_LEGEND,
    SKIPPED_COLUMNS,
    TUNED_COLUMNS,
    column_header,
    control_notes,
    control_rows,
    details_text,
    difficulty_columns,
    format_value,
    heldout_columns,
    label_maker,
    natural_key,
    provenance_warnings,
    results_table,
    scale_note,
    series_name,
    skipped_rows,
    split_header,
    stale_warnings,
    summary_columns_for,
    summary_rows,
    table_cells,
)

Record = Mapping[str, Any]

_MIME = {".png": "image/png", ".svg": "image/svg+xml"}
_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
th { overflow-wrap: normal; } td.num, td.short { white-space: nowrap; overflow-wrap: normal; }
td[title] { text-decoration: underline dotted #999; cursor: help; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td { background: #fde8e8; } tr.timeout td { background: #fff4d6; } tr.skipped td { background: #eef2f7; }
.scroll { overflow-x: auto; } code { font-size: 0.95em; }
.pickers { font-size: 0.85em; margin: 0.3em 0; } .pickers label { margin-right: 0.8em; }
.warning { background: #fff4d6; border: 1px solid #e0c060; padding: 0.3em 1em; margin: 1em 0; }
.explorer { margin: 1em 0 2em 0; } td.leader { font-weight: bold; } td.tied { font-style: italic; }
"""


def write_report(
    records: Sequence[Record], out_dir: Path, dataset: str, figures: list[Path], static: bool = False,
    answers: Answers | None = None, tuning: tuple[float, int] | None = None,
) -> Path:
    """Write `out_dir/index.html` for `dataset` and return its path.

    `answers` (`harness.report.paired.Answers`) give the control table its paired statistics;
    `tuning` = (fraction, seed) chooses the summary's configurations on a tuning split of the
    queries and shows their held-out recall (default: the in-sample choice, as the page says).

    `figures` are the files `harness.report.plots.make_plots` returned; each figure (one stem, several
    formats) is embedded once. Records of other datasets are ignored. Unless `static`, the page
    opens with the interactive figures, and the static ones follow for papers.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mine = [r for r in records if r.get("dataset", dataset) == dataset]
    figure_sections = [_section("Figures", _figures_html(figures, out_dir))]
    if not static:
        figure_sections = [
            _section("Figures: explore", figures_html(mine, dataset)),
            _section("Figures: static, for papers (PNG here; SVG and PDF beside the page)", _figures_html(figures, out_dir)),
        ]
    sections = [
        _header(mine, dataset),
        *_warnings(mine),
        *figure_sections,
        _section("Summary: best queries per second reaching each recall@1", _summary_html(mine, answers, tuning)),
        *_controls_section(mine, answers),
        *_difficulty_section(mine, answers, out_dir, dataset),
        *_skipped_section(mine),
        _section("All runs", _results_html(mine)),
        _section("Provenance", _provenance_html(mine)),
    ]
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{_e(dataset)}: nearest-neighbour benchmark report</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _section(title: str, body: str) -> str:
    return f"<section>\n<h2>{_e(title)}</h2>\n{body}\n</section>"


def _header(records: Sequence[Record], dataset: str) -> str:
    ok = sum(1 for r in records if r.get("status") == "ok")
    skipped = sum(1 for r in records if r.get("status") == "skipped")
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    caption = figure_caption(records, dataset).replace("\n", " | ")
    skipped_text = f", {skipped} skipped (did not fit the budget, see Skipped)" if skipped else ""
    unit = scale_note(records)
    return (
        f"<h1>{_e(dataset)}: nearest-neighbour benchmark report</h1>\n"
        f"<p>{_e(caption)}</p>\n" + (f"<p>{_e(unit[0].upper() + unit[1:])}.</p>\n" if unit else "") +
        f"<p>{len(records)} run(s), {ok} successful, {len(records) - ok - skipped} failed or timed out{_e(skipped_text)}. "
        f"Generated {_e(generated)} by harness {_e(__version__)}.</p>"
    )


def _warnings(records: Sequence[Record]) -> list[str]:
    """Warnings a reader must see before the numbers: records made by code that has changed since
    (stale, kept with --reuse-stale; marked by `summary.mark_stale`), and records that mix
    library versions or machines."""
    lines = stale_warnings(records) + provenance_warnings(records)
    if not lines:
        return []
    items = "\n".join(f"<li>{_e(line.removeprefix('warning: '))}</li>" for line in lines)
    return [f'<div class="warning"><p><b>Warnings</b></p>\n<ul>\n{items}\n</ul></div>']


def _figures_html(figures: Iterable[Path], out_dir: Path) -> str:
    """One <figure> per stem, embedding the PNG (else the SVG) as a data URI."""
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for path in figures:
        by_stem[Path(path).stem].append(Path(path))
    left_out = [spec for spec in FIGURES if spec.name not in by_stem]
    if not by_stem:
        return "<p>No figures were made.</p>"
    blocks = []
    if left_out:
        items = "".join(f"<li>{_e(spec.title)}: {_e(left_out_reason(spec.name))}</li>" for spec in left_out)
        blocks.append(f'<div class="left-out"><p>Left out, nothing in these runs to draw:</p><ul>{items}</ul></div>')
    for stem, paths in by_stem.items():
        embedded = _pick_embedded(paths)
        if embedded is None:
            continue
        title = FIGURE_TITLES.get(stem, stem)
        data = base64.b64encode(embedded.read_bytes()).decode("ascii")
        links = " ".join(
            f'<a href="{_e(_relative(p, out_dir))}">{_e(p.suffix.lstrip(".").upper())}</a>' for p in sorted(paths)
        )
        blocks.append(
            f'<figure id="fig-{_e(stem)}">\n'
            f'<img src="data:{_MIME[embedded.suffix.lower()]};base64,{data}" alt="{_e(title)}">\n'
            f"<figcaption>{_e(title)} ({_e(stem)}). Files: {links}</figcaption>\n</figure>"
        )
    return "\n".join(blocks)


def _pick_embedded(paths: Sequence[Path]) -> Path | None:
    for suffix in (".png", ".svg"):
        for path in paths:
            if path.suffix.lower() == suffix and path.is_file():
                return path
    return None


def _relative(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.name


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], row_class: str | None = None,
           titles: Mapping[str, str] | None = None) -> str:
    """An HTML table that fits its column: headers with units that break after their underscores,
    one number format per column (`summary.table_cells`), numbers right-aligned, long text broken
    anywhere; rows classed by `row_class` (e.g. status); `titles` maps a column to the row key
    whose text the cell shows on hover (the details a compact cell leaves out)."""
    head = "".join(f"<th>{_e(column_header(c)).replace('_', '_<wbr>')}</th>" for c in columns)
    body = []
    for row, line in zip(rows, table_cells(rows, columns, units=True)):
        css = f' class="{_e(row.get(row_class))}"' if row_class and row.get(row_class) else ""
        cells = []
        for column, text in zip(columns, line):
            value = row.get(column)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            # numbers and short words stay whole; long text (labels, errors) may break to fit the column
            cell_class = ' class="num"' if numeric else (' class="short"' if len(text) <= 16 else "")
            title = (titles or {}).get(column)
            hover = f' title="{_e(row.get(title))}"' if title and row.get(title) else ""
            cells.append(f"<td{cell_class}{hover}>{_e(text)}</td>")
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return (
        f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(body) + "\n</tbody>\n</table></div>"
    )


def _summary_html(records: Sequence[Record], answers: Answers | None = None, tuning: tuple[float, int] | None = None) -> str:
    rows = summary_rows(records)
    if not rows:
        return "<p>No successful runs to summarise.</p>"
    note = ("<p>A dash means the series never reaches that recall. Recall is recall@1 (distance-based). "
            "<code>method</code>: the series and the parameters that differ within it (hover for all of them).</p>")
    columns = summary_columns_for(stale=any(r.get("stale") for r in rows))
    if tuning is None or answers is None:
        mode = ("<p>Mode: <b>in-sample</b>: each configuration is chosen on the same queries whose recall it reports, "
                "which flatters a configuration that reaches a threshold by chance (<code>results --summary "
                "--tune-fraction F</code> chooses on part of the queries and reports the rest).</p>")
        return note + "\n" + mode + "\n" + _table(rows, columns, titles={"method": "details"})
    notes = heldout_columns(rows, records, answers, *tuning)
    mode = (f"<p>Mode: <b>tuned on a split</b>: {_e(split_header(records, *tuning))}. The in-sample choice stands beside "
            "it (<code>label</code>, <code>recall</code>).</p>" + "".join(f"<p>{_e(n)}</p>" for n in notes))
    return note + "\n" + mode + "\n" + _table(rows, columns + list(TUNED_COLUMNS), titles={"method": "details"})


def _controls_section(records: Sequence[Record], answers: Answers | None = None) -> list[str]:
    """The method-vs-control table, where the records hold methods with controls."""
    rows = control_rows(records, answers)
    if not rows:
        return []
    note = (
        "<p>Each configuration of a potential method beside each of its controls: the same configuration with the part "
        "under test switched off, as the <code>control</code> column says (<code>ascent=none</code>: no climb, the "
        "same snap gathered at the query itself; <code>stop=geometric</code>: the probing loop stopped by a "
        "geometric bound instead of the potential; <code>descent=greedy</code>: the tree descended by centroid "
        "distance; <code>ascent=normalised</code>: the note's own rule in place of the fixed-point update). "
        "<code>recall_gain</code> = recall@1 &minus; the control's recall@1 (what the climb adds); "
        "<code>dist_ratio</code> = distance computations per query / the control's. "
        "<code>converged_onto_nn_rate</code> is the seed note's own measure (landing within 1e-3 of the true NN).</p>"
        f"<p>{_e(PAIRED_LEGEND)}.</p>" + "".join(f"<p>{_e(n)}</p>" for n in control_notes(rows))
    )
    labels = {str(r.get("label")): details_text(r) for r in records if r.get("status") == "ok"}
    for row in rows:
        row["details"] = labels.get(str(row.get("label")))
    table = _table(rows, list(CONTROL_SHOWN_WIDE), titles={"method": "details"})
    note += ("<p>Shown: the recall gain and the distance ratio with their intervals, McNemar's p and both q/s; "
             "every column (recall@k, converged rate, the discordant counts) is in "
             "<code>harness results --summary --format csv</code>.</p>")
    return [_section("What the climb adds: each configuration beside its control", note + table)]


def _embedded_figure(paths: Sequence[Path], out_dir: Path, title: str) -> str:
    """One <figure> of a figure written beside the page (PNG embedded, links to every file)."""
    embedded = _pick_embedded(paths)
    if embedded is None:
        return ""
    data = base64.b64encode(embedded.read_bytes()).decode("ascii")
    links = " ".join(f'<a href="{_e(_relative(p, out_dir))}">{_e(p.suffix.lstrip(".").upper())}</a>' for p in sorted(paths))
    return (f'<figure id="fig-{_e(embedded.stem)}">\n<img src="data:{_MIME[embedded.suffix.lower()]};base64,{data}" '
            f'alt="{_e(title)}">\n<figcaption>{_e(title)}. Files: {links}</figcaption>\n</figure>')


def _difficulty_section(records: Sequence[Record], answers: Answers | None, out_dir: Path, dataset: str) -> list[str]:
    """Where the method fails: recall, iterations and distance computations by query difficulty
    (`difficulty_figures.difficulty_figure`), and each run's recall@1 per LID tercile (with the
    source recovery rate on a corrupted-pattern dataset)."""
    if answers is None:
        return []
    paths, picked = difficulty_figure(records, answers, out_dir, dataset)
    if not paths:
        return []
    rows = []
    for record in records:
        if record.get("status") != "ok" or answers.why_not(record) is not None:
            continue
        row = {"series": series_name(record), "label": record.get("label"), "n_queries": record.get("n_queries"),
               "recall_at_1": (record.get("metrics") or {}).get("recall_at_1"), **difficulty_columns(record, answers)}
        row["shown"] = "yes" if picked.get(row["series"]) is record else None
        rows.append(row)
    rows.sort(key=lambda r: (natural_key(r["series"]), -(r["recall_at_1"] or 0.0)))
    columns = ["series", "label", "n_queries", "recall_at_1", *DIFFICULTY_COLUMNS[:3], "shown"]
    if any(r["source_recovery_rate"] is not None for r in rows):
        columns.insert(4, "source_recovery_rate")
    note = (f"<p>Each test query's difficulty from the dataset file's stored true distances "
            f"(<code>harness/report/difficulty.py</code>): {_e(MEASURES['lid'][0])}, {_e(MEASURES['rc'][0])}, "
            f"{_e(MEASURES['ratio'][0])}. Terciles are cut over every test query of the file, t1 the easiest third "
            "(low LID, high contrast, high ratio). The figure shows each series by one run (<code>shown</code>); "
            "the table every run's recall@1 per LID tercile"
            + (", and the fraction of queries whose first answer is the stored pattern the query was made from "
               "(<code>source_recovery_rate</code>)" if "source_recovery_rate" in columns else "") + ".</p>")
    return [_section("Where it fails: by query difficulty",
                     note + _embedded_figure(paths, out_dir, "By query difficulty") + _table(rows, columns))]


def _skipped_section(records: Sequence[Record]) -> list[str]:
    """The configurations a budget left out, and why (`--budget`, `--config-budget`)."""
    rows = skipped_rows(records)
    if not rows:
        return []
    note = ("<p>These build configurations did not fit the run's budget even on the fewest queries worth "
            "measuring; the reason gives the estimate. Rerun with a larger <code>--config-budget</code> or "
            "<code>--budget</code> to measure them.</p>")
    return [_section("Skipped", note + _table(rows, [c for c in SKIPPED_COLUMNS if c != "dataset"]))]


#: the columns of the report's "All runs" table; the others are in the hover of `method` and in
#: `harness results --format csv`
RUN_COLUMNS: tuple[str, ...] = (
    "method", "mode", "device", "n_queries", "recall_at_1", "recall_at_k", "qps", "dist_comps_mean", "build_s",
    "index_bytes", "status", "error",
)


def _results_html(records: Sequence[Record]) -> str:
    if not records:
        return "<p>No runs recorded.</p>"
    labeller = label_maker(records)
    rows = []
    for record in records:
        row = results_table([record])[0]
        row["method"] = labeller(record) if record.get("status") == "ok" else str(record.get("label"))
        details = [details_text(record)] + [f"{k}={format_value(k, v)}" for k, v in row.items()
                                            if v is not None and k not in ("label", "build_params", "query_params")]
        row["details"] = "; ".join(details)
        error = str(row.get("error") or row.get("budget_note") or "")
        row["full_error"], row["error"] = error or None, (error[:77] + "...") if len(error) > 80 else (error or None)
        rows.append(row)
    rows.sort(key=lambda r: (str(r["algorithm"]), str(r["method"]), str(r["mode"])))
    note = ("<p>One row per run; hover <code>method</code> for every parameter and measurement, an error for its "
            "whole text. Every column: <code>harness results --format csv</code>.</p>")
    return note + _table(rows, RUN_COLUMNS, row_class="status", titles={"method": "details", "error": "full_error"})


def _provenance_html(records: Sequence[Record]) -> str:
    """Distinct machines, software, code versions, dataset files and commands of the runs."""
    provenance = [r.get("provenance") or {} for r in records]
    if not provenance:
        return "<p>No runs recorded.</p>"
    machine_keys = ("hostname", "platform", "cpu_model", "cpu_count", "gpu_name", "python", "torch", "cuda", "allocator", "parallel")
    parts = [
        "<h3>Machines</h3>",
        _table(_distinct(provenance, machine_keys), machine_keys),
        "<h3>Libraries</h3>",
        _table(_libraries(provenance), ("library", "versions")),
        "<h3>Code</h3>",
        _table(_distinct(provenance, ("git_commit", "git_dirty", "harness_version")),
               ("git_commit", "git_dirty", "harness_version")),
        "<h3>Dataset files</h3>",
        _table(_distinct(provenance, ("dataset_path", "dataset_sha256")), ("dataset_path", "dataset_sha256")),
        "<h3>Commands</h3>",
        _list(sorted({str(p["command"]) for p in provenance if p.get("command")})),
        f"<p>Runs between {_e(_earliest(provenance, 'started'))} and {_e(_latest(provenance, 'finished'))}.</p>",
    ]
    return "\n".join(parts)


def _distinct(provenance: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, ...], dict[str, Any]] = {}
    for entry in provenance:
        row = {key: entry.get(key) for key in keys}
        seen.setdefault(tuple(str(row[key]) for key in keys), row)
    return [seen[key] for key in sorted(seen)]


def _libraries(provenance: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    versions: dict[str, set[str]] = defaultdict(set)
    for entry in provenance:
        for name, version in (entry.get("libraries") or {}).items():
            versions[str(name)].add(str(version))
    return [{"library": name, "versions": ", ".join(sorted(v))} for name, v in sorted(versions.items())]


def _list(items: Sequence[str]) -> str:
    if not items:
        return "<p>None recorded.</p>"
    return "<ul>\n" + "\n".join(f"<li><code>{_e(item)}</code></li>" for item in items) + "\n</ul>"


def _earliest(provenance: Sequence[Mapping[str, Any]], key: str) -> str:
    values = sorted(str(p[key]) for p in provenance if p.get(key))
    return values[0] if values else "unknown"


def _latest(provenance: Sequence[Mapping[str, Any]], key: str) -> str:
    values = sorted(str(p[key]) for p in provenance if p.get(key))
    return values[-1] if values else "unknown"


#: the recall thresholds of the index page's cross-dataset table
INDEX_THRESHOLDS: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)


def write_index(records: Sequence[Record], plots_dir: Path, thresholds: Sequence[float] = INDEX_THRESHOLDS,
                answers: Answers | None = None) -> Path:
    """Write `plots_dir/index.html`: every dataset with records (linked to its report where one was
    written), each series' cross-dataset score (`harness.report.score`), per recall metric a table
    of the best q/s per series at each threshold, and, with `answers` and records of
    corrupted-pattern datasets, recall@1 and source recovery against the corruption sigma."""
    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    by_dataset: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_dataset[str(record.get("dataset"))].append(record)
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        "<h1>Nearest-neighbour benchmarks: every dataset</h1>",
        f"<p>{len(by_dataset)} dataset(s), {len(records)} run(s). Generated {_e(generated)} by harness {_e(__version__)}.</p>",
        _section("Datasets", _datasets_html(by_dataset, plots_dir)),
        _section("One number per series: its q/s-recall@1 front across datasets", _score_html(records)),
        *_sigma_section(records, answers, plots_dir),
    ]
    for metric_name, label in (("recall_at_1", "recall@1"), ("recall_at_k", "recall@k")):
        sections.append(_section(
            f"Best queries per second reaching each {label}", _cross_dataset_html(records, thresholds, metric_name)))
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<title>Nearest-neighbour benchmarks: every dataset</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )
    path = plots_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _score_html(records: Sequence[Record]) -> str:
    rows = score_rows(records)
    if not rows:
        return "<p>No series reaches recall@1 0.5 on any dataset.</p>"
    return f"<p>{_e(score_note()[0].upper() + score_note()[1:])}.</p>" + _table(rows, SCORE_COLUMNS)


def _sigma_section(records: Sequence[Record], answers: Answers | None, plots_dir: Path) -> list[str]:
    """Recall@1 and source recovery against sigma across the corrupted-pattern datasets."""
    rows = [] if answers is None else sigma_rows(records, answers)
    if not rows:
        return []
    paths = sigma_figure(rows, plots_dir)
    note = ("<p>Each corrupted-pattern dataset holds stored patterns and noisy copies of them as queries "
            "(<code>corruption_sigma</code>: the noise length over the median nearest-neighbour spacing). Recall@1 asks "
            "for the exact nearest neighbour of the noisy query; source recovery asks whether the first answer is the "
            "pattern the query was made from. Each series is shown by one run per dataset (<code>label</code>).</p>")
    table = _table(rows, ["sigma", "series", "label", "n_queries", "recall_at_1", "source_recovery_rate"])
    return [_section("Corrupted patterns: recall@1 and source recovery against sigma",
                     note + _embedded_figure(paths, plots_dir, "Corrupted patterns against sigma") + table)]


def _datasets_html(by_dataset: Mapping[str, Sequence[Record]], plots_dir: Path) -> str:
    if not by_dataset:
        return "<p>No records yet: run <code>python -m harness --dataset ...</code> first.</p>"
    rows = []
    for dataset in sorted(by_dataset):
        members = by_dataset[dataset]
        report = plots_dir / dataset / "index.html"
        name = f'<a href="{_e(dataset)}/index.html">{_e(dataset)}</a>' if report.is_file() else _e(dataset)
        ok = sum(1 for r in members if r.get("status") == "ok")
        series = len({str(r.get("algorithm")) for r in members})
        finished = _latest([r.get("provenance") or {} for r in members], "finished")
        rows.append(
            f"<tr><td>{name}</td><td class=\"num\">{len(members)}</td><td class=\"num\">{ok}</td>"
            f"<td class=\"num\">{series}</td><td>{_e(finished)}</td></tr>"
        )
    head = "<tr><th>dataset (its report)</th><th>runs</th><th>ok</th><th>algorithms</th><th>last run finished</th></tr>"
    return f'<div class="scroll"><table>\n<thead>{head}</thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody>\n</table></div>"


def _cross_dataset_html(records: Sequence[Record], thresholds: Sequence[float], metric_name: str) -> str:
    """Rows: dataset and series; columns: thresholds; cells: the best q/s reaching it (bold: the
    dataset's leader at that threshold; italic: tied with the runner-up, see `mark_leaders`)."""
    rows = summary_rows(records, thresholds, metric=metric_name)
    if not rows:
        return "<p>No successful runs.</p>"
    cells: dict[tuple[str, str], dict[float, Mapping[str, Any]]] = defaultdict(dict)
    for row in rows:
        cells[(str(row["dataset"]), str(row["series"]))][float(row["threshold"])] = row
    head = "<tr><th>dataset</th><th>series</th>" + "".join(f"<th>&ge; {t:g}</th>" for t in thresholds) + "</tr>"
    body = []
    for (dataset, series) in sorted(cells):
        tds = []
        for threshold in thresholds:
            row = cells[(dataset, series)].get(float(threshold))
            if row is None or row.get("qps") is None:
                tds.append('<td class="num">&ndash;</td>')
                continue
            verdict = row.get("verdict") or ""
            title = f"{row.get('label')} ({metric_name} {format_value('recall', row.get('recall'))})"
            tds.append(f'<td class="num {_e(verdict)}" title="{_e(title)}">{_e(format_value("qps", row["qps"]))}</td>')
        body.append(f"<tr><td>{_e(dataset)}</td><td>{_e(series)}</td>{''.join(tds)}</tr>")
    note = ("<p>Best queries per second of each series among its runs that reach the threshold; a dash: "
            "never reached. <b>Bold</b>: the dataset's fastest at that threshold; <i>italic</i>: the fastest "
            "and the runner-up, whose q/s ranges over the timed runs overlap (tied). Hover a cell for its configuration.</p>")
    return note + f'<div class="scroll"><table>\n<thead>{head}</thead>\n<tbody>\n' + "\n".join(body) + "\n</tbody>\n</table></div>"
