"""One query per call (`--mode single`) times the library's call, not the harness's own work.

What belongs to a query configuration (pushing query parameters into the index, entering the
libraries' thread scopes) happens once per configuration or per timed run, never once per
query; and answering one query per call gives the answers and statistics one batch gives.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterator

import numpy as np
import pytest

import algorithms._threads as threads_module
from algorithms import registry
from harness.data.loader import Dataset, open_dataset
from harness.measure.measure import run_query_config
from harness.measure.job import MeasureOptions

N_QUERIES, RUNS, WARMUP = 30, 2, 5

CASES = {
    "faiss-ivf": ({"nlist": 16}, {"nprobe": 2}),
    "hnswlib": ({"M": 8, "ef_construction": 40}, {"ef": 20}),
    "potential-gaussian": ({}, {"beta": 20.0, "m": 16, "max_iters": 20}),
}


@pytest.fixture
def small(make_tiny_dataset: Callable[..., Any]) -> Dataset:
    return open_dataset(str(make_tiny_dataset(n_train=600, n_test=N_QUERIES, dim=8)), progress=False)


class _Counting:
    """Stands in for a library's index: forwards everything, counts attribute writes and
    calls of the methods named in `counted`."""

    def __init__(self, inner: Any, counted: tuple[str, ...] = ()) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_counted", counted)
        object.__setattr__(self, "counts", Counter())

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name not in self._counted:
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.counts[name] += 1
            return value(*args, **kwargs)

        return counted

    def __setattr__(self, name: str, value: Any) -> None:
        self.counts[name] += 1
        setattr(self._inner, name, value)


@pytest.fixture
def scopes(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """How many times a thread-count scope (torch's or FAISS's) is entered."""
    entered: Counter = Counter()
    original = threads_module._scoped

    def counting(get: Any, set_: Any, threads: int) -> Iterator[None]:
        entered["scope"] += 1
        return original(get, set_, threads)

    monkeypatch.setattr(threads_module, "_scoped", counting)
    return entered


def _single(dataset: Dataset, adapter: Any, query: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    options = MeasureOptions(k=5, runs=RUNS, mode="single")
    return run_query_config(dataset, adapter, dict(query), options, N_QUERIES, WARMUP)


def _fitted(name: str, dataset: Dataset) -> Any:
    build, _ = CASES[name]
    adapter = registry.get(name).make(threads=1, seed=0, **build)
    adapter.fit(dataset.train)
    return adapter


# -- per-configuration work happens once, not once per query ---------------------------------------
def test_faiss_ivf_sets_nprobe_once_and_enters_its_thread_scope_once_per_run(small: Dataset, scopes: Counter) -> None:
    adapter = _fitted("faiss-ivf", small)
    index = adapter._index = _Counting(adapter._index)
    scopes.clear()
    document, arrays = _single(small, adapter, CASES["faiss-ivf"][1])
    assert index.counts["nprobe"] == 1  # set_query_params, not every search
    assert scopes["scope"] == 1 + RUNS  # the warm-up, then once per timed run of N queries
    assert len(arrays["latencies"]) == RUNS * N_QUERIES
    assert document["metrics"]["latency_p50_s"] > 0


def test_hnswlib_sets_ef_once(small: Dataset) -> None:
    adapter = _fitted("hnswlib", small)
    index = adapter._index = _Counting(adapter._index, counted=("set_ef", "knn_query"))
    _single(small, adapter, CASES["hnswlib"][1])
    assert index.counts["set_ef"] == 1
    assert index.counts["knn_query"] == (WARMUP + RUNS * N_QUERIES)  # one call per query, nothing else


def test_potential_enters_torch_threads_once_per_run(small: Dataset, scopes: Counter) -> None:
    adapter = _fitted("potential-gaussian", small)
    scopes.clear()
    _single(small, adapter, CASES["potential-gaussian"][1])
    assert scopes["scope"] == 1 + RUNS


# -- one query per call answers as one batch does -------------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_single_and_batch_modes_agree_on_answers_and_stats(small: Dataset, name: str) -> None:
    adapter = _fitted(name, small)
    query = CASES[name][1]
    documents, arrays = {}, {}
    for mode in ("batch", "single"):
        options = MeasureOptions(k=5, runs=RUNS, mode=mode)
        documents[mode], arrays[mode] = run_query_config(small, adapter, dict(query), options, N_QUERIES, WARMUP)
    single, batch = arrays["single"], arrays["batch"]
    assert np.array_equal(single["ids"], batch["ids"])
    np.testing.assert_allclose(single["distances"], batch["distances"], rtol=1e-6)
    for stat in ("iterations", "dist_comps"):
        assert (stat in single) == (stat in batch)
        if stat in batch:
            assert np.array_equal(single[stat], batch[stat]), stat
    if name == "faiss-ivf":
        assert (batch["dist_comps"] > 16).all()  # the coarse distances and the scanned lists
    if name == "potential-gaussian":
        assert batch["iterations"].max() > 1  # it climbed: the per-query counts are real
    single_metrics, batch_metrics = documents["single"]["metrics"], documents["batch"]["metrics"]
    for metric in ("recall_at_1", "recall_at_k", "dist_comps_mean", "iterations_mean"):
        assert single_metrics[metric] == batch_metrics[metric], metric
    assert batch_metrics["recall_at_k"] > 0.5
    assert single_metrics.get("adapter_stats", {}) == pytest.approx(batch_metrics.get("adapter_stats", {}))
    assert "latencies" in single and "latencies" not in batch


@pytest.mark.parametrize("name", list(CASES))
def test_search_each_returns_what_search_returns(small: Dataset, name: str) -> None:
    adapter = _fitted(name, small)
    adapter.set_query_params(**CASES[name][1])
    Q = small.test[:N_QUERIES]
    ids, dists = adapter.search(Q, 5)
    each_ids, each_dists, latencies = adapter.search_each(Q, 5)
    assert each_ids.dtype == np.int64 and each_dists.dtype == np.float32
    assert np.array_equal(each_ids, ids)
    np.testing.assert_allclose(each_dists, dists, rtol=1e-6)
    assert latencies.shape == (N_QUERIES,) and latencies.dtype == np.int64 and (latencies > 0).all()
