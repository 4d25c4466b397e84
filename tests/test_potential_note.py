"""The seed note's experiment at small scale: this implementation reaches the note's own rate.

The note's code path (algorithms/potential/note_reference.py: full tensors, autograd) and the
adapter run side by side on the note's data at S=200, Q=100, D=16. The step is 10x the note's
(5e-3) so that 200 steps finish the climb; the oscillation around a peak is then about 4e-3,
so "converged onto the NN" is measured within 1e-2 instead of the note's 1e-3.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms import registry
from algorithms.potential.note_reference import note_ascent, note_data
from harness.measure.metrics import position_to_true_nn  # the distance the record's converged_onto_nn_rate thresholds

pytestmark = pytest.mark.slow  # the note's 200-step climbs, twice

S, Q, D, STEPS, RATE, TOL = 200, 100, 16, 200, 5e-3, 1e-2


@pytest.fixture(scope="module")
def note_setting() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ds, qs = note_data(S, Q, D)
    # the adapter sees float32 vectors, so both sides use the float32-rounded data
    data, queries = ds.float().numpy(), qs.float().numpy()
    nn = np.linalg.norm(queries[:, None, :].astype(np.float64) - data, axis=2).argmin(1)
    return data, queries, nn


def _reference(data: np.ndarray, queries: np.ndarray, potential: str) -> np.ndarray:
    ds, qs = torch.from_numpy(data).double(), torch.from_numpy(queries).double()
    return note_ascent(ds, qs, STEPS, potential, rate=RATE).numpy()


def _ours(data: np.ndarray, queries: np.ndarray, algorithm: str) -> tuple[np.ndarray, np.ndarray]:
    # m = 1: the pool is the one point nearest the landing position, the note's own snap
    adapter = registry.get(algorithm).make(scale=1.0, dtype="float64")
    adapter.fit(data)
    adapter.set_query_params(ascent="normalised", rate=RATE, power=1.1, max_iters=STEPS, tol=0.0, snap="exact", m=1)
    ids, _ = adapter.search(queries, 1)
    return adapter.last_positions, ids[:, 0]


def _snap_recall(positions: np.ndarray, data: np.ndarray, nn: np.ndarray) -> float:
    snapped = np.linalg.norm(positions[:, None, :] - data.astype(np.float64), axis=2).argmin(1)
    return float((snapped == nn).mean())


@pytest.mark.parametrize("potential,algorithm", [("potential_1", "potential-1"), ("potential_2", "potential-2")])
def test_rates_match_the_notes_code(note_setting, potential, algorithm) -> None:
    data, queries, nn = note_setting
    reference = _reference(data, queries, potential)
    positions, ids = _ours(data, queries, algorithm)
    ref_rate = float((position_to_true_nn(reference, data, nn) < TOL).mean())
    our_rate = float((position_to_true_nn(positions, data, nn) < TOL).mean())
    assert abs(ref_rate - our_rate) <= 0.02, (ref_rate, our_rate)
    assert abs(_snap_recall(reference, data, nn) - float((ids == nn).mean())) <= 0.02
    if potential == "potential_1":
        # the note's finding at this scale: potential_1 converges onto the NN ...
        assert ref_rate >= 0.95
    else:
        # ... potential_2 never sits on a point, yet its peak is usually the right one
        assert ref_rate == 0.0 and _snap_recall(reference, data, nn) >= 0.8


def test_first_steps_follow_the_notes_trajectory(note_setting) -> None:
    """Same formula in fp64: positions agree to rounding before any chaotic oscillation."""
    data, queries, _ = note_setting
    ds, qs = torch.from_numpy(data).double(), torch.from_numpy(queries).double()
    reference = note_ascent(ds, qs, 5, "potential_2", rate=RATE).numpy()
    adapter = registry.get("potential-2").make(scale=1.0, dtype="float64")
    adapter.fit(data)
    adapter.set_query_params(ascent="normalised", rate=RATE, max_iters=5, tol=0.0)
    adapter.search(queries, 1)
    assert np.allclose(adapter.last_positions, reference, atol=1e-9)
