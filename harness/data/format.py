"""The ann-benchmarks HDF5 format and its validation: what a dataset file must hold.

A dataset file is trusted only after it has been checked: a truncated download, a file from
another tool with a different layout, or NaNs in the vectors would otherwise surface as a
crash deep inside an adapter or, worse, as plausible but wrong recall numbers. Every problem
is reported as a DatasetError naming the file, the field, what was expected and what was found.
Used by the loader (every file it opens) and by downloads (a file before it gets its name).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping

import h5py
import numpy as np

from harness.data.distances import SUPPORTED
from harness.errors import DatasetError

REQUIRED = ("train", "test", "neighbors", "distances")
CHUNK_ELEMENTS = 1 << 22  # values checked per slice: bounds memory on multi-GB files

__all__ = [
    "REQUIRED", "read_arrays", "redownload_hint", "check_values", "check_finite", "check_finite_rows", "row_slices", "validate_file", "with_file",
]


# --- errors -----------------------------------------------------------------------------------


def redownload_hint(path: Path) -> str:
    return f"delete it or re-download it with `python -m harness datasets download {path.stem} --force`"


def _invalid(path: Path, field: str, expected: str, found: str, hint: str | None = None) -> DatasetError:
    return DatasetError(
        f"invalid dataset file {path}: {field}: expected {expected}, found {found}",
        hint=hint or redownload_hint(path),
    )


def _not_hdf5(path: Path, reason: object) -> DatasetError:
    return DatasetError(
        f"{path} is not a valid HDF5 file (it may be truncated or corrupt): {reason}",
        hint=redownload_hint(path),
    )


# --- structural checks (metadata only, cheap) --------------------------------------------------


def _attr_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_distance(path: Path, attrs: Mapping[str, Any]) -> str:
    if "distance" not in attrs:
        raise _invalid(path, "attribute 'distance'", f"one of {', '.join(SUPPORTED)}", "no such attribute")
    distance = _attr_text(attrs["distance"]).lower()
    if distance not in SUPPORTED:
        hint = ("the harness spells inner-product search 'dot' (distances: the negative inner products, ascending)"
                if distance in _INNER_PRODUCT_SPELLINGS else
                f"the harness does not implement the {distance!r} distance; use a {', '.join(SUPPORTED)} dataset")
        raise _invalid(path, "attribute 'distance'", f"a supported distance ({', '.join(SUPPORTED)})", repr(distance),
                       hint=hint)
    return distance


#: other tools' names of inner-product search, refused with the harness's spelling in the hint
_INNER_PRODUCT_SPELLINGS = {"ip", "inner_product", "inner-product", "innerproduct", "dot_product", "dotproduct", "mips"}


def check_distance_is(path: Path, found: str, expected: str, name: str) -> None:
    """Refuse a file whose `distance` attribute is not the one its registry entry `name` declares:
    scored under another metric, every recall would be wrong."""
    if found != expected:
        raise _invalid(path, "attribute 'distance'", f"{expected!r} (the distance of dataset {name})", repr(found))


def _check_shapes(path: Path, f: h5py.File) -> None:
    missing = [key for key in REQUIRED if key not in f]
    if missing:
        raise _invalid(
            path, f"dataset {missing[0]!r}", f"datasets {', '.join(REQUIRED)}",
            f"no {', '.join(repr(m) for m in missing)} (present: {', '.join(sorted(f.keys())) or 'none'})",
        )
    for key in REQUIRED:
        node = f[key]
        if not isinstance(node, h5py.Dataset) or node.ndim != 2:
            found = f"shape {node.shape}" if isinstance(node, h5py.Dataset) else "a group"
            raise _invalid(path, f"dataset {key!r}", "a 2-D array", found)
        kinds = "iu" if key == "neighbors" else "fiu"
        if node.dtype.kind not in kinds:
            raise _invalid(path, f"dataset {key!r}", "integer" if key == "neighbors" else "numeric", f"dtype {node.dtype}")
    _check_sizes(path, f)


def _check_sizes(path: Path, f: h5py.File) -> None:
    train, test, neighbors, distances = (f[key].shape for key in REQUIRED)
    if train[0] == 0:
        raise _invalid(path, "dataset 'train'", "at least one row", f"shape {train}")
    if test[0] == 0:
        raise _invalid(path, "dataset 'test'", "at least one row", f"shape {test}")
    if train[1] != test[1]:
        raise _invalid(path, "dataset 'test'", f"{train[1]} columns (the width of 'train')", f"shape {test}")
    if "dimension" in f.attrs and int(f.attrs["dimension"]) != train[1]:
        raise _invalid(path, "attribute 'dimension'", f"{train[1]} (the width of 'train')", str(f.attrs["dimension"]))
    if neighbors[0] != test[0] or neighbors[1] == 0:
        raise _invalid(path, "dataset 'neighbors'", f"({test[0]}, K>=1): one row per test query", f"shape {neighbors}")
    if distances != neighbors:
        raise _invalid(path, "dataset 'distances'", f"shape {neighbors} (the shape of 'neighbors')", f"shape {distances}")


# --- value checks (chunked) -------------------------------------------------------------------


def row_slices(n_rows: int, width: int) -> list[slice]:
    """Slices of rows of about CHUNK_ELEMENTS values each: how a multi-GB array is read."""
    step = max(1, CHUNK_ELEMENTS // max(1, width))
    return [slice(start, min(n_rows, start + step)) for start in range(0, n_rows, step)]


def check_finite_rows(path: Path, key: str, block: np.ndarray, first_row: int = 0) -> None:
    """Refuse a block of rows of `key` (starting at row `first_row`) holding a NaN or an Inf."""
    bad = ~np.isfinite(block)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise _invalid(path, f"dataset {key!r}", "finite values", f"{block[row, col]} at row {first_row + row}, column {col}")


def check_finite(path: Path, key: str, array: Any) -> None:
    """`array` is an h5py dataset or an ndarray; both are read a slice of rows at a time."""
    for part in row_slices(array.shape[0], array.shape[1]):
        check_finite_rows(path, key, np.asarray(array[part]), part.start)


def _check_ids(path: Path, neighbors: Any, n_train: int) -> None:
    for part in row_slices(neighbors.shape[0], neighbors.shape[1]):
        block = np.asarray(neighbors[part])
        low, high = int(block.min()), int(block.max())
        if low < 0 or high >= n_train:
            value = low if low < 0 else high
            row = int(np.argwhere(block == value)[0][0]) + part.start
            raise _invalid(path, "dataset 'neighbors'", f"ids in [0, {n_train}) (the rows of 'train')", f"{value} in row {row}")


def check_values(path: Path, arrays: Mapping[str, Any], n_train: int | None = None) -> None:
    """Finite vectors and distances, ids within `train`. Without a `train` array (the loader
    maps it from a copy that was checked when it was made), `n_train` gives its length."""
    for key in ("train", "test", "distances"):
        if key in arrays:
            check_finite(path, key, arrays[key])
    _check_ids(path, arrays["neighbors"], arrays["train"].shape[0] if "train" in arrays else int(n_train or 0))


# --- opening ------------------------------------------------------------------------------------


def with_file(path: Path, body: Callable[[h5py.File], Any]) -> Any:
    """Run `body` on the open file, turning HDF5 read failures into a clear DatasetError."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file {path} does not exist", hint="check the path, or give a dataset name")
    try:
        with h5py.File(path, "r") as f:
            return body(f)
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise _not_hdf5(path, exc) from exc


