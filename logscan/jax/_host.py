"""The one library call behind every route of the JAX adapter: an op of the front door on arrays it takes.

The buffer callback (:mod:`logscan.jax._buffers`) calls it on NumPy views of
XLA's buffers with ``out`` set to the result buffers; the host callback
(:mod:`logscan.jax._callback`) on NumPy views of the callback's arguments,
letting the library allocate; an eager call on GPU arrays on the ``jax.Array``
objects themselves (the front door takes them through DLPack).
"""

from __future__ import annotations

from logscan import api

# op: (front-door function, number of sequence arguments, keyword of the initial state)
_OPS = {
    "log_scan": (api.scan, 2, "log_h0"),
    "linear_scan": (api.linear_scan, 2, "h0"),
    "log_scan_backward": (api.scan_backward, 4, "log_h0"),
    "linear_scan_backward": (api.linear_scan_backward, 4, "h0"),
}


def run(op, arrays, *, axis, reverse, method, out=None):
    """The results of ``op`` as a tuple: ``(h,)`` for a scan, ``(grad_a, grad_b[, grad_h0])`` for a backward.

    ``arrays`` are the op's sequence arguments in the front door's order,
    followed by the initial state when there is one; ``out`` is None or the
    arrays to write the results into, one per result.
    """
    function, count, state_name = _OPS[op]
    state = arrays[count] if len(arrays) > count else None
    options = dict(axis=axis, reverse=reverse, method=method, **{state_name: state})
    if count == 2:
        return (function(*arrays[:count], out=None if out is None else out[0], **options),)
    grads = function(*arrays[:count], out=None if out is None else tuple(out), **options)
    return grads if state is not None else grads[:2]
