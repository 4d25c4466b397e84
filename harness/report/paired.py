"""Per-query answers of records, and what two records measured on the same queries can say together.

A record stores its answers per query (`ids`, `distances`, `dist_comps`, ... in its `.h5`), so
two records of one dataset that ran the same first n test queries can be compared query by query
rather than through two independent recall intervals: the queries only one of them answers right
(the discordant pairs) carry the whole difference, tested exactly by McNemar's test, and a
bootstrap that resamples queries jointly gives intervals of the recall gain and of the ratio of
distance computations.

Scoring needs the dataset's ground truth, which the records do not hold: the command layer reads
it from the dataset file and hands it over as `Truth`, keyed by the dataset checksum the records
name (`provenance.dataset_sha256`). The hit rule is `harness.hits`, the one the run scored with,
and every recomputed recall is checked against the record's stored one before it is used.

The same per-query scores let a summary choose on some queries and report on others
(`tune_split`): the fastest configuration whose recall on the tuning queries reaches a threshold,
with its recall on the held-out ones, which the choice never saw.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
from scipy import stats

from harness.hits import hits_by_distance, hits_by_id
from harness.report.difficulty import dataset_terciles
from harness.records import load_arrays

Record = Mapping[str, Any]
#: the recalls a per-query score exists for (distance-based with ties, and by id), as the run's metrics
PER_QUERY_METRICS: tuple[str, ...] = ("recall_at_1", "recall_at_k", "recall_at_1_id", "recall_at_k_id")
#: fixed seeds: the same records give the same intervals and the same split on every run
BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 2000
DEFAULT_TUNE_SEED = 0
#: a recomputed recall must equal the stored one to this (float sums of 0/1 hits)
_RECALL_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Truth:
    """The ground truth of a dataset's first test queries, as the dataset file holds it:
    `neighbors` (ids, nearest first) and `distances` (sorted), one row per query."""

    neighbors: np.ndarray
    distances: np.ndarray
    #: a corrupted-pattern dataset's `source` array (the stored pattern each query was made
    #: from) and its `corruption_sigma`; None for other datasets
    source: np.ndarray | None = None
    sigma: float | None = None


def per_query_recall(ids: np.ndarray, distances: np.ndarray, truth: Truth, k: int, metric: str = "recall_at_1") -> np.ndarray:
    """Each query's recall (hits / k; for recall@1 a 0/1 hit) of one stored answer, by the run's rule.

    `ids` and `distances` are a record's arrays (n queries x k); `truth` holds at least n rows.
    Their mean is the record's `metrics[metric]`.
    """
    n = len(ids)
    width = 1 if metric.startswith("recall_at_1") else k
    if metric.endswith("_id"):
        hits = hits_by_id(ids, truth.neighbors[:n], width)
    else:
        hits = hits_by_distance(distances, truth.distances[:n], width, ids=ids)
    return hits / float(width)


class Answers:
    """Per-query scores and distance computations of records, each arrays file read once.

    `truths` maps a dataset checksum to its `Truth`; `missing` maps a checksum to why its truth
    could not be had (the file not found, ...), which `why_not` repeats. A record's scores are
    computed on first use for every recall in `PER_QUERY_METRICS` and kept (its answers are not).
    """

    def __init__(self, truths: Mapping[str, Truth] | None = None, missing: Mapping[str, str] | None = None):
        self._truths = dict(truths or {})
        self._missing = dict(missing or {})
        self._cache: dict[str, tuple[dict[str, np.ndarray], str | None]] = {}
        self._terciles: dict[str, dict[str, np.ndarray]] = {}

    def scores(self, record: Record, metric: str = "recall_at_1") -> np.ndarray | None:
        """Per-query recall of `record` for `metric` (None: see `why_not`)."""
        return self._entry(record)[0].get(metric)

    def hits(self, record: Record) -> np.ndarray | None:
        """Per-query recall@1 hits of `record` as booleans (None: see `why_not`)."""
        scores = self.scores(record, "recall_at_1")
        return None if scores is None else scores > 0.5

    def dist_comps(self, record: Record) -> np.ndarray | None:
        """Per-query distance computations of `record`, None when its adapter does not count them."""
        return self._entry(record)[0].get("dist_comps")

    def iterations(self, record: Record) -> np.ndarray | None:
        """Per-query ascent steps of `record`, None when its adapter does not count them."""
        return self._entry(record)[0].get("iterations")

    def truth(self, record: Record) -> Truth | None:
        """The ground truth of the dataset file `record` was measured on, None when not had."""
        return self._truths.get(str((record.get("provenance") or {}).get("dataset_sha256") or ""))

    def terciles(self, record: Record) -> dict[str, np.ndarray] | None:
        """The difficulty tercile of every test query of `record`'s dataset file by each measure of
        `harness.report.difficulty` (0 easiest .. 2 hardest), cut over all the file's stored queries;
        None without its ground truth, and for inner-product (`dot`) data, whose stored distances are
        negative inner products: the ratios of distances these measures take mean nothing there."""
        truth = self.truth(record)
        if truth is None or record.get("distance") == "dot":
            return None
        checksum = str(record["provenance"]["dataset_sha256"])
        if checksum not in self._terciles:
            self._terciles[checksum] = dataset_terciles(truth.distances)
        return self._terciles[checksum]

    def source_recovered(self, record: Record) -> np.ndarray | None:
        """Per query of a corrupted-pattern dataset: whether the first returned id is the stored
        pattern the query was made from (`Truth.source`); None for other datasets or without answers."""
        truth, first = self.truth(record), self._entry(record)[0].get("first_id")
        if truth is None or truth.source is None or first is None or self.why_not(record) is not None:
            return None
        return first == np.asarray(truth.source)[: len(first)]

    def why_not(self, record: Record) -> str | None:
        """Why `record` has no per-query scores, None when it has them."""
        return self._entry(record)[1]

    def _entry(self, record: Record) -> tuple[dict[str, np.ndarray], str | None]:
        key = str(record.get("_path") or id(record))
        if key not in self._cache:
            self._cache[key] = self._read(record)
        return self._cache[key]

    def _read(self, record: Record) -> tuple[dict[str, np.ndarray], str | None]:
        if not record.get("_path") or not record.get("arrays"):
            return {}, "a record without an arrays file has no per-query answers"
        arrays = load_arrays(record)
        found: dict[str, np.ndarray] = {}
        if arrays.get("dist_comps") is not None:
            found["dist_comps"] = np.asarray(arrays["dist_comps"], dtype=np.float64)
        if arrays.get("iterations") is not None:
            found["iterations"] = np.asarray(arrays["iterations"], dtype=np.float64)
        if arrays.get("ids") is not None and np.ndim(arrays["ids"]) == 2 and np.shape(arrays["ids"])[1] > 0:
            found["first_id"] = np.asarray(arrays["ids"])[:, 0].astype(np.int64)
        checksum = str((record.get("provenance") or {}).get("dataset_sha256") or "")
        truth = self._truths.get(checksum)
        if not checksum:
            return found, "the record names no dataset checksum, so its ground truth cannot be found"
        if truth is None:
            return found, self._missing.get(checksum, f"no ground truth for dataset file sha256 {checksum[:12]}")
        if "ids" not in arrays or "distances" not in arrays:
            return found, "the record's arrays hold no ids and distances"
        if len(truth.distances) < len(arrays["ids"]):
            return found, f"the dataset file holds {len(truth.distances)} test queries, the record {len(arrays['ids'])}"
        return _scored(record, arrays, truth, found)


def _scored(
    record: Record, arrays: Mapping[str, np.ndarray], truth: Truth, found: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], str | None]:
    """`found` plus the per-query recalls, each checked against the record's stored mean."""
    k = int(record.get("k") or arrays["ids"].shape[1])
    for name in PER_QUERY_METRICS:
        scores = per_query_recall(arrays["ids"], arrays["distances"], truth, k, name)
        stored = (record.get("metrics") or {}).get(name)
        if isinstance(stored, (int, float)) and abs(float(scores.mean()) - float(stored)) > _RECALL_TOLERANCE:
            return found, (
                f"recomputed {name} ({scores.mean():.6f}) differs from the record's ({stored:.6f}): the dataset file's "
                "ground truth is not the one the record was scored with"
            )
        found[name] = scores
    return found, None


