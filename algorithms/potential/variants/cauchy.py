"""Cauchy (Lorentzian) potential: psi(r) = 1 / (1 + (r / gamma)^2).

An example of a new variant in one file. Its heavy tail keeps a usable gradient far from
every point (no vanishing gradient), at the price of a broad peak. Only psi is written: the
derivative comes from autograd, and registering it creates the algorithm `potential-cauchy`.
"""
import torch

from algorithms.base import Param, positive
from algorithms.potential import radial_potential


@radial_potential(
    "cauchy",
    params={"gamma": Param(float, 0.5, "peak half-width, scale units", positive)},
    sweep={"query": {"gamma": [0.1, 0.25], "ascent": ["adam"], "rate": [0.05], "max_iters": [40]}, "max_queries": 200},
)
def cauchy(r: torch.Tensor, gamma: float) -> torch.Tensor:
    """Cauchy potential 1 / (1 + (r/gamma)^2): heavy-tailed, never vanishing gradient."""
    return 1.0 / (1.0 + (r / gamma) ** 2)
