"""IVF-PQ as its users run it at scale: a refine stage re-ranks PQ candidates with exact distances.

Without it IVF-PQ's recall@1 is capped by the codes' resolution (about 0.2 on 1M SIFT at every
nprobe): a straw man. The refine stage (FAISS IndexRefineFlat, ann-benchmarks' IVF-PQ
configurations) must lift recall@1 at the same nprobe, cost what it computes, and be refused
where the index holds no vectors to re-rank with.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from algorithms.registry import get
from harness.errors import ParameterError
from harness.plan import sweeps

SIFTSMALL = Path(__file__).parent / "data" / "siftsmall-128-euclidean.hdf5"
K = 10


@pytest.fixture(scope="module")
def sift() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with h5py.File(SIFTSMALL, "r") as f:
        return f["train"][:].astype(np.float32), f["test"][:].astype(np.float32), f["neighbors"][:]


@pytest.fixture(scope="module")
def refined(sift):
    X, _, _ = sift
    adapter = get("faiss-ivfpq").make(nlist=64, nbits=4, refine="flat")  # 4 bits: a fit in seconds, not 15 s
    adapter.fit(X)
    return adapter


def recall_at_1(adapter, Q: np.ndarray, truth: np.ndarray, **query: int) -> float:
    adapter.set_query_params(**query)
    ids, _ = adapter.search(Q, K)
    return float((ids[:, 0] == truth[:, 0]).mean())


@pytest.mark.slow
def test_the_re_rank_lifts_recall_at_1_at_the_same_nprobe(sift, refined) -> None:
    _, Q, truth = sift
    for nprobe in (4, 16):
        pq_order = recall_at_1(refined, Q, truth, nprobe=nprobe, k_factor=0)
        re_ranked = recall_at_1(refined, Q, truth, nprobe=nprobe, k_factor=10)
        assert re_ranked >= pq_order + 0.1, (nprobe, pq_order, re_ranked)
    assert recall_at_1(refined, Q, truth, nprobe=16, k_factor=10) >= 0.95


@pytest.mark.slow
def test_k_factor_0_is_the_plain_index(sift, refined) -> None:
    X, Q, truth = sift
    plain = get("faiss-ivfpq").make(nlist=64, nbits=4)
    plain.fit(X)
    plain.set_query_params(nprobe=4)
    refined.set_query_params(nprobe=4, k_factor=0)
    np.testing.assert_array_equal(plain.search(Q, K)[0], refined.search(Q, K)[0])
    assert refined.index_bytes() >= plain.index_bytes() + X.nbytes  # the re-rank keeps the vectors


@pytest.mark.slow
def test_re_rank_distances_are_exact_and_counted(sift, refined) -> None:
    X, Q, _ = sift
    refined.set_query_params(nprobe=4, k_factor=0)
    refined.search(Q, K)
    pq_only = refined.stats().dist_comps[0]
    refined.set_query_params(nprobe=4, k_factor=10)
    ids, dists = refined.search(Q, K)
    np.testing.assert_allclose(dists, np.linalg.norm(X[ids] - Q[:, None, :], axis=2), rtol=1e-4)
    assert refined.stats().dist_comps[0] == pytest.approx(pq_only + K * 10)


def test_k_factor_without_refine_is_refused_up_front() -> None:
    adapter = get("faiss-ivfpq")
    with pytest.raises(ParameterError, match="refine: flat"):
        adapter.adapter.check_config({"nlist": 8, "m": None, "nbits": 8, "refine": "none"}, {"nprobe": 1, "k_factor": 10}, K, 1000, 16)
    adapter.adapter.check_config({"nlist": 8, "m": None, "nbits": 8, "refine": "flat"}, {"nprobe": 1, "k_factor": 10}, K, 1000, 16)


def test_the_default_sweep_runs_the_re_rank_on_small_and_large_sets() -> None:
    entry = next(e for e in sweeps.default_entries(["faiss-ivfpq"]) if e.name == "faiss-ivfpq")
    for n_train in (10_000, 1_000_000):
        configs = sweeps.expand([entry], n_train)
        assert {c.build_params["refine"] for c in configs} == {"flat"}
        k_factors = {q["k_factor"] for c in configs for q in c.query_params}
        assert 0 in k_factors and max(k_factors) >= 10
