"""Kernel registry of the numba_cuda backend: launch settings, compiled-kernel cache, PTX cases.

Every kernel is a factory returning a plain Python function specialized to a
:class:`~._spaces.Space` (algebra x dtype) and its compile-time sizes. The
backend jits and caches it on first use; :func:`ptx_cases` hands the same
functions with explicit signatures to ``numba.cuda.compile_ptx`` in CI, which
type-checks them (the warp-shuffle code included) on machines with no GPU.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numba import config as numba_config
from numba import cuda, types

from . import _elementwise, _multiblock, blelloch, chunked, chunked_backward, hillis_steele, lookback, sequential
from ._spaces import Space

SIMULATOR = bool(numba_config.ENABLE_CUDASIM)


@dataclass
class LaunchConfig:
    """Compile-time sizes. Tests shrink them to run multi-block cases on tiny shapes under the simulator."""

    threads: int = 256  # sequential and elementwise kernels: threads per block (sequential: at most)
    unroll_float32: int = 16  # sequential: time steps loaded ahead per thread (2 inputs each)
    unroll_float64: int = 8
    tree_block: int = 256  # Hillis-Steele / Blelloch: elements (threads) per tile, a power of two
    chunk_threads: int = 256  # chunked: threads per block (lanes x rows), a power of two
    chunk_float32: int = 8  # chunked: steps per thread, kept in registers
    chunk_float64: int = 4
    shuffle: bool = not SIMULATOR  # chunked: warp-shuffle block scan where the layout allows

    def unroll(self, dtype):
        return self.unroll_float32 if np.dtype(dtype) == np.float32 else self.unroll_float64

    def chunk(self, dtype):
        return self.chunk_float32 if np.dtype(dtype) == np.float32 else self.chunk_float64

    def chunk_layout(self, inner, dtype):
        """(lanes, rows, chunk, shuffle) of the chunked kernels for this ``inner``."""
        lanes = 1
        while lanes < min(inner, 32, self.chunk_threads):
            lanes *= 2
        rows = self.chunk_threads // lanes
        shuffle = self.shuffle and lanes == 1 and rows % 32 == 0
        return lanes, rows, self.chunk(dtype), shuffle


def simulator_config():
    """Small sizes for Numba's CUDA simulator (about 50 ms per block): tiny shapes still cross blocks."""
    return LaunchConfig(threads=32, unroll_float32=4, unroll_float64=4, tree_block=32, chunk_threads=8,
                        chunk_float32=16, chunk_float64=16, shuffle=False)


CONFIG = simulator_config() if SIMULATOR else LaunchConfig()

_FACTORIES = {
    "sequential_forward": sequential.make_forward,
    "sequential_log_backward": sequential.make_log_backward,
    "sequential_linear_backward": sequential.make_linear_backward,
    "hillis_steele_tile": hillis_steele.make_tile,
    "blelloch_tile": blelloch.make_tile,
    "tile_fixup": _multiblock.make_fixup,
    "chunked_reduce": chunked.make_reduce,
    "chunked_scan": chunked.make_scan,
    "chunked_backward_reduce": lambda sp, *sizes: chunked_backward.make_reduce(sp, space("linear", sp.dtype), *sizes),
    "chunked_backward_scan": lambda sp, *sizes: chunked_backward.make_scan(sp, space("linear", sp.dtype), *sizes),
    "lookback_scan": lookback.make_scan,
    "log_backward_prepare": _elementwise.make_log_prepare,
    "log_backward_finish": _elementwise.make_log_finish,
    "linear_backward_prepare": _elementwise.make_linear_prepare,
    "linear_backward_finish": _elementwise.make_linear_finish,
}


@functools.cache
def space(name, dtype):
    return Space(name, np.dtype(dtype).name)


def pyfunc(name, space_name, dtype, *sizes):
    """The uncompiled kernel ``name`` for a space, dtype and compile-time sizes."""
    return _FACTORIES[name](space(space_name, dtype), *sizes)


@functools.cache
def get(name, space_name, dtype, *sizes):
    """The jitted kernel (compiled lazily by numba on first launch, per argument types)."""
    return cuda.jit(pyfunc(name, space_name, dtype, *sizes))


@functools.cache
def get_copy():
    return cuda.jit(_elementwise.make_copy())


