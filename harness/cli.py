"""Command line: `python -m harness [run] --dataset X ...` and its subcommands.

    python -m harness --dataset random-xs-20-euclidean     run the default sweep, plot, report
    python -m harness datasets list | download NAME        the dataset registry
    python -m harness list                                 algorithms and their parameters
    python -m harness results --dataset X --format csv     one row per record
    python -m harness plot|report --dataset X              figures / HTML report from records

User errors end in one message and a non-zero exit; `--debug` shows the traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import HarnessError

SUBCOMMANDS = ("run", "datasets", "list", "results", "plot", "report")
EXAMPLES = """
examples:
  python -m harness --dataset random-xs-20-euclidean          default sweep on a generated set
  python -m harness --dataset sift-128 --algorithms hnswlib,faiss-ivf --threads 2
  python -m harness --dataset tests/data/siftsmall-128-euclidean.hdf5 --algorithms potential-gaussian
  python -m harness --dataset uniform-64-euclidean --sweep my-sweep.yaml --runs 5

subcommands (python -m harness SUBCOMMAND --help):
  datasets list|download NAME   the registry of ann-benchmarks and generated datasets
  list                          registered algorithms and their build/query parameters
  results --dataset X           records as a table or CSV (--format), --summary for the best QPS
  plot --dataset X              Pareto figures from the records (never reruns anything)
  report --dataset X            a self-contained HTML report from the records
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None, help="dataset directory (default $GPNN_DATA_DIR or ./datasets)")
    parser.add_argument("--results-dir", type=Path, default=Path(os.environ.get("GPNN_RESULTS_DIR", "results")),
                        help="where records live (default $GPNN_RESULTS_DIR or ./results)")
    parser.add_argument("--plots-dir", type=Path, default=Path(os.environ.get("GPNN_PLOTS_DIR", "plots")),
                        help="where figures and reports go (default ./plots)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="Benchmark gradient-potential nearest-neighbour search against exact search, FAISS and hnswlib: "
        "build each index of a parameter sweep, time batched queries, score recall against the dataset's "
        "ground truth, write one record per configuration, then plot Pareto fronts and write a report.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", required=True, help="registry name or alias (sift-128), generated name, or path to an HDF5 file")
    parser.add_argument("--algorithms", default=None, help="comma-separated algorithms or sweep entries (default: all defaults)")
    parser.add_argument("--sweep", type=Path, default=None, help="a sweep YAML file instead of the defaults")
    parser.add_argument("--count", "-k", type=_positive_int, default=10, help="neighbours per query, k of recall@k (default 10)")
    parser.add_argument("--runs", type=_positive_int, default=3, help="timed repetitions per configuration, all kept (default 3)")
    parser.add_argument("--queries", type=_positive_int, default=None, help="use only the first N test queries")
    parser.add_argument("--threads", type=_positive_int, default=1, help="threads for every library (default 1)")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu", help="where adapters that can use a GPU run")
    parser.add_argument("--mode", choices=("batch", "single"), default="batch", help="batch search, or one query at a time for latency percentiles")
    parser.add_argument("--seed", type=int, default=0, help="seed for every randomised build (default 0)")
    parser.add_argument("--force", action="store_true", help="recompute configurations that already have a record")
    parser.add_argument("--no-plots", dest="plots", action="store_false", help="do not write figures and the report at the end")
    _common(parser)
    return parser


def _sub_parsers() -> dict[str, argparse.ArgumentParser]:
    parsers = {}
    p = argparse.ArgumentParser(prog="python -m harness datasets", description="List or download datasets.")
    p.add_argument("action", choices=("list", "download"))
    p.add_argument("name", nargs="?", help="dataset to download")
    p.add_argument("--force", action="store_true", help="download again even if the file is present")
    _common(p)
    parsers["datasets"] = p
    p = argparse.ArgumentParser(prog="python -m harness list", description="Registered algorithms and their parameters.")
    _common(p)
    parsers["list"] = p
    p = argparse.ArgumentParser(prog="python -m harness results", description="Print the records of a dataset.")
    p.add_argument("--dataset", default=None, help="dataset name (default: all datasets with records)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--summary", action="store_true", help="best queries/s per algorithm at recall 0.9, 0.95, 0.99")
    _common(p)
    parsers["results"] = p
    for name, what in (("plot", "Write the Pareto figures"), ("report", "Write the HTML report (and its figures)")):
        p = argparse.ArgumentParser(prog=f"python -m harness {name}", description=f"{what} from the records of a dataset.")
        p.add_argument("--dataset", required=True)
        _common(p)
        parsers[name] = p
    return parsers


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else "run"
    if argv and argv[0] in SUBCOMMANDS:
        argv = argv[1:]
    parser = run_parser() if command == "run" else _sub_parsers()[command]
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s: %(message)s")
    handler: Callable[[argparse.Namespace], int] = HANDLERS[command]
    try:
        return handler(args)
    except HarnessError as exc:
        if args.debug:
            raise
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # output piped into `head` and closed early: not an error of ours, and no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("\ninterrupted: records written so far are kept; rerun the same command to resume", file=sys.stderr)
        return 130


def _resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise HarnessError(
            "--device cuda was asked for, but no CUDA GPU is available (torch.cuda.is_available() is False)",
            "use --device cpu or --device auto, or install a CUDA build of torch on a machine with a GPU",
        )
    return requested


