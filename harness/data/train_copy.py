"""The training vectors as one memory-mapped copy that every process of a run shares.

Each process that measures used to read `train` from the HDF5 file into memory of its own
(1.3 GB resident per child for 1M x 128; gist-960 holds 3.8 GB of vectors), so memory grew with
the number of processes. Instead the vectors are written once, uncompressed, in the dataset
file's cache folder (beside the file, or under the data directory when that folder cannot be
written: `harness.data.sidefiles`), as exactly what adapters are given (float32, C order, angular rows normalised):
`<file>.train.npy`, a plain NumPy file. Every process maps it read-only; its pages are the
kernel's page cache, held once however many processes map them, and a process that never reads
the vectors (the parent of a run that only orchestrates) never has them resident.

`<file>.train.npy.sha256` says what the copy was made from and what it is: the dataset file's SHA-256
(its size and mtime for the reader), the distance, the shape, and the copy's own SHA-256, size
and mtime. What is checked, and how often:

- every time a process maps the copy: the recorded source checksum is the dataset file's (which
  `loader.file_checksum` caches by size and mtime), the copy's size and mtime are the recorded
  ones, and its header says float32, C order, the source's shape. No byte of the vectors is read.
- the copy's full SHA-256: as it is written, and once per run by the process that opens the
  dataset for the run (`open_dataset`, before any child starts): about a second per GB, read
  through the page cache, never into that process's own memory. A copy whose mtime alone
  differs (a data directory copied without keeping times) is hashed, and kept if it matches.

A copy that fails a check is rebuilt atomically (a process that had mapped the old one keeps
it), with a warning naming the file, the field, what was expected and what was found. A
directory that cannot hold the copy (unwritable, or short of free space) leaves each process
reading its own copy from the HDF5 file, as before, with a warning that says why. Deleting both
files is always safe: the next run writes them again. Opened without writing (`write=False`, a
plan printed without running), a copy that passes the checks is used and nothing is written.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from harness.data.distances import normalise
from harness.data import sidefiles
from harness.data.format import check_finite_rows, row_slices, with_file
from harness.errors import DatasetError
from harness.files import atomic_write, read_sidecar, sha256_file, write_sidecar

#: the layout of `<file>.train.npy.sha256`; a different one is rebuilt
FORMAT = 1
#: free space left over after the copy is written
SPARE_BYTES = 64 * 2**20
DTYPE = np.dtype("<f4")


class TrainCopyWarning(UserWarning):
    """The copy was rebuilt, or cannot be used (each process then reads the HDF5 file)."""


def copy_paths(source: Path, folder: Path | None = None) -> tuple[Path, Path]:
    """(`<file>.train.npy`, `<file>.train.npy.sha256`) in the dataset file's cache folder
    (`folder`, by default `sidefiles.side_dir(source)`: beside the file when it can be written)."""
    if folder is None:
        folder = sidefiles.side_dir(Path(source))
    return sidefiles.side_file(source, ".train.npy", folder), sidefiles.side_file(source, ".train.npy.sha256", folder)


def ensure_copy(source: Path, source_sha256: str, distance: str, shape: tuple[int, int], *, full_check: bool,
                folder: Path | None = None, write: bool = True) -> Path | None:
    """The path of a verified copy of `source`'s training vectors in `folder` (see `copy_paths`),
    written or rewritten if it is missing, stale or corrupt; None when it cannot be written there
    (the caller reads the file).

    `full_check` also hashes the whole copy (the run's parent, once per run); without it only
    the cheap checks run (each child, before mapping). Problems in `source` itself (a NaN in
    `train`, a truncated file) are raised as a DatasetError naming the file and the field.
    `write=False` writes nothing: the copy if it passes the checks, else None.
    """
    if folder is None:
        folder = sidefiles.side_dir(Path(source), write=write)
    npy, sidecar = copy_paths(source, folder)
    problem = _problem(source, source_sha256, shape, full_check, folder, write)
    if problem is None:
        return npy
    if not write:
        return None
    if problem != "missing":
        _warn(f"{problem}; rewriting it from {source}")
    if not sidefiles.make_folder(folder):
        _warn(f"cannot create {folder} for the copy of the training vectors; each process reads its own copy from {source}")
        return None
    return _build(source, source_sha256, distance, shape, folder)


def map_copy(source: Path, shape: tuple[int, int], folder: Path | None = None) -> np.ndarray:
    """The verified copy, mapped read-only: pages are read on first touch and shared."""
    npy, sidecar = copy_paths(source, folder)
    array = np.load(npy, mmap_mode="r", allow_pickle=False)
    if array.shape != tuple(shape) or array.dtype != DTYPE:  # checked before, unless replaced since
        raise DatasetError(
            f"copy of the training vectors {npy}: shape and dtype: expected {tuple(shape)} float32, "
            f"found {array.shape} {array.dtype}",
            hint=f"delete {npy} and {sidecar}; the next run writes them again",
        )
    return array


# --- checks ---------------------------------------------------------------------------------


def _problem(source: Path, source_sha256: str, shape: tuple[int, int], full_check: bool, folder: Path,
             write: bool = True) -> str | None:
    """What is wrong with the copy ("missing" when there is none), None when it can be mapped."""
    npy, sidecar = copy_paths(source, folder)
    record = read_sidecar(sidecar)
    if record is None or not npy.is_file():
        return "missing"
    expected = {"format": FORMAT, "source_sha256": source_sha256, "shape": list(shape), "dtype": DTYPE.str}
    for field, value in expected.items():
        if record.get(field) != value:
            return f"copy of the training vectors {npy}: {field} in {sidecar.name}: expected {value!r}, found {record.get(field)!r}"
    stat = npy.stat()
    if stat.st_size != record.get("size"):
        return f"copy of the training vectors {npy}: size: expected {record.get('size')} bytes, found {stat.st_size}"
    header = _header(npy)
    if header != (tuple(shape), DTYPE.str, False):
        return f"copy of the training vectors {npy}: header: expected {tuple(shape)} {DTYPE.str} C order, found {header}"
    moved = stat.st_mtime_ns != record.get("mtime_ns")
    if full_check or moved:
        found = sha256_file(npy)
        if found != record.get("sha256"):
            return f"copy of the training vectors {npy}: sha256: expected {record.get('sha256')}, found {found}"
        if moved and write:  # same bytes, new time (a copied data directory): remember the new time
            write_sidecar(sidecar, {**record, "mtime_ns": stat.st_mtime_ns})
    return None


def _header(npy: Path) -> tuple[tuple[int, ...], str, bool] | str:
    """(shape, dtype, fortran order) from the .npy header, or why it cannot be read."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with open(npy, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version not in readers:
                return f"an unknown .npy version {version}"
            shape, fortran, dtype = readers[version](handle)
    except (OSError, ValueError) as exc:
        return f"an unreadable header ({exc})"
    return tuple(shape), dtype.str, bool(fortran)


# --- writing --------------------------------------------------------------------------------


class _WriteFailed(Exception):
    """Writing the copy failed (not the dataset file's fault): carries the OSError."""


def _build(source: Path, source_sha256: str, distance: str, shape: tuple[int, int], folder: Path) -> Path | None:
    npy, sidecar = copy_paths(source, folder)
    needed = int(np.prod(shape)) * DTYPE.itemsize + 4096
    free = shutil.disk_usage(npy.parent).free if npy.parent.is_dir() else 0
    if free < needed + SPARE_BYTES:
        _warn(f"no copy of the training vectors of {source} in {npy.parent}: it needs {needed / 2**30:.2f} GiB, "
              f"{free / 2**30:.2f} GiB free; each process reads its own copy from the file")
        return None
    digest = hashlib.sha256()
    facts: dict[str, Any] = {}

    def write(tmp: Path) -> None:
        with_file(source, lambda f: _write_rows(source, f, distance, tmp, digest))
        stat = tmp.stat()  # a rename keeps the size and the mtime
        facts.update(size=stat.st_size, mtime_ns=stat.st_mtime_ns)

    try:
        atomic_write(npy, write, suffix=".npy.tmp", mode=0o644)
    except (OSError, _WriteFailed) as exc:
        reason = exc.args[0] if isinstance(exc, _WriteFailed) else exc
        _warn(f"cannot write the copy of the training vectors {npy} ({reason}); each process reads its own copy from the file")
        return None
    stat = source.stat()
    record = {
        "format": FORMAT, "source_sha256": source_sha256, "source_size": stat.st_size, "source_mtime_ns": stat.st_mtime_ns,
        "distance": distance, "normalised": distance == "angular", "shape": list(shape), "dtype": DTYPE.str,
        "sha256": digest.hexdigest(), **facts,
    }
    if not write_sidecar(sidecar, record):
        _warn(f"cannot write {sidecar}; each process reads its own copy of the training vectors from {source}")
        return None
    return npy


def _write_rows(source: Path, f: h5py.File, distance: str, tmp: Path, digest: Any) -> None:
    """Header, then `train` a slice of rows at a time (never two copies in memory), each block
    checked for NaN and Inf and, for angular data, normalised; hashed as it is written."""
    train = f["train"]
    n, d = train.shape
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": DTYPE.str, "fortran_order": False, "shape": (n, d)})
    try:
        out = open(tmp, "wb")
    except OSError as exc:
        raise _WriteFailed(exc) from exc
    with out:
        _put(out, digest, header.getvalue())
        for part in row_slices(n, d):
            block = np.ascontiguousarray(train[part], dtype=DTYPE)
            check_finite_rows(source, "train", block, part.start)
            if distance == "angular":
                block = np.ascontiguousarray(normalise(block), dtype=DTYPE)
            _put(out, digest, block.tobytes())
        try:
            out.flush()
            os.fsync(out.fileno())
        except OSError as exc:
            raise _WriteFailed(exc) from exc


def _put(out: Any, digest: Any, data: bytes) -> None:
    """Write and hash `data`; a failure here is the copy's, not the dataset file's."""
    try:
        out.write(data)
    except OSError as exc:
        raise _WriteFailed(exc) from exc
    digest.update(data)


def _warn(message: str) -> None:
    warnings.warn(message, TrainCopyWarning, stacklevel=3)
