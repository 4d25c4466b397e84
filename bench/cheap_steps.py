"""Issue 7: do cheap (restricted) potential steps reach the Pareto front?

Runs the harness itself, in-process, on the sweep bench/cheap_steps.yaml: the restricted
potentials (IVF-local, graph-local, 2-D planes), the full Gaussian potential, brute force,
FAISS IVF-Flat and HNSW, and hnswlib. Every potential configuration runs beside its control
(the same query parameters with `ascent: none`: no climb, the snap's pool gathered at the query).

Query sets. Every method runs on the same first N test queries (default 200: all of siftsmall,
the first 200 of random-s-100). A method too slow for that carries `max_queries: M` in the yaml;
it runs on the first M queries only, and *every* method is run again on that same subset, so
each table compares methods on one query set. Records carry n_queries in their identity, so the
passes share one results directory without overwriting each other. `--skip-slow` leaves the
slow methods (and their subsets) out.

Printed per dataset and query set, from the records alone:
  * per recall@1 threshold (0.9, 0.95, 0.99) and per series (a control is its own series,
    e.g. "potential-gaussian-ivf [ascent=none]"): the configuration with the best median q/s
    reaching it, its recall@1 with a 95 % Wilson score interval over the n queries, its
    distance computations per query (and the fewest of any configuration reaching it), and
    q/s min / median / max over the --runs timed repetitions; then the ratio of the best
    potential method to the best baseline;
  * what the climb adds over its control for every potential configuration
    (`harness.report.summary.control_rows`: recall gain, distance ratio, converged-onto-NN rate).
Machine facts and the exact command line come first.

Output: everything printed for a dataset (header, run log, tables) is also written to
`<--out>/cheap_steps-<dataset name>.txt` (default bench/results/, overwritten each run), so the
README can quote a file. Records go to a temporary directory unless --results-dir keeps them
(a kept directory is reused: a record with the same identity is not measured again).

    python bench/cheap_steps.py                                   # siftsmall + random-s-100, 200 queries, 3 runs
    python bench/cheap_steps.py --datasets siftsmall --queries 50 --runs 2 --skip-slow
    python bench/cheap_steps.py --results-dir results/cheap-steps # keep (and reuse) the records
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import re
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, TextIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SWEEP = Path(__file__).with_name("cheap_steps.yaml")
OUT = Path(__file__).with_name("results")
ALIASES = {"siftsmall": str(ROOT / "tests" / "data" / "siftsmall-128-euclidean.hdf5"), "random-s-100": "random-s-100-euclidean"}
DEFAULT_QUERIES = 200
BASELINES = ("bruteforce", "faiss-ivf", "faiss-hnsw", "hnswlib")
THRESHOLDS = (0.9, 0.95, 0.99)
SLACK = 1e-9  # a recall stored as 0.8999999999 means 0.9

Record = Mapping[str, Any]


class Tee:
    """Prints to stdout and, while a file is open, to that file too."""

    def __init__(self) -> None:
        self.file: TextIO | None = None

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        if self.file is not None:
            self.file.write(text + "\n")
            self.file.flush()

    def open(self, path: Path, preamble: Sequence[str]) -> None:
        self.close()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("w", encoding="utf-8")
        self.file.write("\n".join(preamble) + "\n\n")

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def finish(self, path: Path) -> None:
        """End the file at `path` with a blank line, close it and say where it went."""
        self()
        self.close()
        print(f"(written to {path})", flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="siftsmall,random-s-100", help="comma list: siftsmall, random-s-100, a registry name or a path")
    parser.add_argument("--queries", type=int, default=DEFAULT_QUERIES, help="first N test queries for every method (default 200)")
    parser.add_argument("--runs", type=int, default=3, help="timed repetitions per configuration (q/s min/median/max over them)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-slow", action="store_true", help="leave out the methods with max_queries in the sweep")
    parser.add_argument("--out", type=Path, default=OUT, help="where the text output goes (default bench/results)")
    parser.add_argument("--results-dir", type=Path, default=None, help="where records go (default: a temporary directory)")
    parser.add_argument("--data-dir", type=Path, default=None, help="dataset directory (default: the harness's)")
    parser.add_argument("--sweep", type=Path, default=SWEEP)
    return parser.parse_args(argv)


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (z = 1.96: 95 %); (nan, nan) when n = 0."""
    if n <= 0:
        return math.nan, math.nan
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


