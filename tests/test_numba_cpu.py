"""Numba CPU backend specifics: the vectorized math, every method x op against the reference, layouts.

The generic contract suite covers every backend; this file covers what is
particular to ``logscan.backends.numba_cpu``: the polynomial exp/log1p/
softplus, the lane-group layouts (rows read in place, gathered tiles),
chunk boundaries, compensated accumulation at long T, and ``import logscan``
not importing numba.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

numba_cpu = pytest.importorskip("logscan.backends.numba_cpu")

from numba import types  # noqa: E402  (numba is there: the backend imported it)

import logscan  # noqa: E402
from logscan import reference  # noqa: E402
from logscan.backends.numba_cpu import _vmath  # noqa: E402
from tests.helpers import assert_same_bits  # noqa: E402

METHODS = ("sequential", "chunked", "hillis_steele", "blelloch")
DTYPES = (np.float32, np.float64)
# (outer, inner): flat gathered lanes (inner 1 and 5), rows read in place (inner 40)
CHANNELS = ((3, 1), (2, 5), (1, 40))
LENGTHS = (0, 1, 2, 3, 31, 32, 33, 1000, 1025)


def ulps(got, want, dtype):
    """|got - want| in units of the spacing of ``want`` rounded to ``dtype``."""
    want = np.asarray(want, np.float64)
    spacing = np.spacing(np.abs(want).astype(dtype)).astype(np.float64)
    return np.abs(np.asarray(got, np.float64) - want) / spacing


def tolerance(dtype, T):
    """Error bound in units of eps, growing with log2 T (relative to 1 + |reference|)."""
    return 16 * np.finfo(dtype).eps * (4 + np.log2(T + 1))


def close(got, want, dtype, T, scale=None, factor=1):
    """Within ``factor * tolerance``; gradients take factor 4: their input log_h carries the forward's rounding."""
    want = np.asarray(want, np.float64)
    got = np.asarray(got, np.float64)
    same_special = (got == want) | (np.isnan(got) & np.isnan(want))
    scale = 1 + np.abs(want) if scale is None else scale
    with np.errstate(invalid="ignore"):
        err = np.where(same_special, 0.0, np.abs(got - want) / scale)
    worst = float(np.max(err, initial=0.0))
    return worst <= factor * tolerance(dtype, T), worst


# ----------------------------------------------------------------------------- vectorized math
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_exp_within_2_ulp_over_whole_range(dtype):
    lo, hi = (-87.3, 88.7) if dtype == np.float32 else (-708.0, 709.7)
    x = np.linspace(lo, hi, 2_000_003).astype(dtype)
    x = np.concatenate([x, np.linspace(-0.35, 0.35, 1_000_001).astype(dtype)])  # the reduced range, densely
    out = np.empty_like(x)
    _vmath.exp_array(x, out)
    assert ulps(out, np.exp(x.astype(np.longdouble)), dtype).max() <= 2


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_log1p_within_2_ulp(dtype):
    tiny = np.finfo(dtype).tiny
    x = np.concatenate([np.linspace(-0.999, 3.0, 2_000_003), np.geomspace(tiny, 1e30, 200_001),
                        -np.geomspace(tiny, 0.999, 200_001)]).astype(dtype)
    out = np.empty_like(x)
    _vmath.log1p_array(x, out)
    assert ulps(out, np.log1p(x.astype(np.longdouble)), dtype).max() <= 2


def test_softplus32_within_2_ulp():
    d = -np.concatenate([np.linspace(0, 87, 2_000_003), np.geomspace(1e-30, 87, 200_001)]).astype(np.float32)
    out = np.empty_like(d)
    _vmath.softplus_nonpositive32_array(d, out)
    want = np.log1p(np.exp(d.astype(np.longdouble)))
    assert ulps(out, want, np.float32).max() <= 2.1


def test_float32_polynomials_keep_their_fitted_relative_error():
    """The float32 coefficients as stored: exp(r) on |r| <= ln2/2 within 4e-9, log1p(e)/e on [0, 1] within 1.5e-8."""
    r = np.linspace(-0.3468, 0.3468, 100_001).astype(np.longdouble)
    p = 1 + r + sum(np.longdouble(c) * r ** k for k, c in enumerate(_vmath._EXP6_32, start=2))
    assert np.max(np.abs(p / np.exp(r) - 1)) < 4e-9
    e = np.linspace(1e-6, 1, 100_001).astype(np.longdouble)
    q = sum(np.longdouble(c) * e ** k for k, c in enumerate(_vmath._Q32))
    assert np.max(np.abs(q * e / np.log1p(e) - 1)) < 1.5e-8


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_special_values(dtype):
    inf, nan = np.inf, np.nan
    x = np.array([0, -0.0, -inf, inf, nan, -1e4, 1e4], dtype)
    out = np.empty_like(x)
    _vmath.exp_array(x, out)
    np.testing.assert_array_equal(out, np.array([1, 1, 0, inf, nan, 0, inf], dtype))
    x = np.array([0, -1, -2, inf, nan, -inf, np.finfo(dtype).smallest_subnormal], dtype)
    _vmath.log1p_array(x, out)
    np.testing.assert_array_equal(out, np.array([0, -inf, nan, inf, nan, nan, np.finfo(dtype).smallest_subnormal],
                                                dtype))
    x = np.array([-inf, -inf, inf, nan, 1, -inf, 3, 0, -inf], dtype)
    y = np.array([-inf, 2, inf, 1, nan, inf, 3, -40, 0], dtype)
    out = np.empty_like(x)
    _vmath.logaddexp_array(x, y, out)
    with np.errstate(invalid="ignore"):
        want = np.logaddexp(x.astype(np.float64), y.astype(np.float64))
    assert ulps(out[np.isfinite(want)], want[np.isfinite(want)], dtype).max() <= 2
    np.testing.assert_array_equal(out[~np.isfinite(want)], want[~np.isfinite(want)].astype(dtype))
    assert out[-1] == 0 and out[1] == 2  # -inf adds exactly nothing


