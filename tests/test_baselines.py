"""The baselines (torch brute force, FAISS, hnswlib) against a numpy ground truth.

Exact adapters must match numpy to fp32 precision, approximate ones must reach the recall
their users expect at generous settings, and every parameter mistake must surface as a
ParameterError that names the parameter, before or at the point it can first be detected.
"""
from __future__ import annotations

from pathlib import Path

import faiss
import h5py
import numpy as np
import pytest
import torch

from algorithms.bruteforce import block_sizes
from algorithms.registry import all_algorithms, get
from harness.errors import ParameterError

BASELINES = ["bruteforce", "faiss-flat", "faiss-ivf", "faiss-ivfpq", "faiss-hnsw", "hnswlib"]
SIFTSMALL = Path(__file__).parent / "data" / "siftsmall-128-euclidean.hdf5"
K = 10


def numpy_knn(X: np.ndarray, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN in float64 by direct differences, ties broken by id."""
    d2 = ((Q[:, None, :].astype(np.float64) - X[None, :, :]) ** 2).sum(-1)
    order = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return order, np.sqrt(np.take_along_axis(d2, order, axis=1))


def assert_exact(ids: np.ndarray, dists: np.ndarray, true_ids: np.ndarray, true_dists: np.ndarray) -> None:
    """Distances must match; ids must match wherever the true distance is not a near-tie."""
    np.testing.assert_allclose(dists, true_dists, rtol=1e-5, atol=1e-5)
    gaps = np.diff(true_dists, axis=1)
    clear = np.ones_like(true_ids, dtype=bool)
    clear[:, 1:] &= gaps > 1e-4
    clear[:, :-1] &= gaps > 1e-4
    assert (ids[clear] == true_ids[clear]).all()


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.standard_normal((2000, 16)).astype(np.float32), rng.standard_normal((100, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def small_truth(small: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    X, Q = small
    return numpy_knn(X, Q, K)


@pytest.fixture(scope="module")
def siftsmall() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with h5py.File(SIFTSMALL, "r") as f:
        return f["train"][:].astype(np.float32), f["test"][:].astype(np.float32), f["neighbors"][:]


def fitted(name: str, X: np.ndarray, **params: object):
    adapter = get(name).make(**params)
    adapter.fit(X)
    return adapter


# -- registry and contract ---------------------------------------------------------------
def test_registry_lists_the_baselines() -> None:
    names = all_algorithms()
    for name in BASELINES:
        assert name in names
        assert names[name].adapter.name == name, "a class must carry the name it is registered under"
        assert names[name].description


@pytest.mark.parametrize("name", BASELINES)
def test_shapes_dtypes_and_order(name: str, small: tuple[np.ndarray, np.ndarray]) -> None:
    X, Q = small
    adapter = fitted(name, X, threads=2)
    ids, dists = adapter.search(Q, K)
    assert ids.shape == dists.shape == (len(Q), K)
    assert ids.dtype == np.int64 and dists.dtype == np.float32
    assert ((ids >= -1) & (ids < len(X))).all()
    assert np.isinf(dists[ids < 0]).all(), "a missing result has id -1 and an infinite distance"
    assert (dists[:, 1:] >= dists[:, :-1] - 1e-6).all(), "results must come nearest first"
    assert adapter.index_bytes() > 0
    comps = adapter.stats().dist_comps
    if name != "hnswlib":
        assert comps is not None and comps.shape == (len(Q),) and (comps > 0).all()


def test_threads_are_restored_after_search(small: tuple[np.ndarray, np.ndarray]) -> None:
    X, Q = small
    torch_before, faiss_before = torch.get_num_threads(), faiss.omp_get_max_threads()
    for name in ("bruteforce", "faiss-ivf"):
        fitted(name, X, threads=1).search(Q, K)
    assert torch.get_num_threads() == torch_before
    assert faiss.omp_get_max_threads() == faiss_before


# -- exactness ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bruteforce", "faiss-flat"])
def test_exact_adapters_match_numpy(name: str, small, small_truth) -> None:
    X, Q = small
    ids, dists = fitted(name, X).search(Q, K)
    assert_exact(ids, dists, *small_truth)


def test_bruteforce_on_siftsmall_matches_ground_truth(siftsmall) -> None:
    X, Q, neighbors = siftsmall
    ids, _ = fitted("bruteforce", X, threads=2).search(Q, 1)
    assert (ids[:, 0] == neighbors[:, 0]).mean() >= 0.995


@pytest.mark.slow
def test_bruteforce_blocks_over_points_and_queries() -> None:
    """More points than one 1 MiB block holds: the candidate merge across blocks must stay exact."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300_000, 4)).astype(np.float32)
    Q = rng.standard_normal((20, 4)).astype(np.float32)
    assert block_sizes(len(X), len(Q), 1)[1] < len(X)
    ids, dists = fitted("bruteforce", X, memory_mb=1).search(Q, 5)
    assert_exact(ids, dists, *numpy_knn(X, Q, 5))


def test_bruteforce_distances_survive_a_large_offset() -> None:
    """||x||^2 - 2q.x cancels badly far from the origin; the re-rank must still be exact."""
    rng = np.random.default_rng(2)
    X = (rng.standard_normal((1000, 8)) + 1000.0).astype(np.float32)
    Q = (rng.standard_normal((30, 8)) + 1000.0).astype(np.float32)
    ids, dists = fitted("bruteforce", X).search(Q, 3)
    assert_exact(ids, dists, *numpy_knn(X, Q, 3))


def test_bruteforce_ties_come_out_in_id_order() -> None:
    base = np.random.default_rng(3).standard_normal((50, 6)).astype(np.float32)
    X = np.concatenate([base, base, base])
    ids, dists = fitted("bruteforce", X).search(base[:10], 3)
    np.testing.assert_array_equal(ids, np.arange(10)[:, None] + np.array([0, 50, 100]))
    assert (dists == 0).all()


def test_ivf_probing_every_list_is_exact(small, small_truth) -> None:
    X, Q = small
    adapter = fitted("faiss-ivf", X, nlist=20)
    adapter.set_query_params(nprobe=20)
    ids, dists = adapter.search(Q, K)
    assert_exact(ids, dists, *small_truth)


@pytest.mark.parametrize(
    "name, build, query",
    [
        ("hnswlib", {"M": 16, "ef_construction": 100}, {"ef": 200}),
        ("faiss-hnsw", {"M": 16, "efConstruction": 100}, {"efSearch": 200}),
    ],
)
def test_graphs_reach_high_recall_on_siftsmall(name: str, build: dict, query: dict, siftsmall) -> None:
    X, Q, neighbors = siftsmall
    adapter = fitted(name, X, threads=2, **build)
    adapter.set_query_params(**query)
    ids, _ = adapter.search(Q, 1)
    assert (ids[:, 0] == neighbors[:, 0]).mean() >= 0.99


# -- parameter validation ----------------------------------------------------------------
def test_unknown_parameter_suggests_the_close_name() -> None:
    with pytest.raises(ParameterError, match="nlsit") as caught:
        get("faiss-ivf").make(nlsit=10)
    assert "nlist" in str(caught.value)


@pytest.mark.parametrize(
    "name, params, word",
    [
        ("faiss-ivf", {"nlist": 0}, "nlist"),
        ("faiss-ivf", {"nlist": "10"}, "nlist"),
        ("faiss-ivfpq", {"nbits": 20}, "nbits"),
        ("faiss-ivfpq", {"m": 2.5}, "'m'"),
        ("faiss-hnsw", {"M": 1}, "M"),
        ("hnswlib", {"ef_construction": 0}, "ef_construction"),
        ("bruteforce", {"memory_mb": 0}, "memory_mb"),
        ("bruteforce", {"memory_mb": True}, "memory_mb"),
    ],
)
def test_bad_build_values_are_refused_up_front(name: str, params: dict, word: str) -> None:
    with pytest.raises(ParameterError, match=word):
        get(name).make(**params)


@pytest.mark.parametrize("name, param", [("faiss-ivf", "nprobe"), ("hnswlib", "ef"), ("faiss-hnsw", "efSearch")])
def test_query_value_below_one_is_refused(name: str, param: str) -> None:
    with pytest.raises(ParameterError, match=param):
        get(name).make().set_query_params(**{param: 0})


def test_nprobe_above_nlist_is_refused() -> None:
    with pytest.raises(ParameterError, match="nprobe = 11 is larger than nlist = 10"):
        get("faiss-ivf").make(nlist=10).set_query_params(nprobe=11)


@pytest.mark.parametrize("name, param", [("hnswlib", "ef"), ("faiss-hnsw", "efSearch")])
def test_beam_smaller_than_k_is_refused_at_search(name: str, param: str, small) -> None:
    X, Q = small
    adapter = fitted(name, X)
    adapter.set_query_params(**{param: 5})
    with pytest.raises(ParameterError, match=f"{param} = 5 is smaller than k = 10"):
        adapter.search(Q, 10)


@pytest.mark.parametrize("name", ["faiss-ivf", "faiss-ivfpq"])
def test_more_lists_than_points_is_refused(name: str, small) -> None:
    X, _ = small
    with pytest.raises(ParameterError, match="nlist = 5000 is larger than the number of training points"):
        fitted(name, X, nlist=5000)


def test_sub_quantizers_must_divide_the_dimension(small) -> None:
    X, _ = small
    with pytest.raises(ParameterError, match=r"'m' = 5 does not divide the dimension d = 16") as caught:
        fitted("faiss-ivfpq", X, m=5)
    assert "1, 2, 4, 8, 16" in str(caught.value)


def test_codebook_larger_than_data_is_refused(small) -> None:
    X, _ = small
    with pytest.raises(ParameterError, match="nbits"):
        fitted("faiss-ivfpq", X[:200], nlist=4, nbits=8)


def test_cuda_without_a_gpu_is_refused() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present; the refusal only applies without one")
    with pytest.raises(ParameterError, match="cuda"):
        get("bruteforce").make(device="cuda")


# -- counters and determinism ------------------------------------------------------------
def test_ivf_distance_count_grows_with_nprobe(small) -> None:
    X, Q = small
    adapter = fitted("faiss-ivf", X, nlist=20)
    counts = []
    for nprobe in (1, 4, 20):
        adapter.set_query_params(nprobe=nprobe)
        adapter.search(Q, K)
        counts.append(adapter.stats().dist_comps.mean())
    assert counts[0] < counts[1] < counts[2]
    assert counts[2] == pytest.approx(len(X) + 20), "all lists scanned plus the coarse quantizer"


def test_exact_adapters_count_every_point(small) -> None:
    X, Q = small
    for name in ("bruteforce", "faiss-flat"):
        adapter = fitted(name, X)
        adapter.search(Q, K)
        assert (adapter.stats().dist_comps == len(X)).all()


@pytest.mark.parametrize(
    "name, params", [("faiss-ivf", {"nlist": 30, "threads": 2}), ("faiss-ivfpq", {"nlist": 8}), ("hnswlib", {"threads": 1})]
)
def test_same_seed_builds_the_same_index(name: str, params: dict, small) -> None:
    X, Q = small
    first, _ = fitted(name, X, seed=11, **params).search(Q, K)
    second, _ = fitted(name, X, seed=11, **params).search(Q, K)
    np.testing.assert_array_equal(first, second)


# -- CUDA --------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; torch.cuda.is_available() is False")
def test_bruteforce_cuda_matches_cpu(siftsmall) -> None:
    X, Q, _ = siftsmall
    cpu_ids, cpu_dists = fitted("bruteforce", X).search(Q, K)
    gpu_ids, gpu_dists = fitted("bruteforce", X, device="cuda", memory_mb=4).search(Q, K)
    np.testing.assert_allclose(gpu_dists, cpu_dists, rtol=1e-5, atol=1e-3)
    assert (gpu_ids == cpu_ids).mean() >= 0.999
