"""The subcommands (`python -m harness SUBCOMMAND`), each a `cmd_*` function of the parsed
arguments (`harness.cli` parses and dispatches).

`run` (the default) measures a sweep: it settles where builds run (`where_it_runs`), builds the
options once (`RunOptions.from_args`) and hands the sweep to `harness.run.executors.run_sweep`.
The others run no algorithm: `results`, `plot`, `report` and `compare` read records only, `list`
and `datasets` read the registries, and `landscape` draws the potentials themselves.
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, TextIO

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.report.paired import Answers


def _records(dataset: str, args: argparse.Namespace) -> list[dict]:
    from harness.records import load_records

    found = load_records(args.results_dir, dataset)
    if not found:
        raise HarnessError(
            f"no records for dataset {dataset!r} under {args.results_dir}", "run `python -m harness --dataset ...` first"
        )
    return found


def current_fingerprints(args: argparse.Namespace) -> dict[str, str]:
    """The code fingerprint of every algorithm loaded here (`algorithms.fingerprint`), by
    adapter class name (what a record's `adapter` says): the plugins named with --plugins
    (or $GPNN_PLUGINS) are loaded first. A class name two different codes share is left out
    (not judged)."""
    from algorithms import registry
    from algorithms.fingerprint import code_fingerprint
    from harness.measure.plugins import load_plugins, plugin_list

    load_plugins(plugin_list(getattr(args, "plugins", None)))
    found: dict[str, set[str]] = {}
    for spec in registry.all_algorithms().values():
        found.setdefault(spec.adapter.__name__, set()).add(code_fingerprint(spec))
    return {name: next(iter(prints)) for name, prints in found.items() if len(prints) == 1}


def judge_records(records: list[dict], args: argparse.Namespace) -> None:
    """Mark the records made by code that has changed since (`summary.mark_stale`) and say
    once which algorithms cannot be judged."""
    from harness.report.summary import mark_stale

    for note in mark_stale(records, current_fingerprints(args)):
        print(note, file=sys.stderr)


def report_warnings(records: list[dict], stream: TextIO | None = None) -> None:
    """Stale records and mixed library versions or machines, one line each."""
    from harness.report.summary import provenance_warnings, stale_warnings

    for line in stale_warnings(records) + provenance_warnings(records):
        print(line, file=stream or sys.stdout)


def plot_figures(dataset: str, records: list[dict], args: argparse.Namespace) -> list[Path]:
    from harness.report.plots import make_plots

    out_dir = args.plots_dir / dataset
    figures = make_plots(records, out_dir, dataset, intervals=args.intervals)
    print(f"figures: {out_dir}  ({len(figures)} files)")
    return figures


def plot_and_report(dataset: str, args: argparse.Namespace) -> None:
    """Figures and the report from one reading of the records (each read verifies a checksum)."""
    from harness.records import load_records
    from harness.report.page import write_index, write_report

    records = _records(dataset, args)
    judge_records(records, args)
    report_warnings(records, sys.stderr)
    figures = plot_figures(dataset, records, args)
    others = load_records(args.results_dir, other_than=dataset)  # this dataset's were read above
    # one reading of every dataset's ground truth and every record's answers, for the page and the index
    answers = _answers(records + others, args)
    page = write_report(records, args.plots_dir / dataset, dataset, figures, static=args.static,
                        answers=answers, tuning=_tuning(args))
    print(f"report:  {page}")
    index = write_index(records + others, args.plots_dir, answers=answers)
    print(f"index:   {index}  (every dataset with records)")


def cmd_plot(args: argparse.Namespace) -> int:
    dataset = _dataset_key(args.dataset)
    if args.x is None and args.y is None:
        plot_figures(dataset, _records(dataset, args), args)
        return 0
    from harness.report.metric_table import BY_NAME
    from harness.report.plots import plot_metrics

    for axis, name in (("--x", args.x), ("--y", args.y)):
        if name not in BY_NAME:
            raise HarnessError(f"{axis}: unknown metric {name!r}", f"metrics: {', '.join(BY_NAME)}")
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    if not formats or set(formats) - {"png", "svg", "pdf"}:
        raise HarnessError(f"--format {args.format!r}: formats are png, svg and pdf", "e.g. --format png,pdf")
    chosen = [a.strip() for a in args.algorithms.split(",") if a.strip()] if args.algorithms else None
    info = plot_metrics(
        _records(dataset, args), args.plots_dir / dataset, dataset, args.x, args.y, x_scale=args.x_scale,
        y_scale=args.y_scale, algorithms=chosen, exclude=[a.strip() for a in args.exclude.split(",") if a.strip()],
        formats=formats, intervals=args.intervals,
    )
    print(f"figure: {', '.join(str(p) for p in info.paths)}  ({info.n_points} points, {len(info.series)} series)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    plot_and_report(_dataset_key(args.dataset), args)
    return 0


def cmd_landscape(args: argparse.Namespace) -> int:
    from harness.report.landscape import LANDSCAPES, make_landscapes

    which = [w.strip() for w in args.figures.split(",") if w.strip()] if args.figures else None
    unknown = sorted(set(which or ()) - set(LANDSCAPES))
    if unknown:
        raise HarnessError(f"unknown landscape figure {unknown[0]!r}", f"choose from: {', '.join(LANDSCAPES)}")
    out_dir = args.plots_dir / "landscape"
    paths, facts = make_landscapes(out_dir, seed=args.seed, which=which)
    for name, count in facts.get("cross_points", {}).items():
        print(f"  {name:12} {count:3d} local maxima away from the data points (cross points)")
    print(f"figures: {out_dir}  ({len(paths)} files)")
    return 0


def _dataset_key(name: str) -> str:
    """Records are stored under the dataset's canonical name: resolve aliases and paths."""
    from harness.data.loader import is_path_spec
    from harness.data.registry import resolve

    if is_path_spec(name):
        return Path(name).stem
    try:
        return resolve(name).name
    except HarnessError:
        return name


def cmd_results(args: argparse.Namespace) -> int:
    from harness.records import load_records
    from harness.report.summary import RESULT_COLUMNS, results_table

    if args.tune_fraction is not None and not args.summary:
        raise HarnessError("--tune-fraction chooses the summary's configurations", "add --summary")
    if args.columns is not None and not args.summary:
        raise HarnessError("--columns shapes the summary's tables", "add --summary (`results --format csv` has every column)")
    dataset = _dataset_key(args.dataset) if args.dataset else None
    problems: list[str] = []
    found = load_records(args.results_dir, dataset, problems=problems)
    for problem in problems:
        print(f"warning: skipped {problem}", file=sys.stderr)
    if not found:
        where = args.results_dir / dataset if dataset else args.results_dir
        raise HarnessError(f"no records under {where}", _datasets_with_records(args.results_dir, dataset))
    judge_records(found, args)
    # beside a text table the warnings are part of what is read; beside data formats, on stderr
    warnings_to = sys.stdout if args.format == "table" else sys.stderr
    if args.summary:
        _print_summary(found, args)
        if _scores(found, args) is not None and args.format != "json":
            _print_scores(found, args.format)
        report_warnings(found, warnings_to)
        return 0
    _print_rows(results_table(found, _answers(found, args)), RESULT_COLUMNS, args.format, "All runs")
    report_warnings(found, warnings_to)
    return 0


def _datasets_with_records(results_dir: Path, asked: str | None) -> str:
    """What to do when `asked` has no records: the datasets that do (and the one closest to
    the name asked for), or how to make some."""
    import difflib

    from harness.records import iter_record_files

    root = Path(results_dir)
    have = sorted(d.name for d in root.iterdir() if d.is_dir() and next(iter_record_files(root, d.name), None)) \
        if root.is_dir() else []
    if not have:
        return "run `python -m harness --dataset ...` first"
    close = difflib.get_close_matches(asked, have, n=1, cutoff=0.7) if asked else []
    mean = f"did you mean {close[0]!r}? " if close else ""
    return f"{mean}datasets with records under {root}: {', '.join(have)}"


def _tuning(args: argparse.Namespace) -> tuple[float, int] | None:
    fraction = getattr(args, "tune_fraction", None)
    return None if fraction is None else (float(fraction), int(getattr(args, "tune_seed", 0)))


def _print_summary(found: list[dict], args: argparse.Namespace) -> None:
    """The best-q/s table (with the held-out columns under --tune-fraction) and the control table;
    `--columns` chooses the metric columns of both (text, Markdown, LaTeX: compact labels, units)."""
    from harness.report.summary import (
        CONTROL_COLUMNS, PAIRED_LEGEND, SUMMARY_COLUMNS, TEXT_WIDTH, TUNED_COLUMNS, check_columns, control_columns_for, control_notes,
        control_rows, format_controls, format_summary, heldout_columns, split_header, summary_columns_for,
        summary_heading, summary_rows,
    )

    metric = _recall_metric(args.metric)
    try:
        chosen = check_columns(args.columns) if getattr(args, "columns", None) else []
    except ValueError as exc:
        raise HarnessError(str(exc), "any metric of harness/metric_catalog.py, comma-separated") from None
    rows = summary_rows(found, _thresholds(args.thresholds), metric, columns=chosen)
    answers = _answers(found, args)
    extra = [c for c in chosen if c not in SUMMARY_COLUMNS]
    columns, header, notes = list(SUMMARY_COLUMNS) + extra, None, []
    shown = summary_columns_for(chosen, stale=any(r.get("stale") for r in rows))
    if len({r["dataset"] for r in rows}) > 1:
        shown = ["dataset", *shown]
    tuning = _tuning(args)
    if tuning is not None:
        notes = heldout_columns(rows, found, answers, *tuning)
        columns, header = columns + list(TUNED_COLUMNS), split_header(found, *tuning)
        shown = shown + list(TUNED_COLUMNS)
    controls = control_rows(found, answers, metrics=chosen)
    control_data = [*CONTROL_COLUMNS[:3], "method", *CONTROL_COLUMNS[3:]]
    control_data += [c for name in chosen if name not in CONTROL_COLUMNS for c in (name, f"control_{name}")
                     if c in controls[0]] if controls else []
    control_shown = control_columns_for(chosen, narrow=args.format == "table")
    heading = summary_heading(found, metric)
    caption = f"Best queries per second reaching each {args.metric} threshold"
    climb = "What the climb adds: each method configuration beside each of its controls"
    if args.format == "json":
        print(json.dumps({"split": _split_json(found, tuning, header), "heading": heading, "summary": rows,
                          "controls": controls, "notes": notes + control_notes(controls),
                          "scores": _scores(found, args)}, indent=1))
    elif args.format == "table":
        wrapped = [part for line in heading for part in textwrap.wrap(line, TEXT_WIDTH)]
        wrapped += [part for line in ([header] if header else []) + notes for part in textwrap.wrap(line, TEXT_WIDTH)]
        print("\n".join([*wrapped, format_summary(rows, shown)]))
        if controls:
            print(format_controls(controls, control_shown))
    else:
        comment = {"csv": "# ", "latex": "% ", "markdown": ""}[args.format]
        end = "  " if args.format == "markdown" else ""
        for line in ([] if args.format == "csv" else heading) + ([header] if header else []) + notes:
            print(f"{comment}{line}{end}")
        if args.format == "markdown":
            print()
        table_columns = columns if args.format == "csv" else shown
        _print_rows(rows, table_columns, args.format, caption)
        if controls or args.format == "csv":
            print()
            print({"csv": f"# {climb[0].lower()}{climb[1:]}", "latex": f"% {climb}", "markdown": f"**{climb}**  "}[args.format])
            for line in [PAIRED_LEGEND, *control_notes(controls)]:
                print(f"{comment}{line}{end}")
            if args.format == "markdown":
                print()
            _print_rows(controls, control_data if args.format == "csv" else control_shown, args.format, climb)


def _scores(found: list[dict], args: argparse.Namespace) -> list[dict] | None:
    """Each series' cross-dataset score when the summary spans datasets (no --dataset), else None."""
    from harness.report.score import score_rows

    return score_rows(found) if not args.dataset and len({r.get("dataset") for r in found}) > 1 else None


def _print_scores(found: list[dict], fmt: str) -> None:
    """Each series' cross-dataset score (`harness.report.score`), after the summary."""
    from harness.report.score import SCORE_COLUMNS, score_note, score_rows

    rows = score_rows(found)
    comment = {"csv": "# ", "latex": "% ", "markdown": "", "table": ""}[fmt]
    print(f"\n{comment}Across datasets: one number per series")
    for line in textwrap.wrap(score_note(), 118) if fmt == "table" else [score_note()]:
        print(f"{comment}{line}")
    _print_rows(rows, SCORE_COLUMNS, fmt, "Across datasets: one number per series")


def _table_of(rows: list[dict], columns: Sequence[str]) -> str:
    from harness.report.summary import format_table

    return format_table(rows, columns) if rows else "no successful runs to summarise\n"


def _split_json(found: list[dict], tuning: tuple[float, int] | None, header: str | None) -> dict | None:
    from harness.report.paired import tune_split

    if tuning is None:
        return None
    sizes = sorted({int(r.get("n_queries") or 0) for r in found if r.get("status") == "ok" and int(r.get("n_queries") or 0) >= 2})
    return {"fraction": tuning[0], "seed": tuning[1], "text": header,
            "sizes": {str(n): {"tune": len(tune_split(n, *tuning).tune), "heldout": len(tune_split(n, *tuning).heldout)}
                      for n in sizes}}


def _answers(records: list[dict], args: argparse.Namespace) -> Answers:
    """Per-query answers of `records`, scored against the ground truth of the dataset files whose
    checksums the records name (`provenance.dataset_sha256`): the file at the recorded path, else
    the registry's place under --data-dir; a file of another checksum is never used."""
    from harness.data.format import read_corruption, read_ground_truth
    from harness.report.paired import Answers, Truth

    wanted: dict[str, dict] = {}
    for record in records:
        provenance = record.get("provenance") or {}
        if record.get("status") != "ok" or not provenance.get("dataset_sha256"):
            continue
        entry = wanted.setdefault(str(provenance["dataset_sha256"]), {"dataset": str(record.get("dataset")), "paths": []})
        if provenance.get("dataset_path") and provenance["dataset_path"] not in entry["paths"]:
            entry["paths"].append(provenance["dataset_path"])
    truths, missing = {}, {}
    for checksum, entry in wanted.items():
        path, looked = _dataset_file(checksum, entry["dataset"], entry["paths"], getattr(args, "data_dir", None))
        if path is None:
            missing[checksum] = (f"the dataset file the records were measured on (sha256 {checksum[:12]}) is not at "
                                 f"{' or '.join(looked)}: give --data-dir")
            continue
        try:
            # every stored query: difficulty terciles are cut over the whole test set
            truths[checksum] = Truth(**read_ground_truth(path), **read_corruption(path))
        except HarnessError as exc:
            missing[checksum] = f"cannot read the ground truth of {path}: {exc}"
    return Answers(truths, missing)


def _dataset_file(checksum: str, dataset: str, recorded: list[str], data_dir: Path | None) -> tuple[Path | None, list[str]]:
    """The dataset file with `checksum`: at a recorded path, or where the registry keeps `dataset`."""
    from harness.data.loader import file_checksum
    from harness.data.registry import dataset_path, default_data_dir, resolve
    from harness.data.sidefiles import side_dir

    root = Path(data_dir) if data_dir is not None else default_data_dir()
    candidates = [Path(p) for p in recorded]
    try:
        candidates.append(dataset_path(resolve(dataset), root))
    except HarnessError:
        candidates.append(root / f"{dataset}.hdf5")
    for candidate in candidates:
        if candidate.is_file() and file_checksum(candidate, side_dir(candidate, root)) == checksum:
            return candidate, []
    return None, [str(c) for c in candidates]


def _print_rows(rows: list[dict], columns: Sequence[str], fmt: str, caption: str) -> None:
    from harness.report.summary import format_csv, format_latex, format_markdown, format_table

    if fmt == "csv":
        sys.stdout.write(format_csv(rows, columns))
    elif fmt == "json":
        print(json.dumps(rows, indent=1))
    elif fmt == "markdown":
        sys.stdout.write(format_markdown(rows, columns))
    elif fmt == "latex":
        sys.stdout.write(format_latex(rows, columns, caption))
    else:
        print(format_table(rows, columns))


def _thresholds(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or not all(0.0 < v <= 1.0 for v in values):
        raise HarnessError(f"--thresholds {text!r}: expected comma-separated recalls in (0, 1]", "e.g. --thresholds 0.9,0.95,0.99")
    return values


def _recall_metric(name: str) -> str:
    allowed = ("recall_at_1", "recall_at_k", "recall_at_1_id", "recall_at_k_id")
    if name not in allowed:
        raise HarnessError(f"--metric {name!r} is not a recall the summary can threshold", f"choose from: {', '.join(allowed)}")
    return name


def cmd_list(args: argparse.Namespace) -> int:
    """The registered algorithms and their parameters, or one in full (`list NAME`). A
    parameter that most potentials (`potential*`) declare alike (same kind, name, type,
    default, meaning) is printed once, before them; each potential then shows only its own,
    and names the common ones it does not take."""
    from algorithms import registry
    from harness.measure.plugins import load_plugins, plugin_list

    load_plugins(plugin_list(getattr(args, "plugins", None)))
    if args.name:
        spec = registry.get(args.name)  # an unknown name: ConfigError with the close ones
        for line in _algorithm_lines(spec.name, spec):
            print(line)
        return 0
    specs = registry.all_algorithms()
    potentials = [name for name in specs if name.startswith("potential")]
    own = {name: _parameter_lines(specs[name]) for name in potentials}
    counts: dict[str, int] = {}
    for lines in own.values():
        for line in dict.fromkeys(lines):
            counts[line] = counts.get(line, 0) + 1
    common = [line for line, count in counts.items() if count > len(potentials) / 2] if len(potentials) > 2 else []
    for name, spec in specs.items():
        if common and name == potentials[0]:
            print(f"common parameters of the potentials (potential*): each of the {len(potentials)} below takes "
                  "these unless it says otherwise, and lists only its own")
            for line in common:
                print(line)
        if name not in own or not common:
            lines = _algorithm_lines(name, spec)
        else:
            lines = _algorithm_lines(name, spec, leave_out=common)
            missing = [line.split(":")[0].split()[-1] for line in common if line not in own[name]]
            lines += [f"    (of the common parameters, these differ or are absent: {', '.join(missing)})"] if missing else []
        for line in lines:
            print(line)
    for module, problem in registry.import_problems().items():
        print(f"unavailable: {module}: {problem}")
    return 0


def _parameter_lines(spec: Any) -> list[str]:
    lines = []
    for kind, declared in (("build", spec.adapter.build_params), ("query", spec.adapter.query_params)):
        for pname, param in declared.items():
            fixed = f"  (fixed: {spec.fixed[pname]!r})" if pname in spec.fixed else ""
            lines.append(f"    {kind:5} {pname}: {param.describe()}{fixed}")
    return lines


def _algorithm_lines(name: str, spec: Any, leave_out: Sequence[str] = ()) -> list[str]:
    devices = ",".join(spec.adapter.devices)
    by_name = "" if spec.default_run else "  (not in the default run: name it with --algorithms)"
    return [f"{name}  [{devices}]  {spec.description}{by_name}",
            *(line for line in _parameter_lines(spec) if line not in leave_out)]


def cmd_datasets(args: argparse.Namespace) -> int:
    from harness.data.registry import default_data_dir, file_size, list_datasets, resolve

    data_dir = args.data_dir or default_data_dir()
    if args.action == "list":
        rows = [("name", "distance", "dim", "train x test", "size", "status")]
        approximate = False
        for info, present in list_datasets(data_dir):
            where = "present" if present else ("generated on first use" if info.generated else "download")
            size, exact = file_size(info)
            approximate = approximate or not exact
            rows.append((info.name, info.distance, f"{info.dimension}d", f"{info.n_train} x {info.n_test}",
                         ("" if exact else "~") + _bytes(size), where))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        right = {2, 4}  # numbers read best aligned on the right
        for row in rows:
            cells = [cell.rjust(width) if i in right else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths))]
            print("  ".join(cells).rstrip())
        if approximate:
            print("size: the file's size; ~ an estimate from the registry's shapes (train + test as float32, 100 "
                  "neighbours and their distances per query, 4 bytes each in a download and 8 in a generated file): "
                  "the registry holds no exact sizes for these")
        print(f"data directory: {Path(data_dir).resolve()}")
        return 0
    if args.action == "corrupt":
        for path in corrupt_datasets(args, Path(data_dir)):
            print(path)
        return 0
    if not args.name:
        raise HarnessError("datasets download needs a dataset name", "see `python -m harness datasets list`")
    info = resolve(args.name)
    from harness.data.loader import obtain

    path = obtain(info, Path(data_dir), force=args.force, progress=args.progress)
    print(path)
    return 0


