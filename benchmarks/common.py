"""Shapes, inputs and backend discovery shared by every suite: the one place to change them.

Set ``LOGSCAN_ASV_QUICK=1`` in the environment to shrink every shape to a
few hundred elements (CI's smoke run: the suites run end to end in seconds,
the numbers mean nothing).

Backends and methods come from :mod:`logscan.registry` when asv imports the
suites: every registered backend of a device is a parameter, so the grid is
the same on every machine, and ``setup`` raises :class:`NotImplementedError`
(asv's "skip") for a backend that cannot run here or a method it lacks.
Nothing here initializes CUDA: GPU backends are neither loaded nor probed
before ``setup``.
"""

from __future__ import annotations

import os
import timeit

import numpy as np

QUICK = os.environ.get("LOGSCAN_ASV_QUICK", "") not in ("", "0")

# ------------------------------------------------------------------ shapes: (B, T, D), time on axis 1
if QUICK:
    SHAPES = {"B8-T2048-D512": (2, 64, 8), "B1-T65536-D64": (1, 256, 4)}
    SWEEP_T = (16, 64)
    SWEEP_CHANNELS = (1, 8)  # (B, D) held fixed while T varies
else:
    SHAPES = {"B8-T2048-D512": (8, 2048, 512), "B1-T65536-D64": (1, 65536, 64)}
    SWEEP_T = (256, 1024, 4096, 16384)
    SWEEP_CHANNELS = (1, 512)
# The ids stay the full-size names in quick mode so that the benchmark grid never changes.
SHAPE_IDS = tuple(SHAPES)
DTYPE = "float32"
AXIS = 1

# Methods every backend has (DESIGN section 3); "auto" is what users call.
BASE_METHODS = ("auto", "sequential", "hillis_steele", "blelloch")
# GPU backends are not imported before setup (no CUDA at import): these are the
# methods their suites try; a method a backend lacks is skipped in setup.
GPU_METHODS = BASE_METHODS + ("chunked", "lookback")


class Timing:
    """asv timing attributes of the CPU suites: calls take 0.01-2 s, so one call per sample, few samples.

    Each suite warms up in ``setup`` (numba compiles there), so asv's own warm-up is off.
    """

    number = 1
    repeat = (1, 5, 10.0)
    rounds = 1
    warmup_time = 0.0
    timeout = 600


# ------------------------------------------------------------------ backends and methods
def _registry():
    import logscan  # noqa: F401  (registers the built-in backends)
    from logscan import registry

    return registry


def backend_names(device):
    """Every registered backend of ``device`` (available here or not), registry order."""
    registry = _registry()
    names = [n for n in registry.names() if registry.spec(n).device == device]
    return names or ["none-registered"]


def cpu_methods():
    """Methods of the CPU backends that load here, base methods first."""
    registry = _registry()
    methods = list(BASE_METHODS)
    for name in backend_names("cpu"):
        try:
            found = registry.load(name).methods if registry.spec(name).is_available() else ()
        except Exception:  # a backend that cannot load here is skipped in setup
            found = ()
        methods += [m for m in found if m not in methods]
    return methods


def require(backend, method, device="cpu"):
    """Load ``backend`` or skip the benchmark (NotImplementedError), and check it has ``method``."""
    registry = _registry()
    if backend not in registry.names():
        raise NotImplementedError(f"backend {backend!r} is not registered")
    spec = registry.spec(backend)
    if not spec.is_available():  # for GPU backends this probes the device: only ever called in setup
        raise NotImplementedError(f"backend {backend!r} is not available here")
    try:
        module = registry.load(backend)
    except Exception as exc:
        raise NotImplementedError(f"backend {backend!r} does not load: {exc}") from None
    if method != "auto" and method not in module.methods:
        raise NotImplementedError(f"backend {backend!r} has no method {method!r}")
    return module


# ------------------------------------------------------------------ inputs
def log_gates(shape, dtype=DTYPE, seed=0):
    """minGRU-like inputs: ``log_a = log sigmoid(-k)``, ``log_b = log sigmoid(k) + noise`` (deterministic)."""
    rng = np.random.default_rng(seed)
    k = rng.standard_normal(shape, dtype=np.float32)
    log_a = -np.logaddexp(0.0, k)
    log_b = -np.logaddexp(0.0, -k) + np.float32(0.5) * rng.standard_normal(shape, dtype=np.float32)
    return log_a.astype(dtype), log_b.astype(dtype)


def linear_inputs(shape, dtype=DTYPE, seed=0):
    """``a`` in (0, 1), ``b`` standard normal."""
    log_a, _ = log_gates(shape, dtype, seed)
    b = np.random.default_rng(seed + 1).standard_normal(shape, dtype=np.float32).astype(dtype)
    return np.exp(log_a), b


def sweep_shape(T):
    B, D = SWEEP_CHANNELS
    return (B, T, D)


# ------------------------------------------------------------------ bandwidth
def best_seconds(fn, min_time=0.2, max_calls=20):
    """The fastest of several calls of ``fn`` (at least 2 calls, until ``min_time`` is spent)."""
    best, spent, calls = np.inf, 0.0, 0
    while calls < 2 or (spent < min_time and calls < max_calls):
        t = timeit.default_timer()
        fn()
        elapsed = timeit.default_timer() - t
        best, spent, calls = min(best, elapsed), spent + elapsed, calls + 1
    return best


def copy_bandwidth(nbytes, itemsize=4):
    """Bytes per second of ``np.copyto`` reading and writing ``nbytes`` each (so moving 2 * nbytes)."""
    src = np.ones(max(nbytes // itemsize, 1), dtype=f"f{itemsize}")
    dst = np.empty_like(src)
    return 2 * src.nbytes / best_seconds(lambda: np.copyto(dst, src))
