"""The check a potential passes when it is registered: one evaluation on tiny tensors.

A potential that cannot run (a function argument named other than its parameter, a psi that
returns the wrong shape or dtype, NaN or inf, a psi autograd cannot differentiate) would
otherwise fail only inside a run, configuration after configuration, while the controls that
never evaluate it (`ascent=none`) succeed. Registering it evaluates it once with its default
parameters on a handful of numbers (microseconds, no data), so such a potential is refused
before anything is built. The potential classes call these helpers from `self_check`.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

#: distances (scale units) a radial psi is tried on: near a peak, about one width, in the tail.
#: r = 0 is left out: a psi singular at its own point (a log or 1/r peak) is a potential too.
SAMPLE_DISTANCES = (0.05, 0.3, 1.0, 3.0)
#: the dtypes a potential must keep: the harness builds in float32 or float64
DTYPES = (torch.float32, torch.float64)


class CheckFailed(Exception):
    """What the registration check found wrong, as a sentence for the user."""


def call_text(function: str, first: str, hp: Mapping[str, Any]) -> str:
    """How a call is shown in a message, e.g. `psi(r, beta=...)`."""
    return f"{function}({', '.join([first, *(f'{name}=...' for name in hp)])})"


def attempt(what: str, fn: Callable[..., Any], *args: Any, hp: Mapping[str, Any]) -> Any:
    """`fn(*args)`, or CheckFailed naming the call and what it raised (and, for a TypeError,
    the parameter names the potential declares: a misnamed argument is the usual cause)."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - whatever the user's function raises is the finding
        declared = ", ".join(hp) if hp else "none"
        extra = f" (its params declare: {declared})" if isinstance(exc, TypeError) else ""
        raise CheckFailed(f"{what} failed: {type(exc).__name__}: {exc}{extra}") from None


def expect_tensor(what: str, value: Any, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """`value` is a finite tensor of `shape` and `dtype`, else CheckFailed saying which it is not."""
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{what} returned {type(value).__name__}, expected a torch.Tensor")
    if tuple(value.shape) != tuple(shape):
        raise CheckFailed(f"{what} returned shape {tuple(value.shape)}, expected {tuple(shape)} (one value per input)")
    if value.dtype != dtype:
        raise CheckFailed(f"{what} returned {value.dtype} for {dtype} input, expected {dtype} (keep the input's dtype)")
    finite = torch.isfinite(value.detach())
    if not bool(finite.all()):
        bad = "NaN" if bool(torch.isnan(value.detach()).any()) else "inf"
        raise CheckFailed(f"{what} returned {bad} (at {int((~finite).sum())} of {finite.numel()} values)")
    return value


def autograd_slope(what: str, value: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """d value.sum() / d inputs by autograd, or CheckFailed when autograd cannot give it."""
    if not value.requires_grad:
        raise CheckFailed(
            f"{what} is not differentiable by autograd: its output does not depend on its input through "
            "torch operations (a .detach(), .item(), numpy or Python math on the tensor loses the gradient)"
        )
    try:
        (slope,) = torch.autograd.grad(value.sum(), inputs, allow_unused=True)
    except RuntimeError as exc:
        raise CheckFailed(f"the gradient of {what} failed: RuntimeError: {exc}") from None
    if slope is None:
        raise CheckFailed(f"{what} is not differentiable by autograd: its output does not depend on its input")
    return expect_tensor(f"the gradient of {what}", slope, tuple(inputs.shape), inputs.dtype)