# --- paired statistics ----------------------------------------------------------------------------

#: the paired columns a (method, control) or (A, B) pair gets
PAIRED_COLUMNS: tuple[str, ...] = (
    "only_method", "only_control", "mcnemar_p", "recall_gain_low", "recall_gain_high", "dist_ratio_low", "dist_ratio_high",
)


def same_queries(a: Record, b: Record) -> str | None:
    """None when two records answered the same queries (the same first n of the same dataset
    file), else why not."""
    if a.get("n_queries") != b.get("n_queries"):
        return f"measured on different numbers of queries ({a.get('n_queries')} and {b.get('n_queries')})"
    sha_a = (a.get("provenance") or {}).get("dataset_sha256")
    sha_b = (b.get("provenance") or {}).get("dataset_sha256")
    if sha_a is None or sha_a != sha_b:
        return "measured on different dataset files (or one names none)"
    return None


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact McNemar test: the two-sided binomial p-value of the discordant counts (1.0 without any)."""
    n = only_a + only_b
    return 1.0 if n == 0 else float(stats.binomtest(only_a, n, 0.5).pvalue)


def discordant(hits_a: np.ndarray, hits_b: np.ndarray) -> tuple[int, int]:
    """(queries only A answers right, queries only B answers right)."""
    a, b = np.asarray(hits_a, dtype=bool), np.asarray(hits_b, dtype=bool)
    return int(np.sum(a & ~b)), int(np.sum(~a & b))


def paired_interval(
    statistic: Callable[..., np.ndarray], *samples: np.ndarray, seed: int = BOOTSTRAP_SEED,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
) -> tuple[float, float]:
    """95 % percentile bootstrap interval of `statistic(*samples, axis=-1)`, resampling the queries
    jointly (the same resampled queries in every sample); seeded, so reproducible. Samples that
    cannot vary (each constant) give the point estimate twice."""
    data = tuple(np.asarray(s, dtype=np.float64) for s in samples)
    if all(np.ptp(s) == 0 for s in data):
        point = float(statistic(*data, axis=-1))
        return point, point
    result = stats.bootstrap(
        data, statistic, paired=True, vectorized=True, confidence_level=0.95, n_resamples=n_resamples,
        method="percentile", batch=200, rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """mean(a) - mean(b): the recall gain of A over B from per-query scores."""
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def mean_ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """mean(a) / mean(b): the ratio of distance computations per query."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.mean(a, axis=axis) / np.mean(b, axis=axis)


