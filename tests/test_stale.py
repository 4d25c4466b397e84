"""A record knows the code that made it: records of changed code are stale, moved aside and
recomputed (or kept with --reuse-stale, and then marked by the report)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from algorithms.fingerprint import code_fingerprint, root_modules
from algorithms.potential import potentials
from algorithms.potential.adapter import adapter_class
from algorithms.registry import AlgorithmSpec
from harness import records
from harness.data.loader import open_dataset
from harness.report.summary import mark_stale, provenance_warnings, results_table, stale_warnings, summary_rows
from harness.plan import sweeps
from harness.run import provenance
from harness.run.executors import run_sweep
from harness.plan.options import RunOptions
from harness.plan.plan import choose, current_fingerprint, make_plan
from records_factory import make_document, write_one

ROOT = Path(__file__).resolve().parent.parent
SIFT = ROOT / "tests" / "data" / "siftsmall-128-euclidean.hdf5"

PLUGIN = '''"""An inverse multiquadric potential: a plugin of the stale-record tests."""
import torch

from algorithms.base import Param, positive
from algorithms.potential import radial_potential


@radial_potential(
    "imq",
    params={"c": Param(float, 0.5, "softening, scale units", positive)},
    sweep={"query": {"c": [0.5], "ascent": ["adam"], "rate": [0.05], "max_iters": [5]}},
)
def imq(r: torch.Tensor, c: float) -> torch.Tensor:
    """Inverse multiquadric 1 / sqrt(r^2 + c^2)."""
    return 1.0 / torch.sqrt(r * r + c * c)
'''
#: the same code: another docstring, a comment, other formatting
PLUGIN_REWORDED = '''"""The inverse multiquadric, described in other words."""
import torch

from algorithms.base import Param, positive
from algorithms.potential import radial_potential


@radial_potential("imq", params={"c": Param(float, 0.5, "softening, scale units", positive)},
                  sweep={"query": {"c": [0.5], "ascent": ["adam"], "rate": [0.05], "max_iters": [5]}})
def imq(r: torch.Tensor, c: float) -> torch.Tensor:
    """A heavy-tailed peak on every point."""
    # the softening keeps the peak finite on the point itself
    return 1.0 / torch.sqrt(r * r   +   c * c)
'''
#: another formula
PLUGIN_CHANGED = PLUGIN.replace("1.0 / torch.sqrt(r * r + c * c)", "1.0 / (r * r + c * c)")


# --- the fingerprint --------------------------------------------------------------------------


def _load_unregistered(path: Path, monkeypatch: pytest.MonkeyPatch) -> type:
    """The adapter class of the plugin at `path`, made as the registry would make it but without
    registering the potential (other tests of the session must not see it)."""
    monkeypatch.setattr(potentials, "register_potential", lambda potential: potential)
    name = "gpnn_plugin_imq_0123abcd"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return adapter_class(module.imq)


def test_the_fingerprint_ignores_docstrings_comments_and_formatting_but_not_a_formula(tmp_path, monkeypatch):
    plugin = tmp_path / "imq.py"
    plugin.write_text(PLUGIN)
    adapter = _load_unregistered(plugin, monkeypatch)
    spec = AlgorithmSpec(name="potential-imq", adapter=adapter)
    # the plugin file (where the formula lives) is one of the modules that define the algorithm
    assert "gpnn_plugin_imq_0123abcd" in root_modules(adapter)
    assert {"algorithms.potential.adapter", "algorithms.potential.potentials", "algorithms.base"} <= set(root_modules(adapter))
    first = code_fingerprint(spec)
    plugin.write_text(PLUGIN_REWORDED)
    assert code_fingerprint(spec) == first
    plugin.write_text(PLUGIN_CHANGED)
    assert code_fingerprint(spec) != first
    plugin.write_text(PLUGIN)
    assert code_fingerprint(spec) == first


def _load_module(name: str, path: Path, monkeypatch: pytest.MonkeyPatch):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # gone again after the test
    spec.loader.exec_module(module)
    return module


def test_the_fingerprint_follows_the_project_modules_a_module_imports(tmp_path, monkeypatch):
    """A change in a helper module that the adapter's module imports changes the fingerprint."""
    helper = tmp_path / "helper.py"
    helper.write_text("def scale(x):\n    return 2 * x\n")
    main = tmp_path / "main.py"
    main.write_text("from gpnn_plugin_helper_11 import scale\n\n\nclass Adapter:\n    pass\n")
    _load_module("gpnn_plugin_helper_11", helper, monkeypatch)
    spec = AlgorithmSpec(name="x", adapter=_load_module("gpnn_plugin_main_22", main, monkeypatch).Adapter)
    first = code_fingerprint(spec)
    helper.write_text("def scale(x):\n    return 3 * x\n")
    assert code_fingerprint(spec) != first


