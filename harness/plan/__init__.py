"""Planning a run: what the user chose, the sweeps, the cost model and budgets, the decision per
build configuration (compute, reuse, skip, stale) and the progress over its estimated work."""
