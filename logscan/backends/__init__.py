"""Backends: each one computes the scans on canonical ``(outer, T, inner)`` views.

A backend is a small object registered in :mod:`logscan.registry`. It knows
nothing about validation or about n-d arrays: the C-style core
(:mod:`logscan.capi`) hands it already-checked 3-D strided views, always
scanning *forward* along axis 1 (the core turns ``reverse=True`` into a view
with a negative time stride), and buffers it may write.

The functions every backend exposes (see :class:`logscan.registry.Backend`):

``log_scan(log_a, log_b, log_h0, out, method, workspace)``
    ``out[o, t, i] = logaddexp(log_a[o, t, i] + out[o, t-1, i], log_b[o, t, i])``
    with ``out[o, -1, i] = log_h0[o, i]`` (``-inf`` when ``log_h0`` is None).
``log_scan_backward(grad_log_h, log_a, log_b, log_h, log_h0, grad_log_a, grad_log_b, grad_log_h0, method, workspace)``
    The stable backward of DESIGN section 3; ``grad_log_h0`` is None when
    ``log_h0`` is None.
``linear_scan(a, b, h0, out, method, workspace)``
    ``out[o, t, i] = a[o, t, i] * out[o, t-1, i] + b[o, t, i]``, ``h[-1] = h0`` (0 when None).
``linear_scan_backward(grad_h, a, b, h, h0, grad_a, grad_b, grad_h0, method, workspace)``
``workspace_size(op, dtype, outer, T, inner, method)``
    Bytes of scratch the call needs; ``workspace`` is then a uint8 array of
    at least that many bytes (or None when the size is 0).

All arrays are of the backend's own array family (NumPy for CPU backends),
of one float dtype (float32 or float64; the core handles the half-precision
float16 and bfloat16 through float32 copies, except for the methods a
backend lists in an optional ``half_methods`` tuple, whose kernels take such
views directly and compute in float32, with a workspace sized for float32),
and may have any strides, including 0 (broadcast inputs) and negative
(reverse).
``out`` may be the very same view as ``log_b`` (or ``b``): backends read
element ``t`` of the inputs before they write element ``t`` of ``out``.

Device backends (``device="cuda"``) work the same way on device memory:

``as_array(ptr, shape, strides, dtype, writable)``
    A view of the memory at ``ptr`` (strides in elements, None for C order)
    that supports what the core does with views: basic slicing (``[:, ::-1, :]``),
    ``view[...] = other_view`` (a strided copy that may cast dtype, used for
    half-precision staging) and ``view[...] = scalar``.
``on_stream(handle)``
    A context manager: every kernel launch and copy made inside it, by the
    op functions or by the views, is enqueued on the CUDA stream ``handle``
    (an int; None means the default stream). :mod:`logscan.capi` runs each
    call inside ``with module.on_stream(stream):``, so the op functions keep
    the signatures above and CPU backends never see a stream; a non-None
    ``stream`` with a backend that has no ``on_stream`` is an error.
"""

import ctypes
import functools
import os

from logscan.registry import BackendSpec, register


@functools.lru_cache(maxsize=1)
def _cuda_device_present():
    """True when the CUDA driver loads and sees at least one device.

    Asks the driver library directly through ctypes, so answering imports no
    GPU package (``available_backends()`` must stay cheap).
    """
    try:
        driver = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        return driver.cuInit(0) == 0 and driver.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
    except OSError:  # no driver library: no GPU here
        return False


def _cuda_probe():
    """True when a CUDA GPU can run Numba kernels, or when Numba's CUDA simulator is on."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return True
    return _cuda_device_present()


register(BackendSpec("numpy", "logscan.backends.numpy_backend", device="cpu", priority=0))
register(BackendSpec("numba", "logscan.backends.numba_cpu", device="cpu", priority=10,
                     requires=("numba",), extra="numba"))
register(BackendSpec("numba_cuda", "logscan.backends.numba_cuda", device="cuda", priority=10,
                     requires=("numba", "numba_cuda"), extra="cuda13", probe=_cuda_probe))
register(BackendSpec("cupy", "logscan.backends.cupy_backend", device="cuda", priority=20,
                     requires=("cupy",), extra="cuda13", probe=_cuda_device_present))
