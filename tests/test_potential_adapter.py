"""The potential adapters: landing on the nearest neighbour, parameters, statistics, registry."""
from __future__ import annotations

import numpy as np
import pytest

from algorithms import registry
from harness.errors import ParameterError
from harness.measure.metrics import position_to_true_nn  # the distance the record's converged_onto_nn_rate thresholds


def _separated(seed: int = 0, n: int = 60, d: int = 8, nq: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points far apart, queries close to one of them: the true NN is never in doubt."""
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) * 10).astype(np.float32)
    owners = rng.integers(0, n, nq)
    Q = (X[owners] + rng.standard_normal((nq, d)) * 0.3).astype(np.float32)
    return X, Q, owners


def started_away(
    seed: int = 0, n: int = 60, d: int = 8, nq: int = 40, start: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Queries `start` NN spacings from their nearest point (and 1.5x that from the next one).

    The spacing is the median distance from a point to its nearest other point (what
    `scale=auto` measures). Started this far away, a position that never moves is nowhere
    near a data point, so a test on the landing position fails when the climb is broken.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * 10
    gaps = np.linalg.norm(X[:, None] - X[None], axis=2)
    np.fill_diagonal(gaps, np.inf)
    spacing = float(np.median(gaps.min(1)))
    queries, owners = [], []
    while len(queries) < nq:
        owner = rng.integers(n)
        direction = rng.standard_normal(d)
        q = X[owner] + direction / np.linalg.norm(direction) * spacing * start
        dist = np.sort(np.linalg.norm(X - q, axis=1))
        if np.linalg.norm(X - q, axis=1).argmin() == owner and dist[1] >= 1.5 * dist[0]:
            queries.append(q)
            owners.append(owner)
    return X.astype(np.float32), np.array(queries, dtype=np.float32), np.array(owners), spacing


def landing_gaps(adapter, X: np.ndarray, owners: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """Distance from each landing position to the query's true nearest neighbour (raw units)."""
    return np.linalg.norm(adapter.last_positions - X[owners].astype(np.float64), axis=1)


# (algorithm, query parameters, share of queries that must land within 5 % of a spacing of the NN)
RULES = [
    ("potential-gaussian", {"ascent": "meanshift"}, 1.0),
    ("potential-gaussian", {"ascent": "adam", "rate": 0.05, "max_iters": 300}, 1.0),
    ("potential-gaussian", {"ascent": "normalised", "rate": 0.02, "max_iters": 300}, 1.0),
    ("potential-1", {"ascent": "adam", "rate": 0.02, "max_iters": 400}, 1.0),
    ("potential-1", {"ascent": "normalised", "rate": 0.02, "max_iters": 300}, 1.0),
    ("potential-cauchy", {"ascent": "adam", "rate": 0.01, "max_iters": 300, "gamma": 0.1}, 0.75),
    ("potential-cauchy", {"ascent": "normalised", "rate": 0.02, "max_iters": 400, "gamma": 0.1}, 0.85),
]


@pytest.mark.parametrize("algorithm,query,share", RULES, ids=[f"{a}-{q['ascent']}" for a, q, _ in RULES])
def test_every_rule_climbs_onto_the_nearest_neighbour_from_a_spacing_away(algorithm, query, share) -> None:
    X, Q, owners, spacing = started_away()
    adapter = registry.get(algorithm).make(dtype="float64")
    adapter.fit(X)
    adapter.set_query_params(m=4, **query)
    ids, dists = adapter.search(Q, 1)
    gaps = landing_gaps(adapter, X, owners)
    assert (gaps < 0.05 * spacing).mean() >= share, np.median(gaps) / spacing
    assert (ids[:, 0] == owners).mean() >= share
    assert np.allclose(dists[:, 0][ids[:, 0] == owners], np.linalg.norm(X[owners] - Q, axis=1)[ids[:, 0] == owners], rtol=1e-5)
    stats = adapter.stats()
    assert stats.iterations.shape == (len(Q),) and (stats.iterations >= 2).all()
    # every climbing evaluation is a full pass, the snap's extra one too where it was made,
    # then the m = 4 pool points' distances to the query
    again = stats.extra["snap_reevaluated"]
    assert (stats.dist_comps == (stats.iterations + again) * len(X) + 4).all()
    assert stats.extra["position_to_snap"].shape == (len(Q),)


@pytest.mark.parametrize("ascent", ["adam", "normalised"])
def test_potential_2_on_a_plane_is_potential_1_and_climbs_onto_the_nn(ascent) -> None:
    """In 2-D the cyclic pairs (0, 1) and (1, 0) are the whole distance: potential_2 = potential_1."""
    X, Q, owners, spacing = started_away(seed=3, n=40, d=2, nq=30)
    adapter = registry.get("potential-2").make(dtype="float64")
    adapter.fit(X)
    adapter.set_query_params(ascent=ascent, rate=0.02, max_iters=400)
    adapter.search(Q, 1)
    assert (landing_gaps(adapter, X, owners) < 0.05 * spacing).mean() >= 0.9


@pytest.mark.parametrize(
    "query", [{"ascent": "adam", "rate": 0.01}, {"ascent": "normalised", "rate": 0.02, "c": 100.0}], ids=["adam", "normalised"]
)
def test_potential_2_in_eight_dimensions_climbs_towards_the_nn(query) -> None:
    """The note's finding: in d > 2 potential_2's peaks are not the points, but the climb still
    ends nearer the query's NN than it started (a never-moving position would stay at 1 spacing)."""
    X, Q, owners, spacing = started_away()
    adapter = registry.get("potential-2").make(dtype="float64")
    adapter.fit(X)
    adapter.set_query_params(max_iters=400, **query)
    adapter.search(Q, 1)
    assert np.median(landing_gaps(adapter, X, owners)) < 0.9 * spacing


def test_naive_potential_climbs_to_cross_points() -> None:
    """The note's objection to the naive potential, measured: it is separable per coordinate,
    so each coordinate climbs to a 1-D peak of *some* point and the climb ends between points,
    at a position whose every coordinate matches some data point's coordinate."""
    X, Q, owners, spacing = started_away()
    adapter = registry.get("potential-naive").make(dtype="float64")
    adapter.fit(X)
    adapter.set_query_params(ascent="normalised", rate=0.02, max_iters=300)
    adapter.search(Q, 1)
    landing = adapter.last_positions
    coordinate_gap = np.abs(landing[:, None, :] - X[None].astype(np.float64)).min(1)  # (Q, d)
    on_some_peak = (coordinate_gap < 0.02 * spacing).all(1)
    nearest_point = np.linalg.norm(landing[:, None, :] - X[None], axis=2).min(1)
    assert on_some_peak.mean() >= 0.9
    assert (nearest_point > 0.5 * spacing).mean() >= 0.9  # ... yet away from every point: cross points
    assert float((position_to_true_nn(landing, X, owners) < 0.1 * spacing).mean()) < 0.1


def test_the_control_never_moves_and_its_snap_is_a_search_from_the_query() -> None:
    X, Q, owners, spacing = started_away(seed=4)
    adapter = registry.get("potential-gaussian").make(dtype="float64")
    adapter.fit(X)
    adapter.set_query_params(ascent="none", m=5)
    ids, dists = adapter.search(Q, 3)
    np.testing.assert_allclose(adapter.last_positions, Q.astype(np.float64), rtol=0, atol=1e-12)
    assert (adapter.stats().iterations == 0).all()
    # the pool is the top-5 contributors at the query, i.e. its 5 nearest points: an exact search
    exact = np.argsort(np.linalg.norm(X[None] - Q[:, None], axis=2), axis=1)[:, :3]
    np.testing.assert_array_equal(ids, exact)
    assert (adapter.stats().dist_comps == len(X) + 5).all()  # one evaluation at the query + the pool


def test_answers_are_distinct_and_ranked_by_distance_to_the_query() -> None:
    X, Q, owners, _ = started_away(seed=5)
    adapter = registry.get("potential-gaussian").make(dtype="float64")
    adapter.fit(X)
    adapter.set_query_params(m=12, beta=50.0)
    ids, dists = adapter.search(Q, 6)
    to_query = np.linalg.norm(X[ids] - Q[:, None, :], axis=2)
    np.testing.assert_allclose(dists, to_query, rtol=1e-5)
    assert (np.diff(dists, axis=1) >= 0).all()
    assert all(len(set(row)) == 6 for row in ids.tolist())


def test_snap_pool_is_gathered_at_the_landing_position() -> None:
    """A climb cut short (max_iters = 1) did not land where it last evaluated: the snap evaluates
    there once more (counted), so the pool is the landing position's, not the start's."""
    X, Q, owners, spacing = started_away(seed=6)
    adapter = registry.get("potential-1").make(dtype="float64")
    adapter.fit(X)
    adapter.set_query_params(ascent="normalised", rate=0.3, max_iters=1, m=1)
    adapter.search(Q, 1)
    stats = adapter.stats()
    assert stats.extra["snap_reevaluated"].all()
    assert (stats.dist_comps == 2 * len(X) + 1).all()
    landing = adapter.last_positions
    nearest_to_landing = np.linalg.norm(landing[:, None, :] - X[None], axis=2).min(1)
    np.testing.assert_allclose(stats.extra["position_to_snap"], nearest_to_landing, rtol=1e-6)


def test_exact_snap_counts_a_full_pass_and_agrees_with_final() -> None:
    X, Q, owners = _separated(seed=1)
    adapter = registry.get("potential-gaussian").make()
    adapter.fit(X)
    adapter.set_query_params(snap="exact")
    exact_ids, _ = adapter.search(Q, 3)
    assert (adapter.stats().dist_comps == adapter.stats().iterations * len(X) + len(X) + 16).all()
    adapter.set_query_params(snap="final", m=8)
    final_ids, _ = adapter.search(Q, 3)
    assert (exact_ids[:, 0] == owners).all() and (final_ids[:, 0] == owners).all()


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
    X, Q, owners, _ = started_away(seed=2)
    adapter = registry.get("potential-gaussian").make(dtype="float64", scale=1.0)
    adapter.fit(X)
    adapter.set_query_params(beta=50.0, tol=1e-9, max_iters=50)
    adapter.search(Q, 1)
    assert float((position_to_true_nn(adapter.last_positions, X, owners[:, None]) < 1e-3).mean()) == 1.0
    assert float((position_to_true_nn(Q, X, owners) < 1e-3).mean()) == 0.0


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
