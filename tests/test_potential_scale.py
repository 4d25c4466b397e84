"""The length scale and the frame: the same numbers as a brute-force reference, in bounded memory.

The scale is the median distance from a sample of points to their nearest other point. On a
million points the estimate used to hold (256 x N) float64 matrices, and the frame three
float64 copies of the data: a process peaked at 10 GB building potential-1 on 1M x 128. Both
now work a block of rows at a time.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms.potential.scale import SAMPLE, Units, estimate_scale
from harness.measure.clocks import peak_rss_during, rss_bytes


def _reference(X: np.ndarray, sample: int, seed: int) -> float:
    """The definition, in numpy on the whole matrix: nearest other non-duplicate point, median."""
    picks = np.sort(np.random.default_rng(seed).choice(len(X), size=min(len(X), sample), replace=False))
    Xd = X.astype(np.float64) - X.astype(np.float64).mean(0)
    d2 = ((Xd[picks, None, :] - Xd[None, :, :]) ** 2).sum(-1)
    d2[d2 <= 1e-12 * (Xd * Xd).sum(1).max()] = np.inf  # itself and its duplicates
    nearest = np.sort(d2.min(1))
    return float(np.sqrt(nearest[(len(nearest) - 1) // 2]))  # torch's median: the lower middle value


@pytest.mark.parametrize("block_mb", [1, 64])
def test_the_scale_is_the_median_distance_to_the_nearest_other_point_at_any_block_size(block_mb):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1500, 12)).astype(np.float32)
    X[700:760] = X[100:160]  # duplicates are not neighbours
    centre = torch.as_tensor(X.mean(0, dtype=np.float64))
    expected = _reference(X, 400, seed=5)
    assert estimate_scale(X, sample=400, seed=5, centre=centre, block_mb=block_mb) == pytest.approx(expected, rel=1e-9)
    assert estimate_scale(torch.as_tensor(X), sample=400, seed=5, block_mb=block_mb) == pytest.approx(expected, rel=1e-6)


def test_the_frame_centres_and_scales_as_defined():
    X = np.random.default_rng(1).normal(3.0, 2.0, size=(2000, 8)).astype(np.float32)
    units = Units(X, "auto", torch.float32, "cpu", seed=0)
    expected = (X.astype(np.float64) - X.astype(np.float64).mean(0)) / units.scale
    assert units.data.dtype == torch.float32 and np.allclose(units.data.numpy(), expected, atol=1e-6)
    assert units.scale == pytest.approx(_reference(X, SAMPLE, 0), rel=1e-9)
    assert Units(X, 2.5, torch.float64, "cpu").scale == 2.5


@pytest.mark.slow  # 200k points
def test_the_frame_of_200k_points_holds_the_data_once_not_float64_copies(tmp_path):
    """200k x 32 float32 (24 MiB), read-only memory-mapped as the harness hands it over. The
    old code's peak grew by 1.7 GB here (256 x 200k float64 matrices, float64 copies)."""
    path = tmp_path / "train.npy"
    np.save(path, np.random.default_rng(0).normal(size=(200_000, 32)).astype(np.float32))
    X = np.load(path, mmap_mode="r")
    before = rss_bytes()
    units, peak = peak_rss_during(lambda: Units(X, "auto", torch.float32, "cpu", seed=0))
    if peak is None:
        pytest.skip("the peak resident set cannot be read here (Linux /proc only)")
    growth = peak - before
    assert units.data.shape == X.shape and units.scale > 0
    assert growth < 2 * X.nbytes + 300 * 2**20, f"the frame's peak grew by {growth / 2**20:.0f} MiB"
