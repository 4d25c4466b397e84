"""One writer per results directory and dataset.

Two runs writing the same records would both compute the same configurations, and each would
time its measurements while the other one runs. A run therefore holds a lock file,
`<results-dir>/<dataset>/.lock`, naming its process id, host and command, for as long as it
measures. A second run on the same directory and dataset says who holds the lock and waits for
it (or, with `--no-wait`, exits with that message). A lock left by a process that no longer
exists (killed, machine restarted) is taken over with a note. Runs on other datasets or other
results directories are not affected.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable

from harness.errors import HarnessError
from harness.records import safe_component
from harness.run.provenance import now_iso

LOCK_NAME = ".lock"


class ResultsLock:
    """Hold `<results_dir>/<dataset>/.lock` while a run writes records there (a context manager)."""

    def __init__(self, results_dir: Path, dataset: str, *, wait: bool = True,
                 report: Callable[[str], None] = print, poll_s: float = 1.0) -> None:
        self.path = Path(results_dir) / safe_component(dataset) / LOCK_NAME
        self.wait, self.report, self.poll_s = wait, report, poll_s
        self.mine = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv), "since": now_iso()}

    def __enter__(self) -> ResultsLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        said = False
        while not self._try_create():
            holder = self._holder()
            if holder is None:  # being written this instant, or unreadable: look again shortly
                time.sleep(0.05)
                continue
            if _dead(holder):
                self.report(f"note: taking over the lock of {self.path.parent}: its holder, pid {holder.get('pid')} "
                            f"({holder.get('command')}), no longer runs")
                self.path.unlink(missing_ok=True)
                continue
            who = f"pid {holder.get('pid')} on {holder.get('host')} ({holder.get('command')}), since {holder.get('since')}"
            if not self.wait:
                raise HarnessError(
                    f"results directory {self.path.parent} is being written by {who}",
                    "wait for that run to finish, use another --results-dir, or leave out --no-wait to wait for it",
                )
            if not said:
                self.report(f"waiting: {self.path.parent} is being written by {who}; this run starts when it ends")
                said = True
            time.sleep(self.poll_s)

    def release(self) -> None:
        holder = self._holder()
        if holder is not None and holder.get("pid") == self.mine["pid"] and holder.get("host") == self.mine["host"]:
            self.path.unlink(missing_ok=True)

    def _try_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            json.dump(self.mine, handle)
        return True

    def _holder(self) -> dict[str, Any] | None:
        try:
            holder = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None


def _dead(holder: dict[str, Any]) -> bool:
    """Whether the holder is a process of this host that no longer exists."""
    if holder.get("host") != socket.gethostname():
        return False  # another machine's process (a shared file system): cannot tell, so it holds
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, TypeError, ValueError):
        return False
    return False
