"""The Ray executor on a local Ray instance with 2 CPUs (one per module, started once).

It must write the very records the local executor writes (deterministic adapters only:
faiss-flat, faiss-ivf with its seeded k-means, hnswlib with one thread), turn a dying
worker and a hang into failure records while the other records stay correct, resume a
rerun like the local executor, and stop its tasks on Ctrl-C. Without Ray installed it must
say how to install it.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness import records
from harness.cli import main
from processes import SMALL_SWEEP, SMALL_SWEEP_RECORDS, sweep_argv

pytestmark = pytest.mark.slow  # a local Ray instance per test

ROOT = Path(__file__).resolve().parent.parent
CRASH_PLUGIN = str(Path(__file__).with_name("crash_adapters.py"))
SWEEP, N_RECORDS = SMALL_SWEEP, SMALL_SWEEP_RECORDS
# A worker that leaves with os._exit in search: written as a plugin file, so the test also
# shows that workers import plugins given by path.
EXIT_PLUGIN = '''
import os
import numpy as np
from algorithms.base import Adapter, Param
from algorithms.registry import register


@register("ray-test-exit", description="test adapter: os._exit(1) in search when fail=true")
class ExitInSearch(Adapter):
    query_params = {"fail": Param(bool, False, "leave the process in search")}

    def _fit(self, X):
        self._X = X

    def _search(self, Q, k):
        if self.query_values["fail"]:
            os._exit(1)
        d = ((Q[:, None, :] - self._X[None]) ** 2).sum(-1)
        ids = np.argsort(d, axis=1, kind="stable")[:, :k]
        return ids, np.sqrt(np.take_along_axis(d, ids, 1))
'''


def test_without_ray_the_message_says_how_to_install_it(make_tiny_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    code = main(["--dataset", str(make_tiny_dataset()), "--ray", "--no-plots", "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--ray needs Ray, which is not installed" in err
    assert "pip install 'gpnn-harness[ray]'" in err and "Traceback" not in err
    assert not list(tmp_path.rglob("*.json"))


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module; the harness uses it and leaves it running."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def exit_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file for the module: a second file registering the same name would be refused."""
    plugin = tmp_path_factory.mktemp("plugin") / "exit_plugin.py"
    plugin.write_text(EXIT_PLUGIN)
    return plugin


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory, ray_instance) -> dict[str, Path]:
    """A tiny dataset, the sweep, the local executor's records and the Ray executor's."""
    from conftest import write_tiny_dataset

    root = tmp_path_factory.mktemp("ray")
    dataset = write_tiny_dataset(root / "ray-8-euclidean.hdf5", n_train=500, n_test=30)
    sweep = root / "sweep.yaml"
    sweep.write_text(SWEEP)
    case = {"dataset": dataset, "sweep": sweep, "local": root / "local", "ray": root / "ray"}
    assert main(sweep_argv(dataset, sweep, case["local"])) == 0
    started = time.monotonic()
    assert main([*sweep_argv(dataset, sweep, case["ray"]), "--ray"]) == 0
    print(f"ray sweep of {N_RECORDS} records: {time.monotonic() - started:.1f} s")
    return case


def _outcomes(results: Path) -> dict[str, tuple]:
    """What a record says that does not depend on the clock, by record file name."""
    found = {}
    for record in records.load_records(results):
        m = record["metrics"]
        ids = records.load_arrays(record)["ids"]
        found[Path(record["_path"]).name] = (record["status"], m["recall_at_1"], m["recall_at_k"], ids.tobytes())
    return found


def test_ray_writes_the_records_the_local_executor_writes(case):
    local, ray = _outcomes(case["local"]), _outcomes(case["ray"])
    assert len(local) == N_RECORDS and ray == local
    for record in records.load_records(case["ray"]):
        assert record["executor"] == "ray" and record["status"] == "ok"
        node = record["provenance"]
        assert node["hostname"] == socket.gethostname() and node["cpu_count"] == os.cpu_count()
        assert node["ray_node_id"] and "cpu_model" in node and "gpu_name" in node


