"""Figures of the method itself: the seed note's pictures, drawn from the real potentials.

`python -m harness landscape` writes into `plots/landscape/`:
- `overlay-1d`: single-point potentials over a small 1-D data set and their sum, for the
  note's exponential form and the Gaussian, with the local maxima of the sum marked;
- `contours-2d`: contours of each potential over 10 random points in [-10, 10]^2 (c = 10 as
  in the note), data points in black, local maxima that are not data points ("cross points")
  as red crosses, with their count in each panel's title;
- `trajectories`: ascent paths from a grid of start points under each ascent rule;
- `convergence`: distance to the true nearest neighbour against iteration, per rule, for a
  sample of queries on the note's uniform data.

Every value and every step comes from `algorithms.potential`: the same objects the benchmark
runs, so a figure shows what the method does, not a re-implementation of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from algorithms.potential import Field, climb, estimate_scale, field_step, get_potential, make_rule
from harness.report.plots import save_figure

#: the landscape figures `harness landscape` draws (see make_landscapes), in order
LANDSCAPES: tuple[str, ...] = ("overlay-1d", "contours-2d", "trajectories", "convergence")
BOX = 10.0
GRID = 241
#: (potential, hyper-parameters in raw units) of the 2-D panels; c = 10 as in the note's figure
PANELS: tuple[tuple[str, dict[str, float]], ...] = (
    ("naive", {"c": 10.0}),
    ("potential_1", {"c": 10.0, "eps": 0.5, "clamp": 16.0}),
    ("potential_2", {"c": 10.0, "eps": 0.5, "clamp": 16.0}),
    ("gaussian", {"beta": 0.5}),
)
#: (label, potential, rule, hyper-parameters, rate) of the trajectory and convergence panels
RULES: tuple[tuple[str, str, str, dict[str, float], float | None], ...] = (
    ("potential_1, normalised step", "potential_1", "normalised", {"c": 10.0, "eps": 0.5, "clamp": 16.0}, 0.05),
    ("potential_1, Adam", "potential_1", "adam", {"c": 10.0, "eps": 0.5, "clamp": 16.0}, 0.2),
    ("gaussian, mean-shift", "gaussian", "meanshift", {"beta": 0.5}, None),
)


@dataclass
class Surface:
    """A potential sampled on a square grid, with its local maxima split by kind."""

    xs: np.ndarray
    values: np.ndarray
    data_peaks: np.ndarray
    cross_points: np.ndarray


def _field(points: np.ndarray) -> Field:
    return Field.of(torch.as_tensor(points, dtype=torch.float64))


def potential_values(name: str, hp: dict[str, float], points: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The potential `name` of the data `points` at `positions` (raw units), as numbers.

    Log-domain potentials (the Gaussian) return log Psi; exponentiated here so every panel
    shows the potential itself.
    """
    potential = get_potential(name)
    value = potential.evaluate(torch.as_tensor(positions, dtype=torch.float64), _field(points), hp).value
    value = value.exp() if potential.log_domain else value
    return value.numpy()


def local_maxima(values: np.ndarray) -> np.ndarray:
    """(row, col) of interior grid cells strictly above all eight neighbours."""
    centre = values[1:-1, 1:-1]
    higher = np.ones_like(centre, dtype=bool)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr or dc:
                higher &= centre > values[1 + dr : values.shape[0] - 1 + dr, 1 + dc : values.shape[1] - 1 + dc]
    return np.argwhere(higher) + 1


def surface(name: str, hp: dict[str, float], points: np.ndarray, box: float = BOX, grid: int = GRID) -> Surface:
    """Sample the potential on a grid and classify its maxima: on a data point, or a cross point."""
    xs = np.linspace(-box, box, grid)
    gx, gy = np.meshgrid(xs, xs)
    positions = np.stack([gx.ravel(), gy.ravel()], 1)
    values = potential_values(name, hp, points, positions).reshape(grid, grid)
    peaks = local_maxima(values)
    where = np.stack([xs[peaks[:, 1]], xs[peaks[:, 0]]], 1) if len(peaks) else np.empty((0, 2))
    spacing = xs[1] - xs[0]
    gap = np.linalg.norm(where[:, None, :] - points[None], axis=2).min(1) if len(where) else np.empty(0)
    on_point = gap <= 2 * spacing
    return Surface(xs, values, where[on_point], where[~on_point])


