"""What minGRU and minLSTM share: one fused input projection, the log-space scan, and their backward.

Both cells project ``x`` with several ``(d_in, d_hidden)`` weights. They are
multiplied as one ``(d_in, k * d_hidden)`` matrix (one large GEMM instead of
``k`` small ones); the gate pre-activations are then views of that product.
"""

from __future__ import annotations

import numpy as np

import logscan
from logscan.nn import _checks
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