def test_ray_keeps_the_progress_log_and_the_estimates_as_the_local_executor_does(case):
    """The ETA log (`progress.jsonl`) and each record's estimate beside its measured seconds:
    the same events on Ray as locally, each configuration counted from its task's start."""
    logs = {}
    for executor in ("local", "ray"):
        lines = [json.loads(line) for line in next(case[executor].rglob("progress.jsonl")).read_text().splitlines()]
        assert lines[0]["event"] == "plan" and lines[-1]["event"] == "end" and lines[-1]["fraction"] == 1.0
        logs[executor] = sorted((line["event"], line.get("entry"), line.get("part")) for line in lines)
        for record in records.load_records(case[executor]):
            assert record["estimated_s"] > 0 and record["measured_s"] >= 0, executor
    assert logs["ray"] == logs["local"]
    assert sum(event == "query" for event, _, _ in logs["ray"]) == N_RECORDS


def test_a_task_still_running_at_its_budget_deadline_is_cancelled_and_its_work_skipped(
    ray_instance, make_tiny_dataset, tmp_path, capsys, monkeypatch
):
    from harness.plan import budget
    from harness.run import isolation

    monkeypatch.setattr(budget, "DEADLINE_MIN_SLACK_S", 0.0)
    monkeypatch.setattr(isolation, "DEADLINE_GRACE_S", 0.5)
    sweep = tmp_path / "hang.yaml"
    sweep.write_text("crash-hang:\n  query: {fail: [false, true]}\n")
    argv = ["--dataset", str(make_tiny_dataset()), "--sweep", str(sweep), "--ray", "--plugins", CRASH_PLUGIN,
            "--runs", "1", "--config-budget", "20s", "--no-plots", "--no-progress", "--results-dir", str(tmp_path / "r")]
    assert main(argv) == 0  # the budget leaves a loaded machine time to start the task and finish the first
    out = capsys.readouterr().out
    assert "records: 1 written, 0 reused, 0 failed" in out and "skipped 1 query configuration(s)" in out
    by_fail = {r["query_params"]["fail"]: r for r in records.load_records(tmp_path / "r")}
    assert by_fail[False]["status"] == "ok" and by_fail[True]["status"] == "skipped"
    assert by_fail[True]["error"].startswith("skipped at run time: stopped at its build configuration's deadline of 30 s")


def test_a_rerun_recomputes_only_the_deleted_record(case, tmp_path, capsys):
    results = tmp_path / "results"
    shutil.copytree(case["ray"], results)
    [victim] = [p for p in results.rglob("*.json") if "faiss-ivf" in str(p) and "nprobe=4" in p.name][:1]
    def kept(p: Path) -> bool:  # every record but the victim (progress.jsonl is the latest run's log)
        return p.is_file() and p.stem != victim.stem and p.name != "progress.jsonl"

    before = {p: p.read_bytes() for p in results.rglob("*") if kept(p)}
    victim.unlink()
    victim.with_suffix(".h5").unlink()
    capsys.readouterr()
    assert main([*sweep_argv(case["dataset"], case["sweep"], results), "--ray"]) == 0
    assert f"records: 1 written, {N_RECORDS - 1} reused, 0 failed" in capsys.readouterr().out
    assert before == {p: p.read_bytes() for p in results.rglob("*") if kept(p)}
    assert _outcomes(results) == _outcomes(case["ray"])


CRASH_SWEEP = """
faiss-flat: {}
crash-segfault:
  query: {fail: [false, true]}
ray-test-exit:
  query: {fail: [false, true]}
crash-hang:
  query: {fail: [false, true]}
crash-raise-build: {}
"""


def test_dying_workers_and_hangs_become_failure_records(ray_instance, exit_plugin, make_tiny_dataset, tmp_path, capsys):
    sweep = tmp_path / "crashes.yaml"
    sweep.write_text(CRASH_SWEEP)
    results = tmp_path / "results"
    argv = ["--dataset", str(make_tiny_dataset(n_train=300, n_test=20)), "--sweep", str(sweep), "--ray",
            "--plugins", f"{CRASH_PLUGIN},{exit_plugin}", "--runs", "1", "--query-timeout", "3", "--no-plots",
            "--no-progress", "--results-dir", str(results)]
    assert main(argv) == 1
    assert "records: 4 written, 0 reused, 4 failed" in capsys.readouterr().out
    found: dict[str, dict[bool, dict]] = {}
    for record in records.load_records(results):
        found.setdefault(record["algorithm"], {})[record["query_params"].get("fail", False)] = record
    assert found["faiss-flat"][False]["status"] == "ok"
    for name in ("crash-segfault", "ray-test-exit", "crash-hang"):
        ok = found[name][False]
        assert ok["status"] == "ok" and ok["metrics"]["recall_at_1"] == 1.0, name  # kept although its worker died later
        assert records.load_arrays(ok)["ids"].shape == (20, 10)
    for name in ("crash-segfault", "ray-test-exit"):
        died = found[name][True]
        assert died["status"] == "failed", name
        assert died["error"].startswith("Ray worker process died (WorkerCrashedError") and "fail=True" in died["error"]
    assert found["crash-hang"][True]["status"] == "timeout"
    assert found["crash-hang"][True]["error"] == "timed out after 3 s in query configuration fail=True"
    assert "cannot be built (on purpose)" in found["crash-raise-build"][False]["error"]


