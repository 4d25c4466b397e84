"""Issue 7: do cheap (restricted) potential steps reach the Pareto front?

Runs the harness itself, in-process, on the sweep bench/cheap_steps.yaml: the restricted
potentials (IVF-local, graph-local, 2-D planes), the full Gaussian potential, brute force,
FAISS IVF-Flat and HNSW, and hnswlib. Then, from the records alone, prints per recall@1
threshold (0.9, 0.95, 0.99) each method's best queries/s and its distance computations per
query, and the ratio of the best potential method to the best baseline.

    python bench/cheap_steps.py                                   # siftsmall + random-s-100
    python bench/cheap_steps.py --datasets siftsmall --queries 100
    python bench/cheap_steps.py --results-dir results/cheap-steps # keep (and reuse) the records
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SWEEP = Path(__file__).with_name("cheap_steps.yaml")
ALIASES = {"siftsmall": str(ROOT / "tests" / "data" / "siftsmall-128-euclidean.hdf5"), "random-s-100": "random-s-100-euclidean"}
DEFAULT_QUERIES = {"siftsmall": None, "random-s-100": 200}
BASELINES = ("bruteforce", "faiss-ivf", "faiss-hnsw", "hnswlib")
THRESHOLDS = (0.9, 0.95, 0.99)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="siftsmall,random-s-100", help="comma list: siftsmall, random-s-100, a registry name or a path")
    parser.add_argument("--queries", type=int, default=None, help="first N test queries (default: all of siftsmall, 200 of random-s-100)")
    parser.add_argument("--runs", type=int, default=1, help="timed repetitions per configuration")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results-dir", type=Path, default=None, help="where records go (default: a temporary directory)")
    parser.add_argument("--data-dir", type=Path, default=None, help="dataset directory (default: the harness's)")
    parser.add_argument("--sweep", type=Path, default=SWEEP)
    return parser.parse_args(argv)


def run_dataset(spec: str, args: argparse.Namespace, results_dir: Path) -> tuple[str, int]:
    """Run the sweep on one dataset in this process; returns the dataset name and query count."""
    from harness import provenance, sweeps
    from harness.loader import open_dataset
    from harness.runner import RunOptions, run_sweep
    from harness.threads import set_threads

    set_threads(args.threads)
    dataset = open_dataset(ALIASES.get(spec, spec), args.data_dir, progress=False)
    queries = args.queries if args.queries is not None else DEFAULT_QUERIES.get(spec)
    configs = sweeps.expand(sweeps.read_sweep_file(args.sweep), dataset.n_train)
    configs, _ = sweeps.check_configs(configs, 10, dataset.n_train, dataset.dimension)
    wanted = dict(k=10, runs=args.runs, queries=queries, threads=args.threads, results_dir=results_dir, progress=False)
    if "isolation" in {f.name for f in fields(RunOptions)}:
        wanted["isolation"] = "none"  # in-process: the dataset is already in memory, and it is faster
    options = RunOptions(**wanted)
    info = provenance.collect(args.threads, str(dataset.path), dataset.checksum)
    used = min(dataset.n_test, queries or dataset.n_test)
    print(f"{dataset.name}: {dataset.n_train} x {dataset.dimension}, {used} of {dataset.n_test} queries, "
          f"{len(configs)} index builds", flush=True)
    run_sweep(dataset, configs, options, info, report=lambda line: print(line, flush=True))
    return dataset.name, used


def best_rows(records: list[Mapping[str, Any]], threshold: float) -> dict[str, dict[str, float]]:
    """Per algorithm: best q/s among records reaching `threshold`, its dist comps, and the fewest
    dist comps of any record reaching it (they may come from different configurations)."""
    from harness.summary import is_ok, metric

    out: dict[str, dict[str, float]] = {}
    for record in records:
        if not is_ok(record) or metric(record, "recall_at_1") < threshold - 1e-9:
            continue
        name = str(record["algorithm"])
        qps, comps = metric(record, "qps"), metric(record, "dist_comps_mean")
        row = out.setdefault(name, {"qps": -1.0, "comps_at_qps": math.nan, "min_comps": math.inf, "n_queries": math.nan})
        if qps > row["qps"]:
            row.update(qps=qps, comps_at_qps=comps, n_queries=float(record.get("n_queries") or math.nan))
        if math.isfinite(comps):
            row["min_comps"] = min(row["min_comps"], comps)
    return out


def _fmt(value: float, digits: str = ",.0f") -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, digits)


def table(records: list[Mapping[str, Any]], names: list[str]) -> str:
    lines = []
    for threshold in THRESHOLDS:
        rows = best_rows(records, threshold)
        lines.append(f"  recall@1 >= {threshold}")
        lines.append(f"    {'method':26} {'best q/s':>10} {'dist/query':>11} {'min dist/q':>11}")
        for name in names:
            row = rows.get(name)
            if row is None:
                lines.append(f"    {name:26} {'not reached':>10}")
                continue
            lines.append(f"    {name:26} {_fmt(row['qps']):>10} {_fmt(row['comps_at_qps']):>11} {_fmt(row['min_comps']):>11}")
        lines.append("    " + ratio_line(rows))
    return "\n".join(lines)


def ratio_line(rows: Mapping[str, Mapping[str, float]]) -> str:
    """Best potential method over best baseline, for q/s and for the fewest dist comps."""
    pot = {n: r for n, r in rows.items() if n.startswith("potential")}
    base = {n: r for n, r in rows.items() if n in BASELINES}
    if not pot or not base:
        return "ratio best potential / best baseline: - (a side never reaches this recall)"
    p_q, b_q = max(pot, key=lambda n: pot[n]["qps"]), max(base, key=lambda n: base[n]["qps"])
    text = f"q/s ratio {pot[p_q]['qps'] / base[b_q]['qps']:.3f} ({p_q} / {b_q})"
    p_c = min(pot, key=lambda n: pot[n]["min_comps"])
    counted = {n: r for n, r in base.items() if math.isfinite(r["min_comps"])}
    if counted and math.isfinite(pot[p_c]["min_comps"]):
        b_c = min(counted, key=lambda n: counted[n]["min_comps"])
        text += f"; dist-comps ratio {pot[p_c]['min_comps'] / counted[b_c]['min_comps']:.2f} ({p_c} / {b_c})"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from harness import provenance
    from harness.records import load_records

    print(f"machine: {provenance.cpu_model()}, {os.cpu_count()} cores, {args.threads} threads; "
          f"python {platform.python_version()}")
    scratch = tempfile.TemporaryDirectory(prefix="cheap-steps-") if args.results_dir is None else None
    results_dir = Path(scratch.name) if scratch else args.results_dir
    names = [entry for entry in _entry_names(args.sweep)]
    try:
        for spec in [s.strip() for s in args.datasets.split(",") if s.strip()]:
            started = time.perf_counter()
            name, used = run_dataset(spec, args, results_dir)
            records = load_records(results_dir, name)
            print(f"\n{name} ({used} queries; slow methods on their documented subset, see {args.sweep.name}); "
                  f"sweep took {time.perf_counter() - started:.0f} s")
            print(table(records, names), flush=True)
            print()
    finally:
        if scratch:
            scratch.cleanup()
    return 0


def _entry_names(path: Path) -> list[str]:
    from harness.sweeps import read_sweep_file

    return [entry.name for entry in read_sweep_file(path)]


if __name__ == "__main__":
    raise SystemExit(main())
