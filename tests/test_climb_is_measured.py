"""The harness notices when the climb does nothing: swap every ascent rule for a no-op.

Each rule in the public registry (`algorithms.potential.register_rule`) is replaced by one of
the same name whose step returns the position unchanged; the adapters then still answer (the
snap finds points near the query), but the method's own measures must drop: the landing
positions stay a spacing away from every point, the note's converged-onto-NN rate falls to 0.

`GPNN_DISABLE_ASCENT=1 python -m pytest tests/` runs the whole suite so (see conftest.py), to
list the tests that catch a broken climb.
"""
from __future__ import annotations

import pytest
from climb_switch import ascent_disabled
from test_potential_adapter import RULES, landing_gaps, started_away

from algorithms import registry


def _landing_share(algorithm: str, query: dict, data: tuple) -> float:  # noqa: ANN001
    X, Q, owners, spacing = data
    adapter = registry.get(algorithm).make(dtype="float64")
    adapter.fit(X)
    adapter.set_query_params(m=4, **query)
    adapter.search(Q, 1)
    return float((landing_gaps(adapter, X, owners) < 0.05 * spacing).mean())


@pytest.mark.parametrize("algorithm,query,share", RULES, ids=[f"{a}-{q['ascent']}" for a, q, _ in RULES])
def test_measures_drop_when_every_rule_is_a_no_op(algorithm, query, share) -> None:
    data = started_away()
    working = _landing_share(algorithm, query, data)
    with ascent_disabled():
        broken = _landing_share(algorithm, query, data)
    assert working >= share
    assert broken == 0.0


def test_restricted_variants_measure_the_same_drop() -> None:
    X, Q, owners, spacing = started_away(n=200, d=4, nq=30, seed=7)
    for name, build, query in (
        ("potential-gaussian-ivf", {"nlist": 8}, {"nprobe": 2, "beta": 50.0}),
        ("potential-gaussian-graph", {"graph_k": 8, "entries": 16}, {"frontier": 4, "beta": 50.0}),
    ):
        shares = []
        for disabled in (False, True):
            adapter = registry.get(name).make(dtype="float64", **build)
            adapter.fit(X)
            adapter.set_query_params(m=4, **query)
            if disabled:
                with ascent_disabled():
                    adapter.search(Q, 1)
            else:
                adapter.search(Q, 1)
            shares.append(float((landing_gaps(adapter, X, owners) < 0.05 * spacing).mean()))
        assert shares[0] >= 0.9 and shares[1] == 0.0, (name, shares)


def test_the_switch_restores_every_rule() -> None:
    from algorithms.potential import rule_class, rule_names

    before = {name: rule_class(name) for name in rule_names()}
    with ascent_disabled():
        assert all(rule_class(name) is not before[name] for name in before if name != "none")
    assert {name: rule_class(name) for name in rule_names()} == before
