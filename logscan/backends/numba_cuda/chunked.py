"""Chunked hybrid: chunks of T scanned in registers, chunk carries by a block-level scan, then a fix-up.

Summary of algorithm
--------------------
For few channels and long T (where one thread per channel cannot fill the
GPU). A block is ``LANES x ROWS`` threads: ``LANES`` consecutive channels
(coalesced along ``inner``) times ``ROWS`` chunks along time; each thread owns
a chunk of ``CHUNK`` consecutive steps of one channel, so a block covers a
tile of ``ROWS*CHUNK`` steps. The grid is 1-D over (channel group, tile).

- ``chunked_scan`` (one pass when the sequence fits one tile):
  1. each thread loads its ``CHUNK`` steps into registers (all loads in
     flight) and composes them into one pair, its chunk total;
  2. the chunk totals of a channel are scanned across the ``ROWS`` threads
     by a block-level scan: Hillis-Steele in shared memory (any layout, runs
     under the simulator), or, when a warp holds 32 chunks of one channel
     (``LANES == 1``), Hillis-Steele with warp shuffles inside each warp and
     the warp totals through shared memory;
  3. fix-up: each thread applies its exclusive prefix to the state entering
     the tile and re-runs its chunk from registers, writing every step.
- carry between blocks (tiles): a first pass, ``chunked_reduce``, writes each
  tile's total pair to ``(outer, tiles, inner)``; those totals are scanned
  as a recurrence of their own (with the initial state), which gives the
  state entering every tile; ``chunked_scan`` then starts tile ``j`` from the
  state at the end of tile ``j - 1``. Reduce-then-scan reads the inputs twice
  and writes once, with no inter-block waiting.

All index arithmetic is int64.
"""

from __future__ import annotations

from numba import cuda, int64

FULL_MASK = 0xFFFFFFFF


def make_block_scan_shared(space, lanes, rows):
    """Device fn ``(shared_a, shared_b, x_a, x_b, lane, row) -> (exclusive pair, total pair)`` over rows."""
    compose = space.compose
    identity_a, identity_b = space.identity

    @cuda.jit(device=True, inline=True)
    def block_scan_shared(shared_a, shared_b, x_a, x_b, lane, row):
        s = row * lanes + lane
        shared_a[s] = x_a
        shared_b[s] = x_b
        cuda.syncthreads()
        left_a, left_b = identity_a, identity_b
        d = 1
        while d < rows:
            if row >= d:
                left_a = shared_a[s - d * lanes]
                left_b = shared_b[s - d * lanes]
            cuda.syncthreads()
            if row >= d:
                x_a, x_b = compose(left_a, left_b, x_a, x_b)
                shared_a[s] = x_a
                shared_b[s] = x_b
            cuda.syncthreads()
            d *= 2
        ex_a, ex_b = identity_a, identity_b
        if row > 0:
            ex_a = shared_a[s - lanes]
            ex_b = shared_b[s - lanes]
        last = (rows - 1) * lanes + lane
        total_a = shared_a[last]
        total_b = shared_b[last]
        return ex_a, ex_b, total_a, total_b

    return block_scan_shared


def make_block_scan_shuffle(space, rows):
    """The same contract for ``lanes == 1`` and ``rows % 32 == 0``, with warp shuffles.

    Numba's simulator has no shuffles; ``tests/test_numba_cuda.py`` emulates ``shfl_up_sync`` to run this scan.
    """
    compose = space.compose
    identity_a, identity_b = space.identity
    warps = rows // 32

    @cuda.jit(device=True, inline=True)
    def block_scan_shuffle(shared_a, shared_b, x_a, x_b, lane, row):
        w_lane = row % 32
        warp = row // 32
        # ---- inside a warp: Hillis-Steele with shuffles
        d = 1
        while d < 32:
            up_a = cuda.shfl_up_sync(FULL_MASK, x_a, d)
            up_b = cuda.shfl_up_sync(FULL_MASK, x_b, d)
            if w_lane >= d:
                x_a, x_b = compose(up_a, up_b, x_a, x_b)
            d *= 2
        # ---- across warps: warp totals through shared memory
        if w_lane == 31:
            shared_a[warp] = x_a
            shared_b[warp] = x_b
        cuda.syncthreads()
        pre_a, pre_b = identity_a, identity_b
        total_a, total_b = identity_a, identity_b
        for w in range(warps):
            if w < warp:
                pre_a, pre_b = compose(pre_a, pre_b, shared_a[w], shared_b[w])
            total_a, total_b = compose(total_a, total_b, shared_a[w], shared_b[w])
        inc_a, inc_b = compose(pre_a, pre_b, x_a, x_b)
        ex_a = cuda.shfl_up_sync(FULL_MASK, inc_a, 1)
        ex_b = cuda.shfl_up_sync(FULL_MASK, inc_b, 1)
        if w_lane == 0:
            ex_a, ex_b = pre_a, pre_b
        cuda.syncthreads()
        return ex_a, ex_b, total_a, total_b

    return block_scan_shuffle


def _block_scan(space, lanes, rows, shuffle):
    if shuffle:
        return make_block_scan_shuffle(space, rows)
    return make_block_scan_shared(space, lanes, rows)


