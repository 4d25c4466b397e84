"""potential_1's fixed-point (weighted-mean) update (roles/fixed_point.py) against the note's normalised rule."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms import registry
from algorithms.potential import Field, get_potential
from algorithms.potential.note_reference import note_data
from harness.errors import ParameterError
from harness.plan import sweeps
from harness.measure.measure import control_fields
from harness.measure.metrics import position_to_true_nn  # the distance the record's converged_onto_nn_rate thresholds

HP1 = {"c": 1e8, "eps": 0.5, "clamp": 16.0}


def test_the_map_is_the_weighted_mean_with_weights_minus_dpsi_over_r() -> None:
    potential = get_potential("potential_1")
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.uniform(0, 2, (50, 4)))
    q = torch.as_tensor(rng.uniform(0, 2, (6, 4)))
    hp = {"c": 10.0, "eps": 0.5, "clamp": 16.0}
    ev = potential.evaluate(q, Field.of(X), hp)
    r = torch.cdist(q, X)
    weights = -potential.dpsi(r, hp) / r
    assert torch.allclose(ev.mean, weights @ X / weights.sum(1, keepdim=True))
    # and the map's fixed points are the gradient's zeros: grad = sum w (q - x) = (sum w)(q - mean)
    assert torch.allclose(ev.grad, -weights.sum(1, keepdim=True) * (q - ev.mean))


@pytest.mark.parametrize("name,hp", [("potential_1", {"c": 10.0, "eps": 0.5, "clamp": 16.0}), ("cauchy", {"gamma": 0.5})])
def test_a_fixed_point_step_never_lowers_the_potential(name, hp) -> None:  # noqa: ANN001
    registry.discover()  # cauchy lives in variants/
    potential = get_potential(name)
    rng = np.random.default_rng(1)
    field = Field.of(torch.as_tensor(rng.uniform(0, 2, (80, 5))))
    q = torch.as_tensor(rng.uniform(0, 2, (30, 5)))
    for _ in range(5):
        ev = potential.evaluate(q, field, hp)
        after = potential.evaluate(ev.mean, field, hp)
        assert (after.value >= ev.value - 1e-12).all()
        q = ev.mean


def test_a_position_on_a_point_stays_there() -> None:
    X = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    ev = get_potential("potential_1").evaluate(X[1:2].clone(), Field.of(X), HP1)
    assert torch.equal(ev.mean, X[1:2])


def _note_climb(ascent: str, rate: float | None) -> tuple[float, float]:
    """The note's data at S = 200, D = 16 (50 queries), fp64, raw units: (iterations mean, converged rate)."""
    ds, qs = note_data(200, 50, 16)
    X, Q = ds.float().numpy(), qs.float().numpy()
    nn = np.linalg.norm(Q[:, None].astype(np.float64) - X, axis=2).argmin(1)
    adapter = registry.get("potential-1-fixedpoint").make(scale=1.0, dtype="float64")
    adapter.fit(X)
    adapter.set_query_params(ascent=ascent, rate=rate, max_iters=400, tol=1e-5, snap="exact", m=1)
    adapter.search(Q, 1)
    return float(adapter.stats().iterations.mean()), float((position_to_true_nn(adapter.last_positions, X, nn) < 1e-2).mean())


def test_the_fixed_point_converges_in_far_fewer_steps_than_the_notes_rule() -> None:
    """The note's setting, small: the note's rule at 10x its rate (5e-3, as test_potential_note) needs
    ~190 steps; the fixed-point update lands as many queries on their nearest neighbour in ~3."""
    fixed_iters, fixed_rate = _note_climb("fixed-point", None)
    note_iters, note_rate = _note_climb("normalised", 5e-3)
    assert fixed_iters * 20 < note_iters, (fixed_iters, note_iters)
    assert fixed_rate >= 0.9 and fixed_rate >= note_rate - 0.06, (fixed_rate, note_rate)


def test_the_registered_pair_is_fixed_point_against_the_notes_rule() -> None:
    spec = registry.get("potential-1-fixedpoint")
    adapter = spec.make()
    assert adapter.query_values["ascent"] == "fixed-point"
    primary, *_ = spec.adapter.controls_of({"ascent": "fixed-point", "max_iters": 4000})
    assert primary[1] == {"ascent": "normalised", "max_iters": 4000}
    with pytest.raises(ParameterError, match="fixed-point map"):
        registry.get("potential-2").make().set_query_params(ascent="fixed-point")


def test_the_fixed_point_runs_beside_the_notes_rule_and_beside_no_climb() -> None:
    """Both controls are in the default sweep and a method record lists both, each complete:
    the note's rule with everything else the same, no climb with the climb's knobs at their defaults."""
    [config] = sweeps.expand(sweeps.default_entries(["potential-1-fixedpoint"]), 1000)
    assert config.query_params == [
        {"ascent": "fixed-point", "max_iters": 200, "snap": "final"},
        {"ascent": "normalised", "max_iters": 200, "snap": "final"},
        {"ascent": "none", "snap": "final"},
    ]
    adapter = registry.get("potential-1-fixedpoint").make()
    adapter.set_query_params(ascent="fixed-point", max_iters=4000, tol=1e-5, snap="exact")
    fields = control_fields(adapter)
    assert fields["role"] == "method"
    assert [c["switch"] for c in fields["controls"]] == ["ascent=normalised", "ascent=none"]
    note, none = (c["query_params"] for c in fields["controls"])
    assert note == {**adapter.query_values, "ascent": "normalised"}
    defaults = registry.get("potential-1-fixedpoint").make().query_values
    assert none == {**adapter.query_values, "ascent": "none", "max_iters": defaults["max_iters"], "tol": defaults["tol"]}
    # the primary control keeps its own fields, and each control record names its own switch
    assert (fields["control_switch"], fields["control_query_params"]) == ("ascent=normalised", note)
    for switch, query in (("ascent=normalised", note), ("ascent=none", none)):
        adapter.set_query_params(**query)
        assert control_fields(adapter)["role"] == "control"
        assert control_fields(adapter)["control_switch"] == switch


def test_every_potential_with_an_ascent_rule_runs_beside_no_climb() -> None:
    registry.discover()
    with_ascent = {name: spec.adapter for name, spec in registry.all_algorithms().items()
                   if "ascent" in spec.adapter.query_params}
    assert "potential-1-fixedpoint" in with_ascent
    for name, adapter in with_ascent.items():
        assert {"ascent": "none"} in [dict(c.switch) for c in adapter.controls], name
