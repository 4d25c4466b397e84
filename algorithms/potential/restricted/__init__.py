"""Restricted potentials: each climbing step sums the potential over a small candidate set.

Over the whole data one potential step costs about two brute-force passes (docs/design.md section 3), so
the full-potential method can never beat exact search. The seed note's plan is to "decompose
the gradient so that each step is computationally cheap"; each route is a variant here, with
exact per-query distance counts so that its place on the Pareto front can be measured:

- `potential-gaussian-ivf`, `potential-1-ivf` (ivf.py): the nprobe k-means cells nearest the
  current position;
- `potential-gaussian-graph` (graph.py): a frontier of data points and their k-NN graph
  neighbours;
- `potential-2-planes` (planes.py): the note's 2-D decomposition, one grid per coordinate pair.

candidates.py evaluates any supported potential on a per-query candidate set; climb.py is
the climbing loop with per-query cost accounting; base.py is the shared adapter.
"""
from . import graph, ivf, planes  # noqa: F401  (registers the algorithms)
