"""Name -> adapter registry, filled by importing every module under `algorithms/`.

A new algorithm is a new module in `algorithms/` that decorates its adapter class with
`@register("name")`; nothing in `harness/` needs editing. One adapter class may be registered
under several names with different fixed build parameters (e.g. one potential adapter, one
entry per potential), each with its own default sweep.
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

from harness.errors import ConfigError

from ._sources import Source, source_of_class
from .base import Adapter

A = TypeVar("A", bound=type[Adapter])


@dataclass(frozen=True)
class AlgorithmSpec:
    """A registered algorithm: the adapter class, build parameters it fixes, its default sweep.

    `sweep` has the form of one entry of a sweep file: {"build": {param: [values]},
    "query": {param: [values]}, ...}; None means "use the default sweep file's entry, else one
    configuration at the adapter's defaults".
    """

    name: str
    adapter: type[Adapter]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    sweep: Mapping[str, Any] | None = None
    description: str = ""
    #: part of `python -m harness --dataset X` without --algorithms; False for slow studies
    #: that run only when named
    default_run: bool = True
    #: the file and class (or the potential's function) that registered it, for messages
    source: Source | None = None

    def make(self, **kwargs: Any) -> Adapter:
        """An adapter instance named after this entry (one class may serve several entries)."""
        adapter = self.adapter(**{**self.fixed, **kwargs})
        adapter.name = self.name
        return adapter


_REGISTRY: dict[str, AlgorithmSpec] = {}
_IMPORT_PROBLEMS: dict[str, str] = {}
_DISCOVERED = False


def register(
    name: str,
    *,
    fixed: Mapping[str, Any] | None = None,
    sweep: Mapping[str, Any] | None = None,
    description: str | None = None,
    default_run: bool = True,
) -> Callable[[A], A]:
    """Class decorator: register an adapter under `name` (may be stacked for several names)."""

    def decorate(cls: A) -> A:
        add(name, cls, fixed=fixed, sweep=sweep, description=description, default_run=default_run)
        return cls

    return decorate


def add(
    name: str,
    cls: type[Adapter],
    *,
    fixed: Mapping[str, Any] | None = None,
    sweep: Mapping[str, Any] | None = None,
    description: str | None = None,
    default_run: bool = True,
    source: Source | None = None,
) -> AlgorithmSpec:
    """Register `cls` under `name`; the functional form of `register`.

    `source` is the definition to name in messages when it is not `cls` itself (a potential's
    adapter class is made in adapter.py, but the potential is written elsewhere). A name taken
    by another definition is refused with both files named; the same definition registered
    again (its module reloaded, or imported under a second module name) replaces the entry.
    """
    source = source or source_of_class(cls)
    existing = _REGISTRY.get(name)
    if existing is not None and existing.adapter is not cls and existing.source != source:
        raise ConfigError(
            f"{source.describe()}: algorithm name {name!r} ({source.what}) is already registered by "
            f"{existing.source.describe() if existing.source else 'another module'} "
            f"({existing.source.what if existing.source else existing.adapter.__qualname__})",
            "give the new algorithm another name; built-in names are listed by `python -m harness list`",
        )
    if "name" not in cls.__dict__:
        cls.name = name  # a subclass of a registered adapter gets its own name, not its parent's
    doc = description or ((cls.__doc__ or "").strip().splitlines() or [""])[0]
    spec = AlgorithmSpec(
        name=name, adapter=cls, fixed=dict(fixed or {}), sweep=sweep, description=doc, default_run=default_run,
        source=source,
    )
    _REGISTRY[name] = spec
    return spec


def discover() -> None:
    """Import every module of the `algorithms` package once, so that their decorators run.

    A module whose import fails (a missing optional library, a bug in a user's new module) is
    remembered with the reason and reported by `python -m harness list` and by the error for
    an unknown algorithm; it does not stop the others.
    """
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    package = importlib.import_module("algorithms")
    for info in pkgutil.walk_packages(package.__path__, prefix="algorithms."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # noqa: BLE001 - one broken module must not hide the others
            _IMPORT_PROBLEMS[info.name] = f"{type(exc).__name__}: {exc}"


def get(name: str) -> AlgorithmSpec:
    """The spec registered under `name`, or a ConfigError with close matches."""
    discover()
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}? " if close else "run `python -m harness list` to see the algorithms. "
    # said after close matches too: a plugin's `potential-imq` is "close" to the built-in potential-1
    hint += "An algorithm defined in a plugin needs --plugins FILE (or $GPNN_PLUGINS)"
    if _IMPORT_PROBLEMS:
        hint += "; modules that failed to import: " + "; ".join(f"{m} ({p})" for m, p in _IMPORT_PROBLEMS.items())
    raise ConfigError(f"unknown algorithm {name!r}", hint)


def all_algorithms() -> dict[str, AlgorithmSpec]:
    discover()
    return dict(sorted(_REGISTRY.items()))


def import_problems() -> dict[str, str]:
    discover()
    return dict(_IMPORT_PROBLEMS)
