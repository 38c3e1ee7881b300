"""The textbook tree scans, ``hillis_steele`` and ``blelloch``, on whole-sequence tiles of lanes.

Summary of algorithm
--------------------
A step is the affine map ``h -> a h + b``; composing ``(A1, B1)`` then
``(A2, B2)`` gives ``(A1 + A2, logaddexp(A2 + B1, B2))`` in log space and
``(A1 A2, A2 B1 + B2)`` in linear space (identities ``(0, -inf)`` and
``(1, 0)``). A group of up to ``W`` channels is gathered into tiles
``A[t*W + lane]``, ``B[t*W + lane]`` holding the whole sequence (one tile
slot per thread in the workspace), the lanes being the vectorized
dimension, and the tiles are turned into inclusive prefix compositions:

- ``hillis_steele``: rounds ``d = 1, 2, 4, ...``; in a round every row
  ``t >= d`` absorbs row ``t - d``. Rows are visited from the end so the
  update is in place (row ``t - d`` is read before it changes).
  ``O(T log T)`` combines.
- ``blelloch``: rows padded with identities to ``P = 2**k``; the *up-sweep*
  builds subtree totals in place, the *down-sweep* turns them into exclusive
  prefixes, and a last combine with a saved copy of each row makes them
  inclusive. ``O(T)`` combines.

The inclusive prefix ``(A_t, B_t)`` maps the initial state to ``h_t``:
``h_t = logaddexp(A_t + log_h0, B_t)`` (``B_t`` when there is no ``h0``).

The backward passes build the weights of DESIGN section 3 into tiles
(``w_t`` and ``v_t`` in log space; ``a_t`` and ``h_{t-1}`` in linear space),
lay the reverse recurrence ``u_t = g_t + w_{t+1} u_{t+1}`` out as a forward
linear scan over reversed rows, run the same tree scan on it, and finish
elementwise. These methods exist to be measured against the streaming ones
(``_chunked``): they make ``log2 T`` passes over a tile that does not fit in
cache, and lose at every shape.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from logscan.backends.numba_cpu._geometry import describe
from logscan.backends.numba_cpu._lanes import TIME, gather, group_count, group_lanes, lane_offsets, load_state, scatter
from logscan.backends.numba_cpu._steps import LINEAR, LOG
from logscan.backends.numba_cpu._threading import parallel_kernel
from logscan.backends.numba_cpu._vmath import FASTMATH, vexp, vlogaddexp

_OPTS = dict(fastmath=FASTMATH, error_model="numpy", boundscheck=False)
HILLIS_STEELE, BLELLOCH = 0, 1
_FORWARD_TILES, _BACKWARD_TILES = 4, 6


def padded_length(T, method):
    return 1 << max(T - 1, 0).bit_length() if method == "blelloch" else T


def workspace_elements(op, outer, T, inner, method, W):
    """Tile slots for every thread: (tiles, padded T, W) elements each."""
    tiles = _BACKWARD_TILES if op.endswith("backward") else _FORWARD_TILES
    return int(numba.config.NUMBA_NUM_THREADS) * tiles * padded_length(T, method) * W


# ------------------------------------------------------------------ combine of two rows
@njit(**_OPTS)
def _absorb(space, A, B, first, second, W, n):
    """Row ``second`` <- row ``first`` then row ``second`` (``first`` comes earlier in time)."""
    # row slices, not A[s + lane]: an index that may look negative to LLVM
    # (numba wraps negative indices) would stop the vectorizer
    A_first, B_first = A[first * W: first * W + n], B[first * W: first * W + n]
    A_second, B_second = A[second * W: second * W + n], B[second * W: second * W + n]
    if space == LOG:
        for lane in range(n):
            B_second[lane] = vlogaddexp(A_second[lane] + B_first[lane], B_second[lane])
            A_second[lane] = A_first[lane] + A_second[lane]
    else:
        for lane in range(n):
            B_second[lane] = A_second[lane] * B_first[lane] + B_second[lane]
            A_second[lane] = A_first[lane] * A_second[lane]


@njit(**_OPTS)
def _tree_scan(space, method, A, B, saved_A, saved_B, T, P, W, n, identity_a, identity_b):
    """Rows 0..T-1 of (A, B) become inclusive prefix compositions (rows T..P-1 are padding)."""
    if method == HILLIS_STEELE:
        d = 1
        while d < T:
            for t in range(T - 1, d - 1, -1):
                _absorb(space, A, B, t - d, t, W, n)
            d *= 2
        return
    for t in range(T, P):
        for lane in range(n):
            A[t * W + lane] = identity_a
            B[t * W + lane] = identity_b
    for k in range(P * W):
        saved_A[k] = A[k]
        saved_B[k] = B[k]
    # ------------------------------------------------------------ up-sweep
    d = 1
    while d < P:
        for k in range(2 * d - 1, P, 2 * d):
            _absorb(space, A, B, k - d, k, W, n)
        d *= 2
    # ------------------------------------------------------------ down-sweep
    for lane in range(n):
        A[(P - 1) * W + lane] = identity_a
        B[(P - 1) * W + lane] = identity_b
    d = P // 2
    while d >= 1:
        for k in range(2 * d - 1, P, 2 * d):
            A_left, B_left = A[(k - d) * W: (k - d) * W + n], B[(k - d) * W: (k - d) * W + n]
            A_right, B_right = A[k * W: k * W + n], B[k * W: k * W + n]
            for lane in range(n):
                # left child <- parent's prefix; right <- parent's prefix then left subtree
                left_a, left_b = A_left[lane], B_left[lane]
                A_left[lane], B_left[lane] = A_right[lane], B_right[lane]
                if space == LOG:
                    B_right[lane] = vlogaddexp(left_a + B_right[lane], left_b)
                    A_right[lane] = A_right[lane] + left_a
                else:
                    B_right[lane] = left_a * B_right[lane] + left_b
                    A_right[lane] = A_right[lane] * left_a
        d //= 2
    # ------------------------------------------------------------ exclusive -> inclusive
    for k in range(T * W):  # rows are contiguous: one flat loop over all of them
        if space == LOG:
            B[k] = vlogaddexp(saved_A[k] + B[k], saved_B[k])
            A[k] = A[k] + saved_A[k]
        else:
            B[k] = saved_A[k] * B[k] + saved_B[k]
            A[k] = A[k] * saved_A[k]


@parallel_kernel(cache=True, **_OPTS)
def forward_kernel(space, method, a, b, out, h0, geo, has_h0, outer, T, inner, W, rows_mode, workspace,
                   identity_a, identity_b):
    """Forward scan by a tree method; ``workspace``: (threads, 4, P*W)."""
    P = workspace.shape[2] // W
    dtype = out.dtype
    for group in prange(group_count(outer, inner, W, rows_mode)):
        slot = workspace[numba.get_thread_id()]
        A, B, saved_A, saved_B = slot[0], slot[1], slot[2], slot[3]
        lane_o = np.empty(W, np.int64)
        lane_i = np.empty(W, np.int64)
        offsets = np.empty((3, W), np.int64)
        n = group_lanes(group, outer, inner, W, rows_mode, lane_o, lane_i)
        for stream in range(3):
            lane_offsets(geo, stream, lane_o, lane_i, n, offsets[stream])
        start = np.int64(0)  # run-time values, not literals: one compiled version of each callee (see _chunked)
        gather(a, offsets[0], geo[0, TIME], start, A, W, n, T)
        gather(b, offsets[1], geo[1, TIME], start, B, W, n, T)
        _tree_scan(space, method, A, B, saved_A, saved_B, T, P, W, n, identity_a, identity_b)
        # -------------------------------------------------------- apply to the initial state
        # also without h0 (the empty state): a NaN in log_a[0] must poison h_0 as in the
        # sequential loop (NaN + -inf), while a finite prefix meets -inf and adds nothing
        state = np.empty(W, dtype)
        load_state(h0, geo, np.int64(3), has_h0, identity_b, lane_o, lane_i, n, state)
        for t in range(T):
            A_row, B_row = A[t * W: t * W + n], B[t * W: t * W + n]
            for lane in range(n):
                if space == LOG:
                    B_row[lane] = vlogaddexp(A_row[lane] + state[lane], B_row[lane])
                else:
                    B_row[lane] = A_row[lane] * state[lane] + B_row[lane]
        scatter(B, out, offsets[2], geo[2, TIME], start, W, n, T)


@parallel_kernel(cache=True, **_OPTS)
def backward_kernel(space, method, g, a, b, h, grad_a, grad_b, h0, grad_h0, geo, has_h0, outer, T, inner, W,
                    rows_mode, workspace, identity_b, zero, one, neg_inf):
    """Backward by a tree method; ``workspace``: (threads, 6, P*W)."""
    P = workspace.shape[2] // W
    dtype = g.dtype
    for group in prange(group_count(outer, inner, W, rows_mode)):
        slot = workspace[numba.get_thread_id()]
        A, B, saved_A, saved_B, weight, other = slot[0], slot[1], slot[2], slot[3], slot[4], slot[5]
        lane_o = np.empty(W, np.int64)
        lane_i = np.empty(W, np.int64)
        offsets = np.empty((6, W), np.int64)
        n = group_lanes(group, outer, inner, W, rows_mode, lane_o, lane_i)
        for stream in range(6):
            lane_offsets(geo, stream, lane_o, lane_i, n, offsets[stream])
        start = np.int64(0)  # run-time values, not literals: one compiled version of each callee (see _chunked)
        state = np.empty(W, dtype)
        load_state(h0, geo, np.int64(6), has_h0, identity_b, lane_o, lane_i, n, state)
        # -------------------------------------------------------- weights
        # log: weight = w_t = exp(log_a + log_h_prev - log_h), other = v_t = exp(log_b - log_h)
        # linear: weight = a_t, other = h_{t-1}
        gather(a, offsets[1], geo[1, TIME], start, weight, W, n, T)
        if space == LOG:
            gather(h, offsets[3], geo[3, TIME], start, A, W, n, T)
            gather(b, offsets[2], geo[2, TIME], start, other, W, n, T)
            # the previous state is A one row up; row 0 takes the initial state
            saved_B[:W] = state
            saved_B[W:T * W] = A[:(T - 1) * W]
            for k in range(T * W):  # flat over whole rows: non-negative indices vectorize
                log_h = A[k]
                w = vexp(weight[k] + (saved_B[k] - log_h))  # difference first: exact when close
                v = vexp(other[k] - log_h)
                weight[k] = zero if log_h == neg_inf else w
                other[k] = zero if log_h == neg_inf else v
        else:
            for lane in range(n):
                other[lane] = state[lane]
            if T > 1:
                gather(h, offsets[3], geo[3, TIME], start, other[W:], W, n, T - 1)
        # -------------------------------------------------------- reverse recurrence as a forward scan
        # row s holds time T-1-s: u_s = g_{T-1-s} + w_{T-s} u_{s-1}
        gather(g, offsets[0], geo[0, TIME], start, saved_A, W, n, T)
        for s in range(T):
            for lane in range(n):
                B[s * W + lane] = saved_A[(T - 1 - s) * W + lane]
                A[s * W + lane] = weight[(T - s) * W + lane] if s > 0 else zero
        _tree_scan(np.int64(LINEAR), method, A, B, saved_A, saved_B, T, P, W, n, one, zero)
        # -------------------------------------------------------- gradients
        if space != LOG:
            for lane in range(n):
                state[lane] = weight[lane] * B[(T - 1) * W + lane]  # grad h0 = a_0 u_0
        for t in range(T):
            u_row = B[(T - 1 - t) * W: (T - t) * W]
            weight_row, other_row = weight[t * W: (t + 1) * W], other[t * W: (t + 1) * W]
            for lane in range(n):
                u = u_row[lane]
                if space == LOG:
                    weight_row[lane] = u * weight_row[lane]
                    other_row[lane] = u * other_row[lane]
                else:
                    weight_row[lane] = u * other_row[lane]
                    other_row[lane] = u
        scatter(weight, grad_a, offsets[4], geo[4, TIME], start, W, n, T)
        scatter(other, grad_b, offsets[5], geo[5, TIME], start, W, n, T)
        if has_h0:
            for lane in range(n):
                grad_h0[geo[7, 0] + lane_o[lane] * geo[7, 1] + lane_i[lane] * geo[7, 3]] = (
                    weight[lane] if space == LOG else state[lane])


# ------------------------------------------------------------------ host side
def _slots(workspace, dtype, tiles, T, method, W):
    P = padded_length(T, method)
    slots = int(numba.config.NUMBA_NUM_THREADS)
    return workspace.view(dtype)[: slots * tiles * P * W].reshape(slots, tiles, P * W)


def forward(space, method, a, b, h0, out, workspace, W, rows_min_inner, identity_a, identity_b):
    """Run :func:`forward_kernel` on (outer, T, inner) views (see the backend interface)."""
    outer, T, inner = out.shape
    dtype = out.dtype
    memories, geo = describe([a, b, out, h0], dtype)
    slots = _slots(workspace, dtype, _FORWARD_TILES, T, method, W)
    forward_kernel(space, BLELLOCH if method == "blelloch" else HILLIS_STEELE, *memories, geo, h0 is not None,
                   outer, T, inner, W, inner >= rows_min_inner, slots, identity_a, identity_b)


def backward(space, method, g, a, b, h, h0, grad_a, grad_b, grad_h0, workspace, W, rows_min_inner, identity_b):
    """Run :func:`backward_kernel` on (outer, T, inner) views (see the backend interface)."""
    outer, T, inner = g.shape
    dtype = g.dtype
    memories, geo = describe([g, a, b, h, grad_a, grad_b, h0, grad_h0], dtype)
    slots = _slots(workspace, dtype, _BACKWARD_TILES, T, method, W)
    backward_kernel(space, BLELLOCH if method == "blelloch" else HILLIS_STEELE, *memories, geo, h0 is not None,
                    outer, T, inner, W, inner >= rows_min_inner, slots, identity_b, dtype.type(0), dtype.type(1),
                    dtype.type(-np.inf))
