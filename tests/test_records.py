"""The record store: atomic, checksummed, plain files; incomplete records never read as valid."""
import json
import os
import stat

import h5py
import numpy as np
import pytest

from harness import records
from harness.errors import HarnessError
from records_factory import make_document


def _write(tmp_path, stem="a", **extra):
    doc = make_document("d", "x", {}, {}, 0.5, 10.0)
    doc = {**doc, "metrics": {"recall_at_1": 0.5, "bad": float("nan")}, **extra}
    arrays = {"ids": np.arange(6).reshape(3, 2), "iterations": np.array([1, 2, 3])}
    return records.write_record(tmp_path / "d" / "x", stem, doc, arrays)


def test_roundtrip_is_plain_json_and_hdf5(tmp_path):
    path = _write(tmp_path)
    raw = json.loads(path.read_text())  # strict JSON, readable without this code
    assert raw["metrics"]["bad"] is None and raw["schema"] == records.SCHEMA
    with h5py.File(path.with_suffix(".h5")) as handle:
        assert handle["ids"].shape == (3, 2)
    doc = records.read_record(path)
    assert records.load_arrays(doc)["iterations"].tolist() == [1, 2, 3]
    assert [d["_path"] for d in records.load_records(tmp_path, "d")] == [str(path)]


def test_corrupt_arrays_or_json_are_incomplete(tmp_path):
    path = _write(tmp_path)
    path.with_suffix(".h5").write_bytes(b"garbage")
    with pytest.raises(records.IncompleteRecord, match="checksum"):
        records.read_record(path)
    path2 = _write(tmp_path, stem="b")
    path2.write_text(path2.read_text()[:20])
    problems: list[str] = []
    assert records.load_records(tmp_path, "d", problems=problems) == []
    assert len(problems) == 2


def test_no_temporary_files_left_and_keys_stable(tmp_path):
    _write(tmp_path)
    assert sorted(p.name for p in (tmp_path / "d" / "x").iterdir()) == ["a.h5", "a.json"]
    k1 = records.record_key("alg", {"a": 1, "b": 2}, {"q": 3}, "batch", 10, 100)
    k2 = records.record_key("alg", {"b": 2, "a": 1}, {"q": 3}, "batch", 10, 100)
    assert k1 == k2 and k1 != records.record_key("alg", {"a": 1, "b": 2}, {"q": 4}, "batch", 10, 100)


def test_names_cannot_escape_the_results_dir(tmp_path):
    d = records.record_dir(tmp_path, "../../etc", "../x")
    assert tmp_path in d.resolve().parents


def test_unwritable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(HarnessError, match="cannot write results"):
        records.write_record(blocker / "sub", "a", make_document("d", "x", {}, {}, 0.5, 10.0), {})


def test_device_and_threads_are_part_of_the_identity():
    base = ("alg", {"a": 1}, {"q": 3}, "batch", 10, 100)
    keys = {records.record_key(*base), records.record_key(*base, "cuda", 1), records.record_key(*base, "cpu", 2)}
    assert len(keys) == 3


# -- the declared schema and its migrations ----------------------------------------------------
def _tiny_run(make_tiny_dataset, results_dir, names=("bruteforce",)):
    from harness.data.loader import open_dataset
    from harness.plan import sweeps
    from harness.run import provenance
    from harness.plan.options import RunOptions
    from harness.run.executors import run_sweep

    dataset = open_dataset(str(make_tiny_dataset(n_train=300, n_test=10)), progress=False)
    configs = sweeps.expand(sweeps.default_entries(list(names)), dataset.n_train)
    options = RunOptions(results_dir=results_dir, progress=False, runs=1)
    return run_sweep(dataset, configs, options, provenance.collect(1), report=lambda _: None)


def test_a_version_1_record_is_migrated_and_reused_never_recomputed(make_tiny_dataset, tmp_path):
    [path] = _tiny_run(make_tiny_dataset, tmp_path).written
    document = json.loads(path.read_text())
    for name in ("role", "control_switch", "control_query_params", "revision"):  # what version 1 lacked
        document.pop(name, None)
    document["schema"] = "gpnn-record/1"
    path.write_text(json.dumps(document))
    written_before = path.read_bytes()
    migrated = records.read_record(path)
    assert migrated["schema"] == records.SCHEMA and migrated["role"] is None and migrated["revision"] == 0
    again = _tiny_run(make_tiny_dataset, tmp_path)
    assert again.reused == [path] and again.written == []
    assert path.read_bytes() == written_before  # migrated in memory, the file left as it was


def test_a_record_of_a_newer_schema_is_left_alone(make_tiny_dataset, tmp_path):
    [path] = _tiny_run(make_tiny_dataset, tmp_path).written
    document = json.loads(path.read_text())
    document["schema"] = f"gpnn-record/{records.SCHEMA_VERSION + 1}"
    path.write_text(json.dumps(document))
    with pytest.raises(records.UnknownSchema, match="newer"):
        records.read_record(path)
    again = _tiny_run(make_tiny_dataset, tmp_path)
    assert again.written == [] and again.skipped == [path]
    assert json.loads(path.read_text())["schema"] == document["schema"]


@pytest.mark.slow
def test_a_real_record_and_a_factory_record_have_the_same_fields(make_tiny_dataset, tmp_path):
    summary = _tiny_run(make_tiny_dataset, tmp_path / "real", names=("bruteforce", "potential-gaussian"))
    real = [json.loads(p.read_text()) for p in summary.written]
    factory = make_document("d", "x", {}, {}, 0.5, 10.0)
    expected = set(records.FIELD_NAMES)
    assert all(set(doc) == expected for doc in real)
    assert set(factory) | {"schema", "arrays"} == expected


def test_an_undeclared_field_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="unknown fields \\['colour'\\]"):
        records.write_record(tmp_path / "d", "a", {**make_document("d", "x", {}, {}, 0.5, 10.0), "colour": "red"}, {})
    with pytest.raises(ValueError, match="record field 'k'"):
        records.new_document(**{**make_document("d", "x", {}, {}, 0.5, 10.0), "k": "ten"})
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o027, 0o640)])
def test_record_files_are_readable_as_the_umask_allows(tmp_path, umask, expected):
    """Colleagues read the records (the JSON and its arrays) as a file made with open() would
    let them, not mkstemp's owner-only 0600."""
    old = os.umask(umask)
    try:
        path = _write(tmp_path)
    finally:
        os.umask(old)
    for written in (path, path.with_suffix(".h5")):
        assert stat.S_IMODE(written.stat().st_mode) == expected, (written, oct(written.stat().st_mode))


def test_the_umask_is_read_without_proc_too(monkeypatch):
    """Where /proc/self/status cannot be read, the umask is learnt by setting and restoring it."""
    from harness import files

    old = os.umask(0o027)
    try:
        assert files.current_umask() == 0o027
        monkeypatch.setattr(files, "open", lambda *a, **k: (_ for _ in ()).throw(OSError("no /proc")), raising=False)
        assert files.current_umask() == 0o027
        assert os.umask(0o027) == 0o027  # left as it was
    finally:
        os.umask(old)
