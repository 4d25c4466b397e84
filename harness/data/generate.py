"""Generated datasets: written locally in the ann-benchmarks layout, with exact ground truth.

Generated sets need no network and are small enough for tests and quick comparisons. The
random blob sets reproduce ann-benchmarks' `random-*` generators (scikit-learn's `make_blobs`
then `train_test_split`, both with random_state=1), written here with numpy alone so that
scikit-learn is not a dependency. `uniform-64-euclidean` is the seed note's own experiment.
`blobs-norms` makes an inner-product (`dot`) set that is not angular in disguise: the blobs
with each point's norm multiplied by its own log-normal factor. `corrupted` is the associative
memory's workload: queries are stored points plus noise, and the file keeps each query's source
pattern (`source`) beside the exact ground truth.

A generator returns (train, test) or (train, test, extras): arrays of `extras` are written as
further datasets of the file, scalars as its attributes; the ann-benchmarks arrays stay as they are.

Every generator is seeded: the same name gives the same arrays on every machine with the same
numpy/torch, so results computed on a generated set can be compared across runs.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import h5py
import numpy as np
from tqdm import tqdm

from harness.data.distances import exact_knn
from harness.data.format import validate_file, with_file
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


def blobs_norms(n_samples: int, n_features: int, centers: int, norm_sigma: float = 0.5, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The blobs of `blobs`, each point (train and test) scaled by its own factor exp(norm_sigma z),
    z standard normal from `RandomState(seed)`, then the same 90/10 split.

    For inner-product search: on unit-free blobs the largest inner product mostly follows the
    direction; varied norms make it differ from the angular (and the Euclidean) neighbours, as
    in recommendation factors, where popular items have long vectors.
    """
    X = make_blobs(n_samples, n_features, centers)
    factors = np.exp(norm_sigma * np.random.RandomState(seed).standard_normal(n_samples))
    return split_train_test(X * factors[:, None])


#: points sampled to measure a stored set's median nearest-neighbour spacing
SPACING_SAMPLE = 1000


def median_nn_spacing(points: np.ndarray, sample: int = SPACING_SAMPLE, seed: int = 0) -> float:
    """Median Euclidean distance from up to `sample` points to their nearest other point (float64)."""
    rows = np.sort(np.random.default_rng(seed).choice(len(points), size=min(sample, len(points)), replace=False))
    ids, dists = exact_knn("euclidean", points, points[rows], 2)
    other = np.where(ids[:, 0] == rows, dists[:, 1], dists[:, 0])  # the point itself is not its neighbour
    return float(np.median(other))


def corrupted(
    sigma: float, n_queries: int = 1000, seed: int = 0, base_generator: Mapping[str, Any] | None = None,
    base: str | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Stored patterns and corrupted copies of some of them as queries: the retrieval workload.

    The stored points are the `train` of a base: `base_generator` (a generator recipe, as a
    datasets.yaml entry names one) or `base`, the path of a dataset file (a user's data).
    `n_queries` stored points, drawn without replacement under `seed`, each get isotropic
    Gaussian noise of length about sigma x s, s the stored points' median nearest-neighbour
    spacing (per coordinate: standard deviation sigma s / sqrt(dimension)). Extras: `source`,
    each query's pattern (int64), and the attributes `corruption_sigma` and `nn_spacing`.
    """
    if (base_generator is None) == (base is None):
        raise DatasetError("a corrupted dataset needs exactly one base: `base_generator` (a recipe) or `base` (a file path)")
    if base is not None:
        stored = _base_train(Path(base))
    else:
        recipe = dict(base_generator or {})
        kind = recipe.pop("kind", None)
        if kind not in GENERATORS or kind == "corrupted":
            raise DatasetError(f"corrupted: base_generator kind {kind!r} is not a generator of stored points "
                               f"(kinds: {', '.join(k for k in GENERATORS if k != 'corrupted')})")
        stored = GENERATORS[kind](**recipe)[0]
    stored = np.asarray(stored, dtype=np.float32)
    if not 1 <= n_queries <= len(stored):
        raise DatasetError(f"corrupted: n_queries must be in [1, {len(stored)}] (the stored points), found {n_queries}")
    spacing = median_nn_spacing(stored)
    rng = np.random.default_rng(seed)
    source = np.sort(rng.choice(len(stored), size=n_queries, replace=False)).astype(np.int64)
    noise = rng.standard_normal((n_queries, stored.shape[1])) * (sigma * spacing / math.sqrt(stored.shape[1]))
    queries = stored[source].astype(np.float64) + noise
    return stored, queries, {"source": source, "corruption_sigma": float(sigma), "nn_spacing": spacing}


def _base_train(path: Path) -> np.ndarray:
    """The `train` array of a base dataset file, validated first (Euclidean files only: the noise is Euclidean)."""
    validate_file(path)
    distance = with_file(path, lambda f: f.attrs["distance"])
    distance = distance.decode() if isinstance(distance, bytes) else str(distance)
    if distance != "euclidean":
        raise DatasetError(f"corrupted: base file {path}: attribute 'distance': expected 'euclidean', found {distance!r}")
    return with_file(path, lambda f: np.asarray(f["train"][:], dtype=np.float32))


#: generator kinds a dataset entry (harness/data/datasets.yaml) may name, with its arguments
GENERATORS: dict[str, Callable[..., tuple[Any, ...]]] = {
    "blobs": blobs,
    "blobs-norms": blobs_norms,
    "uniform-note": uniform_note,
    "corrupted": corrupted,
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
    # a bar redraws with carriage returns: only on a terminal; a log gets one line when it is done
    terminal = sys.stderr.isatty()
    began = time.monotonic()
    bar = tqdm(starts, desc=f"ground truth {label}".strip(), unit="chunk", file=sys.stderr,
               disable=not progress or not terminal)
    for start in bar:
        part = slice(start, min(len(test), start + GT_CHUNK))
        ids[part], dists[part] = exact_knn(distance, train64, test[part], k)
    if progress and not terminal:
        name = f"ground truth {label}".strip()
        print(f"{name}: {len(test)} queries x {k} neighbours in {time.monotonic() - began:.1f} s", file=sys.stderr, flush=True)
    return ids, dists


def write_ann_hdf5(
    path: Path,
    train: np.ndarray,
    test: np.ndarray,
    neighbors: np.ndarray,
    distances: np.ndarray,
    distance: str,
    point_type: str = "float",
    extras: Mapping[str, Any] | None = None,
) -> None:
    """Write arrays in the ann-benchmarks layout (no atomicity: callers write to a temp name);
    `extras`: arrays become further datasets, scalars attributes (a generator's own facts)."""
    with h5py.File(path, "w") as f:
        for key, value in (extras or {}).items():
            if isinstance(value, np.ndarray):
                f.create_dataset(key, data=value)
            else:
                f.attrs[key] = value
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
    train, test, *rest = GENERATORS[kind](**recipe)
    extras = rest[0] if rest else None
    # Ground truth is computed on the float32 values actually stored, so it is exact for the file.
    train, test = train.astype(np.float32), test.astype(np.float32)
    neighbors, distances = ground_truth(info.distance, train, test, progress=progress, label=info.name)
    return atomic_write(path, lambda tmp: write_ann_hdf5(tmp, train, test, neighbors, distances, info.distance, extras=extras))