def test_retries_resubmit_only_what_has_no_record(ray_instance, exit_plugin, make_tiny_dataset, tmp_path, capsys):
    sweep = tmp_path / "exit.yaml"
    sweep.write_text("ray-test-exit:\n  query: {fail: [false, true]}\n")
    argv = ["--dataset", str(make_tiny_dataset()), "--sweep", str(sweep), "--ray", "--retries", "1",
            "--plugins", str(exit_plugin), "--runs", "1", "--no-plots", "--no-progress", "--results-dir", str(tmp_path / "r")]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "RETRY ray-test-exit" in out and "(attempt 2 of 2, 1 query configuration(s) left)" in out
    assert "records: 1 written, 0 reused, 1 failed" in out


def test_threads_beyond_the_largest_node_are_refused(ray_instance, make_tiny_dataset, tmp_path, capsys):
    argv = ["--dataset", str(make_tiny_dataset()), "--algorithms", "faiss-flat", "--ray", "--threads", "3",
            "--no-plots", "--results-dir", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--threads 3 asks each Ray task for 3 CPUs, but the largest node of the Ray cluster has 2" in err


def test_ctrl_c_cancels_the_tasks_and_keeps_the_records(ray_instance, make_tiny_dataset, tmp_path, capsys):
    sweep = tmp_path / "hang.yaml"
    sweep.write_text("crash-hang:\n  query: {fail: [false, true]}\n")
    results = tmp_path / "results"
    argv = ["--dataset", str(make_tiny_dataset()), "--sweep", str(sweep), "--ray", "--plugins",
            CRASH_PLUGIN, "--runs", "1", "--no-plots", "--no-progress", "--results-dir", str(results)]

    def interrupt_after_the_first_record() -> None:
        end = time.monotonic() + 600  # generous: a loaded machine starts Ray slowly
        while not list(results.rglob("*.json")) and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.5)  # the hang is under way
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_after_the_first_record, daemon=True).start()
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted: 1 records written this run, 0 reused" in err and "Traceback" not in err
    assert [r["status"] for r in records.load_records(results)] == ["ok"]
    end = time.monotonic() + 120  # the hanging task was cancelled: its CPU comes back
    while ray_instance.available_resources().get("CPU", 0) < 2:
        assert time.monotonic() < end, "the hanging task still holds its CPU"
        time.sleep(0.2)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_tasks_and_the_local_instance(ray_instance, make_tiny_dataset, tmp_path, sig, code):
    """The command line's own local Ray instance: stopped with the harness, nothing left running."""
    sweep = tmp_path / "hang.yaml"
    sweep.write_text("crash-hang:\n  query: {fail: [false, true]}\n")
    results = tmp_path / "results"
    argv = ["--dataset", str(make_tiny_dataset()), "--sweep", str(sweep), "--ray", "--plugins",
            CRASH_PLUGIN, "--runs", "1", "--no-plots", "--no-progress", "--results-dir", str(results)]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run = subprocess.Popen([sys.executable, "-m", "harness", *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        end = time.monotonic() + 300
        while not list(results.rglob("*.json")) and run.poll() is None:
            assert time.monotonic() < end, "no record within 300 s"
            time.sleep(0.05)
        time.sleep(0.5)
        descendants = _descendants(run.pid)
        assert descendants, "a local Ray instance should run under the harness"
        run.send_signal(sig)
        _, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == code and "interrupted: 1 records written this run" in err
    end = time.monotonic() + 120
    while alive := [pid for pid in descendants if _running(pid)]:
        assert time.monotonic() < end, f"left running: {alive}"
        time.sleep(0.2)


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
