"""Map a scan along any axis of an n-d strided array onto ``(outer, T, inner)``.

``outer`` is the product of the dimensions before the axis, ``T`` the axis,
``inner`` the product of those after it. The mapping is a pure view (no copy)
whenever the dimensions before the axis collapse into one stride and those
after it do too; :func:`canonical` returns None otherwise and the caller copies.
"""

from __future__ import annotations

import functools
import math


def _collapse(shape, strides):
    """(size, stride) of dims viewed as one, or None when they cannot be."""
    dims = [(n, s) for n, s in zip(shape, strides, strict=True) if n != 1]
    size = math.prod(shape)
    if not dims or size == 0:  # an empty array has no element to address: any stride will do
        return size, 0
    for (_, s0), (n1, s1) in zip(dims, dims[1:], strict=False):
        if s0 != s1 * n1:
            return None
    return size, dims[-1][1]


def canonical(shape, strides, axis):
    """Canonical shape and element strides of a view scanned along ``axis``.

    Cached by ``(shape, strides, axis)``: a training loop maps the same few
    layouts at every call, and on small arrays this Python is much of a call.

    Parameters
    ----------
    shape, strides : sequence of int
        The array's shape and its strides *in elements* (any sign, 0 for
        broadcast dimensions).
    axis : int
        A non-negative axis.

    Returns
    -------
    (shape3, strides3) or None
        ``shape3 = (outer, T, inner)`` and the matching element strides, or
        None when the array cannot be viewed that way without a copy.

    Examples
    --------
    >>> canonical((4, 5, 6), (30, 6, 1), axis=1)
    ((4, 5, 6), (30, 6, 1))
    >>> canonical((2, 3, 5, 7), (105, 35, 7, 1), axis=2)
    ((6, 5, 7), (35, 7, 1))
    >>> canonical((4, 6), (1, 4), axis=1)  # Fortran order: still a view
    ((4, 6, 1), (1, 4, 0))
    """
    return _canonical(tuple(shape), tuple(strides), axis)


@functools.lru_cache(maxsize=1024)
def _canonical(shape, strides, axis):
    before = _collapse(shape[:axis], strides[:axis])
    after = _collapse(shape[axis + 1:], strides[axis + 1:])
    if before is None or after is None:
        return None
    (outer, s_outer), (inner, s_inner) = before, after
    return (outer, shape[axis], inner), (s_outer, strides[axis], s_inner)


def canonical_of(array, axis):
    """:func:`canonical` of a NumPy-like array's own shape and byte strides.

    None also when a byte stride is not a whole number of elements (a field
    of a packed structured array, say): the caller copies, as for any layout
    the element strides of the core cannot express.
    """
    return _canonical_bytes(array.shape, array.strides, array.dtype.itemsize, axis)


@functools.lru_cache(maxsize=1024)
def _canonical_bytes(shape, byte_strides, itemsize, axis):
    if any(s % itemsize for n, s in zip(shape, byte_strides, strict=True) if n > 1):
        return None
    return _canonical(shape, tuple([s // itemsize for s in byte_strides]), axis)
