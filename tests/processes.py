"""What the tests that start the harness as a process share: waiting, its child processes, and a
small deterministic sweep (exact or seeded adapters) whose records two runs must agree on."""
from __future__ import annotations

import time
from pathlib import Path

#: faiss-flat, seeded IVF and single-threaded hnswlib: the same records run after run
SMALL_SWEEP = """
faiss-flat: {}
faiss-ivf:
  build: {nlist: [8, 16]}
  query: {nprobe: [1, 4]}
hnswlib:
  build: {M: [8, 12]}
  query: {ef: [10, 20]}
"""
SMALL_SWEEP_RECORDS = 1 + 2 * 2 + 2 * 2


def wait_for(condition, timeout: float = 300.0) -> None:
    """Poll `condition` until it holds; the limit is generous so that a loaded machine (other work on
    every core) slows the wait down without failing it."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.01)


def children(pid: int) -> list[int]:
    """The live (not zombie) child processes of `pid`, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and not is_zombie(int(stat.parent.name)):
            found.append(int(stat.parent.name))
    return found


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def sweep_argv(dataset: Path, sweep: Path, results: Path, *more: str) -> list[str]:
    """The main command on `sweep`, seeded, one timed run on one thread, no figures or bar."""
    return ["--dataset", str(dataset), "--sweep", str(sweep), "--seed", "7", "--runs", "1", "--threads", "1",
            "--no-plots", "--no-progress", "--results-dir", str(results), *more]