def corrupt_datasets(args: argparse.Namespace, data_dir: Path) -> list[Path]:
    """`datasets corrupt --base FILE --sigmas 0.5,1,2`: one corrupted-pattern dataset per sigma in
    the data directory (`corrupted-<base>-s<sigma>-euclidean.hdf5`), each with its exact ground
    truth and each query's `source` pattern; a file already there is kept unless --force."""
    from harness.data.generate import generate
    from harness.data.registry import DatasetInfo

    if args.base is None:
        raise HarnessError("datasets corrupt needs --base FILE", "e.g. --base tests/data/siftsmall-128-euclidean.hdf5")
    if not Path(args.base).is_file():
        raise HarnessError(f"--base {args.base}: no such file", "give the path of a Euclidean dataset file")
    try:
        sigmas = [float(part) for part in args.sigmas.split(",") if part.strip()]
    except ValueError:
        sigmas = []
    if not sigmas or not all(s > 0 for s in sigmas):
        raise HarnessError(f"--sigmas {args.sigmas!r}: expected comma-separated positive numbers", "e.g. --sigmas 0.5,1,2")
    made = []
    for sigma in sigmas:
        name = f"corrupted-{Path(args.base).stem.removesuffix('-euclidean')}-s{sigma:g}-euclidean"
        path = data_dir / f"{name}.hdf5"
        if path.is_file() and not args.force:
            made.append(path)
            continue
        info = DatasetInfo(name=name, distance="euclidean", dimension=0, n_train=0, n_test=args.queries, generated=True,
                           generator={"kind": "corrupted", "sigma": sigma, "n_queries": args.queries,
                                      "base": str(Path(args.base).resolve())})
        made.append(generate(info, path, progress=args.progress))
    return made


