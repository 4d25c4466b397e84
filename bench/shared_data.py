"""Memory of a run's processes when they share one copy of the training vectors.

Writes N x D float32 random vectors (default 1M x 960, gist-960's size: 3.8 GB) in
ann-benchmarks layout into a scratch folder, deleted at the end, then measures what a run with
--parallel CHILDREN would hold:

1. the parent opens the file as a run's parent does (`load_file`: writes the shared copy
   `<file>.train.npy` and hashes it whole) and keeps only metadata;
2. CHILDREN processes open it as a worker does (`load_file(full_check=False)`: cheap checks, a
   read-only map), build ALGORITHM on the mapped vectors and read every vector; while all of
   them are alive each reports its memory from /proc smaps (`harness.measure.clocks.memory_breakdown`);
3. with --compare-private, the same again with each child reading a private copy from the HDF5
   file, as every child did before the shared copy (skipped when memory is short).

Columns (MiB): rss; pss (shared pages split between the processes mapping them); uss (pages of
this process alone: Private_Clean + Private_Dirty); shared (Shared_Clean + Shared_Dirty);
anon (anonymous: heap, the index); map_rss / map_shared of the mapped copy alone; peak (VmHWM:
the process's peak RSS, shared pages included); index (the adapter's index_bytes). The total
is the sum of pss over all processes, each resident page counted once: the issue's bound is
2 x the vectors + the indexes. A file mapped by one process only shows as Private_Clean (clean
page-cache pages), so sharing shows with two or more children.

    python bench/shared_data.py                                   # 1M x 960, 2 children, faiss-flat
    python bench/shared_data.py --n 1000000 --dim 128 --compare-private
    python bench/shared_data.py --algorithm bruteforce --children 1
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MIB = 2**20
BLOCK_ROWS = 16384
SPARE = 512 * MIB


# --- the scratch dataset ----------------------------------------------------------------------


def write_dataset(path: Path, n: int, dim: int, seed: int) -> None:
    """A valid ann-benchmarks file, `train` written a block of rows at a time (never whole in
    memory). Its ground truth is a placeholder: nothing here scores answers."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f.attrs.update({"distance": "euclidean", "dimension": dim, "point_type": "float"})
        train = f.create_dataset("train", shape=(n, dim), dtype=np.float32)
        for start in range(0, n, BLOCK_ROWS):
            stop = min(n, start + BLOCK_ROWS)
            train[start:stop] = rng.random((stop - start, dim), dtype=np.float32)
        f.create_dataset("test", data=rng.random((100, dim), dtype=np.float32))
        f.create_dataset("neighbors", data=np.tile(np.arange(10, dtype=np.int32), (100, 1)))
        f.create_dataset("distances", data=np.tile(np.arange(10, dtype=np.float32), (100, 1)))


# --- one child --------------------------------------------------------------------------------


def _peak_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def child(path: str, algorithm: str, private: bool, barrier: Any, results: Any) -> None:
    """A worker's part: open, build on the vectors, read them all; report while all children live."""
    import h5py
    import numpy as np

    from algorithms import tune_malloc
    from algorithms.registry import get
    from harness.data.loader import load_file
    from harness.data.train_copy import copy_paths
    from harness.measure.clocks import memory_breakdown

    tune_malloc()  # as every measuring process of the harness
    get(algorithm)  # the libraries imported before the clock starts
    started = time.perf_counter()
    dataset = load_file(Path(path), full_check=False)
    if private:  # each child's own copy, read from the file as the loader did before the shared copy
        with h5py.File(path, "r") as f:
            train = np.ascontiguousarray(f["train"][:], dtype=np.float32)
    else:
        train = dataset.train
    opened = time.perf_counter() - started
    adapter = get(algorithm).make(threads=1)
    adapter.fit(train)
    total = float(np.asarray(train).sum(dtype=np.float64))  # every vector resident, as searches and scoring read them
    built = time.perf_counter() - started - opened
    barrier.wait(600)
    results.put({
        "pid": os.getpid(), "whole": memory_breakdown(), "map": memory_breakdown(mapped_file=str(copy_paths(Path(path))[0])),
        "peak": _peak_bytes(), "index": adapter.index_bytes() or 0, "open_s": opened, "build_s": built, "sum": total,
    })
    barrier.wait(600)


# --- the parent -------------------------------------------------------------------------------


def available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(path: Path, args: argparse.Namespace, private: bool) -> list[dict[str, Any]]:
    """Start the children, collect their reports while all are alive, and the parent's own."""
    from harness.data.train_copy import copy_paths
    from harness.measure.clocks import memory_breakdown

    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(args.children + 1), context.Queue()
    processes = [context.Process(target=child, args=(str(path), args.algorithm, private, barrier, results))
                 for _ in range(args.children)]
    for process in processes:
        process.start()
    try:
        barrier.wait(3600)  # every child has built and read the vectors
        reports = [results.get(timeout=600) for _ in processes]
        parent = {"pid": os.getpid(), "whole": memory_breakdown(), "peak": _peak_bytes(), "index": 0,
                  "map": memory_breakdown(mapped_file=str(copy_paths(path)[0]))}
        barrier.wait(600)
    finally:
        for process in processes:
            process.join(600)
    return [parent, *reports]


