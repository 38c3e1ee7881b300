"""The host-callback route of the JAX adapter: ``jax.pure_callback`` to the library on the CPU.

Jitted code runs it on every platform but the CPU (where
:mod:`logscan.jax._buffers` runs instead), and on the CPU too where jax has no
``buffer_callback``. At run time jax copies each input into a fresh CPU array
(from a GPU: a device-to-host transfer), the library computes on NumPy views
of those and allocates its results, and jax copies each result into the
output buffer (to a GPU: a host-to-device transfer). The computation itself
is the CPU backend's, whatever the platform.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from logscan.jax import _host


def _on_host(op, axis, reverse, method, *arrays):
    results = _host.run(op, [np.asarray(x) for x in arrays], axis=axis, reverse=reverse, method=method)
    # jax copies a result into its buffer byte for byte, reading it as C-contiguous
    return tuple(np.ascontiguousarray(x) for x in results)


def call(op, arrays, result_shapes, *, axis, reverse, method):
    """Stage ``op`` of the library on ``arrays`` as a host callback; a tuple of the results.

    Under :func:`jax.vmap` every input gets the batch as a leading dimension
    (``broadcast_all``), which ``axis``, counted from the end, leaves alone.
    """
    host = functools.partial(_on_host, op, axis, reverse, method)
    return jax.pure_callback(host, tuple(result_shapes), *arrays, vmap_method="broadcast_all")
