"""Blelloch tile kernel: the textbook work-efficient scan, one element per thread.

Summary of algorithm
--------------------
Block ``(c, j)`` loads tile ``j`` (``BLOCK`` time steps, a power of two) of
channel ``c`` into shared memory, the initial state folded into ``t = 0``
and the identity past ``T``.

- up-sweep: for ``d = 1, 2, 4, ...`` the thread at each right child
  ``k = 2d*m + 2d - 1`` composes its left sibling ``k - d`` into itself;
  the root then holds the tile total.
- down-sweep: the root takes the identity; for ``d = BLOCK/2 .. 1`` each
  right child ``k`` passes its value (the prefix before the parent's
  subtree) to its left sibling and becomes that prefix composed with the
  left sibling's subtree total. Every slot now holds its exclusive prefix.
- inclusive: each thread composes its exclusive prefix with its own element.

O(n) work, 2 log n steps. Longer sequences: :mod:`._multiblock`.
"""

from __future__ import annotations

from numba import cuda, int64


def make_tile(space, block):
    """Kernel with the signature of :func:`.hillis_steele.make_tile`."""
    compose, apply = space.compose, space.apply
    dtype = space.nb_dtype
    identity_a, identity_b = space.identity

    def blelloch_tile(a, b, h0, has_h0, out, local_a, agg_a, agg_b, keep_a, outer, T, inner, tiles):
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

        # ---- up-sweep: right children absorb their left siblings
        d = 1
        while d < block:
            cuda.syncthreads()
            if (k + 1) % (2 * d) == 0:
                na, nb = compose(shared_a[k - d], shared_b[k - d], shared_a[k], shared_b[k])
                shared_a[k] = na
                shared_b[k] = nb
            d *= 2
        cuda.syncthreads()
        total_a = shared_a[block - 1]
        total_b = shared_b[block - 1]
        cuda.syncthreads()
        if k == block - 1:
            shared_a[k] = identity_a
            shared_b[k] = identity_b

        # ---- down-sweep: exclusive prefixes from the root down
        d = block // 2
        while d >= 1:
            cuda.syncthreads()
            if (k + 1) % (2 * d) == 0:
                left_a = shared_a[k - d]
                left_b = shared_b[k - d]
                shared_a[k - d] = shared_a[k]
                shared_b[k - d] = shared_b[k]
                na, nb = compose(shared_a[k], shared_b[k], left_a, left_b)
                shared_a[k] = na
                shared_b[k] = nb
            d //= 2
        cuda.syncthreads()

        # ---- exclusive -> inclusive
        x_a, x_b = compose(shared_a[k], shared_b[k], x_a, x_b)
        if t < T:
            out[o, t, i] = x_b
            if keep_a:
                local_a[o, t, i] = x_a
        if keep_a and k == block - 1:
            agg_a[o, j, i] = total_a
            agg_b[o, j, i] = total_b

    return blelloch_tile
