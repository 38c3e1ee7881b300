r"""Model pieces, each a set of plain functions with a hand-written backward.

Every layer ``name`` has ``name_init(...) -> params`` (NumPy arrays; move
them with :func:`logscan.nn.model.to_device`), ``name_forward(params, x) ->
(y, cache)`` and ``name_backward(params, cache, grad_y) -> (grads, grad_x)``,
where ``grads`` has the keys of ``params``. Arrays are NumPy or CuPy; the
feature axis is the last one.

- linear: :math:`y = x W + b`, ``weight`` is ``(d_in, d_out)``.
- embedding: :math:`y = E[\text{tokens}]`.
- rmsnorm: :math:`y = w \odot x / \sqrt{\operatorname{mean}(x^2) + \epsilon}`.
- causal_conv: depthwise causal convolution along time,
  :math:`y_t = b + \sum_{j<K} w_j \odot x_{t-K+1+j}` (zeros before the start).
- mlp: linear, GELU (tanh form), linear.
- dropout (no parameters): :math:`y = x \odot m / (1 - p)`, each :math:`m` 1 with
  probability :math:`1 - p`, else 0 (inverted dropout: the expected
  output is ``x``, so evaluation uses ``x`` unchanged).

Examples
--------
>>> import numpy as np
>>> from logscan.nn import layers
>>> params = layers.rmsnorm_init(4)
>>> y, cache = layers.rmsnorm_forward(params, np.array([[1.0, -1.0, 1.0, -1.0]], np.float32))
>>> y.round(5).tolist()
[[1.0, -1.0, 1.0, -1.0]]
"""

from __future__ import annotations

import math

import numpy as np

from logscan.nn._xp import array_module, sum_rows_by_index


def _uniform(rng, bound, shape, dtype):
    return rng.uniform(-bound, bound, shape).astype(dtype)


def _flat(x):
    return x.reshape(-1, x.shape[-1])


# ------------------------------------------------------------------ linear
def linear_init(d_in, d_out, *, rng, dtype="float32", bias=True, scale=1.0):
    """Uniform in ``±scale/sqrt(d_in)``."""
    bound = scale / math.sqrt(d_in)
    params = {"weight": _uniform(rng, bound, (d_in, d_out), dtype)}
    if bias:
        params["bias"] = _uniform(rng, bound, (d_out,), dtype)
    return params


def linear_forward(params, x):
    y = _flat(x) @ params["weight"]
    if "bias" in params:
        y += params["bias"]
    return y.reshape(*x.shape[:-1], y.shape[-1]), x


def linear_backward(params, cache, grad_y):
    x = cache
    flat_grad = _flat(grad_y)
    grads = {"weight": _flat(x).T @ flat_grad}
    if "bias" in params:
        grads["bias"] = flat_grad.sum(axis=0)
    grad_x = (flat_grad @ params["weight"].T).reshape(x.shape)
    return grads, grad_x


# --------------------------------------------------------------- embedding
def embedding_init(vocab_size, width, *, rng, dtype="float32"):
    """Standard normal rows."""
    return {"weight": rng.standard_normal((vocab_size, width)).astype(dtype)}


def embedding_forward(params, tokens):
    return params["weight"][tokens], tokens


def embedding_backward(params, cache, grad_y):
    """Returns ``(grads, None)``: tokens have no gradient."""
    tokens = cache
    grad_weight = sum_rows_by_index(params["weight"].shape[0], tokens.reshape(-1), _flat(grad_y))
    return {"weight": grad_weight.astype(params["weight"].dtype, copy=False)}, None


# ----------------------------------------------------------------- rmsnorm
RMSNORM_EPS = 1e-6


def rmsnorm_init(width, *, dtype="float32"):
    return {"weight": np.ones(width, dtype)}


def rmsnorm_forward(params, x):
    xp = array_module(x)
    inverse_rms = 1 / xp.sqrt((x * x).mean(axis=-1, keepdims=True) + RMSNORM_EPS)
    normalized = x * inverse_rms
    return normalized * params["weight"], (normalized, inverse_rms)


def rmsnorm_backward(params, cache, grad_y):
    normalized, inverse_rms = cache
    grads = {"weight": _flat(grad_y * normalized).sum(axis=0)}
    grad_normalized = grad_y * params["weight"]
    # d(x / rms) / dx = (I - n n^T / width) / rms
    projection = (grad_normalized * normalized).mean(axis=-1, keepdims=True)
    grad_x = (grad_normalized - normalized * projection) * inverse_rms
    return grads, grad_x


# ------------------------------------------------------------- causal conv
def causal_conv_init(width, kernel_size, *, rng, dtype="float32"):
    """Depthwise: one length-``kernel_size`` filter per channel; weight is ``(kernel_size, width)``."""
    bound = 1 / math.sqrt(kernel_size)
    return {"weight": _uniform(rng, bound, (kernel_size, width), dtype),
            "bias": _uniform(rng, bound, (width,), dtype)}


