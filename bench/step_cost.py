"""One full-potential step against one exact brute-force 1-NN pass: same data, device, threads.

design.md 3 argues that a Gaussian mean-shift step over all N points costs about two brute-force
passes in flops, so the full-potential method cannot beat brute force; it can only win by
restricting the potential. This script measures that claim. Every row times one operation over
the same Q random queries and N random points (D = 128 by default, seeded, centred and in
nearest-neighbour-spacing units as the adapters hold them) and prints

    ms (median of --repeats rounds after --warmup runs; each round times every row once, so a slow
    spell of the machine is shared by all rows; CUDA timed with events around a synchronize),
    the ratio to the fp32 brute-force pass (and, on CPU, to FAISS IndexFlatL2 at the same threads),
    effective TFLOP/s counting matmul flops only: 2 Q N D per product (brute force: 1 product,
    a Gaussian or potential_1 step: 2 products; the padded width of the sdpa kernel is not counted).

Rows: bruteforce fp32 and in each --dtype low precision (scores in that precision, fp32 re-rank);
faiss-flat (CPU); gaussian step by the streaming matmul kernel at each --beta (on the CPU it
skips weights below a rounding step of the sum, so large beta costs less), alone and as a search
runs it: with the top-m contributors tracked for the snap's pool (--track-m, the adapter's m;
0 leaves those rows out); the sdpa kernel in each precision; potential_1 value+gradient (eager,
and compiled with --compile). What is printed is also written to --out (default
bench/results/step_cost.txt; '-' for none), with the command line.

    python bench/step_cost.py                                   # CPU: N in {1e4, 1e5}, Q = 1000
    python bench/step_cost.py --threads 1
    python bench/step_cost.py --sizes 100000 --beta 100,200,300,1000 --dtype none --no-potential1
    python bench/step_cost.py --data tests/data/siftsmall-128-euclidean.hdf5 --repeats 20   # real SIFT data
    python bench/step_cost.py --device cuda                     # N in {1e4, 1e5, 1e6}, Q = 10k, fp16+bf16
    python bench/step_cost.py --sizes 1000000 --queries 10000 --device cuda --dtype fp16
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Callable, Iterable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from algorithms import registry, tune_malloc  # noqa: E402
from algorithms.potential import Field, get_potential  # noqa: E402
from algorithms.potential.scale import estimate_scale  # noqa: E402


def _once(device: str, fn: Callable[[], object]) -> float:
    """Milliseconds of one call of `fn`; CUDA: events, synchronised."""
    if device == "cuda":
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end)
    begin = time.perf_counter()
    fn()
    return (time.perf_counter() - begin) * 1e3


def timed_rounds(device: str, operations: dict[str, Callable[[], object]], warmup: int, repeats: int) -> dict[str, float]:
    """Median milliseconds of each operation, timed in alternating rounds (one call of each per round).

    Alternating spreads a slow spell of the machine (a shared VM's neighbours, clock changes)
    over every row instead of one, so the ratios between rows hold even when the absolute
    times drift. An operation that fails in its warm-up is reported and left out.
    """
    alive = {}
    for name, fn in operations.items():
        try:
            for _ in range(warmup):
                fn()
        except Exception as error:  # noqa: BLE001 - report and go on with the other rows
            print(f"  ({name} failed: {type(error).__name__}: {error})")
            continue
        alive[name] = fn
    times: dict[str, list[float]] = {name: [] for name in alive}
    for _ in range(repeats):
        for name, fn in alive.items():
            times[name].append(_once(device, fn))
    return {name: statistics.median(ts) for name, ts in times.items()}


def random_data(n: int, q: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points and queries, standard normal, float32 (random-data convention of design.md 4)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d), dtype=np.float32), rng.standard_normal((q, d), dtype=np.float32)


def real_data(path: str, n_queries: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(N, train, first n_queries test queries) of an ann-benchmarks HDF5 file, validated by the harness loader."""
    from harness.data.loader import load_file
    from harness.errors import HarnessError

    try:
        dataset = load_file(Path(path))
    except HarnessError as error:
        raise SystemExit(f"error: {error}")
    return dataset.n_train, np.array(dataset.train), np.ascontiguousarray(dataset.test[:n_queries])  # train: a writable copy of the map


def in_units(X: np.ndarray, Q: np.ndarray, device: str) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Centred, divided by the median NN spacing of a sample: how the potential adapters hold data."""
    Xt = torch.from_numpy(X).to(device)
    mean = Xt.mean(0)
    centred = Xt - mean
    scale = estimate_scale(centred[: min(len(X), 20000)], sample=200)
    return centred / scale, (torch.from_numpy(Q).to(device) - mean) / scale, scale


def previous_gaussian_step(q: torch.Tensor, field: Field, beta: float) -> torch.Tensor:
    """The Gaussian matmul loop as it was before its rewrite, for the before/after row (--before).

    Blocks from the old rule (8 temporaries, whole data passes first: ~40 query rows x all of
    N at the default budget), logits built out of place, exp out of place.
    """
    from algorithms.potential.chunks import blocks

    elements = max(1, int(field.memory_mb * 2**20) // (q.element_size() * 8))
    qc, nc = (max(1, min(len(q), elements // field.n)), field.n) if elements >= field.n else (1, elements)
    means = []
    for rows in blocks(len(q), qc):
        qq = q[rows]
        run_max = qq.new_full((len(qq),), float("-inf"))
        run_sum = qq.new_zeros(len(qq))
        run_x = torch.zeros_like(qq)
        for cols in blocks(field.n, nc):
            x = field.X[cols]
            logits = beta * (qq @ x.T - 0.5 * field.sq_norms[cols])
            new_max = torch.maximum(run_max, logits.max(1).values)
            decay = torch.exp(run_max - new_max)
            weights = torch.exp(logits - new_max[:, None])
            run_sum = run_sum * decay + weights.sum(1)
            run_x = run_x * decay[:, None] + weights @ x
            run_max = new_max
        means.append(run_x / run_sum[:, None])
    return torch.cat(means)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default=None, help="comma list of N (default CPU 10000,100000; CUDA 10000,100000,1000000)")
    parser.add_argument("--queries", type=int, default=None, help="Q (default CPU 1000, CUDA 10000)")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--dtype", default=None,
                        help="low precisions to add, comma list of fp16,bf16 (default CUDA fp16,bf16; CPU bf16); 'none' for fp32 only")
    parser.add_argument("--threads", type=int, default=2, help="torch and FAISS threads (CPU)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--beta", default=None,
                        help="Gaussian inverse bandwidths, 1 / scale unit^2, comma list; one matmul row each "
                             "(default CPU 200,300,1000: the CPU kernel skips negligible weights, so the "
                             "cost depends on beta; CUDA 200); the other Gaussian rows use the first")
    parser.add_argument("--memory-mb", type=float, default=128.0, help="potential evaluation budget (adapter default)")
    parser.add_argument("--track-m", type=int, default=100,
                        help="top-m tracked per Gaussian step as a search does it (the default sweep's m); 0: no such rows")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "step_cost.txt"),
                        help="also write the output here ('-': nowhere)")
    parser.add_argument("--no-potential1", action="store_true", help="skip the potential_1 rows")
    parser.add_argument("--compile", action="store_true", help="add a potential_1 row through torch.compile")
    parser.add_argument("--before", action="store_true", help="add the Gaussian loop as it was before its rewrite as a row (before/after)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, metavar="FILE.hdf5",
                        help="an ann-benchmarks file (e.g. tests/data/siftsmall-128-euclidean.hdf5): its train set "
                             "and up to --queries of its test queries instead of random data (--sizes, --dim ignored)")
    return parser


def main() -> int:
    parser = build_parser()
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU")
    cuda = args.device == "cuda"
    sizes = [int(float(s)) for s in (args.sizes or ("10000,100000,1000000" if cuda else "10000,100000")).split(",")]
    n_queries = args.queries or (10000 if cuda else 1000)
    if args.data is None:  # generated one size at a time: 1e6 x 128 is 512 MB
        cases: Iterable[tuple[int, np.ndarray, np.ndarray]] = ((n, *random_data(n, n_queries, args.dim, args.seed)) for n in sizes)
    else:
        n, X, Q = real_data(args.data, n_queries)
        cases, sizes, n_queries, args.dim = [(n, X, Q)], [n], len(Q), X.shape[1]
    lows = args.dtype or ("fp16,bf16" if cuda else "bf16")
    lows = [] if lows == "none" else lows.split(",")
    args.betas = [float(b) for b in (args.beta or ("200" if cuda else "200,300,1000")).split(",")]
    torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision("highest")
    import faiss

    faiss.omp_set_num_threads(args.threads)
    device_name = torch.cuda.get_device_name() if cuda else _cpu_name()
    lines: list[str] = []

    def print(text: str) -> None:  # noqa: A001 - every line goes to stdout and to --out
        lines.append(text)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    print("command: python " + " ".join(sys.argv))
    print(f"device={args.device} ({device_name}) threads={args.threads} torch={torch.__version__} faiss={faiss.__version__} "
          f"allocator: {tune_malloc()}")
    source = "data " + args.data if args.data else "random N(0,1) data"
    print(f"{source}: D={args.dim} Q={n_queries} N in {sizes} beta in {args.betas} memory_mb={args.memory_mb} "
          f"warmup={args.warmup} repeats={args.repeats} (median ms, alternating rounds)")
    header = f"{'N':>9} {'operation':<54} {'ms':>10} {'x bf fp32':>10} {'x faiss':>8} {'TFLOP/s':>8}"
    for n, X, Q in cases:
        print(header)
        rows = measure_size(args, X, Q, lows)
        base = rows.get("bruteforce fp32")
        faiss_ms = rows.get("faiss-flat (IndexFlatL2)")
        for name, (ms, products) in rows.items():
            tflops = products * 2.0 * n_queries * n * args.dim / (ms * 1e-3) / 1e12
            ratio = f"{ms / base[0]:10.2f}" if base else f"{'':>10}"
            vs_faiss = f"{ms / faiss_ms[0]:8.2f}" if faiss_ms else f"{'':>8}"
            print(f"{n:>9} {name:<54} {ms:10.1f} {ratio} {vs_faiss} {tflops:8.3f}")
    if args.out != "-":
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")
        sys.stdout.write(f"(written to {args.out})\n")
    return 0


def measure_size(args: argparse.Namespace, X: np.ndarray, Q: np.ndarray, lows: list[str]) -> dict[str, tuple[float, int]]:
    """{row name: (median ms, matmul products counted)} for one N."""
    dev, cuda = args.device, args.device == "cuda"
    rows: dict[str, tuple[Callable[[], object], int]] = {}
    queries = torch.from_numpy(Q).to(dev)
    for precision in ["fp32", *lows]:
        if precision == "fp16" and not cuda:
            continue
        bf = registry.get("bruteforce").make(device=dev, threads=args.threads, precision=precision, memory_mb=256)
        bf.fit(X)
        rows[f"bruteforce {precision}"] = (partial(bf.search_tensor, queries, 1), 1)
    if not cuda:
        import faiss

        index = faiss.IndexFlatL2(X.shape[1])
        index.add(X)
        rows["faiss-flat (IndexFlatL2)"] = (partial(index.search, Q, 1), 1)
    data, q, _ = in_units(X, Q, dev)
    gaussian = get_potential("gaussian")
    first = args.betas[0]
    field = Field.of(data, args.memory_mb)
    if args.before:
        rows[f"gaussian step, matmul fp32 (before) b={first:g}"] = (partial(previous_gaussian_step, q, field, first), 2)
    for beta in args.betas:
        rows[f"gaussian step, matmul fp32 b={beta:g}"] = (partial(gaussian.evaluate, q, field, {"beta": beta}), 2)
        if args.track_m:  # as a search runs it: the snap's pool tracked in every evaluation
            name = f"gaussian step + top-{args.track_m} tracking, matmul fp32 b={beta:g}"
            rows[name] = (partial(gaussian.evaluate, q, field, {"beta": beta}, args.track_m), 2)
    for precision in ["fp32", *lows]:
        if precision == "fp16" and not cuda:
            continue  # CPU fp16 attention runs, but slowly; it is not a configuration to measure
        sdpa = Field.of(data, args.memory_mb, kernel="sdpa", precision=precision)
        rows[f"gaussian step, sdpa {precision} b={first:g}"] = (partial(gaussian.evaluate, q, sdpa, {"beta": first}), 2)
    if not args.no_potential1:
        p1 = get_potential("potential_1")
        hp1 = {"c": 1e8, "eps": 0.5, "clamp": 16.0}
        rows["potential_1 value+grad, eager"] = (partial(p1.evaluate, q, field, hp1), 2)
        if args.compile:
            compiled = Field.of(data, args.memory_mb, kernel="compiled")
            rows["potential_1 value+grad, compiled"] = (partial(p1.evaluate, q, compiled, hp1), 2)
    with torch.no_grad():
        medians = timed_rounds(dev, {name: fn for name, (fn, _) in rows.items()}, args.warmup, args.repeats)
    return {name: (ms, rows[name][1]) for name, ms in medians.items()}


def _cpu_name() -> str:
    try:
        from harness.run import provenance

        return provenance.cpu_model()
    except Exception:  # noqa: BLE001
        import platform

        return platform.processor() or "cpu"


if __name__ == "__main__":
    sys.exit(main())
