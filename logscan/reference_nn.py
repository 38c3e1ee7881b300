r"""Float64 references for minGRU and minLSTM: the paper's recurrences, one step at a time, in linear space.

Nothing here goes through log space or a scan: these are the definitions,
written plainly, against which the fast log-space layers in :mod:`logscan.nn`
(and their hand-written gradients, by finite differences) are checked.

Examples
--------
>>> import numpy as np
>>> from logscan import reference_nn
>>> params = {"weight_gate": np.zeros((1, 1)), "bias_gate": np.zeros(1),
...           "weight_candidate": np.zeros((1, 1)), "bias_candidate": np.ones(1)}
>>> reference_nn.mingru(params, np.zeros((1, 2, 1)))[0, :, 0].tolist()  # z = 1/2, g(1) = 1.5
[0.75, 1.125]
"""

from __future__ import annotations

import numpy as np


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def g(x):
    """``x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` otherwise."""
    x = np.asarray(x, np.float64)
    return np.where(x >= 0, x + 0.5, _sigmoid(np.minimum(x, 0)))


def _project(params, name, x):
    return x @ np.asarray(params["weight_" + name], np.float64) + np.asarray(params["bias_" + name], np.float64)


def mingru(params, x, h0=None):
    """``h_t = (1 - z_t) h_{t-1} + z_t g(h~_t)``, ``z_t = sigmoid(x_t W_z + b_z)``, ``h~_t = x_t W_h + b_h``.

    ``x`` is ``(B, T, d_in)``, ``h0`` (linear, not log) ``(B, d_hidden)`` or None
    (zero); returns ``h`` of shape ``(B, T, d_hidden)`` in float64.
    """
    x = np.asarray(x, np.float64)
    z = _sigmoid(_project(params, "gate", x))
    candidate = g(_project(params, "candidate", x))
    h = np.zeros(z.shape[::2]) if h0 is None else np.array(h0, np.float64)
    out = np.empty_like(z)
    for t in range(x.shape[1]):
        h = (1 - z[:, t]) * h + z[:, t] * candidate[:, t]
        out[:, t] = h
    return out


def minlstm(params, x, h0=None):
    """``h_t = f'_t h_{t-1} + i'_t g(h~_t)`` with ``f' = f / (f + i)``, ``i' = i / (f + i)``.

    ``f = sigmoid(x W_f + b_f)``, ``i = sigmoid(x W_i + b_i)``, ``h~ = x W_h + b_h``.
    Shapes as in :func:`mingru`.
    """
    x = np.asarray(x, np.float64)
    forget = _sigmoid(_project(params, "forget", x))
    input_ = _sigmoid(_project(params, "input", x))
    candidate = g(_project(params, "candidate", x))
    forget, input_ = forget / (forget + input_), input_ / (forget + input_)
    h = np.zeros(forget.shape[::2]) if h0 is None else np.array(h0, np.float64)
    out = np.empty_like(forget)
    for t in range(x.shape[1]):
        h = forget[:, t] * h + input_[:, t] * candidate[:, t]
        out[:, t] = h
    return out
