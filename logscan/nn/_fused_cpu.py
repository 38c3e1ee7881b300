"""The fused CPU path of the minRNN gates: one numba pass where the array code makes a dozen.

The cells' array expressions (NumPy or CuPy) stay the definition and the
path for every other array; for C-contiguous float32/float64 NumPy
pre-activations, the cells call these instead
(:mod:`logscan.backends.numba_cpu._minrnn_gates` computes the same
formulas). Numba is imported on the first call, never at import.
"""

from __future__ import annotations

import numpy as np

ENABLED = True  # tests switch it off to compare the two paths


def applies(pre):
    """Whether the fused kernels take ``pre`` (else the cells use their array expressions)."""
    return (ENABLED and type(pre) is np.ndarray and pre.dtype in (np.float32, np.float64)
            and pre.ndim >= 2 and pre.flags.c_contiguous)


def _kernels():
    from logscan.backends.numba_cpu import _minrnn_gates  # noqa: PLC0415  (numba only when called)
    return _minrnn_gates


def _rows(pre, n_gates):
    """``pre`` as (rows, n_gates * H), and ``H``."""
    flat = pre.reshape(-1, pre.shape[-1])
    return flat, flat.shape[1] // n_gates


def _constants(dtype):
    kind = dtype.type
    return kind(0.0), kind(0.5), kind(1.0)


def mingru_coefficients(pre):
    """``(log_a, log_b)``, each ``pre.shape[:-1] + (H,)``, from ``pre = [k | h~]``."""
    flat, width = _rows(pre, 2)
    log_a = np.empty((flat.shape[0], width), pre.dtype)
    log_b = np.empty_like(log_a)
    zero, half, _ = _constants(pre.dtype)
    _kernels().mingru_coefficients(flat, log_a, log_b, zero, half)
    shape = pre.shape[:-1] + (width,)
    return log_a.reshape(shape), log_b.reshape(shape)


def minlstm_coefficients(pre):
    """``(logit, log_a, log_b)``, each ``pre.shape[:-1] + (H,)``, from ``pre = [f | i | h~]``."""
    flat, width = _rows(pre, 3)
    logit = np.empty((flat.shape[0], width), pre.dtype)
    log_a, log_b = np.empty_like(logit), np.empty_like(logit)
    zero, half, _ = _constants(pre.dtype)
    _kernels().minlstm_coefficients(flat, logit, log_a, log_b, zero, half)
    shape = pre.shape[:-1] + (width,)
    return logit.reshape(shape), log_a.reshape(shape), log_b.reshape(shape)


def _as_rows(width, *arrays):
    return [np.ascontiguousarray(a).reshape(-1, width) for a in arrays]


def mingru_gradients(grad_log_a, grad_log_b, pre):
    """Overwrite ``pre = [k | h~]`` with ``[dL/dk | dL/dh~]`` and return it."""
    flat, width = _rows(pre, 2)
    grad_log_a, grad_log_b = _as_rows(width, grad_log_a, grad_log_b)
    _kernels().mingru_gradients(grad_log_a, grad_log_b, flat, *_constants(pre.dtype))
    return pre


def minlstm_gradients(grad_log_a, grad_log_b, logit, pre):
    """Overwrite ``pre = [f | i | h~]`` with ``[dL/df | dL/di | dL/dh~]`` and return it."""
    flat, width = _rows(pre, 3)
    grad_log_a, grad_log_b, logit = _as_rows(width, grad_log_a, grad_log_b, logit)
    _kernels().minlstm_gradients(grad_log_a, grad_log_b, logit, flat, *_constants(pre.dtype))
    return pre
