"""NumPy arrays into torch tensors, whatever memory they live in.

A dataset's training vectors arrive as a read-only map of the copy every process shares
(`harness.data.train_copy`). torch cannot hold read-only memory: `from_numpy` and `as_tensor`
would share it and warn that writing through the tensor is undefined. The torch adapters copy
their data into their own index anyway, so such an array is copied here, once, in the dtype
the tensor needs; a writable array is shared as before.
"""
from __future__ import annotations

import numpy as np
import torch


def tensor_of(array: np.ndarray, device: str | torch.device = "cpu", dtype: np.dtype | type | None = None) -> torch.Tensor:
    """`array` as a tensor on `device` (in the numpy `dtype`, if given); read-only memory is copied."""
    target = np.dtype(dtype) if dtype is not None else array.dtype
    if not array.flags.writeable:
        array = np.array(array, dtype=target)  # one copy, already in the dtype the tensor needs
    elif array.dtype != target:
        array = array.astype(target)
    return torch.from_numpy(array).to(device)