# --- query sets and runs ---------------------------------------------------------------------

def query_sets(entries: Sequence[Any], n: int) -> list[int]:
    """The query-set sizes, largest first: N, then each slow entry's max_queries below N."""
    return sorted({n} | {e.max_queries for e in entries if e.max_queries is not None and e.max_queries < n}, reverse=True)


def entries_on(entries: Sequence[Any], size: int) -> list[Any]:
    """The entries that run on the first `size` queries: all but those limited to fewer."""
    return [e for e in entries if e.max_queries is None or e.max_queries >= size]


def set_heading(entries: Sequence[Any], sizes: Sequence[int], size: int) -> str:
    """Which query set a table is on, and why a subset exists."""
    if size == sizes[0]:
        left_out = [e.name for e in entries if e.max_queries is not None and e.max_queries < size]
        note = f" except {', '.join(left_out)} (too slow for {size}: on a subset below)" if left_out else ""
        return f"{size} queries (the first {size} test queries), every method{note}"
    larger = sizes[sizes.index(size) - 1]
    limited = [e.name for e in entries if e.max_queries is not None and size <= e.max_queries < larger]
    return f"subset of {size} queries (the first {size}), every method rerun on it; documented subset of {', '.join(limited)}"


def run_pass(dataset: Any, entries: Sequence[Any], size: int, args: argparse.Namespace, results_dir: Path, out: Tee) -> None:
    """Run the given sweep entries on the first `size` queries, in this process."""
    from harness.plan import sweeps
    from harness.run import provenance
    from harness.plan.options import RunOptions
    from harness.run.executors import run_sweep

    configs = sweeps.expand(list(entries), dataset.n_train)
    configs, _ = sweeps.check_configs(configs, 10, dataset.n_train, dataset.dimension)
    options = RunOptions(k=10, runs=args.runs, queries=size, threads=args.threads, results_dir=results_dir,
                         progress=False, workers=0)
    info = provenance.collect(args.threads, str(dataset.path), dataset.checksum)
    out(f"-- pass on {size} queries: {len(configs)} index builds")
    done = run_sweep(dataset, configs, options, info, report=out)
    out(f"-- {len(done.written)} records measured, {len(done.reused)} reused from --results-dir, "
        f"{len(done.failed) + len(done.skipped)} failed")


# --- tables ----------------------------------------------------------------------------------

def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def qps_spread(record: Record) -> tuple[float, float, float]:
    """q/s min, median, max over the timed repetitions (the median alone when runs are absent)."""
    from harness.report.summary import metric

    runs = [float(q) for q in (record.get("metrics") or {}).get("qps_runs") or []]
    if not runs:
        q = metric(record, "qps")
        return q, q, q
    return min(runs), statistics.median(runs), max(runs)


def best_per_series(records: Sequence[Record], threshold: float) -> dict[str, tuple[Record, float]]:
    """Per series: the record with the best median q/s reaching `threshold` (ties: higher recall,
    then label), with the fewest distance computations of any record of that series reaching it."""
    from harness.report.summary import is_ok, metric, series_name

    def rank(r: Record) -> tuple[float, float, str]:
        return -metric(r, "qps"), -metric(r, "recall_at_1"), str(r.get("label"))

    best: dict[str, tuple[Record, float]] = {}
    for record in records:
        if not is_ok(record) or metric(record, "recall_at_1") < threshold - SLACK or not math.isfinite(metric(record, "qps")):
            continue
        name, comps = series_name(record), metric(record, "dist_comps_mean")
        held, fewest = best.get(name, (None, math.inf))
        fewest = min(fewest, comps) if math.isfinite(comps) else fewest
        best[name] = (record if held is None or rank(record) < rank(held) else held, fewest)
    return best


