"""CuPy backend: the scans as CUDA C kernels, compiled with ``cupy.RawModule``.

The kernels live in ``kernels/*.cu`` (one file per algorithm family, each
with a summary of its algorithm at the top); :mod:`._module` compiles them
once per process and device. This module is the host side: it checks
nothing (the core in :mod:`logscan.capi` has), picks launch configurations,
carves the caller's workspace and launches.

Methods
-------
``"sequential"``
    The per-channel kernel: one thread per channel (or per 16-byte group of
    channels when ``inner`` is contiguous and aligned) walks the whole time
    axis, several loads in flight; backward is one fused reverse pass.
    Every element is read and written once. Best when ``outer * inner``
    fills the GPU.
``"chunked"``
    The hybrid for few channels and long ``T``: sequential chunks, a
    warp-shuffle block scan over the chunk carries, then a fix-up pass.
``"lookback"``
    A single pass with decoupled look-back (tiles of 32 channels by 64
    steps, inputs read once), forward and backward (the backward scans the
    tiles from the end of time).
``"hillis_steele"``, ``"blelloch"``
    The textbook tree scans, one element per thread in shared-memory tiles,
    joined across blocks by reduce-then-scan; backward via the elementwise
    weights, a reverse textbook linear scan and elementwise gradients.
    Float32/float64 only (the core computes float16 and bfloat16 through
    float32 copies for them; the three methods above take both directly).

``method="auto"`` (:func:`choose_method`) takes ``"sequential"`` for short
sequences or many channels (2^14), else ``"chunked"``. It never takes
``"lookback"``: how far its tiles look back depends on the timing of the
run, so its results may differ in the last bits from run to run, and the
scan contract promises the same bits for the same inputs (ask for it by
name where speed matters more). These thresholds come from occupancy
arithmetic and still have to be replaced by measurements on an H100/H200.

Interface
---------
The functions of every backend (see :mod:`logscan.backends`), taking CuPy
arrays (``as_array`` makes them from raw device pointers), plus one
keyword, ``stream=None``: a CUDA stream handle (an int, or an object with a
``ptr`` such as ``cupy.cuda.Stream``) to enqueue the kernels on, through
``cupy.cuda.ExternalStream``; ``None`` means CuPy's current stream. Nothing
synchronizes: results are ready when the stream reaches them. The workspace,
when one is needed, must stay alive until then.

Internally every buffer is a pointer and element strides (:class:`View`),
so the kernels can equally run on raw pointers from any framework; the
arrays are used only for their pointers and strides.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import NamedTuple

import numpy as np

from logscan.backends.cupy_backend import _module
from logscan.capi import compute_dtype

methods = ("sequential", "chunked", "lookback", "hillis_steele", "blelloch")
# Their kernels read and write the half-precision types (float16, bfloat16) and compute in float32, so the core
# hands them such views as they are: one pass over half-width memory instead of float32 copies in and out
# (about 3x the traffic).
half_methods = ("sequential", "chunked", "lookback")

# ------------------------------------------------------------ launch constants
# First guesses from the H100's shape (132 SMs, 2048 threads each); `auto`
# must be re-derived from measurements on the GPU machine (tools/gpu_check.sh).
PER_CHANNEL_BLOCK = 128
CHUNKED_BLOCK = 256
CARRY_BLOCK = 256          # threads of the carry-scan block (a multiple of 32, <= 1024)
HILLIS_STEELE_BLOCK = 512  # = tile
BLELLOCH_BLOCK = 512       # tile = 2 * block
ELEMENTWISE_BLOCK = 256
MAX_BLOCKS = 1 << 20       # grids stride beyond this
TARGET_THREADS = 1 << 18   # enough threads in flight to saturate memory
MIN_VECTOR_THREADS = 1 << 15  # vectorize only while this many threads remain
MIN_CHUNK, MAX_CHUNK = 32, 1 << 14
SEQUENTIAL_MIN_CHANNELS = 1 << 14  # auto: one thread per channel from this many channels
SEQUENTIAL_MAX_T = 256             # auto: or for short sequences
WORKSPACE_ALIGN = 256
LOOKBACK_BLOCK = 256       # 8 warps; must match LOOKBACK_WARPS in lookback.cu
LOOKBACK_TILE_STEPS = 64   # LOOKBACK_WARPS * LOOKBACK_STEPS in lookback.cu
LOOKBACK_LANES = 32
MAX_GRID = (1 << 31) - 1


# ------------------------------------------------------------ buffers as pointers
class View(NamedTuple):
    """A buffer as a device pointer and strides in elements (0 pointer: absent)."""

    ptr: int
    strides: tuple[int, ...]


def _pointer(array) -> int:
    # NumPy arrays in the emulated tests (whose .data refuses bfloat16), CuPy arrays on a GPU
    return int(array.ctypes.data) if isinstance(array, np.ndarray) else int(array.data.ptr)


def view_of(array, ndim: int) -> View:
    """The :class:`View` of a CuPy (or NumPy) array; ``None`` gives an absent buffer."""
    if array is None:
        return View(0, (0,) * ndim)
    itemsize = array.dtype.itemsize
    return View(_pointer(array), tuple(int(s) // itemsize for s in array.strides))


def _reversed_in_time(view: View, T: int, itemsize: int) -> View:
    """The same buffer read from t = T-1 down to 0."""
    so, st, si = view.strides
    return View(view.ptr + (T - 1) * st * itemsize, (so, -st, si))


class _Workspace:
    """Carves aligned, contiguous pieces out of the caller's workspace."""

    def __init__(self, workspace):
        self.ptr = 0 if workspace is None else _pointer(workspace)
        self.nbytes = 0 if workspace is None else int(workspace.nbytes)
        self.used = 0

    def take(self, count: int, dtype) -> int:
        nbytes = _aligned(count * np.dtype(dtype).itemsize)
        if self.used + nbytes > self.nbytes:
            raise ValueError(f"logscan: workspace of {self.nbytes} bytes is too small "
                             f"(needs at least {self.used + nbytes})")
        ptr = self.ptr + self.used
        self.used += nbytes
        return ptr


