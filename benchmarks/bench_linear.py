"""Time of the linear-space scan, forward and backward, per CPU backend x method."""

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
    require,
    sweep_shape,
)


class _LinearScanCase:
    def prepare(self, backend, method, shape):
        require(backend, method, "cpu")
        self.kwargs = dict(axis=AXIS, method=method, backend=backend)
        self.a, self.b = linear_inputs(shape)
        self.h = logscan.linear_scan(self.a, self.b, **self.kwargs)
        self.grad_h = linear_inputs(shape, seed=2)[1]
        logscan.linear_scan_backward(self.grad_h, self.a, self.b, self.h, **self.kwargs)

    def forward(self):
        logscan.linear_scan(self.a, self.b, out=self.h, **self.kwargs)

    def backward(self):
        logscan.linear_scan_backward(self.grad_h, self.a, self.b, self.h, **self.kwargs)


class LinearScan(Timing, _LinearScanCase):
    """``logscan.linear_scan`` and its backward on the fixed shapes, float32, axis 1."""

    params = [backend_names("cpu"), cpu_methods(), list(SHAPE_IDS)]
    param_names = ["backend", "method", "shape"]

    def setup(self, backend, method, shape_id):
        self.prepare(backend, method, SHAPES[shape_id])

    def time_forward(self, backend, method, shape_id):
        self.forward()

    def time_backward(self, backend, method, shape_id):
        self.backward()


class LinearScanSweepT(Timing, _LinearScanCase):
    """``logscan.linear_scan`` forward against T, channels fixed."""

    params = [backend_names("cpu"), cpu_methods(), list(SWEEP_T)]
    param_names = ["backend", "method", "T"]

    def setup(self, backend, method, T):
        self.prepare(backend, method, sweep_shape(T))

    def time_forward(self, backend, method, T):
        self.forward()
