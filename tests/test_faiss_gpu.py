"""FAISS's GPU adapters: registered exactly when the installed faiss can run them, and, with the
GPU copy replaced by the identity, built and searched the way the CPU adapters are.

The capability is faked by patching the faiss module (a `StandardGpuResources` class, a GPU
count) before the adapters' module is imported afresh; the registry's state is restored after.
The real GPU search is a CUDA test, skipped here with the reason the module itself gives.
"""
from __future__ import annotations

import sys
from typing import Any, Iterator

import faiss
import numpy as np
import pytest

import algorithms
from algorithms import registry
from algorithms._gpu_support import gpu_support_problem
from algorithms.faiss_indexes import FaissFlat, FaissIVF
from harness.errors import ConfigError, ParameterError

MODULE = "algorithms.faiss_gpu"
NAMES = ("faiss-gpu-flat", "faiss-gpu-ivf")


class _FakeResources:
    """Stands in for faiss.StandardGpuResources: only its presence is tested."""


@pytest.fixture
def fresh_discovery(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`discover(gpu_build, gpus)`: the registry filled anew with faiss patched to look that way."""
    registry.discover()  # the real state first, so that what is restored is complete
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_IMPORT_PROBLEMS", {})
    saved_module = sys.modules.pop(MODULE, None)

    def discover(gpu_build: bool | None = None, gpus: int | None = None) -> None:
        """None: the installed faiss as it is."""
        if gpu_build:
            monkeypatch.setattr(faiss, "StandardGpuResources", _FakeResources, raising=False)
        elif gpu_build is not None:
            monkeypatch.delattr(faiss, "StandardGpuResources", raising=False)
        if gpus is not None:
            monkeypatch.setattr(faiss, "get_num_gpus", lambda: gpus)
        sys.modules.pop(MODULE, None)
        monkeypatch.setattr(registry, "_DISCOVERED", False)
        registry.discover()

    yield discover
    sys.modules.pop(MODULE, None)
    if saved_module is not None:
        sys.modules[MODULE] = saved_module
    elif hasattr(algorithms, "faiss_gpu"):
        delattr(algorithms, "faiss_gpu")


def test_registered_when_faiss_has_gpu_support(fresh_discovery: Any) -> None:
    fresh_discovery(gpu_build=True, gpus=1)
    specs = registry.all_algorithms()
    assert set(NAMES) <= set(specs)
    assert MODULE not in registry.import_problems()
    for name in NAMES:
        adapter = specs[name].adapter
        assert adapter.devices == ("cuda",)
        assert set(adapter.metrics) == {"euclidean", "angular", "dot"}  # inner product served, as on the CPU
        assert not specs[name].default_run  # a CPU default run never meets a GPU-only adapter
    assert specs["faiss-gpu-ivf"].sweep["build"] == {"nlist": [64]}


@pytest.mark.parametrize("gpu_build, gpus, reason", [(False, 0, "CPU-only build"), (True, 0, "sees no GPU")])
def test_unavailable_with_the_reason_otherwise(fresh_discovery: Any, capsys: pytest.CaptureFixture[str],
                                               gpu_build: bool, gpus: int, reason: str) -> None:
    from harness.commands import cmd_list

    fresh_discovery(gpu_build=gpu_build, gpus=gpus)
    assert not set(NAMES) & set(registry.all_algorithms())
    assert reason in registry.import_problems()[MODULE]
    cmd_list(type("Args", (), {"plugins": None, "name": None})())
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("unavailable:")]
    assert any(MODULE in line and reason in line for line in lines), lines
    with pytest.raises(ConfigError, match="(?s)unknown algorithm .faiss-gpu-flat.*" + reason):  # the unknown-name error says why
        registry.get("faiss-gpu-flat")


def test_installed_faiss_decides(fresh_discovery: Any) -> None:
    """Without patching: registered iff the real faiss has GPU support (here: faiss-cpu, not)."""
    fresh_discovery()
    problem = gpu_support_problem()
    assert (problem is None) == (set(NAMES) <= set(registry.all_algorithms()))
    assert (problem is None) == (MODULE not in registry.import_problems())


@pytest.fixture
def gpu_module_on_cpu(fresh_discovery: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The adapters' module with the GPU copy (and the copy back) replaced by the identity."""
    fresh_discovery(gpu_build=True, gpus=1)
    module = sys.modules[MODULE]
    monkeypatch.setattr(module, "to_gpu", lambda index: index)
    monkeypatch.setattr(module, "to_cpu", lambda index: index)
    return module


def _data(distance: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, 12)).astype(np.float32)
    Q = rng.normal(size=(25, 12)).astype(np.float32)
    if distance == "angular":
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    return X, Q


