"""The plan decides once per run and the runner acts on that decision: each existing record is
read (and its checksum verified) once per run, however many times the plan sizes the run."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from harness import records
from harness.data.loader import open_dataset
from harness.plan import sweeps
from harness.plan.options import RunOptions
from harness.run import provenance
from harness.run.executors import run_sweep

SWEEP = """
faiss-flat: {}
hnswlib:
  build: {M: [8]}
  query: {ef: [10, 20]}
"""


@pytest.fixture
def tiny(make_tiny_dataset):
    return open_dataset(str(make_tiny_dataset(n_train=400, n_test=30, dim=8)), progress=False)


def _run(dataset, results_dir: Path, sweep_file: Path, **option_values):
    configs = sweeps.expand(sweeps.read_sweep_file(sweep_file), dataset.n_train)
    options = RunOptions(results_dir=results_dir, progress=False, runs=1, **option_values)
    return run_sweep(dataset, configs, options, provenance.collect(1), report=lambda line: None)


def _counting_reads(monkeypatch) -> Counter:
    reads: Counter = Counter()
    real = records.read_record

    def counted(path, *args, **kwargs):
        reads[Path(path)] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(records, "read_record", counted)
    return reads


@pytest.mark.parametrize("budget", [{}, {"config_budget": 3600.0, "budget": 7200.0}])
def test_each_record_is_read_once_per_run(tiny, tmp_path, monkeypatch, budget):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP)
    first = _run(tiny, tmp_path / "results", sweep, **budget)
    assert len(first.written) == 3
    reads = _counting_reads(monkeypatch)
    again = _run(tiny, tmp_path / "results", sweep, **budget)
    assert sorted(again.reused) == sorted(first.written) and not again.written
    assert {path: reads[path] for path in first.written} == {path: 1 for path in first.written}
    assert all(count == 1 for count in reads.values()), reads


def test_the_runner_acts_on_the_plans_decision(tiny, tmp_path, monkeypatch):
    """What the plan decided is what the runner does: a record the plan saw as reusable is
    reused even if it went away after the plan was made (the runner does not look again)."""
    from harness.plan import plan as plan_module

    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("faiss-flat: {}\n")
    [written] = _run(tiny, tmp_path / "results", sweep).written
    made = []
    real = plan_module.make_plan

    def make_and_remove(*args, **kwargs):
        made.append(real(*args, **kwargs))
        written.unlink()  # after the plan: the runner must not decide again from the disk
        return made[-1]

    monkeypatch.setattr("harness.run.runner.make_plan", make_and_remove)
    summary = _run(tiny, tmp_path / "results", sweep)
    assert made and summary.reused == [written] and not summary.written
