"""Ground truth checked on a sample before a dataset is trusted.

Recall is computed against the file's `neighbors` and `distances`; a file whose ground truth is
reversed, belongs to another train set or another metric, or whose distances do not match its
ids, would give plausible but wrong numbers for every algorithm, and ann-benchmarks does not
check. For a seeded sample of test rows (all rows of a small file, 20 of a large one) this
checks that each `distances` row ascends, that the stored distances equal the distances
recomputed from `neighbors` under the file's metric, and that the stored first neighbour is as
near as the exact nearest point of `train` (a brute-force pass over the sample, in blocks).
The result is cached in the file's cache folder (beside it, or under the data directory when its
folder cannot be written: `harness.data.sidefiles`), keyed by its SHA-256, so each file is
checked once.
"""
from __future__ import annotations

from pathlib import Path
import numpy as np

from harness.data import sidefiles
from harness.data.distances import row_distances
from harness.errors import DatasetError
from harness.files import read_sidecar, write_sidecar

#: a stored distance may differ from the recomputed one by this much (recall's own epsilon) ...
ABS_TOLERANCE = 1e-3
#: ... plus this share of it (float32 storage of large distances)
REL_TOLERANCE = 1e-4
#: sampled rows: all when the brute-force pass is small, else at least this many
MIN_SAMPLE = 20
#: query-point distance computations the check may spend on the brute-force pass
BUDGET = 4_000_000
TRUST_HINT = "pass --trust-ground-truth to use the file anyway (recorded in every record's provenance)"


def sample_rows(n_test: int, n_train: int, seed: int = 0) -> np.ndarray:
    """The test rows checked: every row when n_test x n_train fits the budget, else a seeded sample."""
    size = min(n_test, max(MIN_SAMPLE, BUDGET // max(1, n_train)))
    return np.sort(np.random.default_rng(seed).choice(n_test, size=size, replace=False))


def check_ground_truth(path: Path, metric: str, train: np.ndarray, test: np.ndarray, neighbors: np.ndarray,
                       distances: np.ndarray) -> int:
    """Raise DatasetError naming the file, the row and what differs; returns the rows checked."""
    rows = sample_rows(len(test), len(train))
    queries = test[rows]
    stored = np.asarray(distances[rows], dtype=np.float64)
    recomputed = row_distances(metric, queries, train, neighbors[rows])
    nearest = _nearest_distance(metric, train, queries)
    for i, row in enumerate(rows):
        _check_row(path, int(row), stored[i], recomputed[i], nearest[i])
    return len(rows)


def _check_row(path: Path, row: int, stored: np.ndarray, recomputed: np.ndarray, nearest: float) -> None:
    where = f"dataset file {path}: ground truth of test row {row}"
    tolerance = ABS_TOLERANCE + REL_TOLERANCE * np.abs(stored)
    falls = np.flatnonzero(np.diff(stored) < -tolerance[1:])
    if len(falls):
        j = int(falls[0])
        raise DatasetError(
            f"{where}: `distances` must ascend, but column {j + 1} ({stored[j + 1]:.6g}) is smaller than column {j} "
            f"({stored[j]:.6g}) (reversed or unsorted ground truth)", hint=TRUST_HINT)
    off = np.flatnonzero(~(np.abs(stored - recomputed) <= tolerance))
    if len(off):
        j = int(off[0])
        raise DatasetError(
            f"{where}: `distances` column {j} is {stored[j]:.6g}, but the distance to the point `neighbors` names "
            f"there is {recomputed[j]:.6g} ({len(off)} of {len(stored)} columns differ: ground truth of another train "
            f"set, another metric, or distances that do not belong to their ids)", hint=TRUST_HINT)
    if stored[0] > nearest + ABS_TOLERANCE + REL_TOLERANCE * abs(nearest):
        raise DatasetError(
            f"{where}: the stored nearest neighbour is at {stored[0]:.6g}, but the exact nearest point of `train` is at "
            f"{nearest:.6g} (ground truth of another train set)", hint=TRUST_HINT)


def _nearest_distance(metric: str, train: np.ndarray, queries: np.ndarray, block: int = 65536) -> np.ndarray:
    """The exact nearest distance from each query to `train`, float64, in blocks of points
    (dot: the most negative -q.x, i.e. the largest inner product)."""
    q = np.asarray(queries, dtype=np.float64)
    if metric == "angular":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-300)
    best = np.full(len(q), np.inf)
    for start in range(0, len(train), block):
        x = np.asarray(train[start:start + block], dtype=np.float64)
        if metric == "angular":
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)
            d = 1.0 - q @ x.T
        elif metric == "dot":
            d = -(q @ x.T)
        else:
            d = np.sqrt(np.maximum((x * x).sum(1)[None, :] - 2.0 * q @ x.T + (q * q).sum(1)[:, None], 0.0))
        best = np.minimum(best, d.min(1))
    return best


def checked_before(path: Path, checksum: str, folder: Path | None = None) -> bool:
    """Whether the file with this checksum passed the check before (its cache in `folder`, the
    file's cache folder by default, says so)."""
    return (read_sidecar(sidefiles.side_file(path, ".groundtruth", folder)) or {}).get("sha256") == checksum


def remember(path: Path, checksum: str, rows: int, folder: Path | None = None) -> None:
    """Cache a passed check in `folder` (the file's cache folder by default); a folder that
    cannot be written only disables the cache."""
    target = sidefiles.side_file(path, ".groundtruth", folder)
    if sidefiles.make_folder(target.parent):
        write_sidecar(target, {"sha256": checksum, "rows_checked": rows})
