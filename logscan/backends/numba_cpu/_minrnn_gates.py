r"""Fused elementwise passes of the minGRU / minLSTM layers on the CPU: gates in, scan coefficients out.

:mod:`logscan.nn` builds the scan coefficients of a layer from its
pre-activations ``pre`` (one row per ``(b, t)``, the gates side by side:
``[k | h~]`` for minGRU, ``[f | i | h~]`` for minLSTM) with array
expressions that run on NumPy and CuPy alike. On NumPy that is a dozen
passes over memory with temporaries (about half of a minLSTM layer's
forward + backward at (16, 1024, 256, 256) float32, in a profile). These
kernels do the same math in one pass forward and one backward, with the
vectorized ``_vmath`` polynomials, threads over blocks of rows.

Forward, with the logit ``s`` (minGRU: ``s = k``; minLSTM:
``s = softplus(-f) - softplus(-i)``, which the backward needs and is stored):

.. math::

    \log a = -\operatorname{softplus}(s),\qquad
    \log b = \log g(\tilde h) - \operatorname{softplus}(-s),\qquad
    \log g(x) = \begin{cases}\log(x + \tfrac12) & x \ge 0\\ x - \operatorname{softplus}(x) & x < 0\end{cases}

Backward, from :math:`\bar a = \partial L/\partial \log a`, :math:`\bar b = \partial L/\partial \log b`
and :math:`\sigma(s)`, written over ``pre`` in place:

.. math::

    \bar s = \bar b - (\bar a + \bar b)\,\sigma(s),\qquad
    \bar{\tilde h} = \bar b\,(\log g)'(\tilde h),\qquad
    \bar f = -\bar s\,\sigma(-f),\quad \bar i = \bar s\,\sigma(-i)\ \text{(minLSTM)}.

Every branch is computed on clipped inputs and then selected, so nothing
overflows and the loops vectorize; NaN propagates. Arrays are 2-d,
C-contiguous, all of one dtype (float32 or float64); ``zero``, ``half`` and
``one`` are scalars of that dtype (numba would promote Python floats to
float64).
"""

from __future__ import annotations

from numba import njit, prange

from logscan.backends.numba_cpu._threading import parallel_kernel
from logscan.backends.numba_cpu._vmath import FASTMATH, vexp, vlog1p, vsoftplus_nonpositive
from logscan.backends.numba_cpu._work import new_counter, units

_OPTS = dict(fastmath=FASTMATH, error_model="numpy", boundscheck=False)
_INLINE = dict(_OPTS, forceinline=True)
# Rows of one thread's work unit (32 KiB of a 256-wide float32 gate). The kernels loop over units, not
# ``prange(rows)``: with the rows themselves as the parallel loop, minlstm_gradients ran 66-76 ms instead
# of 7.5-8.0 (16384 x 256, float32, 2 threads); the other three kernels measured alike either way. The
# units are handed out one at a time (``_work``), as in the scan kernels: a slowed core holds up no one.
ROWS_PER_UNIT = 32


@njit(**_INLINE)
def _softplus_of_minus_abs(x):
    """``log1p(exp(-|x|))``, NaN for NaN (the float32 core maps NaN to 0: the scans select NaN apart)."""
    shared = vsoftplus_nonpositive(-abs(x))
    return shared if x == x else x


@njit(**_INLINE)
def _softplus(x, zero):
    """``log(1 + exp(x))``: ``max(x, 0) + log1p(exp(-|x|))``."""
    return (x if x > zero else zero) + _softplus_of_minus_abs(x)


@njit(**_INLINE)
def _log_g(x, zero, half):
    """``log g(x)``; ``x < 0`` (and NaN) takes the second branch."""
    above = vlog1p((x if x > zero else zero) - half)       # log(x + 1/2)
    below = zero if x >= zero else x
    below = below - vsoftplus_nonpositive(below)          # -softplus(-x)
    return above if x >= zero else below


@njit(**_INLINE)
def _log_g_derivative(x, zero, half, one):
    """``(log g)'(x)``: ``1 / (x + 1/2)`` for ``x >= 0``, ``1 / (1 + exp(x))`` otherwise."""
    above = one / ((x if x > zero else zero) + half)
    below = one / (one + vexp(zero if x >= zero else x))
    return above if x >= zero else below


@njit(**_INLINE)
def _sigmoid_of_negative(x, zero, one):
    """``sigma(-x) = 1 / (1 + exp(x))``, as ``e / (1 + e)`` with ``e = exp(-x)`` for ``x >= 0``."""
    e = vexp(-abs(x))
    return (e if x >= zero else one) / (one + e)


