"""The loader: every validation failure names the file and the field; good files load right."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import pytest

from harness.data.format import validate_file
from harness.data.loader import file_checksum, load_file, open_dataset
from harness.errors import ConfigError, DatasetError

GOOD = {
    "train": np.arange(40, dtype=np.float32).reshape(10, 4),
    "test": np.ones((3, 4), dtype=np.float32),
    "neighbors": np.zeros((3, 5), dtype=np.int32),
    "distances": np.ones((3, 5), dtype=np.float32),
}


def write_raw(path: Path, drop: tuple[str, ...] = (), attrs: dict[str, Any] | None = None, **arrays: Any) -> Path:
    """A file in ann-benchmarks layout with fields replaced or dropped, to provoke one error."""
    content = {**GOOD, **arrays}
    with h5py.File(path, "w") as f:
        for key, value in {"distance": "euclidean", "dimension": 4, **(attrs or {})}.items():
            if value is not None:
                f.attrs[key] = value
        for key, value in content.items():
            if key not in drop:
                f.create_dataset(key, data=value)
    return path


def with_value(key: str, row: int, col: int, value: float) -> np.ndarray:
    array = GOOD[key].copy()
    array[row, col] = value
    return array


BAD_FILES: list[tuple[str, dict[str, Any], str, str]] = [
    ("missing neighbors", {"drop": ("neighbors",)}, "'neighbors'", "no 'neighbors'"),
    ("widths differ", {"test": np.ones((3, 5), np.float32)}, "'test'", "4 columns"),
    ("dimension attr", {"attrs": {"dimension": 7}}, "'dimension'", "found 7"),
    ("NaN in train", {"train": with_value("train", 2, 1, np.nan)}, "'train'", "nan at row 2, column 1"),
    ("Inf in test", {"test": with_value("test", 1, 3, np.inf)}, "'test'", "inf at row 1, column 3"),
    ("Inf in distances", {"distances": with_value("distances", 0, 0, -np.inf)}, "'distances'", "finite"),
    ("empty train", {"train": np.zeros((0, 4), np.float32)}, "'train'", "at least one row"),
    ("jaccard", {"attrs": {"distance": "jaccard"}}, "'distance'", "'jaccard'"),
    ("hamming", {"attrs": {"distance": "hamming"}}, "'distance'", "euclidean, angular"),
    ("no distance attr", {"attrs": {"distance": None}}, "'distance'", "no such attribute"),
    ("neighbors too big", {"neighbors": with_value("neighbors", 2, 4, 10)}, "'neighbors'", "10 in row 2"),
    ("neighbors negative", {"neighbors": with_value("neighbors", 1, 0, -1)}, "'neighbors'", "[0, 10)"),
    ("neighbors rows", {"neighbors": np.zeros((2, 5), np.int32)}, "'neighbors'", "shape (2, 5)"),
    ("distances shape", {"distances": np.ones((3, 4), np.float32)}, "'distances'", "(3, 5)"),
    ("1-D train", {"train": np.ones(4, np.float32)}, "'train'", "2-D"),
    ("float neighbors", {"neighbors": np.zeros((3, 5), np.float32)}, "'neighbors'", "integer"),
]


@pytest.mark.parametrize("case, options, field, detail", BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_bad_files_are_refused_naming_file_and_field(
    tmp_path: Path, case: str, options: dict[str, Any], field: str, detail: str
) -> None:
    path = write_raw(tmp_path / "bad-4-euclidean.hdf5", **options)
    for check in (validate_file, load_file):
        with pytest.raises(DatasetError) as caught:
            check(path)
        message = caught.value.message
        assert str(path) in message and field in message and detail in message, message


def test_unsupported_distance_hint_says_what_is_supported(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "x.hdf5", attrs={"distance": "hamming"})
    with pytest.raises(DatasetError) as caught:
        load_file(path)
    assert "'hamming'" in str(caught.value) and "euclidean, angular, dot" in str(caught.value)


def test_non_hdf5_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.hdf5"
    path.write_text("this is not HDF5\n" * 100)
    with pytest.raises(DatasetError) as caught:
        validate_file(path)
    assert str(path) in caught.value.message and "not a valid HDF5 file" in caught.value.message
    assert "python -m harness datasets download notes --force" in (caught.value.hint or "")


def test_truncated_hdf5_file(tmp_path: Path, make_tiny_dataset: Callable[..., Path]) -> None:
    path = make_tiny_dataset("cut.hdf5", n_train=2000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for check in (validate_file, load_file):
        with pytest.raises(DatasetError) as caught:
            check(path)
        assert "not a valid HDF5 file" in caught.value.message and str(path) in caught.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(str(tmp_path / "absent.hdf5"))


def test_good_file_loads_with_the_promised_types(make_tiny_dataset: Callable[..., Path]) -> None:
    path = make_tiny_dataset("tiny.h5")
    validate_file(path)
    ds = open_dataset(str(path))
    assert ds.name == "tiny" and ds.path == path and ds.distance == "euclidean"
    assert ds.train.dtype == np.float32 and ds.train.flags.c_contiguous
    assert ds.test.dtype == np.float32 and ds.test.flags.c_contiguous
    assert ds.neighbors.dtype == np.int64 and ds.distances.dtype == np.float64
    assert (ds.n_train, ds.n_test, ds.dimension) == (200, 10, 8)
    assert ds.neighbors.shape == ds.distances.shape == (10, 100)
    assert ds.point_type == "float"


def test_angular_rows_are_normalised_and_distances_kept(make_tiny_dataset: Callable[..., Path]) -> None:
    path = make_tiny_dataset("ang.hdf5", distance="angular")
    ds = load_file(path)
    assert np.allclose(np.linalg.norm(ds.train, axis=1), 1, atol=1e-6)
    assert np.allclose(np.linalg.norm(ds.test, axis=1), 1, atol=1e-6)
    with h5py.File(path) as f:
        assert np.array_equal(ds.distances, f["distances"][:])
    # On unit vectors, squared Euclidean distance is twice the angular distance.
    nn = ds.train[ds.neighbors[:, 0]]
    assert np.allclose(((nn - ds.test) ** 2).sum(1), 2 * ds.distances[:, 0], atol=1e-5)


def test_siftsmall_fixture_loads(siftsmall_path: Path, tmp_path: Path) -> None:
    copy = shutil.copy(siftsmall_path, tmp_path / siftsmall_path.name)  # the sidecar goes in tmp_path
    ds = open_dataset(str(copy))
    assert ds.name == "siftsmall-128-euclidean"
    assert (ds.n_train, ds.n_test, ds.dimension) == (10000, 200, 128)
    assert ds.neighbors.shape == (200, 100)
    d = np.linalg.norm(ds.train[ds.neighbors[:5, 0]] - ds.test[:5], axis=1)
    assert np.allclose(d, ds.distances[:5, 0], rtol=1e-4)


def test_checksum_is_cached_and_refreshed(make_tiny_dataset: Callable[..., Path]) -> None:
    path = make_tiny_dataset("sum.hdf5")
    first = file_checksum(path)
    sidecar = path.with_name("sum.hdf5.sha256")
    cached = json.loads(sidecar.read_text())
    assert cached["sha256"] == first and cached["size"] == path.stat().st_size
    # A stale cache entry with matching size and mtime is trusted (that is the point of caching) ...
    sidecar.write_text(json.dumps({**cached, "sha256": "cached"}))
    assert file_checksum(path) == "cached"
    # ... and a changed file is hashed again.
    make_tiny_dataset("sum.hdf5", seed=1)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert file_checksum(path) not in ("cached", first)


def test_checksum_survives_an_unreadable_sidecar(make_tiny_dataset: Callable[..., Path]) -> None:
    path = make_tiny_dataset("odd.hdf5")
    path.with_name("odd.hdf5.sha256").write_text("{not json")
    assert len(file_checksum(path)) == 64


def test_open_by_name_without_download_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        open_dataset("sift-128", tmp_path, download=False)
    assert "python -m harness datasets download sift-128-euclidean" in (caught.value.hint or "")
    assert str((tmp_path / "sift-128-euclidean.hdf5").absolute()) in (caught.value.hint or "")


def test_open_by_name_uses_a_present_file(tmp_path: Path, make_tiny_dataset: Callable[..., Path]) -> None:
    shutil.copy(make_tiny_dataset("t.hdf5", dim=128), tmp_path / "sift-128-euclidean.hdf5")
    ds = open_dataset("sift-128", tmp_path, download=False)
    assert ds.name == "sift-128-euclidean" and ds.dimension == 128


def test_unknown_name_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        open_dataset("no-such-set", tmp_path)


@pytest.mark.parametrize("spec", ["siftsmall", "uniform-64-euclidean"])
def test_real_and_generated_ground_truth_pass_the_spot_check_once(spec, tmp_path, siftsmall_path):
    import shutil

    from harness.data import groundtruth

    if spec == "siftsmall":  # a copy: the check's cache is written beside the file
        spec = str(shutil.copy(siftsmall_path, tmp_path / siftsmall_path.name))
    dataset = open_dataset(spec, tmp_path / "data", progress=False)
    assert dataset.ground_truth.startswith("spot-checked")
    assert groundtruth.checked_before(dataset.path, dataset.checksum)
    rows = groundtruth.sample_rows(dataset.n_test, dataset.n_train)
    assert len(rows) == min(dataset.n_test, max(groundtruth.MIN_SAMPLE, groundtruth.BUDGET // dataset.n_train))
