"""The CPU route of the JAX adapter: the library computes on XLA's own buffers, through ``buffer_callback``.

:func:`call` stages :func:`jax.experimental.buffer_callback`: inside a jitted
function it is an XLA custom call whose handler calls back into Python with
the input and output buffers as they are. The callback views them as NumPy
arrays and the front door writes its results straight into the output
buffers (``out=``): nothing is copied on the way in or out, and the cost over
a call of the library on NumPy arrays is the callback's, tens of
microseconds. Where the installed jax has no ``buffer_callback`` (it is
experimental: written against jax 0.10), :data:`AVAILABLE` is False, a RuntimeWarning says so at import, and the
adapter computes through ``jax.pure_callback`` instead.
"""

from __future__ import annotations

import functools
import warnings

import jax
import numpy as np

from logscan.jax import _host

try:
    from jax.experimental.buffer_callback import buffer_callback
except ImportError:
    buffer_callback = None
    warnings.warn(f"logscan.jax: jax {jax.__version__} has no jax.experimental.buffer_callback; jitted calls on the "
                  f"CPU go through jax.pure_callback instead, which copies every input and every result once",
                  RuntimeWarning, stacklevel=2)

AVAILABLE = buffer_callback is not None
# The name XLA's program gives the custom call on the CPU (to tell the route in lowered text).
TARGET = "xla_buffer_python_cpu_callback"


def _on_buffers(op, axis, reverse, method, context, outputs, *inputs):
    _host.run(op, [np.asarray(x) for x in inputs], axis=axis, reverse=reverse, method=method,
              out=[np.asarray(x) for x in outputs])


def call(op, arrays, result_shapes, *, axis, reverse, method):
    """Stage ``op`` of the library on ``arrays`` as an XLA custom call on the CPU; a tuple of the results.

    Under :func:`jax.vmap` every input gets the batch as a leading dimension
    (``broadcast_all``): ``axis`` counts from the end, so it still names the
    time axis, and the library reads the batch as more outer dimensions.
    """
    callback = functools.partial(_on_buffers, op, axis, reverse, method)
    return buffer_callback(callback, tuple(result_shapes), vmap_method="broadcast_all")(*arrays)
