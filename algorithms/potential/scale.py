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
#: MiB for one block of the (sample x data rows) float64 distance matrix: the scale's estimate
#: then costs the same memory on a million points as on a thousand (a full row of 256 samples
#: against 1M points was 2 GB, and three such temporaries peaked a process at 10 GB)
BLOCK_MB = 64


def _rows(X: torch.Tensor | np.ndarray, which: slice | np.ndarray, device: torch.device | str,
          centre: torch.Tensor | None) -> torch.Tensor:
    """Rows `which` of X as float64 on `device`, minus `centre` (a copy of those rows only)."""
    if isinstance(X, torch.Tensor):
        part = X[which if isinstance(which, slice) else torch.as_tensor(which, device=X.device)]
        block = part.to(device=device, dtype=torch.float64)
    else:
        block = torch.from_numpy(np.array(X[which], dtype=np.float64)).to(device)
    return block - centre if centre is not None else block


def estimate_scale(
    X: torch.Tensor | np.ndarray, sample: int = SAMPLE, seed: int = 0, centre: torch.Tensor | None = None,
    device: torch.device | str | None = None, block_mb: int = BLOCK_MB,
) -> float:
    """Median distance from up to `sample` data points to their nearest *other* data point.

    Exact on the sample (a full pass over the data, in float64 blocks of at most `block_mb`
    MiB: rows of X are converted a block at a time, never the whole of it); duplicates are
    skipped so that a dataset with repeated rows still gets a positive scale. `centre`
    (float64) is subtracted first, as the frame does (`Units`); distances do not depend on it
    but its rounding does. X may be a tensor or a (memory-mapped) array, any float dtype.
    """
    n = X.shape[0]
    if n < 2:
        return 1.0
    device = device if device is not None else (X.device if isinstance(X, torch.Tensor) else "cpu")
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(n, size=min(n, sample), replace=False))
    width = max(1, block_mb * 2**20 // (8 * len(picks) * 3))  # data rows per block (3 temporaries)
    picked = _rows(X, picks, device, centre)
    picked_sq = (picked * picked).sum(1)
    blocks = [slice(start, min(n, start + width)) for start in range(0, n, width)]
    largest = 0.0  # the largest squared norm: duplicates are distances below 1e-12 of it
    for rows in blocks:
        block = _rows(X, rows, device, centre)
        largest = max(largest, float((block * block).sum(1).max()))
    nearest = torch.full((len(picks),), float("inf"), dtype=torch.float64, device=device)
    at = torch.as_tensor(picks, device=device)
    for rows in blocks:
        start, block = rows.start, _rows(X, rows, device, centre)
        d2 = (picked_sq[:, None] + (block * block).sum(1)[None, :] - 2.0 * (picked @ block.T)).clamp_min_(0.0)
        inside = torch.nonzero((at >= start) & (at < start + len(block))).flatten()
        d2[inside, at[inside] - start] = float("inf")  # a point is not its own neighbour
        d2[d2 <= 1e-12 * largest] = float("inf")  # nor is a duplicate of it
        nearest = torch.minimum(nearest, d2.min(1).values)
    d = nearest[torch.isfinite(nearest)]
    if len(d) == 0:
        return 1.0
    return float(d.median().sqrt())


def resolve_scale(setting: str | float, X: torch.Tensor | np.ndarray, seed: int = 0, centre: torch.Tensor | None = None,
                  device: torch.device | str | None = None) -> float:
    """The scale to use for the parameter value `setting` ("auto" or a positive number); for
    "auto", the estimate on X minus `centre` (see `estimate_scale`)."""
    if setting == "auto":
        return estimate_scale(X, seed=seed, centre=centre, device=device)
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

    def __init__(
        self, X: np.ndarray, setting: str | float, dtype: torch.dtype, device: str, seed: int = 0, centred: bool = True
    ) -> None:
        # a block of rows at a time in float64: the process holds the data once, in `dtype`
        # (a float64 copy of 1M x 128 is 1 GB, and the frame used to make three of them)
        # Not `centred` (inner-product data): the origin stays, since (q - c).(x - c) would not
        # rank the points as q.x does; dividing by the scale keeps the order.
        mean = np.mean(X, axis=0, dtype=np.float64) if centred else np.zeros(X.shape[1], dtype=np.float64)
        self.centre = torch.as_tensor(mean, device=device)
        self.scale = resolve_scale(setting, X, seed=seed, centre=self.centre, device=device)
        self.dtype = dtype
        self.device = device
        #: the data in the frame, as the potentials read it
        self.data = torch.empty(X.shape, dtype=dtype, device=device)
        rows = max(1, BLOCK_MB * 2**20 // (8 * max(1, X.shape[1])))
        for start in range(0, len(X), rows):
            block = _rows(X, slice(start, start + rows), device, self.centre)
            self.data[start:start + rows] = (block / self.scale).to(dtype)

    def inward(self, Q: np.ndarray) -> torch.Tensor:
        """Raw vectors -> centred, scale-unit tensors on the device, as the data was."""
        raw = tensor_of(Q, self.device, np.float64)
        return ((raw - self.centre) / self.scale).to(self.dtype).contiguous()

    def outward(self, positions: torch.Tensor) -> torch.Tensor:
        """Positions in the frame -> raw units (float64), for records and snapping checks."""
        return positions.double() * self.scale + self.centre
