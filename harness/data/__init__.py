"""Datasets: registry, HDF5 format and validation, distances, generators, downloads, the loader."""
