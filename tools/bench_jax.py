"""Side-by-side, in one process: ``logscan.jax.scan`` against ``jax.lax.associative_scan`` (log-space combine with
``jnp.logaddexp``), forward and forward+backward, each under ``jax.jit`` on the CPU; the library itself on NumPy
arrays (``logscan.scan`` + ``logscan.scan_backward``), to show what the adapter adds; and ``logscan.jax.scan``
through its ``jax.pure_callback`` route (what a jitted call runs on a GPU, and on the CPU where jax has no
``buffer_callback``), to show what computing on XLA's buffers saves.

Reports the best wall time over interleaved rounds and the ratios, and the largest difference between the two
forward results.

    PYTHONPATH=. python tools/bench_jax.py --shape 8 2048 512
"""

from __future__ import annotations

import argparse
import sys
import time


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(8, 2048, 512), metavar=("B", "T", "D"),
                        help="scanned along T (axis 1)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=5)
    return parser.parse_args()


def timed_interleaved(fns, repeat):
    """Best time of each function over ``repeat`` rounds, the functions alternating within a round
    (so that load from other processes hits every side alike)."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main():
    args = parse()
    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    import logscan
    import logscan.jax
    from logscan.jax import _buffers

    axis = 1
    rng = np.random.default_rng(0)
    k = rng.standard_normal(args.shape).astype(args.dtype)
    log_a = -np.logaddexp(0.0, k).astype(args.dtype)  # minGRU-like gates
    log_b = (-np.logaddexp(0.0, -k) + 0.5 * rng.standard_normal(args.shape)).astype(args.dtype)
    upstream = rng.standard_normal(args.shape).astype(args.dtype)
    a, b, g = jnp.asarray(log_a), jnp.asarray(log_b), jnp.asarray(upstream)

    def combine(earlier, later):
        a1, b1 = earlier
        a2, b2 = later
        return a1 + a2, jnp.logaddexp(b1 + a2, b2)

    def associative(a, b):
        return jax.lax.associative_scan(combine, (a, b), axis=axis)[1]

    def ours(a, b):
        return logscan.jax.scan(a, b, axis=axis)

    def forward_backward(scan):
        return jax.jit(jax.value_and_grad(lambda a, b: jnp.sum(g * scan(a, b)), argnums=(0, 1)))

    def numpy_forward_backward():
        log_h = logscan.scan(log_a, log_b, axis=axis)
        logscan.scan_backward(upstream, log_a, log_b, log_h, axis=axis)

    def ours_via_callback(a, b):  # a function of its own: jax caches traces per function
        return logscan.jax.scan(a, b, axis=axis)

    jitted = {"logscan.jax.scan": jax.jit(ours), "associative_scan": jax.jit(associative)}
    both = {"logscan.jax.scan": forward_backward(ours), "associative_scan": forward_backward(associative)}
    if _buffers.AVAILABLE:  # the callback route: traced and compiled now, while the in-place route is off
        staged = sys.modules["logscan.jax.scans"]._staged
        _buffers.AVAILABLE = False
        staged.clear_cache()
        jitted["pure_callback route"] = jax.jit(ours_via_callback)
        both["pure_callback route"] = forward_backward(ours_via_callback)
        for f in (jitted["pure_callback route"], both["pure_callback route"]):
            jax.block_until_ready(f(a, b))
        _buffers.AVAILABLE = True
        staged.clear_cache()
    for name, f in both.items():  # each row runs the route it is named for
        if name != "associative_scan":
            in_place = _buffers.TARGET in f.lower(a, b).as_text()
            assert in_place == (name == "logscan.jax.scan" and _buffers.AVAILABLE), name
    fns = {("forward", name): (lambda f=f: jax.block_until_ready(f(a, b))) for name, f in jitted.items()}
    fns.update({("forward+backward", name): (lambda f=f: jax.block_until_ready(f(a, b))) for name, f in both.items()})
    fns[("forward", "logscan (NumPy)")] = lambda: logscan.scan(log_a, log_b, axis=axis)
    fns[("forward+backward", "logscan (NumPy)")] = numpy_forward_backward
    for fn in fns.values():
        fn()  # warm-up: compilation (XLA, numba) outside the measurements
    difference = float(jnp.max(jnp.abs(jitted["logscan.jax.scan"](a, b) - jitted["associative_scan"](a, b))))
    best = timed_interleaved(fns, args.repeat)

    route = "buffer_callback" if _buffers.AVAILABLE else "pure_callback"
    print(f"shape {tuple(args.shape)} {args.dtype}, axis {axis}, jax {jax.__version__} on {jax.devices()[0].platform}, "
          f"logscan.jax route: {route}, backends {logscan.available_backends()}")
    print(f"{'pass':18s} {'implementation':20s} {'best ms':>9s} {'associative_scan / this':>24s}")
    for (kind, name), seconds in sorted(best.items(), key=lambda item: item[0][0] != "forward"):
        ratio = best[(kind, "associative_scan")] / seconds
        print(f"{kind:18s} {name:20s} {1e3 * seconds:9.1f} {ratio:23.2f}x")
    print(f"max |log h (logscan.jax) - log h (associative_scan)| = {difference:.3g}")


if __name__ == "__main__":
    main()
