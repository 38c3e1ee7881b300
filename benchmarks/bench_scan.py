"""Time of the log-space and the linear-space scan, forward and backward, per CPU backend x method,
on the fixed shapes and a T sweep."""

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
    linear_inputs,
    log_gates,
    require,
    sweep_shape,
)


class _ScanCase:
    """Inputs, output and upstream gradient of one shape, with a warm-up call (numba compiles here).

    Subclasses name the operation pair (``scan``/``scan_backward`` or their linear twins) and the inputs.
    """

    scan = staticmethod(logscan.scan)
    scan_backward = staticmethod(logscan.scan_backward)
    inputs = staticmethod(log_gates)

    def prepare(self, backend, method, shape):
        require(backend, method, "cpu")
        self.kwargs = dict(axis=AXIS, method=method, backend=backend)
        self.a, self.b = self.inputs(shape)
        self.h = self.scan(self.a, self.b, **self.kwargs)
        self.grad = self.inputs(shape, seed=1)[1]
        self.backward()

    def forward(self):
        self.scan(self.a, self.b, out=self.h, **self.kwargs)

    def backward(self):
        self.scan_backward(self.grad, self.a, self.b, self.h, **self.kwargs)


class _LinearCase(_ScanCase):
    scan = staticmethod(logscan.linear_scan)
    scan_backward = staticmethod(logscan.linear_scan_backward)
    inputs = staticmethod(linear_inputs)


class _FixedShapes(Timing):
    params = [backend_names("cpu"), cpu_methods(), list(SHAPE_IDS)]
    param_names = ["backend", "method", "shape"]

    def setup(self, backend, method, shape_id):
        self.prepare(backend, method, SHAPES[shape_id])

    def time_forward(self, backend, method, shape_id):
        self.forward()

    def time_backward(self, backend, method, shape_id):
        self.backward()


class _SweepT(Timing):
    params = [backend_names("cpu"), cpu_methods(), list(SWEEP_T)]
    param_names = ["backend", "method", "T"]

    def setup(self, backend, method, T):
        self.prepare(backend, method, sweep_shape(T))

    def time_forward(self, backend, method, T):
        self.forward()

    def time_backward(self, backend, method, T):
        self.backward()


class LogScan(_FixedShapes, _ScanCase):
    """``logscan.scan`` and ``logscan.scan_backward`` on (8, 2048, 512) and (1, 65536, 64), float32, axis 1."""


class LogScanSweepT(_SweepT, _ScanCase):
    """``logscan.scan`` forward and backward against T, channels fixed at ``SWEEP_CHANNELS``."""


class LinearScan(_FixedShapes, _LinearCase):
    """``logscan.linear_scan`` and its backward on the fixed shapes, float32, axis 1."""


class LinearScanSweepT(_SweepT, _LinearCase):
    """``logscan.linear_scan`` forward and backward against T, channels fixed."""


class CallOverhead:
    """Time of one call on a tiny problem (1, 4, 16): what the front door and dispatch cost around the kernels.

    asv's default timing (many calls per sample): a call takes tens of microseconds.
    """

    params = [backend_names("cpu")]
    param_names = ["backend"]
    shape = (1, 4, 16)

    def setup(self, backend):
        require(backend, "auto", "cpu")
        self.kwargs = dict(axis=AXIS, backend=backend)
        self.a, self.b = log_gates(self.shape)
        self.h = logscan.scan(self.a, self.b, **self.kwargs)
        self.grad = log_gates(self.shape, seed=1)[1]
        self.time_scan_backward(backend)  # warm-up: numba compiles here

    def time_scan(self, backend):
        logscan.scan(self.a, self.b, out=self.h, **self.kwargs)

    def time_scan_backward(self, backend):
        logscan.scan_backward(self.grad, self.a, self.b, self.h, **self.kwargs)
