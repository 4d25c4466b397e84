"""Recall as ann-benchmarks defines it (ties by distance), id recall, throughput arithmetic."""
import numpy as np
import pytest

from harness.measure import metrics


def test_recall_counts_ties_by_distance_not_id():
    true_ids = np.array([[5, 7, 9]])
    true_dist = np.array([[1.0, 1.0, 2.0]])
    # the adapter returned id 7 first: a different id at the same distance as the true first
    ids = np.array([[7, 5, 9]])
    found = np.array([[1.0, 1.0, 2.0]])
    assert metrics.recall_by_distance(found, true_dist, 1)[0] == 1.0
    assert metrics.recall_by_id(ids, true_ids, 1)[0] == 0.0


def test_recall_epsilon_boundary():
    true_dist = np.array([[1.0, 2.0]])
    assert metrics.recall_by_distance(np.array([[1.0 + 0.9e-3]]), true_dist, 1)[0] == 1.0
    assert metrics.recall_by_distance(np.array([[1.0 + 1.1e-3]]), true_dist, 1)[0] == 0.0


def test_recall_at_k_uses_kth_true_distance_and_ignores_missing():
    true_dist = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    found = np.array([[1.0, 2.5, np.nan], [3.0, 2.0, 1.0]])
    r = metrics.recall_by_distance(found, true_dist, 3)
    assert r.tolist() == pytest.approx([2 / 3, 1.0])


def test_id_recall_at_k_is_set_overlap():
    true_ids = np.array([[1, 2, 3, 4]])
    assert metrics.recall_by_id(np.array([[3, 1, 9]]), true_ids, 3)[0] == pytest.approx(2 / 3)
    assert metrics.recall_by_id(np.array([[-1, -1, -1]]), np.array([[-1, 2, 3]]), 1)[0] == 0.0


def test_quality_keys():
    q = metrics.quality(np.array([[0, 1]]), np.array([[0.0, 1.0]]), np.array([[0, 1]]), np.array([[0.0, 1.0]]), 2)
    assert q == {"recall_at_1": 1.0, "recall_at_1_id": 1.0, "recall_at_k": 1.0, "recall_at_k_id": 1.0,
                 "recall_at_k_eps001": 1.0, "recall_at_k_eps01": 1.0, "rel_error_at_k": 0.0}


def test_throughput_is_measured_per_run():
    t = metrics.throughput(100, wall=[1.0, 0.5, 2.0], cpu=[1.0, 1.0, 1.0], gpu=None)
    assert t["qps_runs"] == [100.0, 200.0, 50.0]
    assert t["qps"] == 100.0 and t["qps_best"] == 200.0
    assert t["query_wall_s"] == pytest.approx(0.01)
    assert t["query_gpu_s"] is None and t["batch_wall_s"] == [1.0, 0.5, 2.0]
    g = metrics.throughput(10, wall=[1.0], cpu=[0.5], gpu=[0.2])
    assert g["query_gpu_s"] == pytest.approx(0.02)


def test_iteration_summary_and_latency():
    s = metrics.per_query_summary(np.array([1, 2, 3, 10]), np.array([5.0, 5.0, 5.0, 5.0]))
    assert s["iterations_mean"] == 4.0 and s["iterations_median"] == 2.5 and s["iterations_max"] == 10.0
    assert s["dist_comps_mean"] == 5.0
    assert metrics.per_query_summary(None, None)["iterations_mean"] is None
    lat = metrics.latency_percentiles(np.arange(1, 101, dtype=float))
    assert lat["latency_p50_s"] == pytest.approx(50.5)
    assert metrics.latency_percentiles(None)["latency_p99_s"] is None


def test_a_repeated_id_counts_once() -> None:
    assert metrics.recall_by_id([[5, 5]], [[5, 7]], 2)[0] == 0.5
    # by distance too: the second 5 lies within the 2nd true distance, but it is the same point
    ids, found, true_dist = np.array([[5, 5]]), np.array([[1.0, 1.0]]), np.array([[1.0, 2.0]])
    assert metrics.recall_by_distance(found, true_dist, 2, ids=ids)[0] == 0.5
    assert metrics.quality(ids, found, np.array([[5, 7]]), true_dist, 2)["recall_at_k"] == 0.5
    # -1 padding is never a point, however often it appears
    assert metrics.recall_by_id([[5, -1, -1]], [[5, 7, 9]], 3)[0] == pytest.approx(1 / 3)


def test_repeated_id_finds_the_row_and_the_id() -> None:
    assert metrics.repeated_id(np.array([[1, 2, -1, -1], [3, 4, 3, 0]])) == (1, 3)
    assert metrics.repeated_id(np.array([[1, 2, -1, -1]])) is None


def test_mean_recall_is_total_hits_over_queries_times_k_as_ann_benchmarks_computes_it() -> None:
    rng = np.random.default_rng(0)
    hits = rng.integers(0, 11, size=997)
    # ann-benchmarks: np.mean(per-query counts) / float(count)
    assert metrics.mean_recall(hits, 10) == np.mean(hits) / float(10)
    true_dist = np.sort(rng.random((997, 10)), axis=1)
    found = np.where(rng.random((997, 10)) < 0.7, true_dist, true_dist + 1.0)
    ids = np.arange(997 * 10).reshape(997, 10)
    expected = np.mean([(found[i] <= true_dist[i, 9] + 1e-3).sum() for i in range(997)]) / float(10)
    assert metrics.quality(ids, found, ids, true_dist, 10)["recall_at_k"] == expected


def test_epsilon_recall_and_relative_error():
    true_ids, true_dist = np.array([[0, 1, 2, 3]]), np.array([[1.0, 2.0, 3.0, 10.0]])
    ids, found = np.array([[0, 1, 9]]), np.array([[1.0, 2.0, 3.2]])  # the third is 6.7 % beyond the 3rd true
    q = metrics.quality(ids, found, true_ids, true_dist, 3)
    assert q["recall_at_k_eps001"] == pytest.approx(2 / 3) and q["recall_at_k_eps01"] == 1.0
    assert q["rel_error_at_k"] == pytest.approx(6.2 / 6.0 - 1.0)
    # truncated to k: an exact search has no error (ann-benchmarks' form, over all 100 columns, does not say 0)
    exact = metrics.quality(true_ids[:, :3], true_dist[:, :3], true_ids, true_dist, 3)
    assert exact["rel_error_at_k"] == 0.0
    assert metrics.latency_percentiles(np.arange(1, 1001, dtype=float))["latency_p999_s"] == pytest.approx(999.001)
