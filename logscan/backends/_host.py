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
    """The array interface's typestr of ``dtype``, and whether it names ``dtype`` (ml_dtypes' bfloat16 has the
    opaque "<V2": its view is retyped)."""
    return dtype.str, np.dtype(dtype.str) == dtype


def as_array(ptr, shape, strides, dtype, writable):
    """A NumPy view of host memory at ``ptr`` (strides in elements, None for C order); no copy."""
    dtype = np.dtype(dtype)
    if strides is not None:
        itemsize = dtype.itemsize
        strides = tuple([operator.index(s) * itemsize for s in strides])
    typestr, exact = _typestr(dtype)
    view = np.asarray(_Buffer({"data": (operator.index(ptr), not writable), "shape": tuple(map(operator.index, shape)),
                               "strides": strides, "typestr": typestr, "version": 3}))
    return view if exact else view.view(dtype)