def figure_overlay_1d(seed: int) -> Figure:
    """The note's first picture: one peak per point, their sum, and where the sum peaks."""
    rng = np.random.default_rng(seed)
    points = np.sort(rng.uniform(0, 10, 7))
    points2 = points[:, None]
    xs = np.linspace(-1, 11, 2001)
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    axes = figure.subplots(1, 2)
    for ax, (name, hp, title) in zip(
        axes,
        (("naive", {"c": np.e}, "exponential: psi = e^-|x - q|"), ("gaussian", {"beta": 2.0}, "Gaussian: psi = exp(-beta (x - q)^2 / 2), beta = 2")),
    ):
        singles = np.stack([potential_values(name, hp, points2[i : i + 1], xs[:, None]) for i in range(len(points))])
        total = potential_values(name, hp, points2, xs[:, None])
        for single in singles:
            ax.plot(xs, single, color="#888888", linewidth=0.8)
        ax.plot(xs, total, color="#d62728", linewidth=1.8, label="sum over the data")
        ax.plot(points, np.zeros_like(points), "ko", label="data points")
        peaks = np.flatnonzero((total[1:-1] > total[:-2]) & (total[1:-1] > total[2:])) + 1
        ax.plot(xs[peaks], total[peaks], "v", color="#1f77b4", label="local maxima of the sum")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("position q (data units)")
        ax.set_ylabel("potential")
        ax.legend(fontsize=8, loc="upper left")
    figure.suptitle("Overlay of single-point potentials in 1-D: peaks of the sum sit on (or near) the data points")
    return figure


def figure_contours(points: np.ndarray) -> tuple[Figure, dict[str, int]]:
    """The note's cross-points picture for every potential; returns the cross-point counts."""
    figure = Figure(figsize=(4.2 * len(PANELS), 4.6), layout="constrained")
    axes = figure.subplots(1, len(PANELS))
    counts = {}
    for ax, (name, hp) in zip(axes, PANELS):
        s = surface(name, hp, points)
        counts[name] = len(s.cross_points)
        shown = np.log10(np.maximum(s.values, 1e-300))
        ax.contourf(s.xs, s.xs, shown, levels=30, cmap="viridis")
        ax.plot(points[:, 0], points[:, 1], "o", color="black", markersize=5, label="data points")
        if len(s.cross_points):
            ax.plot(s.cross_points[:, 0], s.cross_points[:, 1], "x", color="red", markersize=7, mew=2, label="maxima off the data")
        ax.set_title(f"{name} {_hp_text(hp)}\n{len(s.cross_points)} maxima away from the data", fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlabel("q_1")
    axes[0].set_ylabel("q_2")
    axes[0].legend(fontsize=8, loc="lower left")
    figure.suptitle("Contours of log10 potential over 10 random points in [-10, 10]^2: cross points are false maxima")
    return figure, counts


def _hp_text(hp: dict[str, float]) -> str:
    return "(" + ", ".join(f"{k}={v:g}" for k, v in hp.items()) + ")"


def traced_climb(
    name: str, rule_name: str, hp: dict[str, float], rate: float | None, points: np.ndarray, starts: np.ndarray, iters: int
) -> np.ndarray:
    """Positions after every step of the real climb: (iters + 1, n_starts, d) in data units."""
    potential = get_potential(name)
    trace: list[torch.Tensor] = []
    start = torch.as_tensor(starts, dtype=torch.float64)
    rule = make_rule(rule_name, potential, rate)
    climb(start, rule, field_step(potential, _field(points), hp), max_iters=iters, tol=0.0, trace=trace)
    path = [start] + trace
    path += [path[-1]] * (iters + 1 - len(path))
    return torch.stack(path).numpy()


def figure_trajectories(points: np.ndarray, iters: int = 60) -> Figure:
    figure = Figure(figsize=(4.4 * len(RULES), 4.6), layout="constrained")
    axes = figure.subplots(1, len(RULES))
    grid = np.linspace(-BOX * 0.9, BOX * 0.9, 7)
    starts = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2)
    for ax, (label, name, rule, hp, rate) in zip(axes, RULES):
        s = surface(name, hp, points, grid=121)
        ax.contour(s.xs, s.xs, np.log10(np.maximum(s.values, 1e-300)), levels=15, cmap="Greys", linewidths=0.5)
        path = traced_climb(name, rule, hp, rate, points, starts, iters)
        for j in range(path.shape[1]):
            ax.plot(path[:, j, 0], path[:, j, 1], color="#1f77b4", linewidth=0.8, alpha=0.8)
        ax.plot(starts[:, 0], starts[:, 1], ".", color="#1f77b4", markersize=3)
        ax.plot(path[-1, :, 0], path[-1, :, 1], "v", color="#d62728", markersize=4, label="end points")
        ax.plot(points[:, 0], points[:, 1], "o", color="black", markersize=5, label="data points")
        ax.set_title(f"{label}\n{_hp_text(hp)}, rate={rate if rate is not None else 'none'}, {iters} steps", fontsize=9)
        ax.set_xlim(-BOX, BOX)
        ax.set_ylim(-BOX, BOX)
        ax.set_aspect("equal")
        ax.set_xlabel("q_1")
    axes[0].set_ylabel("q_2")
    axes[0].legend(fontsize=8, loc="lower left")
    figure.suptitle("Ascent trajectories from a grid of start points, one panel per ascent rule")
    return figure


