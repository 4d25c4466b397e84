"""Peak memory of one Gaussian step and one brute-force pass on SIFT-1M-sized data, against the budget.

The potentials and brute force stream over the data in blocks sized from `memory_mb`, so the
memory a search adds on top of the data should stay near that budget whatever N is. This
script checks it on 1M x 128 float32 random points (SIFT-1M's size, 512 MB) and --queries
queries. Each case runs in its own child process, so one case's peak never hides another's:

    data_mb    the points as the case holds them (its baseline, after fit / preparation)
    peak_mb    peak resident memory of the operation alone (VmHWM reset before it; Linux)
    added_mb   peak_mb - resident memory just before the operation: what the search added
               (after a two-query warm-up, so code pages and thread pools are not counted)
    maxrss_mb  resource.getrusage(RUSAGE_SELF).ru_maxrss of the child: the whole-life peak, fit included
    budget_mb  the memory_mb the operation was given
On CUDA the same columns come from torch.cuda.max_memory_allocated (reset before the operation).

Cases: gaussian-step (Gaussian.evaluate, matmul kernel, top-16 tracked), gaussian-sdpa (the sdpa
kernel, fp32 on CPU, fp16 on CUDA), bruteforce (the adapter, k = 1), potential-gaussian (the
adapter: fit with a fixed scale, one mean-shift iteration, top-m snap).

    python bench/memory.py                           # CPU, 1M x 128, 1000 queries, a few minutes on 2 cores
    python bench/memory.py --queries 10000           # the full query set (about 10x longer on a CPU)
    python bench/memory.py --device cuda --queries 10000
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CASES = ("gaussian-step", "gaussian-sdpa", "bruteforce", "potential-gaussian")
MB = 2**20


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB


def _hwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Reset the process's peak RSS (Linux >= 4.0: write 5 to clear_refs); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run_case(case: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one case in this process; returns its figures (called in the child)."""
    import numpy as np
    import torch

    from algorithms import registry, tune_malloc
    from algorithms.potential import Field, get_potential

    tune_malloc()  # as every measuring process of the harness does
    torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    Q = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    data_bytes = X.nbytes
    beta = args.beta
    with torch.no_grad():
        if case in ("gaussian-step", "gaussian-sdpa"):
            # in place: centred, in (approximate) NN-spacing units; no second copy on the CPU
            mean = X.mean(axis=0)
            X -= mean
            Q -= mean
            X /= args.scale
            Q /= args.scale
            points = torch.from_numpy(X).to(args.device)
            if cuda:
                del X
            kernel = "sdpa" if case == "gaussian-sdpa" else "matmul"
            precision = "fp16" if (cuda and kernel == "sdpa") else "fp32"
            field = Field.of(points, args.memory_mb, kernel=kernel, precision=precision)
            queries = torch.from_numpy(Q).to(args.device)
            potential = get_potential("gaussian")
            operation = lambda: potential.evaluate(queries, field, {"beta": beta}, track_m=16)  # noqa: E731
            warmup = lambda: potential.evaluate(queries[:2], field, {"beta": beta}, track_m=16)  # noqa: E731
            label = f"Gaussian.evaluate kernel={kernel} precision={precision} track_m=16"
        elif case == "bruteforce":
            adapter = registry.get("bruteforce").make(device=args.device, threads=args.threads, memory_mb=int(args.memory_mb))
            adapter.fit(X)
            operation = lambda: adapter.search(Q, 1)  # noqa: E731
            warmup = lambda: adapter.search(Q[:2], 1)  # noqa: E731
            label = f"bruteforce.search k=1 memory_mb={int(args.memory_mb)}"
        else:
            adapter = registry.get("potential-gaussian").make(device=args.device, threads=args.threads, scale=args.raw_scale)
            adapter.fit(X)
            adapter.set_query_params(beta=beta, max_iters=1, snap="final", m=16, memory_mb=args.memory_mb)
            operation = lambda: adapter.search(Q, 1)  # noqa: E731
            warmup = lambda: adapter.search(Q[:2], 1)  # noqa: E731
            label = f"potential-gaussian.search k=1, 1 mean-shift iteration, final snap, memory_mb={args.memory_mb}"
        # two queries first: library code pages and thread pools are paged in outside the measurement
        warmup()
        if cuda:
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated() / MB
            torch.cuda.reset_peak_memory_stats()
        before_rss = _rss_mb()
        reset = _reset_peak()
        start = time.perf_counter()
        operation()
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    result = {
        "case": case, "label": label, "seconds": seconds, "data_mb": data_bytes / MB, "budget_mb": args.memory_mb,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if cuda:
        peak = torch.cuda.max_memory_allocated() / MB
        result.update(peak_mb=peak, added_mb=peak - before, baseline_mb=before, kind="cuda allocated")
    else:
        peak = _hwm_mb() if reset else float("nan")
        result.update(peak_mb=peak, added_mb=peak - before_rss, baseline_mb=before_rss, kind="cpu rss")
    return result


def _without_cases(argv: list[str]) -> list[str]:
    """The command line minus `--cases X` / `--cases=X`, for a child that runs one case."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--cases":
            skip = True
        elif not arg.startswith("--cases="):
            out.append(arg)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=None, help="default CPU 1000, CUDA 10000")
    parser.add_argument("--memory-mb", type=float, default=128.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--beta", type=float, default=200.0)
    parser.add_argument("--scale", type=float, default=4.0, help="NN-spacing unit of N(0,1) data in 128-d at 1M (approx.)")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser


def main() -> int:
    args = build_parser().parse_args()
    args.queries = args.queries or (10000 if args.device == "cuda" else 1000)
    args.raw_scale = float(args.scale)
    if args.child:
        print(json.dumps(run_case(args.child, args)))
        return 0
    print(f"device={args.device} N={args.n} D={args.dim} float32 ({args.n * args.dim * 4 / MB:.0f} MiB) "
          f"queries={args.queries} threads={args.threads} memory_mb={args.memory_mb}")
    print(f"{'case':<20} {'data_mb':>8} {'base_mb':>8} {'peak_mb':>8} {'added_mb':>9} {'budget':>7} {'maxrss_mb':>9} {'s':>7}")
    for case in args.cases.split(","):
        command = [sys.executable, __file__, "--child", case] + _without_cases(sys.argv[1:])
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{case:<20} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{case:<20} {r['data_mb']:8.0f} {r['baseline_mb']:8.0f} {r['peak_mb']:8.0f} {r['added_mb']:9.0f} "
              f"{r['budget_mb']:7.0f} {r['maxrss_mb']:9.0f} {r['seconds']:7.1f}   {r['label']} ({r['kind']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