# --- the plan and the runner, in this process ----------------------------------------------------


@pytest.fixture
def tiny(make_tiny_dataset):
    return open_dataset(str(make_tiny_dataset(n_train=300, n_test=20, dim=8)), progress=False)


def _run(dataset, results_dir, **option_values):
    configs = sweeps.expand(sweeps.default_entries(["bruteforce"]), dataset.n_train)
    options = RunOptions(results_dir=results_dir, progress=False, runs=1, **option_values)
    lines: list[str] = []
    summary = run_sweep(dataset, configs, options, provenance.collect(1), report=lines.append)
    return summary, lines, make_plan(dataset, configs, options).lines(dataset.n_test, dataset.dimension)


def _rewrite(path: Path, change) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_a_record_of_other_code_is_moved_aside_and_recomputed(tiny, tmp_path):
    first, _, _ = _run(tiny, tmp_path)
    [path] = first.written
    made = records.read_record(path)
    assert made["code_fingerprint"] and len(made["code_fingerprint"]) == 16
    again, _, plan = _run(tiny, tmp_path)
    assert again.reused == [path] and not again.written and not any("stale" in line for line in plan)

    _rewrite(path, lambda d: d.update(code_fingerprint="0" * 16))  # as if the code changed since
    plan = make_plan(tiny, sweeps.expand(sweeps.default_entries(["bruteforce"]), tiny.n_train),
                     RunOptions(results_dir=tmp_path, progress=False, runs=1)).lines(tiny.n_test, tiny.dimension)
    assert any("1 stale: the code of bruteforce changed since they were made" in line for line in plan)
    third, lines, _ = _run(tiny, tmp_path)
    assert third.written == [path] and not third.reused
    [moved] = third.superseded
    assert moved == path.parent / "superseded" / path.name and moved.with_suffix(".h5").is_file()
    assert json.loads(moved.read_text())["code_fingerprint"] == "0" * 16  # kept as it was, never deleted
    assert any("moved to" in line and "superseded" in line for line in lines)
    assert records.read_record(path)["code_fingerprint"] == made["code_fingerprint"]
    # readers of records never look into superseded/
    assert [r["_path"] for r in records.load_records(tmp_path)] == [str(path)]
    assert list(records.iter_record_files(tmp_path, tiny.name)) == [path]


def test_force_recomputes_and_still_moves_a_stale_record_aside(tiny, tmp_path):
    [path] = _run(tiny, tmp_path)[0].written
    _rewrite(path, lambda d: d.update(code_fingerprint="0" * 16))
    summary, _, _ = _run(tiny, tmp_path, force=True)
    assert summary.written == [path] and summary.superseded == [path.parent / "superseded" / path.name]


def test_a_second_superseded_record_of_the_same_configuration_keeps_the_first(tiny, tmp_path):
    [path] = _run(tiny, tmp_path)[0].written
    for _ in range(2):
        _rewrite(path, lambda d: d.update(code_fingerprint="0" * 16))
        _run(tiny, tmp_path)
    folder = path.parent / "superseded"
    assert (folder / path.name).is_file() and (folder / "2" / path.name).is_file()
    assert (folder / "2" / path.with_suffix(".h5").name).is_file()


def test_a_record_from_before_fingerprints_counts_as_stale(tiny, tmp_path):
    [path] = _run(tiny, tmp_path)[0].written

    def to_v3(document):
        document["schema"] = "gpnn-record/3"
        del document["code_fingerprint"], document["controls"]

    _rewrite(path, to_v3)
    assert records.read_record(path)["code_fingerprint"] is None
    summary, _, _ = _run(tiny, tmp_path, retry_failed=False)
    assert summary.written == [path] and len(summary.superseded) == 1