def figure_convergence(seed: int, n: int = 400, d: int = 16, n_queries: int = 24, iters: int = 80) -> Figure:
    """Distance to the true nearest neighbour against iteration, on the note's uniform data."""
    rng = np.random.default_rng(seed)
    data = rng.uniform(0, 2, (n, d))
    queries = rng.uniform(0, 1, (n_queries, d))
    nearest = data[np.linalg.norm(queries[:, None] - data[None], axis=2).argmin(1)]
    scale = estimate_scale(torch.as_tensor(data), seed=seed)
    figure = Figure(figsize=(4.4 * len(RULES), 4.0), layout="constrained")
    axes = figure.subplots(1, len(RULES), sharey=True)
    settings = (("normalised", "potential_1", {"c": 1e8, "eps": 0.5, "clamp": 16.0}, 0.02),
                ("adam", "potential_1", {"c": 1e8, "eps": 0.5, "clamp": 16.0}, 0.05),
                ("meanshift", "gaussian", {"beta": 30.0}, None))
    for ax, (rule, name, hp, rate) in zip(axes, settings):
        path = traced_climb(name, rule, hp, rate, data / scale, queries / scale, iters) * scale
        gap = np.linalg.norm(path - nearest[None], axis=2)
        for j in range(gap.shape[1]):
            ax.semilogy(np.arange(iters + 1), np.maximum(gap[:, j], 1e-12), color="#1f77b4", alpha=0.6, linewidth=0.8)
        ax.axhline(1e-3, color="#d62728", linestyle="--", linewidth=1, label="1e-3 (the note's tolerance)")
        ax.set_title(f"{name}, {rule} {_hp_text(hp)}", fontsize=9)
        ax.set_xlabel("iteration")
    axes[0].set_ylabel("distance to the true nearest neighbour (data units)")
    axes[0].legend(fontsize=8)
    figure.suptitle(f"Convergence on the note's data: {n} points uniform in [0,2]^{d}, {n_queries} queries in [0,1]^{d}; "
                    f"parameters in units of the NN spacing ({scale:.3g})", fontsize=10)
    return figure


def make_landscapes(out_dir: Path, seed: int = 0, which: Sequence[str] | None = None) -> tuple[list[Path], dict[str, Any]]:
    """Write the landscape figures; returns their paths and facts worth printing (cross points)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    points = np.random.default_rng(seed).uniform(-BOX, BOX, (10, 2))
    written: list[Path] = []
    facts: dict[str, Any] = {}
    wanted = set(which or LANDSCAPES)
    if "overlay-1d" in wanted:
        written += save_figure(figure_overlay_1d(seed), out_dir, "overlay-1d")
    if "contours-2d" in wanted:
        figure, facts["cross_points"] = figure_contours(points)
        written += save_figure(figure, out_dir, "contours-2d")
    if "trajectories" in wanted:
        written += save_figure(figure_trajectories(points), out_dir, "trajectories")
    if "convergence" in wanted:
        written += save_figure(figure_convergence(seed), out_dir, "convergence")
    return written, facts
