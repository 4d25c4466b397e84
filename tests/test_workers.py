"""Where builds run is one choice: `--workers N` (N child processes; 0: this process) or `--ray
[ADDRESS]`. Every way writes the same records through the same plan and recorder; the flags
they replace still work for one release, each with a note saying what to use instead."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from harness import records
from harness.cli import main, run_parser
from harness.commands import where_it_runs
from harness.errors import HarnessError
from processes import SMALL_SWEEP, SMALL_SWEEP_RECORDS, sweep_argv


def _outcomes(results: Path) -> dict[str, tuple]:
    """What a record says that does not depend on the clock or on where it ran, by identity."""
    found = {}
    for record in records.load_records(results):
        ids = records.load_arrays(record)["ids"]
        found[(Path(record["_path"]).name, record["key"])] = (record["status"], record["metrics"]["recall_at_1"], ids.tobytes())
    return found


def _where(results: Path) -> set[tuple]:
    return {(r["isolation"], r["executor"], r["provenance"]["parallel"]) for r in records.load_records(results)}


@pytest.mark.slow
def test_every_way_of_running_writes_the_same_records(make_tiny_dataset, tmp_path):
    ray = pytest.importorskip("ray")
    dataset = make_tiny_dataset(n_train=400, n_test=20)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SMALL_SWEEP)
    ways = {"w0": ["--workers", "0"], "w1": ["--workers", "1"], "w2": ["--workers", "2"], "ray": ["--ray"]}
    for name, flags in ways.items():
        if name == "ray":  # a local instance of 2 CPUs, as tests/test_ray.py starts; the harness leaves it running
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        try:
            assert main(sweep_argv(dataset, sweep, tmp_path / name, *flags)) == 0, name
        finally:
            if name == "ray":
                ray.shutdown()
    outcomes = {name: _outcomes(tmp_path / name) for name in ways}
    assert len(outcomes["w1"]) == SMALL_SWEEP_RECORDS
    for name in ways:
        assert outcomes[name] == outcomes["w1"], name
    assert _where(tmp_path / "w0") == {("none", "local", 1)}
    assert _where(tmp_path / "w1") == {("process", "local", 1)}
    assert _where(tmp_path / "w2") == {("process", "local", 2)}
    assert _where(tmp_path / "ray") == {("process", "ray", 1)}


def _settle(*flags: str) -> tuple[int, str | None]:
    args = run_parser().parse_args(["--dataset", "x", *flags])
    where_it_runs(args)
    return args.workers, args.ray


@pytest.mark.parametrize(("flags", "workers", "ray"), [
    ((), 1, None),
    (("--workers", "0"), 0, None),
    (("--workers", "3"), 3, None),
    (("--ray",), 1, ""),
    (("--ray", "HEAD:6379"), 1, "HEAD:6379"),
])
def test_workers_and_ray_say_where_builds_run(flags, workers, ray, capsys):
    assert _settle(*flags) == (workers, ray)
    assert "deprecated" not in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "workers", "ray", "instead"), [
    (("--isolation", "none"), 0, None, "use --workers 0"),
    (("--isolation", "process"), 1, None, "use --workers N"),
    (("--parallel", "3"), 3, None, "use --workers 3"),
    (("--executor", "ray"), 1, "", "use --ray"),
    (("--executor", "ray", "--ray-address", "HEAD:6379"), 1, "HEAD:6379", "use --ray HEAD:6379"),
    (("--executor", "local"), 1, None, "use no flag"),
])
def test_the_old_flags_still_work_with_a_note_saying_what_to_use(flags, workers, ray, instead, capsys):
    assert _settle(*flags) == (workers, ray)
    notes = capsys.readouterr().err.strip().splitlines()
    assert len(notes) == 1 and instead in notes[0], notes
    assert notes[0].startswith(f"note: {' '.join(flags)} is deprecated")


@pytest.mark.parametrize("flags", [
    ("--ray-address", "HEAD:6379"),
    ("--isolation", "none", "--parallel", "2"),
    ("--workers", "2", "--parallel", "3"),
    ("--workers", "2", "--ray"),
])
def test_flags_that_contradict_each_other_are_refused(flags):
    with pytest.raises(HarnessError):
        _settle(*flags)


@pytest.mark.slow
def test_an_old_flag_runs_as_its_new_one(make_tiny_dataset, tmp_path, capsys):
    argv = ["--dataset", str(make_tiny_dataset()), "--algorithms", "faiss-flat", "--runs", "1", "--no-plots",
            "--no-progress", "--results-dir", str(tmp_path), "--isolation", "none"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "note: --isolation none is deprecated and goes in the next release; use --workers 0" in captured.err
    assert "in this process (--workers 0)" in captured.out
    assert _where(tmp_path) == {("none", "local", 1)}
