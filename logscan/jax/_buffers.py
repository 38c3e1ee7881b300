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

import ctypes
import functools
import mmap
import sys
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


# Huge pages under large output buffers, as NumPy asks for its own arrays of 4 MiB or more (Linux, where
# transparent huge pages are on "madvise"): XLA's fresh buffers otherwise fault in 4 KiB at a time, which
# took longer than the scan itself at (8, 2048, 512) float32 on our 2-core VMs.
_MADV_HUGEPAGE, _HUGE_PAGES_FROM = 14, 1 << 22
_madvise = None
if sys.platform.startswith("linux"):
    try:
        _madvise = ctypes.CDLL(None, use_errno=True).madvise
        _madvise.argtypes, _madvise.restype = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int), ctypes.c_int
    except (OSError, AttributeError):
        _madvise = None


def _advise_huge_pages(array):
    """A hint to the kernel, nothing more: a failure leaves the buffer as it was."""
    if _madvise is None or array.nbytes < _HUGE_PAGES_FROM:
        return
    address = array.__array_interface__["data"][0]
    start = address - address % mmap.PAGESIZE
    _madvise(start, address + array.nbytes - start, _MADV_HUGEPAGE)


def _on_buffers(op, axis, reverse, method, context, outputs, *inputs):
    outputs = [np.asarray(x) for x in outputs]
    for array in outputs:
        _advise_huge_pages(array)
    _host.run(op, [np.asarray(x) for x in inputs], axis=axis, reverse=reverse, method=method, out=outputs)


def call(op, arrays, result_shapes, *, axis, reverse, method):
    """Stage ``op`` of the library on ``arrays`` as an XLA custom call on the CPU; a tuple of the results.

    Under :func:`jax.vmap` every input gets the batch as a leading dimension
    (``broadcast_all``): ``axis`` counts from the end, so it still names the
    time axis, and the library reads the batch as more outer dimensions.
    """
    callback = functools.partial(_on_buffers, op, axis, reverse, method)
    return buffer_callback(callback, tuple(result_shapes), vmap_method="broadcast_all")(*arrays)