def validate_file(path: Path) -> None:
    """Check a dataset file completely without keeping it in memory; raise DatasetError if bad."""
    path = Path(path)

    def check(f: h5py.File) -> None:
        _check_distance(path, f.attrs)
        _check_shapes(path, f)
        check_values(path, {key: f[key] for key in REQUIRED})

    with_file(path, check)


#: what each array becomes in memory (the loader's dtypes)
MEMORY_DTYPES = {"train": np.float32, "test": np.float32, "neighbors": np.int64, "distances": np.float64}


def available_memory() -> int | None:
    """Bytes of memory this process could still get (Linux MemAvailable), None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(path: Path, f: h5py.File, available: int | None = None) -> None:
    """Refuse, from the arrays' shapes alone, a file whose arrays cannot fit in memory."""
    available = available_memory() if available is None else available
    if available is None:
        return
    sizes = {key: int(np.prod(f[key].shape)) * np.dtype(dtype).itemsize for key, dtype in MEMORY_DTYPES.items()}
    total = sum(sizes.values())
    if total > available:
        largest = max(sizes, key=sizes.__getitem__)
        shape = " x ".join(str(n) for n in f[largest].shape)
        raise DatasetError(
            f"dataset file {path}: '{largest}' is {shape} {np.dtype(MEMORY_DTYPES[largest]).name} = "
            f"{_gib(sizes[largest])} GiB in memory ({_gib(total)} GiB for all four arrays), but this machine has "
            f"{_gib(available)} GiB available",
            hint="use a smaller dataset or a machine with more memory",
        )


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:,.1f}"


def read_arrays(path: Path, f: h5py.File, train: bool = True) -> dict[str, Any]:
    """The validated file's arrays in their memory dtypes, and `train_shape`; without `train`
    when the caller maps the training vectors from their copy (`harness.data.train_copy`)."""
    distance = _check_distance(path, f.attrs)
    _check_shapes(path, f)
    check_fits_in_memory(path, f)
    keys = [key for key in REQUIRED if train or key != "train"]
    arrays = {key: np.ascontiguousarray(f[key][:], dtype=MEMORY_DTYPES[key]) for key in keys}
    point_type = _attr_text(f.attrs.get("point_type", "float"))
    return {"distance": distance, "point_type": point_type, "train_shape": tuple(f["train"].shape), **arrays}


def read_ground_truth(path: Path, n_rows: int | None = None) -> dict[str, np.ndarray]:
    """The true neighbour ids and distances of the first `n_rows` test queries (all when None),
    in the loader's dtypes, without reading the vectors: what scoring stored answers needs."""
    path = Path(path)

    def read(f: h5py.File) -> dict[str, np.ndarray]:
        _check_shapes(path, f)
        rows = slice(None) if n_rows is None else slice(0, int(n_rows))
        return {key: np.ascontiguousarray(f[key][rows], dtype=MEMORY_DTYPES[key]) for key in ("neighbors", "distances")}

    return with_file(path, read)


def read_corruption(path: Path) -> dict[str, object]:
    """A corrupted-pattern dataset's `source` array (each test query's stored pattern, int64) and
    its `corruption_sigma` attribute; {} for a file without a `source` array."""
    path = Path(path)

    def read(f: h5py.File) -> dict[str, object]:
        if "source" not in f:
            return {}
        if "corruption_sigma" not in f.attrs:
            raise DatasetError(f"{path}: a `source` array without the attribute `corruption_sigma`")
        return {"source": np.asarray(f["source"][:], dtype=np.int64), "sigma": float(f.attrs["corruption_sigma"])}

    return with_file(path, read)