def threshold_table(records: Sequence[Record], series: Sequence[str], threshold: float) -> list[str]:
    from harness.report.summary import metric

    best = best_per_series(records, threshold)
    lines = [f"  recall@1 >= {threshold}",
             f"    {'series':38} {'recall@1 [95% Wilson]':>23} {'dist/query':>10} {'fewest d/q':>10} "
             f"{'q/s min / median / max':>28}  configuration"]
    for name in series:
        if name not in best:
            lines.append(f"    {name:38} {'not reached':>23}")
            continue
        record, fewest = best[name]
        lines.append(f"    {name:38} {recall_cell(record):>23} "
                     f"{_fmt(metric(record, 'dist_comps_mean')):>10} {_fmt(fewest):>10} {spread_cell(record):>28}  {record.get('label')}")
    lines.append("    " + ratio_line(best))
    return lines


def recall_cell(record: Record) -> str:
    """recall@1 with its 95 % Wilson score interval over the record's queries."""
    from harness.report.summary import metric

    recall, n = metric(record, "recall_at_1"), int(record.get("n_queries") or 0)
    low, high = wilson(round(recall * n), n)
    return f"{recall:.4f} [{low:.3f}, {high:.3f}]"


def spread_cell(record: Record) -> str:
    """q/s min / median / max over the record's timed runs."""
    return " / ".join(_fmt(q) for q in qps_spread(record))


def ratio_line(best: Mapping[str, tuple[Record, float]]) -> str:
    """Best potential method (controls excluded) over best baseline: median q/s and fewest dist comps."""
    from harness.report.summary import metric

    pot = {n: b for n, b in best.items() if b[0].get("role") == "method"}
    base = {n: b for n, b in best.items() if b[0].get("algorithm") in BASELINES}
    if not pot or not base:
        return "ratio best potential / best baseline: - (a side never reaches this recall)"
    p_q = max(pot, key=lambda n: metric(pot[n][0], "qps"))
    b_q = max(base, key=lambda n: metric(base[n][0], "qps"))
    text = f"q/s ratio {metric(pot[p_q][0], 'qps') / metric(base[b_q][0], 'qps'):.3f} ({p_q} / {b_q})"
    p_c = min(pot, key=lambda n: pot[n][1])
    counted = {n: b for n, b in base.items() if math.isfinite(b[1])}
    if counted and math.isfinite(pot[p_c][1]):
        b_c = min(counted, key=lambda n: counted[n][1])
        text += f"; dist-comps ratio {pot[p_c][1] / counted[b_c][1]:.2f} ({p_c} / {b_c})"
    return text


def series_order(records: Sequence[Record], entries: Sequence[Any]) -> list[str]:
    """Series in sweep order, each method before its control."""
    from harness.report.summary import is_ok, series_name

    position = {e.name: i for i, e in enumerate(entries)}
    names = {series_name(r): (position.get(str(r.get("algorithm")), len(position)), r.get("role") == "control")
             for r in records if is_ok(r)}
    return sorted(names, key=lambda n: (names[n], n))


def report_set(records: Sequence[Record], entries: Sequence[Any], heading: str, runs: int, out: Tee) -> None:
    """The threshold tables and the method-vs-control table of one query set."""
    from harness.report.summary import control_rows, is_ok

    failed = [r for r in records if not is_ok(r)]
    out(f"\n== {heading}")
    counts = sorted({len((r.get("metrics") or {}).get("qps_runs") or []) for r in records if is_ok(r)})
    runs_text = f"{counts[0]}-{counts[-1]}" if len(counts) > 1 else str(counts[0] if counts else runs)
    out(f"   recall@1 with its 95 % Wilson score interval over the queries; q/s min / median / max over {runs_text} timed runs")
    if failed:
        out(f"   {len(failed)} configuration(s) failed: " + ", ".join(sorted({str(r.get('algorithm')) for r in failed})))
    for threshold in THRESHOLDS:
        for line in threshold_table(records, series_order(records, entries), threshold):
            out(line)
    rows = sorted(control_rows(records), key=lambda r: _natural(str(r["label"])))
    if rows:
        out()
        out(control_table(rows).rstrip("\n"))


