"""-inf is an exact value, NaN stays where it is: the special values of the contract, forward and backward."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import logscan
from logscan import reference
from tests.helpers import FLOATS, assert_close, assert_same_bits, log_inputs

DIRECTIONS = [pytest.param(False, id="forward"), pytest.param(True, id="reverse")]
DTYPES = [pytest.param(d, id=np.dtype(d).name) for d in FLOATS]


def _time_order(x, reverse):
    """View x (time last) in the order the scan visits it."""
    return x[..., ::-1] if reverse else x


pytestmark_inf = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


# ------------------------------------------------------------ -inf, forward
@pytest.mark.parametrize("reverse", DIRECTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_log_a_minus_inf_resets_exactly(backend, method, dtype, reverse, rng):
    """Where log_a = -inf the state restarts: log_h_t is log_b_t, bit for bit, and segments scan independently."""
    T = 70
    log_a, log_b = log_inputs(rng, (3, T), dtype)
    log_h0 = rng.normal(size=3).astype(dtype)
    resets = [0, 1, 17, 18, 40, 69]
    for t in resets:
        _time_order(log_a, reverse)[:, t] = -np.inf
    got = logscan.scan(log_a, log_b, log_h0=log_h0, reverse=reverse, method=method, backend=backend)
    assert_same_bits(_time_order(got, reverse)[:, resets], _time_order(log_b, reverse)[:, resets],
                     what="log_h at the resets")
    assert_close(got, reference.scan(log_a, log_b, log_h0=log_h0, reverse=reverse), dtype, T)
    # each segment is a scan of its own, as if started with no state
    bounds = [*resets[1:], T]
    ordered_a, ordered_b, ordered_h = (_time_order(x, reverse) for x in (log_a, log_b, got))
    for start, stop in zip(resets, bounds, strict=True):
        alone = logscan.scan(ordered_a[:, start:stop], ordered_b[:, start:stop], method=method, backend=backend)
        assert_close(ordered_h[:, start:stop], alone, dtype, T, what=f"segment [{start}, {stop})")


@pytest.mark.parametrize("reverse", DIRECTIONS)
def test_all_minus_inf_decay_gives_log_b(backend, method, reverse, rng):
    log_b = rng.normal(size=(2, 33, 3))
    log_a = np.full_like(log_b, -np.inf)
    got = logscan.scan(log_a, log_b, axis=1, log_h0=np.zeros((2, 3)), reverse=reverse, method=method, backend=backend)
    assert_same_bits(got, log_b)


@pytest.mark.parametrize("reverse", DIRECTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_log_b_minus_inf_adds_nothing(backend, method, dtype, reverse, rng):
    """With log_b = -inf everywhere only the state decays: log_h_t = log_h0 + sum of log_a so far."""
    T = 65
    log_a = np.log(rng.uniform(0.5, 1.0, (4, T))).astype(dtype)
    log_b = np.full((4, T), -np.inf, dtype)
    log_h0 = rng.normal(size=4).astype(dtype)
    got = logscan.scan(log_a, log_b, log_h0=log_h0, reverse=reverse, method=method, backend=backend)
    ordered = _time_order(log_a.astype(np.float64), reverse)
    expected = _time_order(log_h0[:, None].astype(np.float64) + np.cumsum(ordered, axis=1), reverse)
    assert_close(got, expected, dtype, T)
    # and without a state nothing ever arrives: -inf everywhere, exactly, never NaN
    empty = logscan.scan(log_a, log_b, reverse=reverse, method=method, backend=backend)
    assert np.isneginf(empty).all(), f"expected all -inf, got {empty[~np.isneginf(empty)][:5]}"


@pytest.mark.parametrize("reverse", DIRECTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("prefix", [1, 5, 32, 64])
def test_minus_inf_prefix_gives_minus_inf_never_nan(backend, method, prefix, dtype, reverse, rng):
    T = 64 + 3
    log_a, log_b = log_inputs(rng, (3, T), dtype)
    ordered_b = _time_order(log_b, reverse)
    ordered_b[:, :prefix] = -np.inf
    ordered_a = _time_order(log_a, reverse)
    ordered_a[0, :prefix] = -np.inf  # channel 0: both -inf in the prefix
    got = logscan.scan(log_a, log_b, reverse=reverse, method=method, backend=backend)
    assert not np.isnan(got).any()
    assert np.isneginf(_time_order(got, reverse)[:, :prefix]).all()
    assert np.isfinite(_time_order(got, reverse)[:, prefix:]).all()
    assert_close(got, reference.scan(log_a, log_b, reverse=reverse), dtype, T)


@pytest.mark.parametrize("reverse", DIRECTIONS)
def test_minus_inf_everywhere(backend, method, reverse):
    x = np.full((2, 40), -np.inf, np.float32)
    for log_h0 in (None, np.full(2, -np.inf, np.float32)):
        got = logscan.scan(x, x, log_h0=log_h0, reverse=reverse, method=method, backend=backend)
        assert np.isneginf(got).all()
        grads = logscan.scan_backward(np.ones_like(x), x, x, got, log_h0=log_h0, reverse=reverse, method=method,
                                      backend=backend)
        for g in grads:
            if g is not None:
                assert_same_bits(g, np.zeros_like(g), what="gradient through an all -inf scan")
    np.testing.assert_array_equal(logscan.logcumsumexp(x, method=method, backend=backend), x)


@pytest.mark.parametrize("reverse", DIRECTIONS)
def test_linear_zero_decay_resets_exactly(backend, method, reverse, rng):
    a = rng.uniform(-1.0, 1.0, (3, 50))
    b = rng.normal(size=(3, 50))
    resets = [0, 9, 10, 33, 49]
    for t in resets:
        _time_order(a, reverse)[:, t] = 0.0
    got = logscan.linear_scan(a, b, h0=rng.normal(size=3), reverse=reverse, method=method, backend=backend)
    assert_same_bits(_time_order(got, reverse)[:, resets], _time_order(b, reverse)[:, resets])


@pytestmark_inf
@pytest.mark.parametrize("reverse", DIRECTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_plus_inf_stays_until_a_reset_makes_it_nan(backend, method, dtype, reverse, rng):
    """+inf in log_b or log_h0 holds the state at +inf (inf + finite decay), and a reset after it is nan.

    As the reference: logaddexp(log_a + inf, log_b) = inf, and -inf + inf = nan at a reset. (The
    compensated kernels carry a nan rounding term next to an infinite state; it must never leak out
    as a finite value or as nan before the reset.)
    """
    T = 70
    log_a, log_b = log_inputs(rng, (4, T), dtype)
    ordered_a, ordered_b = _time_order(log_a, reverse), _time_order(log_b, reverse)
    ordered_b[0, 10] = np.inf                      # channel 0: +inf arrives at step 10, never reset
    ordered_b[1, 33] = np.inf
    ordered_a[1, 50] = -np.inf                     # channel 1: +inf at 33, reset at 50 -> nan from 50 on
    log_h0 = np.array([0.0, 0.0, np.inf, -np.inf], dtype)  # channel 2: starts at +inf
    ordered_b[3, 20:] = np.inf                     # channel 3: +inf inputs from step 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # -inf + inf in the reference
        want = reference.scan(log_a, log_b, log_h0=log_h0, reverse=reverse)
    got = logscan.scan(log_a, log_b, log_h0=log_h0, reverse=reverse, method=method, backend=backend)
    ordered = _time_order(got, reverse)
    assert np.isposinf(ordered[0, 10:]).all() and np.isfinite(ordered[0, :10]).all()
    assert np.isposinf(ordered[1, 33:50]).all() and np.isnan(ordered[1, 50:]).all()
    assert np.isposinf(ordered[2]).all()
    assert np.isposinf(ordered[3, 20:]).all() and np.isfinite(ordered[3, :20]).all()
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert_close(np.where(finite, got, 0), np.where(finite, want, 0), dtype, T)


# ------------------------------------------------------------ -inf, backward
@pytest.mark.parametrize("with_h0", [False, True], ids=["no_h0", "h0"])
@pytest.mark.parametrize("reverse", DIRECTIONS)
@pytest.mark.parametrize("dtype", [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")])
def test_backward_through_minus_inf_is_finite(backend, method, dtype, reverse, with_h0, rng):
    """Resets, -inf inputs and a -inf prefix give finite gradients, 0 where nothing flowed, as the reference."""
    T = 45
    log_a, log_b = log_inputs(rng, (3, T), dtype, neg_inf=0.15)
    _time_order(log_b, reverse)[:, :7] = -np.inf
    _time_order(log_a, reverse)[1, :7] = -np.inf
    log_h0 = rng.normal(size=3).astype(dtype) if with_h0 else None
    g = rng.normal(size=(3, T)).astype(dtype)
    log_h = reference.scan(log_a, log_b, log_h0=log_h0, reverse=reverse).astype(dtype)
    got = logscan.scan_backward(g, log_a, log_b, log_h, log_h0=log_h0, reverse=reverse, method=method,
                                backend=backend)
    ref = reference.scan_backward(g, log_a, log_b, log_h, log_h0=log_h0, reverse=reverse)
    scale = reference.scan_backward(np.abs(g), log_a, log_b, log_h, log_h0=log_h0, reverse=reverse)
    for name, x, r, s in zip(["grad_log_a", "grad_log_b", "grad_log_h0"], got, ref, scale, strict=True):
        if r is None:
            assert x is None, f"{name} must be None without log_h0"
            continue
        assert np.isfinite(x).all(), f"{name} has non-finite entries"
        assert_close(x, r, dtype, T, scale=s, what=name)
    dead = np.isneginf(log_h)
    if not with_h0:
        assert dead[:, 0 if not reverse else -1].all()
    assert (got[0][dead] == 0).all() and (got[1][dead] == 0).all(), "gradient flowed into a position with h = 0"
    assert (got[0][np.isneginf(log_a)] == 0).all(), "a reset position got a gradient for log_a"
    assert (got[1][np.isneginf(log_b)] == 0).all(), "a -inf log_b got a gradient"


# ------------------------------------------------------------ NaN
# NumPy's logaddexp warns "invalid value" on NaN inputs; the contract only asks for NaN out, no crash.
pytestmark_nan = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


@pytestmark_nan
@pytest.mark.parametrize("reverse", DIRECTIONS)
@pytest.mark.parametrize("where", ["log_a", "log_b", "both"])
@pytest.mark.parametrize("position", [0, 1, 16, 32, 49])
def test_nan_propagates_from_its_position_only(backend, method, where, position, reverse, rng):
    T = 50
    log_a, log_b = log_inputs(rng, (3, T), np.float32)
    _time_order(log_a, reverse)[1, position + 1:: 7] = -np.inf  # resets after the NaN do not clear it
    # position 0 with NaN in log_a and no state: NaN * 0 is NaN, as in the sequential loop
    for name in ("log_a", "log_b"):
        if where in (name, "both"):
            _time_order({"log_a": log_a, "log_b": log_b}[name], reverse)[1, position] = np.nan
    got = logscan.scan(log_a, log_b, reverse=reverse, method=method, backend=backend)
    ordered = _time_order(got, reverse)
    assert np.isnan(ordered[1, position:]).all(), "NaN must reach every later step"
    assert not np.isnan(ordered[1, :position]).any(), "NaN leaked to earlier steps"
    assert not np.isnan(got[[0, 2]]).any(), "NaN leaked to other channels"
    assert_close(got, reference.scan(log_a, log_b, reverse=reverse), np.float32, T)


@pytestmark_nan
@pytest.mark.parametrize("reverse", DIRECTIONS)
def test_nan_in_linear_scan_and_in_the_state(backend, method, reverse, rng):
    a, b = rng.uniform(-1, 1, (3, 40)), rng.normal(size=(3, 40))
    _time_order(b, reverse)[0, 20] = np.nan
    _time_order(a, reverse)[0, 25] = 0.0  # a zero decay does not clear it either
    got = _time_order(logscan.linear_scan(a, b, reverse=reverse, method=method, backend=backend), reverse)
    assert np.isnan(got[0, 20:]).all() and not np.isnan(got[0, :20]).any() and not np.isnan(got[1:]).any()
    log_a, log_b = log_inputs(rng, (3, 40), np.float64)
    log_h = logscan.scan(log_a, log_b, log_h0=np.array([np.nan, 0.0, 1.0]), reverse=reverse, method=method,
                         backend=backend)
    assert np.isnan(log_h[0]).all() and not np.isnan(log_h[1:]).any()


@pytestmark_nan
@pytest.mark.parametrize("reverse", DIRECTIONS)
def test_backward_with_nan_does_not_crash(backend, method, reverse, rng):
    log_a, log_b = log_inputs(rng, (3, 40), np.float32)
    log_b[0, 13] = np.nan
    log_h0 = np.zeros(3, np.float32)
    log_h = logscan.scan(log_a, log_b, log_h0=log_h0, reverse=reverse, method=method, backend=backend)
    g = rng.normal(size=log_h.shape).astype(np.float32)
    grads = logscan.scan_backward(g, log_a, log_b, log_h, log_h0=log_h0, reverse=reverse, method=method,
                                  backend=backend)
    for grad in grads:
        assert not np.isnan(grad[1:]).any(), "NaN leaked to channels without one"
    h = logscan.linear_scan(np.exp(log_a), log_b, reverse=reverse, method=method, backend=backend)
    grads = logscan.linear_scan_backward(g, np.exp(log_a), log_b, h, reverse=reverse, method=method, backend=backend)
    assert not np.isnan(grads[0][1:]).any() and not np.isnan(grads[1][1:]).any()


# ------------------------------------------------------------ no warnings for legal values
@pytest.mark.parametrize("reverse", DIRECTIONS)
def test_minus_inf_raises_no_floating_point_warning(backend, method, reverse, rng):
    """-inf is a legal value: no RuntimeWarning (invalid, overflow, divide) on the way."""
    log_a, log_b = log_inputs(rng, (3, 100), np.float32, neg_inf=0.2)
    log_b[:, :30] = -np.inf
    log_h0 = np.array([-np.inf, 0.0, 1.0], np.float32)
    g = rng.normal(size=log_b.shape).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for h0 in (None, log_h0):
            log_h = logscan.scan(log_a, log_b, log_h0=h0, reverse=reverse, method=method, backend=backend)
            logscan.scan_backward(g, log_a, log_b, log_h, log_h0=h0, reverse=reverse, method=method, backend=backend)
        logscan.logcumsumexp(log_b, reverse=reverse, method=method, backend=backend)
        a = np.exp(log_a)
        h = logscan.linear_scan(a, g, reverse=reverse, method=method, backend=backend)
        logscan.linear_scan_backward(g, a, g, h, reverse=reverse, method=method, backend=backend)
