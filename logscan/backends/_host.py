"""Host memory helpers shared by the CPU backends."""

from __future__ import annotations

import functools
import operator

import numpy as np


class _Buffer:
    """A raw host pointer described through the NumPy array interface."""

    __slots__ = ("__array_interface__",)

    def __init__(self, interface):
        self.__array_interface__ = interface


@functools.cache
def _typestr(dtype):
    return dtype.str


def as_array(ptr, shape, strides, dtype, writable):
    """A NumPy view of host memory at ``ptr`` (strides in elements, None for C order); no copy."""
    dtype = np.dtype(dtype)
    if strides is not None:
        itemsize = dtype.itemsize
        strides = tuple([operator.index(s) * itemsize for s in strides])
    return np.asarray(_Buffer({"data": (operator.index(ptr), not writable), "shape": tuple(map(operator.index, shape)),
                               "strides": strides, "typestr": _typestr(dtype), "version": 3}))