def test_the_plan_says_once_that_records_predate_fingerprints(tiny, tmp_path):
    [path] = _run(tiny, tmp_path)[0].written
    _rewrite(path, lambda d: d.update(code_fingerprint=None))
    plan = make_plan(tiny, sweeps.expand(sweeps.default_entries(["bruteforce"]), tiny.n_train),
                     RunOptions(results_dir=tmp_path, progress=False, runs=1)).lines(tiny.n_test, tiny.dimension)
    assert sum("predate code fingerprints" in line for line in plan) == 1


def test_reuse_stale_keeps_them_and_the_plan_says_how_many(tiny, tmp_path):
    [path] = _run(tiny, tmp_path)[0].written
    _rewrite(path, lambda d: d.update(code_fingerprint="0" * 16))
    summary, _, plan = _run(tiny, tmp_path, reuse_stale=True)
    assert summary.reused == [path] and summary.stale_kept == [path] and not summary.written
    assert not (path.parent / "superseded").exists()
    assert any("1 stale kept (--reuse-stale)" in line and "bruteforce" in line for line in plan)


def test_a_stale_record_on_fewer_queries_goes_when_the_configuration_is_computed(tiny, tmp_path):
    """An earlier run on the first 10 queries, of other code: a run on all 20 moves it aside
    (it would stand beside the new record in the report)."""
    [fewer] = _run(tiny, tmp_path, queries=10)[0].written
    _rewrite(fewer, lambda d: d.update(code_fingerprint="0" * 16))
    summary, _, _ = _run(tiny, tmp_path)
    assert len(summary.written) == 1 and summary.written[0] != fewer and not summary.reused
    assert summary.superseded == [fewer.parent / "superseded" / fewer.name] and not fewer.exists()


def test_a_stale_record_on_more_queries_is_not_reused_in_place_of_a_new_one(tiny, tmp_path):
    """The plan's rule: a record of other code on more queries (an earlier run with more time)
    is not reused; it is listed to be moved aside. A current one is reused."""
    [full] = _run(tiny, tmp_path)[0].written
    config = sweeps.expand(sweeps.default_entries(["bruteforce"]), tiny.n_train)[0]
    options = RunOptions(results_dir=tmp_path, progress=False, runs=1)
    current = current_fingerprint(config)
    choice = choose(tiny, config, {}, options, 10, 10, 20, "cpu", current)
    assert choice.action == "reuse" and choice.reused == full and not choice.stale
    _rewrite(full, lambda d: d.update(code_fingerprint="0" * 16))
    choice = choose(tiny, config, {}, options, 10, 10, 20, "cpu", current)
    assert choice.action == "compute" and choice.stale == [full]


# --- the report's word on stale records and mixed provenance --------------------------------------


def _records_of(tmp_path: Path) -> list[dict]:
    rng = np.random.default_rng(0)
    current = make_document("d", "hnswlib", {"M": 8}, {"ef": 10}, 0.9, 1000.0)
    current["code_fingerprint"] = "a" * 16
    old = make_document("d", "hnswlib", {"M": 8}, {"ef": 20}, 0.95, 800.0)
    old["code_fingerprint"] = "b" * 16
    other = make_document("d", "bruteforce", {}, {}, 1.0, 100.0)
    other["provenance"] = {**other["provenance"], "hostname": "other-host",
                           "libraries": {**other["provenance"]["libraries"], "numpy": "1.26.0"}}
    for document in (current, old, other):
        write_one(tmp_path, document, rng)
    return records.load_records(tmp_path)


def test_the_summary_marks_stale_records_and_names_their_series(tmp_path):
    found = _records_of(tmp_path)
    notes = mark_stale(found, {"hnswlibAdapter": "a" * 16})
    assert notes and "bruteforce" in notes[0] and "not judged" in notes[0]  # its code is not loaded
    stale = {r["query_params"].get("ef") for r in found if r.get("_stale")}
    assert stale == {20}
    rows = summary_rows(found, [0.9, 0.95])
    by = {(r["series"], r["threshold"]): r["stale"] for r in rows}
    assert by[("hnswlib", 0.95)] == "stale" and by[("hnswlib", 0.9)] is None and by[("bruteforce", 0.9)] is None
    assert sum(1 for r in results_table(found) if r["stale"] == "stale") == 1
    [warning] = stale_warnings(found)
    assert "hnswlib (1 record)" in warning and "bruteforce" not in warning


