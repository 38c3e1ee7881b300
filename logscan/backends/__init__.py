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
of one float dtype (float32 or float64; the core handles float16), and may
have any strides, including 0 (broadcast inputs) and negative (reverse).
``out`` may be the very same view as ``log_b`` (or ``b``): backends read
element ``t`` of the inputs before they write element ``t`` of ``out``.
"""

from logscan.registry import BackendSpec, register

register(BackendSpec("numpy", "logscan.backends.numpy_backend", device="cpu", priority=0))
register(BackendSpec("numba", "logscan.backends.numba_cpu", device="cpu", priority=10,
                     requires=("numba",), extra="numba"))


def _cuda_device_present() -> bool:
    """True when CuPy sees at least one CUDA device (imports CuPy; called only on request)."""
    try:
        import cupy  # noqa: PLC0415  (optional and heavy: only when asked)

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver, no device, broken install: not usable here
        return False


register(BackendSpec("cupy", "logscan.backends.cupy_backend", device="cuda", priority=20,
                     requires=("cupy",), extra="cuda13", probe=_cuda_device_present))