def paired_stats(
    hits_a: np.ndarray, hits_b: np.ndarray, dist_a: np.ndarray | None = None, dist_b: np.ndarray | None = None,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """The paired columns of A (the method) against B (its control), one entry per query in each:
    discordant counts, exact McNemar p, 95 % bootstrap intervals of the recall gain and (with
    both distance counts, B's mean not 0) of the distance ratio."""
    only_a, only_b = discordant(hits_a, hits_b)
    row: dict[str, Any] = {"only_method": only_a, "only_control": only_b, "mcnemar_p": mcnemar_p(only_a, only_b)}
    row["recall_gain_low"], row["recall_gain_high"] = paired_interval(mean_difference, hits_a, hits_b, seed=seed)
    row["dist_ratio_low"] = row["dist_ratio_high"] = None
    if dist_a is not None and dist_b is not None and len(dist_a) == len(dist_b) and float(np.mean(dist_b)) > 0:
        low, high = paired_interval(mean_ratio, dist_a, dist_b, seed=seed)
        if math.isfinite(low) and math.isfinite(high):
            row["dist_ratio_low"], row["dist_ratio_high"] = low, high
    return row


def pair(answers: Answers | None, method: Record, control: Record) -> tuple[dict[str, Any], str | None]:
    """The paired columns of a method record against its control record, or empty ones and why."""
    empty: dict[str, Any] = dict.fromkeys(PAIRED_COLUMNS)
    if answers is None:
        return empty, "per-query answers were not read"
    reason = same_queries(method, control)
    if reason is None:
        reason = answers.why_not(method) or answers.why_not(control)
    if reason is not None:
        return empty, reason
    return paired_stats(answers.hits(method), answers.hits(control), answers.dist_comps(method),
                        answers.dist_comps(control)), None


# --- choosing on some queries, reporting on others ------------------------------------------------


@dataclass(frozen=True)
class Split:
    """A record's first `n_queries` queries split into tuning and held-out ones (sorted indices)."""

    fraction: float
    seed: int
    n_queries: int
    tune: np.ndarray
    heldout: np.ndarray


def tune_split(n_queries: int, fraction: float, seed: int = DEFAULT_TUNE_SEED) -> Split:
    """The seeded split of queries 0..n_queries-1: the round(fraction x n) queries with the
    smallest seeded uniform draw tune, the rest are held out (each side keeps at least one).

    Query i's draw does not depend on n (the first n draws of one seeded stream), so records of
    different sizes split their common queries nearly alike.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"tuning fraction {fraction}: expected a number strictly between 0 and 1")
    if n_queries < 2:
        raise ValueError(f"{n_queries} queries cannot be split into tuning and held-out parts")
    draws = np.random.default_rng(seed).random(n_queries)
    n_tune = min(n_queries - 1, max(1, round(fraction * n_queries)))
    order = np.argsort(draws, kind="stable")
    return Split(fraction, seed, n_queries, np.sort(order[:n_tune]), np.sort(order[n_tune:]))
