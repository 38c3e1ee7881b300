"""The ground truth itself: logscan.reference against plain scalar Python loops, closed forms and finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from logscan import reference


def _scalar_log_scan(log_a, log_b, log_h0=-math.inf, reverse=False):
    """One channel, one step at a time, with math only (no NumPy)."""
    order = range(len(log_a) - 1, -1, -1) if reverse else range(len(log_a))
    out, h = [0.0] * len(log_a), log_h0
    for t in order:
        x, y = log_a[t] + h, log_b[t]
        hi, lo = max(x, y), min(x, y)
        h = hi if lo == -math.inf else hi + math.log1p(math.exp(lo - hi))
        out[t] = h
    return out


def _scalar_linear_scan(a, b, h0=0.0, reverse=False):
    order = range(len(a) - 1, -1, -1) if reverse else range(len(a))
    out, h = [0.0] * len(a), h0
    for t in order:
        h = a[t] * h + b[t]
        out[t] = h
    return out


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("T", [0, 1, 2, 7, 33])
def test_scan_is_the_scalar_recurrence(T, reverse):
    rng = np.random.default_rng(T)
    log_a, log_b = np.log(rng.uniform(0.1, 1.5, T)), rng.normal(size=T)
    if T > 3:
        log_a[2], log_b[3] = -np.inf, -np.inf
    for log_h0 in (None, 0.3):
        got = reference.scan(log_a, log_b, log_h0=None if log_h0 is None else np.float64(log_h0), reverse=reverse)
        expected = _scalar_log_scan(list(log_a), list(log_b), -math.inf if log_h0 is None else log_h0, reverse)
        np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_linear_scan_is_the_scalar_recurrence(reverse):
    rng = np.random.default_rng(1)
    a, b = rng.uniform(-1.5, 1.5, 20), rng.normal(size=20)
    np.testing.assert_array_equal(reference.linear_scan(a, b, h0=np.float64(0.5), reverse=reverse),
                                  _scalar_linear_scan(list(a), list(b), 0.5, reverse))


def test_closed_forms():
    T = np.arange(1, 11)
    # h_t = 0.5 h_{t-1} + 1 from 0: 2 (1 - 0.5^t)
    np.testing.assert_allclose(reference.linear_scan(np.full(10, 0.5), np.ones(10)), 2 * (1 - 0.5**T), rtol=1e-15)
    # logcumsumexp of zeros: log(t)
    np.testing.assert_allclose(reference.logcumsumexp(np.zeros(10)), np.log(T), rtol=1e-15)
    # log_b = -inf: only the state decays
    np.testing.assert_allclose(reference.scan(np.full(10, -0.1), np.full(10, -np.inf), log_h0=np.float64(2.0)),
                               2.0 - 0.1 * T, rtol=1e-14)


def test_log_and_linear_agree_for_positive_values():
    rng = np.random.default_rng(2)
    a, b = rng.uniform(0.2, 1.2, (3, 50)), rng.uniform(0.1, 2.0, (3, 50))
    h0 = rng.uniform(0.5, 1.5, 3)
    for reverse in (False, True):
        np.testing.assert_allclose(np.exp(reference.scan(np.log(a), np.log(b), log_h0=np.log(h0), reverse=reverse)),
                                   reference.linear_scan(a, b, h0=h0, reverse=reverse), rtol=1e-13)


def test_minus_inf_never_gives_nan():
    x = np.full((2, 9), -np.inf)
    assert np.isneginf(reference.scan(x, x)).all()
    assert np.isneginf(reference.scan(x, x, log_h0=np.full(2, -np.inf))).all()
    g = np.ones_like(x)
    for grad in reference.scan_backward(g, x, x, reference.scan(x, x), log_h0=np.full(2, -np.inf)):
        assert (grad == 0).all()


def test_axis_and_broadcast():
    rng = np.random.default_rng(3)
    log_a, log_b = np.log(rng.uniform(0.5, 1.0, (4, 1, 6))), rng.normal(size=(4, 5, 6))
    for axis in (0, 2, -1):
        got = reference.scan(log_a, log_b, axis=axis)
        moved = reference.scan(np.moveaxis(np.broadcast_to(log_a, log_b.shape), axis, -1),
                               np.moveaxis(log_b, axis, -1))
        np.testing.assert_array_equal(got, np.moveaxis(moved, -1, axis))
    assert reference.scan(log_a, log_b, axis=1, log_h0=np.zeros(6)).shape == (4, 5, 6)


def test_logcumsumexp_is_logaddexp_accumulate():
    x = np.random.default_rng(4).normal(size=(3, 40)) * 5
    np.testing.assert_allclose(reference.logcumsumexp(x), np.logaddexp.accumulate(x, axis=-1), rtol=1e-14)
    np.testing.assert_allclose(reference.logcumsumexp(x, axis=0, reverse=True),
                               np.logaddexp.accumulate(x[::-1], axis=0)[::-1], rtol=1e-14)


def _fd(loss, arrays, step=1e-6):
    grads = []
    for k, x in enumerate(arrays):
        grad = np.zeros_like(x)
        for index in np.ndindex(x.shape):
            plus, minus = [y.copy() for y in arrays], [y.copy() for y in arrays]
            plus[k][index] += step
            minus[k][index] -= step
            grad[index] = (loss(*plus) - loss(*minus)) / (2 * step)
        grads.append(grad)
    return grads


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_reference_backwards_match_finite_differences(reverse):
    rng = np.random.default_rng(5)
    log_a, log_b, log_h0 = np.log(rng.uniform(0.3, 1.2, (2, 5))), rng.normal(size=(2, 5)), rng.normal(size=2)
    g = rng.normal(size=(2, 5))
    log_h = reference.scan(log_a, log_b, log_h0=log_h0, reverse=reverse)
    got = reference.scan_backward(g, log_a, log_b, log_h, log_h0=log_h0, reverse=reverse)
    fd = _fd(lambda la, lb, h0: np.sum(g * reference.scan(la, lb, log_h0=h0, reverse=reverse)),
             [log_a, log_b, log_h0])
    for x, f in zip(got, fd, strict=True):
        np.testing.assert_allclose(x, f, rtol=1e-7, atol=1e-8)
    a, b, h0 = rng.uniform(-1.2, 1.2, (2, 5)), rng.normal(size=(2, 5)), rng.normal(size=2)
    h = reference.linear_scan(a, b, h0=h0, reverse=reverse)
    got = reference.linear_scan_backward(g, a, b, h, h0=h0, reverse=reverse)
    fd = _fd(lambda a_, b_, h0_: np.sum(g * reference.linear_scan(a_, b_, h0=h0_, reverse=reverse)), [a, b, h0])
    for x, f in zip(got, fd, strict=True):
        np.testing.assert_allclose(x, f, rtol=1e-7, atol=1e-8)


def test_reference_backward_of_broadcast_inputs_and_empty_T():
    log_a, log_b = np.full((1, 4), -0.5), np.zeros((3, 4))
    log_h = reference.scan(log_a, log_b, log_h0=np.zeros(1))
    ga, gb, gh0 = reference.scan_backward(np.ones((3, 4)), log_a, log_b, log_h, log_h0=np.zeros(1))
    assert ga.shape == (1, 4) and gb.shape == (3, 4) and gh0.shape == (1,)
    empty = np.zeros((2, 0))
    grads = reference.scan_backward(empty, empty, empty, empty, log_h0=np.zeros(2))
    assert grads[0].shape == (2, 0) and (grads[2] == 0).all()
    grads = reference.linear_scan_backward(empty, empty, empty, empty, h0=np.ones(2))
    assert (grads[2] == 0).all()
