"""Shared fixtures: small dataset files and an isolated data directory.

Keep this file small; fixtures used by one test module belong in that module.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from harness.data.distances import exact_knn
from harness.data.generate import write_ann_hdf5

DATA = Path(__file__).parent / "data"

if os.environ.get("GPNN_DISABLE_ASCENT") == "1":
    # every ascent rule a no-op for the whole run: lists the tests that catch a broken climb
    from climb_switch import disable_ascent

    disable_ascent()


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test may write into the repository's datasets/ or reach the real server by accident."""
    data_dir = tmp_path / "datasets"
    monkeypatch.setenv("GPNN_DATA_DIR", str(data_dir))
    monkeypatch.setenv("GPNN_DATASET_URL", "http://127.0.0.1:9/unreachable")
    return data_dir


@pytest.fixture
def siftsmall_path() -> Path:
    """Real SIFT descriptors in ann-benchmarks layout (10k train, 200 test, d=128); read-only."""
    return DATA / "siftsmall-128-euclidean.hdf5"


def write_tiny_dataset(
    path: Path, n_train: int = 200, n_test: int = 10, dim: int = 8, distance: str = "euclidean", seed: int = 0
) -> Path:
    """A valid ann-benchmarks file with exact ground truth (k = min(100, n_train))."""
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(n_train, dim)).astype(np.float32)
    test = rng.normal(size=(n_test, dim)).astype(np.float32)
    neighbors, distances = exact_knn(distance, train, test, 100)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_ann_hdf5(path, train, test, neighbors, distances, distance)
    return path


@pytest.fixture
def make_tiny_dataset(tmp_path: Path) -> Callable[..., Path]:
    """Factory: `make_tiny_dataset(name="x.hdf5", **options)` writes a valid tiny file in tmp_path."""

    def make(name: str = "tiny-8-euclidean.hdf5", **options: object) -> Path:
        return write_tiny_dataset(tmp_path / name, **options)  # type: ignore[arg-type]

    return make