def table(rows: list[dict[str, Any]], vectors: int, label: str) -> list[str]:
    def mib(value: float) -> str:
        return f"{value / MIB:9,.0f}"

    lines = [label, f"{'process':<9}{'rss':>9}{'pss':>9}{'uss':>9}{'shared':>9}{'anon':>9}{'map_rss':>9}{'map_shrd':>9}"
                    f"{'peak':>9}{'index':>9}{'open_s':>8}{'build_s':>8}"]
    for i, row in enumerate(rows):
        whole, mapped = row["whole"], row["map"]
        timing = f"{row['open_s']:8.1f}{row['build_s']:8.1f}" if "open_s" in row else ""
        lines.append(
            f"{'parent' if i == 0 else f'child {i}':<9}" + mib(whole["Rss"]) + mib(whole["Pss"])
            + mib(whole["Private_Clean"] + whole["Private_Dirty"]) + mib(whole["Shared_Clean"] + whole["Shared_Dirty"])
            + mib(whole["Anonymous"]) + mib(mapped["Rss"]) + mib(mapped["Shared_Clean"] + mapped["Shared_Dirty"])
            + mib(row["peak"]) + mib(row["index"]) + timing
        )
    pss = sum(row["whole"]["Pss"] for row in rows)
    indexes = sum(row["index"] for row in rows)
    bound = 2 * vectors + indexes
    lines += [
        f"all processes: pss {pss / MIB:,.0f} MiB = {pss / vectors:.2f} x the vectors; "
        f"bound 2 x vectors + indexes = {bound / MIB:,.0f} MiB: {'within' if pss <= bound else 'OVER'} ({pss / bound:.2f} of it)",
        f"per child beyond its index: {(pss - rows[0]['whole']['Pss'] - indexes) / max(1, len(rows) - 1) / MIB:,.0f} MiB of pss; "
        f"vectors {vectors / MIB:,.0f} MiB",
    ]
    return lines


def preamble(argv: list[str]) -> list[str]:
    from harness.run import provenance

    versions = provenance.library_versions()
    libs = ", ".join(f"{n} {versions[n]}" for n in ("faiss-cpu", "faiss", "torch", "numpy", "h5py") if n in versions)
    commit, dirty = provenance.git_state()
    return [
        f"date: {provenance.now_iso()}; git: {commit or '-'}{' (dirty)' if dirty else ''}",
        f"machine: {provenance.cpu_model()}, {os.cpu_count()} cores, {available_bytes() / 2**30:.1f} GiB available; "
        f"{platform.platform()}; python {platform.python_version()}; {libs}",
        "command: " + shlex.join(["python", "bench/shared_data.py", *argv]),
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=960)
    parser.add_argument("--children", type=int, default=2, help="processes measuring at once (--parallel)")
    parser.add_argument("--algorithm", default="faiss-flat", help="built in each child on the vectors")
    parser.add_argument("--compare-private", action="store_true", help="also each child with its own copy (before)")
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()), help="where the dataset is written (deleted after)")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/shared_data-NxD.txt")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from harness.data.loader import load_file

    vectors = args.n * args.dim * 4
    free = shutil.disk_usage(args.scratch).free
    if free < 2 * vectors + SPARE:  # the HDF5 file and the shared copy
        raise SystemExit(f"error: {args.scratch} has {free / 2**30:.1f} GiB free; the file and its copy need "
                         f"{(2 * vectors + SPARE) / 2**30:.1f} GiB: use --scratch elsewhere or a smaller --n")
    lines = preamble(argv)
    print("\n".join(lines), flush=True)

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory(prefix="shared-data-", dir=args.scratch) as scratch:
        path = Path(scratch) / f"random-{args.n}-{args.dim}-euclidean.hdf5"
        started = time.perf_counter()
        writer = multiprocessing.get_context("spawn").Process(target=write_dataset, args=(path, args.n, args.dim, args.seed))
        writer.start()  # in a process of its own: the parent's peak is then a run's parent's
        writer.join()
        if writer.exitcode != 0:
            raise SystemExit(f"error: writing {path} failed (exit code {writer.exitcode})")
        say(f"\n{args.n} x {args.dim} float32: vectors {vectors / MIB:,.0f} MiB; file written in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        dataset = load_file(path)  # the parent's open: writes the shared copy and hashes it whole
        say(f"parent: shared copy written and verified in {time.perf_counter() - started:.0f} s; "
            f"vectors mapped here: {dataset.train_array is not None}")
        del dataset
        say(f"{args.children} children each build {args.algorithm} (1 thread) on the vectors and read them all\n")
        for line in table(measure(path, args, private=False), vectors, "shared copy (memory-mapped), as the harness runs now:"):
            say(line)
        if args.compare_private:
            need = args.children * (vectors + vectors) * 1.25
            if available_bytes() < need:
                say(f"\nprivate copies skipped: they need about {need / 2**30:.1f} GiB, {available_bytes() / 2**30:.1f} GiB available")
            else:
                say("")
                for line in table(measure(path, args, private=True), vectors, "private copies (each child reads the file), as before:"):
                    say(line)
    out = args.out or ROOT / "bench" / "results" / f"shared_data-{args.n}x{args.dim}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"(written to {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
