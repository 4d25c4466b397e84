"""Gradient-potential nearest-neighbour search (the seed note's method), as harness algorithms.

Put a peak on every data point, climb the summed potential from the query, snap to a point.
Pieces, each swappable by name: potentials (potentials.py, builtin.py, gaussian.py, and one
small file per variant in variants/), ascent rules (ascent.py), snap modes (snap.py). Every
registered potential appears as the algorithm `potential-<name>` (adapter.py).
"""
from .adapter import PotentialAdapter, adapter_class, algorithm_name
from .ascent import AscentRule, Climb, StepResult, climb, field_step, make_rule, register_rule, rule_class, rule_names
from .coordinate import CoordinatePotential, coordinate_potential
from .potentials import (
    Evaluation,
    Field,
    Potential,
    RadialPotential,
    get_potential,
    potential_names,
    radial_potential,
    register_potential,
)
from . import builtin as _builtin  # noqa: F401  (registers potential_1, potential_2, naive)
from . import gaussian as _gaussian  # noqa: F401  (registers gaussian)
from .scale import estimate_scale
from .snap import SNAP_MODES, rerank

__all__ = [
    "SNAP_MODES", "AscentRule", "Climb", "CoordinatePotential", "Evaluation", "Field", "Potential",
    "PotentialAdapter", "RadialPotential", "StepResult", "adapter_class", "algorithm_name", "climb",
    "coordinate_potential", "estimate_scale", "field_step", "get_potential",
    "make_rule", "potential_names", "radial_potential", "register_potential", "register_rule",
    "rerank", "rule_class", "rule_names",
]