def cmd_run(args: argparse.Namespace) -> int:
    from . import provenance, sweeps
    from .loader import open_dataset
    from .runner import RunOptions, run_sweep
    from .threads import set_threads

    device = _resolve_device(args.device)
    set_threads(args.threads)
    names = [n.strip() for n in args.algorithms.split(",") if n.strip()] if args.algorithms else None
    if args.sweep is not None:
        entries = sweeps.read_sweep_file(args.sweep)
        entries = sweeps.select(entries, names) if names else entries
    else:
        entries = sweeps.default_entries(names)
    dataset = open_dataset(args.dataset, args.data_dir, download=True, progress=args.progress)
    _check_count(args.count, dataset)
    configs = sweeps.expand(entries, dataset.n_train)
    _seed_everything(args.seed)
    options = RunOptions(
        k=args.count, runs=args.runs, queries=args.queries, threads=args.threads, device=device, mode=args.mode,
        seed=args.seed, force=args.force, results_dir=args.results_dir, progress=args.progress,
    )
    _check_writable(args.results_dir)
    info = provenance.collect(args.threads, str(dataset.path), dataset.checksum)
    print(f"{dataset.name}: {dataset.n_train} train x {dataset.dimension} dims, {dataset.n_test} queries, "
          f"{dataset.distance}; {len(configs)} index builds on {device}, {args.threads} thread(s)")
    summary = run_sweep(dataset, configs, options, info)
    print(f"records: {len(summary.written)} written, {len(summary.reused)} reused, {len(summary.failed)} failed "
          f"-> {args.results_dir / dataset.name}")
    if args.plots:
        _plot_and_report(dataset.name, args)
    return 1 if summary.failed else 0


def _check_count(k: int, dataset: Any) -> None:
    if k > dataset.neighbors.shape[1]:
        raise HarnessError(
            f"--count {k} is larger than the ground truth of {dataset.path} ({dataset.neighbors.shape[1]} neighbours per query)",
            f"use --count {dataset.neighbors.shape[1]} or less",
        )
    if k > dataset.n_train:
        raise HarnessError(f"--count {k} is larger than the number of points in {dataset.path} ({dataset.n_train})")


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


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _plot_and_report(dataset: str, args: argparse.Namespace) -> None:
    from .plots import make_plots
    from .records import load_records
    from .report import write_report

    found = load_records(args.results_dir, dataset)
    if not found:
        raise HarnessError(f"no records for dataset {dataset!r} under {args.results_dir}", "run `python -m harness --dataset ...` first")
    out_dir = args.plots_dir / dataset
    figures = make_plots(found, out_dir, dataset)
    page = write_report(found, out_dir, dataset, figures)
    print(f"figures: {out_dir}  ({len(figures)} files)\nreport:  {page}")


def cmd_plot(args: argparse.Namespace) -> int:
    _plot_and_report(_dataset_key(args.dataset), args)
    return 0


def _dataset_key(name: str) -> str:
    """Records are stored under the dataset's canonical name: resolve aliases and paths."""
    from .datasets import resolve
    from .loader import is_path_spec

    if is_path_spec(name):
        return Path(name).stem
    try:
        return resolve(name).name
    except HarnessError:
        return name


def cmd_results(args: argparse.Namespace) -> int:
    from .records import load_records
    from .summary import format_csv, format_summary, format_table, results_table, summary_rows

    dataset = _dataset_key(args.dataset) if args.dataset else None
    problems: list[str] = []
    found = load_records(args.results_dir, dataset, problems=problems)
    for problem in problems:
        print(f"warning: skipped {problem}", file=sys.stderr)
    if not found:
        where = args.results_dir / dataset if dataset else args.results_dir
        raise HarnessError(f"no records under {where}", "run `python -m harness --dataset ...` first")
    if args.summary:
        print(format_summary(summary_rows(found)))
        return 0
    rows = results_table(found)
    if args.format == "csv":
        sys.stdout.write(format_csv(rows))
    elif args.format == "json":
        print(json.dumps(rows, indent=1))
    else:
        print(format_table(rows))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from algorithms import registry

    for name, spec in registry.all_algorithms().items():
        devices = ",".join(spec.adapter.devices)
        print(f"{name}  [{devices}]  {spec.description}")
        for kind, declared in (("build", spec.adapter.build_params), ("query", spec.adapter.query_params)):
            for pname, param in declared.items():
                fixed = f"  (fixed: {spec.fixed[pname]!r})" if pname in spec.fixed else ""
                print(f"    {kind:5} {pname}: {param.describe()}{fixed}")
    for module, problem in registry.import_problems().items():
        print(f"unavailable: {module}: {problem}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from .datasets import default_data_dir, list_datasets, resolve
    from .download import download

    data_dir = args.data_dir or default_data_dir()
    if args.action == "list":
        for info, present in list_datasets(data_dir):
            where = "present" if present else ("generated on first use" if info.generated else "download")
            print(f"{info.name:32} {info.distance:9} {info.dimension:5}d  {info.n_train:>9} x {info.n_test:<6} {where}")
        print(f"data directory: {Path(data_dir).resolve()}")
        return 0
    if not args.name:
        raise HarnessError("datasets download needs a dataset name", "see `python -m harness datasets list`")
    info = resolve(args.name)
    if info.generated:
        from .loader import open_dataset

        path = open_dataset(info.name, data_dir, progress=args.progress).path
    else:
        path = download(info, Path(data_dir), force=args.force, progress=args.progress)
    print(path)
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "datasets": cmd_datasets,
    "list": cmd_list,
    "results": cmd_results,
    "plot": cmd_plot,
    "report": cmd_plot,
}
