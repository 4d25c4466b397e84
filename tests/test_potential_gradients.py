"""Potentials: analytic (and autograd-fallback) gradients, chunking, mean-shift monotonicity."""
from __future__ import annotations

import pytest
import torch

from algorithms.base import Param, positive
from algorithms.potential import CoordinatePotential, Field, get_potential, make_rule, potential_names
from algorithms.potential.potentials import RadialPotential

HYPER = {
    "potential_1": {"c": 1e3, "eps": 0.5, "clamp": 16.0},
    "potential_2": {"c": 1e3, "eps": 0.5, "clamp": 16.0},
    "naive": {"c": 10.0},
    "gaussian": {"beta": 3.0},
}


class AutogradPair(CoordinatePotential):
    """A coordinate potential defining only its contributions: the autograd fallback path."""

    name = "test_autograd_pair"
    params = {"c": Param(float, 10.0, "", positive)}

    def contributions(self, diff: torch.Tensor, hp: dict) -> torch.Tensor:
        return torch.exp(-(diff[..., :2] ** 2).sum(-1) * hp["c"] ** 0.5)


class AutogradRadial(RadialPotential):
    """A radial potential defining only psi(r)."""

    name = "test_autograd_radial"

    def psi(self, r: torch.Tensor, hp: dict) -> torch.Tensor:
        return 1.0 / (1.0 + r**2)


def _cases() -> list[tuple[str, object, dict]]:
    cases = [(name, get_potential(name), HYPER[name]) for name in HYPER]
    cases += [("autograd_pair", AutogradPair(), {"c": 4.0}), ("autograd_radial", AutogradRadial(), {})]
    return cases


@pytest.fixture(scope="module")
def field() -> Field:
    gen = torch.Generator().manual_seed(0)
    return Field.of(torch.rand(40, 5, generator=gen, dtype=torch.float64) * 2)


@pytest.fixture(scope="module")
def queries() -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(6, 5, generator=gen, dtype=torch.float64) * 2


@pytest.mark.parametrize("name,potential,hp", _cases(), ids=[c[0] for c in _cases()])
def test_gradient_matches_finite_differences(name, potential, hp, field, queries) -> None:
    grad = potential.evaluate(queries, field, hp).grad
    h = 1e-6
    numeric = torch.zeros_like(queries)
    for j in range(queries.shape[1]):
        step = torch.zeros_like(queries)
        step[:, j] = h
        up = potential.evaluate(queries + step, field, hp).value
        down = potential.evaluate(queries - step, field, hp).value
        numeric[:, j] = (up - down) / (2 * h)
    assert torch.allclose(grad, numeric, rtol=1e-5, atol=1e-8 * numeric.abs().max().item())


def test_builtin_potentials_are_registered() -> None:
    assert {"potential_1", "potential_2", "naive", "gaussian"} <= set(potential_names())


@pytest.mark.parametrize("name", list(HYPER))
def test_chunked_evaluation_equals_unchunked(name, field, queries) -> None:
    potential, hp = get_potential(name), HYPER[name]
    whole = potential.evaluate(queries, field, hp, track_m=4)
    tiny = Field(X=field.X, sq_norms=field.sq_norms, memory_mb=1e-4)  # forces 1-row, few-point blocks
    parts = potential.evaluate(queries, tiny, hp, track_m=4)
    assert torch.allclose(whole.value, parts.value, rtol=1e-10)
    assert torch.allclose(whole.grad, parts.grad, rtol=1e-9, atol=1e-12)
    assert torch.equal(whole.top_ids.sort(1).values, parts.top_ids.sort(1).values)


def test_gaussian_survives_extreme_beta(field, queries) -> None:
    ev = get_potential("gaussian").evaluate(queries.float(), Field.of(field.X.float()), {"beta": 1e6})
    assert torch.isfinite(ev.value).all() and torch.isfinite(ev.grad).all()


def test_potential_1_is_finite_in_fp32_far_from_points(field) -> None:
    far = torch.full((2, 5), 50.0)
    ev = get_potential("potential_1").evaluate(far, Field.of(field.X.float()), HYPER["potential_1"] | {"c": 1e8})
    assert torch.isfinite(ev.value).all() and torch.isfinite(ev.grad).all()


def test_mean_shift_step_never_decreases_log_potential(field, queries) -> None:
    gaussian = get_potential("gaussian")
    rule = make_rule("meanshift", gaussian)
    for beta in (0.5, 3.0, 30.0):
        q = queries.clone()
        previous = gaussian.evaluate(q, field, {"beta": beta})
        start_value = previous.value.clone()
        for _ in range(10):
            q = rule.step(q, previous)
            current = gaussian.evaluate(q, field, {"beta": beta})
            assert (current.value >= previous.value - 1e-10).all()
            previous = current
        # ... and it climbs: a rule that never moved would pass the line above
        assert (queries - q).norm(dim=1).min() > 1e-3
        assert (previous.value > start_value + 1e-6).all()
