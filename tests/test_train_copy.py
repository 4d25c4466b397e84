"""One copy of the training vectors: mapped by every process, verified, rebuilt when wrong.

What matters: adapters see exactly the file's (validated, normalised) vectors; a stale,
truncated or corrupt copy is never used; a process that only orchestrates never holds the
vectors; processes that map the copy share its pages instead of holding one copy each.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import pytest

from algorithms.registry import all_algorithms, get
from harness.data import format as data_format
from harness.data import train_copy
from harness.data.loader import load_file, open_dataset
from harness.data.train_copy import TrainCopyWarning, copy_paths
from harness.measure.clocks import memory_breakdown


def file_train(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["train"][:].astype(np.float32)


def flip_byte_keeping_time(path: Path, offset: int) -> None:
    """Corrupt one byte without changing the size or the mtime: only a full hash can tell."""
    stat = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.fixture
def sift(siftsmall_path: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(siftsmall_path, tmp_path / siftsmall_path.name))  # the copy goes beside it


def test_open_dataset_maps_a_verified_copy_and_keeps_no_vectors(sift: Path) -> None:
    dataset = open_dataset(str(sift), progress=False)
    npy, sidecar = copy_paths(sift)
    assert npy.is_file() and sidecar.is_file()
    assert dataset.train_mapped and dataset.train_array is None  # the ground-truth check used a map of its own
    assert str(npy) not in Path("/proc/self/maps").read_text()
    train = dataset.train
    assert isinstance(train, np.memmap) and not train.flags.writeable and train.flags.c_contiguous
    assert train.dtype == np.float32 and train.shape == (dataset.n_train, dataset.dimension) == (10000, 128)
    np.testing.assert_array_equal(train, file_train(sift))


def test_the_copy_is_reused_as_it_is(sift: Path) -> None:
    load_file(sift)
    npy, _ = copy_paths(sift)
    before = npy.stat()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_file(sift)
        load_file(sift, full_check=False)
    after = npy.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_corrupt_copy_is_found_by_the_full_check_and_rewritten(sift: Path) -> None:
    load_file(sift)
    npy, _ = copy_paths(sift)
    flip_byte_keeping_time(npy, npy.stat().st_size - 5)
    # The cheap check of a child reads no vector: it cannot see this (the parent's full check does).
    assert not np.array_equal(load_file(sift, full_check=False).train, file_train(sift))
    with pytest.warns(TrainCopyWarning) as caught:
        dataset = load_file(sift)
    message = str(caught[0].message)
    assert str(npy) in message and "sha256: expected" in message and "rewriting it from" in message
    np.testing.assert_array_equal(dataset.train, file_train(sift))


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda npy, sidecar: os.truncate(npy, npy.stat().st_size - 512), "size: expected"),
        (lambda npy, sidecar: sidecar.write_text(sidecar.read_text().replace('"format": 1', '"format": 0')), "format in"),
        (lambda npy, sidecar: npy.write_bytes(b"\x93NUMPY garbage" + npy.read_bytes()[14:]), "expected"),
    ],
    ids=["truncated", "other format", "bad header"],
)
def test_a_damaged_copy_is_rewritten_with_a_message(sift: Path, damage: Callable[[Path, Path], Any], words: str) -> None:
    load_file(sift)
    npy, sidecar = copy_paths(sift)
    damage(npy, sidecar)
    with pytest.warns(TrainCopyWarning, match=words):
        dataset = load_file(sift, full_check=False)
    np.testing.assert_array_equal(dataset.train, file_train(sift))


def test_a_changed_dataset_file_gets_a_new_copy(make_tiny_dataset: Callable[..., Path]) -> None:
    path = make_tiny_dataset("t.hdf5", seed=0)
    load_file(path)
    make_tiny_dataset("t.hdf5", seed=1)  # same shape, other vectors
    with pytest.warns(TrainCopyWarning, match="source_sha256"):
        dataset = load_file(path, full_check=False)
    np.testing.assert_array_equal(dataset.train, file_train(path))


def test_an_unreadable_record_is_a_missing_copy(make_tiny_dataset: Callable[..., Path]) -> None:
    path = make_tiny_dataset("t.hdf5")
    load_file(path)
    copy_paths(path)[1].write_text("{not json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = load_file(path)
    np.testing.assert_array_equal(dataset.train, file_train(path))


def test_a_copied_data_directory_is_hashed_once_not_rewritten(make_tiny_dataset: Callable[..., Path]) -> None:
    path = make_tiny_dataset("t.hdf5")
    load_file(path)
    npy, sidecar = copy_paths(path)
    stat = npy.stat()
    os.utime(npy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # as `cp` without -p leaves it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_file(path, full_check=False)
    assert npy.stat().st_ino == stat.st_ino
    assert train_copy.read_sidecar(sidecar)["mtime_ns"] == stat.st_mtime_ns + 10**9


def test_angular_copy_holds_the_normalised_rows(make_tiny_dataset: Callable[..., Path]) -> None:
    path = make_tiny_dataset("a.hdf5", distance="angular")
    dataset = load_file(path)
    assert dataset.train_mapped
    np.testing.assert_allclose(np.linalg.norm(dataset.train, axis=1), 1.0, atol=1e-6)
    assert train_copy.read_sidecar(copy_paths(path)[1])["normalised"] is True


def test_the_copy_is_written_a_slice_at_a_time(make_tiny_dataset: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 2 rows: the copy is still exact, and a NaN far down is named by its own row."""
    monkeypatch.setattr(data_format, "CHUNK_ELEMENTS", 16)  # 2 rows of 8
    path = make_tiny_dataset("t.hdf5", n_train=50)
    np.testing.assert_array_equal(load_file(path).train, file_train(path))
    with h5py.File(path, "r+") as f:
        f["train"][37, 3] = np.nan
    copy_paths(path)[0].unlink()
    with pytest.raises(Exception) as caught:
        load_file(path)
    assert "'train'" in str(caught.value) and "row 37, column 3" in str(caught.value)
    assert not copy_paths(path)[0].exists() and not list(path.parent.glob(".*.tmp"))


