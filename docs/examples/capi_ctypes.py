"""Call logscan's C-style core with buffers that are not NumPy arrays (ctypes memory).

The data lies time-major, as ``(T, channels)`` in C order, and is scanned
along time: outer = 1, inner = channels, and the time stride is ``channels``.
"""

import ctypes
import math

from logscan import capi

T, channels = 5, 3
n = T * channels
# h_t = 0.5 h_{t-1} + 1 in every channel, in log space
log_a = (ctypes.c_float * n)(*([math.log(0.5)] * n))
log_b = (ctypes.c_float * n)(*([0.0] * n))
out = (ctypes.c_float * n)()
strides = (0, channels, 1)  # element strides of (outer, T, inner); outer has size 1
sizes = dict(outer=1, T=T, inner=channels, dtype="float32", method="sequential", backend="numpy")

# Phase 1: ask how much scratch memory the call needs; phase 2: run it.
nbytes = capi.workspace_size("log_scan", **sizes)
workspace = ctypes.create_string_buffer(max(nbytes, 1))
capi.log_scan(**sizes,
              log_a=ctypes.addressof(log_a), log_a_strides=strides,
              log_b=ctypes.addressof(log_b), log_b_strides=strides,
              out=ctypes.addressof(out), out_strides=strides,
              workspace=ctypes.addressof(workspace), workspace_bytes=nbytes)

h = [round(math.exp(out[t * channels]), 4) for t in range(T)]
print(h)  # [1.0, 1.5, 1.75, 1.875, 1.9375]
assert h == [1.0, 1.5, 1.75, 1.875, 1.9375]
