"""Host memory helpers shared by the CPU backends."""

from __future__ import annotations

import numpy as np


class _Buffer:
    """A raw host pointer described through the NumPy array interface."""

    def __init__(self, ptr, shape, strides, dtype, writable):
        dtype = np.dtype(dtype)
        byte_strides = None if strides is None else tuple(int(s) * dtype.itemsize for s in strides)
        self.__array_interface__ = {
            "data": (int(ptr), not writable),
            "shape": tuple(int(n) for n in shape),
            "strides": byte_strides,
            "typestr": dtype.str,
            "version": 3,
        }


def as_array(ptr, shape, strides, dtype, writable):
    """A NumPy view of host memory at ``ptr`` (strides in elements, None for C order); no copy."""
    return np.asarray(_Buffer(ptr, shape, strides, dtype, writable))