def test_mixed_library_versions_and_machines_are_warned_with_counts(tmp_path):
    lines = provenance_warnings(_records_of(tmp_path))
    assert any("library versions" in line and "numpy 1.26.0 (1 record), 2.4.6 (2 records)" in line for line in lines)
    assert any("machines" in line and "hostname bench-host (2 records), other-host (1 record)" in line for line in lines)
    assert not any("cpu_model" in line or "faiss" in line for line in lines)


def test_the_report_page_warns_of_stale_records_and_mixed_provenance(tmp_path):
    from harness.report.page import write_report

    found = _records_of(tmp_path / "results")
    mark_stale(found, {"hnswlibAdapter": "a" * 16, "bruteforceAdapter": found[0]["code_fingerprint"] or ""})
    page = write_report(found, tmp_path / "plots", "d", [], static=True).read_text()
    assert "Warnings" in page and "stale records" in page and "hnswlib (1 record)" in page
    assert "numpy 1.26.0 (1 record)" in page


# --- end to end: a plugin potential edited between two runs of the same command -------------------


def _harness(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("GPNN_PLUGINS", None)
    done = subprocess.run([sys.executable, "-m", "harness", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _run_plugin(plugin: Path, results: Path, *extra: str) -> str:
    return _harness("--dataset", str(SIFT), "--algorithms", "potential-imq", "--plugins", str(plugin), "--queries", "20",
                    "--runs", "1", "--workers", "0", "--no-plots", "--no-progress", "--results-dir", str(results),
                    *extra).stdout


def _by_name(results: Path) -> dict[str, dict]:
    return {Path(r["_path"]).name: r for r in records.load_records(results)}


def _plugin_run_once(tmp_path):
    """A plugin potential run once: its file, the results directory, the records by file name."""
    plugin, results = tmp_path / "imq.py", tmp_path / "results"
    plugin.write_text(PLUGIN)
    _run_plugin(plugin, results)
    return plugin, results, _by_name(results)


@pytest.mark.slow
def test_editing_a_plugin_potential_recomputes_its_records(tmp_path):
    plugin, results, before = _plugin_run_once(tmp_path)
    assert len(before) == 2 and all(r["code_fingerprint"] for r in before.values())  # the method and its control

    plugin.write_text(PLUGIN_REWORDED)  # docstrings, a comment, formatting: the same code
    out = _run_plugin(plugin, results)
    assert "0 written, 2 reused" in out and "stale" not in out

    plugin.write_text(PLUGIN_CHANGED)
    out = _run_plugin(plugin, results)
    assert "2 stale: the code of potential-imq changed since they were made" in out
    assert "2 written, 0 reused" in out and "superseded" in out
    after = _by_name(results)
    folder = results / SIFT.stem / "potential-imq" / "superseded"
    assert sorted(p.name for p in folder.glob("*.json")) == sorted(before) and len(list(folder.glob("*.h5"))) == 2
    assert {r["code_fingerprint"] for r in after.values()}.isdisjoint({r["code_fingerprint"] for r in before.values()})
    method = next(name for name, r in before.items() if r["role"] == "method")
    assert after[method]["metrics"]["position_to_true_nn_median"] != before[method]["metrics"]["position_to_true_nn_median"]


@pytest.mark.slow
def test_reuse_stale_keeps_the_records_and_the_summary_marks_them(tmp_path):
    plugin, results, before = _plugin_run_once(tmp_path)
    plugin.write_text(PLUGIN_CHANGED)
    out = _run_plugin(plugin, results, "--reuse-stale")
    assert "2 stale kept (--reuse-stale)" in out and "0 written, 2 reused" in out
    assert _by_name(results).keys() == before.keys() and not (results / SIFT.stem / "potential-imq" / "superseded").exists()
    summary = _harness("results", "--dataset", str(SIFT), "--summary", "--plugins", str(plugin),
                       "--results-dir", str(results)).stdout
    assert "stale records, made by code that has changed since" in summary and "potential-imq (1 record)" in summary
    assert "potential-imq [ascent=none] (1 record)" in summary
    unloaded = _harness("results", "--dataset", str(SIFT), "--summary", "--results-dir", str(results))
    assert "not judged" in unloaded.stderr and "potential-imq" in unloaded.stderr
