"""Restricted potentials equal the full potential when the restriction covers every point."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms import registry
from algorithms.potential import Field, get_potential
from algorithms.potential.restricted.candidates import (
    evaluate_on_candidates,
    ranges_to_padded,
    segment_sums,
    unique_rows,
)
from algorithms.potential.restricted.planes import truncation_radius
from harness.errors import ParameterError


def _data(n: int = 120, d: int = 6, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    Q = (X[:12] + 0.3 * rng.standard_normal((12, d))).astype(np.float32)
    return X, Q


# -- helpers ---------------------------------------------------------------------------------
def test_ranges_to_padded_concatenates_each_rows_ranges() -> None:
    starts = torch.tensor([[0, 10], [5, 7]])
    counts = torch.tensor([[2, 3], [0, 1]])
    pos, valid = ranges_to_padded(starts, counts)
    assert pos[0].tolist() == [0, 1, 10, 11, 12]
    assert valid[1].tolist() == [True, False, False, False, False]
    assert pos[1, 0].item() == 7 and set(pos[1].tolist()) == {7}  # padding repeats a real id


def test_unique_rows_and_segment_sums() -> None:
    ids = torch.tensor([[4, 2, 4, 9], [1, 1, 1, 1]])
    uniq, mask = unique_rows(ids, torch.ones_like(ids, dtype=torch.bool), 10)
    assert sorted(uniq[0][mask[0]].tolist()) == [2, 4, 9] and uniq[1][mask[1]].tolist() == [1]
    vals = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 0.5]])
    keyed, sums, last = segment_sums(ids, vals, torch.ones_like(ids, dtype=torch.bool), 10)
    got = {int(i): float(s) for i, s, is_last in zip(keyed[0], sums[0], last[0]) if is_last}
    assert got == {2: 2.0, 4: 4.0, 9: 4.0}
    assert sums[1][last[1]].tolist() == [3.5]


@pytest.mark.parametrize("name", ["gaussian", "potential_1", "potential_2", "naive", "cauchy"])
def test_candidate_evaluation_over_all_points_is_the_full_evaluation(name: str) -> None:
    X, Q = _data()
    Xt, Qt = torch.as_tensor(X, dtype=torch.float64) / 2, torch.as_tensor(Q, dtype=torch.float64) / 2
    registry.discover()  # imports variants/cauchy.py
    potential = get_potential(name)
    hp = {k: p.default for k, p in potential.params.items()}
    if name == "gaussian":
        hp["beta"] = 3.0
    field = Field.of(Xt)
    full = potential.evaluate(Qt, field, hp, track_m=5)
    cand = torch.randperm(len(X)).expand(len(Q), len(X)).contiguous()
    part = evaluate_on_candidates(potential, Qt, Xt, field.sq_norms, cand, torch.ones_like(cand, dtype=torch.bool), hp, 5)
    torch.testing.assert_close(part.value, full.value)
    torch.testing.assert_close(part.grad, full.grad)
    assert (part.top_ids[:, 0] == full.top_ids[:, 0]).all()
    if full.mean is not None:  # the Gaussian's mean-shift map, a radial potential's fixed-point map
        torch.testing.assert_close(part.mean, full.mean)


# -- whole searches: restriction covering everything == the full method ------------------
def _search(name: str, X: np.ndarray, Q: np.ndarray, build: dict, query: dict, k: int = 3, device: str = "cpu"):
    adapter = registry.get(name).make(dtype="float64", device=device, **build)
    adapter.fit(X)
    adapter.set_query_params(**query)
    ids, dists = adapter.search(Q, k)
    return ids, dists, adapter.last_positions, adapter.stats()


FULL_CASES = [
    ("potential-gaussian-ivf", "potential-gaussian", {"nlist": 8}, {"nprobe": 8}, {"beta": 4.0, "max_iters": 15}),
    ("potential-1-ivf", "potential-1", {"nlist": 8}, {"nprobe": 8}, {"ascent": "adam", "rate": 0.05, "max_iters": 15}),
    ("potential-gaussian-graph", "potential-gaussian", {"graph_k": 119, "entries": 4, "graph_ef": 200},
     {"frontier": 2, "settle": False}, {"beta": 4.0, "max_iters": 15}),
    ("potential-2-planes", "potential-2", {"tolerance": 0.0}, {}, {"ascent": "normalised", "rate": 0.05, "max_iters": 10}),
]


@pytest.mark.parametrize("restricted,full,build,own,query", FULL_CASES, ids=[c[0] for c in FULL_CASES])
def test_covering_restriction_retraces_the_full_method(restricted, full, build, own, query) -> None:
    X, Q = _data()
    ids_r, d_r, pos_r, stats_r = _search(restricted, X, Q, build, {**own, **query})
    ids_f, d_f, pos_f, stats_f = _search(full, X, Q, {}, query)
    np.testing.assert_allclose(pos_r, pos_f, rtol=1e-7, atol=1e-7)
    np.testing.assert_array_equal(ids_r, ids_f)
    np.testing.assert_allclose(d_r, d_f, rtol=1e-6)
    np.testing.assert_array_equal(stats_r.iterations, stats_f.iterations)


def test_planes_step_equals_potential_2_at_infinite_radius() -> None:
    X, Q = _data(d=5)
    adapter = registry.get("potential-2-planes").make(dtype="float64", tolerance=0.0)
    adapter.fit(X)
    adapter.set_query_params()
    q = adapter.to_units(Q)
    adapter._prepare(q)
    hp = adapter.hyper()
    full = get_potential("potential_2").evaluate(q, adapter.field(), hp)
    step = adapter._step(q, torch.arange(len(q)), 0).evaluation
    torch.testing.assert_close(step.value, full.value)
    torch.testing.assert_close(step.grad, full.grad)


# -- the counters count what is computed -----------------------------------------------------
def _two_clusters() -> np.ndarray:
    a = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1]])
    b = np.array([[10.0, 10.0], [10.1, 10.0], [10.0, 10.1], [10.1, 10.1], [10.05, 10.05]])
    return np.vstack([a, b]).astype(np.float32)


def test_ivf_counts_centroids_cells_snap_and_answer() -> None:
    X = _two_clusters()
    Q = np.array([[0.02, 0.03], [10.02, 10.03]], dtype=np.float32)
    query = {"nprobe": 1, "max_iters": 1, "snap": "final", "m": 2, "beta": 1.0}
    _, _, _, stats = _search("potential-gaussian-ivf", X, Q, {"nlist": 2, "scale": 1.0}, query, k=1)
    # one step: 2 centroids + the probed cell (3 or 5 points); the step moved, so the snap
    # evaluates once more at the landing position (2 + the same cell); the pool (m = 2) to the query
    assert stats.dist_comps.tolist() == [2 + 3 + 2 + 3 + 2, 2 + 5 + 2 + 5 + 2]
    assert stats.extra["snap_reevaluated"].tolist() == [True, True]
    assert stats.iterations.tolist() == [1, 1]


def test_graph_counts_entries_and_unique_candidates() -> None:
    X = _two_clusters()
    Q = np.array([[0.02, 0.03]], dtype=np.float32)
    build = {"graph_k": 2, "entries": 2, "scale": 1.0, "graph_ef": 50}
    query = {"frontier": 1, "max_iters": 1, "snap": "final", "m": 1, "beta": 1.0}
    _, _, _, stats = _search("potential-gaussian-graph", X, Q, build, query, k=1)
    # 2 entry points; frontier (1 point of cluster a) + its 2 neighbours = all 3 of cluster a; the
    # snap's evaluation at the landing position (the same 3); the pool (m = 1) to the query
    assert stats.dist_comps.tolist() == [2 + 3 + 3 + 1]


def test_planes_count_the_points_of_the_three_by_three_cells() -> None:
    rng = np.random.default_rng(5)
    X = rng.uniform(-2, 2, size=(300, 3)).astype(np.float32)
    Q = rng.uniform(-1, 1, size=(4, 3)).astype(np.float32)
    adapter = registry.get("potential-2-planes").make(dtype="float64", tolerance=1e-3, scale=1.0)
    adapter.fit(X)
    adapter.set_query_params(max_iters=1, snap="exact")
    adapter.search(Q, 1)
    R = adapter.radius
    Xu, Qu = adapter._X.numpy(), adapter.to_units(Q).numpy()
    expected = np.zeros(len(Q))
    for j in range(3):
        cells = np.floor(Xu[:, [j, (j + 1) % 3]] / R)
        qcells = np.floor(Qu[:, [j, (j + 1) % 3]] / R)
        expected += (np.abs(cells[None] - qcells[:, None]).max(2) <= 1).sum(1)
    np.testing.assert_array_equal(adapter.stats().extra["pair_dist_comps"], expected)
    # the exact snap's full pass, then the pool (m = 16 by default) to the query
    np.testing.assert_allclose(adapter.stats().dist_comps, expected * 2 / 3 + len(X) + 16)
    assert adapter.stats().scalars["truncation_ratio"] == pytest.approx(1e-3)


def test_truncation_radius_meets_the_tolerance() -> None:
    c, eps, clamp = 1e8, 0.5, 16.0
    r = truncation_radius(1e-4, c, eps, clamp)
    u = c**-r
    assert (1 - eps) * u / (1 - eps * u) == pytest.approx(1e-4)
    assert truncation_radius(0.0, c, eps, clamp) == np.inf


# -- the ascent lands on the true neighbour on well separated data -------------------------
# The queries lie a twentieth of a unit from their point and the points units apart, so the snap
# alone (the control, no climb) already answers every query: recall cannot tell the climb from its
# absence here. The landing position can: the climb moves it from the query onto the neighbour.
WELL_SEPARATED = [
    ("potential-gaussian-ivf", {"nlist": 16}, {"nprobe": 2, "beta": 50.0}),
    ("potential-gaussian-graph", {"graph_k": 8, "entries": 16}, {"frontier": 4, "beta": 50.0}),
    ("potential-1-ivf", {"nlist": 16}, {"nprobe": 2, "ascent": "adam", "rate": 0.02, "max_iters": 80}),
    ("potential-2-planes", {"tolerance": 1e-3}, {"ascent": "adam", "rate": 0.02, "max_iters": 80}),
]


@pytest.mark.parametrize("name,build,query", WELL_SEPARATED, ids=[c[0] for c in WELL_SEPARATED])
def test_recall_one_on_well_separated_data(name, build, query) -> None:
    rng = np.random.default_rng(8)
    X = (rng.uniform(0, 1, size=(200, 4)) * 40).astype(np.float32)
    Q = (X[:30] + 0.05 * rng.standard_normal((30, 4))).astype(np.float32)
    true = np.linalg.norm(X[None] - Q[:, None], axis=2).argmin(1)
    start = np.linalg.norm(Q - X[true], axis=1)
    ids, _, landing, stats = _search(name, X, Q, {**build, "scale": 1.0}, {"snap": "final", **query}, k=1)
    assert (ids[:, 0] == true).mean() == 1.0
    # every landing within a quarter of the query's distance of its nearest neighbour (the worst
    # measured: 0.19 of it, adam on potential-2-planes), the climb having stepped at least once
    assert (np.linalg.norm(landing - X[true], axis=1) < 0.25 * start).all()
    assert (stats.iterations >= 1).all()
    # the control snaps from the query itself: as right, but its position never nears the neighbour
    ids_c, _, landing_c, _ = _search(name, X, Q, {**build, "scale": 1.0}, {"snap": "final", **query, "ascent": "none"}, k=1)
    assert (ids_c[:, 0] == true).mean() == 1.0
    np.testing.assert_allclose(np.linalg.norm(landing_c - X[true], axis=1), start, rtol=1e-5)


def test_impossible_settings_are_refused_up_front() -> None:
    ivf = registry.get("potential-gaussian-ivf")
    with pytest.raises(ParameterError, match="nprobe"):
        ivf.adapter.check_config({"nlist": 4}, {"nprobe": 8}, 1, 100, 4)
    graph = registry.get("potential-gaussian-graph")
    with pytest.raises(ParameterError, match="frontier"):
        graph.adapter.check_config({"entries": 4}, {"frontier": 8}, 1, 100, 4)


def test_fewer_than_k_distinct_candidates_are_padded_with_minus_one_not_repeated() -> None:
    """400 points in 100 cells, one probed: a cell holds ~4 points, fewer than k = 10. The answer
    lists each point once and pads with -1 (distance inf), as FAISS does; a repeated id would
    inflate recall@10 (0.70 where the distinct answers score 0.21)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 8)).astype(np.float32)
    Q = rng.standard_normal((50, 8)).astype(np.float32)
    ids, dists, _, _ = _search("potential-gaussian-ivf", X, Q, {"nlist": 100}, {"nprobe": 1, "max_iters": 5}, k=10)
    assert (ids == -1).any()
    for row, d in zip(ids, dists):
        real = row[row >= 0]
        assert len(set(real.tolist())) == len(real)
        assert np.isinf(d[row < 0]).all() and np.isfinite(d[row >= 0]).all()
        assert (row[: len(real)] >= 0).all()  # the points first, nearest first, then the padding


def test_graph_control_is_a_graph_search_from_the_query() -> None:
    """With no climb the frontier still walks the graph at the query until it settles, so the
    control is graph search at the same frontier width (not the entry points' neighbourhood)."""
    rng = np.random.default_rng(8)
    X = (rng.uniform(0, 1, size=(400, 4)) * 40).astype(np.float32)
    Q = (X[:40] + 0.05 * rng.standard_normal((40, 4))).astype(np.float32)
    true = np.linalg.norm(X[None] - Q[:, None], axis=2).argmin(1)
    build = {"graph_k": 8, "entries": 16, "scale": 1.0}
    ids, _, positions, stats = _search("potential-gaussian-graph", X, Q, build, {"ascent": "none", "frontier": 4}, k=1)
    np.testing.assert_allclose(positions, Q, atol=1e-6)
    one_neighbourhood = 16 + 4 * (1 + 8) + 4  # entries + one frontier with its neighbours + the pool
    assert (stats.dist_comps > one_neighbourhood).mean() >= 0.5  # it walked
    assert (ids[:, 0] == true).mean() >= 0.9
