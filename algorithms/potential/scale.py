"""The length scale that makes the potentials' parameters dimensionless.

The note tuned C, eps and the step on points in [0, 2]^64; SIFT distances are in the
hundreds. Measuring distances in units of the typical nearest-neighbour spacing of the data
lets the same constants mean the same thing on every dataset: "a peak about as wide as the
gap between neighbours".
"""
from __future__ import annotations

import numpy as np
import torch

from algorithms._tensors import tensor_of
from harness.errors import ParameterError

SAMPLE = 1000


def estimate_scale(X: torch.Tensor, sample: int = SAMPLE, seed: int = 0) -> float:
    """Median distance from up to `sample` data points to their nearest *other* data point.

    Exact on the sample (a full pass over the data per sampled point, in blocks); duplicates
    are skipped so that a dataset with repeated rows still gets a positive scale.
    """
    n = X.shape[0]
    if n < 2:
        return 1.0
    rng = np.random.default_rng(seed)
    picks = torch.as_tensor(np.sort(rng.choice(n, size=min(n, sample), replace=False)), device=X.device)
    Xd = X.double()
    sq = (Xd * Xd).sum(1)
    nearest = []
    for part in torch.split(picks, 256):
        q = Xd[part]
        d2 = (sq[part][:, None] + sq[None, :] - 2.0 * (q @ Xd.T)).clamp_min_(0.0)
        d2[torch.arange(len(part), device=X.device), part] = float("inf")
        d2[d2 <= 1e-12 * sq.max()] = float("inf")
        nearest.append(d2.min(1).values)
    d = torch.cat(nearest)
    d = d[torch.isfinite(d)]
    if len(d) == 0:
        return 1.0
    return float(d.median().sqrt())


def resolve_scale(setting: str | float, X: torch.Tensor, seed: int = 0) -> float:
    """The scale to use for the parameter value `setting` ("auto" or a positive number)."""
    if setting == "auto":
        return estimate_scale(X, seed=seed)
    if isinstance(setting, (int, float)) and setting > 0:
        return float(setting)
    raise ParameterError(f"scale must be 'auto' or a positive number, got {setting!r}")


def check_scale(value: object) -> str | None:
    """Param check for `scale`."""
    if value == "auto" or (isinstance(value, float) and value > 0):
        return None
    return "must be 'auto' or a positive number (1.0 keeps raw units)"


class Units:
    """The data's frame, fixed at fit time: its centre and length scale.

    Potentials work on centred data measured in scale units (dimensionless parameters, small
    fp32 cancellation); queries enter the frame the same way and positions leave it in raw
    units for the records. Every potential adapter, full or restricted, uses this one frame.
    """

    def __init__(self, X: np.ndarray, setting: str | float, dtype: torch.dtype, device: str, seed: int = 0) -> None:
        raw = tensor_of(X, device, np.float64)
        self.centre = raw.mean(0)
        centred = raw - self.centre
        self.scale = resolve_scale(setting, centred, seed=seed)
        self.dtype = dtype
        self.device = device
        #: the data in the frame, as the potentials read it
        self.data = (centred / self.scale).to(dtype).contiguous()

    def inward(self, Q: np.ndarray) -> torch.Tensor:
        """Raw vectors -> centred, scale-unit tensors on the device, as the data was."""
        raw = tensor_of(Q, self.device, np.float64)
        return ((raw - self.centre) / self.scale).to(self.dtype).contiguous()

    def outward(self, positions: torch.Tensor) -> torch.Tensor:
        """Positions in the frame -> raw units (float64), for records and snapping checks."""
        return positions.double() * self.scale + self.centre
