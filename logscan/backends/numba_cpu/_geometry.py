"""Host side: turn strided NumPy views into (flat memory, geometry) pairs for the kernels.

Kernels take every buffer as a 1-D array over the memory it spans plus the
element offset of its first element and its strides in elements. This keeps
the number of compiled specializations at one per dtype (a 1-D C-contiguous
array type), whatever the layout: reversed time (negative stride),
broadcast (stride 0) and transposed views all look the same to numba.
"""

from __future__ import annotations

import functools

import numpy as np

from logscan.backends._host import as_array


def flat_memory(x):
    """(1-D writable view over the memory ``x`` spans, offset of ``x``'s first element, element strides).

    ``x`` must be non-empty and its byte strides multiples of its itemsize.
    """
    low, size, offset, strides = _span(x.shape, x.strides, x.dtype.itemsize)
    memory = as_array(x.__array_interface__["data"][0] + low, (size,), None, x.dtype, True)
    return memory, offset, strides


@functools.lru_cache(maxsize=1024)
def _span(shape, byte_strides, itemsize):
    """(byte offset of the lowest element from the first, elements spanned, offset of the first, element strides).

    Cached: the same few layouts come back at every call of a loop.
    """
    low = high = 0  # byte offsets of the lowest and highest element from the first
    for n, s in zip(shape, byte_strides, strict=True):
        if s < 0:
            low += (n - 1) * s
        else:
            high += (n - 1) * s
    return low, (high - low) // itemsize + 1, -low // itemsize, tuple([s // itemsize for s in byte_strides])


def element_aligned(x):
    """True when every byte stride of ``x`` is a whole number of elements."""
    return x is None or _whole_elements(x.strides, x.dtype.itemsize)


@functools.lru_cache(maxsize=1024)
def _whole_elements(byte_strides, itemsize):
    return all(s % itemsize == 0 for s in byte_strides)


def describe(arrays, dtype):
    """Flat memories and the ``(len(arrays), 4)`` geometry table of ``arrays``.

    Each entry is a 3-D ``(outer, T, inner)`` array, a 2-D ``(outer, inner)``
    state array, or None (an absent state: a one-element dummy stands in).
    Geometry rows are ``(offset, outer stride, time stride, inner stride)``.
    """
    memories, rows = [], []
    for x in arrays:
        if x is None:
            memories.append(np.zeros(1, dtype))
            rows.append((0, 0, 0, 0))
            continue
        memory, offset, strides = flat_memory(x)
        memories.append(memory)
        rows.append((offset, *strides) if x.ndim == 3 else (offset, strides[0], 0, strides[1]))
    return memories, np.array(rows, np.int64)
