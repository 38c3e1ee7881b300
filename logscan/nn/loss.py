"""Softmax cross-entropy over the last axis, averaged over the positions a mask keeps.

Examples
--------
>>> import numpy as np
>>> from logscan.nn.loss import cross_entropy_forward
>>> loss, cache = cross_entropy_forward(np.zeros((1, 2, 4)), np.array([[0, 3]]))
>>> round(float(loss), 6) == round(float(np.log(4)), 6)
True
"""

from __future__ import annotations

from logscan.nn._xp import array_module


def cross_entropy_forward(logits, targets, mask=None):
    """Mean of ``-log softmax(logits)[target]`` over positions where ``mask`` is true.

    Parameters
    ----------
    logits : array, shape (..., V)
    targets : int array, shape (...)
    mask : bool array, shape (...), optional

    Returns
    -------
    loss : 0-d array
    cache : tuple
        For :func:`cross_entropy_backward`; it also holds the per-position
        predictions used for accuracy (``cache[0].argmax(-1)``).
    """
    xp = array_module(logits)
    if not hasattr(targets, "dtype") or targets.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy_forward: targets must be an integer array, "
                        f"got {getattr(targets, 'dtype', type(targets).__name__)}")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy_forward: targets must have shape {logits.shape[:-1]}, "
                         f"got {targets.shape}")
    if mask is not None and tuple(mask.shape) != tuple(targets.shape):
        raise ValueError(f"cross_entropy_forward: mask must have the shape of targets {tuple(targets.shape)}, "
                         f"got {tuple(mask.shape)}")
    # out-of-range targets would index past the classes (CuPy wraps them around without a word)
    if targets.size and bool(((targets < 0) | (targets >= logits.shape[-1])).any()):  # one read back on a GPU
        raise ValueError(f"cross_entropy_forward: targets must lie in [0, {logits.shape[-1]}), "
                         f"got values in [{int(targets.min())}, {int(targets.max())}]")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_norm = xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))
    log_probs = shifted - log_norm
    picked = xp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    weights = xp.ones(targets.shape, logits.dtype) if mask is None else mask.astype(logits.dtype)
    count = xp.maximum(weights.sum(), 1)
    loss = -(picked * weights).sum() / count
    return loss, (log_probs, targets, weights, count)


def cross_entropy_backward(cache):
    """``d loss / d logits`` = ``(softmax - onehot) * mask / count``."""
    log_probs, targets, weights, count = cache
    xp = array_module(log_probs)
    grad = xp.exp(log_probs)
    grad -= targets[..., None] == xp.arange(grad.shape[-1])
    grad *= (weights / count)[..., None]
    return grad
