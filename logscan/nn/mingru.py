r"""minGRU ("Were RNNs All We Needed?", Feng et al. 2024) with a hand-written backward.

.. math::

    z_t = \sigma(k_t),\quad k_t = x_t W_z + b_z,\quad \tilde h_t = x_t W_h + b_h,\quad
    h_t = (1 - z_t) \odot h_{t-1} + z_t \odot g(\tilde h_t).

Parallel mode runs the recurrence in log space through :func:`logscan.scan`
with :math:`\log a_t = -\operatorname{softplus}(k_t)` (that is
:math:`\log(1 - z_t)`) and :math:`\log b_t = -\operatorname{softplus}(-k_t) + \log g(\tilde h_t)`;
step mode runs the same recurrence on :math:`h` itself. The state carried is
``log_h0`` (log space) in parallel mode and ``h_prev`` in step mode:
``mingru_forward(params, x, log_h0=log(h_prev))`` equals stepping from
``h_prev``.

Shapes: ``x`` is ``(B, T, d_in)``, ``h`` is ``(B, T, d_hidden)``, a state is
``(B, d_hidden)``; params are ``weight_gate``, ``weight_candidate``
``(d_in, d_hidden)`` and ``bias_gate``, ``bias_candidate`` ``(d_hidden,)``,
float32 or float64 (``x`` of the same dtype). NumPy or CuPy arrays.

Examples
--------
>>> import numpy as np
>>> from logscan.nn import mingru_init, mingru_forward, mingru_step
>>> params = mingru_init(3, 4, rng=np.random.default_rng(0), dtype=np.float64)
>>> x = np.random.default_rng(1).standard_normal((2, 5, 3))
>>> h, cache = mingru_forward(params, x)
>>> h.shape
(2, 5, 4)
>>> state = None
>>> for t in range(5):
...     state = mingru_step(params, x[:, t], state)
>>> bool(np.allclose(state, h[:, -1]))
True
"""

from __future__ import annotations

from logscan.nn import _fused_cpu, _minrnn

GATES = ("gate", "candidate")


def mingru_init(d_in, d_hidden, *, rng=None, dtype="float32"):
    """Parameters of a minGRU layer: uniform in ``±1/sqrt(d_in)``.

    Parameters
    ----------
    d_in, d_hidden : int
    rng : numpy.random.Generator, optional
    dtype : float32 or float64

    Returns
    -------
    params : dict
        ``weight_gate``, ``weight_candidate`` of shape ``(d_in, d_hidden)``,
        ``bias_gate``, ``bias_candidate`` of shape ``(d_hidden,)`` (NumPy).
    """
    return _minrnn.init(GATES, d_in, d_hidden, rng, dtype)


def mingru_forward(params, x, *, log_h0=None):
    """The minGRU layer over a whole sequence, by one parallel scan.

    Parameters
    ----------
    params : dict
        As made by :func:`mingru_init`.
    x : array, shape (B, T, d_in)
    log_h0 : array, shape (B, d_hidden), optional
        Log of the initial state (``-inf`` where it is 0); absent means ``h_{-1} = 0``.

    Returns
    -------
    h : array, shape (B, T, d_hidden)
    cache : dict
        What :func:`mingru_backward` needs.
    """
    d_hidden, log_h0 = _minrnn.check_inputs("mingru_forward", params, GATES, x, log_h0, step=False)
    pre = _minrnn.project(params, GATES, x)
    if _fused_cpu.applies(pre):
        log_a, log_b = _fused_cpu.mingru_coefficients(pre)
    else:
        k, candidate = pre[..., :d_hidden], pre[..., d_hidden:]
        log_a, log_b = _minrnn.mixture_coefficients(k, candidate)   # the logit is k itself
    log_h, h = _minrnn.scan_forward(log_a, log_b, log_h0)
    cache = {"x": x, "pre": pre, "log_a": log_a, "log_b": log_b, "log_h": log_h, "h": h, "log_h0": log_h0}
    return h, cache


def mingru_backward(params, cache, grad_h):
    """Gradients of a loss through :func:`mingru_forward`.

    Parameters
    ----------
    params : dict
    cache : dict
        From :func:`mingru_forward`. It serves one backward pass: its buffers
        are reused for the gradients (this is what keeps the peak memory low),
        and a second use raises ValueError.
    grad_h : array, shape (B, T, d_hidden)
        ``dL/dh``.

    Returns
    -------
    grads : dict
        Same keys as ``params``.
    grad_x : array, shape (B, T, d_in)
    grad_log_h0 : array, shape (B, d_hidden), or None
        None when no ``log_h0`` was given.
    """
    caller = "mingru_backward"
    taken = _minrnn.take_cache(caller, cache, grad_h)
    d_hidden = grad_h.shape[-1]
    grad_log_a, grad_log_b, grad_log_h0 = _minrnn.scan_backward(taken, grad_h)
    # The cached buffers become the gradients' (the pre-activations end as their gradient).
    grad_pre = taken.pop("pre")
    if _fused_cpu.applies(grad_pre):
        _fused_cpu.mingru_gradients(grad_log_a, grad_log_b, grad_pre)
        del grad_log_a, grad_log_b, taken["log_a"]
    else:
        k, candidate = grad_pre[..., :d_hidden], grad_pre[..., d_hidden:]
        k[...] = _minrnn.logit_backward(grad_log_a, grad_log_b, taken.pop("log_a"), k, out=grad_log_a)
        del grad_log_a  # freed before candidate_backward allocates
        candidate[...] = _minrnn.candidate_backward(grad_log_b, candidate)
        del grad_log_b
    grads, grad_x = _minrnn.project_backward(params, GATES, taken["x"], grad_pre)
    return grads, grad_x, grad_log_h0


def mingru_step(params, x_t, h_prev=None):
    """One minGRU step in linear space, O(1) state (for generation).

    Parameters
    ----------
    params : dict
    x_t : array, shape (B, d_in)
    h_prev : array, shape (B, d_hidden), optional
        The previous state ``h`` (not its log); absent means 0.

    Returns
    -------
    h_t : array, shape (B, d_hidden)
    """
    d_hidden, h_prev = _minrnn.check_inputs("mingru_step", params, GATES, x_t, h_prev, step=True)
    pre = _minrnn.project(params, GATES, x_t)
    h = _minrnn.mixture_step(pre[..., :d_hidden], pre[..., d_hidden:], h_prev)
    return h