def make_tile_position(lanes, rows, chunk):
    """Device fn ``(blk, lane, row, outer, inner, tiles) -> (j, c, valid, o, i, t0)``.

    Block ``blk`` is tile ``j`` of channel group ``blk // tiles``; thread
    ``(lane, row)`` owns channel ``c = (o, i)`` (``valid`` when it exists) and
    the chunk starting at step ``t0``.
    """
    tile = rows * chunk

    @cuda.jit(device=True, inline=True)
    def tile_position(blk, lane, row, outer, inner, tiles):
        group = blk // tiles
        j = blk - group * tiles
        c = group * lanes + lane
        valid = c < outer * inner
        o = c // inner
        i = c - o * inner
        return j, c, valid, o, i, j * tile + row * chunk

    return tile_position


def make_load_chunk(chunk):
    """Device fn ``(a, b, ra, rb, o, i, t0, T, valid)``: the chunk's steps into registers, every load first."""

    @cuda.jit(device=True, inline=True)
    def load_chunk(a, b, ra, rb, o, i, t0, T, valid):
        for k in range(chunk):
            if valid and t0 + k < T:
                ra[k] = a[o, t0 + k, i]
                rb[k] = b[o, t0 + k, i]

    return load_chunk


def make_chunk_total(space, chunk):
    """Device fn ``(ra, rb, t0, T, valid) -> pair``: the chunk's pairs (in registers) composed into one."""
    compose = space.compose
    identity_a, identity_b = space.identity

    @cuda.jit(device=True, inline=True)
    def chunk_total(ra, rb, t0, T, valid):
        x_a, x_b = identity_a, identity_b
        for k in range(chunk):
            if valid and t0 + k < T:
                x_a, x_b = compose(x_a, x_b, ra[k], rb[k])
        return x_a, x_b

    return chunk_total


def make_reduce(space, lanes, rows, chunk, shuffle):
    """Kernel ``(a, b, agg_a, agg_b, outer, T, inner, tiles)``: each tile's total pair."""
    dtype = space.nb_dtype
    block_scan = _block_scan(space, lanes, rows, shuffle)
    tile_position = make_tile_position(lanes, rows, chunk)
    load_chunk, chunk_total = make_load_chunk(chunk), make_chunk_total(space, chunk)
    threads = lanes * rows

    def chunked_reduce(a, b, agg_a, agg_b, outer, T, inner, tiles):
        shared_a = cuda.shared.array(threads, dtype)
        shared_b = cuda.shared.array(threads, dtype)
        lane = cuda.threadIdx.x
        row = cuda.threadIdx.y
        j, c, valid, o, i, t0 = tile_position(int64(cuda.blockIdx.x), lane, row, outer, inner, tiles)
        ra = cuda.local.array(chunk, dtype)
        rb = cuda.local.array(chunk, dtype)
        # ---- chunk in registers: loads first, then the composition
        load_chunk(a, b, ra, rb, o, i, t0, T, valid)
        x_a, x_b = chunk_total(ra, rb, t0, T, valid)
        # ---- chunk totals combined across the block
        ex_a, ex_b, total_a, total_b = block_scan(shared_a, shared_b, x_a, x_b, lane, row)
        if valid and row == rows - 1:
            agg_a[o, j, i] = total_a
            agg_b[o, j, i] = total_b

    return chunked_reduce


def make_scan(space, lanes, rows, chunk, shuffle):
    """Kernel ``(a, b, h0, has_h0, out, states, outer, T, inner, tiles)``.

    ``states[o, j - 1, i]`` is the state at the end of tile ``j - 1`` (read only when ``tiles > 1``).
    """
    apply = space.apply
    dtype = space.nb_dtype
    identity_b = space.identity[1]
    block_scan = _block_scan(space, lanes, rows, shuffle)
    tile_position = make_tile_position(lanes, rows, chunk)
    load_chunk, chunk_total = make_load_chunk(chunk), make_chunk_total(space, chunk)
    threads = lanes * rows

    def chunked_scan(a, b, h0, has_h0, out, states, outer, T, inner, tiles):
        shared_a = cuda.shared.array(threads, dtype)
        shared_b = cuda.shared.array(threads, dtype)
        lane = cuda.threadIdx.x
        row = cuda.threadIdx.y
        j, c, valid, o, i, t0 = tile_position(int64(cuda.blockIdx.x), lane, row, outer, inner, tiles)
        ra = cuda.local.array(chunk, dtype)
        rb = cuda.local.array(chunk, dtype)
        # ---- chunk in registers
        load_chunk(a, b, ra, rb, o, i, t0, T, valid)
        x_a, x_b = chunk_total(ra, rb, t0, T, valid)
        # ---- chunk carries: block-level scan of the chunk totals
        ex_a, ex_b, total_a, total_b = block_scan(shared_a, shared_b, x_a, x_b, lane, row)
        # ---- fix-up: state entering this chunk, then the chunk again from registers
        if valid:
            h = identity_b
            if j > 0:
                h = states[o, j - 1, i]
            elif has_h0:
                h = h0[o, i]
            h = apply(ex_a, ex_b, h)
            for k in range(chunk):
                if t0 + k < T:
                    h = apply(ra[k], rb[k], h)
                    out[o, t0 + k, i] = h

    return chunked_scan
