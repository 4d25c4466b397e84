"""The note's pictures, drawn from the real potentials: cross points exist where the note says."""
from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from harness.report import landscape


def test_local_maxima_finds_strict_interior_peaks():
    values = np.zeros((5, 5))
    values[2, 2] = 1.0
    values[0, 0] = 5.0  # on the border: not interior
    assert landscape.local_maxima(values).tolist() == [[2, 2]]


def test_naive_potential_has_cross_points_and_potential_1_has_none():
    points = np.random.default_rng(0).uniform(-10, 10, (10, 2))
    naive = landscape.surface("naive", {"c": 10.0}, points, grid=161)
    exp_l2 = landscape.surface("potential_1", {"c": 10.0, "eps": 0.5, "clamp": 16.0}, points, grid=161)
    assert len(naive.cross_points) > 10  # the note's false maxima, off every data point
    assert len(exp_l2.cross_points) == 0
    assert len(exp_l2.data_peaks) >= 8  # one peak per (grid-resolvable) data point


def test_traced_climb_follows_the_real_ascent():
    points = np.array([[0.0, 0.0], [5.0, 5.0]])
    starts = np.array([[0.5, 0.3], [4.0, 4.5]])
    path = landscape.traced_climb("gaussian", "meanshift", {"beta": 2.0}, None, points, starts, iters=10)
    assert path.shape == (11, 2, 2)
    assert np.allclose(path[0], starts) and np.allclose(path[-1], points, atol=1e-3)


@pytest.mark.slow
def test_make_landscapes_writes_every_figure(tmp_path):
    paths, facts = landscape.make_landscapes(tmp_path, which=["contours-2d", "overlay-1d"])
    assert sorted(p.name for p in paths) == ["contours-2d.png", "contours-2d.svg", "overlay-1d.png", "overlay-1d.svg"]
    assert mpimg.imread(tmp_path / "contours-2d.png").shape[0] > 100
    assert facts["cross_points"]["naive"] > 0 and facts["cross_points"]["potential_2"] == 0