@pytest.mark.parametrize("distance", ["euclidean", "angular", "dot"])
def test_same_index_and_answers_as_the_cpu_adapters(gpu_module_on_cpu: Any, distance: str) -> None:
    X, Q = _data(distance)
    pairs = [(gpu_module_on_cpu.FaissGpuFlat, FaissFlat, {}, {}),
             (gpu_module_on_cpu.FaissGpuIVF, FaissIVF, {"nlist": 16}, {"nprobe": 3})]
    for gpu_cls, cpu_cls, build, query in pairs:
        gpu = gpu_cls(device="cuda", metric=distance, seed=7, **build)
        cpu = cpu_cls(device="cpu", metric=distance, seed=7, **build)
        for adapter in (gpu, cpu):
            adapter.fit(X)
            adapter.set_query_params(**query)
        assert gpu.faiss_index.metric_type == cpu.faiss_index.metric_type
        gpu_ids, gpu_d = gpu.search(Q, 5)
        cpu_ids, cpu_d = cpu.search(Q, 5)
        np.testing.assert_array_equal(gpu_ids, cpu_ids)
        np.testing.assert_allclose(gpu_d, cpu_d, rtol=1e-6)
        each_ids, _, latencies = gpu.search_each(Q, 5)
        np.testing.assert_array_equal(each_ids, cpu_ids)
        assert len(latencies) == len(Q)
        assert gpu.index_bytes() == cpu.index_bytes()
    if distance == "dot":  # the dot distance is -q.x of the returned point
        np.testing.assert_allclose(gpu_d[:, 0], -(Q * X[gpu_ids[:, 0]]).sum(1), rtol=1e-5)


def test_gpu_limits_and_counters(gpu_module_on_cpu: Any) -> None:
    ivf = gpu_module_on_cpu.FaissGpuIVF
    with pytest.raises(ParameterError, match="nprobe = 3000 is above FAISS's GPU limit"):
        ivf.check_config({"nlist": 4096}, {"nprobe": 3000}, 10, 100_000, 16)
    with pytest.raises(ParameterError, match="k = 4000 is above FAISS's GPU limit"):
        gpu_module_on_cpu.FaissGpuFlat.check_config({}, {}, 4000, 100_000, 16)
    with pytest.raises(ParameterError, match="device 'cpu' is not supported"):
        ivf(device="cpu", nlist=4)
    X, Q = _data("euclidean")
    adapter = ivf(device="cuda", nlist=8)
    adapter.fit(X)
    adapter.search(Q, 3)
    assert adapter.stats().dist_comps is None  # the GPU keeps no counters: none reported


@pytest.mark.cuda
@pytest.mark.skipif(gpu_support_problem() is not None, reason=f"needs FAISS's GPU build and a GPU: {gpu_support_problem()}")
@pytest.mark.parametrize("distance", ["euclidean", "dot"])
def test_gpu_search_matches_cpu(distance: str) -> None:
    """On the GPU: flat answers as FAISS's CPU flat does; IVF with nprobe = nlist is exact."""
    from algorithms.faiss_gpu import FaissGpuFlat, FaissGpuIVF

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 64)).astype(np.float32)
    Q = rng.normal(size=(200, 64)).astype(np.float32)
    cpu = FaissFlat(metric=distance)
    cpu.fit(X)
    truth, truth_d = cpu.search(Q, 10)
    flat = FaissGpuFlat(device="cuda", metric=distance)
    flat.fit(X)
    ids, dists = flat.search(Q, 10)
    assert (ids[:, 0] == truth[:, 0]).mean() > 0.99
    np.testing.assert_allclose(dists, truth_d, rtol=1e-3, atol=1e-3)
    ivf = FaissGpuIVF(device="cuda", metric=distance, nlist=32)
    ivf.fit(X)
    ivf.set_query_params(nprobe=32)
    ids, _ = ivf.search(Q, 10)
    assert (ids[:, 0] == truth[:, 0]).mean() > 0.99
    assert flat.index_bytes() > X.nbytes
