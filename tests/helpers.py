"""Helpers of the contract suite: the tolerance table, comparisons, inputs, readable ids."""

from __future__ import annotations

import math

import numpy as np

FLOATS = (np.float16, np.float32, np.float64)


# ------------------------------------------------------------------ tolerances
# Allowed error in units of the compute dtype's eps per level of a pairwise
# combination tree (log2 T levels): the contract's "a few ulp * log2(T)".
ULPS_PER_LEVEL = 4


def compute_dtype(dtype):
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def tolerance(dtype, T):
    """Largest allowed ``|got - ref| / (scale + 1)`` for results of ``dtype`` from a scan of length ``T``.

    ``ULPS_PER_LEVEL`` eps of the compute dtype per level of a combination
    tree over T elements; a float16 result adds its final rounding (one
    float16 eps, twice the half-ulp worst case). At T = 65 536 this is
    7.6e-6 in float32 (the contract asks 1e-5) and stays under 2e-5 for any
    T the suite uses.
    """
    dtype = np.dtype(dtype)
    levels = max(1.0, math.log2(max(T, 1)))
    tol = ULPS_PER_LEVEL * np.finfo(compute_dtype(dtype)).eps * levels
    if dtype == np.float16:
        tol += np.finfo(np.float16).eps
    return float(tol)


def max_error(got, ref, scale=None):
    """max ``|got - ref| / (1 + scale)`` over entries where both are finite, and where they disagree on that.

    ``scale`` defaults to ``|ref|``; for linear scans of any sign, pass the
    scan of absolute values (the condition of the recurrence) instead.
    Non-finite entries must match exactly (same infinity, NaN where NaN).
    """
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    scale = np.abs(ref) if scale is None else np.abs(np.asarray(scale, np.float64))
    finite = np.isfinite(ref)
    mismatch = (np.isfinite(got) != finite) | (~finite & ~((got == ref) | (np.isnan(got) & np.isnan(ref))))
    with np.errstate(invalid="ignore"):
        err = np.where(finite & np.isfinite(got), np.abs(got - ref) / (1.0 + scale), 0.0)
    return (float(err.max()) if err.size else 0.0), mismatch


def assert_close(got, ref, dtype, T, *, scale=None, tol=None, what="result"):
    """Compare with the float64 reference under :func:`tolerance`; the message says how far off and where."""
    got_arr = np.asarray(got)
    assert got_arr.shape == np.shape(ref), f"{what}: shape {got_arr.shape}, expected {np.shape(ref)}"
    tol = tolerance(dtype, T) if tol is None else tol
    err, mismatch = max_error(got_arr, ref, scale)
    if mismatch.any():
        where = tuple(int(i[0]) for i in np.nonzero(mismatch))
        raise AssertionError(f"{what}: {int(mismatch.sum())} non-finite mismatches, first at {where}: "
                             f"got {got_arr[where]!r}, expected {np.asarray(ref)[where]!r}")
    assert err <= tol, (f"{what}: max |got - ref| / (1 + |ref|) = {err:.3e} > tolerance {tol:.3e} "
                        f"({np.dtype(dtype)}, T={T}; {err / np.finfo(compute_dtype(dtype)).eps:.1f} eps)")


def assert_same_bits(x, y, what="result"):
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == y.dtype and x.shape == y.shape, f"{what}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}"
    same = x.view(f"u{x.itemsize}") == y.view(f"u{y.itemsize}")
    assert same.all(), f"{what}: {int((~same).sum())} entries differ in their bits, first at {np.argwhere(~same)[0]}"


# ------------------------------------------------------------------ inputs
def case_id(shape, dtype, axis=None):
    """Readable id: ``B2-T33-D5-float32`` for (2, 33, 5) scanned along axis 1."""
    if len(shape) == 3 and axis in (None, 1, -2):
        text = f"B{shape[0]}-T{shape[1]}-D{shape[2]}"
    else:
        text = "x".join(map(str, shape)) + f"-axis{axis}"
    return f"{text}-{np.dtype(dtype).name}"


def log_inputs(rng, shape, dtype, *, neg_inf=0.0):
    """log_a in log U(0.5, 1) (decays), log_b ~ N(0, 1), as ``dtype``; ``neg_inf`` of each set to -inf."""
    log_a = np.log(rng.uniform(0.5, 1.0, shape))
    log_b = rng.normal(size=shape)
    if neg_inf:
        log_a[rng.random(shape) < neg_inf] = -np.inf
        log_b[rng.random(shape) < neg_inf] = -np.inf
    return log_a.astype(dtype), log_b.astype(dtype)


def linear_inputs(rng, shape, dtype):
    """a in U(-1, 1) and b ~ N(0, 1): any signs, a bounded recurrence."""
    return rng.uniform(-1.0, 1.0, shape).astype(dtype), rng.normal(size=shape).astype(dtype)


def state_shape(shape, axis):
    axis = axis % len(shape)
    return shape[:axis] + shape[axis + 1:]


PACKED_FLAG = 7


def packed_record_field(values):
    """``values`` copied into the ``value`` field of packed records whose one-byte ``flag`` field is PACKED_FLAG.

    The field's byte strides are no whole number of elements (itemsize + 1). Returns ``(field, records)``, so a
    test of ``out=`` can check that the flags were left alone.
    """
    values = np.asarray(values)
    records = np.full(values.shape, PACKED_FLAG, np.dtype([("value", values.dtype), ("flag", np.uint8)]))
    records["value"] = values
    assert records["value"].strides[-1] == values.dtype.itemsize + 1
    return records["value"], records
