"""The machinery of the benchmark: datasets, sweeps, runner, metrics, records, plots, report."""
__version__ = "0.1.0"