def _bytes(size: int) -> str:
    """A size in binary units, as a download tool shows it (1 decimal below 10)."""
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{value:.1f} {unit}" if unit != "B" and value < 10 else f"{value:.0f} {unit}"


def cmd_compare(args: argparse.Namespace) -> int:
    """`harness compare`: two results directories, or two series of one, per recall threshold."""
    from harness.records import load_records
    from harness.report.compare import COMPARE_COLUMNS, compare_notes, compare_rows, draw_comparison, figure_name, suggest
    from harness.report.summary import series_name

    dataset = _dataset_key(args.dataset)
    side_a = _records(dataset, args)
    if (args.against is None) == (args.series is None):
        raise HarnessError("compare needs either --against DIR or --series A,B", "see `python -m harness compare --help`")
    if args.against is not None:
        side_b = load_records(args.against, dataset)
        if not side_b:
            raise HarnessError(f"no records for dataset {dataset!r} under {args.against}", "check --against")
        common = sorted({series_name(r) for r in side_a} & {series_name(r) for r in side_b})
        if not common:
            raise HarnessError(f"{args.results_dir} and {args.against} have no series in common for {dataset}")
        pairs, title = [(s, s) for s in common], f"A = {args.results_dir}, B = {args.against}"
        names = [Path(args.results_dir).name, Path(args.against).name]
    else:
        names = [n.strip() for n in args.series.split(",") if n.strip()]
        known = {series_name(r) for r in side_a}
        if len(names) != 2:
            raise HarnessError(f"--series {args.series!r}: expected two series of the records", f"series: {', '.join(sorted(known))}")
        for name in names:
            if name not in known:
                raise HarnessError(f"--series: no series {name!r} in the records of {dataset}", suggest(name, sorted(known)))
        side_b, pairs, title = side_a, [(names[0], names[1])], f"A = {names[0]}, B = {names[1]}"
    rows = compare_rows(side_a, side_b, pairs, _thresholds(args.thresholds), _recall_metric(args.metric),
                        answers=_answers(side_a + (side_b if side_b is not side_a else []), args))
    _print_rows(rows, COMPARE_COLUMNS, args.format, f"q/s ratio A/B per {args.metric} threshold ({title})")
    for note in compare_notes(rows):
        print(f"note: paired test: {note}", file=sys.stderr)
    figure = draw_comparison(rows, args.plots_dir / dataset / figure_name(*names), f"{dataset}: {title}")
    if figure is None:
        print("no figure: no threshold is reached by both sides, so there is no ratio to draw", file=sys.stderr)
    else:
        print(f"figure: {figure}", file=sys.stderr)
    return 0


