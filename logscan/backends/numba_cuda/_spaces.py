"""The two algebras of the scan as CUDA device functions, and typed constants per dtype.

A step ``h -> a*h + b`` is the pair ``(a, b)``. In linear space pairs compose
as ``(a1, b1) then (a2, b2) = (a1*a2, a2*b1 + b2)`` with identity ``(1, 0)``;
in log space as ``(A1 + A2, logaddexp(A2 + B1, B2))`` with identity
``(0, -inf)``. Every kernel is written once against a :class:`Space` and
specialized by closing over its device functions.

Constants are numpy scalars of the compute dtype: a bare Python float in a
kernel is a float64 and would silently promote float32 arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda


@cuda.jit(device=True, inline=True)
def logaddexp(x, y):
    """log(exp(x) + exp(y)), exact for -inf (both -inf gives -inf), NaN in -> NaN out."""
    if x < y:
        x, y = y, x
    if y == -math.inf or x == math.inf:
        return x
    return x + math.log1p(math.exp(y - x))


# ------------------------------------------------------------------ log space
@cuda.jit(device=True, inline=True)
def log_apply(a, b, h):
    """State after one step: logaddexp(a + h, b)."""
    return logaddexp(a + h, b)


@cuda.jit(device=True, inline=True)
def log_compose(a1, b1, a2, b2):
    """(a1, b1) then (a2, b2)."""
    return a1 + a2, logaddexp(a2 + b1, b2)


# --------------------------------------------------------------- linear space
@cuda.jit(device=True, inline=True)
def linear_apply(a, b, h):
    return a * h + b


@cuda.jit(device=True, inline=True)
def linear_compose(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


class Space:
    """A scan algebra specialized to one dtype: device functions and typed constants."""

    def __init__(self, name, dtype):
        self.name = name
        self.dtype = np.dtype(dtype)
        scalar = self.dtype.type
        self.nb_dtype = {"float32": __import__("numba").float32, "float64": __import__("numba").float64}[
            self.dtype.name]
        self.zero, self.one = scalar(0), scalar(1)
        self.neg_inf = scalar(-np.inf)
        if name == "log":
            self.apply, self.compose = log_apply, log_compose
            self.identity = (scalar(0), scalar(-np.inf))
        elif name == "linear":
            self.apply, self.compose = linear_apply, linear_compose
            self.identity = (scalar(1), scalar(0))
        else:
            raise ValueError(f"unknown space {name!r}")

    def __repr__(self):
        return f"Space({self.name!r}, {self.dtype.name})"
