"""Swap every ascent rule for a no-op of the same name, through the public rule registry."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from algorithms.potential import AscentRule, register_rule, rule_class, rule_names
from algorithms.potential.potentials import Evaluation


def _no_op(original: type[AscentRule]) -> type[AscentRule]:
    def step(self: AscentRule, q: torch.Tensor, ev: Evaluation) -> torch.Tensor:
        return q.clone()

    attrs = {"name": original.name, "needs_mean": original.needs_mean, "default_rate": original.default_rate, "step": step}
    return type(f"NoOp_{original.__name__}", (AscentRule,), attrs)


def disable_ascent() -> dict[str, type[AscentRule]]:
    """Register a no-op under every moving rule's name; returns the originals."""
    originals = {name: rule_class(name) for name in rule_names() if rule_class(name).moves}
    for original in originals.values():
        register_rule(_no_op(original))
    return originals


@contextlib.contextmanager
def ascent_disabled() -> Iterator[None]:
    originals = disable_ascent()
    try:
        yield
    finally:
        for original in originals.values():
            register_rule(original)
