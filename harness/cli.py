"""Command line: `python -m harness [run] --dataset X ...` and its subcommands.

    python -m harness --dataset random-xs-20-euclidean     run the default sweep, plot, report
    python -m harness datasets list | download NAME        the dataset registry
    python -m harness list [NAME]                          algorithms and their parameters
    python -m harness results --dataset X --format csv     one row per record
    python -m harness plot|report --dataset X              figures / HTML report from records
    python -m harness landscape | compare --dataset X    the potentials' pictures; two result sets side by side

User errors end in one message and a non-zero exit; `--debug` shows the traceback.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from harness import commands
from harness.errors import HarnessError
from harness.run.runner import interrupt_code, sigterm_as_interrupt

SUBCOMMANDS = ("run", "datasets", "list", "results", "plot", "report", "landscape", "compare")
DEFAULT_CONFIG_BUDGET = 600.0  # seconds: harness.plan.budget.DEFAULT_CONFIG_BUDGET_S, without importing the run layer here
EXAMPLES = """
examples:
  python -m harness --dataset random-xs-20-euclidean          default sweep on a generated set
  python -m harness --dataset sift-128 --algorithms hnswlib,faiss-ivf --threads 2
  python -m harness --dataset tests/data/siftsmall-128-euclidean.hdf5 --algorithms potential-gaussian
  python -m harness --dataset uniform-64-euclidean --sweep my-sweep.yaml --runs 5
  python -m harness --dataset sift-128 --workers 2                 two build configurations at once
  python -m harness --dataset sift-128 --ray HEAD:6379             on a Ray cluster (docs/cluster.md)

subcommands (python -m harness SUBCOMMAND --help):
  run --dataset X               measure a sweep (the default command: `run` may be left out)
  datasets list|download NAME   the registry of ann-benchmarks and generated datasets
  datasets corrupt --base FILE  stored patterns and noisy copies of them as queries, one dataset per sigma
  list [NAME]                   registered algorithms (or one) and their build/query parameters
  results --dataset X           records as a table or CSV (--format), --summary for the best QPS
  plot --dataset X              Pareto figures from the records (never reruns anything)
  report --dataset X            a self-contained HTML report from the records (and its figures)
  landscape                     the seed note's pictures from the real potentials (cross points, ...)
  compare --dataset X           two result sets side by side: q/s ratios at each recall threshold
"""


def _number(kind: type, allowed: Callable[[Any], bool], expected: str) -> Callable[[str], Any]:
    """An argparse type: `kind` parsed from the text, refused with `expected` when not allowed."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not allowed(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")


def _int_list(whole: bool) -> Callable[[str], list[Any]]:
    """An argparse type: comma-separated positive integers (`1,100,1000`), each once; with
    `whole`, `all` stands for the whole test set in one call (None)."""
    expected = "positive integers separated by commas" + (" (or 'all': the whole set in one call)" if whole else "")

    def parse(text: str) -> list[Any]:
        values: list[Any] = []
        for part in text.split(","):
            part = part.strip()
            if whole and part.lower() == "all":
                value = None
            else:
                try:
                    value = int(part)
                except ValueError:
                    raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
                if value < 1:
                    raise argparse.ArgumentTypeError(f"expected {expected}, got {part} in {text!r}")
            if value in values:
                raise argparse.ArgumentTypeError(f"{part} is given twice in {text!r}")
            values.append(value)
        return values

    return parse


_non_negative_int = _number(int, lambda v: v >= 0, "a whole number, 0 or more")
_fraction = _number(float, lambda v: 0.0 < v < 1.0, "a fraction strictly between 0 and 1")
_positive_seconds = _number(float, lambda v: v > 0, "a positive number of seconds")


