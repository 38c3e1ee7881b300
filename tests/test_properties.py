"""Property tests: random shapes, axes, layouts, values (with -inf) and options, against the reference.

The number of examples comes from the hypothesis profile (``tests/conftest.py``):
``--hypothesis-profile=thorough`` runs many more than the default.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import logscan
from logscan import reference
from tests.helpers import assert_close

NEG_INF = float("-inf")
LAYOUTS = ("C", "F", "reversed", "strided", "transposed-copy", "broadcast")


def _values(dtype, low, high):
    finite = st.floats(low, high, width=np.dtype(dtype).itemsize * 8, allow_nan=False, allow_infinity=False)
    return st.one_of(finite, finite, finite, finite, finite, finite, st.just(NEG_INF))


def _lay_out(x, layout, axis):
    """The same values as ``x`` in another memory layout (a view wherever possible)."""
    if layout == "F":
        return np.asfortranarray(x)
    if layout == "reversed":
        return np.flip(np.flip(x).copy())
    if layout == "strided":
        double = np.repeat(x, 2, axis=axis)
        return double[(slice(None),) * (axis % x.ndim) + (slice(None, None, 2),)]
    if layout == "transposed-copy":
        return x.T.copy().T
    if layout == "broadcast" and x.ndim > 1 and x.size:
        other = 0 if axis % x.ndim != 0 else x.ndim - 1
        return np.broadcast_to(np.take(x, [0], axis=other), x.shape)
    return x


@st.composite
def scan_cases(draw, space="log"):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    ndim = draw(st.integers(1, 3))
    axis = draw(st.integers(-ndim, ndim - 1))
    shape = list(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    shape[axis] = draw(st.integers(0, 40))
    shape = tuple(shape)
    if space == "log":
        first = draw(hnp.arrays(dtype, shape, elements=_values(dtype, -4.0, 1.0)))
        second = draw(hnp.arrays(dtype, shape, elements=_values(dtype, -8.0, 8.0)))
    else:
        finite = st.floats(-1.0, 1.0, width=np.dtype(dtype).itemsize * 8)
        first = draw(hnp.arrays(dtype, shape, elements=finite))
        second = draw(hnp.arrays(dtype, shape, elements=st.floats(-4.0, 4.0, width=np.dtype(dtype).itemsize * 8)))
    first = _lay_out(first, draw(st.sampled_from(LAYOUTS)), axis)
    second = _lay_out(second, draw(st.sampled_from(LAYOUTS)), axis)
    state = None
    if draw(st.booleans()):
        state_shape = shape[: axis % ndim] + shape[axis % ndim + 1:]
        # the state's own shape may broadcast: drop leading dims or set some to 1
        drop = draw(st.integers(0, len(state_shape)))
        state_shape = tuple(1 if draw(st.booleans()) else n for n in state_shape[drop:])
        low, high = (-8.0, 8.0) if space == "log" else (-4.0, 4.0)
        state = draw(hnp.arrays(dtype, state_shape, elements=st.floats(low, high, width=np.dtype(dtype).itemsize * 8)))
    return dict(first=first, second=second, state=state, axis=axis, reverse=draw(st.booleans()), dtype=dtype)


def _full_state(case):
    if case["state"] is None:
        return None
    axis = case["axis"] % case["first"].ndim
    shape = case["first"].shape
    return np.broadcast_to(case["state"], shape[:axis] + shape[axis + 1:])


def _T(case):
    return case["first"].shape[case["axis"]]


@given(case=scan_cases())
def test_scan_matches_reference(backend, method, case):
    got = logscan.scan(case["first"], case["second"], axis=case["axis"], log_h0=case["state"],
                       reverse=case["reverse"], method=method, backend=backend)
    ref = reference.scan(case["first"], case["second"], axis=case["axis"], log_h0=_full_state(case),
                         reverse=case["reverse"])
    assert got.dtype == case["dtype"]
    assert not np.isnan(got).any()
    assert_close(got, ref, case["dtype"], _T(case))


@given(case=scan_cases(space="linear"))
def test_linear_scan_matches_reference(backend, method, case):
    kwargs = dict(axis=case["axis"], reverse=case["reverse"])
    got = logscan.linear_scan(case["first"], case["second"], h0=case["state"], method=method, backend=backend,
                              **kwargs)
    full = _full_state(case)
    ref = reference.linear_scan(case["first"], case["second"], h0=full, **kwargs)
    scale = reference.linear_scan(np.abs(case["first"]), np.abs(case["second"]),
                                  h0=None if full is None else np.abs(full), **kwargs)
    assert_close(got, ref, case["dtype"], _T(case), scale=scale)


@given(case=scan_cases(), data=st.data())
def test_chunking_is_exact(backend, method, case, data):
    T, axis = _T(case), case["axis"]
    assume(T >= 2)
    split = data.draw(st.integers(1, T - 1))
    log_a, log_b = np.broadcast_arrays(case["first"], case["second"])
    head, tail = (slice(0, split), slice(split, T)) if not case["reverse"] else (slice(split, T), slice(0, split))

    def part(s):
        index = [slice(None)] * log_a.ndim
        index[axis] = s
        return tuple(index)

    kwargs = dict(axis=axis, reverse=case["reverse"], method=method, backend=backend)
    whole = logscan.scan(log_a, log_b, log_h0=case["state"], **kwargs)
    first = logscan.scan(log_a[part(head)], log_b[part(head)], log_h0=case["state"], **kwargs)
    carry = np.take(first, -1 if not case["reverse"] else 0, axis=axis)
    second = logscan.scan(log_a[part(tail)], log_b[part(tail)], log_h0=carry, **kwargs)
    chunked = np.concatenate([first, second] if not case["reverse"] else [second, first], axis=axis)
    assert_close(chunked, whole, case["dtype"], T)


@given(case=scan_cases())
def test_reverse_is_the_mirrored_forward_scan(backend, method, case):
    axis = case["axis"]
    kwargs = dict(axis=axis, log_h0=case["state"], method=method, backend=backend)
    backward = logscan.scan(case["first"], case["second"], reverse=True, **kwargs)
    mirrored = np.flip(logscan.scan(np.flip(case["first"], axis), np.flip(case["second"], axis), **kwargs), axis)
    assert_close(backward, mirrored, case["dtype"], _T(case))


@given(case=scan_cases())
def test_linear_scan_of_exponentials_is_exp_of_the_log_scan(backend, method, case):
    assume(case["dtype"] == np.float64)
    kwargs = dict(axis=case["axis"], reverse=case["reverse"], method=method, backend=backend)
    log_h = logscan.scan(case["first"], case["second"], log_h0=case["state"], **kwargs)
    with np.errstate(divide="ignore"):
        h = logscan.linear_scan(np.exp(case["first"]), np.exp(case["second"]),
                                h0=None if case["state"] is None else np.exp(case["state"]), **kwargs)
        assert_close(np.log(h), log_h, np.float64, _T(case), tol=1e-12)


@given(case=scan_cases(), data=st.data())
def test_scan_backward_matches_reference(backend, method, case, data):
    kwargs = dict(axis=case["axis"], reverse=case["reverse"])
    log_h = reference.scan(case["first"], case["second"], log_h0=_full_state(case), **kwargs).astype(case["dtype"])
    g = data.draw(hnp.arrays(case["dtype"], log_h.shape, elements=st.floats(-2, 2, width=32)))
    got = logscan.scan_backward(g, case["first"], case["second"], log_h, log_h0=case["state"], method=method,
                                backend=backend, **kwargs)
    ref = reference.scan_backward(g, case["first"], case["second"], log_h, log_h0=case["state"], **kwargs)
    scale = reference.scan_backward(np.abs(g), case["first"], case["second"], log_h, log_h0=case["state"], **kwargs)
    for name, x, r, s in zip(["grad_log_a", "grad_log_b", "grad_log_h0"], got, ref, scale, strict=True):
        if r is None:
            assert x is None
            continue
        assert x.shape == r.shape, f"{name}: shape {x.shape}, expected {r.shape}"
        assert np.isfinite(x).all(), f"{name} is not finite"
        assert_close(x, r, case["dtype"], _T(case), scale=s, what=name)


@given(x=hnp.arrays(st.sampled_from([np.float32, np.float64]),
                    hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=20),
                    elements=st.floats(-30, 30, width=32)),
       data=st.data())
def test_logcumsumexp_is_logaddexp_accumulate(backend, method, x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    reverse = data.draw(st.booleans())
    ordered = np.flip(x, axis) if reverse else x
    expected = np.logaddexp.accumulate(ordered.astype(np.float64), axis=axis)
    expected = np.flip(expected, axis) if reverse else expected
    got = logscan.logcumsumexp(x, axis=axis, reverse=reverse, method=method, backend=backend)
    assert_close(got, expected, x.dtype, x.shape[axis])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_keep_values(layout):
    """The helper above changes memory layout only, never values (a check of the test itself)."""
    x = np.arange(24.0).reshape(2, 3, 4)
    for axis in range(-3, 3):
        y = _lay_out(x, layout, axis)
        if layout == "broadcast":
            assert y.shape == x.shape
        else:
            np.testing.assert_array_equal(y, x)