# --- run: measure a sweep (the default command) ------------------------------------------------

#: the deprecated flags of where a run happens, kept for one release (`where_it_runs`)
_OLD_FLAGS = ("isolation", "executor", "ray_address", "parallel")


def where_it_runs(args: argparse.Namespace) -> None:
    """Settle `args.workers` (child processes at once; 0: this process) and `args.ray` (None: this
    machine; "" a local Ray instance; else a cluster's address) from --workers and --ray, or from
    the flags they replace (--isolation, --parallel, --executor, --ray-address), which still work
    for one release, each with a one-line note on stderr saying what to use instead."""
    old = {name: getattr(args, name, None) for name in _OLD_FLAGS}
    if old["isolation"] is not None:
        instead = "--workers 0" if old["isolation"] == "none" else "--workers N (a child process each: the default)"
        _deprecated(f"--isolation {old['isolation']}", instead)
    if old["parallel"] is not None:
        _deprecated(f"--parallel {old['parallel']}", f"--workers {old['parallel']}")
    if old["executor"] is not None or old["ray_address"] is not None:
        given = " ".join(part for part in (f"--executor {old['executor']}" if old["executor"] else "",
                                          f"--ray-address {old['ray_address']}" if old["ray_address"] else "") if part)
        if old["ray_address"] is not None and old["executor"] != "ray":
            raise HarnessError("--ray-address is only used with --executor ray (both deprecated)",
                               f"use --ray {old['ray_address']}")
        _deprecated(given, f"--ray {old['ray_address']}" if old["ray_address"] else
                    ("--ray" if old["executor"] == "ray" else "no flag (this machine is the default)"))
        if old["executor"] == "ray" and args.ray is None:
            args.ray = old["ray_address"] or ""
    if old["isolation"] == "none" and (old["parallel"] or 1) > 1:
        raise HarnessError("--parallel N runs each configuration in its own child process, so it needs --isolation process",
                           f"use --workers {old['parallel']}")
    workers = args.workers
    if workers is None:
        workers = 0 if old["isolation"] == "none" else old["parallel"] or 1
    elif old["isolation"] == "none" and workers > 0 or (old["parallel"] is not None and old["parallel"] != workers):
        raise HarnessError(f"--workers {workers} and {' '.join(f'--{n} {v}' for n, v in old.items() if v is not None)} "
                           "disagree", "give --workers only")
    if args.ray is not None and (args.workers is not None or old["parallel"] is not None or old["isolation"] is not None):
        raise HarnessError("--workers is for this machine; on Ray the cluster runs as many build configurations as it "
                           "has CPUs for (--threads each)", "drop --workers, or --ray")
    args.workers = workers


