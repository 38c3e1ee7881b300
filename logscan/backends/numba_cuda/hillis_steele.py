"""Hillis-Steele tile kernel: the textbook inclusive scan, one element per thread.

Summary of algorithm
--------------------
Block ``(c, j)`` loads tile ``j`` (``BLOCK`` consecutive time steps) of
channel ``c`` into shared memory, one pair ``(a_t, b_t)`` per thread, with the
initial state folded into ``t = 0``. Then ``log2 BLOCK`` rounds: in round
``d`` every thread ``k >= d`` composes the pair ``d`` places to its left
with its own (read, barrier, write, barrier), so after the last round thread
``k`` holds the composition of the tile's elements ``0..k``. O(n log n) work,
log n steps. Elements past ``T`` are the identity, so the last thread holds
the tile total.

Longer sequences are handled by :mod:`._multiblock` (carry between blocks).
"""

from __future__ import annotations

from numba import cuda, int64


def make_tile(space, block):
    """Kernel ``(a, b, h0, has_h0, out, local_a, agg_a, agg_b, keep_a, outer, T, inner, tiles)``."""
    compose, apply = space.compose, space.apply
    dtype = space.nb_dtype
    identity_a, identity_b = space.identity

    def hillis_steele_tile(a, b, h0, has_h0, out, local_a, agg_a, agg_b, keep_a, outer, T, inner, tiles):
        shared_a = cuda.shared.array(block, dtype)
        shared_b = cuda.shared.array(block, dtype)
        blk = int64(cuda.blockIdx.x)
        c = blk // tiles
        j = blk - c * tiles
        o = c // inner
        i = c - o * inner
        k = cuda.threadIdx.x
        t = j * block + k
        x_a, x_b = identity_a, identity_b
        if t < T:
            x_a = a[o, t, i]
            x_b = b[o, t, i]
            if t == 0 and has_h0:
                x_b = apply(x_a, x_b, h0[o, i])
        shared_a[k] = x_a
        shared_b[k] = x_b
        cuda.syncthreads()

        # ---- rounds: element k absorbs element k - d
        left_a, left_b = identity_a, identity_b
        d = 1
        while d < block:
            if k >= d:
                left_a = shared_a[k - d]
                left_b = shared_b[k - d]
            cuda.syncthreads()
            if k >= d:
                x_a, x_b = compose(left_a, left_b, x_a, x_b)
                shared_a[k] = x_a
                shared_b[k] = x_b
            cuda.syncthreads()
            d *= 2

        if t < T:
            out[o, t, i] = x_b
            if keep_a:
                local_a[o, t, i] = x_a
        if keep_a and k == block - 1:
            agg_a[o, j, i] = x_a
            agg_b[o, j, i] = x_b

    return hillis_steele_tile
