"""Chunked scan in a single pass: tiles chained by decoupled look-back.

Summary of algorithm
--------------------
The tiling of :mod:`.chunked` (``LANES`` channels x ``ROWS`` chunks of
``CHUNK`` steps in registers, a block-level scan of the chunk totals), but
the state entering a tile comes from its predecessors in the same launch
instead of a separate reduce pass, so the inputs are read once:

1. ticket: each block takes the next tile in launch order from an atomic
   counter, so every tile it may wait for belongs to a block already running
   (no deadlock, whatever order the hardware starts blocks in);
2. chunk in registers and the block-level scan, as in ``chunked_scan``;
3. decoupled look-back (one thread per channel lane): publish the tile's
   total pair (status 1), then walk back over the predecessors, composing
   their totals until one has published its inclusive state (status 2);
   the state entering the tile follows, and the tile publishes its own
   inclusive state (status 2). Values are written, then a fence, then the
   status; readers read status and values with atomics (L2, never a stale
   L1 line);
4. fix-up from registers, as in ``chunked_scan``.

The statuses and the ticket live in the workspace and are zeroed before
each launch. All index arithmetic is int64.
"""

from __future__ import annotations

from numba import cuda, int64

from .chunked import _block_scan, make_chunk_total, make_load_chunk, make_tile_position

#: Whether every tile publishes its inclusive state (status 2); the first always does. Only tests set it
#: False, under the simulator: it runs blocks one after another, so a walk back would always stop at the
#: tile just before and never compose totals. With False every walk composes every total down to the first
#: tile, a schedule a GPU may take in part. Read when the simulator runs a kernel; frozen as a constant
#: when a kernel is compiled.
PUBLISH_INCLUSIVE = True


def make_scan(space, lanes, rows, chunk, shuffle):
    """Kernel ``(a, b, h0, has_h0, out, ticket, status, agg_a, agg_b, inclusive, outer, T, inner, tiles)``."""
    compose, apply = space.compose, space.apply
    dtype = space.nb_dtype
    identity_a, identity_b = space.identity
    zero = space.zero
    block_scan = _block_scan(space, lanes, rows, shuffle)
    tile_position = make_tile_position(lanes, rows, chunk)
    load_chunk, chunk_total = make_load_chunk(chunk), make_chunk_total(space, chunk)
    threads = lanes * rows

    def lookback_scan(a, b, h0, has_h0, out, ticket, status, agg_a, agg_b, inclusive, outer, T, inner, tiles):
        shared_a = cuda.shared.array(threads, dtype)
        shared_b = cuda.shared.array(threads, dtype)
        shared_state = cuda.shared.array(lanes, dtype)
        shared_ticket = cuda.shared.array(1, int64)
        lane = cuda.threadIdx.x
        row = cuda.threadIdx.y
        # ---- ticket: tiles in the order blocks start
        if lane == 0 and row == 0:
            shared_ticket[0] = cuda.atomic.add(ticket, 0, 1)
        cuda.syncthreads()
        j, c, valid, o, i, t0 = tile_position(shared_ticket[0], lane, row, outer, inner, tiles)
        ra = cuda.local.array(chunk, dtype)
        rb = cuda.local.array(chunk, dtype)
        # ---- chunk in registers
        load_chunk(a, b, ra, rb, o, i, t0, T, valid)
        x_a, x_b = chunk_total(ra, rb, t0, T, valid)
        # ---- chunk carries inside the tile
        ex_a, ex_b, total_a, total_b = block_scan(shared_a, shared_b, x_a, x_b, lane, row)
        # ---- carry between tiles: decoupled look-back, one thread per lane
        if valid and row == rows - 1:
            state_in = identity_b
            if j == 0:
                if has_h0:
                    state_in = h0[o, i]
            else:
                agg_a[c, j] = total_a
                agg_b[c, j] = total_b
                cuda.threadfence()
                cuda.atomic.exch(status, (c, j), 1)
                acc_a, acc_b = identity_a, identity_b
                before = identity_b
                k = j - 1
                while k >= 0:
                    flag = cuda.atomic.add(status, (c, k), 0)
                    if flag == 0:
                        continue  # predecessor still loading: spin
                    cuda.threadfence()
                    if flag == 2:
                        before = cuda.atomic.add(inclusive, (c, k), zero)
                        break
                    p_a = cuda.atomic.add(agg_a, (c, k), zero)
                    p_b = cuda.atomic.add(agg_b, (c, k), zero)
                    acc_a, acc_b = compose(p_a, p_b, acc_a, acc_b)
                    k -= 1
                state_in = apply(acc_a, acc_b, before)
            if j == 0 or PUBLISH_INCLUSIVE:
                inclusive[c, j] = apply(total_a, total_b, state_in)
                cuda.threadfence()
                cuda.atomic.exch(status, (c, j), 2)
            shared_state[lane] = state_in
        cuda.syncthreads()
        # ---- fix-up from registers
        if valid:
            h = apply(ex_a, ex_b, shared_state[lane])
            for k in range(chunk):
                if t0 + k < T:
                    h = apply(ra[k], rb[k], h)
                    out[o, t0 + k, i] = h

    return lookback_scan
