"""Interrupting a sweep loses at most the configuration in flight; the same command resumes it.

The sweeps here use deterministic adapters only (faiss-flat; faiss-ivf, whose k-means is
seeded; hnswlib with one thread), so a resumed sweep must end with the very records an
uninterrupted one writes, timings aside.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import records
from harness.cli import main
from processes import children, is_zombie, sweep_argv, wait_for

pytestmark = pytest.mark.slow  # child processes, signals, kill -9

ROOT = Path(__file__).resolve().parent.parent
CRASH_PLUGIN = str(Path(__file__).with_name("crash_adapters.py"))
SWEEP = """
faiss-flat: {}
faiss-ivf:
  build: {nlist: [8, 16]}
  query: {nprobe: [1, 2, 4]}
hnswlib:
  build: {M: [4, 6, 8, 12]}
  query: {ef: [10, 20]}
"""
N_RECORDS = 1 + 2 * 3 + 4 * 2


@pytest.fixture(scope="module")
def sweep_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A tiny dataset, the sweep file, and the records of one uninterrupted run (the reference)."""
    from conftest import write_tiny_dataset

    root = tmp_path_factory.mktemp("resume")
    dataset = write_tiny_dataset(root / "resume-8-euclidean.hdf5", n_train=500, n_test=30)
    sweep = root / "sweep.yaml"
    sweep.write_text(SWEEP)
    reference = root / "reference"
    assert main(sweep_argv(dataset, sweep, reference)) == 0
    return {"dataset": dataset, "sweep": sweep, "reference": reference}


def _outcomes(results: Path) -> dict[str, tuple]:
    """Everything a record says that does not depend on the clock, by record file name."""
    found = {}
    for record in records.load_records(results):
        m = record["metrics"]
        ids = records.load_arrays(record)["ids"]
        found[Path(record["_path"]).name] = (record["status"], record["seed"], m["recall_at_1"], m["recall_at_k"], ids.tobytes())
    return found


def _harness(argv: list[str], **options: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **options)


def test_same_seed_same_records_across_two_isolated_runs(sweep_case, tmp_path):
    assert main(sweep_argv(sweep_case["dataset"], sweep_case["sweep"], tmp_path)) == 0
    again, reference = _outcomes(tmp_path), _outcomes(sweep_case["reference"])
    assert len(reference) == N_RECORDS and again == reference
    assert {outcome[1] for outcome in reference.values()} == {7}


def test_kill_9_midway_then_the_same_command_completes_the_sweep(sweep_case, tmp_path):
    count = lambda: len(list(tmp_path.rglob("*.json")))  # noqa: E731
    run = _harness(sweep_argv(sweep_case["dataset"], sweep_case["sweep"], tmp_path))
    try:
        wait_for(lambda: count() >= 1 or run.poll() is not None)
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the harness and its child, as `kill -9 -PGID` would
        run.communicate()
    interrupted = count()
    assert 1 <= interrupted < N_RECORDS, "the sweep should have been killed midway"
    assert main(sweep_argv(sweep_case["dataset"], sweep_case["sweep"], tmp_path)) == 0
    assert _outcomes(tmp_path) == _outcomes(sweep_case["reference"])
    assert not list(tmp_path.rglob(".*.tmp"))


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_and_sigterm_stop_the_child_and_say_what_was_kept(make_tiny_dataset, tmp_path, sig, code):
    sweep = tmp_path / "hang.yaml"
    sweep.write_text("crash-hang:\n  query: {fail: [false, true]}\n")
    argv = ["--dataset", str(make_tiny_dataset()), "--sweep", str(sweep), "--plugins", CRASH_PLUGIN, "--runs", "1",
            "--no-plots", "--no-progress", "--results-dir", str(tmp_path / "results")]
    run = _harness(argv)
    try:
        wait_for(lambda: list(tmp_path.rglob("*.json")) or run.poll() is not None)
        running = children(run.pid)
        assert running, "the build should run in a child process"
        started = time.monotonic()
        run.send_signal(sig)  # to the harness only: it must stop its child itself
        out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == code and time.monotonic() - started < 120  # the hang never ends: any bound tells
    assert "interrupted: 1 records written this run, 0 reused" in err and "rerun the same command" in err
    assert "Traceback" not in err
    for child in running:
        wait_for(lambda: not Path(f"/proc/{child}").exists() or is_zombie(child))


def test_failed_records_are_kept_unless_retry_failed(make_tiny_dataset, tmp_path, capsys):
    sweep = tmp_path / "raise.yaml"
    sweep.write_text("crash-raise-build: {}\nfaiss-flat: {}\n")
    argv = ["--dataset", str(make_tiny_dataset()), "--sweep", str(sweep), "--plugins", CRASH_PLUGIN, "--runs", "1",
            "--workers", "0", "--no-plots", "--no-progress", "--results-dir", str(tmp_path)]
    assert main(argv) == 1
    [failed] = [r for r in records.load_records(tmp_path) if r["status"] != "ok"]
    before = Path(failed["_path"]).read_bytes()
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "0 written, 1 reused, 0 failed" in out and "skipped 1 configuration(s)" in out and "--retry-failed" in out
    assert Path(failed["_path"]).read_bytes() == before
    assert main([*argv, "--retry-failed"]) == 1
    assert "0 written, 1 reused, 1 failed" in capsys.readouterr().out
