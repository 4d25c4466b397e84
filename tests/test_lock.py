"""One writer per results directory and dataset: a second run waits (or refuses), a stale lock is taken over."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.run.lock import ResultsLock

ROOT = Path(__file__).resolve().parent.parent


def test_a_second_writer_is_refused_with_the_holders_name_under_no_wait(tmp_path):
    with ResultsLock(tmp_path, "ds") as held:
        assert held.path.is_file() and json.loads(held.path.read_text())["pid"] == os.getpid()
        with pytest.raises(HarnessError, match=f"being written by pid {os.getpid()}"):
            ResultsLock(tmp_path, "ds", wait=False).acquire()
        with ResultsLock(tmp_path, "another-dataset", wait=False), ResultsLock(tmp_path / "other", "ds", wait=False):
            pass  # other datasets and other results directories are not affected
    assert not held.path.exists()


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_note(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = ResultsLock(tmp_path, "ds")
    lock.path.parent.mkdir(parents=True)
    lock.path.write_text(json.dumps({**lock.mine, "pid": int(dead.stdout), "command": "python -m harness (killed)"}))
    notes: list[str] = []
    with ResultsLock(tmp_path, "ds", wait=False, report=notes.append) as taken:
        assert json.loads(taken.path.read_text())["pid"] == os.getpid()
    assert len(notes) == 1 and "no longer runs" in notes[0] and "(killed)" in notes[0]


def test_a_waiting_writer_says_who_holds_the_lock_and_starts_when_it_is_released(tmp_path):
    import threading

    notes: list[str] = []
    first = ResultsLock(tmp_path, "ds")
    first.acquire()
    second = ResultsLock(tmp_path, "ds", report=notes.append, poll_s=0.05)
    waiter = threading.Thread(target=second.acquire)
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive() and len(notes) == 1 and "waiting" in notes[0] and str(os.getpid()) in notes[0]
    # the same process holds both here, so ownership is told apart by releasing the first by hand
    first.path.unlink()
    waiter.join(timeout=120)
    assert not waiter.is_alive() and second.path.is_file()


SLOW_BUILD = """
import time

import numpy as np

from algorithms.base import Adapter
from algorithms.registry import register


@register("lock-test-slow-build", description="test adapter: exact search after a 6 s build")
class SlowBuild(Adapter):
    def _fit(self, X):
        time.sleep(6)
        self._X = X

    def _search(self, Q, k):
        d = ((Q[:, None, :] - self._X[None]) ** 2).sum(-1)
        ids = np.argsort(d, axis=1, kind="stable")[:, :k]
        return ids, np.sqrt(np.take_along_axis(d, ids, 1))
"""


@pytest.mark.slow
def test_two_runs_started_together_give_the_records_of_one(tmp_path, make_tiny_dataset):
    from harness import records

    dataset = make_tiny_dataset(n_train=2000, n_test=200, dim=16)
    plugin = tmp_path / "slow_build.py"
    plugin.write_text(SLOW_BUILD)  # the first run holds the lock long enough for the second to meet it
    argv = [sys.executable, "-m", "harness", "--dataset", str(dataset), "--algorithms", "lock-test-slow-build,faiss-ivf",
            "--plugins", str(plugin), "--runs", "1", "--workers", "0", "--no-plots", "--no-progress", "--results-dir"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen([*argv, str(tmp_path / "shared")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=env)
    lock = tmp_path / "shared" / dataset.stem / ".lock"
    deadline = time.monotonic() + 120
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run([*argv, str(tmp_path / "shared")], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    out_first, _ = first.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, out_first + second.stdout + second.stderr
    assert "waiting:" in second.stdout and "is being written by pid" in second.stdout, second.stdout
    alone = subprocess.run([*argv, str(tmp_path / "alone")], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert alone.returncode == 0
    shared = {Path(r["_path"]).name: r["status"] for r in records.load_records(tmp_path / "shared")}
    single = {Path(r["_path"]).name: r["status"] for r in records.load_records(tmp_path / "alone")}
    assert shared == single and set(shared.values()) == {"ok"}
    assert "records: 0 written" in second.stdout  # the second run found everything done
    assert not lock.exists()
