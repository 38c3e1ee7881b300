"""Measure the CuPy backend's kernels against a device copy, on a GPU.

Run from a checkout on a GPU machine::

    PYTHONPATH=. python -m logscan.backends.cupy_backend._measure            # the issue's target shapes
    PYTHONPATH=. python -m logscan.backends.cupy_backend._measure 8 4096 256 # one shape (outer T inner)

For each method it prints the median time of the forward and backward log
scans in float32 and the achieved bandwidth as a fraction of a device copy
measured in the same process (bytes moved: forward reads log_a, log_b and
writes log_h; backward reads grad, log_a, log_b, log_h and writes two
gradients), next to ``cupy.cumsum`` over the same array. These are the
numbers that the ``auto`` rule and the launch constants must be tuned from.
"""

from __future__ import annotations

import sys

import numpy as np

from logscan.backends import cupy_backend as backend

TARGET_SHAPES = ((16, 4096, 1024), (64, 2048, 512), (1, 1 << 20, 64))


def _median_ms(run, repeat=10):
    import cupy  # noqa: PLC0415  (GPU only)

    run()
    cupy.cuda.runtime.deviceSynchronize()
    times = []
    for _ in range(repeat):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        run()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop))
    return float(np.median(times))


def measure(outer, T, inner, methods=backend.methods):
    import cupy  # noqa: PLC0415  (GPU only)

    rng = cupy.random.default_rng(0)
    log_a = -cupy.abs(rng.standard_normal((outer, T, inner), dtype=cupy.float32)) * 0.1
    log_b = rng.standard_normal((outer, T, inner), dtype=cupy.float32)
    grad = rng.standard_normal((outer, T, inner), dtype=cupy.float32)
    out, grad_a, grad_b = cupy.empty_like(log_b), cupy.empty_like(log_b), cupy.empty_like(log_b)
    nbytes = log_b.nbytes
    copy_ms = _median_ms(lambda: cupy.copyto(out, log_b))
    copy_bandwidth = 2 * nbytes / copy_ms
    cumsum_ms = _median_ms(lambda: cupy.cumsum(log_b, axis=1, out=out))
    print(f"shape {(outer, T, inner)} float32: copy {copy_ms:.3f} ms ({copy_bandwidth / 1e6:.0f} GB/s), "
          f"cupy.cumsum {cumsum_ms:.3f} ms ({2 * nbytes / cumsum_ms / copy_bandwidth:.0%} of copy)")
    for method in methods:
        size = max(backend.workspace_size(op, np.float32, outer, T, inner, method)
                   for op in ("log_scan", "log_scan_backward"))
        work = cupy.empty(max(size, 1), cupy.uint8)
        try:
            forward_ms = _median_ms(lambda m=method, w=work: backend.log_scan(log_a, log_b, None, out, m, w))
            backward_ms = _median_ms(lambda m=method, w=work: backend.log_scan_backward(
                grad, log_a, log_b, out, None, grad_a, grad_b, None, m, w))
        except Exception as error:  # report and go on with the other methods
            print(f"  {method:14s} failed: {type(error).__name__}: {error}")
            continue
        print(f"  {method:14s} forward {forward_ms:8.3f} ms ({3 * nbytes / forward_ms / copy_bandwidth:5.0%} of copy)"
              f"   backward {backward_ms:8.3f} ms ({6 * nbytes / backward_ms / copy_bandwidth:5.0%} of copy)")
    auto = [backend.choose_method(op, np.float32, outer, T, inner) for op in ("log_scan", "log_scan_backward")]
    print(f"  auto picks {auto[0]} forward, {auto[1]} backward")


def main(argv):
    shapes = [tuple(int(x) for x in argv[:3])] if len(argv) >= 3 else TARGET_SHAPES
    for shape in shapes:
        measure(*shape)


if __name__ == "__main__":
    main(sys.argv[1:])
