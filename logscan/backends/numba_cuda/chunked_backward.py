"""Fused chunked backward: the adjoint recurrence scanned like :mod:`.chunked`, gradients in the fix-up.

Summary of algorithm
--------------------
The backward of DESIGN section 3 is the reverse linear recurrence
``u_t = w_{t+1} u_{t+1} + g_t`` (``w_{t+1} = exp(log a_{t+1} + log h_t - log h_{t+1})``
in log space, ``a_{t+1}`` in linear space, 0 past the end). The backend
hands these kernels time-reversed views (negative time strides), so in the
reversed index ``s = T-1-t`` it is a forward linear scan of the pairs
``(A_s, B_s) = (w_{t+1}, g_t)``, which the loaders compute on the fly from
the inputs (never stored):

- ``chunked_backward_reduce``: each tile's total pair (chunk in registers,
  block-level scan of the chunk totals), as ``chunked_reduce``;
- carry between blocks: the tile totals are scanned (linear space, chunked)
  into the adjoint entering every tile;
- ``chunked_backward_scan``: chunk in registers, block-level exclusive scan,
  then the fix-up walks the chunk with the adjoint ``u`` and writes the
  gradients directly: ``grad_log_a = u w_t``, ``grad_log_b = u v_t``
  (log space), ``grad_a = u h_{t-1}``, ``grad_b = u`` (linear), and the
  initial state's gradient at ``t = 0``.

Traffic: the first pass reads 3 arrays, the second reads 4 and writes 2
(the composed backward of the tree methods moves about 16 arrays' worth).
"""

from __future__ import annotations

from numba import cuda, int64

from ._elementwise import make_log_weight
from .chunked import _block_scan, make_chunk_total, make_tile_position


def _loaders(space):
    """Device functions of one op's space: the adjoint pair at s, the per-step extras, the gradients."""
    zero, neg_inf = space.zero, space.neg_inf

    if space.name == "log":
        weight = make_log_weight(space)

        @cuda.jit(device=True, inline=True)
        def load_pair(g, a, h, o, s, i):
            # (w_{t+1}, g_t) with t + 1 at reversed index s - 1
            w = zero
            if s > 0:
                w = weight(a[o, s - 1, i] + h[o, s, i], h[o, s - 1, i])
            return w, g[o, s, i]

        @cuda.jit(device=True, inline=True)
        def load_extra(a, b, h, h0, has_h0, o, s, i, T):
            # (w_t, v_t); h_{t-1} sits at reversed index s + 1 (h0 past the end)
            if s + 1 < T:
                prev = h[o, s + 1, i]
            elif has_h0:
                prev = h0[o, i]
            else:
                prev = neg_inf
            h_t = h[o, s, i]
            return weight(a[o, s, i] + prev, h_t), weight(b[o, s, i], h_t)

        @cuda.jit(device=True, inline=True)
        def gradients(u, x, y):
            return u * x, u * y, u * x

    else:
        @cuda.jit(device=True, inline=True)
        def load_pair(g, a, h, o, s, i):
            w = zero
            if s > 0:
                w = a[o, s - 1, i]
            return w, g[o, s, i]

        @cuda.jit(device=True, inline=True)
        def load_extra(a, b, h, h0, has_h0, o, s, i, T):
            # (h_{t-1}, a_t)
            if s + 1 < T:
                prev = h[o, s + 1, i]
            elif has_h0:
                prev = h0[o, i]
            else:
                prev = zero
            return prev, a[o, s, i]

        @cuda.jit(device=True, inline=True)
        def gradients(u, x, y):
            return u * x, u, y * u

    return load_pair, load_extra, gradients


