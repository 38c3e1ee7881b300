"""Sequential kernels: one thread per channel, a loop along T (the fast path for many channels).

Summary of algorithm
--------------------
Thread ``c`` owns channel ``(o, i) = divmod(c, inner)`` and walks
``t = 0 .. T-1`` keeping the state in a register. Consecutive threads own
consecutive ``i``, so with a contiguous ``inner`` every load and store of a
warp is one coalesced 128-byte transaction. Each iteration first loads
``UNROLL`` time steps of every input into registers (a local array that NVVM
keeps in registers because its size is a constant) and only then computes
and stores them: the loads do not wait on the stores (``out`` may alias an
input, so the compiler could not reorder them itself), which keeps
``UNROLL x inputs`` loads in flight per thread.

The backward kernels are fused: they walk ``t = T-1 .. 0`` with the adjoint
in a register and compute the weights of DESIGN section 3 on the fly, so
the backward reads each input once and writes each gradient once.

Grid: 1-D, ``ceil(outer*inner / BLOCK)`` blocks of ``BLOCK`` threads. All
index arithmetic is int64, so any ``outer*T*inner`` is addressed correctly.
"""

from __future__ import annotations

import math

from numba import cuda, int64


def make_forward(space, unroll):
    """Kernel ``(a, b, h0, has_h0, out, outer, T, inner)``: out = the inclusive scan.

    In log space the state carries its rounding error (``low``, see
    ``_spaces.make_log_apply_compensated``): the arithmetic is free in a
    memory-bound loop, and without it a float32 walk drifts where the decay
    is slow and constant. A scan split in two and continued from the last
    state therefore agrees to rounding, not bit for bit.
    """
    dtype, identity_b, zero = space.nb_dtype, space.identity[1], space.zero
    if space.name == "log":
        step = space.apply_compensated
    else:
        linear_apply = space.apply

        @cuda.jit(device=True, inline=True)
        def step(a, b, h, low):
            return linear_apply(a, b, h), low

    def sequential_forward(a, b, h0, has_h0, out, outer, T, inner):
        c = int64(cuda.blockIdx.x) * int64(cuda.blockDim.x) + int64(cuda.threadIdx.x)
        if c >= outer * inner:
            return
        o = c // inner
        i = c - o * inner
        h = h0[o, i] if has_h0 else identity_b
        low = zero
        ra = cuda.local.array(unroll, dtype)
        rb = cuda.local.array(unroll, dtype)
        t0 = int64(0)
        while t0 < T:
            n = min(int64(unroll), T - t0)
            # ---- loads in flight: every input of `unroll` steps first
            for k in range(unroll):
                if k < n:
                    ra[k] = a[o, t0 + k, i]
                    rb[k] = b[o, t0 + k, i]
            # ---- then the dependent chain and the stores
            for k in range(unroll):
                if k < n:
                    h, low = step(ra[k], rb[k], h, low)
                    out[o, t0 + k, i] = h
            t0 += unroll

    return sequential_forward


def make_log_backward(space, unroll):
    """Kernel ``(g, log_a, log_b, log_h, log_h0, has_h0, grad_a, grad_b, grad_h0, outer, T, inner)``."""
    dtype, zero, neg_inf = space.nb_dtype, space.zero, space.neg_inf

    def sequential_log_backward(g, log_a, log_b, log_h, log_h0, has_h0, grad_a, grad_b, grad_h0,
                                outer, T, inner):
        c = int64(cuda.blockIdx.x) * int64(cuda.blockDim.x) + int64(cuda.threadIdx.x)
        if c >= outer * inner:
            return
        o = c // inner
        i = c - o * inner
        rg = cuda.local.array(unroll, dtype)
        ra = cuda.local.array(unroll, dtype)
        rb = cuda.local.array(unroll, dtype)
        rprev = cuda.local.array(unroll, dtype)
        first = log_h0[o, i] if has_h0 else neg_inf
        carry = zero  # w_{t+1} u_{t+1}
        h_t = log_h[o, T - 1, i]
        hi = T - 1
        while hi >= 0:
            n = min(int64(unroll), hi + 1)
            # ---- loads in flight, walking backwards
            for k in range(unroll):
                if k < n:
                    t = hi - k
                    rg[k] = g[o, t, i]
                    ra[k] = log_a[o, t, i]
                    rb[k] = log_b[o, t, i]
                    rprev[k] = log_h[o, t - 1, i] if t > 0 else first
            # ---- adjoint chain: u_t = g_t + w_{t+1} u_{t+1}
            for k in range(unroll):
                if k < n:
                    t = hi - k
                    u = rg[k] + carry
                    if h_t == neg_inf:  # h_t = 0 carries no gradient (and avoids -inf - -inf)
                        w = zero
                        v = zero
                    else:
                        w = math.exp(ra[k] + rprev[k] - h_t)
                        v = math.exp(rb[k] - h_t)
                    grad_a[o, t, i] = u * w
                    grad_b[o, t, i] = u * v
                    carry = u * w
                    h_t = rprev[k]
            hi -= unroll
        if has_h0:
            grad_h0[o, i] = carry

    return sequential_log_backward


def make_linear_backward(space, unroll):
    """Kernel ``(g, a, b, h, h0, has_h0, grad_a, grad_b, grad_h0, outer, T, inner)``; ``b`` is unused."""
    dtype, zero = space.nb_dtype, space.zero

    def sequential_linear_backward(g, a, b, h, h0, has_h0, grad_a, grad_b, grad_h0, outer, T, inner):
        c = int64(cuda.blockIdx.x) * int64(cuda.blockDim.x) + int64(cuda.threadIdx.x)
        if c >= outer * inner:
            return
        o = c // inner
        i = c - o * inner
        rg = cuda.local.array(unroll, dtype)
        ra = cuda.local.array(unroll, dtype)
        rprev = cuda.local.array(unroll, dtype)
        first = h0[o, i] if has_h0 else zero
        carry = zero  # a_{t+1} d_{t+1}
        hi = T - 1
        while hi >= 0:
            n = min(int64(unroll), hi + 1)
            for k in range(unroll):
                if k < n:
                    t = hi - k
                    rg[k] = g[o, t, i]
                    ra[k] = a[o, t, i]
                    rprev[k] = h[o, t - 1, i] if t > 0 else first
            # ---- adjoint chain: d_t = g_t + a_{t+1} d_{t+1}
            for k in range(unroll):
                if k < n:
                    t = hi - k
                    d = rg[k] + carry
                    grad_b[o, t, i] = d
                    grad_a[o, t, i] = d * rprev[k]
                    carry = ra[k] * d
            hi -= unroll
        if has_h0:
            grad_h0[o, i] = carry

    return sequential_linear_backward
