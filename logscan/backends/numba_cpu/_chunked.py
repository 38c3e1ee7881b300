"""The streaming kernels: ``sequential`` and ``chunked`` (forward and fused backward).

Summary of algorithm
--------------------
``sequential`` is ``chunked`` with one chunk. Time ``[0, T)`` is cut into
``n_chunks`` chunks of ``L`` steps; channels into groups of ``W`` lanes
(see ``_lanes``). A work unit is one (group, chunk): its lanes advance
together through the chunk's time steps, vectorized over the lanes
(``_steps``), so the heavy math runs in SIMD registers and each element is
read and written once per pass. Work units run in parallel, handed to the
threads one at a time (``_work``: a slowed core then holds up no one).

Forward (state flows left to right):

1. *chunk totals*: every chunk but the last composes its steps into one
   affine step ``(A, B)`` (log space ``h -> logaddexp(A + h, B)``), writing
   no output.
2. *carry between chunks*: per channel, a sequential pass over the
   ``n_chunks`` totals turns them into the state entering each chunk
   (``h0`` enters chunk 0). This is the only part that is not parallel and
   it touches ``n_chunks`` values per channel.
3. *re-scan*: every chunk scans again from its entering state and writes
   the output. Reading the inputs twice costs less than a fix-up pass
   (which would read the output back and need the prefix sums of ``A``).

Backward (the carry ``w_{t+1} u_{t+1}`` flows right to left) has the same
three phases mirrored: chunk totals ``carry -> P carry + Q`` for every chunk
but the first, the carries from right to left, and the fused reverse pass
per chunk writing both gradients (and ``grad_h0`` from chunk 0).

With one chunk, phases 1 and 2 vanish: a single pass over the data, the
parallelism coming from the channel groups only.

The log-space forward of a few long sequences uses :func:`forward_split`
instead: every chunk scanned at once (the later ones from the empty state),
then each chunk's entering state folded in by a pass with no dependency from
row to row. It moves the output once more but shortens the scan's latency
chain by the number of chunks, which is what bounds a group of few lanes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from logscan.backends.numba_cpu._lanes import (
    TIME,
    gather,
    group_count,
    group_lanes,
    lane_offsets,
    load_state,
    scatter,
    store_state,
)
from logscan.backends.numba_cpu._prefetch import prefetch_distance
from logscan.backends.numba_cpu._steps import (
    LOG,
    add_carry_steps,
    backward_steps,
    backward_total,
    forward_steps,
    forward_total,
    sum_log_decay,
)
from logscan.backends.numba_cpu._threading import parallel_kernel
from logscan.backends.numba_cpu._vmath import FASTMATH, vlogaddexp
from logscan.backends.numba_cpu._work import new_counter, units

_OPTS = dict(fastmath=FASTMATH, error_model="numpy", boundscheck=False)
BLOCK_BYTES = 16384     # rows per block in forward_split: its rows of log a are summed while in L1
# lanes x steps per gathered tile: 32 KiB of float32. With the gather done by register transposes,
# bigger tiles save per-tile calls ((4096, 2048) along axis -1: forward 9.9 ms at 1024, 7.5 at 8192).
TILE_ELEMENTS = 8192

# Constants passed to the step kernels go as np.int64(...) / np.bool_(...): numba compiles a separate
# version of a callee for every literal argument (0, False, LOG), and each top-level kernel links in and
# generates machine code for every version it calls. Typed as run-time values, the tile paths, the first
# row and every kernel share one version of each step kernel.

# forward geometry rows
_A, _B, _OUT, _H0 = 0, 1, 2, 3
# backward geometry rows
_G, _BA, _BB, _BH, _GA, _GB, _BH0, _GH0 = 0, 1, 2, 3, 4, 5, 6, 7


@njit(**_OPTS)
def _chunk_bounds(T, n_chunks):
    length = (T + n_chunks - 1) // n_chunks
    return length, (T + length - 1) // length


@njit(**_OPTS)
def _split_starts(T, n_chunks, first_weight):
    """Chunk ``k`` of :func:`forward_split` covers ``[starts[k], starts[k + 1])``; chunk 0 is ``first_weight`` times
    as long as each of the others, which also sum their log a as they scan."""
    starts = np.empty(n_chunks + 1, np.int64)
    length = T / (n_chunks - 1 + first_weight)
    starts[0] = 0
    for k in range(1, n_chunks):
        starts[k] = min(T, int(first_weight * length + (k - 1) * length + 0.5))
    starts[n_chunks] = T
    return starts


@njit(**_OPTS)
def _group(geo, n_streams, group, outer, inner, W, rows_mode):
    """(lanes, lane_o, lane_i, offsets) of one lane group; ``offsets[s]`` for geometry rows ``s < n_streams``."""
    lane_o = np.empty(W, np.int64)
    lane_i = np.empty(W, np.int64)
    n = group_lanes(group, outer, inner, W, rows_mode, lane_o, lane_i)
    offsets = np.empty((n_streams, W), np.int64)
    for stream in range(n_streams):
        lane_offsets(geo, stream, lane_o, lane_i, n, offsets[stream])
    return n, lane_o, lane_i, offsets


@njit(**_OPTS)
def _falling_sweep(step, n, *time_strides):
    """True when, in every stream, each row of ``n`` lanes ends where the row walked before it begins.

    ``step`` is +1 for a pass walking its rows forwards in time, -1 for the
    reverse passes. Each stream is then one block walked from its end to its
    start, and walking the lanes of each row downwards too (``descending``
    in ``_steps``) makes that a single falling sweep, which the hardware
    prefetchers follow; lanes in rising order broke it into short rising runs
    moving down. On the 2-core AVX-512 VM, float32, best of 20 interleaved
    calls into given outputs, backward (rows walked downwards): (4, 4096,
    256) 3.4-5.7 against 7.9-10.3 ms, (1, 65536, 64) 7.2-10.3 against
    8.2-16.2, (8, 2048, 512) 7.6-12.3 against 10.5-11.7. Where rows are apart
    (a group of 1024 lanes of a 4096-wide row) the lanes stay in rising order
    (falling, (1, 2048, 4096) took 16 against 10.6 ms) and the backward keeps
    its software prefetch of short rows. A stream that stays put (stride 0:
    a broadcast input, such as the zero decay of ``logcumsumexp``) does not
    count.
    """
    for stride in time_strides:
        if stride != 0 and stride * step != -n:
            return False
    return True


@parallel_kernel(cache=True, **_OPTS)
def forward(space, compensate, a, b, out, h0, geo, has_h0, outer, T, inner, W, rows_mode, direct, n_chunks,
            workspace, identity_a, identity_b):
    """Forward scan of every channel; see the module docstring. ``workspace``: (2, n_chunks, outer*inner).

    ``compensate`` keeps the rounding error of the log-space state (``_steps.forward_steps``).
    """
    length, n_chunks = _chunk_bounds(T, n_chunks)
    n_groups = group_count(outer, inner, W, rows_mode)
    tile_steps = max(1, TILE_ELEMENTS // W)
    dtype = out.dtype
    origin, rising = np.int64(0), np.bool_(False)

    # ---------------------------------------------------------------- chunk totals
    if n_chunks > 1:
        n_units = n_groups * (n_chunks - 1)
        claimed = new_counter()
        for _ in prange(n_units):
            for unit in units(claimed, n_units):
                group, chunk = unit // (n_chunks - 1), unit % (n_chunks - 1)
                n, lane_o, lane_i, offsets = _group(geo, np.int64(2), group, outer, inner, W, rows_mode)
                off_a, off_b = offsets[_A], offsets[_B]
                total_a = np.full(W, identity_a, dtype)
                total_b = np.full(W, identity_b, dtype)
                total_b_low = np.zeros(W, dtype)
                t0 = chunk * length
                t1 = min(T, t0 + length)
                sa, sb = geo[_A, TIME], geo[_B, TIME]
                if direct:
                    forward_total(space, compensate, a, off_a[0] + t0 * sa, sa, b, off_b[0] + t0 * sb, sb,
                                  total_a, total_b, total_b_low, n, t1 - t0, _falling_sweep(1, n, sa, sb))
                else:
                    tile_a = np.empty(W * tile_steps, dtype)
                    tile_b = np.empty(W * tile_steps, dtype)
                    for tt in range(t0, t1, tile_steps):
                        m = min(tile_steps, t1 - tt)
                        gather(a, off_a, sa, tt, tile_a, W, n, m)
                        gather(b, off_b, sb, tt, tile_b, W, n, m)
                        forward_total(space, compensate, tile_a, origin, W, tile_b, origin, W, total_a, total_b,
                                      total_b_low, n, m, rising)
                for lane in range(n):
                    c = lane_o[lane] * inner + lane_i[lane]
                    workspace[0, chunk, c] = total_a[lane]
                    workspace[1, chunk, c] = total_b[lane]

        # ------------------------------------------------------- carry between chunks
        # afterwards workspace[0, k, c] is the state entering chunk k + 1
        state = np.empty(1, dtype)
        for c in range(outer * inner):
            lane_o1 = np.full(1, c // inner, np.int64)
            lane_i1 = np.full(1, c % inner, np.int64)
            load_state(h0, geo, _H0, has_h0, identity_b, lane_o1, lane_i1, 1, state)
            carry = state[0]
            for k in range(n_chunks - 1):
                if space == LOG:
                    carry = vlogaddexp(workspace[0, k, c] + carry, workspace[1, k, c])
                else:
                    carry = workspace[0, k, c] * carry + workspace[1, k, c]
                workspace[0, k, c] = carry

    # ---------------------------------------------------------------- re-scan with carries
    n_units = n_groups * n_chunks
    claimed = new_counter()
    for _ in prange(n_units):
        for unit in units(claimed, n_units):
            group, chunk = unit // n_chunks, unit % n_chunks
            n, lane_o, lane_i, offsets = _group(geo, np.int64(3), group, outer, inner, W, rows_mode)
            off_a, off_b, off_out = offsets[_A], offsets[_B], offsets[_OUT]
            h = np.empty(W, dtype)
            h_low = np.zeros(W, dtype)
            if chunk == 0:
                load_state(h0, geo, _H0, has_h0, identity_b, lane_o, lane_i, n, h)
            else:
                for lane in range(n):
                    h[lane] = workspace[0, chunk - 1, lane_o[lane] * inner + lane_i[lane]]
            t0 = chunk * length
            t1 = min(T, t0 + length)
            sa, sb, so = geo[_A, TIME], geo[_B, TIME], geo[_OUT, TIME]
            if direct:
                forward_steps(space, compensate, a, off_a[0] + t0 * sa, sa, b, off_b[0] + t0 * sb, sb,
                              out, off_out[0] + t0 * so, so, h, h_low, n, t1 - t0, _falling_sweep(1, n, sa, sb, so))
            else:
                tile_a = np.empty(W * tile_steps, dtype)
                tile_b = np.empty(W * tile_steps, dtype)
                tile_out = np.empty(W * tile_steps, dtype)
                for tt in range(t0, t1, tile_steps):
                    m = min(tile_steps, t1 - tt)
                    gather(a, off_a, sa, tt, tile_a, W, n, m)
                    gather(b, off_b, sb, tt, tile_b, W, n, m)
                    forward_steps(space, compensate, tile_a, origin, W, tile_b, origin, W, tile_out, origin, W,
                                  h, h_low, n, m, rising)
                    scatter(tile_out, out, off_out, so, tt, W, n, m)


@parallel_kernel(cache=True, **_OPTS)
def forward_split(a, b, out, h0, geo, has_h0, outer, T, inner, W, n_chunks, pieces, first_weight, workspace, zero,
                  neg_inf, negligible):
    """Log-space forward, compensated, with every chunk of time scanned at once (few channels, several threads).

    For lanes read in place (``direct``). ``workspace``: ``(2 + pieces, n_chunks, outer*inner)``.

    1. Every chunk is scanned at the same time: chunk 0 from ``h0``, the
       others from the empty state, writing their rows of ``out``; each of
       those also sums its log a (compensated), noting the sum before each
       of its ``pieces`` pieces (``workspace[2 + j]``) and at its end
       (``workspace[0]``); the last chunk stops summing where its last
       piece begins, since no state leaves it. Every chunk notes its last
       state (``workspace[1]``). Chunk 0, which sums nothing, is
       ``first_weight`` times as long as the others (:func:`_split_starts`),
       so that the threads finish together.
    2. Per channel, a sequential pass over the chunks gives the state
       entering each: ``carry_{k+1} = logaddexp(A_k + carry_k, R_k)``.
    3. Every piece of every chunk but the first folds its carry in, in
       place: ``out_t = logaddexp(A_t + carry, out_t)``, until the carry's
       share has faded below ``exp(negligible)`` in every lane
       (:func:`_steps.add_carry_steps`): with decays below 1 that is after
       a few dozen rows, and the later pieces stop at their first block.

    Unlike the totals-then-rescan of :func:`forward`, the scans of step 1 run
    side by side, and step 3 has no dependency from row to row (it runs at
    the core's throughput, not along the scan's latency chain), so two
    threads already gain.
    """
    starts = _split_starts(T, n_chunks, first_weight)
    rows_per_block = max(1, BLOCK_BYTES // (W * a.itemsize))
    n_groups = group_count(outer, inner, W, True)
    dtype = out.dtype
    sa, sb, so = geo[_A, TIME], geo[_B, TIME], geo[_OUT, TIME]
    space, compensate = np.int64(LOG), np.bool_(True)

    # ---------------------------------------------------------------- 1. all chunks at once
    n_units = n_groups * n_chunks
    claimed = new_counter()
    for _ in prange(n_units):
        for unit in units(claimed, n_units):
            group, chunk = unit // n_chunks, unit % n_chunks
            n, lane_o, lane_i, offsets = _group(geo, np.int64(3), group, outer, inner, W, np.bool_(True))
            off_a, off_b, off_out = offsets[_A], offsets[_B], offsets[_OUT]
            h = np.full(W, neg_inf, dtype)
            h_low = np.zeros(W, dtype)
            if chunk == 0:
                load_state(h0, geo, _H0, has_h0, neg_inf, lane_o, lane_i, n, h)
            total = np.zeros(W, dtype)
            total_low = np.zeros(W, dtype)
            wide = np.empty(W, np.float64)
            part = np.empty(W, dtype)
            c0 = lane_o[0] * inner + lane_i[0]  # lanes are consecutive channels
            t0, t1 = starts[chunk], starts[chunk + 1]
            piece_length = (t1 - t0 + pieces - 1) // pieces
            for piece in range(pieces):
                for lane in range(n):
                    workspace[2 + piece, chunk, c0 + lane] = total[lane]
                p0 = min(t1, t0 + piece * piece_length)
                p1 = min(t1, p0 + piece_length)
                # chunk 0 needs no sum; the last chunk only the sums entering its pieces (step 3)
                summed = chunk > 0 and (chunk < n_chunks - 1 or piece < pieces - 1)
                for r0 in range(p0, p1, rows_per_block):
                    r1 = min(p1, r0 + rows_per_block)
                    forward_steps(space, compensate, a, off_a[0] + r0 * sa, sa, b, off_b[0] + r0 * sb, sb,
                                  out, off_out[0] + r0 * so, so, h, h_low, n, r1 - r0, _falling_sweep(1, n, sa, sb, so))
                    if summed:  # the rows just read are still in cache
                        sum_log_decay(a, off_a[0] + r0 * sa, sa, total, total_low, wide, part, n, r1 - r0, zero,
                                      neg_inf)
            for lane in range(n):
                workspace[0, chunk, c0 + lane] = total[lane]
                workspace[1, chunk, c0 + lane] = h[lane]

    # ---------------------------------------------------------------- 2. the state entering each chunk
    # afterwards workspace[1, k, c] is the state entering chunk k (k >= 1)
    for c in range(outer * inner):
        carry = workspace[1, 0, c]
        for k in range(1, n_chunks):
            entering = carry
            carry = vlogaddexp(workspace[0, k, c] + carry, workspace[1, k, c])
            workspace[1, k, c] = entering

    # ---------------------------------------------------------------- 3. fold the carries in
    n_units = n_groups * (n_chunks - 1) * pieces
    claimed = new_counter()
    for _ in prange(n_units):
        for unit in units(claimed, n_units):
            group, rest = unit // ((n_chunks - 1) * pieces), unit % ((n_chunks - 1) * pieces)
            chunk, piece = 1 + rest // pieces, rest % pieces
            n, lane_o, lane_i, offsets = _group(geo, np.int64(3), group, outer, inner, W, np.bool_(True))
            off_a, off_out = offsets[_A], offsets[_OUT]
            c0 = lane_o[0] * inner + lane_i[0]
            carry = np.empty(W, dtype)
            total = np.empty(W, dtype)
            for lane in range(n):
                carry[lane] = workspace[1, chunk, c0 + lane]
                total[lane] = workspace[2 + piece, chunk, c0 + lane]
            total_low = np.zeros(W, dtype)
            chunk_start, chunk_end = starts[chunk], starts[chunk + 1]
            piece_length = (chunk_end - chunk_start + pieces - 1) // pieces
            p0 = min(chunk_end, chunk_start + piece * piece_length)
            p1 = min(chunk_end, p0 + piece_length)
            add_carry_steps(a, off_a[0] + p0 * sa, sa, out, off_out[0] + p0 * so, so, carry, total, total_low, n,
                            p1 - p0, zero, neg_inf, negligible)


@njit(**_OPTS)
def _backward_run(space, g, a, b, h, grad_a, grad_b, geo, W, direct, t0, t1, lane_offs, h_first, carry, n,
                  tile_steps, tiles, total_only, product, zero, neg_inf):
    """Reverse pass over ``[t0, t1)`` for one lane group (rows t1-1 down to t0).

    ``h_first`` holds the state before step 0 (used when ``t0 == 0``);
    ``total_only`` composes the run into ``carry -> product carry + carry0``
    instead of writing gradients.
    """
    off_g, off_a, off_b, off_h, off_ga, off_gb = (lane_offs[0], lane_offs[1], lane_offs[2], lane_offs[3],
                                                  lane_offs[4], lane_offs[5])
    sg, sa, sb, sh = geo[_G, TIME], geo[_BA, TIME], geo[_BB, TIME], geo[_BH, TIME]
    sga, sgb = geo[_GA, TIME], geo[_GB, TIME]
    origin, rising = np.int64(0), np.bool_(False)
    if direct:
        # rows with a previous row in memory, then step 0 with the initial state
        descending = _falling_sweep(-1, n, sg, sa, sb, sh, sga, sgb)
        ahead = 0 if descending else prefetch_distance(n, g.itemsize)  # (gathered tiles below are in L1)
        lo = max(t0, 1)
        if t1 > lo:
            if total_only:
                backward_total(space, g, off_g[0] + lo * sg, sg, a, off_a[0] + lo * sa, sa,
                               h, off_h[0] + lo * sh, sh, h, off_h[0] + (lo - 1) * sh, sh,
                               product, carry, n, t1 - lo, zero, neg_inf, descending, ahead)
            else:
                backward_steps(space, g, off_g[0] + lo * sg, sg, a, off_a[0] + lo * sa, sa,
                               b, off_b[0] + lo * sb, sb, h, off_h[0] + lo * sh, sh,
                               h, off_h[0] + (lo - 1) * sh, sh, grad_a, off_ga[0] + lo * sga, sga,
                               grad_b, off_gb[0] + lo * sgb, sgb, carry, n, t1 - lo, zero, neg_inf,
                               descending, ahead)
        if t0 == 0:
            if total_only:
                backward_total(space, g, off_g[0], sg, a, off_a[0], sa, h, off_h[0], sh, h_first, origin, origin,
                               product, carry, n, np.int64(1), zero, neg_inf, descending, origin)
            else:
                backward_steps(space, g, off_g[0], sg, a, off_a[0], sa, b, off_b[0], sb, h, off_h[0], sh,
                               h_first, origin, origin, grad_a, off_ga[0], sga, grad_b, off_gb[0], sgb,
                               carry, n, np.int64(1), zero, neg_inf, descending, origin)
        return
    tile_g, tile_a, tile_b, tile_h, tile_hp, tile_ga, tile_gb = (tiles[0], tiles[1], tiles[2], tiles[3],
                                                                 tiles[4], tiles[5], tiles[6])
    n_tiles = (t1 - t0 + tile_steps - 1) // tile_steps
    for back in range(n_tiles):
        tt = t0 + (n_tiles - 1 - back) * tile_steps
        m = min(tile_steps, t1 - tt)
        gather(g, off_g, sg, tt, tile_g, W, n, m)
        gather(a, off_a, sa, tt, tile_a, W, n, m)
        if space == LOG:
            gather(h, off_h, sh, tt, tile_h, W, n, m)
            if not total_only:
                gather(b, off_b, sb, tt, tile_b, W, n, m)
        # previous states: rows tt-1 .. tt+m-2, the initial state standing in for row -1
        if tt >= 1:
            gather(h, off_h, sh, tt - 1, tile_hp, W, n, m)
        else:
            for lane in range(n):
                tile_hp[lane] = h_first[lane]
            gather(h, off_h, sh, 0, tile_hp[W:], W, n, m - 1)
        if total_only:
            backward_total(space, tile_g, origin, W, tile_a, origin, W, tile_h, origin, W, tile_hp, origin, W,
                           product, carry, n, m, zero, neg_inf, rising, origin)
        else:
            backward_steps(space, tile_g, origin, W, tile_a, origin, W, tile_b, origin, W, tile_h, origin, W,
                           tile_hp, origin, W, tile_ga, origin, W, tile_gb, origin, W, carry, n, m, zero, neg_inf,
                           rising, origin)
            scatter(tile_ga, grad_a, off_ga, sga, tt, W, n, m)
            scatter(tile_gb, grad_b, off_gb, sgb, tt, W, n, m)


@parallel_kernel(cache=True, **_OPTS)
def backward(space, g, a, b, h, grad_a, grad_b, h0, grad_h0, geo, has_h0, outer, T, inner, W, rows_mode,
             direct, n_chunks, workspace, identity_b, zero, neg_inf):
    """Fused reverse pass of every channel; see the module docstring. ``workspace``: (2, n_chunks, outer*inner)."""
    length, n_chunks = _chunk_bounds(T, n_chunks)
    n_groups = group_count(outer, inner, W, rows_mode)
    tile_steps = max(1, TILE_ELEMENTS // W)
    dtype = g.dtype

    # ---------------------------------------------------------------- chunk totals (chunks 1 ..)
    if n_chunks > 1:
        n_units = n_groups * (n_chunks - 1)
        claimed = new_counter()
        for _ in prange(n_units):
            for unit in units(claimed, n_units):
                group, chunk = unit // (n_chunks - 1), 1 + unit % (n_chunks - 1)
                n, lane_o, lane_i, lane_offs = _group(geo, np.int64(6), group, outer, inner, W, rows_mode)
                product = np.ones(W, dtype)
                carry = np.full(W, zero, dtype)
                tiles = np.empty((1, 1), dtype) if direct else np.empty((7, W * tile_steps), dtype)
                t0 = chunk * length
                _backward_run(space, g, a, b, h, grad_a, grad_b, geo, W, direct, t0, min(T, t0 + length),
                              lane_offs, carry, carry, n, tile_steps, tiles, np.bool_(True), product, zero,
                              neg_inf)
                for lane in range(n):
                    c = lane_o[lane] * inner + lane_i[lane]
                    workspace[0, chunk, c] = product[lane]
                    workspace[1, chunk, c] = carry[lane]

        # ------------------------------------------------------- carry between chunks (right to left)
        # afterwards workspace[0, k, c] is the carry entering chunk k - 1 from the right
        for c in range(outer * inner):
            carry_in = zero
            for k in range(n_chunks - 1, 0, -1):
                carry_in = workspace[0, k, c] * carry_in + workspace[1, k, c]
                workspace[0, k, c] = carry_in

    # ---------------------------------------------------------------- fused reverse pass per chunk
    n_units = n_groups * n_chunks
    claimed = new_counter()
    for _ in prange(n_units):
        for unit in units(claimed, n_units):
            group, chunk = unit // n_chunks, unit % n_chunks
            n, lane_o, lane_i, lane_offs = _group(geo, np.int64(6), group, outer, inner, W, rows_mode)
            carry = np.full(W, zero, dtype)
            if chunk < n_chunks - 1:
                for lane in range(n):
                    carry[lane] = workspace[0, chunk + 1, lane_o[lane] * inner + lane_i[lane]]
            h_first = np.empty(W, dtype)
            if chunk == 0:
                load_state(h0, geo, _BH0, has_h0, identity_b, lane_o, lane_i, n, h_first)
            tiles = np.empty((1, 1), dtype) if direct else np.empty((7, W * tile_steps), dtype)
            t0 = chunk * length
            _backward_run(space, g, a, b, h, grad_a, grad_b, geo, W, direct, t0, min(T, t0 + length),
                          lane_offs, h_first, carry, n, tile_steps, tiles, np.bool_(False), carry, zero, neg_inf)
            if chunk == 0 and has_h0:
                # the carry leaving step 0 is w_0 u_0 (log) or a_0 d_0 (linear): the gradient of h0
                store_state(carry, grad_h0, geo, _GH0, lane_o, lane_i, n)
