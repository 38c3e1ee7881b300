r"""minLSTM ("Were RNNs All We Needed?", Feng et al. 2024) with a hand-written backward.

.. math::

    f_t = \sigma(x_t W_f + b_f),\quad i_t = \sigma(x_t W_i + b_i),\quad \tilde h_t = x_t W_h + b_h,\\
    f'_t = \frac{f_t}{f_t + i_t},\quad i'_t = \frac{i_t}{f_t + i_t},\quad
    h_t = f'_t \odot h_{t-1} + i'_t \odot g(\tilde h_t).

In log space, with :math:`d_t = \operatorname{softplus}(-f^{pre}_t) - \operatorname{softplus}(-i^{pre}_t)`
(so that :math:`f' = \sigma(-d)` and :math:`i' = \sigma(d)`):
:math:`\log a_t = -\operatorname{softplus}(d_t)`,
:math:`\log b_t = -\operatorname{softplus}(-d_t) + \log g(\tilde h_t)`.
The state carried is ``log_h0`` in parallel mode and ``h_prev`` in step mode,
exactly as for :mod:`logscan.nn.mingru`.

Params: ``weight_forget``, ``weight_input``, ``weight_candidate``
``(d_in, d_hidden)`` and the matching ``bias_*`` ``(d_hidden,)``.

Examples
--------
>>> import numpy as np
>>> from logscan.nn import minlstm_init, minlstm_forward, minlstm_step
>>> params = minlstm_init(3, 4, rng=np.random.default_rng(0), dtype=np.float64)
>>> x = np.random.default_rng(1).standard_normal((2, 5, 3))
>>> h0 = np.full((2, 4), 0.7)
>>> h, cache = minlstm_forward(params, x, log_h0=np.log(h0))
>>> state = h0
>>> for t in range(5):
...     state = minlstm_step(params, x[:, t], state)
>>> bool(np.allclose(state, h[:, -1]))
True
"""

from __future__ import annotations

from logscan.nn import _fused_cpu, _minrnn
from logscan.nn._logspace import sigmoid, softplus

GATES = ("forget", "input", "candidate")


def minlstm_init(d_in, d_hidden, *, rng=None, dtype="float32"):
    """Parameters of a minLSTM layer: uniform in ``±1/sqrt(d_in)`` (see :func:`logscan.nn.mingru_init`)."""
    return _minrnn.init(GATES, d_in, d_hidden, rng, dtype)


def _split(pre, d_hidden):
    return pre[..., :d_hidden], pre[..., d_hidden:2 * d_hidden], pre[..., 2 * d_hidden:]


def _logit(forget, input_):
    """The mixture's logit ``d = softplus(-f) - softplus(-i)``: ``f' = sigma(-d)``, ``i' = sigma(d)``."""
    d = softplus(forget, negate=True)
    d -= softplus(input_, negate=True)
    return d


def minlstm_forward(params, x, *, log_h0=None):
    """The minLSTM layer over a whole sequence, by one parallel scan.

    Parameters
    ----------
    params : dict
        As made by :func:`minlstm_init`.
    x : array, shape (B, T, d_in)
    log_h0 : array, shape (B, d_hidden), optional
        Log of the initial state; absent means ``h_{-1} = 0``.

    Returns
    -------
    h : array, shape (B, T, d_hidden)
    cache : dict
    """
    d_hidden, log_h0 = _minrnn.check_inputs("minlstm_forward", params, GATES, x, log_h0, step=False)
    pre = _minrnn.project(params, GATES, x)
    if _fused_cpu.applies(pre):
        d, log_a, log_b = _fused_cpu.minlstm_coefficients(pre)
    else:
        forget, input_, candidate = _split(pre, d_hidden)
        d = _logit(forget, input_)
        log_a, log_b = _minrnn.mixture_coefficients(d, candidate)
    log_h, h = _minrnn.scan_forward(log_a, log_b, log_h0)
    cache = {"x": x, "pre": pre, "d": d, "log_a": log_a, "log_b": log_b, "log_h": log_h, "h": h,
             "log_h0": log_h0}
    return h, cache


def minlstm_backward(params, cache, grad_h):
    """Gradients of a loss through :func:`minlstm_forward`.

    The cache serves one backward pass (its buffers are reused for the
    gradients); a second use raises ValueError.

    Returns
    -------
    grads : dict
        Same keys as ``params``.
    grad_x : array, shape (B, T, d_in)
    grad_log_h0 : array, shape (B, d_hidden), or None
    """
    caller = "minlstm_backward"
    taken = _minrnn.take_cache(caller, cache, grad_h)
    grad_log_a, grad_log_b, grad_log_h0 = _minrnn.scan_backward(taken, grad_h)
    # The cached buffers become the gradients' (the pre-activations end as their gradient).
    grad_pre = taken.pop("pre")
    if _fused_cpu.applies(grad_pre):
        _fused_cpu.minlstm_gradients(grad_log_a, grad_log_b, taken.pop("d"), grad_pre)
        del grad_log_a, grad_log_b, taken["log_a"]
    else:
        forget, input_, candidate = _split(grad_pre, grad_pre.shape[-1] // 3)
        d = taken.pop("d")
        grad_d = _minrnn.logit_backward(grad_log_a, grad_log_b, taken.pop("log_a"), d, out=d)
        del grad_log_a  # freed before candidate_backward allocates
        candidate[...] = _minrnn.candidate_backward(grad_log_b, candidate)
        del grad_log_b
        # dd / d forget = -sigmoid(-forget), dd / d input = sigmoid(-input)
        input_[...] = sigmoid(input_, negate=True)
        input_ *= grad_d
        forget[...] = sigmoid(forget, negate=True)
        forget *= grad_d
        forget *= -1
        del grad_d
    grads, grad_x = _minrnn.project_backward(params, GATES, taken["x"], grad_pre)
    return grads, grad_x, grad_log_h0


def minlstm_step(params, x_t, h_prev=None):
    """One minLSTM step in linear space, O(1) state (for generation).

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
    d_hidden, h_prev = _minrnn.check_inputs("minlstm_step", params, GATES, x_t, h_prev, step=True)
    forget, input_, candidate = _split(_minrnn.project(params, GATES, x_t), d_hidden)
    h = _minrnn.mixture_step(_logit(forget, input_), candidate, h_prev)
    return h
