"""Channel blocks ("lane groups") and the tile gather/scatter shared by every kernel.

A kernel works on groups of up to ``W`` channels at once; the channels of a
group are its lanes. In *rows* mode (``inner >= W``) a group is ``W``
consecutive ``i`` of one ``o`` row, so when the inner stride is 1 the lanes
are adjacent in memory and the kernel reads them in place ("direct"). In
*flat* mode (few inner channels, e.g. ``inner == 1`` when scanning along
the last axis) a group is ``W`` consecutive flattened channels
``c = o*inner + i``; their elements are scattered in memory, so the kernel
gathers a tile ``tile[j*W + lane]`` of a few time steps first (a small
transpose: whole 64-byte blocks through register shuffles when time is
contiguous, ``_transpose``), computes on it with the lanes adjacent, and
scatters results back.

Every buffer is passed as a flat 1-D array over its memory plus a geometry
row ``(offset, outer stride, time stride, inner stride)`` in elements, so one
compiled kernel serves every layout, reversed and broadcast views included.
"""

from __future__ import annotations

from numba import njit

from logscan.backends.numba_cpu._transpose import VECTOR_BYTES, transpose_in, transpose_out
from logscan.backends.numba_cpu._vmath import FASTMATH

_OPTS = dict(fastmath=FASTMATH, error_model="numpy", boundscheck=False)
OFFSET, OUTER, TIME, INNER = 0, 1, 2, 3


@njit(**_OPTS)
def group_count(outer, inner, W, rows_mode):
    if rows_mode:
        return outer * ((inner + W - 1) // W)
    return (outer * inner + W - 1) // W


@njit(**_OPTS)
def group_lanes(group, outer, inner, W, rows_mode, lane_o, lane_i):
    """Fill the (o, i) of each lane of ``group``; return the number of lanes."""
    if rows_mode:
        per_row = (inner + W - 1) // W
        o = group // per_row
        i0 = (group % per_row) * W
        n = min(W, inner - i0)
        for lane in range(n):
            lane_o[lane] = o
            lane_i[lane] = i0 + lane
    else:
        c0 = group * W
        n = min(W, outer * inner - c0)
        for lane in range(n):
            lane_o[lane] = (c0 + lane) // inner
            lane_i[lane] = (c0 + lane) % inner
    return n


@njit(**_OPTS)
def lane_offsets(geo, stream, lane_o, lane_i, n, offsets):
    """Element offset of time step 0 of each lane in buffer ``stream``."""
    for lane in range(n):
        offsets[lane] = geo[stream, OFFSET] + lane_o[lane] * geo[stream, OUTER] + lane_i[lane] * geo[stream, INNER]


@njit(**_OPTS)
def _blocks(memory, time_stride, W, n, steps):
    """(lanes, steps) covered by whole vector blocks (:mod:`._transpose`), when time is contiguous."""
    size = VECTOR_BYTES // memory.itemsize
    if time_stride != 1 or W % size != 0:
        return 0, 0
    return n - n % size, steps - steps % size


@njit(**_OPTS)
def gather(memory, offsets, time_stride, t0, tile, W, n, steps):
    """tile[j*W + lane] = memory[offsets[lane] + (t0 + j)*time_stride] for j < steps.

    Where time is contiguous, whole blocks of lanes x steps go through
    register transposes; the rest element by element.
    """
    size = VECTOR_BYTES // memory.itemsize
    block_lanes, block_steps = _blocks(memory, time_stride, W, n, steps)
    for lane0 in range(0, block_lanes, size):
        for j0 in range(0, block_steps, size):
            transpose_in(memory, offsets, lane0, t0 + j0, tile, j0 * W + lane0, W)
    for lane in range(n):
        base = offsets[lane] + t0 * time_stride
        first = block_steps if lane < block_lanes else 0
        for j in range(first, steps):
            tile[j * W + lane] = memory[base + j * time_stride]


@njit(**_OPTS)
def scatter(tile, memory, offsets, time_stride, t0, W, n, steps):
    """The inverse of :func:`gather`."""
    size = VECTOR_BYTES // memory.itemsize
    block_lanes, block_steps = _blocks(memory, time_stride, W, n, steps)
    for lane0 in range(0, block_lanes, size):
        for j0 in range(0, block_steps, size):
            transpose_out(tile, j0 * W + lane0, W, memory, offsets, lane0, t0 + j0)
    for lane in range(n):
        base = offsets[lane] + t0 * time_stride
        first = block_steps if lane < block_lanes else 0
        for j in range(first, steps):
            memory[base + j * time_stride] = tile[j * W + lane]


@njit(**_OPTS)
def load_state(memory, geo, stream, has_state, fill, lane_o, lane_i, n, state):
    """state[lane] = the (o, i) element of a 2-D state buffer, or ``fill`` when there is none."""
    for lane in range(n):
        if has_state:
            state[lane] = memory[geo[stream, OFFSET] + lane_o[lane] * geo[stream, OUTER]
                                 + lane_i[lane] * geo[stream, INNER]]
        else:
            state[lane] = fill


@njit(**_OPTS)
def store_state(state, memory, geo, stream, lane_o, lane_i, n):
    for lane in range(n):
        at = geo[stream, OFFSET] + lane_o[lane] * geo[stream, OUTER] + lane_i[lane] * geo[stream, INNER]
        memory[at] = state[lane]
