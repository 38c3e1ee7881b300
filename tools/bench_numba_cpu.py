"""Time the numba CPU backend against a NumPy loop over T and against np.copyto bandwidth.

Usage::

    PYTHONPATH=. python tools/bench_numba_cpu.py [--repeat 5] [--methods sequential,chunked,...]
                                                  [--shapes 8x2048x512,1x65536x64] [--dtype float32]

For every shape ``(B, T, D)`` (scan along axis 1) it prints, per method, the
best of ``--repeat`` runs of the forward and the fused backward, then

- ``x loop``: how many times faster than the NumPy loop over T
  (forward: ``h = np.logaddexp(log_a[:, t] + h, log_b[:, t])``; backward:
  that forward loop plus the reverse loop computing the weights and both
  gradients, as a NumPy user without logscan would run them);
- ``% copy``: achieved bytes/second (forward moves 3 arrays, backward 6)
  as a fraction of that of ``np.copyto(dst, src)`` on three arrays' worth
  (6 arrays moved), measured in the same process.

All timings are taken side by side in one process, round-robin (each round
calls every candidate once, copy included; the best round of each counts),
so that a burst of load from other processes hits all candidates alike; on
a shared machine take the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse

import numpy as np

from logscan.bench import CPU_TIMER, timed_rounds


def best_times(candidates, repeat):
    """{name: best seconds} over ``repeat`` round-robin rounds (after one warm-up call each)."""
    for fn in candidates.values():
        fn()
    return dict(zip(candidates, timed_rounds([(CPU_TIMER, fn) for fn in candidates.values()], repeat),
                    strict=True))


def best_time(fn, repeat):
    return best_times({"": fn}, repeat)[""]


def numpy_forward_loop(log_a, log_b, out):
    h = np.full(log_a[:, 0].shape, -np.inf, log_a.dtype)
    for t in range(log_a.shape[1]):
        h = np.logaddexp(log_a[:, t] + h, log_b[:, t])
        out[:, t] = h


def numpy_backward_loop(grad, log_a, log_b, log_h, grad_a, grad_b):
    carry = np.zeros(log_a[:, 0].shape, log_a.dtype)
    empty = np.full_like(carry, -np.inf)
    with np.errstate(invalid="ignore", over="ignore"):
        for t in range(log_a.shape[1] - 1, -1, -1):
            prev = log_h[:, t - 1] if t else empty
            u = grad[:, t] + carry
            w = np.exp(log_a[:, t] + prev - log_h[:, t])
            v = np.exp(log_b[:, t] - log_h[:, t])
            grad_a[:, t] = carry = u * w
            grad_b[:, t] = u * v


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--methods", default="sequential,chunked,hillis_steele,blelloch")
    parser.add_argument("--shapes", default="8x2048x512,1x65536x64")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--no-loop", action="store_true", help="skip the (slow) NumPy loops")
    args = parser.parse_args()

    import numba

    from logscan.backends import numba_cpu

    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    print(f"numba {numba.__version__}, {numba.config.NUMBA_NUM_THREADS} threads, dtype {dtype}, "
          f"best of {args.repeat}")
    for text in args.shapes.split(","):
        B, T, D = (int(v) for v in text.split("x"))
        shape = (B, T, D)
        log_a = -np.logaddexp(0, -rng.normal(size=shape)).astype(dtype)  # log sigmoid
        log_b = rng.normal(size=shape).astype(dtype)
        grad = rng.normal(size=shape).astype(dtype)
        out, log_h, grad_a, grad_b = (np.empty(shape, dtype) for _ in range(4))
        # the copy moves as many bytes as the backward (3 arrays in, 3 out): a copy of one array can be
        # partly served by the last-level cache, which a scan moving 3 or 6 arrays cannot
        src, dst = np.ones(3 * log_a.size, dtype), np.empty(3 * log_a.size, dtype)
        nbytes = log_a.nbytes

        methods = args.methods.split(",")
        candidates = {"copy": lambda: np.copyto(dst, src)}
        for method in methods:
            ws_f = np.empty(numba_cpu.workspace_size("log_scan", dtype, B, T, D, method) or 1, np.uint8)
            ws_b = np.empty(numba_cpu.workspace_size("log_scan_backward", dtype, B, T, D, method) or 1, np.uint8)
            numba_cpu.log_scan(log_a, log_b, None, log_h, method, ws_f)
            candidates[method, "fwd"] = (lambda m=method, w=ws_f: numba_cpu.log_scan(log_a, log_b, None, out, m, w))
            candidates[method, "bwd"] = (lambda m=method, w=ws_b: numba_cpu.log_scan_backward(
                grad, log_a, log_b, log_h, None, grad_a, grad_b, None, m, w))
        best = best_times(candidates, args.repeat)
        t_copy = best["copy"]
        copy_bw = 2 * src.nbytes / t_copy
        print(f"\nshape (B, T, D) = {shape}, axis=1: np.copyto {t_copy * 1e3:.2f} ms = {copy_bw / 1e9:.1f} GB/s")
        if not args.no_loop:
            t_loop_f = best_time(lambda: numpy_forward_loop(log_a, log_b, out), min(args.repeat, 2))
            t_loop_b = best_time(lambda: numpy_backward_loop(grad, log_a, log_b, out, grad_a, grad_b),
                                 min(args.repeat, 2))
            print(f"NumPy loop: forward {t_loop_f * 1e3:.1f} ms, reverse {t_loop_b * 1e3:.1f} ms")
        else:
            t_loop_f = t_loop_b = np.nan
        print(f"{'method':>14} {'fwd ms':>9} {'x loop':>7} {'% copy':>7} | {'bwd ms':>9} {'x loop':>7} {'% copy':>7}")
        for method in methods:
            t_f, t_b = best[method, "fwd"], best[method, "bwd"]
            print(f"{method:>14} {t_f * 1e3:9.2f} {t_loop_f / t_f:7.1f} {100 * 3 * nbytes / t_f / copy_bw:6.0f}% | "
                  f"{t_b * 1e3:9.2f} {(t_loop_f + t_loop_b) / t_b:7.1f} {100 * 6 * nbytes / t_b / copy_bw:6.0f}%")
        print(f"auto picks: {numba_cpu.choose_method('log_scan', dtype, B, T, D)}")


if __name__ == "__main__":
    main()
