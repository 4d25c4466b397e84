"""Process isolation: a segfault, a hang and an exception each end one configuration, not the sweep."""
from __future__ import annotations

import pytest

import signal
from dataclasses import replace
from pathlib import Path

from harness import records
from harness.cli import main
from harness.run import isolation
from harness.run.isolation import child_events, describe_exit
from harness.measure.job import BuildJob, Deadline, MeasureOptions
from harness.measure.measure import BuildFailed, Built
from harness.measure.plugins import plugin_list

pytestmark = pytest.mark.slow  # child processes: segfaults, hangs, signals

CRASH_PLUGIN = str(Path(__file__).with_name("crash_adapters.py"))

SWEEP = """
faiss-flat: {}
crash-segfault:
  query: {fail: [false, true]}
crash-hang:
  query: {fail: [false, true]}
crash-raise-build: {}
"""


def _by_algorithm(results: Path) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for record in records.load_records(results):
        found.setdefault(record["algorithm"], []).append(record)
    return found


def test_segfault_hang_and_exception_become_failure_records(make_tiny_dataset, tmp_path, capsys):
    dataset = make_tiny_dataset(n_train=300, n_test=20)
    sweep = tmp_path / "crashes.yaml"
    sweep.write_text(SWEEP)
    results = tmp_path / "results"
    argv = ["--dataset", str(dataset), "--sweep", str(sweep), "--plugins", CRASH_PLUGIN, "--runs", "1",
            "--timeout", "60", "--query-timeout", "2", "--no-plots", "--no-progress", "--results-dir", str(results)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "records: 3 written, 0 reused, 3 failed" in out
    assert "crash-segfault fail=False" in out and "recall@1 1.0000" in out  # progress lines as configs finish

    found = _by_algorithm(results)
    assert [r["status"] for r in found["faiss-flat"]] == ["ok"]
    for name in ("crash-segfault", "crash-hang"):
        ok = [r for r in found[name] if not r["query_params"]["fail"]]
        assert [r["status"] for r in ok] == ["ok"], name  # kept although a later configuration died
        assert ok[0]["metrics"]["recall_at_1"] == 1.0 and ok[0]["isolation"] == "process"
        assert records.load_arrays(ok[0])["ids"].shape == (20, 10)
    [segv] = [r for r in found["crash-segfault"] if r["query_params"]["fail"]]
    assert segv["status"] == "failed"
    assert segv["error"] == "child process died with signal SIGSEGV in query configuration fail=True"
    [hang] = [r for r in found["crash-hang"] if r["query_params"]["fail"]]
    assert hang["status"] == "timeout"
    assert hang["error"] == "timed out after 2 s in query configuration fail=True"
    [raised] = found["crash-raise-build"]
    assert raised["status"] == "failed" and "RuntimeError: this index cannot be built (on purpose)" in raised["error"]

    # The rerun keeps the three failures (no child is started for them) and says how to retry.
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "records: 0 written, 3 reused, 0 failed" in out
    assert "skipped 3 configuration(s)" in out and "--retry-failed" in out
    assert before == {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}


def test_a_child_stopped_from_outside_leaves_no_record(make_tiny_dataset, tmp_path, capsys):
    """SIGTERM to the child alone is an interruption, not a failure: nothing is recorded for
    the configuration it was on, so the next run computes it instead of skipping it."""
    sweep = tmp_path / "stopped.yaml"
    sweep.write_text("crash-stopped:\n  query: {fail: [false, true]}\nfaiss-flat: {}\n")
    argv = ["--dataset", str(make_tiny_dataset()), "--sweep", str(sweep), "--plugins", CRASH_PLUGIN, "--runs", "1",
            "--no-plots", "--no-progress", "--results-dir", str(tmp_path / "r")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "STOPPED crash-stopped: child process died with signal SIGTERM" in out
    assert "records: 2 written, 0 reused, 0 failed" in out
    assert sorted(r["algorithm"] for r in records.load_records(tmp_path / "r")) == ["crash-stopped", "faiss-flat"]


def _job(path: Path, algorithm: str, module: str, qualname: str) -> BuildJob:
    return BuildJob(
        dataset_path=str(path), dataset_name=path.stem, entry=algorithm, algorithm=algorithm, adapter_module=module,
        adapter_qualname=qualname, build_params={}, query_params=[{}], options=MeasureOptions(runs=1), n_queries=5,
        device="cpu", plugins=(CRASH_PLUGIN,),
    )


def test_a_hanging_build_times_out(make_tiny_dataset):
    job = _job(make_tiny_dataset(n_train=50, n_test=5), "crash-hang-build", "gpnn_plugin_crash_adapters", "HangInBuild")
    [event] = list(child_events(job, timeout=1.5, query_timeout=30))
    assert isinstance(event, BuildFailed) and event.status == "timeout"
    assert event.reason == "timed out after 1.5 s in the build"


def test_a_child_still_running_at_its_deadline_is_stopped_and_its_work_recorded_as_skipped(make_tiny_dataset, monkeypatch):
    """The worker keeps to a deadline between query configurations; one that hangs inside a
    search is stopped by the parent DEADLINE_GRACE_S after it: skipped (a later run with more
    time computes it), not failed. Without the deadline, the same hang is a timeout."""
    monkeypatch.setattr(isolation, "DEADLINE_GRACE_S", 0.5)
    job = _job(make_tiny_dataset(n_train=50, n_test=5), "crash-hang", "gpnn_plugin_crash_adapters", "Hang")
    job = replace(job, query_params=[{"fail": True}, {"fail": False}],
                  deadline=Deadline(6.0, "1.5 x the test's budget of 4.0 s", (0.0, 0.0)))
    built, hung, rest = list(child_events(job, timeout=60, query_timeout=60))
    assert isinstance(built, Built)
    assert (hung.index, hung.status) == (0, "skipped")
    assert hung.reason == ("skipped at run time: stopped at its build configuration's deadline of 6 s (1.5 x the test's "
                           "budget of 4.0 s); a larger --config-budget or --budget runs it in query configuration fail=True")
    assert (rest.index, rest.status) == (1, "skipped") and rest.reason.startswith("not run: the child process was stopped")
    without = list(child_events(replace(job, deadline=None), timeout=60, query_timeout=3))
    assert [e.status for e in without[1:]] == ["timeout", "failed"]


def test_an_algorithm_the_child_cannot_find_is_explained(make_tiny_dataset):
    job = _job(make_tiny_dataset(n_train=50, n_test=5), "crash-does-not-exist", "nowhere", "Nothing")
    [event] = list(child_events(job, timeout=30, query_timeout=30))
    assert isinstance(event, BuildFailed) and event.status == "failed"
    assert "'crash-does-not-exist' is not registered in the child process" in event.reason
    assert "--plugins" in event.reason


def test_exit_descriptions_name_the_signal():
    assert describe_exit(-signal.SIGSEGV) == "child process died with signal SIGSEGV"
    assert "out-of-memory" in describe_exit(-signal.SIGKILL)
    assert describe_exit(3) == "child process exited with code 3"


def test_plugins_come_from_the_option_and_the_environment(monkeypatch):
    monkeypatch.setenv("GPNN_PLUGINS", "b, c,")
    assert plugin_list("a,b") == ("a", "b", "c")
    monkeypatch.delenv("GPNN_PLUGINS")
    assert plugin_list(None) == ()


def test_unknown_plugin_is_a_clear_error(make_tiny_dataset, tmp_path, capsys):
    code = main(["--dataset", str(make_tiny_dataset()), "--plugins", "no_such_module_xyz", "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot import plugin 'no_such_module_xyz'" in err and "Traceback" not in err
