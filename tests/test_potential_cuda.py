"""The CUDA path gives the CPU path's answers, up to floating point (skipped without a GPU)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms import registry
from algorithms.potential import Field, get_potential

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch"),
]

CASES = [
    ("potential-gaussian", {"ascent": "meanshift", "beta": 50.0}),
    ("potential-1", {"ascent": "adam", "rate": 0.02, "max_iters": 60}),
    ("potential-2", {"ascent": "normalised", "rate": 0.02, "max_iters": 60}),
    ("potential-naive", {"ascent": "adam", "rate": 0.02, "max_iters": 30}),
]


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    X = rng.standard_normal((500, 12)).astype(np.float32)
    return X, (X[:50] + 0.05 * rng.standard_normal((50, 12))).astype(np.float32)


@pytest.mark.parametrize("algorithm,query", CASES, ids=[c[0] for c in CASES])
def test_cuda_search_equals_cpu_search(algorithm, query) -> None:
    X, Q = _data()
    results = {}
    for device in ("cpu", "cuda"):
        adapter = registry.get(algorithm).make(device=device, dtype="float64")
        adapter.fit(X)
        adapter.set_query_params(snap="final", m=8, **query)
        ids, dists = adapter.search(Q, 3)
        results[device] = (ids, dists, adapter.last_positions, adapter.stats().iterations)
    cpu, gpu = results["cpu"], results["cuda"]
    assert (cpu[0][:, 0] == gpu[0][:, 0]).mean() >= 0.98
    assert np.allclose(cpu[2], gpu[2], atol=1e-6)
    assert np.abs(cpu[3] - gpu[3]).max() <= 1


@pytest.mark.parametrize(
    "name,hp",
    [
        ("potential_1", {"c": 1e3, "eps": 0.5, "clamp": 16.0}), ("potential_2", {"c": 1e3, "eps": 0.5, "clamp": 16.0}),
        ("naive", {"c": 10.0}), ("gaussian", {"beta": 5.0}),
    ],
)
def test_cuda_evaluation_equals_cpu_evaluation(name, hp) -> None:
    gen = torch.Generator().manual_seed(3)
    X = torch.rand(300, 9, generator=gen, dtype=torch.float64)
    Q = torch.rand(20, 9, generator=gen, dtype=torch.float64)
    potential = get_potential(name)
    cpu = potential.evaluate(Q, Field.of(X), hp, track_m=5)
    gpu = potential.evaluate(Q.cuda(), Field.of(X.cuda()), hp, track_m=5)
    assert torch.allclose(cpu.value, gpu.value.cpu(), rtol=1e-9)
    assert torch.allclose(cpu.grad, gpu.grad.cpu(), rtol=1e-8, atol=1e-12)


def test_cuda_adapter_constructs_when_a_gpu_is_present() -> None:
    """The no-GPU refusal is tested in test_potential_adapter."""
    assert registry.get("potential-gaussian").make(device="cuda").device == "cuda"