@njit(**_INLINE)
def _coefficients(s, candidate, zero, half):
    """``log a = -softplus(s)``, ``log b = log g(h~) - softplus(-s)``: both softplus share ``log1p(exp(-|s|))``.

    (``s + log a`` would be the same ``log sigma(s)`` but loses its digits to
    cancellation once ``|s|`` is large: 1e-3 at ``s = 1e4`` in float32.)
    """
    shared = _softplus_of_minus_abs(s)
    log_a = -(s if s > zero else zero) - shared
    log_sigma = (zero if s > zero else s) - shared
    return log_a, _log_g(candidate, zero, half) + log_sigma


@njit(**_INLINE)
def _logit_and_candidate_gradients(grad_log_a, grad_log_b, s, candidate, zero, half, one):
    # sigma(s) directly: exp(log a + s) would carry the rounding of log a (up to ~16 ulp near s = 16)
    weight = _sigmoid_of_negative(-s, zero, one)
    grad_s = grad_log_b - (grad_log_a + grad_log_b) * weight
    return grad_s, grad_log_b * _log_g_derivative(candidate, zero, half, one)


@njit(**_INLINE)
def _units(rows):
    return (rows + ROWS_PER_UNIT - 1) // ROWS_PER_UNIT


@njit(**_OPTS)
def _claimed_rows(claimed, rows):
    """The rows of the units this thread claims from ``claimed`` (see ``_work.units``), in order."""
    for unit in units(claimed, _units(rows)):
        for r in range(unit * ROWS_PER_UNIT, min(rows, (unit + 1) * ROWS_PER_UNIT)):  # noqa: UP028 (numba has no yield from)
            yield r


@parallel_kernel(cache=True, **_OPTS)
def mingru_coefficients(pre, log_a, log_b, zero, half):
    """``log_a``, ``log_b`` (rows, H) from ``pre = [k | h~]`` (rows, 2H)."""
    rows, width = log_a.shape
    claimed = new_counter()
    for _ in prange(_units(rows)):
        for r in _claimed_rows(claimed, rows):
            for j in range(width):
                log_a[r, j], log_b[r, j] = _coefficients(pre[r, j], pre[r, width + j], zero, half)


@parallel_kernel(cache=True, **_OPTS)
def minlstm_coefficients(pre, logit, log_a, log_b, zero, half):
    """``logit``, ``log_a``, ``log_b`` (rows, H) from ``pre = [f | i | h~]`` (rows, 3H)."""
    rows, width = log_a.shape
    claimed = new_counter()
    for _ in prange(_units(rows)):
        for r in _claimed_rows(claimed, rows):
            for j in range(width):
                s = _softplus(-pre[r, j], zero) - _softplus(-pre[r, width + j], zero)
                logit[r, j] = s
                log_a[r, j], log_b[r, j] = _coefficients(s, pre[r, 2 * width + j], zero, half)


@parallel_kernel(cache=True, **_OPTS)
def mingru_gradients(grad_log_a, grad_log_b, pre, zero, half, one):
    """``pre = [k | h~]`` (rows, 2H) overwritten by its gradient ``[dL/dk | dL/dh~]``."""
    rows, width = grad_log_a.shape
    claimed = new_counter()
    for _ in prange(_units(rows)):
        for r in _claimed_rows(claimed, rows):
            for j in range(width):
                pre[r, j], pre[r, width + j] = _logit_and_candidate_gradients(
                    grad_log_a[r, j], grad_log_b[r, j], pre[r, j], pre[r, width + j], zero, half, one)


@parallel_kernel(cache=True, **_OPTS)
def minlstm_gradients(grad_log_a, grad_log_b, logit, pre, zero, half, one):
    """``pre = [f | i | h~]`` (rows, 3H) overwritten by its gradient; ``logit`` as the forward stored it."""
    rows, width = grad_log_a.shape
    claimed = new_counter()
    for _ in prange(_units(rows)):
        for r in _claimed_rows(claimed, rows):
            for j in range(width):
                grad_s, grad_candidate = _logit_and_candidate_gradients(
                    grad_log_a[r, j], grad_log_b[r, j], logit[r, j], pre[r, 2 * width + j], zero, half, one)
                # d logit / d f = -sigma(-f), d logit / d i = sigma(-i)
                pre[r, j] = -grad_s * _sigmoid_of_negative(pre[r, j], zero, one)
                pre[r, width + j] = grad_s * _sigmoid_of_negative(pre[r, width + j], zero, one)
                pre[r, 2 * width + j] = grad_candidate