def test_logaddexp_dense_pairs_float32():
    rng = np.random.default_rng(0)
    x = rng.normal(scale=30, size=1_000_000).astype(np.float32)
    y = (x + rng.normal(scale=3, size=x.size)).astype(np.float32)
    out = np.empty_like(x)
    _vmath.logaddexp_array(x, y, out)
    want = np.logaddexp(x.astype(np.float64), y.astype(np.float64))
    assert (np.abs(out - want) / (1 + np.abs(want))).max() < 2 * np.finfo(np.float32).eps


def assert_simd_in_every_version(row):
    """Each float32 and float64 version of the lane loop ``row`` compiled so far has a vector body per direction.

    (Other tests may have compiled other versions first, float64 ones or ones for a literal direction:
    each version is checked with its own vector type and its own directions.)
    """
    vector_types = {"float32": ("<16 x float>", "<8 x float>"), "float64": ("<8 x double>", "<4 x double>")}
    checked = 0
    for signature, ir in row.inspect_llvm().items():
        items = [item for arg in signature for item in (arg.types if isinstance(arg, types.BaseTuple) else (arg,))]
        dtypes = {str(item.dtype) for item in items if isinstance(item, types.Array)}
        if len(dtypes) != 1 or not dtypes <= set(vector_types):
            continue
        (dtype,) = dtypes
        # one vectorized body per direction (LLVM may add an epilogue body to each); a version that
        # numba compiled for one literal direction (a caller passing a constant) has that one only
        directions = 1 if isinstance(signature[1], types.Literal) else 2
        assert len(re.findall(r"^vector\.body[0-9]*:", ir, re.MULTILINE)) >= directions, (row, signature)
        assert any(vector in ir for vector in vector_types[dtype]), (row, signature)
        checked += dtype == "float32"
    assert checked >= 1, f"no float32 version of {row} was compiled"


def assert_simd_where_inlined(kernel, rows, descending_at):
    """Every float32 version of ``kernel`` kept a vector body for each of the inlined lane loops ``rows`` in
    each direction (rows of 16 lanes take such a build; LLVM names an inlined body vector.body<k>.i<m>).

    ``descending_at``: where the direction is in the kernel's arguments. A version that numba compiled for a
    literal direction (a caller passing a constant; the package's kernels pass ``np.bool_``) has that one only.
    """
    checked = 0
    for signature, ir in kernel.inspect_llvm().items():
        if "float32" in str(signature):
            directions = 1 if isinstance(signature[descending_at], types.Literal) else 2
            bodies = re.findall(r"^vector\.body[0-9]*\.i[0-9]*:", ir, re.MULTILINE)
            assert len(bodies) >= directions * len(rows), signature
            assert "<8 x float>" in ir or "<16 x float>" in ir, signature
            checked += 1
    assert checked >= 1, f"no float32 version of {kernel} was compiled"


def test_kernel_loops_are_vectorized():
    """The forward passes' lane loops (every space, compensated or not, both directions, output in place or
    apart from the inputs, called or inlined for narrow rows) compile to SIMD."""
    from logscan.backends.numba_cpu import _steps

    a = np.zeros(64, np.float32)
    h = np.zeros(16, np.float32)
    for space, compensate in ((_steps.LOG, True), (_steps.LOG, False), (_steps.LINEAR, False)):
        for descending in (False, True):
            for out in (a, np.zeros_like(a)):
                _steps.forward_steps(space, compensate, a, 0, 16, a, 0, 16, out, 0, 16, h, h.copy(), 16, 2,
                                     descending)
            _steps.forward_total(space, compensate, a, 0, 16, a, 0, 16, h.copy(), h.copy(), h.copy(), 16, 2,
                                 descending)
    for row in (_steps._log_compensated_row, _steps._log_row, _steps._linear_row, _steps._copy_row,
                *_steps.WIDE_OUTPUT_ROWS, *_steps.NARROW_OUTPUT_ROWS,
                _steps._log_compensated_total_row, _steps._log_total_step_row, _steps._linear_total_step_row):
        assert_simd_in_every_version(row)
    assert_simd_where_inlined(_steps._forward_steps_narrow, _steps.NARROW_OUTPUT_ROWS, descending_at=-1)