def _left_pad(x, count):
    xp = array_module(x)
    padded = xp.zeros((x.shape[0], x.shape[1] + count, x.shape[2]), x.dtype)
    padded[:, count:] = x
    return padded


def causal_conv_forward(params, x):
    """``x`` is ``(B, T, width)``; output ``y[:, t]`` sees ``x[:, t-K+1 .. t]``."""
    weight = params["weight"]
    K, T = weight.shape[0], x.shape[1]
    padded = _left_pad(x, K - 1)
    y = padded[:, :T] * weight[0]
    for j in range(1, K):
        y += padded[:, j:j + T] * weight[j]
    y += params["bias"]
    return y, padded


def causal_conv_backward(params, cache, grad_y):
    padded = cache
    xp = array_module(grad_y)
    weight = params["weight"]
    K, T = weight.shape[0], grad_y.shape[1]
    grad_weight = xp.stack([_flat(grad_y * padded[:, j:j + T]).sum(axis=0) for j in range(K)])
    grad_padded = xp.zeros_like(padded)
    for j in range(K):
        grad_padded[:, j:j + T] += grad_y * weight[j]
    grads = {"weight": grad_weight, "bias": _flat(grad_y).sum(axis=0)}
    return grads, grad_padded[:, K - 1:]


def causal_conv_step(params, x_t, window):
    """One step: ``window`` holds the last ``K-1`` inputs ``(B, K-1, width)`` (None: zeros).

    Returns ``(y_t, new_window)``.
    """
    xp = array_module(x_t)
    weight = params["weight"]
    K = weight.shape[0]
    if window is None:
        window = xp.zeros((x_t.shape[0], K - 1, x_t.shape[1]), x_t.dtype)
    full = xp.concatenate([window, x_t[:, None]], axis=1)
    y = (full * weight).sum(axis=1) + params["bias"]
    return y, full[:, 1:]


# ----------------------------------------------------------------- mlp
_GELU_C = math.sqrt(2 / math.pi)


def gelu_forward(x):
    """Tanh-form GELU; returns ``(y, cache)``."""
    xp = array_module(x)
    t = xp.tanh(_GELU_C * (x + 0.044715 * x * x * x))
    return 0.5 * x * (1 + t), (x, t)


def gelu_backward(cache, grad_y):
    x, t = cache
    derivative = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _GELU_C * (1 + 3 * 0.044715 * x * x)
    return grad_y * derivative


def mlp_init(width, hidden, *, rng, dtype="float32"):
    """``up``: width -> hidden, ``down``: hidden -> width; flat keys ``up.weight``, ``up.bias``, ..."""
    params = {}
    for name, (d_in, d_out) in {"up": (width, hidden), "down": (hidden, width)}.items():
        for key, value in linear_init(d_in, d_out, rng=rng, dtype=dtype).items():
            params[f"{name}.{key}"] = value
    return params


def _part(params, prefix):
    return {key[len(prefix) + 1:]: value for key, value in params.items() if key.startswith(prefix + ".")}


def mlp_forward(params, x):
    up, up_cache = linear_forward(_part(params, "up"), x)
    activated, gelu_cache = gelu_forward(up)
    y, down_cache = linear_forward(_part(params, "down"), activated)
    return y, (up_cache, gelu_cache, down_cache)


def mlp_backward(params, cache, grad_y):
    up_cache, gelu_cache, down_cache = cache
    down_grads, grad_activated = linear_backward(_part(params, "down"), down_cache, grad_y)
    up_grads, grad_x = linear_backward(_part(params, "up"), up_cache, gelu_backward(gelu_cache, grad_activated))
    grads = {f"up.{k}": v for k, v in up_grads.items()}
    grads.update({f"down.{k}": v for k, v in down_grads.items()})
    return grads, grad_x


# ----------------------------------------------------------------- dropout
def dropout_forward(x, rate, rng):
    """Inverted dropout: ``(x * mask, mask)`` with ``mask`` 0 w.p. ``rate``, else ``1 / (1 - rate)``.

    Parameters
    ----------
    x : array
    rate : float in [0, 1)
        The probability of zeroing an element; 0 returns ``x`` itself and the
        cache None (no random numbers drawn).
    rng : numpy.random.Generator or cupy.random.Generator
        Of the array module of ``x`` (``xp.random.default_rng(seed)``).

    Returns
    -------
    y : array
    cache : array or None
        The scaled mask, for :func:`dropout_backward`.
    """
    if not 0 <= rate < 1:
        raise ValueError(f"dropout_forward: rate must be in [0, 1), got {rate}")
    if rate == 0:
        return x, None
    if rng is None:
        raise ValueError("dropout_forward: a rate above 0 needs an rng (xp.random.default_rng(seed))")
    mask = rng.random(x.shape, dtype=x.dtype) >= rate
    scaled = mask.astype(x.dtype)
    scaled *= 1 / (1 - rate)
    return x * scaled, scaled


def dropout_backward(cache, grad_y):
    """``dL/dx = dL/dy * mask`` (the mask scaled as in the forward); ``grad_y`` itself when no mask was drawn."""
    return grad_y if cache is None else grad_y * cache