@functools.cache
def get_fill():
    return cuda.jit(_elementwise.make_fill())


# ------------------------------------------------------------------ PTX cases
def _sizes(name, dtype, config):
    if name.startswith("sequential"):
        return (config.unroll(dtype),)
    if name.endswith("_tile"):
        return (config.tree_block,)
    if name.startswith(("chunked", "lookback")):
        variants = []
        for inner in (1, 64):  # one channel per block (the shuffle scan), 32 channels per block (shared memory)
            variants.append(config.chunk_layout(inner, dtype))
        return variants
    return ()


def _signature(name, nb):
    a3, a2, i8, b1 = types.Array(nb, 3, "A"), types.Array(nb, 2, "A"), types.int64, types.boolean
    return {
        "sequential_forward": (a3, a3, a2, b1, a3, i8, i8, i8),
        "sequential_log_backward": (a3, a3, a3, a3, a2, b1, a3, a3, a2, i8, i8, i8),
        "sequential_linear_backward": (a3, a3, a3, a3, a2, b1, a3, a3, a2, i8, i8, i8),
        "hillis_steele_tile": (a3, a3, a2, b1, a3, a3, a3, a3, b1, i8, i8, i8, i8),
        "blelloch_tile": (a3, a3, a2, b1, a3, a3, a3, a3, b1, i8, i8, i8, i8),
        "tile_fixup": (a3, a3, a3, i8, i8, i8, i8),
        "chunked_reduce": (a3, a3, a3, a3, i8, i8, i8, i8),
        "chunked_scan": (a3, a3, a2, b1, a3, a3, i8, i8, i8, i8),
        "chunked_backward_reduce": (a3, a3, a3, a3, a3, i8, i8, i8, i8),
        "chunked_backward_scan": (a3, a3, a3, a3, a2, b1, a3, a3, a2, a3, i8, i8, i8, i8),
        "lookback_scan": (a3, a3, a2, b1, a3, types.Array(types.int64, 1, "C"), types.Array(types.int32, 2, "C"),
                          types.Array(nb, 2, "C"), types.Array(nb, 2, "C"), types.Array(nb, 2, "C"), i8, i8, i8, i8),
        "log_backward_prepare": (a3, a3, a3, a3, a3, i8, i8, i8),
        "log_backward_finish": (a3, a3, a3, a3, a2, b1, a3, a3, a2, i8, i8, i8),
        "linear_backward_prepare": (a3, a3, a3, a3, i8, i8, i8),
        "linear_backward_finish": (a3, a3, a3, a2, b1, a3, a3, a2, i8, i8, i8),
    }[name]


def ptx_cases(config=None):
    """``(label, pyfunc, signature)`` for every kernel, space and dtype the backend launches."""
    config = config or LaunchConfig(shuffle=True)
    cases = []
    for name in _FACTORIES:
        spaces = [s for s in ("log", "linear") if not (name.startswith("log_") and s == "linear")
                  and not (name.startswith("linear_") and s == "log")]
        if name.startswith("sequential_log"):
            spaces = ["log"]
        elif name.startswith("sequential_linear"):
            spaces = ["linear"]
        for space_name in spaces:
            for dtype in ("float32", "float64"):
                nb = types.float32 if dtype == "float32" else types.float64
                sizes = _sizes(name, dtype, config)
                variants = sizes if sizes and isinstance(sizes[0], tuple) else [sizes]
                for sz in variants:
                    label = f"{name}-{space_name}-{dtype}" + ("-" + "x".join(map(str, sz)) if sz else "")
                    cases.append((label, pyfunc(name, space_name, dtype, *sz), _signature(name, nb)))
    for src in (types.float16, types.float32, types.float64):
        for dst in (types.float16, types.float32, types.float64):
            cases.append((f"copy3-{src}-{dst}", _elementwise.make_copy(),
                          (types.Array(src, 3, "A"), types.Array(dst, 3, "A"), types.int64, types.int64,
                           types.int64)))
    for dst in (types.float16, types.float32, types.float64, types.uint8, types.int32, types.int64):
        cases.append((f"fill3-{dst}", _elementwise.make_fill(),
                      (types.Array(dst, 3, "A"), dst, types.int64, types.int64, types.int64)))
    return cases