def test_backward_row_loops_are_vectorized():
    """The reverse passes' lane loops (log and linear, gradients and totals, both directions, called or inlined
    for narrow rows) compile to SIMD."""
    from logscan.backends.numba_cpu import _steps

    n, steps = 16, 2
    rows = [np.zeros(n * steps, np.float32) for _ in range(5)]
    h = np.zeros(n * (steps + 1), np.float32)
    g, a, b, grad_a, grad_b = rows
    zero, neg_inf = np.float32(0), np.float32(-np.inf)
    for space in (_steps.LOG, _steps.LINEAR):
        for descending in (False, True):
            _steps.backward_steps(space, g, 0, n, a, 0, n, b, 0, n, h, n, n, h, 0, n, grad_a, 0, n, grad_b, 0, n,
                                  np.zeros(n, np.float32), n, steps, zero, neg_inf, descending, 0)
            _steps.backward_total(space, g, 0, n, a, 0, n, h, n, n, h, 0, n, np.ones(n, np.float32),
                                  np.zeros(n, np.float32), n, steps, zero, neg_inf, descending, 0)
    for row in (*_steps.WIDE_BACKWARD_ROWS, *_steps.NARROW_BACKWARD_ROWS, _steps._log_total_row,
                _steps._linear_total_row):
        assert_simd_in_every_version(row)
    assert_simd_where_inlined(_steps._backward_steps_narrow, _steps.NARROW_BACKWARD_ROWS, descending_at=-2)


