"""Adapters that misbehave on purpose, for the isolation tests: a segfault, a hang, an exception.

Loaded as a plugin (`--plugins tests/crash_adapters.py`), so that the spawned child process
registers them too. Each answers exactly (brute force) until its `fail` query parameter is
true, so that a sweep shows both the records kept before the failure and the failure itself.
"""
from __future__ import annotations

import ctypes
import time

import numpy as np

from algorithms.base import Adapter, Param
from algorithms.registry import register


class _Exact(Adapter):
    """Brute force in numpy; subclasses misbehave in `_fail`."""

    query_params = {"fail": Param(bool, False, "misbehave in search")}

    def _fit(self, X: np.ndarray) -> None:
        self._X = X

    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.query_values["fail"]:
            self._fail()
        d = ((Q[:, None, :] - self._X[None]) ** 2).sum(-1)
        ids = np.argsort(d, axis=1, kind="stable")[:, :k]
        return ids, np.sqrt(np.take_along_axis(d, ids, 1))

    def _fail(self) -> None:
        raise NotImplementedError


@register("crash-segfault", description="test adapter: dereferences NULL when fail=true")
class Segfault(_Exact):
    def _fail(self) -> None:
        ctypes.string_at(0)


@register("crash-hang", description="test adapter: sleeps forever when fail=true")
class Hang(_Exact):
    def _fail(self) -> None:
        while True:
            time.sleep(60)


@register("crash-raise-build", description="test adapter: raises while building")
class RaiseInBuild(_Exact):
    def _fit(self, X: np.ndarray) -> None:
        raise RuntimeError("this index cannot be built (on purpose)")


@register("crash-hang-build", description="test adapter: sleeps forever while building")
class HangInBuild(_Exact):
    def _fit(self, X: np.ndarray) -> None:
        while True:
            time.sleep(60)


@register("crash-stopped", description="test adapter: gets SIGTERM from outside when fail=true")
class StoppedFromOutside(_Exact):
    def _fail(self) -> None:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)
