"""What the progress writes: a bar on a terminal, plain lines anywhere else (a CI log, `nohup`,
a file), nothing with --no-progress.

The unit tests drive `Progress` with a clock the test moves and a stream that says whether it
is a terminal; the slow test runs the command with stderr to a file, as a CI job does.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.plan import sweeps
from harness.plan.budget import Allotment
from harness.plan.cost import ConfigEstimate
from harness.plan.progress import LINE_EVERY_S, Progress

ROOT = Path(__file__).resolve().parents[1]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _allotment(name: str = "faiss-ivf", nlist: int = 64) -> Allotment:
    entry = sweeps.SweepEntry(name, name, {"nlist": [nlist]}, {"nprobe": [1, 2]})
    [config] = sweeps.expand([entry], 1000)
    item = Allotment(config, ConfigEstimate(name, 0.0, 1.0, [0.01, 0.01], overhead_s=0.0), 100, [0, 1], 1)
    item.size(None, "", 1)
    return item


def _run_one(progress: Progress, item: Allotment, clock: _Clock) -> None:
    progress.start(item, item.todo)
    clock.now += 1.0
    progress.part_done(item, "build", 1.0)
    for index in item.todo:
        clock.now += 1.0
        progress.part_done(item, index, 1.0)
    progress.finish(item)


def test_without_a_terminal_progress_is_plain_lines_one_per_configuration():
    clock, stream = _Clock(), io.StringIO()
    items = [_allotment(nlist=64), _allotment(nlist=256)]
    progress = Progress(items, show=True, clock=clock, stream=stream)
    _run_one(progress, items[0], clock)
    _run_one(progress, items[1], clock)
    progress.close()
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 2, text
    assert lines[0].startswith("progress: finished faiss-ivf nlist=64 (1 of 2 configurations)")
    assert lines[1].startswith("progress: finished faiss-ivf nlist=256 (2 of 2 configurations)")
    assert "estimated" in lines[0] and "ETA" in lines[0] and lines[1].endswith("ETA 0.0 s")


def test_without_a_terminal_the_eta_line_comes_at_most_every_line_interval():
    clock, stream = _Clock(), io.StringIO()
    item = _allotment()
    progress = Progress([item], show=True, clock=clock, stream=stream)
    progress.start(item, item.todo)
    clock.now = LINE_EVERY_S - 1
    progress.tick()
    assert stream.getvalue() == ""  # a ticker runs every second: silent until the interval has passed
    clock.now = LINE_EVERY_S
    progress.tick()
    progress.tick()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("progress: running faiss-ivf, 30 s since the start;"), lines
    assert "ETA" in lines[0]
    clock.now = 2 * LINE_EVERY_S
    progress.tick()
    assert len(stream.getvalue().splitlines()) == 2
    progress.close()


def test_on_a_terminal_the_bar_draws_in_place():
    clock, stream = _Clock(), _Terminal()
    item = _allotment()
    progress = Progress([item], show=True, clock=clock, stream=stream)
    _run_one(progress, item, clock)
    progress.tick()
    progress.close()
    text = stream.getvalue()
    assert "\r" in text and "sweep:" in text and "ETA" in text
    assert "progress:" not in text  # no plain lines beside the bar


@pytest.mark.parametrize("stream", [io.StringIO(), _Terminal()], ids=["file", "terminal"])
def test_no_progress_writes_nothing(stream):
    clock = _Clock()
    item = _allotment()
    progress = Progress([item], show=False, clock=clock, stream=stream)
    _run_one(progress, item, clock)
    clock.now += 2 * LINE_EVERY_S
    progress.tick()
    progress.close()
    assert stream.getvalue() == ""


@pytest.mark.slow
def test_a_run_with_stderr_to_a_file_leaves_a_short_log_without_redraws(tmp_path):
    """The command as a CI job runs it, `2> log` (dataset generated on first use included)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GPNN_DATA_DIR": str(tmp_path / "data")}
    log = tmp_path / "log"
    with log.open("w") as stderr:
        done = subprocess.run(
            [sys.executable, "-m", "harness", "--dataset", "random-xs-20-euclidean", "--algorithms", "bruteforce,faiss-ivf",
             "--queries", "200", "--results-dir", str(tmp_path / "results"), "--no-plots"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=600,
        )
    raw = log.read_bytes()  # not read_text: its universal newlines would turn each \r into \n
    text = raw.decode()
    assert done.returncode == 0, text
    assert b"\r" not in raw
    assert len(raw) < 5000
    assert "progress: finished faiss-ivf" in text  # the progress is there, as lines
