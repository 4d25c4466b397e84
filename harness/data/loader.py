"""Opening datasets: where a file comes from (present, generated or fetched), loading it after
validation (`harness.data.format`), and the file checksum a run record carries.

Angular data is normalised to unit length here, once, so that adapters only ever see
Euclidean problems (see `harness.data.distances`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.distances import normalise
from harness.data import groundtruth
from harness.data.download import download as download_file
from harness.data.format import check_values, read_arrays, redownload_hint, with_file
from harness.data.generate import generate
from harness.data.registry import DatasetInfo, dataset_path, default_data_dir, resolve
from harness.errors import DatasetError
from harness.files import atomic_write, sha256_file

PATH_SUFFIXES = (".hdf5", ".h5")


@dataclass
class Dataset:
    """A validated dataset in memory, ready for adapters (float32, Euclidean-ready)."""

    name: str
    path: Path
    distance: str
    train: np.ndarray
    test: np.ndarray
    neighbors: np.ndarray
    distances: np.ndarray
    checksum: str
    point_type: str = "float"
    #: what was done to trust `neighbors` / `distances` (set by open_dataset)
    ground_truth: str = "not checked"

    @property
    def dimension(self) -> int:
        return int(self.train.shape[1])

    @property
    def n_train(self) -> int:
        return int(self.train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.test.shape[0])


def load_file(path: Path, name: str | None = None) -> Dataset:
    """Validate and load a dataset file; `name` defaults to the file stem."""
    path = Path(path)
    content = with_file(path, lambda f: read_arrays(path, f))
    # Finiteness is checked on the float32 copies: a float64 value too large for float32 is as
    # unusable as a NaN.
    check_values(path, content)
    train, test = content["train"], content["test"]
    if content["distance"] == "angular":
        train, test = np.ascontiguousarray(normalise(train)), np.ascontiguousarray(normalise(test))
    return Dataset(
        name=name or path.stem,
        path=path,
        distance=content["distance"],
        train=train,
        test=test,
        neighbors=content["neighbors"],
        distances=content["distances"],
        checksum=file_checksum(path),
        point_type=content["point_type"],
    )


@dataclass(frozen=True)
class DatasetRef:
    """What a process that does not measure keeps of a dataset: metadata, no arrays (the
    parent under process isolation; children load the file themselves)."""

    name: str
    path: Path
    distance: str
    n_train: int
    n_test: int
    dimension: int
    checksum: str

    @classmethod
    def of(cls, dataset: DatasetLike) -> DatasetRef:
        return cls(dataset.name, Path(dataset.path).resolve(), dataset.distance, dataset.n_train,
                   dataset.n_test, dataset.dimension, dataset.checksum)


#: a dataset in memory, or only its reference
DatasetLike = Dataset | DatasetRef


# --- checksum cache ---------------------------------------------------------------------------


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def file_checksum(path: Path) -> str:
    """SHA-256 of the file, cached in `<file>.sha256` keyed by size and mtime.

    Hashing a multi-GB file takes seconds to minutes; the cache makes that a one-off cost and
    is recomputed as soon as the file changes. An unwritable directory only disables the cache.
    """
    path = Path(path)
    stat = path.stat()
    sidecar = _sidecar(path)
    try:
        cached = json.loads(sidecar.read_text())
        if cached.get("size") == stat.st_size and cached.get("mtime_ns") == stat.st_mtime_ns:
            return str(cached["sha256"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    digest = sha256_file(path)
    _write_sidecar(sidecar, {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return digest


def _write_sidecar(sidecar: Path, document: dict[str, Any]) -> None:
    """Write the cache; an unwritable directory only disables it (0644: other users read it)."""
    try:
        atomic_write(sidecar, lambda tmp: tmp.write_text(json.dumps(document)), mode=0o644)
    except OSError:
        pass


# --- the entry point --------------------------------------------------------------------------


def is_path_spec(spec: str) -> bool:
    """A spec naming a file rather than a registry entry: has a separator or an HDF5 suffix."""
    return any(sep in spec for sep in {"/", os.sep, os.altsep or "/"}) or spec.lower().endswith(PATH_SUFFIXES)


def open_dataset(
    spec: str, data_dir: Path | None = None, *, download: bool = True, progress: bool = True,
    trust_ground_truth: bool = False,
) -> Dataset:
    """Open a dataset by registry name/alias or by file path, fetching or generating it if needed.

    Its ground truth is spot-checked (`harness.data.groundtruth`, once per file) unless
    `trust_ground_truth`; `Dataset.ground_truth` says which, for the records' provenance.
    """
    if is_path_spec(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise DatasetError(f"dataset file {path.absolute()} does not exist", hint="check the path")
        dataset = load_file(path)
    else:
        info = resolve(spec)
        path = obtain(info, Path(data_dir) if data_dir is not None else default_data_dir(), fetch=download, progress=progress)
        dataset = load_file(path, name=info.name)
        _check_expected_checksum(info, dataset)
    dataset.ground_truth = _ground_truth_status(dataset, trust_ground_truth)
    return dataset


def _ground_truth_status(dataset: Dataset, trusted: bool) -> str:
    """Check the ground truth on a sample (cached per file checksum); say what was done."""
    if trusted:
        return "trusted (--trust-ground-truth): not checked"
    if not groundtruth.checked_before(dataset.path, dataset.checksum):
        rows = groundtruth.check_ground_truth(
            dataset.path, dataset.distance, dataset.train, dataset.test, dataset.neighbors, dataset.distances
        )
        groundtruth.remember(dataset.path, dataset.checksum, rows)
    return "spot-checked on a sample of test rows (harness.data.groundtruth)"


def obtain(info: DatasetInfo, data_dir: Path, *, fetch: bool = True, force: bool = False, progress: bool = True) -> Path:
    """The path of `info`'s file in `data_dir`: present, else generated, else downloaded.

    The one place that decides where a dataset comes from. `fetch=False` refuses to download
    (with the command that would); `force` regenerates or downloads again.
    """
    path = dataset_path(info, data_dir)
    if path.is_file() and not force:
        return path
    if info.generated:
        return generate(info, path, progress=progress)
    if not fetch:
        raise DatasetError(
            f"dataset {info.name} is not in {Path(data_dir).absolute()}",
            hint=f"run `python -m harness datasets download {info.name}`, or place the file at {path.absolute()}",
        )
    return download_file(info, data_dir, force=force, progress=progress)


def _check_expected_checksum(info: DatasetInfo, dataset: Dataset) -> None:
    if info.sha256 and dataset.checksum != info.sha256.lower():
        raise DatasetError(
            f"dataset file {dataset.path}: sha256: expected {info.sha256}, found {dataset.checksum}",
            hint=redownload_hint(dataset.path),
        )
