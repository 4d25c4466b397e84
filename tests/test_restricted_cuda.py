"""The restricted variants give the same answers on CUDA as on the CPU (skipped without a GPU).

The search structures (k-means, hnswlib graph, plane grids) are built on the CPU side from the
same float64 data, then held as device tensors: the climb itself must match to rounding.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms import registry

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch"),
]

CASES = [
    ("potential-gaussian-ivf", {"nlist": 16}, {"nprobe": 3, "beta": 20.0}),
    ("potential-1-ivf", {"nlist": 16}, {"nprobe": 3, "ascent": "adam", "rate": 0.02, "max_iters": 40}),
    ("potential-gaussian-graph", {"graph_k": 8, "entries": 16}, {"frontier": 4, "beta": 20.0}),
    ("potential-2-planes", {"tolerance": 1e-3}, {"ascent": "normalised", "rate": 0.02, "max_iters": 20}),
]


@pytest.mark.parametrize("name,build,query", CASES, ids=[c[0] for c in CASES])
def test_cuda_search_equals_cpu_search(name, build, query) -> None:
    rng = np.random.default_rng(11)
    X = rng.standard_normal((500, 12)).astype(np.float32)
    Q = (X[:40] + 0.05 * rng.standard_normal((40, 12))).astype(np.float32)
    out = {}
    for device in ("cpu", "cuda"):
        adapter = registry.get(name).make(device=device, dtype="float64", seed=1, **build)
        adapter.fit(X)
        adapter.set_query_params(snap="final", m=8, **query)
        ids, dists = adapter.search(Q, 3)
        out[device] = (ids, dists, adapter.last_positions, adapter.stats())
    cpu, gpu = out["cpu"], out["cuda"]
    np.testing.assert_array_equal(cpu[0], gpu[0])
    np.testing.assert_allclose(cpu[1], gpu[1], rtol=1e-5)
    np.testing.assert_allclose(cpu[2], gpu[2], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(cpu[3].iterations, gpu[3].iterations)
    np.testing.assert_array_equal(cpu[3].dist_comps, gpu[3].dist_comps)
