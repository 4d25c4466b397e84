"""Done-when of the issue: Gaussian mean-shift on real SIFT (siftsmall) is exact in a few steps.

At beta = 200 (scale units: the median NN spacing is 1) beta * (d2^2 - d1^2) reaches the
~2 ln N that docs/design.md section 3 says the climb needs to land on the nearest neighbour.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from algorithms import registry
from harness.measure.metrics import position_to_true_nn  # the distance the record's converged_onto_nn_rate thresholds

DATA = Path(__file__).parent / "data" / "siftsmall-128-euclidean.hdf5"
BETA = 200.0


@pytest.fixture(scope="module")
def siftsmall() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not DATA.exists():
        pytest.skip(f"fixture {DATA} is missing")
    with h5py.File(DATA, "r") as f:
        return f["train"][:], f["test"][:], f["neighbors"][:]


def test_gaussian_mean_shift_reaches_the_nearest_neighbour_on_siftsmall(siftsmall) -> None:
    train, test, neighbors = siftsmall
    adapter = registry.get("potential-gaussian").make(threads=2)
    adapter.fit(train)
    adapter.set_query_params(beta=BETA, ascent="meanshift", snap="final", m=16)
    ids, _ = adapter.search(test, 1)
    recall = float((ids[:, 0] == neighbors[:, 0]).mean())
    iterations = adapter.stats().iterations
    assert recall >= 0.99, recall
    assert np.median(iterations) <= 5, np.median(iterations)
    # the climb itself: SIFT queries start a spacing or more from every point, and mean-shift
    # lands on the true NN for most of them (the note's own measure, within 1e-3 raw units)
    start = np.linalg.norm(test - train[neighbors[:, 0]], axis=1)
    assert np.median(start) > adapter.scale
    assert float((position_to_true_nn(adapter.last_positions, train, neighbors) < 1e-3).mean()) >= 0.8
