"""Uses of the potential other than the plain climb-and-snap of `potential-<name>`, each an
algorithm of its own measured beside the control that isolates what the potential adds.

- `probe.py` (`potential-probe`): the Gaussian potential as the stopping rule of IVF probing;
  control `stop=geometric`, the same loop stopped by a bound distance.
- `tree.py` (`potential-tree`): a coarse-to-fine climb down a k-means tree, centroids weighted by
  their counts; control `descent=greedy`, the same tree searched by centroid distance.
- `fixed_point.py` (`potential-1-fixedpoint`): potential_1 climbed by its fixed-point
  (weighted-mean) map; controls: the note's normalised step, and no climb.

The registry finds them by walking the `algorithms` package (`algorithms.registry.discover`);
nothing imports this folder by name. `bench/potential_roles.py` measures the three together
(docs/method.md, "Other roles for the potential").
"""