def _aligned(nbytes: int) -> int:
    return -(-nbytes // WORKSPACE_ALIGN) * WORKSPACE_ALIGN


def _args(*items):
    """Kernel arguments: ints -> int64, Views -> (pointer, strides...), all explicit."""
    out = []
    for item in items:
        if isinstance(item, View):
            out.append(np.uint64(item.ptr))
            out.extend(np.int64(s) for s in item.strides)
        else:
            out.append(np.int64(item))
    return tuple(out)


def _pointer_arg(ptr: int):
    return np.uint64(ptr)


# ------------------------------------------------------------ launch configuration
def grid_size(n_items: int, block: int) -> int:
    """Blocks for ``n_items`` threads (grid-stride beyond MAX_BLOCKS)."""
    return max(1, min(-(-n_items // block), MAX_BLOCKS))


def chunk_length(outer: int, T: int, inner: int) -> int:
    """Steps per chunk of the chunked method: a power of two that gives about TARGET_THREADS threads."""
    want = max(1, outer * T * inner // TARGET_THREADS)
    length = 1 << max(want - 1, 0).bit_length()
    return min(max(length, MIN_CHUNK), MAX_CHUNK)


def vector_width(dtype, outer: int, inner: int, views) -> int:
    """Channels per thread of the per-channel kernel: 16-byte accesses when the layout allows.

    Every time-indexed buffer must have ``inner`` contiguous, a 16-byte
    aligned pointer and outer/time strides that keep the alignment, and
    enough threads must remain to keep the GPU busy.
    """
    dtype = np.dtype(dtype)
    vec = 16 // dtype.itemsize
    if inner % vec or outer * inner // vec < MIN_VECTOR_THREADS:
        return 1
    for view in views:
        so, st, si = view.strides
        if si != 1 or so % vec or st % vec or view.ptr % 16:
            return 1
    return vec


def lookback_tiles(outer: int, T: int, inner: int) -> int:
    """Tiles (one block each) of the look-back pass: groups of 32 channels times steps of 64."""
    return outer * -(-inner // LOOKBACK_LANES) * -(-T // LOOKBACK_TILE_STEPS)


def tile_of(method: str) -> int:
    return HILLIS_STEELE_BLOCK if method == "hillis_steele" else 2 * BLELLOCH_BLOCK


def _textbook_workspace_items(outer: int, T: int, inner: int, tile: int) -> list[int]:
    """Element counts of the pieces the textbook reduce-then-scan carves, level by level."""
    tiles = -(-T // tile)
    if tiles <= 1:
        return []
    n = outer * tiles * inner
    return [n, n, n] + _textbook_workspace_items(outer, tiles, inner, tile)


def choose_method(op, dtype, outer, T, inner):
    # A first rule from occupancy arithmetic, not yet from measurements (to
    # redo on the GPU machine): one thread per channel reads and writes every
    # element once but keeps only ~64 bytes per buffer in flight per thread,
    # so it needs many channels to cover memory latency; the chunked passes
    # fill the GPU whatever T but read the inputs twice. "lookback" (inputs
    # read once) is left out: its last bits depend on the run's timing.
    if T <= SEQUENTIAL_MAX_T or outer * inner >= SEQUENTIAL_MIN_CHANNELS:
        return "sequential"
    return "chunked"


def workspace_size(op, dtype, outer, T, inner, method):
    compute = compute_dtype(dtype)
    if T == 0 or outer * inner == 0 or method == "sequential":
        return 0
    if method == "chunked":
        n = outer * -(-T // chunk_length(outer, T, inner)) * inner
        return 3 * _aligned(n * compute.itemsize)
    if method == "lookback":
        n = lookback_tiles(outer, T, inner) * LOOKBACK_LANES
        return 3 * _aligned(n * compute.itemsize) + _aligned(4 * n) + _aligned(4)
    if method in ("hillis_steele", "blelloch"):
        items = _textbook_workspace_items(outer, T, inner, tile_of(method))
        if op.endswith("backward"):
            items = [outer * T * inner] * 2 + items  # w_{t+1} and u
        return sum(_aligned(n * compute.itemsize) for n in items)
    raise ValueError(f"logscan: unknown method {method!r} for backend 'cupy'")


# ------------------------------------------------------------ arrays and streams
def as_array(ptr, shape, strides, dtype, writable):
    """A CuPy view of device memory at ``ptr`` (strides in elements, None for C order); no copy.

    ``writable`` is accepted for the interface; CuPy arrays have no read-only flag.
    """
    import cupy  # noqa: PLC0415  (CuPy loads only when a GPU call is made)

    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape)
    if strides is None:
        strides, step = [], 1
        for n in reversed(shape):
            strides.insert(0, step)
            step *= max(n, 1)
    byte_strides = tuple(int(s) * dtype.itemsize for s in strides)
    if 0 in shape:
        low, high = 0, 0
    else:
        low = sum(min(0, (n - 1) * s) for n, s in zip(shape, byte_strides, strict=True))
        high = sum(max(0, (n - 1) * s) for n, s in zip(shape, byte_strides, strict=True)) + dtype.itemsize
    memory = cupy.cuda.UnownedMemory(int(ptr) + low, max(high - low, 1), owner=None)
    pointer = cupy.cuda.MemoryPointer(memory, -low)
    return cupy.ndarray(shape, dtype, pointer, strides=byte_strides)


def _on_stream(stream):
    """The context that makes launches go to ``stream`` (nothing to do for None)."""
    if stream is None:
        return contextlib.nullcontext()
    import cupy  # noqa: PLC0415  (CuPy loads only when a GPU call is made)

    handle = stream if isinstance(stream, (int, np.integer)) else stream.ptr
    with warnings.catch_warnings():
        # CuPy 14 deprecates ExternalStream in favour of Stream.from_external, which takes
        # objects with __cuda_stream__ rather than the bare handles this interface carries.
        warnings.simplefilter("ignore", DeprecationWarning)
        return cupy.cuda.ExternalStream(int(handle))


# The core (logscan.capi) runs every call inside ``with on_stream(handle):``.
on_stream = _on_stream


def _launch(kernel, dtype, *, log, grid, block, args, shared=0, vec=None):
    function = _module.get_kernel(kernel, dtype, log=log, vec=vec)
    function((int(grid),), (int(block),), args, shared_mem=int(shared))


# ------------------------------------------------------------ forward
def _forward(log, a, b, h0, out, method, workspace, stream):
    outer, T, inner = out.shape
    if T == 0 or outer * inner == 0:
        return
    dtype = np.dtype(out.dtype)
    views = (view_of(a, 3), view_of(b, 3), view_of(h0, 2), view_of(out, 3))
    with _on_stream(stream):
        run_forward(log, dtype, outer, T, inner, *views, method=method, workspace=_Workspace(workspace))


def run_forward(log, dtype, outer, T, inner, a: View, b: View, h0: View, out: View, *, method, workspace):
    """Launch a forward scan on raw views (T >= 1, outer * inner >= 1)."""
    dtype = np.dtype(dtype)
    if method == "sequential":
        vec = vector_width(dtype, outer, inner, (a, b, out))
        groups = outer * inner // vec
        _launch("logscan_per_channel_forward", dtype, log=log, vec=vec,
                grid=grid_size(groups, PER_CHANNEL_BLOCK), block=PER_CHANNEL_BLOCK,
                args=_args(outer, T, inner, a, b, h0, out))
    elif method == "chunked":
        _chunked_forward(log, dtype, outer, T, inner, a, b, h0, out, workspace)
    elif method == "lookback":
        _lookback_forward(log, dtype, outer, T, inner, a, b, h0, out, workspace)
    elif method in ("hillis_steele", "blelloch"):
        _textbook_forward(method, log, dtype, outer, T, inner, a, b, h0, out, workspace)
    else:
        raise ValueError(f"logscan: unknown method {method!r} for backend 'cupy'")


def _chunk_pieces(dtype, outer, T, inner, workspace):
    compute = compute_dtype(dtype)
    chunk = chunk_length(outer, T, inner)
    n_chunks = -(-T // chunk)
    n = outer * n_chunks * inner
    total_a, total_b, carry = (workspace.take(n, compute) for _ in range(3))
    return compute, chunk, n_chunks, n, total_a, total_b, carry


def _carry_scan(log, dtype, outer, n_chunks, inner, total_a, total_b, carry, h0: View, *, reverse):
    """Phase 2: the state entering each chunk, scanning chunks forward (or from the last one)."""
    compute = compute_dtype(dtype)
    chunk_stride = inner
    if reverse:
        offset = (n_chunks - 1) * inner * compute.itemsize
        total_a, total_b, carry, chunk_stride = total_a + offset, total_b + offset, carry + offset, -inner
    _launch("logscan_chunk_carry_scan", dtype, log=log, grid=min(outer * inner, MAX_BLOCKS), block=CARRY_BLOCK,
            shared=(64 + CARRY_BLOCK) * compute.itemsize,
            args=(*_args(outer, n_chunks, inner), _pointer_arg(total_a), _pointer_arg(total_b),
                  _pointer_arg(carry), *_args(n_chunks * inner, chunk_stride, 1, h0)))


def _chunked_forward(log, dtype, outer, T, inner, a, b, h0, out, workspace):
    compute, chunk, n_chunks, n, total_a, total_b, carry = _chunk_pieces(dtype, outer, T, inner, workspace)
    grid = grid_size(n, CHUNKED_BLOCK)
    _launch("logscan_chunked_forward_reduce", dtype, log=log, grid=grid, block=CHUNKED_BLOCK,
            args=(*_args(outer, T, inner, chunk, n_chunks, a, b), _pointer_arg(total_a), _pointer_arg(total_b)))
    _carry_scan(log, dtype, outer, n_chunks, inner, total_a, total_b, carry, h0, reverse=False)
    _launch("logscan_chunked_forward_apply", dtype, log=log, grid=grid, block=CHUNKED_BLOCK,
            args=(*_args(outer, T, inner, chunk, n_chunks, a, b, out), _pointer_arg(carry)))


def _lookback_pieces(dtype, outer, T, inner, workspace):
    """Status words of the look-back tiles, zeroed on the stream; returns (tiles, pointers...)."""
    compute = compute_dtype(dtype)
    blocks = lookback_tiles(outer, T, inner)
    if blocks > MAX_GRID:
        raise ValueError(f"logscan: {blocks} look-back tiles exceed the grid limit; use method='chunked'")
    n = blocks * LOOKBACK_LANES
    map_a, map_b, state_out = (workspace.take(n, compute) for _ in range(3))
    flags, counter = workspace.take(n, np.int32), workspace.take(1, np.uint32)
    _launch("logscan_lookback_reset", None, log=False, grid=grid_size(n, ELEMENTWISE_BLOCK), block=ELEMENTWISE_BLOCK,
            args=(_pointer_arg(flags), np.int64(n), _pointer_arg(counter)))
    shared = (2 * (LOOKBACK_BLOCK // 32) + 1) * 32 * compute.itemsize + 16
    status = tuple(_pointer_arg(p) for p in (map_a, map_b, state_out, flags, counter))
    return blocks, shared, status


def _lookback_forward(log, dtype, outer, T, inner, a, b, h0, out, workspace):
    blocks, shared, status = _lookback_pieces(dtype, outer, T, inner, workspace)
    _launch("logscan_lookback_forward", dtype, log=log, grid=blocks, block=LOOKBACK_BLOCK, shared=shared,
            args=(*_args(outer, T, inner, -(-T // LOOKBACK_TILE_STEPS), a, b, h0, out), *status))


def _textbook_forward(method, log, dtype, outer, T, inner, a, b, h0, out, workspace):
    """Reduce-then-scan across tiles; the tile pairs are scanned by the same method, recursively."""
    dtype = np.dtype(dtype)
    if dtype != compute_dtype(dtype):
        raise TypeError(f"logscan: method {method!r} of backend 'cupy' takes float32 or float64 "
                        f"({dtype.name} is computed through float32 copies by logscan.capi)")
    block = HILLIS_STEELE_BLOCK if method == "hillis_steele" else BLELLOCH_BLOCK
    tile = tile_of(method)
    shared = 4 * block * dtype.itemsize
    tiles = -(-T // tile)
    tile_states = 0
    if tiles > 1:
        n = outer * tiles * inner
        total_a, total_b, states = (workspace.take(n, dtype) for _ in range(3))
        level = (tiles * inner, inner, 1)
        _launch(f"logscan_{method}_reduce", dtype, log=log, grid=grid_size(outer * inner * tiles, 1), block=block,
                shared=shared, args=(*_args(outer, T, inner, tiles, a, b), _pointer_arg(total_a),
                                     _pointer_arg(total_b)))
        _textbook_forward(method, log, dtype, outer, tiles, inner, View(total_a, level), View(total_b, level), h0,
                          View(states, level), workspace)
        tile_states = states
    _launch(f"logscan_{method}_scan", dtype, log=log, grid=grid_size(outer * inner * tiles, 1), block=block,
            shared=shared, args=(*_args(outer, T, inner, tiles, a, b, h0), _pointer_arg(tile_states),
                                 *_args(out)))


# ------------------------------------------------------------ backward
def _backward(log, grad_h, a, b, h, h0, grad_a, grad_b, grad_h0, method, workspace, stream):
    outer, T, inner = grad_a.shape
    if outer * inner == 0:
        return
    with _on_stream(stream):
        if T == 0:
            if grad_h0 is not None:
                grad_h0[...] = 0
            return
        views = (view_of(grad_h, 3), view_of(a, 3), view_of(a if b is None else b, 3), view_of(h, 3),
                 view_of(h0, 2), view_of(grad_a, 3), view_of(grad_b, 3), view_of(grad_h0, 2))
        run_backward(log, np.dtype(grad_a.dtype), outer, T, inner, *views, method=method,
                     workspace=_Workspace(workspace))


def run_backward(log, dtype, outer, T, inner, grad_h: View, a: View, b: View, h: View, h0: View,
                 grad_a: View, grad_b: View, grad_h0: View, *, method, workspace):
    """Launch a backward pass on raw views (T >= 1, outer * inner >= 1)."""
    dtype = np.dtype(dtype)
    if method == "sequential":
        vec = vector_width(dtype, outer, inner, (grad_h, a, b, h, grad_a, grad_b))
        groups = outer * inner // vec
        _launch("logscan_per_channel_backward", dtype, log=log, vec=vec,
                grid=grid_size(groups, PER_CHANNEL_BLOCK), block=PER_CHANNEL_BLOCK,
                args=_args(outer, T, inner, grad_h, a, b, h, h0, grad_a, grad_b, grad_h0))
    elif method == "lookback":
        blocks, shared, status = _lookback_pieces(dtype, outer, T, inner, workspace)
        _launch("logscan_lookback_backward", dtype, log=log, grid=blocks, block=LOOKBACK_BLOCK, shared=shared,
                args=(*_args(outer, T, inner, -(-T // LOOKBACK_TILE_STEPS), grad_h, a, b, h, h0, grad_a, grad_b,
                             grad_h0), *status))
    elif method == "chunked":
        compute, chunk, n_chunks, n, total_a, total_b, carry = _chunk_pieces(dtype, outer, T, inner, workspace)
        grid = grid_size(n, CHUNKED_BLOCK)
        _launch("logscan_chunked_backward_reduce", dtype, log=log, grid=grid, block=CHUNKED_BLOCK,
                args=(*_args(outer, T, inner, chunk, n_chunks, grad_h, a, b, h, h0), _pointer_arg(total_a),
                      _pointer_arg(total_b)))
        # u runs backwards in time: scan the chunk maps from the last chunk, in linear space, from u_T = 0
        _carry_scan(False, dtype, outer, n_chunks, inner, total_a, total_b, carry, View(0, (0, 0)), reverse=True)
        _launch("logscan_chunked_backward_apply", dtype, log=log, grid=grid, block=CHUNKED_BLOCK,
                args=(*_args(outer, T, inner, chunk, n_chunks, grad_h, a, b, h, h0, grad_a, grad_b, grad_h0),
                      _pointer_arg(carry)))
    elif method in ("hillis_steele", "blelloch"):
        if dtype != compute_dtype(dtype):
            raise TypeError(f"logscan: method {method!r} of backend 'cupy' takes float32 or float64")
        n = outer * T * inner
        contiguous = (T * inner, inner, 1)
        w_next = View(workspace.take(n, dtype), contiguous)
        u = View(workspace.take(n, dtype), contiguous)
        grid = grid_size(n, ELEMENTWISE_BLOCK)
        _launch("logscan_backward_next_weight", dtype, log=log, grid=grid, block=ELEMENTWISE_BLOCK,
                args=(*_args(outer, T, inner, a, h, h0), _pointer_arg(w_next.ptr)))
        # u_t = g_t + w_{t+1} u_{t+1}: a linear scan over time-reversed views
        itemsize = dtype.itemsize
        _textbook_forward(method, False, dtype, outer, T, inner, _reversed_in_time(w_next, T, itemsize),
                          _reversed_in_time(grad_h, T, itemsize), View(0, (0, 0)),
                          _reversed_in_time(u, T, itemsize), workspace)
        _launch("logscan_backward_gradients", dtype, log=log, grid=grid, block=ELEMENTWISE_BLOCK,
                args=(*_args(outer, T, inner), _pointer_arg(u.ptr),
                      *_args(a, b, h, h0, grad_a, grad_b, grad_h0)))
    else:
        raise ValueError(f"logscan: unknown method {method!r} for backend 'cupy'")


# ------------------------------------------------------------ backend interface
def log_scan(log_a, log_b, log_h0, out, method, workspace, *, stream=None):
    _forward(True, log_a, log_b, log_h0, out, method, workspace, stream)


def linear_scan(a, b, h0, out, method, workspace, *, stream=None):
    _forward(False, a, b, h0, out, method, workspace, stream)


def log_scan_backward(grad_log_h, log_a, log_b, log_h, log_h0, grad_log_a, grad_log_b, grad_log_h0,
                      method, workspace, *, stream=None):
    _backward(True, grad_log_h, log_a, log_b, log_h, log_h0, grad_log_a, grad_log_b, grad_log_h0,
              method, workspace, stream)


def linear_scan_backward(grad_h, a, b, h, h0, grad_a, grad_b, grad_h0, method, workspace, *, stream=None):
    _backward(False, grad_h, a, b, h, h0, grad_a, grad_b, grad_h0, method, workspace, stream)
