r"""AdamW with global gradient-norm clipping, updating a dict of arrays in place.

.. math::

    g \leftarrow g \cdot \min(1, c / \lVert g \rVert),\quad
    m \leftarrow \beta_1 m + (1-\beta_1) g,\quad v \leftarrow \beta_2 v + (1-\beta_2) g^2,\\
    \theta \leftarrow \theta - \eta \left(\frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}
    + \lambda \theta\right)

Weight decay :math:`\lambda` applies to matrices only (``ndim >= 2``), not to
biases and norm gains (as is usual for transformers and RNN LMs alike).

Examples
--------
>>> import numpy as np
>>> params = {"w": np.array([[1.0]])}
>>> opt = AdamW(params, lr=0.1, weight_decay=0.0)
>>> norm = opt.step(params, {"w": np.array([[2.0]])})
>>> params["w"].round(4).tolist()  # the first Adam step moves by lr
[[0.9]]
"""

from __future__ import annotations

import math

from logscan.nn._xp import array_module


def global_norm(grads):
    """``sqrt(sum of squares)`` over every array of the dict, as a Python float.

    The squares are summed where the arrays live and read back once (on a GPU,
    one synchronization per step rather than one per array).
    """
    if not grads:
        return 0.0
    squares = [array_module(g).vdot(g.ravel(), g.ravel()) for g in grads.values()]
    xp = array_module(*grads.values())
    return math.sqrt(float(xp.stack(squares).astype(xp.float64).sum()))


class AdamW:
    """Decoupled-weight-decay Adam.

    Parameters
    ----------
    params : dict of arrays
        The arrays it will update (their state is allocated alike).
    lr : float
        Learning rate; may be changed between steps (``opt.lr = ...``) for a schedule.
    betas : (float, float)
    eps : float
    weight_decay : float
        Applied to arrays with ``ndim >= 2`` only.
    clip_norm : float or None
        Scale the gradients so that their global norm is at most this.
    """

    def __init__(self, params, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, clip_norm=1.0):
        if lr < 0 or eps <= 0 or weight_decay < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"AdamW: bad hyper-parameters lr={lr}, betas={betas}, eps={eps}, "
                             f"weight_decay={weight_decay}")
        if clip_norm is not None and clip_norm <= 0:
            raise ValueError(f"AdamW: clip_norm must be > 0 or None, got {clip_norm}")
        self.lr, self.betas, self.eps = lr, betas, eps
        self.weight_decay, self.clip_norm = weight_decay, clip_norm
        self.step_count = 0
        self.m = {k: array_module(v).zeros_like(v) for k, v in params.items()}
        self.v = {k: array_module(v).zeros_like(v) for k, v in params.items()}

    def step(self, params, grads):
        """Update ``params`` in place from ``grads``; returns the global gradient norm before clipping."""
        if set(grads) != set(params):
            raise ValueError(f"AdamW.step: grads and params must have the same keys; "
                             f"differ in {sorted(set(grads) ^ set(params))}")
        norm = global_norm(grads)
        if not math.isfinite(norm):
            raise FloatingPointError(f"AdamW.step: the gradient norm is {norm}; the loss diverged")
        scale = 1.0 if self.clip_norm is None or norm <= self.clip_norm else self.clip_norm / norm
        self.step_count += 1
        beta1, beta2 = self.betas
        correction1 = 1 - beta1 ** self.step_count
        correction2 = 1 - beta2 ** self.step_count
        step_size = self.lr / correction1
        for key, value in params.items():
            xp = array_module(value)
            g = grads[key] * scale if scale != 1.0 else grads[key]
            m, v = self.m[key], self.v[key]
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * (g * g)
            if self.weight_decay and value.ndim >= 2:
                value *= 1 - self.lr * self.weight_decay
            denominator = xp.sqrt(v / correction2)
            denominator += self.eps
            value -= step_size * (m / denominator)
        return norm

    def state_dict(self):
        """Moments and step count, for checkpoints (``m.*``, ``v.*`` arrays)."""
        state = {f"m.{k}": v for k, v in self.m.items()}
        state.update({f"v.{k}": v for k, v in self.v.items()})
        return state
