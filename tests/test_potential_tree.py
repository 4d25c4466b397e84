"""potential-tree (roles/tree.py): coarse-to-fine climbs down a k-means tree, against greedy descent."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms import registry
from algorithms.potential import get_potential, make_rule
from algorithms.potential.potentials import Evaluation


def _small_and_large() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """S: 3 points around (0, -1); L: 100 points around (0, 1.1) and one at (0, 0.3). From queries
    near the origin S's centroid is nearer (1.0 against 1.09), but the nearest point is L's (0, 0.3)."""
    rng = np.random.default_rng(0)
    small = np.array([[0, -1.0], [0.05, -1.0], [-0.05, -1.0]])
    large = np.vstack([np.array([0, 1.1]) + rng.normal(0, 0.05, (100, 2)), [[0, 0.3]]])
    X = np.vstack([small, large]).astype(np.float32)
    Q = np.array([[0.0, 0.0], [0.05, 0.02], [-0.04, -0.01]], dtype=np.float32)
    return X, Q, np.linalg.norm(X[None] - Q[:, None], axis=2).argmin(1)


def _tree(X: np.ndarray, **build: object):  # noqa: ANN202
    adapter = registry.get("potential-tree").make(**{"scale": 1.0, **build})
    adapter.fit(X)
    return adapter


def test_the_count_weighted_climb_descends_where_the_mass_is() -> None:
    """One leaf kept: greedy descent takes the nearer centroid (S) and misses; the climb weighs each
    centroid by its cell's count and keeps L, where the nearest point is, and climbs toward L's mass:
    its landing position leaves the query for the nearest point (the anchor's pull, 10 by default,
    keeps it within a tenth of the way), where greedy descent's never moves."""
    X, Q, true = _small_and_large()
    adapter = _tree(X, leaves=2, branches=1)
    assert sorted(adapter._leaf_sizes.tolist()) == [3, 101]
    adapter.set_query_params(descent="climb", top_width=1, leaf_width=1, m=4)
    climbed, _ = adapter.search(Q, 1)
    landing = adapter.last_positions
    adapter.set_query_params(descent="greedy", top_width=1, leaf_width=1, m=4)
    greedy, _ = adapter.search(Q, 1)
    assert (climbed[:, 0] == true).all()
    assert not (greedy[:, 0] == true).any()
    start = np.linalg.norm(Q - X[true], axis=1)
    # measured: 9 % of the way (0.026-0.028 of 0.28-0.31) toward the nearest point, up toward L
    assert (start - np.linalg.norm(landing - X[true], axis=1) > 0.05 * start).all()
    assert (landing[:, 1] > Q[:, 1] + 0.01).all()
    np.testing.assert_allclose(adapter.last_positions, Q, atol=1e-6)


def test_greedy_counts_every_centroid_and_point_it_reads() -> None:
    X, Q, _ = _small_and_large()
    adapter = _tree(X, leaves=2, branches=1)
    adapter.set_query_params(descent="greedy", top_width=1, leaf_width=1, m=4)
    adapter.search(Q, 1)
    # 1 top centroid + its 2 leaves + the 3 points of S (the nearer leaf) + the pool's 3 to the query
    assert adapter.stats().dist_comps.tolist() == [9.0, 9.0, 9.0]
    np.testing.assert_allclose(adapter.last_positions, Q, atol=1e-6)


def test_a_tree_kept_whole_is_an_exact_search() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 6)).astype(np.float32)
    Q = rng.normal(size=(40, 6)).astype(np.float32)
    true = np.linalg.norm(X[None] - Q[:, None], axis=2).argmin(1)
    adapter = _tree(X, leaves=16, branches=4, scale="auto")
    for descent in ("greedy", "climb"):
        adapter.set_query_params(descent=descent, top_width=4, leaf_width=16, m=20, pull=10.0)
        ids, _ = adapter.search(Q, 1)
        assert (ids[:, 0] == true).all(), descent


def test_the_anchored_rule_is_mean_shift_pulled_toward_the_anchor() -> None:
    gaussian = get_potential("gaussian")
    anchor = torch.zeros(2, 3, dtype=torch.float64)
    here = torch.ones(2, 3, dtype=torch.float64)
    ev = Evaluation(value=torch.zeros(2), grad=torch.zeros(2, 3), mean=torch.full((2, 3), 3.0, dtype=torch.float64))
    rule = make_rule("anchored", gaussian, pull=2.0, anchor=anchor)
    rule.start(2, here)
    assert torch.allclose(rule.step(here, ev), torch.full((2, 3), 1.0, dtype=torch.float64))  # (3 + 2 * 0) / 3
    free = make_rule("anchored", gaussian, pull=0.0)
    free.start(2, here)
    assert torch.equal(free.step(here, ev), ev.mean)


def test_control_is_greedy_descent_with_the_same_widths() -> None:
    spec = registry.get("potential-tree")
    query = {"descent": "climb", "top_width": 4, "leaf_width": 8, "pull": 10.0, "coarse_beta": 10.0}
    assert [control for _, control in spec.adapter.controls_of(query)] == [{"descent": "greedy", "top_width": 4, "leaf_width": 8}]


@pytest.mark.parametrize("build", [{"leaves": 4, "branches": 8}])
def test_more_branches_than_leaves_is_refused(build) -> None:  # noqa: ANN001
    from harness.errors import ParameterError

    with pytest.raises(ParameterError, match="branches"):
        registry.get("potential-tree").adapter.check_config(build, {}, 1, 100, 2)


def test_a_weighted_point_counts_as_that_many_copies() -> None:
    """The count-weighted mixture: a centroid with log weight log n contributes as n points there."""
    from algorithms.potential.restricted.candidates import evaluate_on_candidates

    gaussian = get_potential("gaussian")
    rng = np.random.default_rng(3)
    X = torch.as_tensor(rng.normal(size=(4, 3)))
    counts = torch.tensor([1.0, 3.0, 2.0, 5.0], dtype=torch.float64)
    copies = X.repeat_interleave(counts.long(), 0)
    q = torch.as_tensor(rng.normal(size=(5, 3)))
    hp = {"beta": 0.7}

    def every(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cand = torch.arange(len(points)).expand(len(q), len(points))
        return cand, torch.ones_like(cand, dtype=torch.bool)

    weighted = evaluate_on_candidates(gaussian, q, X, (X * X).sum(1), *every(X), hp, log_weights=counts.log())
    repeated = evaluate_on_candidates(gaussian, q, copies, (copies * copies).sum(1), *every(copies), hp)
    assert torch.allclose(weighted.value, repeated.value) and torch.allclose(weighted.mean, repeated.mean)