def _natural(text: str) -> list[Any]:
    """A sort key that orders nprobe=4 before nprobe=16."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def control_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """`harness.report.summary.format_controls` without the dataset and algorithm columns (the label has both)."""
    from harness.report.summary import CONTROL_COLUMNS, format_controls, format_table

    heading = format_controls(rows).split("\n")[:2]
    columns = [c for c in CONTROL_COLUMNS if c not in ("dataset", "algorithm")]
    return "\n".join(heading) + "\n" + format_table(rows, columns)


# --- the run ---------------------------------------------------------------------------------

def preamble(args: argparse.Namespace, argv: Sequence[str]) -> list[str]:
    """Machine facts and the exact command line."""
    from harness.run import provenance

    versions = provenance.library_versions()
    libs = ", ".join(f"{n} {versions[n]}" for n in ("torch", "faiss-cpu", "faiss", "hnswlib", "numpy") if n in versions)
    commit, dirty = provenance.git_state()
    return [
        f"date: {provenance.now_iso()}",
        f"machine: {provenance.cpu_model()}, {os.cpu_count()} cores, {args.threads} threads; {platform.platform()}",
        f"python {platform.python_version()}; {libs}",
        f"allocator: {provenance.tune_malloc()}; git: {commit or '-'}{' (dirty)' if dirty else ''}",
        "command: " + shlex.join(["python", "bench/cheap_steps.py", *argv]),
    ]


def run_dataset(spec: str, args: argparse.Namespace, entries: list[Any], results_dir: Path, head: list[str], out: Tee) -> None:
    """Every pass on one dataset, then its tables; output also to <out>/cheap_steps-<name>.txt."""
    from harness.data.loader import open_dataset
    from harness.records import load_records, safe_component

    dataset = open_dataset(ALIASES.get(spec, spec), args.data_dir, progress=False)
    path = args.out / f"cheap_steps-{safe_component(dataset.name)}.txt"
    out.open(path, head)
    sizes = query_sets(entries, min(args.queries, dataset.n_test))
    out(f"{dataset.name}: {dataset.n_train} x {dataset.dimension}, {dataset.n_test} test queries; query sets: "
        + ", ".join(str(s) for s in sizes))
    started = time.perf_counter()
    for size in sizes:
        run_pass(dataset, entries_on(entries, size), size, args, results_dir, out)
    out(f"\n{dataset.name}: sweep took {time.perf_counter() - started:.0f} s")
    records = load_records(results_dir, dataset.name)
    for size in sizes:
        on_set = [r for r in records if r.get("n_queries") == size]
        report_set(on_set, entries, set_heading(entries, sizes, size), args.runs, out)
    out.finish(path)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    from harness.plan.sweeps import read_sweep_file
    from harness.measure.threads import set_threads

    set_threads(args.threads)
    entries = read_sweep_file(args.sweep)
    if args.skip_slow:
        entries = [e for e in entries if e.max_queries is None]
    head = preamble(args, argv)
    print("\n".join(head) + "\n", flush=True)
    with session(args.results_dir, "cheap-steps-") as (results_dir, out):
        for spec in [s.strip() for s in args.datasets.split(",") if s.strip()]:
            run_dataset(spec, args, entries, results_dir, head, out)
    return 0


@contextlib.contextmanager
def session(kept: Path | None, prefix: str) -> Iterator[tuple[Path, Tee]]:
    """The records directory (`kept`, or a temporary one removed afterwards) and the output Tee."""
    scratch = tempfile.TemporaryDirectory(prefix=prefix) if kept is None else None
    out = Tee()
    try:
        yield (Path(scratch.name) if scratch else kept), out
    finally:
        out.close()
        if scratch:
            scratch.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
