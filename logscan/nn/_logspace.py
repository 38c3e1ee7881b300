r"""Stable elementwise pieces of the log-space minRNN parametrization, and their derivatives.

The log-space recurrence needs ``h > 0``; the paper keeps it there with

.. math::

    g(x) = \begin{cases} x + \tfrac12 & x \ge 0 \\ \sigma(x) & x < 0 \end{cases},\qquad
    \log g(x) = \begin{cases} \log(x + \tfrac12) & x \ge 0 \\ -\operatorname{softplus}(-x) & x < 0 \end{cases}

Both branches are evaluated on clipped inputs so that no branch ever
overflows, whichever one ``where`` keeps. Every function works on NumPy and
CuPy arrays alike.
"""

from __future__ import annotations

from logscan.nn._xp import array_module


def softplus(x, out=None):
    """``log(1 + exp(x))`` without overflow: ``max(x, 0) + log1p(exp(-|x|))``."""
    xp = array_module(x)
    result = xp.exp(-xp.abs(x))
    xp.log1p(result, out=result)
    result += xp.maximum(x, 0)
    if out is not None:
        out[...] = result
        return out
    return result


def sigmoid(x):
    """``1 / (1 + exp(-x))`` without overflow warnings: ``exp(-softplus(-x))``."""
    xp = array_module(x)
    return xp.exp(-softplus(-x))


def g(x):
    """The positive candidate map ``x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` otherwise (step mode)."""
    xp = array_module(x)
    return xp.where(x >= 0, xp.maximum(x, 0) + 0.5, sigmoid(xp.minimum(x, 0)))


def log_g(x):
    """``log g(x)``: ``log(x + 0.5)`` for ``x >= 0``, ``-softplus(-x) = x - log1p(exp(x))`` otherwise."""
    xp = array_module(x)
    negative = xp.minimum(x, 0)
    below = negative - xp.log1p(xp.exp(negative))
    above = xp.log(xp.maximum(x, 0) + 0.5)
    return xp.where(x >= 0, above, below)


def log_g_derivative(x):
    """``d log g / dx``: ``1 / (x + 0.5)`` for ``x >= 0``, ``sigmoid(-x) = 1 / (1 + exp(x))`` otherwise."""
    xp = array_module(x)
    denominator = xp.where(x >= 0, xp.maximum(x, 0) + 0.5, 1 + xp.exp(xp.minimum(x, 0)))
    return 1 / denominator
