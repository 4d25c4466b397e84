"""bench/gpu_suite.py: the GPU suite's script works before any GPU is there.

`--device cpu --small` runs every step of the suite on tiny sizes on the CPU; these tests run it
as a user would and read the result file it writes, and check that a failing or overrunning step
is recorded while the suite goes on.
"""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "gpu_suite.py"
STEPS = ("cuda-tests", "step-cost", "seed-repro", "dataset", "sweep", "batch-size", "faiss-gpu")


def _git_status() -> str:
    done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else "(not a git checkout)"


def _table(text: str) -> dict[str, str]:
    """The result file's summary: step name -> status."""
    rows = {}
    for line in text.split("\n\n")[1].splitlines()[1:]:
        name, status = re.match(r"(\S+)\s+(.*?)\s+[\d.]+s$", line).groups()
        rows[name] = status
    return rows


@pytest.mark.slow
def test_small_cpu_run_passes_and_records_every_step(tmp_path: Path) -> None:
    before = _git_status()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--small", "--out", str(tmp_path / "out"),
         "--scratch", str(tmp_path / "scratch")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [result] = (tmp_path / "out").glob("gpu-cpu-small-*.txt")
    text = result.read_text()
    assert "GPU: none visible to torch" in text and "faiss " in text and "torch " in text
    rows = _table(text)
    assert tuple(rows) == STEPS  # every step listed, in order
    assert all(status in ("passed", "skipped") for status in rows.values()), rows
    for name in rows:  # each step's section: its command, then what it printed
        assert re.search(rf"^=== {re.escape(name)}: .*\ncommand: python ", text, re.M), name
    assert "recall@1" in text  # the harness's runs printed their results into the file
    assert "--batch-size 1,100,1000" in text and re.search(r"^  bruteforce b=100 ", text, re.M), "the batch axis ran"
    assert "skipped: faiss" in text or "faiss-gpu-flat" in text  # the FAISS GPU step ran or said why not
    assert _git_status() == before  # nothing written into the repository


def _load_suite(monkeypatch: pytest.MonkeyPatch):
    spec = importlib.util.spec_from_file_location("gpu_suite_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_failed_and_timed_out_steps_are_recorded_and_the_suite_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = _load_suite(monkeypatch)
    py = suite.PY
    monkeypatch.setattr(suite, "steps", lambda args, scratch: [
        suite.Step("fails", [py, "-c", "print('about to fail'); raise SystemExit(3)"], 30),
        suite.Step("hangs", [py, "-c", "import time; print('waiting', flush=True); time.sleep(60)"], 1),
        suite.Step("works", [py, "-c", "print('done fine')"], 30),
        suite.Step("absent", [py, "-c", "pass"], 30, skip="no such library here"),
    ])
    code = suite.main(["--device", "cpu", "--small", "--out", str(tmp_path), "--scratch", str(tmp_path / "s")])
    assert code == 1
    [result] = tmp_path.glob("gpu-cpu-small-*.txt")
    text = result.read_text()
    assert _table(text) == {"fails": "FAILED (exit 3)", "hangs": "TIMED OUT after 1 s", "works": "passed", "absent": "skipped"}
    assert "about to fail" in text and "waiting" in text and "done fine" in text and "skipped: no such library here" in text


@pytest.mark.slow
def test_only_runs_the_named_steps_into_their_own_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = _load_suite(monkeypatch)
    py = suite.PY
    monkeypatch.setattr(suite, "steps", lambda args, scratch: [
        suite.Step("first", [py, "-c", "print(1)"], 30), suite.Step("second", [py, "-c", "print(2)"], 30),
    ])
    assert suite.main(["--device", "cpu", "--small", "--out", str(tmp_path), "--only", "second"]) == 0
    [result] = tmp_path.glob("gpu-cpu-small-*-second.txt")
    assert set(_table(result.read_text())) == {"second"}
    assert suite.main(["--device", "cpu", "--small", "--out", str(tmp_path), "--only", "nonsense"]) == 2