# ----------------------------------------------------------------------------- every method x op
def make_log_inputs(rng, shape, dtype, with_neg_inf):
    log_a = -np.logaddexp(0, -rng.normal(size=shape))  # log sigmoid: decays in (0, 1)
    log_b = rng.normal(size=shape)
    if with_neg_inf and shape[1] > 4:
        log_b[:, : shape[1] // 3] = -np.inf       # an all -inf prefix: -inf out, no NaN
        log_a[:, shape[1] // 2] = -np.inf          # a reset
        log_b[:, shape[1] // 2 + 1: shape[1] // 2 + 3] = -np.inf
    return log_a.astype(dtype), log_b.astype(dtype)


def ids(value):
    if isinstance(value, tuple):
        return f"B{value[0]}-D{value[1]}"
    return str(value)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels", CHANNELS, ids=ids)
@pytest.mark.parametrize("method", METHODS)
def test_log_scan_and_backward_match_reference(method, channels, dtype):
    rng = np.random.default_rng(1)
    outer, inner = channels
    for T in LENGTHS:
        for reverse, with_h0, with_neg_inf in ((False, False, True), (True, True, False), (False, True, True)):
            shape = (outer, T, inner)
            log_a, log_b = make_log_inputs(rng, shape, dtype, with_neg_inf)
            log_h0 = rng.normal(size=(outer, inner)).astype(dtype) if with_h0 else None
            label = (method, T, reverse, with_h0, with_neg_inf)
            got = logscan.scan(log_a, log_b, axis=1, log_h0=log_h0, reverse=reverse, method=method, backend="numba")
            want = reference.scan(log_a, log_b, axis=1, log_h0=log_h0, reverse=reverse)
            assert got.dtype == dtype
            assert not np.isnan(got).any(), label
            ok, err = close(got, want, dtype, T)
            assert ok, (label, err)

            grad = rng.normal(size=shape).astype(dtype)
            got_grads = logscan.scan_backward(grad, log_a, log_b, got, axis=1, log_h0=log_h0, reverse=reverse,
                                              method=method, backend="numba")
            want_grads = reference.scan_backward(grad, log_a, log_b, want, axis=1, log_h0=log_h0, reverse=reverse)
            for name, g, w in zip(("grad_log_a", "grad_log_b", "grad_log_h0"), got_grads, want_grads, strict=False):
                if w is None:
                    assert g is None
                    continue
                assert not np.isnan(g).any(), (label, name)
                scale = 1 + np.max(np.abs(w), initial=0.0)
                ok, err = close(g, w, dtype, T, scale=scale, factor=4)
                assert ok, (label, name, err)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels", CHANNELS, ids=ids)
@pytest.mark.parametrize("method", METHODS)
def test_linear_scan_and_backward_match_reference(method, channels, dtype):
    rng = np.random.default_rng(2)
    outer, inner = channels
    for T in LENGTHS:
        for reverse, with_h0 in ((False, False), (True, True)):
            shape = (outer, T, inner)
            a = rng.uniform(-1, 1, size=shape).astype(dtype)
            b = rng.normal(size=shape).astype(dtype)
            h0 = rng.normal(size=(outer, inner)).astype(dtype) if with_h0 else None
            got = logscan.linear_scan(a, b, axis=1, h0=h0, reverse=reverse, method=method, backend="numba")
            want = reference.linear_scan(a, b, axis=1, h0=h0, reverse=reverse)
            ok, err = close(got, want, dtype, T)
            assert ok, (method, T, reverse, err)
            grad = rng.normal(size=shape).astype(dtype)
            got_grads = logscan.linear_scan_backward(grad, a, b, got, axis=1, h0=h0, reverse=reverse,
                                                     method=method, backend="numba")
            want_grads = reference.linear_scan_backward(grad, a, b, want, axis=1, h0=h0, reverse=reverse)
            for g, w in zip(got_grads, want_grads, strict=False):
                if w is not None:
                    ok, err = close(g, w, dtype, T, scale=1 + np.max(np.abs(w), initial=0.0), factor=4)
                    assert ok, (method, T, reverse, err)


# ----------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("method", METHODS)
def test_strided_transposed_and_broadcast_views(method):
    rng = np.random.default_rng(3)
    base_a = -np.logaddexp(0, -rng.normal(size=(6, 70, 48))).astype(np.float32)
    base_b = rng.normal(size=(6, 70, 48)).astype(np.float32)
    cases = {
        "every-other-inner": (base_a[:, :, ::2], base_b[:, :, ::2], 1),
        "time-last-contiguous": (base_a[:, 0, :].T.copy(), base_b[:, 0, :].T.copy(), -1),  # inner == 1
        "time-last-strided": (base_a[::2, 0, :], base_b[::2, 0, :], 1),
        "negative-strides": (base_a[::-1, ::-1, ::-3], base_b[::-1, ::-1, ::-3], 1),
        "broadcast-a": (np.broadcast_to(base_a[:1, :, :1], (6, 70, 48)), base_b, 1),
    }
    for name, (log_a, log_b, axis) in cases.items():
        got = logscan.scan(log_a, log_b, axis=axis, method=method, backend="numba")
        want = reference.scan(log_a, log_b, axis=axis)
        ok, err = close(got, want, np.float32, log_a.shape[axis])
        assert ok, (name, err)
        grad = np.ones_like(got)
        got_grads = logscan.scan_backward(grad, log_a, log_b, got, axis=axis, method=method, backend="numba")
        want_grads = reference.scan_backward(grad, log_a, log_b, want, axis=axis)
        for g, w in zip(got_grads[:2], want_grads[:2], strict=False):
            ok, err = close(g, w, np.float32, log_a.shape[axis], scale=1 + np.abs(w).max(), factor=4)
            assert ok, (name, err)


@pytest.mark.parametrize("method", METHODS)
def test_in_place_out_is_log_b(method):
    rng = np.random.default_rng(4)
    for shape in ((2, 300, 40), (5, 300, 1)):
        log_a = -np.logaddexp(0, -rng.normal(size=shape))
        log_b = rng.normal(size=shape)
        want = reference.scan(log_a, log_b, axis=1)
        buffer = log_b.copy()
        got = logscan.scan(log_a, buffer, axis=1, method=method, backend="numba", out=buffer)
        assert got is buffer or np.shares_memory(got, buffer)
        np.testing.assert_allclose(buffer, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("method", ["sequential", "chunked"])
def test_two_loop_step_has_the_bits_of_the_one_loop_step(method, dtype):
    """With the output apart from the inputs the forward takes each log-space step in two loops over the lanes
    (exp(-|x - log_b|) into the output row, then the rest); in place it takes the step in one loop. Rows of 16,
    64 (inlined builds) and 200 lanes (called loops), both directions, with -inf, +inf and nan: same values,
    nan in the same places."""
    rng = np.random.default_rng(12)
    special = np.array([-np.inf, np.inf, np.nan, 0.0, 80.0, -80.0])
    for lanes in (16, 64, 200):
        shape = (2, 150, lanes)
        log_a = -np.logaddexp(0, -rng.normal(size=shape))
        log_b = rng.normal(scale=3, size=shape)
        for x in (log_a, log_b):
            hit = rng.random(shape) < 0.01
            x[hit] = rng.choice(special, int(hit.sum()))
        log_a, log_b = log_a.astype(dtype), log_b.astype(dtype)
        for reverse in (False, True):
            label = (lanes, reverse)
            apart = logscan.scan(log_a, log_b, axis=1, reverse=reverse, method=method, backend="numba")
            in_place = log_b.copy()
            logscan.scan(log_a, in_place, axis=1, reverse=reverse, method=method, backend="numba", out=in_place)
            nan = np.isnan(apart)
            assert nan.any() and (nan == np.isnan(in_place)).all(), label
            assert_same_bits(apart[~nan], in_place[~nan], what=str(label))


def test_nan_propagates_forward_and_backward():
    log_a = np.full((1, 20, 3), -0.1)
    log_b = np.zeros((1, 20, 3))
    log_b[0, 7, 1] = np.nan
    for method in METHODS:
        got = logscan.scan(log_a, log_b, axis=1, method=method, backend="numba")
        assert np.isnan(got[0, 7:, 1]).all() and not np.isnan(got[0, :7, 1]).any(), method
        assert not np.isnan(got[0, :, [0, 2]]).any(), method


def test_all_neg_inf_gives_neg_inf_and_zero_gradients():
    log_a = np.zeros((2, 40, 3), np.float32)
    log_b = np.full((2, 40, 3), -np.inf, np.float32)
    for method in METHODS:
        got = logscan.scan(log_a, log_b, axis=1, method=method, backend="numba")
        assert np.all(got == -np.inf), method
        grads = logscan.scan_backward(np.ones_like(got), log_a, log_b, got, axis=1, method=method, backend="numba")
        for g in grads[:2]:
            assert np.all(g == 0), method


# ----------------------------------------------------------------------------- chunks, accuracy, determinism
def test_chunked_uses_several_chunks_and_equals_sequential(monkeypatch):
    # on this 2-core machine chunked runs as one chunk: force the time split to test it
    monkeypatch.setattr(numba_cpu, "MIN_THREADS_TO_CHUNK", 1)
    assert numba_cpu._n_chunks(1, 4096, 1, backward=False) > 1  # one group of one channel: chunks over time
    rng = np.random.default_rng(5)
    log_a = -np.logaddexp(0, -rng.normal(size=(1, 4096, 1)))
    log_b = rng.normal(size=(1, 4096, 1))
    chunked = logscan.scan(log_a, log_b, axis=1, method="chunked", backend="numba")
    sequential = logscan.scan(log_a, log_b, axis=1, method="sequential", backend="numba")
    np.testing.assert_allclose(chunked, sequential, rtol=1e-13, atol=1e-13)
    grad = rng.normal(size=log_a.shape)
    for g_c, g_s in zip(logscan.scan_backward(grad, log_a, log_b, chunked, axis=1, method="chunked", backend="numba"),
                        logscan.scan_backward(grad, log_a, log_b, chunked, axis=1, method="sequential",
                                              backend="numba"), strict=False):
        if g_c is not None:
            np.testing.assert_allclose(g_c, g_s, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", ["state-near-zero", "fast-decay"])
def test_float32_compensation_where_fast2sum_is_inexact(case):
    """The compensated state takes its rounding errors by Fast2Sum, exact only when the state outweighs the term
    added to it. Here it often does not (states hovering near 0, decays of -0.7), and over T = 65 536 the float32
    result must still stay at ulps of the float64 reference (both directions, both lane layouts)."""
    rng = np.random.default_rng(21)
    shape = (1, 65536, 20)
    if case == "state-near-zero":   # steady state log(b / (1 - a)) ~ 0 with a slow decay
        log_a = np.full(shape, np.log(0.9999))
        log_b = np.log(1e-4) + 0.01 * rng.normal(size=shape)
    else:                           # |log h| mostly below |log a| = 0.7
        log_a = np.full(shape, -0.7)
        log_b = rng.normal(size=shape) - 0.7
    for reverse in (False, True):
        for axis, (x, y) in ((1, (log_a, log_b)), (-1, (log_a[0].T, log_b[0].T))):
            want = reference.scan(x, y, axis=axis, reverse=reverse)
            got = logscan.scan(x.astype(np.float32), y.astype(np.float32), axis=axis, reverse=reverse,
                               method="chunked", backend="numba")
            assert (np.abs(got - want) / (1 + np.abs(want))).max() < 4e-7


@pytest.mark.parametrize("method", ("chunked",))
def test_float32_logcumsumexp_at_65536_within_1e_5(method):
    """log_a = 0 (no decay) is the worst case for accumulated rounding; compensation keeps it at ulps.

    (``sequential`` keeps bit-exact splitting instead and reaches ~1e-5 here.)
    """
    rng = np.random.default_rng(6)
    log_b = rng.normal(size=(1, 65536, 4))
    log_a = np.zeros_like(log_b)
    want = reference.scan(log_a, log_b, axis=1)
    got = logscan.scan(log_a.astype(np.float32), log_b.astype(np.float32), axis=1, method=method, backend="numba")
    assert (np.abs(got - want) / (1 + np.abs(want))).max() < 1e-6


def test_deterministic_bits():
    rng = np.random.default_rng(7)
    log_a = -np.logaddexp(0, -rng.normal(size=(1, 5000, 8))).astype(np.float32)
    log_b = rng.normal(size=(1, 5000, 8)).astype(np.float32)
    for method in ("sequential", "chunked"):
        first = logscan.scan(log_a, log_b, axis=1, method=method, backend="numba")
        second = logscan.scan(log_a, log_b, axis=1, method=method, backend="numba")
        assert first.tobytes() == second.tobytes()


def test_sequential_splits_bit_exactly_chunked_compensates():
    """sequential: scan([x1, x2]) == scan(x1) then scan(x2) from its last state, bit for bit.

    chunked carries the rounding error of the state, so it is not bit-exact
    under splitting but stays accurate where sequential drifts (log_a = 0).
    """
    rng = np.random.default_rng(8)
    log_a = np.zeros((1, 65536, 2), np.float32)
    log_b = rng.normal(size=log_a.shape).astype(np.float32)
    whole = logscan.scan(log_a, log_b, axis=1, method="sequential", backend="numba")
    first = logscan.scan(log_a[:, :1000], log_b[:, :1000], axis=1, method="sequential", backend="numba")
    second = logscan.scan(log_a[:, 1000:], log_b[:, 1000:], axis=1, log_h0=first[:, -1], method="sequential",
                          backend="numba")
    assert np.concatenate([first, second], axis=1).tobytes() == whole.tobytes()
    want = reference.scan(log_a, log_b, axis=1)
    compensated = logscan.scan(log_a, log_b, axis=1, method="chunked", backend="numba")
    err = lambda got: (np.abs(got - want) / (1 + np.abs(want))).max()  # noqa: E731
    assert err(compensated) < 1e-6 and err(compensated) < err(whole)


def test_auto_method_and_workspace():
    assert numba_cpu.choose_method("log_scan", np.float32, 8, 2048, 512) == "chunked"
    for method in METHODS:
        for op in ("log_scan", "log_scan_backward"):
            assert numba_cpu.workspace_size(op, np.float32, 2, 100, 3, method) >= 0
    assert numba_cpu.workspace_size("log_scan", np.float32, 2, 100, 3, "sequential") == 0


def test_import_logscan_does_not_import_numba():
    code = "import sys, logscan; assert 'numba' not in sys.modules, 'numba imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- the split log-space forward
def test_split_rule_takes_long_sequences_of_few_lanes():
    if numba_cpu._threads() < 2:
        pytest.skip("the split forward needs two threads")
    assert numba_cpu._split(1, 65536, 64)[0] > 1
    assert numba_cpu._split(1, 8192, 16)[0] > 1
    assert numba_cpu._split(1, 4096, 64) == (1, 1)       # too short to pay
    assert numba_cpu._split(1, 65536, 256) == (1, 1)     # wide rows: not latency-bound
    assert numba_cpu._split(8, 2048, 512) == (1, 1)      # every thread has a group already


SPLITS = ((2, 2), (3, 2), (4, 3), (5, 1))


@pytest.mark.parametrize("split", SPLITS, ids=lambda s: f"chunks{s[0]}-pieces{s[1]}")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reverse", (False, True))
@pytest.mark.parametrize("with_h0", (False, True))
@pytest.mark.parametrize("first_weight", (None, 2.5), ids=("first-default", "first-2.5"))
def test_split_forward_matches_reference(monkeypatch, split, dtype, reverse, with_h0, first_weight):
    """forward_split (forced, uneven chunk and piece lengths) against the float64 reference, resets included."""
    monkeypatch.setattr(numba_cpu, "_split", lambda outer, T, inner: split)
    if first_weight is not None:
        monkeypatch.setattr(numba_cpu, "SPLIT_FIRST_WEIGHT", first_weight)
    rng = np.random.default_rng(11)
    shape = (1, 1001, 24)
    log_a = np.log(rng.uniform(0.5, 1.0, shape))
    log_a[rng.uniform(size=shape) < 0.01] = -np.inf
    log_b = rng.normal(size=shape)
    log_b[rng.uniform(size=shape) < 0.2] = -np.inf
    log_b[:, :40, :3] = -np.inf                     # an empty prefix in three channels
    log_a[:, 500, 5] = 0.0                          # a no-decay step across a chunk boundary
    log_h0 = rng.normal(size=(1, 24)) if with_h0 else None
    want = reference.scan(log_a, log_b, axis=1, log_h0=log_h0, reverse=reverse)
    got = logscan.scan(log_a.astype(dtype), log_b.astype(dtype), axis=1, reverse=reverse, backend="numba",
                       method="chunked", log_h0=None if log_h0 is None else log_h0.astype(dtype))
    assert not np.isnan(got).any()
    assert (np.isneginf(got) == np.isneginf(want)).all()
    finite = np.isfinite(want)
    assert (np.abs(got[finite] - want[finite]) / (1 + np.abs(want[finite]))).max() <= tolerance(dtype, shape[1])


def test_split_forward_in_place_and_nan(monkeypatch):
    """out= aliasing log_b, and a NaN poisons its channel from its position on only."""
    monkeypatch.setattr(numba_cpu, "_split", lambda outer, T, inner: (3, 2))
    rng = np.random.default_rng(12)
    log_a = np.log(rng.uniform(0.5, 1.0, (1, 900, 16))).astype(np.float32)
    log_b = rng.normal(size=(1, 900, 16)).astype(np.float32)
    log_b[0, 450, 7] = np.nan
    want = logscan.scan(log_a, log_b, axis=1, backend="numba", method="sequential")
    got = logscan.scan(log_a, log_b, axis=1, backend="numba", method="chunked", out=log_b)
    assert got is log_b
    assert np.isnan(got[0, 450:, 7]).all() and not np.isnan(got[0, :450, 7]).any()
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=2e-6, atol=2e-6)
    assert not np.isnan(np.delete(got, 7, axis=2)).any()


def test_split_forward_float32_no_decay_at_65536():
    """The split path keeps the compensated accuracy of chunked at T = 65536 (log_a = 0: logcumsumexp)."""
    if numba_cpu._split(1, 65536, 64)[0] < 2:
        pytest.skip("the split forward needs two threads")
    rng = np.random.default_rng(13)
    log_b = rng.normal(size=(1, 65536, 64))
    log_a = np.zeros_like(log_b)
    want = reference.scan(log_a, log_b, axis=1)
    got = logscan.scan(log_a.astype(np.float32), log_b.astype(np.float32), axis=1, backend="numba")
    assert (np.abs(got - want) / (1 + np.abs(want))).max() < 1e-6


@pytest.mark.parametrize("dtype", DTYPES)
def test_carry_fold_stops_once_the_carry_has_faded(dtype):
    """The fold of forward_split stops early on decays, only once the carry is below exp(negligible)."""
    from logscan.backends.numba_cpu import _steps

    rng = np.random.default_rng(21)
    n, steps = 8, 4096
    zero, neg_inf = dtype(0), dtype(-np.inf)
    negligible = numba_cpu._negligible(np.dtype(dtype))
    log_b = rng.normal(size=(steps, n)).astype(dtype)
    carry = np.full(n, 12.0, dtype)  # a large state entering: it dominates the first rows
    for decay, stops_early in ((np.log(0.9), True), (0.0, False)):
        log_a = np.full((steps, n), decay, dtype)
        scanned = reference.scan(log_a, log_b, axis=0).astype(dtype)  # the run from the empty state
        want = reference.scan(log_a, log_b, axis=0, log_h0=carry.astype(np.float64))
        out = scanned.ravel().copy()
        folded = _steps.add_carry_steps(log_a.ravel(), 0, n, out, 0, n, carry, np.zeros(n, dtype), np.zeros(n, dtype),
                                        n, steps, zero, neg_inf, negligible)
        assert (folded < steps) == stops_early, folded
        got = out.reshape(steps, n)
        assert (np.abs(got - want) / (1 + np.abs(want))).max() < tolerance(dtype, steps)
        if stops_early:  # where it stopped, the carry was negligible: the rows left as scanned are exact
            exact = reference.scan(log_a[folded:], log_b[folded:], axis=0, log_h0=want[folded - 1])
            assert np.array_equal(got[folded:], scanned[folded:])
            assert (np.abs(got[folded:] - exact) / (1 + np.abs(exact))).max() < tolerance(dtype, steps)


def test_inputs_broadcast_along_inner_are_given_contiguous_lanes():
    """A stride-0 inner axis is written out once per distinct value, so the kernels read lanes in place."""
    from logscan.backends import numba_cpu

    inner = 32
    one = np.broadcast_to(np.float32(-0.5), (4, 7, inner))  # logcumsumexp's zero decay, say
    got = numba_cpu._lanes_in_place(one)
    assert got.strides == (0, 0, 4) and np.shares_memory(got[0, 0], got[3, 6]) and (got == one).all()
    per_step = np.broadcast_to(np.arange(28, dtype=np.float64).reshape(4, 7, 1), (4, 7, inner))
    got = numba_cpu._lanes_in_place(per_step)
    assert got.strides[2] == 8 and got.strides[0] != 0 and (got == per_step).all()
    full = np.zeros((4, 7, inner), np.float32)
    assert numba_cpu._lanes_in_place(full) is full
    narrow = np.broadcast_to(np.float32(1), (4, 7, 3))  # too few lanes for rows: gathered tiles anyway
    assert numba_cpu._lanes_in_place(narrow) is narrow


def test_backward_of_a_broadcast_gradient_equals_the_written_out_one():
    """A broadcast grad_log_h (the gradient of a sum) is read in place, and gives the same bits as written out."""
    rng = np.random.default_rng(23)
    shape = (3, 50, 40)
    log_a = np.log(rng.uniform(0.5, 1.0, shape)).astype(np.float32)
    log_b = rng.normal(size=shape).astype(np.float32)
    log_h = logscan.scan(log_a, log_b, axis=1, backend="numba")
    per_step = rng.normal(size=(3, 50, 1)).astype(np.float32)
    for grad in (np.broadcast_to(np.float32(1), shape), np.broadcast_to(per_step, shape)):
        assert grad.strides[2] == 0
        got = logscan.scan_backward(grad, log_a, log_b, log_h, axis=1, backend="numba")
        want = logscan.scan_backward(np.ascontiguousarray(grad), log_a, log_b, log_h, axis=1, backend="numba")
        for g, w in zip(got[:2], want[:2], strict=True):
            assert g.tobytes() == w.tobytes()


def test_split_chunks_cover_time_once_the_first_longer():
    from logscan.backends.numba_cpu._chunked import _split_starts

    for T, n_chunks, weight in ((65536, 2, 1.2), (8192, 2, 1.0), (100003, 5, 1.2), (12288, 3, 1.5)):
        starts = _split_starts(T, n_chunks, weight)
        lengths = np.diff(starts)
        assert starts[0] == 0 and starts[-1] == T and (lengths > 0).all()
        assert abs(lengths[0] / lengths[1:].mean() - weight) < 1e-3
        assert lengths[1:].max() - lengths[1:].min() <= 1


def test_work_units_are_each_claimed_once():
    """Units handed out one at a time (``_work``): every unit is done exactly once, by the parallel kernel and its
    serial twin, whatever the number of threads."""
    import numba

    from logscan.backends.numba_cpu._threading import parallel_kernel
    from logscan.backends.numba_cpu._work import new_counter, units

    @parallel_kernel()
    def visit(n_units, visits):
        claimed = new_counter()
        for _ in numba.prange(n_units):
            for unit in units(claimed, n_units):
                visits[unit] += 1

    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        before = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            for n_units in (0, 1, 7, 1000):
                visits = np.zeros(n_units, np.int64)
                visit(n_units, visits)
                assert (visits == 1).all()
        finally:
            numba.set_num_threads(before)


def test_a_second_process_loads_the_kernels_from_the_disk_cache():
    """The kernels are cached on disk (cache=True): a second process compiles nothing for the same calls.

    A small call runs the serial twin of the parallel kernel, a large one the parallel kernel itself.
    """
    code = ("import numpy as np, logscan; from logscan.backends.numba_cpu import _chunked; "
            "small, large = np.zeros((1, 64, 3), np.float32), np.zeros((4, 8192, 64), np.float32); "
            "o = dict(axis=1, backend='numba', method='chunked'); "
            "[logscan.scan_backward(x, x, x, logscan.scan(x, x, **o), **o) for x in (small, large)]; "
            "s = [k.stats for k in (_chunked.forward.serial, _chunked.forward.parallel, "
            "_chunked.backward.serial, _chunked.backward.parallel)]; "
            "print(*(len(v.cache_hits) for v in s), *(len(v.cache_misses) for v in s))")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
            for _ in range(2)]
    counts = [int(v) for v in runs[1].stdout.split()]
    assert counts == [1, 1, 1, 1, 0, 0, 0, 0], runs[1].stdout  # hits, then misses, of the four kernels


def test_cache_guard_drops_kernels_compiled_from_other_sources(tmp_path):
    """A changed helper module invalidates every cached kernel of the package (numba sees only the kernel's file)."""
    from logscan.backends.numba_cpu import _cache_guard

    (tmp_path / "_kernels.py").write_text("x = 1\n")
    (tmp_path / "_helpers.py").write_text("y = 1\n")
    cache = tmp_path / "__pycache__"
    assert _cache_guard.refresh(tmp_path)  # first call: no stamp yet
    (cache / "_kernels.f-1.py311.nbi").write_bytes(b"index")
    (cache / "_kernels.f-1.py311.1.nbc").write_bytes(b"code")
    (cache / "_kernels.cpython-311.pyc").write_bytes(b"bytecode")
    assert not _cache_guard.refresh(tmp_path)  # unchanged sources: the cache stays
    assert len(list(cache.glob("*.nb?"))) == 2
    (tmp_path / "_helpers.py").write_text("y = 2\n")  # a helper changed, the kernel's file did not
    assert _cache_guard.refresh(tmp_path)
    assert not list(cache.glob("*.nb?")) and (cache / "_kernels.cpython-311.pyc").exists()
    assert not _cache_guard.refresh(tmp_path)


# ----------------------------------------------------------------------------- register transposes (axis=-1 tiles)
@pytest.mark.parametrize("dtype", DTYPES)
def test_block_transposes_move_every_element_once(dtype):
    from numba import njit  # noqa: PLC0415

    from logscan.backends.numba_cpu._transpose import VECTOR_BYTES, transpose_in, transpose_out  # noqa: PLC0415

    @njit
    def there_and_back(memory, offsets, lane0, t, tile, start, width, back):
        transpose_in(memory, offsets, lane0, t, tile, start, width)
        transpose_out(tile, start, width, back, offsets, lane0, t)

    size = VECTOR_BYTES // np.dtype(dtype).itemsize
    T, channels, width = 70, 2 * size + 3, 2 * size
    memory = np.arange(channels * T, dtype=dtype) + 1
    offsets = np.random.default_rng(9).permutation(channels).astype(np.int64) * T  # lanes in any order
    tile = np.zeros(width * size + 5, dtype)
    back = np.zeros_like(memory)
    there_and_back(memory, offsets, 3, 11, tile, 5, width, back)
    for i in range(size):
        for j in range(size):
            assert tile[5 + j * width + i] == memory[offsets[3 + i] + 11 + j]
    touched = back != 0
    assert touched.sum() == size * size and (back[touched] == memory[touched]).all()
