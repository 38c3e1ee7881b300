"""Float64 reference: plain sequential loops over time, the ground truth for every op.

Every function takes n-d arrays and ``axis`` like the public API, computes in
float64 with one step per time index (vectorized over the other axes only),
and returns float64. Nothing here is fast or clever on purpose.

Examples
--------
>>> import numpy as np
>>> from logscan import reference
>>> reference.linear_scan(np.full(3, 0.5), np.ones(3)).tolist()
[1.0, 1.5, 1.75]
"""

from __future__ import annotations

import numpy as np


def _time_first(x, axis):
    return np.moveaxis(np.asarray(x, dtype=np.float64), axis, 0)


def _steps(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


def _inputs(a, b, axis, h0, empty):
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    a, b = _time_first(a, axis), _time_first(b, axis)
    h = np.full(a.shape[1:], empty) if h0 is None else np.broadcast_to(np.asarray(h0, np.float64), a.shape[1:])
    return a, b, np.array(h)


def scan(log_a, log_b, *, axis=-1, log_h0=None, reverse=False):
    """``log_h[t] = logaddexp(log_a[t] + log_h[t-1], log_b[t])``, ``log_h[-1] = log_h0`` (or -inf)."""
    log_a, log_b, h = _inputs(log_a, log_b, axis, log_h0, -np.inf)
    out = np.empty_like(log_a)
    for t in _steps(log_a.shape[0], reverse):
        h = np.logaddexp(log_a[t] + h, log_b[t])
        out[t] = h
    return np.moveaxis(out, 0, axis)


def linear_scan(a, b, *, axis=-1, h0=None, reverse=False):
    """``h[t] = a[t] * h[t-1] + b[t]``, ``h[-1] = h0`` (or 0)."""
    a, b, h = _inputs(a, b, axis, h0, 0.0)
    out = np.empty_like(a)
    for t in _steps(a.shape[0], reverse):
        h = a[t] * h + b[t]
        out[t] = h
    return np.moveaxis(out, 0, axis)


def logcumsumexp(x, *, axis=-1, reverse=False):
    """``out[t] = log(sum_{s <= t} exp(x[s]))`` (``s >= t`` when reverse)."""
    return scan(np.zeros_like(np.asarray(x, np.float64)), x, axis=axis, reverse=reverse)


def _sum_to(grad, shape):
    """Sum a gradient over the dimensions that broadcasting added or stretched."""
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape)))) if grad.ndim > len(shape) else grad
    stretched = tuple(k for k, n in enumerate(shape) if n == 1 and grad.shape[k] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad


def scan_backward(grad_log_h, log_a, log_b, log_h, *, axis=-1, log_h0=None, reverse=False):
    """Chain rule through the sequential recurrence, step by step backwards.

    ``d log_h[t] / d log_a[t] = exp(log_a[t] + log_h[t-1] - log_h[t])``,
    ``d log_h[t] / d log_b[t] = exp(log_b[t] - log_h[t])`` and
    ``d log_h[t] / d log_h[t-1]`` equals the first; both are 0 where
    ``log_h[t] = -inf``. Returns ``(grad_log_a, grad_log_b, grad_log_h0 or None)``.
    """
    shape_a, shape_b = np.shape(log_a), np.shape(log_b)
    la, lb, h_init = _inputs(log_a, log_b, axis, log_h0, -np.inf)
    shape = np.broadcast_shapes(shape_a, shape_b)
    g = _time_first(np.broadcast_to(grad_log_h, shape), axis)
    lh = _time_first(np.broadcast_to(log_h, shape), axis)
    T = la.shape[0]
    grad_a, grad_b = np.zeros_like(la), np.zeros_like(lb)
    carry = np.zeros(la.shape[1:])  # dL/dlog_h[t] from later steps
    order = list(_steps(T, reverse))
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in range(T - 1, -1, -1):
            t = order[k]
            prev = order[k - 1] if k > 0 else None
            lh_prev = h_init if prev is None else lh[prev]
            total = g[t] + carry
            dead = np.isneginf(lh[t])
            # neighbouring states first: their difference is exact where w matters
            w = np.where(dead, 0.0, np.exp(la[t] + (lh_prev - lh[t])))
            v = np.where(dead, 0.0, np.exp(lb[t] - lh[t]))
            grad_a[t] = total * w
            grad_b[t] = total * v
            carry = total * w
    grad_h0 = carry if log_h0 is not None else None
    if grad_h0 is not None and T == 0:
        grad_h0 = np.zeros(la.shape[1:])
    if grad_h0 is not None:
        grad_h0 = _sum_to(grad_h0, np.shape(log_h0))
    return (_sum_to(np.moveaxis(grad_a, 0, axis), shape_a), _sum_to(np.moveaxis(grad_b, 0, axis), shape_b),
            grad_h0)


def linear_scan_backward(grad_h, a, b, h, *, axis=-1, h0=None, reverse=False):
    """Chain rule through ``h[t] = a[t] h[t-1] + b[t]``; returns ``(grad_a, grad_b, grad_h0 or None)``."""
    shape_a, shape_b = np.shape(a), np.shape(b)
    a_, b_, h_init = _inputs(a, b, axis, h0, 0.0)
    shape = np.broadcast_shapes(shape_a, shape_b)
    g = _time_first(np.broadcast_to(grad_h, shape), axis)
    hh = _time_first(np.broadcast_to(h, shape), axis)
    T = a_.shape[0]
    grad_a, grad_b = np.zeros_like(a_), np.zeros_like(b_)
    carry = np.zeros(a_.shape[1:])
    order = list(_steps(T, reverse))
    for k in range(T - 1, -1, -1):
        t = order[k]
        h_prev = h_init if k == 0 else hh[order[k - 1]]
        total = g[t] + carry
        grad_a[t] = total * h_prev
        grad_b[t] = total
        carry = total * a_[t]
    grad_h0 = None
    if h0 is not None:
        grad_h0 = _sum_to(carry if T else np.zeros(a_.shape[1:]), np.shape(h0))
    return (_sum_to(np.moveaxis(grad_a, 0, axis), shape_a), _sum_to(np.moveaxis(grad_b, 0, axis), shape_b),
            grad_h0)
from logscan.reference_nn import mingru, minlstm  # noqa: E402, F401  (float64 minGRU/minLSTM references)
