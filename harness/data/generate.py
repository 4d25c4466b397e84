"""Generated datasets: written locally in the ann-benchmarks layout, with exact ground truth.

Generated sets need no network and are small enough for tests and quick comparisons. The
random blob sets reproduce ann-benchmarks' `random-*` generators (scikit-learn's `make_blobs`
then `train_test_split`, both with random_state=1), written here with numpy alone so that
scikit-learn is not a dependency. `uniform-64-euclidean` is the seed note's own experiment.

Every generator is seeded: the same name gives the same arrays on every machine with the same
numpy/torch, so results computed on a generated set can be compared across runs.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
from tqdm import tqdm

from harness.data.distances import exact_knn
from harness.data.registry import DatasetInfo
from harness.errors import DatasetError
from harness.files import atomic_write

K_NEIGHBORS = 100
GT_CHUNK = 500  # queries per ground-truth step (and per progress-bar tick)


def make_blobs(n_samples: int, n_features: int, centers: int, seed: int = 1) -> np.ndarray:
    """Isotropic Gaussian blobs with scikit-learn's `make_blobs` semantics.

    Centres uniform in the box (-10, 10), unit standard deviation, samples split as evenly as
    possible over the centres (the first ones get one extra), then shuffled; all from one
    `RandomState(seed)` in that order, which is what makes the output match ann-benchmarks'.
    """
    rng = np.random.RandomState(seed)
    centres = rng.uniform(-10.0, 10.0, size=(centers, n_features))
    counts = [n_samples // centers + (1 if i < n_samples % centers else 0) for i in range(centers)]
    X = np.concatenate([rng.normal(loc=centres[i], scale=1.0, size=(n, n_features)) for i, n in enumerate(counts)])
    order = np.arange(n_samples)
    rng.shuffle(order)
    return X[order]


def split_train_test(X: np.ndarray, test_fraction: float = 0.1, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's `train_test_split(X, test_size=fraction, random_state=seed)` semantics."""
    n_test = math.ceil(test_fraction * len(X))
    order = np.random.RandomState(seed).permutation(len(X))
    return X[order[n_test:]], X[order[:n_test]]


def blobs(n_samples: int, n_features: int, centers: int) -> tuple[np.ndarray, np.ndarray]:
    """ann-benchmarks' `random-*` sets: blobs, then a 90/10 train/test split."""
    return split_train_test(make_blobs(n_samples, n_features, centers))


def uniform_note(n_train: int = 1000, n_test: int = 1000, dim: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The seed note's data: `rand(S, D) * 2` under seed 100, queries `rand(Q, D)` under seed 1000.

    Drawn with torch's CPU generator in float64, as the note does (its CUDA generator draws
    different numbers, so the values match the note's code run on a CPU).
    """
    import torch

    data = torch.rand(n_train, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(100)) * 2
    queries = torch.rand(n_test, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1000))
    return data.numpy(), queries.numpy()


#: generator kinds a dataset entry (harness/data/datasets.yaml) may name, with its arguments
GENERATORS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "blobs": blobs,
    "uniform-note": uniform_note,
}


def ground_truth(
    distance: str, train: np.ndarray, test: np.ndarray, k: int = K_NEIGHBORS, progress: bool = True, label: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN of every test row, in chunks of queries so that progress can be shown."""
    train64 = np.asarray(train, dtype=np.float64)
    k = min(k, len(train64))
    ids = np.empty((len(test), k), dtype=np.int64)
    dists = np.empty((len(test), k), dtype=np.float64)
    starts = range(0, len(test), GT_CHUNK)
    bar = tqdm(starts, desc=f"ground truth {label}".strip(), unit="chunk", file=sys.stderr, disable=not progress)
    for start in bar:
        part = slice(start, min(len(test), start + GT_CHUNK))
        ids[part], dists[part] = exact_knn(distance, train64, test[part], k)
    return ids, dists


def write_ann_hdf5(
    path: Path,
    train: np.ndarray,
    test: np.ndarray,
    neighbors: np.ndarray,
    distances: np.ndarray,
    distance: str,
    point_type: str = "float",
) -> None:
    """Write arrays in the ann-benchmarks layout (no atomicity: callers write to a temp name)."""
    with h5py.File(path, "w") as f:
        f.attrs["type"] = "dense"
        f.attrs["distance"] = distance
        f.attrs["dimension"] = int(train.shape[1])
        f.attrs["point_type"] = point_type
        f.create_dataset("train", data=np.asarray(train, dtype=np.float32))
        f.create_dataset("test", data=np.asarray(test, dtype=np.float32))
        f.create_dataset("neighbors", data=np.asarray(neighbors, dtype=np.int64))
        f.create_dataset("distances", data=np.asarray(distances, dtype=np.float64))


def generate(info: DatasetInfo, path: Path, progress: bool = True) -> Path:
    """Generate `info`'s dataset into `path` (written to a temporary name, then renamed)."""
    recipe = dict(info.generator or {})
    kind = recipe.pop("kind", None)
    if kind not in GENERATORS:
        raise DatasetError(f"dataset {info.name} cannot be generated locally; it has to be downloaded")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    train, test = GENERATORS[kind](**recipe)
    # Ground truth is computed on the float32 values actually stored, so it is exact for the file.
    train, test = train.astype(np.float32), test.astype(np.float32)
    neighbors, distances = ground_truth(info.distance, train, test, progress=progress, label=info.name)
    return atomic_write(path, lambda tmp: write_ann_hdf5(tmp, train, test, neighbors, distances, info.distance))