def _duration(text: str) -> float | None:
    """An argparse type: a duration (600, 90s, 10m, 2h, 1h30m), or none/off for no bound."""
    from harness.plan.cost import parse_duration

    if text.strip().lower() in ("none", "off"):
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None, help="dataset directory (default $GPNN_DATA_DIR or ./datasets)")
    parser.add_argument("--results-dir", type=Path, default=Path(os.environ.get("GPNN_RESULTS_DIR", "results")),
                        help="where records live (default $GPNN_RESULTS_DIR or ./results)")
    parser.add_argument("--plots-dir", type=Path, default=Path(os.environ.get("GPNN_PLOTS_DIR", "plots")),
                        help="where figures and reports go (default ./plots)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def _figure_options(p: argparse.ArgumentParser) -> None:
    """How figures and the report are drawn (the run, `plot` and `report`)."""
    p.add_argument("--no-intervals", dest="intervals", action="store_false",
                   help="figures without error bars (95 %% Wilson interval of a recall, min-max q/s of the timed runs)")
    p.add_argument("--static", action="store_true",
                   help="report: static images only, no interactive figures (a page without JavaScript)")


def _tuning_options(p: argparse.ArgumentParser) -> None:
    """`--tune-fraction F`: choose the summary's configurations on part of the queries, report the rest."""
    p.add_argument("--tune-fraction", type=_fraction, default=None, metavar="F",
                   help="summary: split each record's queries (seeded; the split is printed) into a tuning part (F) and "
                   "a held-out part; per threshold choose the fastest configuration whose recall on the tuning part "
                   "reaches it and report its recall on the held-out part (recall_heldout, its Wilson interval, "
                   "heldout_reaches) beside the in-sample choice. From the stored per-query answers, no rerun; q/s stays "
                   "the record's whole-run measurement. Default: in-sample only")
    p.add_argument("--tune-seed", type=int, default=0, help="seed of the tuning split (default 0)")


def _plugins_option(p: argparse.ArgumentParser) -> None:
    """`--plugins` for the commands that read records: the plugins whose code judges which
    records are stale (made by code that changed since)."""
    p.add_argument("--plugins", default=None,
                   help="comma-separated modules or .py files of plugin algorithms (also $GPNN_PLUGINS): their "
                   "records are then checked for stale code too")


def _plot_options(p: argparse.ArgumentParser) -> None:
    """`plot --x METRIC --y METRIC`: one figure of any two metrics (declared in harness/metric_catalog.py)."""
    p.add_argument("--x", default=None, help="metric on the x axis, e.g. recall_at_k (with --y: one figure instead of the defaults)")
    p.add_argument("--y", default=None, help="metric on the y axis, e.g. qps")
    p.add_argument("--x-scale", choices=("linear", "log", "logit"), default=None, help="default: the metric's own")
    p.add_argument("--y-scale", choices=("linear", "log", "logit"), default=None, help="default: the metric's own")
    p.add_argument("--algorithms", default=None, help="comma-separated algorithms to draw (default: all)")
    p.add_argument("--exclude", default="", help="comma-separated algorithms to leave out")
    p.add_argument("--format", default="png,svg", help="comma-separated: png, svg, pdf (default png,svg)")


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
    parser.add_argument("--threads", type=_int_list(False), default=[1], metavar="N[,N...]",
                        help="threads for every library (default 1); several (1,2): each count its own builds and records")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu", help="where adapters that can use a GPU run")
    parser.add_argument("--mode", choices=("batch", "single"), default="batch",
                        help="batch search, or one query at a time for latency percentiles (the same as --batch-size 1)")
    parser.add_argument("--batch-size", type=_int_list(True), default=None, metavar="B[,B...]",
                        help="queries per timed search call: 1 is one query per call (as --mode single), B > 1 cuts the "
                             "test set into consecutive batches of B (the last one shorter), 'all' the whole set in one "
                             "call (the default); several (1,100,1000): each its own records")
    parser.add_argument("--seed", type=int, default=0, help="seed for every randomised build (default 0)")
    parser.add_argument("--force", action="store_true", help="recompute configurations that already have a record")
    parser.add_argument("--trust-ground-truth", action="store_true",
                        help="skip the spot-check of the dataset's neighbors/distances on a sample (recorded in provenance)")
    parser.add_argument("--no-wait", action="store_true",
                        help="exit with an error instead of waiting when another run writes the same results directory and dataset")
    parser.add_argument("--retry-failed", action="store_true",
                        help="recompute configurations whose earlier record failed or timed out (kept and skipped by default)")
    parser.add_argument("--reuse-stale", action="store_true",
                        help="reuse records made by code that changed since they were made (stale: their code "
                        "fingerprint differs) as they are, instead of recomputing them; the report marks them")
    parser.add_argument("--workers", type=_non_negative_int, default=None, metavar="N",
                        help="measure N build configurations at once on this machine, each in its own child process "
                        "with --threads (default 1: serial, the cleanest timings; N > 1 share memory bandwidth); a crash "
                        "or hang of an adapter becomes a failed record. 0: in this process, for debugging (no protection, "
                        "no time limits)")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="run build configurations as Ray tasks: on the Ray cluster at ADDRESS (HEAD:6379 or auto), "
                        "or without ADDRESS on a local Ray instance (pip install 'gpnn-harness[ray]'; docs/cluster.md)")
    # deprecated for one release: each says what to use instead (commands.where_it_runs)
    parser.add_argument("--isolation", choices=("process", "none"), default=None,
                        help="deprecated: --isolation none is --workers 0, --isolation process the default")
    parser.add_argument("--executor", choices=("local", "ray"), default=None,
                        help="deprecated: --executor ray is --ray, --executor local the default")
    parser.add_argument("--ray-address", default=None, metavar="ADDRESS", help="deprecated: use --ray ADDRESS")
    parser.add_argument("--parallel", type=_positive_int, default=None, metavar="N", help="deprecated: use --workers N")
    parser.add_argument("--retries", type=_non_negative_int, default=0,
                        help="with --ray: resubmit a build configuration whose worker or node died up to N times (default 0)")
    parser.add_argument("--timeout", type=_positive_seconds, default=3600.0,
                        help="seconds allowed for the build phase of a build configuration (default 3600; in a child process or on Ray)")
    parser.add_argument("--query-timeout", type=_positive_seconds, default=900.0,
                        help="seconds allowed for each query configuration (default 900; in a child process or on Ray)")
    parser.add_argument("--plugins", default=None,
                        help="comma-separated modules or .py files that register extra algorithms (also $GPNN_PLUGINS)")
    parser.add_argument("--budget", type=_duration, default=None, metavar="DURATION",
                        help="estimated wall time for the whole run (e.g. 2h, 90m): slow configurations run on fewer "
                        "queries, ones that cannot fit are skipped with a note (default: no run budget)")
    parser.add_argument("--config-budget", type=_duration, default=DEFAULT_CONFIG_BUDGET, metavar="DURATION",
                        help="estimated time for one build configuration (start-up, build, all its query "
                        "configurations; default 10m; 'none' for no bound)")
    parser.add_argument("--plan-only", action="store_true",
                        help="print the plan (configurations, queries, estimated time each and in total) and exit")
    parser.add_argument("--no-plots", dest="plots", action="store_false", help="do not write figures and the report at the end")
    _figure_options(parser)
    _common(parser)
    return parser


