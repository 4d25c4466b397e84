"""potential-probe (roles/probe.py): IVF probing stopped by the potential's estimate of the unprobed mass."""
from __future__ import annotations

import numpy as np
import pytest

from algorithms import registry
from algorithms.potential.roles.probe import suffix_after
from harness.errors import ParameterError


def _three_clusters(copies: int) -> np.ndarray:
    """A (40 points around 0), B (5 points around (4, 0), each repeated `copies` times), C (40 around (20, 0)).

    Repeating B's points changes its size only: same centroid, same radius, same nearest points.
    """
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (40, 2))
    b = np.array([[4, 0], [4.5, 0], [3.5, 0], [4, 0.5], [4, -0.5]] * copies, dtype=float)
    c = np.array([20, 0]) + rng.uniform(-1, 1, (40, 2))
    return np.vstack([a, b, c]).astype(np.float32)


QUERIES = np.array([[0.3, 0.1], [0.5, -0.2], [0.8, 0.0]], dtype=np.float32)


def _probes(X: np.ndarray, stop: str) -> np.ndarray:
    adapter = registry.get("potential-probe").make(nlist=3, scale=1.0, seed=3)  # seed 3: k-means finds A, B, C
    adapter.fit(X)
    assert sorted(adapter._sizes.tolist()) in ([5, 40, 40], [40, 40, 500])
    adapter.set_query_params(stop=stop, alpha=1.0, beta=0.5)
    ids, _ = adapter.search(QUERIES, 1)
    true = np.linalg.norm(X[None] - QUERIES[:, None], axis=2).argmin(1)
    assert (ids[:, 0] == true).all()
    return adapter.stats().iterations


def test_the_potential_stop_weighs_the_unprobed_cells_by_their_sizes() -> None:
    """The same geometry, B holding 5 or 500 points: the potential's estimate of B's mass grows
    with its size, so the query probes B when it is large and stops after A when it is small. The
    geometric control reads distances and radii only: it stops after A either way."""
    small, large = _three_clusters(1), _three_clusters(100)
    assert (_probes(small, "potential") == 1).all()
    assert (_probes(large, "potential") == 2).all()
    assert (_probes(small, "geometric") == 1).all() and (_probes(large, "geometric") == 1).all()


def _blobs(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (30, 8))
    X = (centres[rng.integers(0, 30, 3000)] + rng.normal(0, 1, (3000, 8))).astype(np.float32)
    Q = (centres[rng.integers(0, 30, 200)] + rng.normal(0, 1, (200, 8))).astype(np.float32)
    true = np.linalg.norm(X[None] - Q[:, None], axis=2).argmin(1)
    return X, Q, true


def test_a_rule_that_never_stops_is_faiss_ivf_at_that_nprobe() -> None:
    """alpha so large that every bound is 0: the geometric rule never stops, so max_probe cells are
    probed: the same cells, answers and distance count as faiss-ivf at nprobe = max_probe."""
    X, Q, _ = _blobs()
    probe = registry.get("potential-probe").make(nlist=16)
    probe.fit(X)
    probe.set_query_params(stop="geometric", alpha=1e6, max_probe=3)
    ids, dists = probe.search(Q, 5)
    ivf = registry.get("faiss-ivf").make(nlist=16)
    ivf.fit(X)
    ivf.set_query_params(nprobe=3)
    ivf_ids, ivf_dists = ivf.search(Q, 5)
    np.testing.assert_array_equal(ids, ivf_ids)
    np.testing.assert_allclose(dists, ivf_dists, rtol=1e-5)
    assert (probe.stats().iterations == 3).all()
    np.testing.assert_allclose(probe.stats().dist_comps.mean(), ivf.stats().dist_comps.mean())


def test_the_triangle_bound_is_exact_and_both_rules_stop_early() -> None:
    """alpha = 1: the geometric rule's bound is the triangle inequality's, so it is exact; both
    rules probe far fewer than nlist cells on blobs."""
    X, Q, true = _blobs()
    adapter = registry.get("potential-probe").make(nlist=32)
    adapter.fit(X)
    for stop in ("geometric", "potential"):
        adapter.set_query_params(stop=stop, alpha=1.0)
        ids, _ = adapter.search(Q, 1)
        assert (ids[:, 0] == true).mean() == 1.0
        assert adapter.stats().iterations.mean() < 8
    assert (adapter.stats().dist_comps >= 32).all()


def test_suffix_after_reduces_over_the_later_columns() -> None:
    values = np.array([[3.0, 1.0, 2.0]])
    np.testing.assert_array_equal(suffix_after(values, np.minimum, np.inf), [[1.0, 2.0, np.inf]])
    np.testing.assert_allclose(suffix_after(np.log(values), np.logaddexp, -np.inf), [[np.log(3.0), np.log(2.0), -np.inf]])


def test_control_is_the_geometric_rule_at_the_same_alpha() -> None:
    spec = registry.get("potential-probe")
    [(_, control)] = spec.adapter.controls_of({"stop": "potential", "alpha": 0.1, "beta": 10.0})
    assert control == {"stop": "geometric", "alpha": 0.1}
    with pytest.raises(ParameterError, match="max_probe"):
        spec.adapter.check_config({"nlist": 4}, {"max_probe": 8}, 1, 100, 2)
