"""Opening datasets: where a file comes from (present, generated or fetched), loading it after
validation (`harness.data.format`), and the file checksum a run record carries.

Angular data is normalised to unit length here, once, so that adapters only ever see
Euclidean problems (see `harness.data.distances`). The training vectors are not loaded with
the rest: they are mapped on first use from one copy beside the file that every process shares
(`harness.data.train_copy`).

The cache files (checksum, ground-truth check, the copy of the vectors) go beside the file when
its folder can be written, else under the data directory (`harness.data.sidefiles`). Opened with
`write=False` (a plan printed without running), nothing is written: caches found are used, a
missing one is computed and forgotten, and a dataset not on disk is an error instead of a
download.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.data import groundtruth, sidefiles, train_copy
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

    `train` is read on first use: mapped read-only from the shared copy in `side_dir`
    (`train_mapped`), so that a process that never reads the vectors (the parent of an isolated
    run) never holds them and the processes that do hold one copy between them; where there is
    no copy (none could be written, or the dataset was opened without writing), read from the
    file into this process's memory.
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
    #: `train` comes from the verified copy in `side_dir` (`harness.data.train_copy`)
    train_mapped: bool = False
    #: the folder of the file's cache files: beside it, or under the data directory when its own
    #: folder cannot be written (`harness.data.sidefiles`); a child process is given it
    side_dir: Path | None = None
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
            return _train_in_memory(self.path, self.distance)
        return train_copy.map_copy(self.path, self.train_shape, folder=self.side_dir)

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


def load_file(path: Path, name: str | None = None, *, full_check: bool = True, data_dir: Path | None = None,
              side_dir: Path | None = None, write: bool = True) -> Dataset:
    """Validate and load a dataset file; `name` defaults to the file stem.

    The training vectors are mapped from their copy in the file's cache folder (`side_dir`, by
    default `sidefiles.side_dir(path, data_dir)`: beside the file when it can be written, else
    under `data_dir`), written first if needed; `full_check` also verifies the copy's whole
    checksum (the run's parent does, once; children check sizes and times only, see
    `harness.data.train_copy`). `write=False` writes nothing: a valid copy is mapped, else the
    vectors are read from the file when first used.
    """
    path = Path(path)
    content = with_file(path, lambda f: read_arrays(path, f, train=False))
    shape = tuple(content["train_shape"])
    # Finiteness is checked on the float32 copies: a float64 value too large for float32 is as
    # unusable as a NaN. `train` is checked as its copy is written.
    check_values(path, content, n_train=shape[0])
    folder = Path(side_dir) if side_dir is not None else sidefiles.side_dir(path, data_dir, write=write)
    checksum = file_checksum(path, folder, write=write)
    mapped = train_copy.ensure_copy(
        path, checksum, content["distance"], shape, full_check=full_check, folder=folder, write=write
    ) is not None
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
        # a copy that could not be written: read now, once (the copy's own checks of `train`
        # then run here); not writing on purpose: read when first used, if ever
        train_array=None if mapped or not write else _train_in_memory(path, content["distance"]),
        side_dir=folder,
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
    #: the folder of the file's cache files (`Dataset.side_dir`): what a child passes to `load_file`
    side_dir: Path | None = None

    @classmethod
    def of(cls, dataset: DatasetLike) -> DatasetRef:
        return cls(dataset.name, Path(dataset.path).resolve(), dataset.distance, dataset.n_train,
                   dataset.n_test, dataset.dimension, dataset.checksum, dataset.side_dir)


#: a dataset in memory, or only its reference
DatasetLike = Dataset | DatasetRef


# --- checksum cache ---------------------------------------------------------------------------


def file_checksum(path: Path, folder: Path | None = None, *, write: bool = True) -> str:
    """SHA-256 of the file, cached in `<file>.sha256` keyed by size and mtime, in the file's cache
    folder (`folder`, by default `sidefiles.side_dir(path)`).

    Hashing a multi-GB file takes seconds to minutes; the cache makes that a one-off cost and
    is recomputed as soon as the file changes. A folder that cannot be written only disables
    the cache; `write=False` reads the cache but never writes it.
    """
    path = Path(path)
    stat = path.stat()
    if folder is None:
        folder = sidefiles.side_dir(path, write=write)
    sidecar = sidefiles.side_file(path, ".sha256", folder)
    cached = read_sidecar(sidecar) or {}
    if cached.get("size") == stat.st_size and cached.get("mtime_ns") == stat.st_mtime_ns and "sha256" in cached:
        return str(cached["sha256"])
    digest = sha256_file(path)
    if write and sidefiles.make_folder(folder):
        write_sidecar(sidecar, {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return digest


# --- the entry point --------------------------------------------------------------------------


def is_path_spec(spec: str) -> bool:
    """A spec naming a file rather than a registry entry: has a separator or an HDF5 suffix."""
    return any(sep in spec for sep in {"/", os.sep, os.altsep or "/"}) or spec.lower().endswith(PATH_SUFFIXES)


def open_dataset(
    spec: str, data_dir: Path | None = None, *, download: bool = True, progress: bool = True,
    trust_ground_truth: bool = False, write: bool = True,
) -> Dataset:
    """Open a dataset by registry name/alias or by file path, fetching or generating it if needed.

    Its ground truth is spot-checked (`harness.data.groundtruth`, once per file) unless
    `trust_ground_truth`; `Dataset.ground_truth` says which, for the records' provenance.
    A file given by path whose folder cannot be written keeps its cache files under `data_dir`
    (`harness.data.sidefiles`). `write=False` (a plan printed without running) writes nothing:
    no cache file, no copy of the vectors, no download or generation (a dataset that is not on
    disk is a DatasetError saying how to get it).
    """
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if is_path_spec(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise DatasetError(f"dataset file {path.absolute()} does not exist", hint="check the path")
        dataset = load_file(path, data_dir=root, write=write)
    else:
        info = resolve(spec)
        path = obtain(info, root, fetch=download, progress=progress, write=write)
        dataset = load_file(path, name=info.name, data_dir=root, write=write)
        check_distance_is(path, dataset.distance, info.distance, info.name)
        _check_expected_checksum(info, dataset)
    dataset.ground_truth = _ground_truth_status(dataset, trust_ground_truth, write)
    return dataset


def _ground_truth_status(dataset: Dataset, trusted: bool, write: bool = True) -> str:
    """Check the ground truth on a sample (cached per file checksum); say what was done. Not
    writing, a file not checked before is not checked now: that needs its vectors in memory,
    which a printed plan does not; the run checks it."""
    if trusted:
        return "trusted (--trust-ground-truth): not checked"
    folder = dataset.side_dir
    if groundtruth.checked_before(dataset.path, dataset.checksum, folder):
        return CHECKED
    if not write:
        return "not checked yet (opened without writing; a run checks it)"
    rows = groundtruth.check_ground_truth(  # on a map of its own: this process keeps no vectors
        dataset.path, dataset.distance, dataset.read_train(), dataset.test, dataset.neighbors, dataset.distances
    )
    groundtruth.remember(dataset.path, dataset.checksum, rows, folder)
    return CHECKED


CHECKED = "spot-checked on a sample of test rows (harness.data.groundtruth)"


def obtain(info: DatasetInfo, data_dir: Path, *, fetch: bool = True, force: bool = False, progress: bool = True,
           write: bool = True) -> Path:
    """The path of `info`'s file in `data_dir`: present, else generated, else downloaded.

    The one place that decides where a dataset comes from. `fetch=False` refuses to download
    (with the command that would); `force` regenerates or downloads again; `write=False`
    refuses to generate or download (with the command that would).
    """
    path = dataset_path(info, data_dir)
    if path.is_file() and not force:
        return path
    if not write:
        how = "generate" if info.generated else "download"
        raise DatasetError(
            f"dataset {info.name} is not in {Path(data_dir).absolute()}, and it is opened without writing "
            f"(a plan only), so it is not {how}d now",
            hint=f"run `python -m harness datasets download {info.name}` first, or run without --plan-only",
        )
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
