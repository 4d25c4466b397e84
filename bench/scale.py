"""How long the default sweep takes on a dataset of sift-128's shape, and how good its ETA is.

Why: on a 1M x 128 dataset the default run once took hours with nothing said before it started.
This script generates a SIFT-like dataset in the ann-benchmarks layout (clustered, non-negative
integer-valued descriptors; exact ground truth computed in chunks of queries with FAISS), runs
`python -m harness` on it (default sweep, under --budget, --parallel), and prints:

    per algorithm     configurations run / skipped, estimated and measured seconds (the sum of
                      its configurations' times from start to end; with --parallel they overlap)
    total             the run's wall time; peak resident memory of the harness (parent) and of
                      its children (the largest child, and all children at once), polled from /proc
    ETA               at 10 % and 50 % of the estimated work (progress.jsonl): the harness's ETA
                      against the real remaining time, as (ETA - real) / real

The dataset and the run's records live under --scratch (checked for free space first); the
report goes to bench/results/scale-<n>x<d>-q<queries>-p<parallel>.txt with the run's
progress.jsonl beside it. A full 1M run takes up to two hours: check a smaller one first.

    python bench/scale.py                                              # 1M x 128, 10k queries, --budget 2h --parallel 2
    python bench/scale.py --n 100000 --queries 1000 --budget 12m --config-budget 2m
    python bench/scale.py --parallel 1 --budget 3h                     # serial
    python bench/scale.py --plan-only                                  # the dataset and the harness's plan only
    python bench/scale.py --device cuda --parallel 1 --budget 3m      # the potentials on the GPU (bench/gpu_suite.py)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MB = 2**20
DEFAULT_BUDGET = "2h"
PAGE = os.sysconf("SC_PAGE_SIZE")


# --- the dataset ---------------------------------------------------------------------------------


def generate(path: Path, n: int, queries: int, dim: int, seed: int, threads: int) -> None:
    """SIFT-like data (Gaussian clusters of non-negative integers) and exact ground truth (k=100)."""
    import faiss
    import h5py
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.gamma(2.0, 12.0, size=(1000, dim)).astype(np.float32)

    def draw(count: int) -> np.ndarray:
        out = np.empty((count, dim), dtype=np.float32)
        for start in range(0, count, 100_000):
            stop = min(count, start + 100_000)
            points = centres[rng.integers(0, len(centres), stop - start)] + rng.normal(0, 10.0, (stop - start, dim))
            out[start:stop] = np.rint(np.clip(points, 0, 255))
        return out

    train, test = draw(n), draw(queries)
    faiss.omp_set_num_threads(threads)
    index = faiss.IndexFlatL2(dim)
    index.add(train)
    k = min(100, n)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs.update({"type": "dense", "distance": "euclidean", "dimension": dim, "point_type": "float"})
        f.create_dataset("train", data=train, chunks=(min(n, 65536), dim))
        f.create_dataset("test", data=test)
        neighbors = f.create_dataset("neighbors", (queries, k), dtype=np.int64)
        distances = f.create_dataset("distances", (queries, k), dtype=np.float64)
        for start in range(0, queries, 1000):  # exact ground truth, a chunk of queries at a time
            squared, ids = index.search(test[start:start + 1000], k)
            neighbors[start:start + len(ids)] = ids
            distances[start:start + len(ids)] = np.sqrt(np.maximum(squared, 0.0))
            print(f"  ground truth: {min(queries, start + 1000)}/{queries} queries", flush=True)
    tmp.rename(path)


def dataset_path(scratch: Path, n: int, dim: int, queries: int, seed: int) -> Path:
    """Where the generated dataset of these sizes lives under `scratch` (made once, reused after)."""
    return scratch / f"scale-{n}x{dim}-q{queries}-s{seed}-euclidean.hdf5"


def check_space(scratch: Path, n: int, queries: int, dim: int) -> None:
    need = (n * dim * 4) * 2 + queries * (dim * 4 + 100 * 16) + 512 * MB  # the file, a copy's worth, records
    free = shutil.disk_usage(scratch).free
    if free < need:
        raise SystemExit(f"{scratch}: {free / 2**30:.1f} GiB free, this size needs about {need / 2**30:.1f} GiB; use --scratch")


# --- the run and its memory --------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents[ppid].append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def run_harness(argv: list[str], log: Path, poll_s: float = 0.5) -> dict[str, Any]:
    """Run the harness, polling the resident memory of it and its children until it ends."""
    peak_parent = peak_child = peak_children = 0
    start = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "harness", *argv], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        while process.poll() is None:
            peak_parent = max(peak_parent, rss_bytes(process.pid))
            children = [rss_bytes(c) for c in descendants(process.pid)]
            peak_child = max([peak_child, *children])
            peak_children = max(peak_children, sum(children))
            time.sleep(poll_s)
    wall = time.monotonic() - start
    return {"code": process.returncode, "wall_s": wall, "peak_parent": peak_parent, "peak_child": peak_child,
            "peak_children": peak_children}


# --- what the run says -----------------------------------------------------------------------------


def per_algorithm(progress: list[dict[str, Any]], found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each algorithm's configurations run and skipped, estimated and measured seconds."""
    rows: dict[str, dict[str, Any]] = defaultdict(lambda: {"run": 0, "skipped": set(), "estimated_s": 0.0, "measured_s": 0.0})
    started: dict[str, list[float]] = defaultdict(list)
    for line in progress:
        entry = line.get("entry")
        if line["event"] == "start":
            started[entry].append(line["elapsed_s"])
            rows[entry]["run"] += 1
            rows[entry]["estimated_s"] += line["estimated_s"]
        elif line["event"] == "finish" and started[entry]:
            rows[entry]["measured_s"] += line["elapsed_s"] - started[entry].pop(0)
    for record in found:
        if record.get("status") == "skipped":
            rows[record["algorithm"]]["skipped"].add(json.dumps(record.get("build_params"), sort_keys=True))
    return [{"algorithm": name, **row, "skipped": len(row["skipped"])} for name, row in sorted(rows.items())]