def make_reduce(space, linear, lanes, rows, chunk, shuffle):
    """Kernel ``(g, a, h, agg_a, agg_b, outer, T, inner, tiles)`` on reversed views."""
    dtype = space.nb_dtype
    load_pair, _, _ = _loaders(space)
    block_scan = _block_scan(linear, lanes, rows, shuffle)
    tile_position, chunk_total = make_tile_position(lanes, rows, chunk), make_chunk_total(linear, chunk)
    threads = lanes * rows

    def chunked_backward_reduce(g, a, h, agg_a, agg_b, outer, T, inner, tiles):
        shared_a = cuda.shared.array(threads, dtype)
        shared_b = cuda.shared.array(threads, dtype)
        lane = cuda.threadIdx.x
        row = cuda.threadIdx.y
        j, c, valid, o, i, s0 = tile_position(int64(cuda.blockIdx.x), lane, row, outer, inner, tiles)
        ra = cuda.local.array(chunk, dtype)
        rb = cuda.local.array(chunk, dtype)
        # ---- chunk in registers: the adjoint pairs, computed from the inputs
        for k in range(chunk):
            if valid and s0 + k < T:
                ra[k], rb[k] = load_pair(g, a, h, o, s0 + k, i)
        x_a, x_b = chunk_total(ra, rb, s0, T, valid)
        # ---- chunk totals combined across the block
        ex_a, ex_b, total_a, total_b = block_scan(shared_a, shared_b, x_a, x_b, lane, row)
        if valid and row == rows - 1:
            agg_a[o, j, i] = total_a
            agg_b[o, j, i] = total_b

    return chunked_backward_reduce


def make_scan(space, linear, lanes, rows, chunk, shuffle):
    """Kernel ``(g, a, b, h, h0, has_h0, grad_a, grad_b, grad_h0, states, outer, T, inner, tiles)``, reversed views."""
    apply = linear.apply
    dtype = space.nb_dtype
    identity_b = linear.identity[1]
    load_pair, load_extra, gradients = _loaders(space)
    block_scan = _block_scan(linear, lanes, rows, shuffle)
    tile_position, chunk_total = make_tile_position(lanes, rows, chunk), make_chunk_total(linear, chunk)
    threads = lanes * rows

    def chunked_backward_scan(g, a, b, h, h0, has_h0, grad_a, grad_b, grad_h0, states, outer, T, inner, tiles):
        shared_a = cuda.shared.array(threads, dtype)
        shared_b = cuda.shared.array(threads, dtype)
        lane = cuda.threadIdx.x
        row = cuda.threadIdx.y
        j, c, valid, o, i, s0 = tile_position(int64(cuda.blockIdx.x), lane, row, outer, inner, tiles)
        ra = cuda.local.array(chunk, dtype)
        rb = cuda.local.array(chunk, dtype)
        rx = cuda.local.array(chunk, dtype)
        ry = cuda.local.array(chunk, dtype)
        # ---- chunk in registers: adjoint pairs and the per-step weights
        for k in range(chunk):
            if valid and s0 + k < T:
                ra[k], rb[k] = load_pair(g, a, h, o, s0 + k, i)
                rx[k], ry[k] = load_extra(a, b, h, h0, has_h0, o, s0 + k, i, T)
        x_a, x_b = chunk_total(ra, rb, s0, T, valid)
        # ---- chunk carries: block-level scan of the chunk totals
        ex_a, ex_b, total_a, total_b = block_scan(shared_a, shared_b, x_a, x_b, lane, row)
        # ---- fix-up: the adjoint entering this chunk, then the gradients step by step
        if valid:
            u = identity_b
            if j > 0:
                u = states[o, j - 1, i]
            u = apply(ex_a, ex_b, u)
            for k in range(chunk):
                s = s0 + k
                if s < T:
                    u = apply(ra[k], rb[k], u)
                    d_a, d_b, d_h0 = gradients(u, rx[k], ry[k])
                    grad_a[o, s, i] = d_a
                    grad_b[o, s, i] = d_b
                    if s == T - 1 and has_h0:
                        grad_h0[o, i] = d_h0

    return chunked_backward_scan
