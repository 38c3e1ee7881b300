r"""What minGRU and minLSTM share: one fused input projection, the gated mixture, the log-space scan.

Both cells project ``x`` with several ``(d_in, d_hidden)`` weights. They are
multiplied as one ``(d_in, k * d_hidden)`` matrix (one large GEMM instead of
``k`` small ones); the gate pre-activations are then views of that product.

Both are then the same gated mixture of the past and a candidate, with a
logit ``s`` (minGRU: ``s = k``; minLSTM: ``s = softplus(-f) - softplus(-i)``):

.. math:: h_t = \sigma(-s_t) h_{t-1} + \sigma(s_t) g(\tilde h_t),\qquad
          \log a_t = -\operatorname{softplus}(s_t),\quad
          \log b_t = \log g(\tilde h_t) - \operatorname{softplus}(-s_t).
"""

from __future__ import annotations

import numpy as np

import logscan
from logscan.nn import _checks
from logscan.nn._logspace import g, log_g, log_g_derivative, sigmoid, softplus
from logscan.nn._xp import array_module


def param_shapes(names, d_in, d_hidden):
    shapes = {}
    for name in names:
        shapes["weight_" + name] = (d_in, d_hidden)
        shapes["bias_" + name] = (d_hidden,)
    return shapes


def infer_sizes(caller, params, names):
    """``(d_in, d_hidden, dtype)`` from the first weight, after checking every param against them."""
    if not isinstance(params, dict):
        raise TypeError(f"{caller}: params must be a dict of arrays, got {type(params).__name__}")
    key = "weight_" + names[0]
    if key not in params:
        raise ValueError(f"{caller}: params is missing {key!r} (expected keys "
                         f"{sorted(param_shapes(names, 0, 0))})")
    if getattr(params[key], "ndim", None) != 2:
        raise ValueError(f"{caller}: params[{key!r}] must be a 2-d array (d_in, d_hidden), "
                         f"got shape {getattr(params[key], 'shape', None)}")
    d_in, d_hidden = params[key].shape
    dtype = _checks.check_params(caller, params, param_shapes(names, d_in, d_hidden))
    return d_in, d_hidden, dtype


def init(names, d_in, d_hidden, rng, dtype):
    """Uniform(-1/sqrt(d_in), 1/sqrt(d_in)) weights and biases, like a default linear layer."""
    if rng is None:
        rng = np.random.default_rng()
    if np.dtype(dtype) not in _checks.TRAINING_DTYPES:
        raise TypeError(f"init: dtype must be float32 or float64, got {np.dtype(dtype)}")
    bound = 1.0 / np.sqrt(d_in)
    params = {}
    for name in names:
        params["weight_" + name] = rng.uniform(-bound, bound, (d_in, d_hidden)).astype(dtype)
        params["bias_" + name] = rng.uniform(-bound, bound, (d_hidden,)).astype(dtype)
    return params


def fused_weight(params, names):
    xp = array_module(params["weight_" + names[0]])
    weight = xp.concatenate([params["weight_" + n] for n in names], axis=1)
    bias = xp.concatenate([params["bias_" + n] for n in names])
    return weight, bias


def project(params, names, x):
    """``x @ [W_1 | W_2 | ...] + [b_1 | b_2 | ...]`` over the last axis, for any leading shape."""
    weight, bias = fused_weight(params, names)
    flat = x.reshape(-1, x.shape[-1])
    pre = flat @ weight
    pre += bias
    return pre.reshape(*x.shape[:-1], weight.shape[1])


def project_backward(params, names, x, grad_pre):
    """Gradients of the fused projection: per-name weight/bias grads and ``grad_x``."""
    weight, _ = fused_weight(params, names)
    d_hidden = weight.shape[1] // len(names)
    flat_x = x.reshape(-1, x.shape[-1])
    flat_grad = grad_pre.reshape(-1, grad_pre.shape[-1])
    grad_weight = flat_x.T @ flat_grad
    grad_bias = flat_grad.sum(axis=0)
    grads = {}
    for k, name in enumerate(names):
        grads["weight_" + name] = grad_weight[:, k * d_hidden:(k + 1) * d_hidden]
        grads["bias_" + name] = grad_bias[k * d_hidden:(k + 1) * d_hidden]
    grad_x = (flat_grad @ weight.T).reshape(x.shape)
    return grads, grad_x


def check_inputs(caller, params, names, x, state, *, step):
    """``(d_hidden, state)`` after checking params, ``x`` and the state of a forward (``step=False``) or a step.

    The forward takes ``x`` (B, T, d_in) and ``log_h0`` (``-inf`` allowed); a
    step takes ``x_t`` (B, d_in) and ``h_prev``.
    """
    d_in, d_hidden, dtype = infer_sizes(caller, params, names)
    if step:
        _checks.check_sequence(caller, "x_t", x, dtype, d_in, ndim=2, layout="(batch, d_in)")
        state = _checks.check_state(caller, "h_prev", state, dtype, (x.shape[0], d_hidden))
    else:
        _checks.check_sequence(caller, "x", x, dtype, d_in)
        state = _checks.check_state(caller, "log_h0", state, dtype, (x.shape[0], d_hidden), allow_neg_inf=True)
    return d_hidden, state