def peak_by_configuration(found: list[dict[str, Any]], top: int = 5) -> list[str]:
    """The build configurations whose measuring process peaked highest (the records'
    build_peak_rss_bytes and query_peak_rss_bytes: VmHWM of the child, reset per phase)."""
    peaks: dict[str, tuple[float, str]] = {}
    for record in found:
        metrics = record.get("metrics") or {}
        for phase in ("build", "query"):
            value = metrics.get(f"{phase}_peak_rss_bytes")
            if value is None:
                continue
            params = ",".join(f"{k}={v}" for k, v in (record.get("build_params") or {}).items())
            name = f"{record['algorithm']}({params})"
            where = phase if phase == "build" else f"query {record.get('query_params')}"
            if value > peaks.get(name, (0.0, ""))[0]:
                peaks[name] = (value, where)
    ranked = sorted(peaks.items(), key=lambda item: -item[1][0])[:top]
    if not ranked:
        return ["peak resident memory by configuration: not in the records (measured since record schema 3's peaks)"]
    return [f"largest peaks by configuration (the child's resident set; {len(peaks)} configurations):",
            *(f"  {value / MB:>8.0f} MiB  {name}  during {where}" for name, (value, where) in ranked)]


def eta_error(progress: list[dict[str, Any]], fraction: float) -> dict[str, float] | None:
    """The ETA when `fraction` of the estimated work was done, against the real remaining time."""
    end = next((line["elapsed_s"] for line in reversed(progress) if line["event"] == "end"), None)
    at = next((line for line in progress if line["fraction"] >= fraction and line["event"] != "plan"), None)
    if end is None or at is None:
        return None
    real = end - at["elapsed_s"]
    return {"elapsed_s": at["elapsed_s"], "fraction": at["fraction"], "eta_s": at["eta_s"], "real_s": real,
            "error": (at["eta_s"] - real) / real if real > 0 else 0.0}


