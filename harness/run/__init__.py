"""Measuring: sweeps, options, clocks, metrics, provenance, measuring, executors, the runner."""
