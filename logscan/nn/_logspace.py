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

_LOG_2 = 0.6931471805599453


def _log1p_small(e):
    """``log(1 + e)`` in place for ``e`` in ``[0, 1]``.

    ``log`` of ``1 + e`` rather than ``log1p``: NumPy's ``log1p`` is not
    vectorized and costs ~15x more, and every caller uses the result in log
    space, where the absolute error of at most one ulp of 1 is harmless.
    """
    e += 1
    xp = array_module(e)
    xp.log(e, out=e)
    return e


def softplus(x, negate=False):
    """``log(1 + exp(x))`` (``log(1 + exp(-x))`` when ``negate``) without overflow.

    ``max(±x, 0) + log(1 + exp(-|x|))``; one fresh array, no temporaries of
    the negated input.
    """
    xp = array_module(x)
    result = xp.abs(x)
    xp.negative(result, out=result)
    xp.exp(result, out=result)
    _log1p_small(result)
    result += xp.maximum(x, 0) if not negate else -xp.minimum(x, 0)
    return result


def sigmoid(x, negate=False, scratch=None):
    """``1 / (1 + exp(-x))`` (of ``-x`` when ``negate``) to a few ulp, without overflow.

    ``(e if x < 0 else 1) / (1 + e)`` with ``e = exp(-|x|)`` in ``[0, 1]``
    (``x > 0`` selects ``e`` when ``negate``): no cancellation, so the result
    keeps its relative accuracy where it is tiny. (``exp(-softplus(-x))``
    carried the rounding of ``softplus``, about ``|x|`` ulp: 1e-6 relative
    near ``x = 16`` in float32.) ``scratch``, an array of ``x``'s shape and
    dtype other than ``x``, is overwritten instead of allocating one; the
    result is a fresh array.
    """
    xp = array_module(x)
    e = xp.abs(x, out=scratch)
    xp.negative(e, out=e)
    xp.exp(e, out=e)
    result = xp.where(x > 0 if negate else x < 0, e, e.dtype.type(1))
    e += 1
    result /= e
    return result


def g(x):
    """The positive candidate map ``x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` otherwise (step mode)."""
    xp = array_module(x)
    return xp.where(x >= 0, xp.maximum(x, 0) + 0.5, sigmoid(xp.minimum(x, 0)))


def log_g(x):
    """``log g(x)``: ``log(x + 0.5)`` for ``x >= 0``, ``-softplus(-x) = x - log(1 + exp(x))`` otherwise.

    Computed without a select: with ``p = max(x, 0)``, ``n = min(x, 0)``,
    ``log g(x) = log(p + 0.5) + n - log(1 + exp(n)) + log 2`` (for ``x >= 0``
    the last three terms cancel, for ``x < 0`` the first and last do).
    """
    xp = array_module(x)
    negative = xp.minimum(x, 0)
    below = xp.exp(negative)
    _log1p_small(below)
    xp.subtract(negative, below, out=below)
    above = xp.maximum(x, 0)
    above += 0.5
    xp.log(above, out=above)
    above += below
    above += _LOG_2
    return above


def log_g_derivative(x):
    """``d log g / dx``: ``1 / (x + 0.5)`` for ``x >= 0``, ``sigmoid(-x) = 1 / (1 + exp(x))`` otherwise."""
    xp = array_module(x)
    above = xp.maximum(x, 0)
    above += 0.5
    xp.reciprocal(above, out=above)
    below = xp.minimum(x, 0)
    xp.exp(below, out=below)
    below += 1
    xp.reciprocal(below, out=below)
    # blend with a 0/1 mask: far cheaper than a select on NumPy
    above -= below
    above *= (x >= 0).astype(x.dtype)
    above += below
    return above
