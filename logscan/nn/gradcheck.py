"""Central finite differences, to check hand-written gradients (float64, tiny shapes).

Examples
--------
>>> import numpy as np
>>> x = np.array([1.0, 2.0])
>>> numerical_gradient(lambda: float((x ** 2).sum()), x).round(6).tolist()
[2.0, 4.0]
"""

from __future__ import annotations

import numpy as np


def numerical_gradient(loss, array, eps=1e-6):
    """``d loss() / d array`` by central differences, perturbing ``array`` in place (restored after).

    Parameters
    ----------
    loss : callable
        No arguments, returns a float; must read ``array`` when called.
    array : numpy.ndarray of float64
        Perturbed one element at a time.
    eps : float
    """
    grad = np.zeros(array.shape)
    flat, grad_flat = array.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat, array):
        raise ValueError("numerical_gradient: array must be contiguous (it is perturbed in place)")
    for k in range(flat.size):
        saved = flat[k]
        flat[k] = saved + eps
        up = loss()
        flat[k] = saved - eps
        down = loss()
        flat[k] = saved
        grad_flat[k] = (up - down) / (2 * eps)
    return grad


def relative_error(actual, expected):
    """``max |actual - expected| / max(1, max |expected|)``: a scale-aware single number."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.abs(actual - expected), initial=0.0) / max(1.0, np.max(np.abs(expected), initial=0.0)))