def report(args: argparse.Namespace, argv: Sequence[str], run: dict[str, Any], progress: list[dict[str, Any]],
           found: list[dict[str, Any]], plan_lines: list[str]) -> list[str]:
    from harness.run import provenance
    from harness.plan.cost import format_duration

    commit, dirty = run["git"]  # as the run started: a child imports the code on disk when it starts
    versions = provenance.library_versions()
    libs = ", ".join(f"{n} {versions[n]}" for n in ("torch", "faiss-cpu", "faiss", "hnswlib", "numpy") if n in versions)
    lines = [
        f"date: {provenance.now_iso()}",
        f"machine: {provenance.cpu_model()}, {os.cpu_count()} cores; {platform.platform()}",
        f"python {platform.python_version()}; {libs}; git: {commit or '-'}{' (dirty)' if dirty else ''}",
        "command: " + shlex.join(["python", "bench/scale.py", *argv]),
        f"dataset: {args.n} x {args.dim} SIFT-like (generated, seed {args.seed}), {args.queries} queries, exact ground truth",
        f"harness: python -m harness {shlex.join(harness_argv(args, Path('DATASET'), Path('RESULTS')))}",
        "",
        *plan_lines,
        "",
        f"{'algorithm':<28} {'configs run':>11} {'skipped':>8} {'estimated':>12} {'measured':>12} {'ratio':>6}",
    ]
    for row in per_algorithm(progress, found):
        ratio = row["measured_s"] / row["estimated_s"] if row["estimated_s"] else float("nan")
        lines.append(f"{row['algorithm']:<28} {row['run']:>11} {row['skipped']:>8} {format_duration(row['estimated_s']):>12} "
                     f"{format_duration(row['measured_s']):>12} {ratio:>6.2f}")
    statuses = defaultdict(int)
    for record in found:
        statuses[record["status"]] += 1
    lines += [
        "",
        f"records: {dict(sorted(statuses.items()))}; exit code {run['code']}",
        f"wall time: {format_duration(run['wall_s'])} ({run['wall_s']:.0f} s) at --parallel {args.parallel}",
        f"peak resident memory: parent {run['peak_parent'] / MB:.0f} MiB; largest child {run['peak_child'] / MB:.0f} MiB; "
        f"all children at once {run['peak_children'] / MB:.0f} MiB (polled every 0.5 s)",
    ]
    lines += peak_by_configuration(found)
    for fraction in (0.1, 0.5):
        error = eta_error(progress, fraction)
        if error is None:
            lines.append(f"ETA at {fraction:.0%} of the estimated work: not reached")
            continue
        lines.append(f"ETA at {error['fraction']:.1%} of the estimated work (after {format_duration(error['elapsed_s'])}): "
                     f"{format_duration(error['eta_s'])}, real remaining {format_duration(error['real_s'])}: "
                     f"error {error['error']:+.1%}")
    if args.n >= 1_000_000:
        limit = 2 * 3600 if args.parallel >= 2 else 3 * 3600
        error = eta_error(progress, 0.1)
        lines.append(f"goal: wall time <= {limit // 3600} h: {'met' if run['wall_s'] <= limit else 'NOT met'}; "
                     f"ETA within +-25 % at 10 %: {'met' if error and abs(error['error']) <= 0.25 else 'NOT met'}")
    return lines


def harness_argv(args: argparse.Namespace, dataset: Path, results: Path) -> list[str]:
    argv = ["--dataset", str(dataset), "--results-dir", str(results), "--threads", str(args.threads),
            "--workers", str(args.parallel), "--device", args.device, "--no-plots", "--no-progress"]
    for flag, value in (("--budget", args.budget), ("--config-budget", args.config_budget), ("--algorithms", args.algorithms)):
        if value:
            argv += [flag, value]
    return argv


