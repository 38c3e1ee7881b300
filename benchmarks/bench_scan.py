"""Time of the log-space scan, forward and backward, per CPU backend x method, on the fixed shapes and a T sweep."""

from __future__ import annotations

import logscan

from .common import (
    AXIS,
    SHAPE_IDS,
    SHAPES,
    SWEEP_T,
    Timing,
    backend_names,
    cpu_methods,
    log_gates,
    require,
    sweep_shape,
)


class _LogScanCase:
    """Inputs, output and upstream gradient of one shape, with a warm-up call (numba compiles here)."""

    def prepare(self, backend, method, shape):
        require(backend, method, "cpu")
        self.kwargs = dict(axis=AXIS, method=method, backend=backend)
        self.log_a, self.log_b = log_gates(shape)
        self.log_h = logscan.scan(self.log_a, self.log_b, **self.kwargs)
        self.grad_log_h = log_gates(shape, seed=1)[1]
        logscan.scan_backward(self.grad_log_h, self.log_a, self.log_b, self.log_h, **self.kwargs)

    def forward(self):
        logscan.scan(self.log_a, self.log_b, out=self.log_h, **self.kwargs)

    def backward(self):
        logscan.scan_backward(self.grad_log_h, self.log_a, self.log_b, self.log_h, **self.kwargs)


class LogScan(Timing, _LogScanCase):
    """``logscan.scan`` and ``logscan.scan_backward`` on (8, 2048, 512) and (1, 65536, 64), float32, axis 1."""

    params = [backend_names("cpu"), cpu_methods(), list(SHAPE_IDS)]
    param_names = ["backend", "method", "shape"]

    def setup(self, backend, method, shape_id):
        self.prepare(backend, method, SHAPES[shape_id])

    def time_forward(self, backend, method, shape_id):
        self.forward()

    def time_backward(self, backend, method, shape_id):
        self.backward()


class LogScanSweepT(Timing, _LogScanCase):
    """``logscan.scan`` forward and backward against T, channels fixed at ``SWEEP_CHANNELS``."""

    params = [backend_names("cpu"), cpu_methods(), list(SWEEP_T)]
    param_names = ["backend", "method", "T"]

    def setup(self, backend, method, T):
        self.prepare(backend, method, sweep_shape(T))

    def time_forward(self, backend, method, T):
        self.forward()

    def time_backward(self, backend, method, T):
        self.backward()