def _sub_parsers() -> dict[str, argparse.ArgumentParser]:
    parsers = {}
    p = argparse.ArgumentParser(prog="python -m harness datasets",
                                description="List or download datasets, or make corrupted-pattern datasets from a file.")
    p.add_argument("action", choices=("list", "download", "corrupt"))
    p.add_argument("name", nargs="?", help="dataset to download")
    p.add_argument("--force", action="store_true", help="download (or make) again even if the file is present")
    p.add_argument("--base", type=Path, default=None,
                   help="corrupt: a Euclidean dataset file whose train vectors are the stored patterns")
    p.add_argument("--sigmas", default="0.5,1,2",
                   help="corrupt: comma-separated noise lengths in units of the base's median nearest-neighbour spacing; "
                   "one dataset each (default 0.5,1,2)")
    p.add_argument("--queries", type=_positive_int, default=1000,
                   help="corrupt: how many stored patterns get a corrupted copy as a query (default 1000, at most the train size)")
    _common(p)
    parsers["datasets"] = p
    p = argparse.ArgumentParser(prog="python -m harness list", description="Registered algorithms and their parameters.")
    p.add_argument("name", nargs="?", default=None, help="one algorithm to show (default: all; the parameters every "
                   "potential shares are printed once)")
    p.add_argument("--plugins", default=None, help="comma-separated modules or .py files that register extra algorithms (also $GPNN_PLUGINS)")
    _common(p)
    parsers["list"] = p
    p = argparse.ArgumentParser(prog="python -m harness results", description="Print the records of a dataset.")
    p.add_argument("--dataset", default=None, help="dataset name (default: all datasets with records)")
    p.add_argument("--format", choices=("table", "csv", "json", "markdown", "latex"), default="table",
                   help="table (text), csv, json, markdown or latex (the last two for papers and notes)")
    p.add_argument("--summary", action="store_true",
                   help="best queries/s per algorithm at each recall threshold, then the control table (what the climb "
                   "adds: each method configuration beside each of its controls, with paired statistics over the queries "
                   "both ran). In csv the two tables come in one stream: the summary, a blank line, a line starting "
                   "'# what the climb adds', comment lines ('#'), then the control table's header and rows; in json one "
                   "object {split, summary, controls, notes}. Scoring the stored answers per query reads the ground "
                   "truth from the dataset file the records name (found again by checksum, else under --data-dir)")
    p.add_argument("--metric", default="recall_at_1",
                   help="the recall the summary's thresholds apply to: recall_at_1, recall_at_k, recall_at_1_id, recall_at_k_id")
    p.add_argument("--thresholds", default="0.9,0.95,0.99", help="comma-separated recall thresholds of the summary")
    p.add_argument("--columns", default=None,
                   help="summary: the metric columns, in this order (any metric of harness/metric_catalog.py, its "
                   "interval columns, or scale), e.g. recall_at_1,qps,dist_comps_mean; the control table shows each "
                   "beside its control's (default: q/s and recall with their intervals)")
    _tuning_options(p)
    _plugins_option(p)
    _common(p)
    parsers["results"] = p
    p = argparse.ArgumentParser(
        prog="python -m harness compare",
        description="Compare two result sets of one dataset: per recall threshold, the q/s ratio A/B of each side's "
        "fastest configuration reaching it, with the interval the timed runs allow, and a verdict.",
    )
    p.add_argument("--dataset", required=True)
    p.add_argument("--against", type=Path, default=None, help="results directory B (A is --results-dir): the same series on both sides")
    p.add_argument("--series", default=None, help="A,B: two series of --results-dir (e.g. potential-cauchy,potential-gaussian)")
    p.add_argument("--metric", default="recall_at_1", help="the recall the thresholds apply to (default recall_at_1)")
    p.add_argument("--thresholds", default="0.9,0.95,0.99")
    p.add_argument("--format", choices=("table", "csv", "markdown", "latex"), default="table")
    _common(p)
    parsers["compare"] = p
    for name, what in (("plot", "Write the Pareto figures"), ("report", "Write the HTML report (and its figures)")):
        p = argparse.ArgumentParser(prog=f"python -m harness {name}", description=f"{what} from the records of a dataset.")
        p.add_argument("--dataset", required=True)
        _figure_options(p)
        if name == "report":
            _plugins_option(p)
        _common(p)
        parsers[name] = p
    _plot_options(parsers["plot"])
    _tuning_options(parsers["report"])
    p = argparse.ArgumentParser(
        prog="python -m harness landscape",
        description="Draw the seed note's pictures from the real potentials into PLOTS_DIR/landscape: the 1-D overlay, "
        "2-D contours with the maxima that are not data points (cross points), ascent trajectories per rule, and "
        "distance to the true nearest neighbour against iteration.",
    )
    p.add_argument("--figures", default=None, help="comma-separated subset of the figures (default: all; an unknown name lists them)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random points (default 0)")
    _common(p)
    parsers["landscape"] = p
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
        with sigterm_as_interrupt():
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
    except KeyboardInterrupt as exc:
        if args.debug:
            raise
        print("\ninterrupted: records written so far are kept; rerun the same command to resume", file=sys.stderr)
        return interrupt_code(exc)


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": commands.cmd_run,
    "datasets": commands.cmd_datasets,
    "list": commands.cmd_list,
    "results": commands.cmd_results,
    "plot": commands.cmd_plot,
    "report": commands.cmd_report,
    "landscape": commands.cmd_landscape,
    "compare": commands.cmd_compare,
}
