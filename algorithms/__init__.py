"""What is measured: adapters for exact search, FAISS, hnswlib and the gradient-potential method.

Every module in this package is imported by `algorithms.registry.discover()`; a module
registers its adapters with `@register(...)`.
"""
from ._allocator import tune_malloc
from .base import Adapter, Param, SearchStats
from .registry import AlgorithmSpec, all_algorithms, get, register

__all__ = ["Adapter", "AlgorithmSpec", "Param", "SearchStats", "all_algorithms", "get", "register", "tune_malloc"]
