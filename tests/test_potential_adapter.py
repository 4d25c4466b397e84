"""The potential adapters: landing on the nearest neighbour, parameters, statistics, registry."""
from __future__ import annotations

import numpy as np
import pytest

from algorithms import registry
from algorithms.potential import converged_onto_nn_rate
from harness.errors import ParameterError


def _separated(seed: int = 0, n: int = 60, d: int = 8, nq: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points far apart, queries close to one of them: the true NN is never in doubt."""
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) * 10).astype(np.float32)
    owners = rng.integers(0, n, nq)
    Q = (X[owners] + rng.standard_normal((nq, d)) * 0.3).astype(np.float32)
    return X, Q, owners


RULES = [
    ("potential-gaussian", {"ascent": "meanshift"}),
    ("potential-gaussian", {"ascent": "adam", "rate": 0.05, "max_iters": 300}),
    ("potential-gaussian", {"ascent": "normalised", "rate": 0.02, "max_iters": 300}),
    ("potential-1", {"ascent": "adam", "rate": 0.05, "max_iters": 300}),
    ("potential-1", {"ascent": "normalised", "rate": 0.02, "max_iters": 300}),
    ("potential-2", {"ascent": "adam", "rate": 0.01, "max_iters": 300}),
    ("potential-2", {"ascent": "normalised", "rate": 0.02, "max_iters": 300}),
    ("potential-cauchy", {"ascent": "adam", "rate": 0.01, "max_iters": 300, "gamma": 0.1}),
]


@pytest.mark.parametrize("algorithm,query", RULES, ids=[f"{a}-{q['ascent']}" for a, q in RULES])
def test_every_rule_lands_on_the_nearest_neighbour(algorithm, query) -> None:
    X, Q, owners = _separated()
    adapter = registry.get(algorithm).make(dtype="float64")
    adapter.fit(X)
    adapter.set_query_params(snap="topm", m=4, **query)
    ids, dists = adapter.search(Q, 1)
    assert (ids[:, 0] == owners).all()
    assert np.allclose(dists[:, 0], np.linalg.norm(X[owners] - Q, axis=1), rtol=1e-5)
    stats = adapter.stats()
    assert stats.iterations.shape == (len(Q),) and (stats.iterations >= 1).all()
    assert (stats.dist_comps == stats.iterations * len(X) + 4).all()
    assert stats.extra["position_to_snap"].shape == (len(Q),)
    assert stats.scalars["scale"] > 0
    assert adapter.last_positions.shape == Q.shape


def test_naive_potential_has_cross_point_maxima() -> None:
    """The note's objection to the naive potential, measured: it is separable per coordinate,
    so each coordinate climbs to a 1-D peak of *some* point and the climb ends between points."""
    X, Q, owners = _separated()
    adapter = registry.get("potential-naive").make(dtype="float64")
    adapter.fit(X)
    adapter.set_query_params(ascent="normalised", rate=0.02, max_iters=300)
    adapter.search(Q, 1)
    assert converged_onto_nn_rate(adapter.last_positions, X, owners, tol=0.1 * adapter.scale) < 0.5


def test_exact_snap_counts_a_full_pass_and_agrees_with_topm() -> None:
    X, Q, owners = _separated(seed=1)
    adapter = registry.get("potential-gaussian").make()
    adapter.fit(X)
    adapter.set_query_params(snap="exact")
    exact_ids, _ = adapter.search(Q, 3)
    assert (adapter.stats().dist_comps == adapter.stats().iterations * len(X) + len(X)).all()
    adapter.set_query_params(snap="topm", m=8)
    topm_ids, _ = adapter.search(Q, 3)
    assert (exact_ids[:, 0] == owners).all() and (topm_ids[:, 0] == owners).all()


def test_meanshift_is_refused_for_other_potentials() -> None:
    adapter = registry.get("potential-1").make()
    with pytest.raises(ParameterError, match="only defined for the gaussian"):
        adapter.set_query_params(ascent="meanshift")


@pytest.mark.parametrize(
    "build", [{"scale": -1.0}, {"scale": "median"}, {"dtype": "float16"}], ids=["neg-scale", "bad-scale", "fp16"]
)
def test_bad_build_parameters_are_refused(build) -> None:
    with pytest.raises(ParameterError):
        registry.get("potential-gaussian").make(**build)


def test_converged_positions_feed_the_note_rate() -> None:
    X, Q, owners = _separated(seed=2)
    adapter = registry.get("potential-gaussian").make(dtype="float64", scale=1.0)
    adapter.fit(X)
    adapter.set_query_params(beta=50.0, tol=1e-9, max_iters=50)
    adapter.search(Q, 1)
    assert converged_onto_nn_rate(adapter.last_positions, X, owners[:, None], tol=1e-3) == 1.0
    assert converged_onto_nn_rate(Q, X, owners, tol=1e-3) == 0.0


def test_scale_is_recorded_and_fixed_scale_is_respected() -> None:
    X, Q, _ = _separated(seed=3)
    adapter = registry.get("potential-1").make(scale=2.5)
    adapter.fit(X)
    adapter.set_query_params(max_iters=2)
    adapter.search(Q, 1)
    assert adapter.stats().scalars["scale"] == 2.5


def test_every_potential_is_an_algorithm_with_its_own_parameters() -> None:
    algorithms = registry.all_algorithms()
    for name in ("potential-1", "potential-2", "potential-naive", "potential-gaussian", "potential-cauchy"):
        assert name in algorithms
        spec = algorithms[name]
        assert spec.adapter.name == name
        assert "cuda" in spec.adapter.devices
        assert spec.sweep is not None and "query" in spec.sweep
        query = spec.adapter.query_params
        for param, values in spec.sweep.get("query", {}).items():
            assert param in query, (name, param)
    assert "beta" in algorithms["potential-gaussian"].adapter.query_params
    assert "beta" not in algorithms["potential-1"].adapter.query_params


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a CUDA GPU is present")
def test_cuda_without_a_gpu_is_refused_up_front() -> None:
    with pytest.raises(ParameterError, match="no CUDA GPU"):
        registry.get("potential-gaussian").make(device="cuda")
