"""Argument checks shared by the nn ops: one clear error at the public boundary, naming the argument."""

from __future__ import annotations

import numpy as np

from logscan.nn._xp import array_module

TRAINING_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_params(caller, params, shapes):
    """``params`` must hold exactly-shaped float32/float64 arrays under ``shapes`` (name -> shape), of one dtype."""
    if not isinstance(params, dict):
        raise TypeError(f"{caller}: params must be a dict of arrays, got {type(params).__name__}")
    missing = [name for name in shapes if name not in params]
    if missing:
        raise ValueError(f"{caller}: params is missing {', '.join(repr(m) for m in missing)} "
                         f"(expected keys {sorted(shapes)})")
    dtypes = set()
    for name, shape in shapes.items():
        value = params[name]
        if not hasattr(value, "shape") or not hasattr(value, "dtype"):
            raise TypeError(f"{caller}: params[{name!r}] must be an array, got {type(value).__name__}")
        if tuple(value.shape) != tuple(shape):
            raise ValueError(f"{caller}: params[{name!r}] must have shape {tuple(shape)}, got {tuple(value.shape)}")
        dtypes.add(np.dtype(value.dtype))
    if len(dtypes) > 1:
        raise TypeError(f"{caller}: params must share one dtype, got {sorted(str(d) for d in dtypes)}")
    dtype = dtypes.pop()
    if dtype not in TRAINING_DTYPES:
        raise TypeError(f"{caller}: params must be float32 or float64, got {dtype}")
    return dtype


def check_sequence(caller, name, x, dtype, width, ndim=3, layout="(batch, time, d_in)"):
    """``x`` must be an ``ndim``-d array of ``dtype`` whose last axis is ``width``, with finite values."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{caller}: {name} must be an array, got {type(x).__name__}")
    if x.ndim != ndim or x.shape[-1] != width:
        expected = layout.replace("d_in", str(width)).replace("d_hidden", str(width))
        raise ValueError(f"{caller}: {name} must have shape {expected}, got {tuple(x.shape)}")
    if np.dtype(x.dtype) != dtype:
        raise TypeError(f"{caller}: {name} must have the params' dtype {dtype}, got {x.dtype}")
    xp = array_module(x)
    if not bool(xp.isfinite(x).all()):
        raise ValueError(f"{caller}: {name} contains NaN or infinite values")


def check_state(caller, name, state, dtype, shape, allow_neg_inf=False):
    """An optional initial state: ``shape``, ``dtype``, no NaN (and no inf, except -inf in log space)."""
    if state is None:
        return None
    if not hasattr(state, "shape") or not hasattr(state, "dtype"):
        raise TypeError(f"{caller}: {name} must be an array, got {type(state).__name__}")
    if tuple(state.shape) != tuple(shape):
        raise ValueError(f"{caller}: {name} must have shape (batch, d_hidden) = {tuple(shape)}, "
                         f"got {tuple(state.shape)}")
    if np.dtype(state.dtype) != dtype:
        raise TypeError(f"{caller}: {name} must have the params' dtype {dtype}, got {state.dtype}")
    xp = array_module(state)
    bad = xp.isnan(state) | (xp.isposinf(state) if allow_neg_inf else ~xp.isfinite(state))
    if bool(bad.any()):
        allowed = " (-inf, meaning h = 0, is allowed)" if allow_neg_inf else ""
        raise ValueError(f"{caller}: {name} contains NaN or infinite values{allowed}")
    return state