def mixture_coefficients(s, candidate):
    """``(log a, log b)`` of the gated mixture with logit ``s`` (new arrays; ``s`` and ``candidate`` kept).

    ``log a = log sigma(-s) = -max(s, 0) - l`` and ``log sigma(s) = min(s, 0) - l``
    share ``l = log(1 + exp(-|s|))``. (``s + log a`` is the same ``log sigma(s)``
    but loses its digits to cancellation once ``|s|`` is large: 1e-3 at
    ``s = 1e4`` in float32.)
    """
    xp = array_module(s)
    shared = softplus(-xp.abs(s))     # log(1 + exp(-|s|))
    log_a = xp.maximum(s, 0)
    log_a += shared
    log_a *= -1
    log_b = log_g(candidate)
    log_b += xp.minimum(s, 0)
    log_b -= shared
    return log_a, log_b


def logit_backward(grad_log_a, grad_log_b, log_a, s, out):
    """The logit's gradient through :func:`mixture_coefficients`, written to ``out`` (which may be ``s``).

    ``d log a / ds = -sigma(s)`` and ``d log b / ds = 1 - sigma(s)``, with
    ``sigma(s)`` formed from ``s`` itself (:func:`~logscan.nn._logspace.sigmoid`;
    ``exp(log a + s)`` would carry the rounding of ``log a``). ``log_a`` is
    overwritten (the sigmoid's scratch); ``s`` is read before ``out`` is
    written. One temporary, ``sigma(s)``; callers free ``log_a`` (and
    ``grad_log_a`` when ``out`` is not it) before :func:`candidate_backward`
    allocates one.
    """
    xp = array_module(grad_log_a)
    weight = sigmoid(s, scratch=log_a)
    xp.add(grad_log_a, grad_log_b, out=out)
    out *= weight
    xp.subtract(grad_log_b, out, out=out)
    return out


def candidate_backward(grad_log_b, candidate):
    """The candidate's gradient through :func:`mixture_coefficients`, in ``grad_log_b``'s buffer."""
    grad_log_b *= log_g_derivative(candidate)
    return grad_log_b


def mixture_step(s, candidate, h_prev):
    """One step of the gated mixture on ``h`` itself; ``h_prev`` None means 0."""
    h = sigmoid(s) * g(candidate)
    if h_prev is not None:
        h += sigmoid(s, negate=True) * h_prev
    return h


def scan_forward(log_a, log_b, log_h0):
    log_h = logscan.scan(log_a, log_b, axis=1, log_h0=log_h0)
    xp = array_module(log_h)
    return log_h, xp.exp(log_h)


def take_cache(caller, cache, grad_h):
    """Empty ``cache`` into a dict and return it, after checking ``grad_h`` against its ``h``.

    A backward pass reuses the cached buffers for its gradients (it needs no
    memory of its own beyond the scan's outputs), so a cache serves one
    backward pass; a second use is an error rather than silently wrong.
    """
    if not isinstance(cache, dict) or "h" not in cache:
        if isinstance(cache, dict) and cache.get("used"):
            raise ValueError(f"{caller}: this cache was already used by a backward pass (the buffers it held "
                             f"were reused); run the forward pass again to backpropagate twice")
        raise TypeError(f"{caller}: cache must be the dict returned by the forward pass")
    h = cache["h"]
    if not hasattr(grad_h, "shape") or not hasattr(grad_h, "dtype"):
        raise TypeError(f"{caller}: grad_h must be an array of h's family, got {type(grad_h).__name__}")
    if grad_h.dtype.kind != "f":
        raise TypeError(f"{caller}: grad_h must be a float array (it is cast to h's dtype {h.dtype}), "
                        f"got {grad_h.dtype}")
    if tuple(grad_h.shape) != tuple(h.shape):
        raise ValueError(f"{caller}: grad_h must have the shape of h {tuple(h.shape)}, got {tuple(grad_h.shape)}")
    taken = dict(cache)
    cache.clear()
    cache["used"] = True
    return taken


def scan_backward(taken, grad_h):
    """``(grad_log_a, grad_log_b, grad_log_h0)`` from ``dL/dh`` (``dL/dlog h = dL/dh * h``).

    Drops ``h``, ``log_b`` and ``log_h`` from ``taken`` (no longer needed).
    """
    h = taken.pop("h")
    grad_log_h = grad_h.astype(h.dtype, copy=False) * h
    del h
    return logscan.scan_backward(grad_log_h, taken["log_a"], taken.pop("log_b"), taken.pop("log_h"), axis=1,
                                 log_h0=taken["log_h0"])