def test_where_no_copy_can_be_written_each_process_reads_the_file(
    make_tiny_dataset: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_tiny_dataset("t.hdf5", distance="angular")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied", str(copy_paths(path)[0]))

    monkeypatch.setattr(train_copy, "atomic_write", refuse)
    with pytest.warns(TrainCopyWarning, match="cannot write the copy of the training vectors"):
        dataset = load_file(path)
    assert not dataset.train_mapped and dataset.train.flags.writeable
    np.testing.assert_allclose(np.linalg.norm(dataset.train, axis=1), 1.0, atol=1e-6)


def test_a_full_disk_is_said_before_writing(make_tiny_dataset: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_tiny_dataset("t.hdf5")
    monkeypatch.setattr(train_copy.shutil, "disk_usage", lambda where: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    with pytest.warns(TrainCopyWarning, match="GiB free"):
        dataset = load_file(path)
    assert not dataset.train_mapped and not copy_paths(path)[0].exists()
    np.testing.assert_array_equal(dataset.train, file_train(path))


def test_a_pickled_dataset_carries_its_vectors(make_tiny_dataset: Callable[..., Path]) -> None:
    """Ray's object store (possibly another machine) gets the vectors, not a path to map."""
    path = make_tiny_dataset("t.hdf5")
    dataset = load_file(path)
    again = pickle.loads(pickle.dumps(dataset))
    np.testing.assert_array_equal(again.train, file_train(path))
    assert not isinstance(again.train, np.memmap)


@pytest.mark.slow
def test_every_adapter_fits_on_a_read_only_map_without_warnings(tmp_path: Path) -> None:
    """torch warns once per process on read-only memory; any warning fails here."""
    rng = np.random.default_rng(3)
    np.save(tmp_path / "x.npy", rng.standard_normal((300, 8)).astype(np.float32))
    X = np.load(tmp_path / "x.npy", mmap_mode="r")
    Q = rng.standard_normal((4, 8)).astype(np.float32)
    light = {"faiss-ivf": {"nlist": 8}, "faiss-ivfpq": {"nlist": 8, "nbits": 4}, "potential-gaussian-ivf": {"nlist": 8},
             "potential-1-ivf": {"nlist": 8}}
    for name in all_algorithms():
        if not get(name).adapter.__module__.startswith("algorithms."):
            continue  # plugins other tests registered in this process (some hang on purpose)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warnings.filterwarnings("ignore", message=".*clustering.*")
            adapter = get(name).make(**light.get(name, {}))
            adapter.fit(X)
            ids, _ = adapter.search(Q, 3)
        assert ids.shape == (4, 3), name


# --- sharing between processes ------------------------------------------------------------


def _map_fit_and_report(path: str, barrier: Any, results: Any) -> None:
    """A child's part: map the copy as a worker does, build a faiss index from it, read all
    pages, then report how its memory of the mapping is held while its sibling holds it too."""
    from algorithms.registry import get as get_adapter

    dataset = load_file(Path(path), full_check=False)
    adapter = get_adapter("faiss-flat").make()
    adapter.fit(dataset.train)
    float(np.asarray(dataset.train).sum())  # every page resident
    barrier.wait(60)
    results.put(memory_breakdown(mapped_file=str(copy_paths(Path(path))[0])))
    barrier.wait(60)


@pytest.mark.slow
def test_two_processes_share_one_copy_of_the_vectors(make_tiny_dataset: Callable[..., Path]) -> None:
    path = make_tiny_dataset("shared.hdf5", n_train=20000, n_test=5, dim=64)
    load_file(path)  # the parent writes and verifies the copy, then keeps nothing
    size = copy_paths(path)[0].stat().st_size
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    children = [context.Process(target=_map_fit_and_report, args=(str(path), barrier, results)) for _ in range(2)]
    for child in children:
        child.start()
    reports = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    for report in reports:
        assert report["Rss"] >= 0.95 * size  # each maps all of it ...
        assert report["Shared_Clean"] >= 0.95 * size  # ... as pages both hold: one copy in memory
        assert report["Private_Dirty"] == report["Anonymous"] == 0  # none of it is the child's own memory
        assert report["Pss"] <= 0.55 * size  # each is charged half


@pytest.mark.slow
def test_the_parent_of_an_isolated_run_never_maps_the_vectors(
    make_tiny_dataset: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.cli import main

    path = make_tiny_dataset("t-8-euclidean.hdf5", n_train=500, n_test=20)
    open_dataset(str(path), progress=False)  # the copy and the ground-truth check exist already
    mapped: list[Path] = []
    real = train_copy.map_copy
    monkeypatch.setattr(train_copy, "map_copy", lambda *a, **k: mapped.append(a[0]) or real(*a, **k))
    code = main(["--dataset", str(path), "--algorithms", "faiss-flat", "--workers", "1", "--runs", "1",
                 "--results-dir", str(tmp_path / "results"), "--no-plots"])
    assert code == 0 and list((tmp_path / "results").rglob("*.json"))  # the children mapped it and measured
    assert mapped == []
