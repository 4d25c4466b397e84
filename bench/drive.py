"""What the bench scripts that drive the harness share: run `python -m harness ...` as a subprocess,
keep everything printed, and head the output file with where the numbers came from.

The scripts never re-drive the harness in-process: a run is a harness command, and a table the
harness lacks is built afterwards from the records (`harness.records.load_records`, the public
functions of `harness.report`). Not a script itself (no command line).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: short names the bench scripts accept for --datasets
ALIASES = {"siftsmall": str(ROOT / "tests" / "data" / "siftsmall-128-euclidean.hdf5"), "random-s-100": "random-s-100-euclidean"}
LIBRARIES = ("torch", "faiss-cpu", "faiss", "hnswlib", "numpy")


class Output:
    """Prints each line and keeps it, so the whole output can be written to a file at the end."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.extend(text.split("\n"))

    def write(self, path: Path, head: Sequence[str]) -> None:
        """`head`, a blank line, everything printed since the last write; then start afresh."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([*head, "", *self.lines, ""]) + "\n", encoding="utf-8")
        self.lines = []
        print(f"(written to {path})", flush=True)


def harness(argv: Sequence[str], out: Output) -> None:
    """Run `python -m harness *argv` with this checkout's code, its output (stdout and stderr) into
    `out` line by line; a non-zero exit ends the script with the harness's status."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    command = [sys.executable, "-m", "harness", *[str(a) for a in argv]]
    out(f"$ {shlex.join(['python', *command[1:]])}")
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as child:
        assert child.stdout is not None
        for line in child.stdout:
            out(line.rstrip("\n"))
    if child.returncode != 0:
        print(f"error: the harness command above exited with status {child.returncode}", file=sys.stderr)
        raise SystemExit(child.returncode)


def head(records: Sequence[Mapping[str, Any]], script: str, argv: Sequence[str], threads: int | None = None) -> list[str]:
    """Date, then machine, libraries, allocator and commit as the records' provenance states them
    (every commit when reused records span several; this process's own when there are no records),
    and the exact command line."""
    provs = [r["provenance"] for r in records if r.get("provenance")] or [{**this_process(), "threads": threads or "-"}]
    prov, libs = provs[0], provs[0].get("libraries") or {}
    commits = sorted({f"{p.get('git_commit') or '-'}{' (dirty)' if p.get('git_dirty') else ''}" for p in provs})
    return [
        f"date: {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}",
        f"machine: {prov.get('cpu_model', '-')}, {prov.get('cpu_count', '-')} cores, {prov.get('threads', '-')} threads; "
        f"{prov.get('platform', '-')}",
        f"python {prov.get('python', '-')}; " + ", ".join(f"{n} {libs[n]}" for n in LIBRARIES if n in libs),
        f"allocator: {prov.get('allocator', '-')}; git: {', '.join(commits) or '-'}",
        "command: " + shlex.join(["python", f"bench/{script}", *argv]),
    ]


def this_process() -> dict[str, Any]:
    """The provenance facts `head` shows, of this machine and checkout (for output without records)."""
    import platform
    from importlib import metadata

    cpu = next((line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor() or "-")
    libs = {}
    for name in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            libs[name] = metadata.version(name)
    git = [subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True).stdout.strip()
           for cmd in (["rev-parse", "HEAD"], ["status", "--porcelain", "--untracked-files=no"])]
    return {"cpu_model": cpu, "cpu_count": os.cpu_count(), "threads": "-", "platform": platform.platform(),
            "python": platform.python_version(), "libraries": libs, "allocator": "-",
            "git_commit": git[0] or None, "git_dirty": bool(git[1])}


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readlines()
    except OSError:
        return []


@contextlib.contextmanager
def records_dir(kept: Path | None, prefix: str) -> Iterator[Path]:
    """`kept` (records reused across runs), or a temporary directory removed afterwards."""
    if kept is not None:
        yield kept.resolve()
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        yield Path(scratch)


def dataset_specs(text: str) -> list[str]:
    """The comma list of --datasets, 'none' dropped."""
    return [s.strip() for s in text.split(",") if s.strip() and s.strip() != "none"]
