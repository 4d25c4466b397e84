"""The note's potential_1 climbed by its own fixed-point map instead of the note's normalised step.

The third role for the potential (roles/__init__.py). The note worries that potential_1's
gradient vanishes far from the data; its remedy is the normalised step q += rate g / |g|^1.1,
whose length grows as |g| shrinks but which still needs a rate and thousands of steps. Setting grad Psi = sum_x psi'(r)(q - x)/r to zero and
solving for q gives the weighted mean q = sum_x a_x x / sum_x a_x with a_x = -psi'(r)/r: the
update mean-shift is for the Gaussian, with the weights the gradient evaluation already has.
It needs no rate, and the weights' ratio does not vanish where the gradient does.
`RadialPotential` provides the map (`Evaluation.mean`), the `fixed-point` rule (ascent.py) steps to it.

`potential-1-fixedpoint` is `potential-1` with `ascent=fixed-point` by default, and it has two
controls. The primary one is the note's rule: `ascent=normalised` with everything else the same
(rate unset: the rule's default 5e-4, the note's), so that each record pairs the fixed-point climb
with the note's climb of the same configuration (iterations, converged-onto-NN rate, distance
computations). The second is every potential's: `ascent=none`, no climb at all, the same snap from
the query itself, so that what either climb adds over no climb is on file too (with `snap=exact`
the climb-less control is an exact search: recall@1 1 at N + m distances). Run by name or by
the default sweep's `potential-1-note-fixedpoint` (the note's setting on uniform-64-euclidean);
`bench/potential_roles.py` prints the converged rate step by step for both rules.
"""
from __future__ import annotations

from dataclasses import replace

from algorithms import registry
from algorithms.base import Control

from ..adapter import adapter_class
from ..potentials import get_potential

_BASE = adapter_class(get_potential("potential_1"))


class FixedPointPotential1(_BASE):  # type: ignore[valid-type, misc]
    """The note's potential_1 climbed by its fixed-point (weighted-mean) map; controls: the note's
    normalised rule, and no climb."""

    #: the note's rule (same configuration), then the climb-less control every potential has
    controls = (Control({"ascent": "normalised"}), *_BASE.controls)
    query_params = {
        **_BASE.query_params,
        "ascent": replace(_BASE.query_params["ascent"], default="fixed-point",
                          help="ascent rule; its controls are 'normalised' (the note's rule, same configuration) "
                               "and 'none' (no climb, snap from the query)"),
    }


registry.add(
    "potential-1-fixedpoint",
    FixedPointPotential1,
    fixed={"potential": "potential_1"},
    # scale=auto: C = 1e8 per median NN spacing; the primary control (the note's rule, rate 5e-4
    # spacings) needs hundreds of full evaluations per query, hence a query subset and run by name only
    sweep={"query": {"ascent": ["fixed-point"], "max_iters": [200], "snap": ["final"]}, "max_queries": 100},
    description=FixedPointPotential1.__doc__,
    default_run=False,
)
