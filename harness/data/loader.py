"""Opening datasets: where a file comes from (present, generated or fetched), loading it after
validation (`harness.data.format`), and the file checksum a run record carries.

Angular data is normalised to unit length here, once, so that adapters only ever see
Euclidean problems (see `harness.data.distances`). The training vectors are not loaded with
the rest: they are mapped on first use from one copy beside the file that every process shares
(`harness.data.train_copy`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.data import groundtruth, train_copy
from harness.data.distances import normalise
from harness.data.download import download as download_file
from harness.data.format import (
    check_distance_is, check_finite, check_values, read_arrays, redownload_hint, with_file,
)
from harness.data.generate import generate
from harness.data.registry import DatasetInfo, dataset_path, default_data_dir, resolve
from harness.errors import DatasetError
from harness.files import read_sidecar, sha256_file, write_sidecar

PATH_SUFFIXES = (".hdf5", ".h5")


@dataclass
class Dataset:
    """A validated dataset, ready for adapters (float32, Euclidean-ready).

    `train` is read on first use: mapped read-only from the shared copy beside the file
    (`train_mapped`), so that a process that never reads the vectors (the parent of an isolated
    run) never holds them and the processes that do hold one copy between them; where no copy
    can be written, loaded into memory with the file.
    """

    name: str
    path: Path
    distance: str
    test: np.ndarray
    neighbors: np.ndarray
    distances: np.ndarray
    checksum: str
    train_shape: tuple[int, int]
    point_type: str = "float"
    #: what was done to trust `neighbors` / `distances` (set by open_dataset)
    ground_truth: str = "not checked"
    #: `train` comes from the verified copy beside the file (`harness.data.train_copy`)
    train_mapped: bool = False
    #: the training vectors once read (None until first use when mapped)
    train_array: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def train(self) -> np.ndarray:
        """The training vectors (n_train, dimension), float32, C order; kept once read."""
        if self.train_array is None:
            self.train_array = self.read_train()
        return self.train_array

    def read_train(self) -> np.ndarray:
        """The training vectors without keeping them here: a map that ends with its last use."""
        if self.train_array is not None:
            return self.train_array
        if not self.train_mapped:
            raise ValueError(f"{self.name}: no training vectors: neither in memory nor mapped")
        return train_copy.map_copy(self.path, self.train_shape)

    def __getstate__(self) -> dict[str, Any]:
        """A pickled dataset (Ray's object store, another machine) carries its vectors, not a path."""
        return {**self.__dict__, "train_array": np.asarray(self.train)}

    @property
    def dimension(self) -> int:
        return int(self.train_shape[1])

    @property
    def n_train(self) -> int:
        return int(self.train_shape[0])

    @property
    def n_test(self) -> int:
        return int(self.test.shape[0])


def load_file(path: Path, name: str | None = None, *, full_check: bool = True) -> Dataset:
    """Validate and load a dataset file; `name` defaults to the file stem.

    The training vectors are mapped from their copy beside the file, written first if needed;
    `full_check` also verifies the copy's whole checksum (the run's parent does, once; children
    check sizes and times only, see `harness.data.train_copy`).
    """
    path = Path(path)
    content = with_file(path, lambda f: read_arrays(path, f, train=False))
    shape = tuple(content["train_shape"])
    # Finiteness is checked on the float32 copies: a float64 value too large for float32 is as
    # unusable as a NaN. `train` is checked as its copy is written.
    check_values(path, content, n_train=shape[0])
    checksum = file_checksum(path)
    mapped = train_copy.ensure_copy(path, checksum, content["distance"], shape, full_check=full_check) is not None
    test = content["test"]
    if content["distance"] == "angular":
        test = np.ascontiguousarray(normalise(test))
    return Dataset(
        name=name or path.stem,
        path=path,
        distance=content["distance"],
        test=test,
        neighbors=content["neighbors"],
        distances=content["distances"],
        checksum=checksum,
        train_shape=shape,
        point_type=content["point_type"],
        train_mapped=mapped,
        train_array=None if mapped else _train_in_memory(path, content["distance"]),
    )


def _train_in_memory(path: Path, distance: str) -> np.ndarray:
    """`train` read whole into this process's memory: where no shared copy could be written."""
    train = with_file(path, lambda f: np.ascontiguousarray(f["train"][:], dtype=np.float32))
    check_finite(path, "train", train)
    return np.ascontiguousarray(normalise(train)) if distance == "angular" else train


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
    cached = read_sidecar(sidecar) or {}
    if cached.get("size") == stat.st_size and cached.get("mtime_ns") == stat.st_mtime_ns and "sha256" in cached:
        return str(cached["sha256"])
    digest = sha256_file(path)
    write_sidecar(sidecar, {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return digest


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
        check_distance_is(path, dataset.distance, info.distance, info.name)
        _check_expected_checksum(info, dataset)
    dataset.ground_truth = _ground_truth_status(dataset, trust_ground_truth)
    return dataset


def _ground_truth_status(dataset: Dataset, trusted: bool) -> str:
    """Check the ground truth on a sample (cached per file checksum); say what was done."""
    if trusted:
        return "trusted (--trust-ground-truth): not checked"
    if not groundtruth.checked_before(dataset.path, dataset.checksum):
        rows = groundtruth.check_ground_truth(  # on a map of its own: this process keeps no vectors
            dataset.path, dataset.distance, dataset.read_train(), dataset.test, dataset.neighbors, dataset.distances
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
