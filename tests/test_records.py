"""The record store: atomic, checksummed, plain files; incomplete records never read as valid."""
import json

import h5py
import numpy as np
import pytest

from harness import records
from harness.errors import HarnessError


def _write(tmp_path, stem="a", **extra):
    doc = {"status": "ok", "dataset": "d", "algorithm": "x", "metrics": {"recall_at_1": 0.5, "bad": float("nan")}, **extra}
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
        records.write_record(blocker / "sub", "a", {"status": "ok"}, {})


def test_device_and_threads_are_part_of_the_identity():
    base = ("alg", {"a": 1}, {"q": 3}, "batch", 10, 100)
    keys = {records.record_key(*base), records.record_key(*base, "cuda", 1), records.record_key(*base, "cpu", 2)}
    assert len(keys) == 3
