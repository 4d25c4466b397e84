"""Recall as ann-benchmarks defines it (ties by distance), id recall, throughput arithmetic."""
import numpy as np
import pytest

from harness import metrics


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
    assert q == {"recall_at_1": 1.0, "recall_at_1_id": 1.0, "recall_at_k": 1.0, "recall_at_k_id": 1.0}


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
