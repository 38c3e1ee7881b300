"""numba_cuda backend: the scans as CUDA kernels written in Python with Numba.

Methods (``methods``):

- ``"sequential"``: one thread per channel, a loop along T, coalesced over
  ``inner``, several loads in flight (:mod:`.sequential`); backward fused.
  The fast path when ``outer * inner`` fills the GPU.
- ``"hillis_steele"``, ``"blelloch"``: the textbook kernels, one element per
  thread in shared memory (:mod:`.hillis_steele`, :mod:`.blelloch`), with a
  carry between blocks for T longer than a block (:mod:`._multiblock`).
- ``"chunked"``: chunks of T scanned in registers, chunk carries by a
  block-level scan, then a fix-up (:mod:`.chunked`); for few channels and
  long T. Tiles are chained reduce-then-scan (inputs read twice).
- ``"lookback"``: the same tiles in a single pass, chained by decoupled
  look-back (:mod:`.lookback`; inputs read once). Its backward is the
  fused chunked backward.

Backward: ``sequential`` and ``chunked`` are fused (:mod:`.chunked_backward`:
the adjoint pairs are computed on the fly and the gradients written in the
fix-up); for the textbook methods it is composed: prepare the reverse
recurrence's inputs, a forward linear scan of the chosen method over
time-reversed views, then the gradients (:mod:`._elementwise`).

Buffers are :class:`._memory.DeviceView` objects from :func:`as_array`
(pointers to device memory); every launch goes on the stream set by
:func:`on_stream`. ``method="auto"`` is :func:`choose_method`.
"""

from __future__ import annotations

import numpy as np

from . import _kernels
from ._kernels import CONFIG, SIMULATOR
from ._memory import DeviceView, as_array, current_stream, grid_for, on_stream

__all__ = ["CONFIG", "as_array", "choose_method", "linear_scan", "linear_scan_backward", "log_scan",
           "log_scan_backward", "methods", "on_stream", "workspace_size"]

methods = ("sequential", "hillis_steele", "blelloch", "chunked", "lookback")

# Channels from which one thread per channel keeps enough loads in flight to
# saturate HBM: ~2 MB in flight on an H100 (3.35 TB/s x ~600 ns) over
# UNROLL x 2 inputs x 4 bytes per thread. Provisional until measured with
# tools/gpu_check.sh; see docs.
SEQUENTIAL_MIN_CHANNELS = 8192
_ALIGN = 256


def choose_method(op, dtype, outer, T, inner):
    """``method="auto"``: sequential when the channels fill the GPU or T is short, else chunked."""
    channels = outer * inner
    if channels >= SEQUENTIAL_MIN_CHANNELS or T <= 64:
        return "sequential"
    return "chunked"


