"""Elementwise kernels: strided copy/cast and fill, and the two ends of the composed backward.

All are 1-D grids with a grid-stride loop over the elements of a 3-D view,
``inner`` fastest, int64 indices.

The composed backward (used with the tree and chunked methods; the
sequential method has a fused kernel) is DESIGN section 3 in three steps:
``backward_prepare`` writes the reverse recurrence's inputs
``(w_{t+1}, g_t)``, a forward linear scan over time-reversed views computes
the adjoint ``u``, and ``backward_finish`` turns ``u`` into the gradients.
"""

from __future__ import annotations

import math

from numba import cuda, int64


@cuda.jit(device=True, inline=True)
def grid_stride():
    """(this thread's first element, the stride) of a 1-D grid-stride loop, in int64."""
    first = int64(cuda.blockIdx.x) * int64(cuda.blockDim.x) + int64(cuda.threadIdx.x)
    return first, int64(cuda.gridDim.x) * int64(cuda.blockDim.x)


@cuda.jit(device=True, inline=True)
def split_index(e, n1, n2):
    """``(i0, i1, i2)`` of flat element ``e`` of an ``(n0, n1, n2)`` array, ``i2`` fastest."""
    r = e // n2
    return r // n1, r % n1, e % n2


def make_copy():
    def copy3(src, dst, n0, n1, n2):
        n = n0 * n1 * n2
        e, step = grid_stride()
        while e < n:
            i0, i1, i2 = split_index(e, n1, n2)
            dst[i0, i1, i2] = src[i0, i1, i2]
            e += step

    return copy3


def make_fill():
    def fill3(dst, value, n0, n1, n2):
        n = n0 * n1 * n2
        e, step = grid_stride()
        while e < n:
            i0, i1, i2 = split_index(e, n1, n2)
            dst[i0, i1, i2] = value
            e += step

    return fill3


def make_log_weight(space):
    zero, neg_inf = space.zero, space.neg_inf

    @cuda.jit(device=True, inline=True)
    def log_weight(log_num, log_h):
        """exp(log_num - log_h) in [0, 1]; 0 where log_h = -inf (no -inf - -inf)."""
        if log_h == neg_inf:
            return zero
        return math.exp(log_num - log_h)

    return log_weight


def make_log_prepare(space):
    """Kernel ``(g, log_a, log_h, weight, grad, outer, T, inner)``: weight_t = w_{t+1} (0 at T-1), grad_t = g_t."""
    zero = space.zero
    weight_of = make_log_weight(space)

    def log_backward_prepare(g, log_a, log_h, weight, grad, outer, T, inner):
        n = outer * T * inner
        e, step = grid_stride()
        while e < n:
            o, t, i = split_index(e, T, inner)
            w = zero
            if t + 1 < T:
                w = weight_of(log_a[o, t + 1, i] + log_h[o, t, i], log_h[o, t + 1, i])
            weight[o, t, i] = w
            grad[o, t, i] = g[o, t, i]
            e += step

    return log_backward_prepare


def make_log_finish(space):
    """Kernel ``(u, log_a, log_b, log_h, log_h0, has_h0, grad_a, grad_b, grad_h0, outer, T, inner)``."""
    neg_inf = space.neg_inf
    weight_of = make_log_weight(space)

    def log_backward_finish(u, log_a, log_b, log_h, log_h0, has_h0, grad_a, grad_b, grad_h0, outer, T, inner):
        n = outer * T * inner
        e, step = grid_stride()
        while e < n:
            o, t, i = split_index(e, T, inner)
            h_t = log_h[o, t, i]
            if t > 0:
                prev = log_h[o, t - 1, i]
            elif has_h0:
                prev = log_h0[o, i]
            else:
                prev = neg_inf
            ut = u[o, t, i]
            w = weight_of(log_a[o, t, i] + prev, h_t)
            grad_a[o, t, i] = ut * w
            grad_b[o, t, i] = ut * weight_of(log_b[o, t, i], h_t)
            if t == 0 and has_h0:
                grad_h0[o, i] = ut * w
            e += step

    return log_backward_finish


def make_linear_prepare(space):
    """Kernel ``(g, a, weight, grad, outer, T, inner)``: weight_t = a_{t+1} (0 at T-1), grad_t = g_t."""
    zero = space.zero

    def linear_backward_prepare(g, a, weight, grad, outer, T, inner):
        n = outer * T * inner
        e, step = grid_stride()
        while e < n:
            o, t, i = split_index(e, T, inner)
            w = zero
            if t + 1 < T:
                w = a[o, t + 1, i]
            weight[o, t, i] = w
            grad[o, t, i] = g[o, t, i]
            e += step

    return linear_backward_prepare


def make_linear_finish(space):
    """Kernel ``(d, a, h, h0, has_h0, grad_a, grad_b, grad_h0, outer, T, inner)``."""
    zero = space.zero

    def linear_backward_finish(d, a, h, h0, has_h0, grad_a, grad_b, grad_h0, outer, T, inner):
        n = outer * T * inner
        e, step = grid_stride()
        while e < n:
            o, t, i = split_index(e, T, inner)
            if t > 0:
                prev = h[o, t - 1, i]
            elif has_h0:
                prev = h0[o, i]
            else:
                prev = zero
            dt = d[o, t, i]
            grad_b[o, t, i] = dt
            grad_a[o, t, i] = dt * prev
            if t == 0 and has_h0:
                grad_h0[o, i] = a[o, 0, i] * dt
            e += step

    return linear_backward_finish
