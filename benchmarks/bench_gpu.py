"""GPU suites: the scans on every registered CUDA backend, timed with a synchronize after each call.

Nothing here touches CUDA at import: backends are listed from the registry by
name only, and ``setup`` is where the GPU is probed, the inputs are copied to
it and a warm-up call compiles the kernels. Without a GPU (or without CuPy /
numba-cuda) every case raises :class:`NotImplementedError` in ``setup``, which
asv reports as skipped. The GPU backends' issues add their own cases here.
"""

from __future__ import annotations

import logscan

from .common import AXIS, GPU_METHODS, SHAPE_IDS, SHAPES, backend_names, best_seconds, log_gates, require


def _device_family():
    """(to_device, synchronize, copy) of the GPU array family present: CuPy, else numba-cuda."""
    try:
        import cupy
    except ImportError:
        pass
    else:
        def copy(dst, src):
            cupy.copyto(dst, src)
        return cupy.asarray, lambda: cupy.cuda.get_current_stream().synchronize(), copy
    try:
        from numba import cuda
    except ImportError:
        raise NotImplementedError("neither cupy nor numba-cuda is installed") from None

    def copy(dst, src):
        dst.copy_to_device(src)
    return cuda.to_device, cuda.synchronize, copy


class GpuScan:
    """Forward and backward log-space scan, and linear scan, on the fixed shapes, float32 (synchronized)."""

    params = [backend_names("cuda"), list(GPU_METHODS), list(SHAPE_IDS)]
    param_names = ["backend", "method", "shape"]
    number = 1
    repeat = (3, 20, 10.0)
    rounds = 1
    warmup_time = 0.0
    timeout = 600

    def setup(self, backend, method, shape_id):
        require(backend, method, "cuda")  # probes the GPU: here, never at import
        to_device, self.sync, self.copy = _device_family()
        self.kwargs = dict(axis=AXIS, method=method, backend=backend)
        log_a, log_b = log_gates(SHAPES[shape_id])
        self.log_a, self.log_b = to_device(log_a), to_device(log_b)
        self.a, self.b = to_device(log_a), to_device(log_b)  # linear inputs: any values do for timing
        # warm-up: compiles every kernel the timed calls use
        self.log_h = logscan.scan(self.log_a, self.log_b, **self.kwargs)
        self.grad_log_h = to_device(log_b)
        self.grads = logscan.scan_backward(self.grad_log_h, self.log_a, self.log_b, self.log_h, **self.kwargs)
        self.h = logscan.linear_scan(self.a, self.b, **self.kwargs)
        self.sync()

    def time_forward(self, backend, method, shape_id):
        logscan.scan(self.log_a, self.log_b, out=self.log_h, **self.kwargs)
        self.sync()

    def time_backward(self, backend, method, shape_id):
        logscan.scan_backward(self.grad_log_h, self.log_a, self.log_b, self.log_h, **self.kwargs)
        self.sync()

    def time_linear_forward(self, backend, method, shape_id):
        logscan.linear_scan(self.a, self.b, out=self.h, **self.kwargs)
        self.sync()

    def _fraction(self, fn, arrays_moved):
        """Bytes per second of ``fn`` (moving ``arrays_moved`` arrays of the input's size) over a device copy's."""

        def timed():
            fn()
            self.sync()

        def copy():
            self.copy(self.a, self.log_a)
            self.sync()

        nbytes = self.log_a.nbytes
        return (arrays_moved * nbytes / best_seconds(timed)) / (2 * nbytes / best_seconds(copy))

    def track_forward_bandwidth(self, backend, method, shape_id):
        """Forward scan (reads log_a, log_b; writes log_h) bytes per second over a device copy's, same process."""
        return self._fraction(lambda: logscan.scan(self.log_a, self.log_b, out=self.log_h, **self.kwargs), 3)

    track_forward_bandwidth.unit = "fraction of device copy bandwidth"

    def track_backward_bandwidth(self, backend, method, shape_id):
        """Backward (reads grad_log_h, log_a, log_b, log_h; writes two gradients) over a device copy's."""
        return self._fraction(lambda: logscan.scan_backward(self.grad_log_h, self.log_a, self.log_b, self.log_h,
                                                            out=self.grads, **self.kwargs), 6)

    track_backward_bandwidth.unit = "fraction of device copy bandwidth"
