"""How hard each test query is, from the true distances a dataset file stores, and a record's
recall split by that difficulty.

Three measures of one query q, each from `distances[q]` (the sorted true distances to its stored
nearest neighbours, 100 per query in a dataset file; `d_i` the i-th, `d_1` the nearest):

- **LID**, the local intrinsic dimensionality, by its maximum-likelihood estimate (Levina and
  Bickel 2005; the form of Amsaleg et al. 2015, "Estimating local intrinsic dimensionality"):

      LID(q) = -( (1/k) * sum_{i=1..k} ln(d_i / d_k) )^-1,    k = LID_K = 20

  The i = k term is ln 1 = 0 and is kept in the mean, as the formula writes it. A distance
  d_i = 0 (a stored point equal to the query: a duplicate) has no logarithm; such terms are left
  out and the mean is taken over the m positive distances among the k (still divided by d_k):
  the estimate describes the neighbourhood around the duplicates rather than failing. When
  d_k = 0 (k or more duplicates) the estimate is undefined: NaN, and the query belongs to no
  tercile. When every positive d_i equals d_k the sum is 0: LID = +inf (all neighbours
  equidistant, the hardest case). Higher LID: harder (distances concentrate).
  k = 20: the local neighbourhood a search explores; the estimator's bias from the data's
  curvature grows with k, its variance shrinks (Amsaleg et al. found k of 20 to 100 usable).
- **Relative contrast** (He, Kumar and Chang 2012): the mean distance from q to the data over its
  distance to the nearest neighbour. The data mean needs the whole train set; here it is
  *estimated* by the mean of the stored distances:

      RC_100(q) = ( (1/K) * sum_{i=1..K} d_i ) / d_1,    K = the stored columns (100)

  a local contrast that reads no train vector (the report reads records and the ground truth
  only). It is at most the data-wide contrast, and orders queries by how far the nearest
  neighbour stands out from its 100 nearest rivals, which is what a search must resolve.
  d_1 = 0: +inf (a duplicate stands out infinitely), unless every stored distance is 0 (NaN).
  Higher RC: easier.
- **Neighbour ratio** d_2 / d_1: how clearly the nearest beats the second. d_1 = d_2 (a tie,
  duplicates included): 1. d_1 = 0 < d_2: +inf. Higher: easier.

Terciles (`terciles`) cut a dataset's test queries into three equal-count groups by a measure,
ordered from easiest (t1) to hardest (t3) for every measure (low LID, high RC, high ratio are
easy); equal values share a tercile (average ranks), a NaN is in none. The cuts are made over
every test query of the dataset file, so each record's first n queries are split by the same
cut points, whatever n.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy import stats

#: neighbours the LID estimate uses
LID_K = 20
#: the difficulty measures, their labels, and whether a higher value means a harder query
MEASURES: dict[str, tuple[str, bool]] = {
    "lid": (f"LID (MLE, k={LID_K})", True),
    "rc": ("relative contrast (mean of the 100 stored distances / d1)", False),
    "ratio": ("d2 / d1", False),
}
TERCILE_NAMES: tuple[str, ...] = ("t1", "t2", "t3")


def lid_mle(distances: np.ndarray, k: int = LID_K) -> np.ndarray:
    """The maximum-likelihood LID of each row of sorted distances (n x >= k), as the module says."""
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] < k or k < 2:
        raise ValueError(f"LID needs rows of at least k={k} sorted distances (k >= 2), got shape {d.shape}")
    d = d[:, :k]
    dk = d[:, k - 1 : k]
    positive = d > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(positive, np.log(np.where(positive, d, 1.0) / dk), 0.0)
        mean = logs.sum(axis=1) / positive.sum(axis=1)
        lid = -1.0 / mean
    lid[mean == 0] = np.inf
    lid[dk[:, 0] <= 0] = np.nan
    return lid


def relative_contrast(distances: np.ndarray) -> np.ndarray:
    """RC_100: the mean of each row's stored distances over its first (as the module says)."""
    d = np.asarray(distances, dtype=np.float64)
    mean = d.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rc = mean / d[:, 0]
    rc[(d[:, 0] == 0) & (mean > 0)] = np.inf
    rc[(d[:, 0] == 0) & (mean == 0)] = np.nan
    return rc


def neighbour_ratio(distances: np.ndarray) -> np.ndarray:
    """d_2 / d_1 of each row (1 for a tie, +inf when only d_1 is 0)."""
    d = np.asarray(distances, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = d[:, 1] / d[:, 0]
    ratio[d[:, 1] == d[:, 0]] = 1.0
    return ratio


def measures(distances: np.ndarray) -> dict[str, np.ndarray]:
    """Every measure of `MEASURES` for each row of a dataset's stored true distances. A file that
    stores fewer than LID_K neighbours gets LID over the ones it stores; one with a single
    column gets NaN for LID and the ratio (no query in their terciles)."""
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] == 0:
        raise ValueError(f"difficulty needs one row of sorted true distances per query, got shape {d.shape}")
    if d.shape[1] < 2:
        undefined = np.full(len(d), np.nan)
        return {"lid": undefined, "rc": relative_contrast(d), "ratio": undefined.copy()}
    return {"lid": lid_mle(d, min(LID_K, d.shape[1])), "rc": relative_contrast(d), "ratio": neighbour_ratio(d)}


def terciles(values: np.ndarray, harder_is_higher: bool = True) -> np.ndarray:
    """Each value's tercile, 0 (easiest third) to 2 (hardest third); -1 for NaN. Equal values get
    the same tercile (their average rank decides)."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(len(values), -1, dtype=np.int64)
    defined = ~np.isnan(values)
    n = int(defined.sum())
    if n == 0:
        return out
    key = values[defined] if harder_is_higher else -values[defined]
    ranks = stats.rankdata(key, method="average")  # 1..n
    out[defined] = np.minimum(2, np.floor(3.0 * (ranks - 0.5) / n)).astype(np.int64)
    return out


def dataset_terciles(distances: np.ndarray) -> dict[str, np.ndarray]:
    """The tercile of every stored query by every measure (easiest 0 .. hardest 2)."""
    return {name: terciles(values, MEASURES[name][1]) for name, values in measures(distances).items()}


def by_tercile(values: np.ndarray, labels: np.ndarray) -> list[float | None]:
    """The mean of `values` (one per query, the first n of the dataset) within each tercile of
    `labels` (the dataset's, at least n); None for a tercile without any of these queries."""
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels)[: len(values)]
    return [float(values[labels == t].mean()) if np.any(labels == t) else None for t in range(3)]


def tercile_columns(prefix: str, values: np.ndarray | None, labels: np.ndarray | None, measure: str = "lid") -> dict[str, float | None]:
    """`{prefix}_{measure}_t1..t3`: `by_tercile` as named columns (None each without values)."""
    means: Sequence[float | None] = [None] * 3 if values is None or labels is None else by_tercile(values, labels)
    return {f"{prefix}_{measure}_{name}": mean for name, mean in zip(TERCILE_NAMES, means)}


def tercile_counts(labels: np.ndarray, n: int) -> Mapping[str, int]:
    """How many of the first n queries fall in each tercile."""
    head = np.asarray(labels)[:n]
    return {name: int(np.sum(head == t)) for t, name in enumerate(TERCILE_NAMES)}