def _aligned(nbytes):
    return -(-nbytes // _ALIGN) * _ALIGN


def _tiles(T, tile):
    return -(-T // tile)


def _chunk_tile(inner, dtype):
    lanes, rows, chunk, _ = CONFIG.chunk_layout(inner, dtype)
    return rows * chunk


def _forward_bytes(method, dtype, outer, T, inner):
    """Workspace of one forward scan; mirrors the carving order of :func:`_forward`."""
    size = np.dtype(dtype).itemsize
    if method in ("hillis_steele", "blelloch"):
        tiles = _tiles(T, CONFIG.tree_block)
        if tiles <= 1:
            return 0
        return (_aligned(outer * T * inner * size) + 2 * _aligned(outer * tiles * inner * size)
                + _forward_bytes(method, dtype, outer, tiles, inner))
    if method == "chunked":
        tiles = _tiles(T, _chunk_tile(inner, dtype))
        if tiles <= 1:
            return 0
        return 2 * _aligned(outer * tiles * inner * size) + _forward_bytes(method, dtype, outer, tiles, inner)
    if method == "lookback":
        cells = outer * inner * _tiles(T, _chunk_tile(inner, dtype))
        return _aligned(8) + _aligned(4 * cells) + 3 * _aligned(size * cells)
    return 0


def workspace_size(op, dtype, outer, T, inner, method):
    if outer * T * inner == 0:
        return 0
    if op.endswith("_backward"):
        if method == "sequential":
            return 0
        if method in ("chunked", "lookback"):  # fused: the carry structure of the chunked forward
            return _forward_bytes("chunked", dtype, outer, T, inner)
        return 2 * _aligned(outer * T * inner * np.dtype(dtype).itemsize) + _forward_bytes(
            method, dtype, outer, T, inner)
    return _forward_bytes(method, dtype, outer, T, inner)


class _Carver:
    def __init__(self, workspace):
        self.ptr = 0 if workspace is None else workspace.ptr
        self.nbytes = 0 if workspace is None else workspace.size
        self.used = 0

    def take(self, shape, dtype):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if self.used + nbytes > self.nbytes:
            raise ValueError(f"numba_cuda: workspace of {self.nbytes} bytes is too small")
        view = DeviceView(self.ptr + self.used, shape, None, dtype)
        self.used += _aligned(nbytes)
        return view


def _threads():
    return CONFIG.threads


def _sequential_threads(channels):
    """Threads per block of the one-thread-per-channel kernels: small enough for 2 blocks per SM."""
    sms = _sm_count()
    threads = CONFIG.threads
    while threads > 32 and channels < 2 * sms * threads:
        threads //= 2
    return threads


_SM_COUNTS = {}


def _sm_count():
    if SIMULATOR:
        return 1
    from numba import cuda  # noqa: PLC0415

    device = cuda.get_current_device()
    if device.id not in _SM_COUNTS:
        _SM_COUNTS[device.id] = int(device.MULTIPROCESSOR_COUNT)
    return _SM_COUNTS[device.id]


# ------------------------------------------------------------------ forward
def _forward(space, method, a, b, h0, out, carver):
    outer, T, inner = out.shape
    if outer * T * inner == 0:
        return
    dtype = out.dtype.name
    stream = current_stream()
    has_h0 = h0 is not None
    h0_arg = h0.kernel_arg() if has_h0 else out[:, 0, :].kernel_arg()
    channels = outer * inner

    if method == "sequential":
        kernel = _kernels.get("sequential_forward", space, dtype, CONFIG.unroll(dtype))
        threads = _sequential_threads(channels)
        kernel[_tiles(channels, threads), threads, stream](
            a.kernel_arg(), b.kernel_arg(), h0_arg, has_h0, out.kernel_arg(), outer, T, inner)

    elif method in ("hillis_steele", "blelloch"):
        block = CONFIG.tree_block
        tiles = _tiles(T, block)
        kernel = _kernels.get(method + "_tile", space, dtype, block)
        if tiles > 1:
            local_a = carver.take((outer, T, inner), dtype)
            agg_a = carver.take((outer, tiles, inner), dtype)
            agg_b = carver.take((outer, tiles, inner), dtype)
        else:
            local_a = agg_a = agg_b = out
        kernel[channels * tiles, block, stream](
            a.kernel_arg(), b.kernel_arg(), h0_arg, has_h0, out.kernel_arg(), local_a.kernel_arg(),
            agg_a.kernel_arg(), agg_b.kernel_arg(), tiles > 1, outer, T, inner, tiles)
        if tiles > 1:
            # ---- carry between blocks: the tile totals are a recurrence of their own
            _forward(space, method, agg_a, agg_b, None, agg_b, carver)
            fixup = _kernels.get("tile_fixup", space, dtype)
            threads = _threads()
            fixup[grid_for(outer * (T - block) * inner, threads), threads, stream](
                local_a.kernel_arg(), out.kernel_arg(), agg_b.kernel_arg(), outer, T, inner, block)

    elif method == "chunked":
        lanes, rows, chunk, shuffle = CONFIG.chunk_layout(inner, dtype)
        tiles = _tiles(T, rows * chunk)
        groups = _tiles(channels, lanes)
        states = out
        if tiles > 1:
            agg_a = carver.take((outer, tiles, inner), dtype)
            agg_b = carver.take((outer, tiles, inner), dtype)
            reduce = _kernels.get("chunked_reduce", space, dtype, lanes, rows, chunk, shuffle)
            reduce[groups * tiles, (lanes, rows), stream](
                a.kernel_arg(), b.kernel_arg(), agg_a.kernel_arg(), agg_b.kernel_arg(), outer, T, inner, tiles)
            # ---- carry between blocks: states at the end of every tile (initial state included)
            _forward(space, "chunked", agg_a, agg_b, h0, agg_b, carver)
            states = agg_b
        scan = _kernels.get("chunked_scan", space, dtype, lanes, rows, chunk, shuffle)
        scan[groups * tiles, (lanes, rows), stream](
            a.kernel_arg(), b.kernel_arg(), h0_arg, has_h0, out.kernel_arg(), states.kernel_arg(),
            outer, T, inner, tiles)
    elif method == "lookback":
        lanes, rows, chunk, shuffle = CONFIG.chunk_layout(inner, dtype)
        tiles = _tiles(T, rows * chunk)
        groups = _tiles(channels, lanes)
        ticket = carver.take((1,), np.int64)
        status = carver.take((channels, tiles), np.int32)
        agg_a = carver.take((channels, tiles), dtype)
        agg_b = carver.take((channels, tiles), dtype)
        inclusive = carver.take((channels, tiles), dtype)
        ticket[...] = 0
        status[...] = 0
        scan = _kernels.get("lookback_scan", space, dtype, lanes, rows, chunk, shuffle)
        scan[groups * tiles, (lanes, rows), stream](
            a.kernel_arg(), b.kernel_arg(), h0_arg, has_h0, out.kernel_arg(), ticket.kernel_arg(),
            status.kernel_arg(), agg_a.kernel_arg(), agg_b.kernel_arg(), inclusive.kernel_arg(), outer, T, inner,
            tiles)
    else:
        raise ValueError(f"numba_cuda: unknown method {method!r}")


def log_scan(log_a, log_b, log_h0, out, method, workspace):
    _forward("log", method, log_a, log_b, log_h0, out, _Carver(workspace))


def linear_scan(a, b, h0, out, method, workspace):
    _forward("linear", method, a, b, h0, out, _Carver(workspace))


# ----------------------------------------------------------------- backward
def _elementwise_grid(n):
    threads = _threads()
    return grid_for(n, threads), threads


def _backward(space, grad_out, a, b, h, h0, grad_a, grad_b, grad_h0, method, workspace):
    outer, T, inner = grad_a.shape
    if outer * T * inner == 0:
        return
    dtype = grad_a.dtype.name
    stream = current_stream()
    has_h0 = h0 is not None
    h0_arg = h0.kernel_arg() if has_h0 else h[:, 0, :].kernel_arg()
    grad_h0_arg = grad_h0.kernel_arg() if grad_h0 is not None else grad_a[:, 0, :].kernel_arg()
    args = [x.kernel_arg() for x in (grad_out, a, b, h)]

    if method == "sequential":
        kernel = _kernels.get(f"sequential_{space}_backward", space, dtype, CONFIG.unroll(dtype))
        threads = _sequential_threads(outer * inner)
        kernel[_tiles(outer * inner, threads), threads, stream](
            *args, h0_arg, has_h0, grad_a.kernel_arg(), grad_b.kernel_arg(), grad_h0_arg, outer, T, inner)
        return

    carver = _Carver(workspace)
    if method in ("chunked", "lookback"):
        _chunked_backward(space, grad_out, a, b, h, h0_arg, has_h0, grad_a, grad_b, grad_h0_arg, carver)
        return
    weight = carver.take((outer, T, inner), dtype)
    adjoint = carver.take((outer, T, inner), dtype)
    grid = _elementwise_grid(outer * T * inner)
    prepare = _kernels.get(f"{space}_backward_prepare", space, dtype)
    if space == "log":
        prepare[grid[0], grid[1], stream](args[0], args[1], args[3], weight.kernel_arg(), adjoint.kernel_arg(),
                                          outer, T, inner)
    else:
        prepare[grid[0], grid[1], stream](args[0], args[1], weight.kernel_arg(), adjoint.kernel_arg(),
                                          outer, T, inner)
    # ---- the adjoint: u_t = g_t + w_{t+1} u_{t+1}, a forward linear scan over reversed time
    reversed_adjoint = adjoint[:, ::-1, :]
    _forward("linear", method, weight[:, ::-1, :], reversed_adjoint, None, reversed_adjoint, carver)
    finish = _kernels.get(f"{space}_backward_finish", space, dtype)
    if space == "log":
        finish[grid[0], grid[1], stream](adjoint.kernel_arg(), args[1], args[2], args[3], h0_arg, has_h0,
                                         grad_a.kernel_arg(), grad_b.kernel_arg(), grad_h0_arg, outer, T, inner)
    else:
        finish[grid[0], grid[1], stream](adjoint.kernel_arg(), args[1], args[3], h0_arg, has_h0,
                                         grad_a.kernel_arg(), grad_b.kernel_arg(), grad_h0_arg, outer, T, inner)


def _chunked_backward(space, grad_out, a, b, h, h0_arg, has_h0, grad_a, grad_b, grad_h0_arg, carver):
    """The fused chunked backward (:mod:`.chunked_backward`) on time-reversed views."""
    outer, T, inner = grad_a.shape
    dtype = grad_a.dtype.name
    stream = current_stream()
    g_r, a_r, b_r, h_r, grad_a_r, grad_b_r = (x[:, ::-1, :] for x in (grad_out, a, b, h, grad_a, grad_b))
    lanes, rows, chunk, shuffle = CONFIG.chunk_layout(inner, dtype)
    tiles = _tiles(T, rows * chunk)
    groups = _tiles(outer * inner, lanes)
    states = grad_a
    if tiles > 1:
        agg_a = carver.take((outer, tiles, inner), dtype)
        agg_b = carver.take((outer, tiles, inner), dtype)
        reduce = _kernels.get("chunked_backward_reduce", space, dtype, lanes, rows, chunk, shuffle)
        reduce[groups * tiles, (lanes, rows), stream](
            g_r.kernel_arg(), a_r.kernel_arg(), h_r.kernel_arg(), agg_a.kernel_arg(), agg_b.kernel_arg(),
            outer, T, inner, tiles)
        # ---- carry between blocks: the adjoint entering every tile
        _forward("linear", "chunked", agg_a, agg_b, None, agg_b, carver)
        states = agg_b
    scan = _kernels.get("chunked_backward_scan", space, dtype, lanes, rows, chunk, shuffle)
    scan[groups * tiles, (lanes, rows), stream](
        g_r.kernel_arg(), a_r.kernel_arg(), b_r.kernel_arg(), h_r.kernel_arg(), h0_arg, has_h0,
        grad_a_r.kernel_arg(), grad_b_r.kernel_arg(), grad_h0_arg, states.kernel_arg(), outer, T, inner, tiles)


def log_scan_backward(grad_log_h, log_a, log_b, log_h, log_h0, grad_log_a, grad_log_b, grad_log_h0,
                      method, workspace):
    _backward("log", grad_log_h, log_a, log_b, log_h, log_h0, grad_log_a, grad_log_b, grad_log_h0,
              method, workspace)


def linear_scan_backward(grad_h, a, b, h, h0, grad_a, grad_b, grad_h0, method, workspace):
    _backward("linear", grad_h, a, b, h, h0, grad_a, grad_b, grad_h0, method, workspace)
