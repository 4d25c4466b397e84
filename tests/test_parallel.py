"""`--workers N`: N build configurations at once, records through the one parent, Ctrl-C stops
every child; and the command line's budget options. Child processes: the slow lane, except the
refusals, which stop before anything runs."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness import records
from harness.cli import main
from processes import SMALL_SWEEP, SMALL_SWEEP_RECORDS, children, is_zombie, sweep_argv, wait_for

ROOT = Path(__file__).resolve().parent.parent
CRASH_PLUGIN = str(Path(__file__).with_name("crash_adapters.py"))


def _outcomes(results: Path) -> dict[str, tuple]:
    found = {}
    for record in records.load_records(results):
        ids = records.load_arrays(record)["ids"]
        found[Path(record["_path"]).name] = (record["status"], record["metrics"]["recall_at_1"], ids.tobytes())
    return found


@pytest.mark.slow
def test_parallel_runs_write_the_records_a_serial_run_writes(make_tiny_dataset, tmp_path):
    dataset = make_tiny_dataset(n_train=400, n_test=20)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SMALL_SWEEP)
    assert main(sweep_argv(dataset, sweep, tmp_path / "serial")) == 0
    assert main(sweep_argv(dataset, sweep, tmp_path / "parallel", "--workers", "2")) == 0
    serial, parallel = _outcomes(tmp_path / "serial"), _outcomes(tmp_path / "parallel")
    assert len(serial) == SMALL_SWEEP_RECORDS and parallel == serial
    found = records.load_records(tmp_path / "parallel")
    assert {r["provenance"]["parallel"] for r in found} == {2}
    assert all(r["estimated_s"] > 0 and r["measured_s"] > 0 for r in found)
    log = [json.loads(line) for line in next((tmp_path / "parallel").rglob("progress.jsonl")).read_text().splitlines()]
    events = [line["event"] for line in log]
    assert events.index("finish") > events.index("start") + 1 and events[1:3] == ["start", "start"]  # two at once
    assert events[-1] == "end" and log[-1]["fraction"] == 1.0


@pytest.mark.slow
def test_ctrl_c_in_a_parallel_run_stops_every_child(make_tiny_dataset, tmp_path):
    sweep = tmp_path / "hang.yaml"
    sweep.write_text("a:\n  algorithm: crash-hang\n  query: {fail: [true]}\nb:\n  algorithm: crash-hang\n  query: {fail: [true]}\n")
    argv = ["--dataset", str(make_tiny_dataset()), "--sweep", str(sweep), "--plugins", CRASH_PLUGIN, "--runs", "1",
            "--no-plots", "--no-progress", "--results-dir", str(tmp_path / "results"), "--workers", "2"]
    run = subprocess.Popen([sys.executable, "-m", "harness", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: len(children(run.pid)) >= 2 or run.poll() is not None)
        running = children(run.pid)
        assert len(running) >= 2, "two configurations should run at once, each in its child"
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130 and "rerun the same command" in err and "Traceback" not in err
    for child in running:
        wait_for(lambda: not Path(f"/proc/{child}").exists() or is_zombie(child))
    assert not list((tmp_path / "results").rglob("*.json"))  # nothing finished, nothing recorded as failed


def test_several_workers_need_child_processes_and_this_machine(make_tiny_dataset, tmp_path, capsys):
    base = ["--dataset", str(make_tiny_dataset()), "--results-dir", str(tmp_path)]
    assert main([*base, "--parallel", "2", "--isolation", "none"]) == 2
    assert "--isolation process" in capsys.readouterr().err
    assert main([*base, "--workers", "2", "--ray"]) == 2
    assert "drop --workers, or --ray" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--budget", "--config-budget"])
def test_a_budget_that_is_not_a_duration_is_refused(flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--dataset", "x", flag, "ten minutes"])
    assert exit_.value.code == 2 and "not a duration" in capsys.readouterr().err


@pytest.mark.slow
def test_plan_only_prints_the_plan_and_runs_nothing(make_tiny_dataset, tmp_path, capsys):
    argv = ["--dataset", str(make_tiny_dataset()), "--algorithms", "bruteforce,faiss-ivf", "--results-dir", str(tmp_path),
            "--plan-only", "--budget", "1h", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "plan (cost model:" in out and "faiss-ivf(nlist=64)" in out and "total: 2 configuration(s) to run" in out
    assert "(within --config-budget 10 min, --budget 1 h 00 min)" in out
    assert not list(tmp_path.rglob("*.json"))
