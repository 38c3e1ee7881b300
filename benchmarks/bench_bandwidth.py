"""Achieved memory bandwidth of the scans as a fraction of ``np.copyto`` in the same process (asv ``track_``).

A scan that reads ``log_a`` and ``log_b`` and writes ``log_h`` moves
``3 * N * itemsize`` bytes; the backward moves ``6 * N * itemsize`` (reads
``grad_log_h, log_a, log_b, log_h``, writes two gradients). Its bandwidth,
bytes over the best time of a call, is divided by the bandwidth of
``np.copyto`` of an ``N``-element array (``2 * N * itemsize`` bytes) measured
right after in the same process. 1.0 means "as fast as a copy of the same
bytes"; the ratio cancels most of the machine, so it compares across machines.
"""

from __future__ import annotations

import numpy as np

import logscan

from .common import (
    AXIS,
    SHAPE_IDS,
    SHAPES,
    backend_names,
    best_seconds,
    copy_bandwidth,
    cpu_methods,
    linear_inputs,
    log_gates,
    require,
)


class Bandwidth:
    """Fraction of copy bandwidth, forward and backward, on the fixed shapes, float32."""

    params = [backend_names("cpu"), cpu_methods(), list(SHAPE_IDS)]
    param_names = ["backend", "method", "shape"]
    unit = "fraction of np.copyto bandwidth"
    timeout = 600

    def setup(self, backend, method, shape_id):
        require(backend, method, "cpu")
        shape = SHAPES[shape_id]
        self.kwargs = dict(axis=AXIS, method=method, backend=backend)
        self.log_a, self.log_b = log_gates(shape)
        self.log_h = logscan.scan(self.log_a, self.log_b, **self.kwargs)  # warm-up (numba compiles here)
        self.a, self.b = linear_inputs(shape)
        self.h = logscan.linear_scan(self.a, self.b, **self.kwargs)
        self.nbytes = self.log_a.nbytes

    def _fraction(self, fn, bytes_moved):
        fn()  # warm-up
        achieved = bytes_moved / best_seconds(fn)
        return achieved / copy_bandwidth(self.nbytes, self.log_a.itemsize)

    def track_scan(self, backend, method, shape_id):
        return self._fraction(lambda: logscan.scan(self.log_a, self.log_b, out=self.log_h, **self.kwargs),
                              3 * self.nbytes)

    def track_scan_backward(self, backend, method, shape_id):
        grad = np.ones_like(self.log_h)
        return self._fraction(lambda: logscan.scan_backward(grad, self.log_a, self.log_b, self.log_h, **self.kwargs),
                              6 * self.nbytes)

    def track_linear_scan(self, backend, method, shape_id):
        return self._fraction(lambda: logscan.linear_scan(self.a, self.b, out=self.h, **self.kwargs),
                              3 * self.nbytes)