def plan_only(args: argparse.Namespace, argv: Sequence[str], dataset: Path, stem: str) -> int:
    """The harness's plan for this run, without running it: bench/results/<stem>-plan.txt."""
    from harness.run import provenance

    harness = harness_argv(args, dataset, args.scratch / "plan-only-results") + ["--plan-only"]
    done = subprocess.run([sys.executable, "-m", "harness", *harness], cwd=ROOT, capture_output=True, text=True)
    commit, dirty = provenance.git_state()
    lines = [f"date: {provenance.now_iso()}", f"machine: {provenance.cpu_model()}, {os.cpu_count()} cores; {platform.platform()}",
             f"git: {commit or '-'}{' (dirty)' if dirty else ''}", "command: " + shlex.join(["python", "bench/scale.py", *argv]),
             f"dataset: {args.n} x {args.dim} SIFT-like (generated, seed {args.seed}), {args.queries} queries",
             "", *done.stdout.splitlines(), *done.stderr.splitlines()[-5:]]
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}-plan.txt").write_text("\n".join(lines) + "\n")
    return done.returncode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="train points (default 1,000,000: sift-128's)")
    parser.add_argument("--queries", type=int, default=10_000, help="test queries (default 10,000)")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--budget", default=DEFAULT_BUDGET, help=f"--budget of the run (default {DEFAULT_BUDGET}; 'none' for none)")
    parser.add_argument("--config-budget", default=None, help="--config-budget of the run (default: the harness's)")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--algorithms", default=None, help="a subset (default: the default sweep)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="--device of the run: where adapters that can use a GPU run (default cpu)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scratch", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "gpnn-scale")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--plan-only", action="store_true", help="print the harness's plan for this run (--plan-only) and stop")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.budget == "none":
        args.budget = None

    args.scratch.mkdir(parents=True, exist_ok=True)
    name = f"scale-{args.n}x{args.dim}-q{args.queries}-s{args.seed}"
    dataset = dataset_path(args.scratch, args.n, args.dim, args.queries, args.seed)
    if not dataset.exists():
        check_space(args.scratch, args.n, args.queries, args.dim)
        print(f"generating {dataset} ...", flush=True)
        generate(dataset, args.n, args.queries, args.dim, args.seed, os.cpu_count() or 1)
    stem = f"scale-{args.n}x{args.dim}-q{args.queries}-p{args.parallel}" + ("" if args.device == "cpu" else f"-{args.device}")
    if args.budget not in (DEFAULT_BUDGET, None) or args.config_budget:  # a run under other budgets keeps its own file
        stem += f"-b{args.budget}" + (f"-c{args.config_budget}" if args.config_budget else "")
    if args.plan_only:
        return plan_only(args, argv, dataset, stem)
    results = args.scratch / f"results-{name}-p{args.parallel}"
    shutil.rmtree(results, ignore_errors=True)  # a fresh run: reused records would make the figures meaningless
    log = args.scratch / f"{name}-p{args.parallel}.log"
    print(f"running the harness (log: {log}) ...", flush=True)
    from harness.run import provenance

    started_at = provenance.git_state()
    run = run_harness(harness_argv(args, dataset, results), log)
    run["git"] = started_at

    from harness.records import load_records

    [progress_path] = list(results.rglob("progress.jsonl")) or [None]
    progress = [json.loads(line) for line in progress_path.read_text().splitlines()] if progress_path else []
    found = load_records(results)
    text = log.read_text().splitlines()
    first = next((i for i, line in enumerate(text) if line.startswith("plan (")), len(text))
    last = next((i for i, line in enumerate(text[first:], first) if line.startswith("total:")), first - 1)
    plan_lines = text[first:last + 1]  # the plan as the harness printed it
    lines = report(args, argv, run, progress, found, plan_lines)
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    if progress_path is not None:
        shutil.copyfile(progress_path, args.out / f"{stem}-progress.jsonl")
    print(f"written: {args.out / (stem + '.txt')}")
    return 0 if run["code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
