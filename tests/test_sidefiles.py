"""A dataset's cache files (checksum, ground-truth check, the copy of its vectors) go beside it
when its folder can be written, else under the data directory, and are found there again; a
dataset opened without writing writes nothing.

A read-only folder is made for real: chmod 0555 for an ordinary user; as root, whom mode bits do
not stop, the folder's immutable attribute (FS_IOC_SETFLAGS, what `chattr +i` sets), which stops
root too. Where neither is possible the tests that need one skip, saying why.
"""
from __future__ import annotations

import array
import contextlib
import fcntl
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import write_tiny_dataset
from harness.data import groundtruth, loader, sidefiles, train_copy
from harness.data.loader import load_file, open_dataset
from harness.errors import DatasetError

FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_IMMUTABLE_FL = 0x80086601, 0x40086602, 0x10
SUFFIXES = (".sha256", ".groundtruth", ".train.npy", ".train.npy.sha256")


def _set_immutable(folder: Path, on: bool) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags, True)
        flags[0] = flags[0] | FS_IMMUTABLE_FL if on else flags[0] & ~FS_IMMUTABLE_FL
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags)
    finally:
        os.close(fd)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """`folder` made unwritable for this process, whoever runs it; restored afterwards."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    try:
        _set_immutable(folder, True)
    except OSError as exc:
        pytest.skip(f"running as root, and the immutable attribute cannot be set on {folder} ({exc}): "
                    "no way to make a folder read-only for root here")
    try:
        yield
    finally:
        _set_immutable(folder, False)


def files_under(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` with its size and mtime: what a step wrote shows as a difference."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def forbid_recomputing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hashing the file, checking its ground truth or writing the copy again fails the test."""

    def fail(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a cache was recomputed instead of read")

    monkeypatch.setattr(loader, "sha256_file", fail)
    monkeypatch.setattr(groundtruth, "check_ground_truth", fail)
    monkeypatch.setattr(train_copy, "_build", fail)


@pytest.fixture
def locked(tmp_path: Path) -> Callable[[str, int], Path]:
    """Factory: a tiny dataset `<folder>/x.hdf5` in a folder made read-only for the test's length."""
    stack = contextlib.ExitStack()

    def make(folder: str, seed: int = 0) -> Path:
        path = write_tiny_dataset(tmp_path / folder / "x.hdf5", seed=seed)
        stack.enter_context(read_only(path.parent))
        return path

    with stack:
        yield make


def test_a_read_only_folder_keeps_its_caches_under_the_data_dir_and_the_next_run_reads_them(
    tmp_path: Path, locked: Callable[[str, int], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = locked("ro", 0)
    data_dir = tmp_path / "data"
    beside = files_under(path.parent)
    first = open_dataset(str(path), data_dir)
    assert files_under(path.parent) == beside  # nothing written beside the file
    assert first.side_dir is not None and first.side_dir.parent == (data_dir / sidefiles.SIDE_FOLDER).absolute()
    assert sorted(p.name for p in first.side_dir.iterdir()) == sorted("x.hdf5" + s for s in SUFFIXES)
    assert first.train_mapped and first.ground_truth.startswith("spot-checked")

    forbid_recomputing(monkeypatch)
    again = open_dataset(str(path), data_dir)
    assert (again.checksum, again.side_dir, again.train_mapped) == (first.checksum, first.side_dir, True)
    assert again.ground_truth.startswith("spot-checked")
    # a child process is handed the folder (and without it finds the same one from the data dir)
    child = load_file(path, full_check=False, side_dir=first.side_dir)
    assert child.train_mapped and (child.train == first.train).all()
    assert load_file(path, full_check=False, data_dir=data_dir).side_dir == first.side_dir


def test_two_read_only_files_of_one_name_keep_separate_caches(
    tmp_path: Path, locked: Callable[[str, int], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = locked("a", 1), locked("b", 2)
    data_dir = tmp_path / "data"
    first_a, first_b = open_dataset(str(a), data_dir), open_dataset(str(b), data_dir)
    assert first_a.checksum != first_b.checksum
    forbid_recomputing(monkeypatch)  # b's caches did not replace a's
    again_a = open_dataset(str(a), data_dir)
    assert again_a.checksum == first_a.checksum and (again_a.train == first_a.train).all()


def test_a_writable_folder_keeps_its_caches_beside_the_file(tmp_path: Path) -> None:
    path = write_tiny_dataset(tmp_path / "rw" / "x.hdf5")
    dataset = open_dataset(str(path), tmp_path / "data")
    assert dataset.side_dir == path.parent.absolute()
    assert all((path.parent / ("x.hdf5" + s)).is_file() for s in SUFFIXES)
    assert not (tmp_path / "data").exists()


def test_the_write_probe_catches_a_folder_os_access_calls_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder):
        monkeypatch.setattr(sidefiles.os, "access", lambda *_args, **_kwargs: True)  # an ACL or NFS that answers wrong
        assert sidefiles.folder_writable(folder, probe=False)
        assert not sidefiles.folder_writable(folder)
    assert sidefiles.folder_writable(folder) and list(folder.iterdir()) == []  # the probe leaves nothing


def test_opening_without_writing_writes_nothing_and_uses_the_caches_it_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_tiny_dataset(tmp_path / "rw" / "x.hdf5")
    data_dir = tmp_path / "data"
    before = files_under(tmp_path)
    planned = open_dataset(str(path), data_dir, write=False)
    assert files_under(tmp_path) == before
    assert not planned.train_mapped and planned.train.shape == (200, 8)  # read from the file on use
    assert planned.ground_truth.startswith("not checked yet")

    ran = open_dataset(str(path), data_dir)  # a run writes the caches
    written = files_under(tmp_path)
    forbid_recomputing(monkeypatch)
    planned = open_dataset(str(path), data_dir, write=False)
    assert files_under(tmp_path) == written
    assert planned.checksum == ran.checksum and planned.train_mapped and planned.ground_truth.startswith("spot-checked")


def test_opening_a_missing_registry_dataset_without_writing_neither_generates_nor_downloads(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with pytest.raises(DatasetError, match="datasets download random-xs-20-euclidean"):
        open_dataset("random-xs-20-euclidean", data_dir, write=False)
    assert not data_dir.exists()


def test_a_dataset_copied_in_keeps_working_when_its_folder_is_locked_later(tmp_path: Path) -> None:
    """Caches written beside a file while its folder was writable are not read once it is locked:
    the data directory's are (written on first need), so a locked folder never half-works."""
    path = write_tiny_dataset(tmp_path / "later" / "x.hdf5")
    open_dataset(str(path), tmp_path / "data")
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
    with read_only(path.parent):
        dataset = open_dataset(str(path), tmp_path / "data")
        assert dataset.side_dir.parent == (tmp_path / "data" / sidefiles.SIDE_FOLDER).absolute()
        assert dataset.train_mapped


def test_plan_only_writes_nothing_but_what_it_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    path = write_tiny_dataset(tmp_path / "data" / "tiny-euclidean.hdf5")
    before = sorted(p for p in tmp_path.rglob("*"))
    argv = ["--dataset", str(path), "--algorithms", "faiss-ivf", "--results-dir", str(tmp_path / "results"),
            "--data-dir", str(tmp_path / "datadir"), "--plots-dir", str(tmp_path / "plots"), "--plan-only"]
    assert main(argv) == 0
    assert "total:" in capsys.readouterr().out  # the plan was printed
    assert sorted(p for p in tmp_path.rglob("*")) == before  # no cache, result folder, lock or log