def _deprecated(given: str, instead: str) -> None:
    print(f"note: {given} is deprecated and goes in the next release; use {instead}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    """Measure the sweep on the dataset (on this machine or on Ray), then plot and report."""
    from harness.data.loader import open_dataset
    from harness.measure.plugins import load_plugins, plugin_list
    from harness.measure.threads import set_threads
    from harness.plan import sweeps

    where_it_runs(args)
    if args.ray is not None:
        from harness.run.ray_executor import require_ray

        require_ray()  # before any work: a missing extra is said at once
    plugins = plugin_list(args.plugins)
    load_plugins(plugins)
    device = _resolve_device(args.device) if args.ray is None else args.device
    set_threads(args.threads[0])
    entries = _sweep_entries(args)
    dataset = open_dataset(  # a plan is only printed: nothing may be written for it
        args.dataset, args.data_dir, download=True, progress=args.progress, trust_ground_truth=args.trust_ground_truth,
        write=not args.plan_only,
    )
    _check_count(args.count, dataset)
    configs = sweeps.expand(entries, dataset.n_train, dataset.name)
    configs, notes = sweeps.check_configs(
        configs, args.count, dataset.n_train, dataset.dimension, drop_invalid=args.sweep is None,
        distance=dataset.distance, named=bool(args.algorithms),
    )
    if not args.plan_only:
        _check_writable(args.results_dir)
    if args.ray is not None:
        from harness.run.ray_executor import ray_session, resolve_device

        with ray_session(args.ray or None) as ray:
            return _run(args, dataset, configs, notes, plugins, resolve_device(ray, device))
    return _run(args, dataset, configs, notes, plugins, device)


def _run(args: argparse.Namespace, dataset: Any, configs: list[Any], notes: list[str], plugins: tuple[str, ...],
         device: str) -> int:
    """Measure every configuration where the options say (this process connected to Ray when
    they say Ray), then report what was done."""
    from harness.data.loader import DatasetRef
    from harness.measure.worker import seed_everything
    from harness.plan.axes import with_axes
    from harness.plan.cost import probe_threads
    from harness.plan.options import RunOptions
    from harness.plan.plan import make_plan
    from harness.run.executors import run_sweep
    from harness.run.lock import ResultsLock
    from harness.run.runner import RunSummary, interrupt_code

    options = RunOptions.from_args(args, device, plugins)
    configs = with_axes(configs, options)
    print(f"{dataset.name}: {dataset.n_train} train x {dataset.dimension} dims, {dataset.n_test} queries, "
          f"{dataset.distance}; {len(configs)} index builds on {device}, {_axes_line(options)}, {_where(options, args)}")
    for note in notes:
        print(f"  note: {note}")
    # the cost model's units on this machine: about half a second, a sixth of that for a small
    # dataset (whose whole sweep takes minutes, so a rougher estimate costs little)
    rates = probe_threads(dataset.dimension, options.thread_axis(),
                          seconds=0.6 if dataset.n_train * dataset.dimension >= 10**7 else 0.1)
    if args.plan_only:
        print("\n".join(make_plan(dataset, configs, options, rates).lines(dataset.n_test, dataset.dimension)))
        return 0
    info = _provenance(options.isolation, options.threads, dataset)
    if options.isolation == "process" and not options.ray:
        dataset = DatasetRef.of(dataset)  # children load the file themselves; free the arrays here
    elif not options.ray:
        seed_everything(args.seed)
    summary = RunSummary()
    where = args.results_dir / dataset.name
    try:
        with ResultsLock(args.results_dir, dataset.name, wait=not args.no_wait):
            run_sweep(dataset, configs, options, info, summary=summary, rates=rates)
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted: {len(summary.written) + len(summary.failed)} records written this run, "
              f"{len(summary.reused)} reused, kept under {where}; rerun the same command to resume", file=sys.stderr)
        if args.debug:
            raise
        return interrupt_code(exc)
    _print_run_summary(summary, where)
    if args.plots:
        plot_and_report(dataset.name, args)
    return 1 if summary.failed else 0


def _where(options: Any, args: argparse.Namespace) -> str:
    """Where the run happens, in the words of its flags (the first line of a run)."""
    if options.ray:
        return f"on Ray ({args.ray or 'a local instance'})"
    if options.workers == 0:
        return "in this process (--workers 0)"
    return f"{options.workers} child process(es) at once" if options.workers > 1 else "in a child process"


def _print_run_summary(summary: Any, where: Path) -> None:
    """What the run did with each record, and what to do about what it left."""
    print(f"records: {len(summary.written)} written, {len(summary.reused)} reused, {len(summary.failed)} failed "
          f"-> {where}")
    if summary.superseded:
        folders = sorted({str(path.parent) for path in summary.superseded})
        print(f"moved {len(summary.superseded)} stale record(s) (made by code that changed since) into "
              f"{', '.join(folders)}; this run replaced them")
    if summary.stale_kept:
        print(f"kept {len(summary.stale_kept)} stale record(s) as they are (--reuse-stale): made by code that "
              "changed since; the report marks them")
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} configuration(s) whose earlier record failed or timed out "
              f"(kept as they are); rerun with --retry-failed to try them again")
    if summary.budget_skipped:
        print(f"skipped {len(summary.budget_skipped)} query configuration(s) that do not fit the budget (reasons in "
              f"the plan above and the report's Skipped table); a larger --config-budget or --budget runs them")


def _resolve_device(requested: str) -> str:
    """The device to run on; asks through NVML so that this process never initialises CUDA."""
    from harness.run.provenance import cuda_available

    if requested == "cpu":
        return requested
    available = cuda_available()
    if requested == "auto":
        return "cuda" if available else "cpu"
    if not available:
        raise HarnessError(
            "--device cuda was asked for, but no CUDA GPU is available (torch.cuda.is_available() is False)",
            "use --device cpu or --device auto, or install a CUDA build of torch on a machine with a GPU",
        )
    return requested


def _sweep_entries(args: argparse.Namespace) -> list[Any]:
    from harness.plan import sweeps

    names = [n.strip() for n in args.algorithms.split(",") if n.strip()] if args.algorithms else None
    if args.sweep is None:
        return sweeps.default_entries(names)
    entries = sweeps.read_sweep_file(args.sweep)
    return sweeps.select(entries, names) if names else entries


def _axes_line(options: Any) -> str:
    """The run's thread counts and batch sizes, as the run's first line says them."""
    threads = options.thread_axis()
    text = f"{','.join(map(str, threads))} thread(s)" if len(threads) > 1 else f"{threads[0]} thread(s)"
    sizes = options.batch_axis()
    if sizes != (None,):
        text += ", batch size " + ",".join("all" if s is None else str(s) for s in sizes)
    return text


def _provenance(isolation: str, threads: int, dataset: Any) -> dict[str, Any]:
    """The provenance block of every record; under process isolation, CUDA stays out of this
    process: reading the GPU's name initialises CUDA, so on a GPU machine a child reads it."""
    from harness.run import provenance
    from harness.run.isolation import call_in_child
    from harness.run.provenance import cuda_available

    if isolation == "process" and cuda_available():
        facts = call_in_child(provenance.collect, threads, str(dataset.path), dataset.checksum)
    else:
        facts = provenance.collect(threads, str(dataset.path), dataset.checksum)
    return {**facts, "ground_truth": dataset.ground_truth}


def _check_count(k: int, dataset: Any) -> None:
    if k > dataset.n_train:
        raise HarnessError(
            f"--count {k} is larger than the number of points in {dataset.path} ({dataset.n_train})",
            f"use --count {dataset.n_train} or less",
        )
    if k > dataset.neighbors.shape[1]:
        raise HarnessError(
            f"--count {k} is larger than the ground truth of {dataset.path} ({dataset.neighbors.shape[1]} neighbours per query)",
            f"use --count {dataset.neighbors.shape[1]} or less",
        )


def _check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise HarnessError(
            f"cannot write into the results directory {directory}: {exc.strerror or exc}",
            "choose a writable directory with --results-dir",
        ) from None
