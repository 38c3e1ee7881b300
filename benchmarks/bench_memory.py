"""Peak resident memory of a process that runs one scan (asv ``peakmem_``), per CPU backend x method.

The peak is the whole process's: the interpreter, the imports, the inputs
(two float32 arrays of the shape) and the output are in every row, so
differences between rows are the temporaries and workspace of a method.
"""

from __future__ import annotations

import logscan

from .common import AXIS, SHAPE_IDS, SHAPES, backend_names, cpu_methods, linear_inputs, log_gates, require


class Memory:
    """Peak memory of the forward and backward scans on the fixed shapes."""

    params = [backend_names("cpu"), cpu_methods(), list(SHAPE_IDS)]
    param_names = ["backend", "method", "shape"]
    timeout = 600

    def setup(self, backend, method, shape_id):
        require(backend, method, "cpu")
        shape = SHAPES[shape_id]
        self.kwargs = dict(axis=AXIS, method=method, backend=backend)
        self.log_a, self.log_b = log_gates(shape)
        self.a, self.b = linear_inputs(shape)

    def peakmem_scan(self, backend, method, shape_id):
        logscan.scan(self.log_a, self.log_b, **self.kwargs)

    def peakmem_scan_backward(self, backend, method, shape_id):
        log_h = logscan.scan(self.log_a, self.log_b, **self.kwargs)
        logscan.scan_backward(log_h, self.log_a, self.log_b, log_h, **self.kwargs)

    def peakmem_linear_scan(self, backend, method, shape_id):
        logscan.linear_scan(self.a, self.b, **self.kwargs)
