"""Inner loops: a run of time steps for a block of channel lanes, vectorized over the lanes.

Summary of algorithm
--------------------
Every kernel of this backend comes down to "advance ``n`` independent
channels through ``steps`` time steps". The channels of one block sit at
consecutive addresses (``row[i]``, ``i < n``): either straight in the
caller's memory (inner axis contiguous) or in a small tile the driver has
gathered them into. A stream is described by ``(memory, offset, time
stride)``: row ``j`` of the run is ``memory[offset + j*stride : ... + n]``.
The loop over lanes is the innermost loop and holds only vectorizable
arithmetic (see ``_vmath``), so LLVM turns it into AVX-512/AVX2 code; the
loop over time carries the recurrence.

The reverse passes walk rows from the last to the first, and the forward
passes of a reversed scan walk them from high addresses to low. With
``descending`` a pass walks the lanes of each row from the last to the
first too, which makes rows lying end to end one falling sweep through
memory that the hardware prefetchers follow (see
``_chunked._falling_sweep``; the lane loops come from :func:`lane_loop`).
Otherwise the reverse passes read short rows ``ahead`` rows in advance with
software prefetch (``_prefetch``; 0 for long rows and for tiles already in
L1).

The forward's log-space step takes two loops over the lanes of a row: the
first keeps the decayed state ``x = log_a + h`` in ``h`` and writes the ratio
``exp(-|x - log_b|)`` into the output row, the second finishes the
``logaddexp`` from it (the ``log1p`` and the sums) and writes the new state
over it. One step is a chain of ~80 cycles of dependent operations per vector
of lanes, and the core keeps only so many operations in flight: two chains
of half the length keep about twice the lanes going (float32, one thread, in
cache: 512 lanes 1.50 to 1.25 ns per element, 64 lanes 1.86 to 1.60; same bits;
see docs/performance.rst). The linear step writes the output row in its one
loop. Where the output shares memory with an input (in-place use, ``out``
being ``log_b``) the log step stays one loop (the output row is ``log_b``,
still to be read): the results go to the state array first and a second loop
copies them to the output row (a loop writing the output row would run
scalar there, behind LLVM's runtime overlap check: 9.8 against 1.3 ns per
element, 512 lanes in cache).

Rows of at most ``NARROW_LANES`` lanes take builds of :func:`forward_steps`
and :func:`backward_steps` with the lane loops inlined into the loop over
time, which spares a call per row; wider rows keep the calls, and so do
in-place forwards (fewer inlined loops, less to compile).

``space`` is ``LOG`` (``h = logaddexp(log_a + h, log_b)``) or ``LINEAR``
(``h = a h + b``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from logscan.backends.numba_cpu._prefetch import prefetch_row
from logscan.backends.numba_cpu._vmath import (
    FASTMATH,
    vexp,
    vlogaddexp,
    vlogaddexp_compensated,
    vlogaddexp_compensated_from_ratio,
    vlogaddexp_from_ratio,
    vlogaddexp_ratio,
)

LOG = 0
LINEAR = 1
# No reference counting (numba's ``_nrt=False``): these loops only take views of arrays their callers
# own, and with it every per-row slice cost a pair of out-of-line atomic NRT_incref/NRT_decref calls
# (measured: the float32 backward of 64 lanes, 1.75 -> 1.35 ns per element in cache, 3.7 -> 1.7 out of it).
_OPTS = dict(fastmath=FASTMATH, error_model="numpy", boundscheck=False, _nrt=False)
# Up to this many lanes a row, the lane loops of forward_steps and backward_steps are inlined into their loop
# over time: a call costs ~18 ns, much of a narrow row. (Forward, float32, compensated, one thread, in cache,
# best of 30, ns per element: 16 lanes 4.52 -> 2.91, 32 lanes 3.08 -> 2.20, 64 lanes 2.30 -> 2.13; but 128
# lanes 1.53 -> 1.67 and 512 lanes 1.30 -> 1.76, where LLVM rebuilds the step's ~24 vector constants in every
# row. Backward at full shape, (1, 65536, 64): 20.0 -> 17.4 ms median. docs/performance.rst has the rest.)
NARROW_LANES = 64


def lane_loop(body, inline=False):
    """A loop ``loop(n, descending, *args)`` calling ``body(i, *args)`` for every lane ``i < n``.

    From the last lane to the first when ``descending``. ``body`` is a
    ``forceinline`` function of one lane, so the loop vectorizes. (Written
    out in a kernel that has several such loops, a loop counting down was
    left scalar by LLVM: 9 against 1.2 ns per element; as a function of its
    own it vectorizes. A function passed as an argument instead of built in
    here would keep the kernels from numba's disk cache.) With ``inline``
    the loop is inlined into its caller: see ``NARROW_LANES``.
    """

    @njit(forceinline=inline, **_OPTS)
    def loop(n, descending, *args):
        if descending:
            for i in range(n - 1, -1, -1):
                body(i, *args)
        else:
            for i in range(n):
                body(i, *args)

    return loop


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _decayed_state(log_a, h, h_low):
    """``(x, low)`` with ``x + low = log_a + h + h_low``: the decayed state and its compensation.

    The rounding of ``log_a + h`` goes into ``low`` with the state's own:
    with a slow constant decay that rounding has the same sign every step,
    and dropped it made float32 drift by 1.3e-4 at T = 65 536 (log a =
    -1e-4). It is taken by Fast2Sum (``log_a - (x - h)``, 2 operations
    instead of TwoSum's 5), exact when ``|h| >= |log_a|``: wherever the
    rounding could pile up the decay is slow, so ``|log_a|`` is small. Where
    ``|h| < |log_a|`` the term is off by at most about ``ulp(log_a)``, and
    that error fades with the state within about ``1/|log_a|`` steps, so it
    never grows past a few ulp. Where ``x`` is not finite ``low`` is nan,
    which ``vlogaddexp_compensated`` never lets into a result (no select
    here: one vector operation less per step).
    """
    x = h + log_a
    err = log_a - (x - h)
    return x, h_low + err


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _log_compensated_lane(i, ra, rb, h, h_low):
    x, low = _decayed_state(ra[i], h[i], h_low[i])
    h[i], h_low[i] = vlogaddexp_compensated(x, rb[i], low)


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _log_lane(i, ra, rb, h):
    h[i] = vlogaddexp(ra[i] + h[i], rb[i])


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _linear_lane(i, ra, rb, h):
    h[i] = ra[i] * h[i] + rb[i]


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _copy_lane(i, dst, src):
    dst[i] = src[i]


# The forward's log-space step in two loops over the lanes (see the module docstring): the first keeps the
# decayed state in ``h`` (and ``h_low``) and puts the ratio exp(-|x - log_b|) in the output row, the second
# finishes the step from it and writes the new state over it.
@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _log_compensated_ratio_lane(i, ro, ra, rb, h, h_low):
    x, low = _decayed_state(ra[i], h[i], h_low[i])
    h[i], h_low[i] = x, low
    ro[i] = vlogaddexp_ratio(x, rb[i])


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _log_compensated_finish_lane(i, ro, rb, h, h_low):
    h[i], h_low[i] = vlogaddexp_compensated_from_ratio(h[i], rb[i], h_low[i], ro[i])
    ro[i] = h[i]


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _log_ratio_lane(i, ro, ra, rb, h):
    x = ra[i] + h[i]
    h[i] = x
    ro[i] = vlogaddexp_ratio(x, rb[i])


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _log_finish_lane(i, ro, rb, h):
    h[i] = vlogaddexp_from_ratio(h[i], rb[i], ro[i])
    ro[i] = h[i]


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _linear_output_lane(i, ro, ra, rb, h):
    """The linear step and its output in one loop (a loop less a row than a copy after it: float32, one thread, in
    cache, 64 lanes 2.50 to 2.35 and 512 lanes 1.73 to 1.68 ns per element, best of 40, measured on the
    compensated log step when it was taken this way)."""
    _linear_lane(i, ra, rb, h)
    ro[i] = h[i]


# A run's total is a scan whose state is total_b, plus the decays composed in total_a.
@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _log_compensated_total_lane(i, ra, rb, total_a, total_b, total_b_low):
    _log_compensated_lane(i, ra, rb, total_b, total_b_low)
    total_a[i] += ra[i]


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _log_total_step_lane(i, ra, rb, total_a, total_b):
    _log_lane(i, ra, rb, total_b)
    total_a[i] += ra[i]


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _linear_total_step_lane(i, ra, rb, total_a, total_b):
    _linear_lane(i, ra, rb, total_b)
    total_a[i] *= ra[i]


_log_compensated_total_row = lane_loop(_log_compensated_total_lane)
_log_total_step_row = lane_loop(_log_total_step_lane)
_linear_total_step_row = lane_loop(_linear_total_step_lane)


@njit(**_OPTS)
def _overlap(x, y):
    """True when the memory of the arrays ``x`` and ``y`` overlaps."""
    px, py = x.ctypes.data, y.ctypes.data
    return px < py + y.size * y.itemsize and py < px + x.size * x.itemsize


_log_compensated_row = lane_loop(_log_compensated_lane)
_log_row = lane_loop(_log_lane)
_linear_row = lane_loop(_linear_lane)
_copy_row = lane_loop(_copy_lane)


def _output_rows(inline):
    """The forward's loops that step and write the output row, called or inlined (see ``NARROW_LANES``): log
    space compensated (two loops), log space (two loops), linear space."""
    return (lane_loop(_log_compensated_ratio_lane, inline), lane_loop(_log_compensated_finish_lane, inline),
            lane_loop(_log_ratio_lane, inline), lane_loop(_log_finish_lane, inline),
            lane_loop(_linear_output_lane, inline))


NARROW_OUTPUT_ROWS = _output_rows(inline=True)
WIDE_OUTPUT_ROWS = _output_rows(inline=False)


def _forward_steps_kernel(output_rows):
    """:func:`forward_steps` built on ``output_rows`` (``NARROW_OUTPUT_ROWS`` or ``WIDE_OUTPUT_ROWS``).

    In-place calls (rare) take the called loops in both builds: fewer loops inlined, less to compile.
    """
    (log_compensated_ratio_row, log_compensated_finish_row, log_ratio_row, log_finish_row,
     linear_output_row) = output_rows

    @njit(**_OPTS)
    def steps_kernel(space, compensate, a, a_off, a_ts, b, b_off, b_ts, out, out_off, out_ts, h, h_low, n, steps,
                     descending):
        apart = not (_overlap(out, a) or _overlap(out, b))
        for j in range(steps):
            ra = a[a_off + j * a_ts: a_off + j * a_ts + n]
            rb = b[b_off + j * b_ts: b_off + j * b_ts + n]
            ro = out[out_off + j * out_ts: out_off + j * out_ts + n]
            if apart:  # the step's loops write the output row (see the module docstring)
                if space == LOG:
                    if compensate:
                        log_compensated_ratio_row(n, descending, ro, ra, rb, h, h_low)
                        log_compensated_finish_row(n, descending, ro, rb, h, h_low)
                    else:
                        log_ratio_row(n, descending, ro, ra, rb, h)
                        log_finish_row(n, descending, ro, rb, h)
                else:
                    linear_output_row(n, descending, ro, ra, rb, h)
                continue
            if space == LOG:
                if compensate:
                    _log_compensated_row(n, descending, ra, rb, h, h_low)
                else:
                    _log_row(n, descending, ra, rb, h)
            else:
                _linear_row(n, descending, ra, rb, h)
            _copy_row(n, descending, ro, h)

    return steps_kernel


_forward_steps_narrow = _forward_steps_kernel(NARROW_OUTPUT_ROWS)
_forward_steps_wide = _forward_steps_kernel(WIDE_OUTPUT_ROWS)


@njit(**_OPTS)
def forward_steps(space, compensate, a, a_off, a_ts, b, b_off, b_ts, out, out_off, out_ts, h, h_low, n, steps,
                  descending):
    """h <- step(h) for ``steps`` rows, each new state copied to the output row.

    With ``compensate`` (log space), ``h_low`` carries the rounding error of
    the state (see ``_vmath.logaddexp_compensated32``); it enters as 0 at the
    start of a run. Without it, every step is the plain rounded logaddexp, so
    a run split in two and continued from its last state gives the same bits.
    ``descending`` walks the lanes from the last to the first (rows that lie
    end to end at falling addresses: a reversed scan; see the module
    docstring). Rows of at most ``NARROW_LANES`` lanes take the build with
    the lane loops inlined (same bits).
    """
    if n <= NARROW_LANES:
        _forward_steps_narrow(space, compensate, a, a_off, a_ts, b, b_off, b_ts, out, out_off, out_ts, h, h_low, n,
                              steps, descending)
    else:
        _forward_steps_wide(space, compensate, a, a_off, a_ts, b, b_off, b_ts, out, out_off, out_ts, h, h_low, n,
                            steps, descending)


@njit(**_OPTS)
def forward_total(space, compensate, a, a_off, a_ts, b, b_off, b_ts, total_a, total_b, total_b_low, n, steps,
                  descending):
    """Compose ``steps`` rows into one step: (total_a, total_b) <- (total_a, total_b) then row j.

    Starting from the identity, the result maps a state entering the run to
    the state leaving it: log space ``h -> logaddexp(total_a + h, total_b)``,
    linear ``h -> total_a h + total_b``. ``descending`` as in :func:`forward_steps`.
    """
    for j in range(steps):
        ra = a[a_off + j * a_ts: a_off + j * a_ts + n]
        rb = b[b_off + j * b_ts: b_off + j * b_ts + n]
        if space == LOG:
            if compensate:
                _log_compensated_total_row(n, descending, ra, rb, total_a, total_b, total_b_low)
            else:
                _log_total_step_row(n, descending, ra, rb, total_a, total_b)
        else:
            _linear_total_step_row(n, descending, ra, rb, total_a, total_b)


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _add_log_decay(total, low, x, zero, neg_inf):
    """(total, low) + x, compensated (Kahan): a sum of log a over a run, kept to a few ulp however long.

    Once the sum is -inf (a reset) it stays -inf, whatever follows: what entered the run is gone for good.
    """
    y = x - low
    t = total + y
    new_low = (t - total) - y
    dead = total == neg_inf
    keep = (abs(t) < -neg_inf) & ~dead
    return (neg_inf if dead else t), (new_low if keep else zero)


@njit(**_OPTS)
def sum_log_decay(a, a_off, a_ts, total, low, wide, part, n, steps, zero, neg_inf):
    """(total, low) += the ``steps`` rows of ``a`` (log decays); see :func:`_add_log_decay`.

    The rows are summed in float64 (``wide``, a float64 scratch row; ``part``
    one of the array dtype) and that sum is added once, compensated: one
    float64 add per element instead of a compensated sum in the array dtype.
    """
    for i in range(n):
        wide[i] = 0.0
    quads = steps // 4
    for q in range(quads):  # four rows a pass over the lanes (in cache, 64 lanes: 0.19 -> 0.13 ns per element)
        j = 4 * q
        r0 = a[a_off + j * a_ts: a_off + j * a_ts + n]
        r1 = a[a_off + (j + 1) * a_ts: a_off + (j + 1) * a_ts + n]
        r2 = a[a_off + (j + 2) * a_ts: a_off + (j + 2) * a_ts + n]
        r3 = a[a_off + (j + 3) * a_ts: a_off + (j + 3) * a_ts + n]
        for i in range(n):
            wide[i] += (np.float64(r0[i]) + np.float64(r1[i])) + (np.float64(r2[i]) + np.float64(r3[i]))
    for j in range(4 * quads, steps):
        ra = a[a_off + j * a_ts: a_off + j * a_ts + n]
        for i in range(n):
            wide[i] += ra[i]
    for i in range(n):
        part[i] = wide[i]
    for i in range(n):
        total[i], low[i] = _add_log_decay(total[i], low[i], part[i], zero, neg_inf)


FOLD_BLOCK = 16  # rows folded between two checks of whether the carry still matters


@njit(**_OPTS)
def add_carry_steps(a, a_off, a_ts, out, out_off, out_ts, carry, total, low, n, steps, zero, neg_inf, negligible):
    """Fold the state ``carry`` that entered a run into that run's scan from the empty state, in place.

    ``out`` holds the run scanned from ``-inf``; with ``A_t`` the sum of log a
    over the run up to row ``t`` (continuing ``(total, low)``), the true state is
    ``logaddexp(A_t + carry, out_t)``.

    The carry's share fades: with ``d_t = A_t + carry - out_t`` the fold adds
    ``log1p(exp(d_t)) <= exp(d_t)``, and ``d_t = carry - log sum_{s <= t}
    exp(log_b_s - A_s)`` never increases along the run (a reset makes it
    ``-inf``). So once every lane has ``d_t <= negligible`` or ``A_t + carry
    = -inf`` (nothing entered, or a reset: it stays so), checked every
    FOLD_BLOCK rows, every later row would change by at most
    ``exp(negligible)`` and the fold stops there. A nan (in the carry or
    the decays) never fades: it is folded into every row, as it must be.
    Returns the number of rows folded.
    """
    for j0 in range(0, steps, FOLD_BLOCK):
        j1 = min(steps, j0 + FOLD_BLOCK)
        for j in range(j0, j1):
            ra = a[a_off + j * a_ts: a_off + j * a_ts + n]
            ro = out[out_off + j * out_ts: out_off + j * out_ts + n]
            # two loops: one writing three arrays needs more overlap checks than LLVM vectorizes with
            for i in range(n):
                total[i], low[i] = _add_log_decay(total[i], low[i], ra[i], zero, neg_inf)
            for i in range(n):
                ro[i] = vlogaddexp(total[i] + carry[i], ro[i])
        last = out[out_off + (j1 - 1) * out_ts: out_off + (j1 - 1) * out_ts + n]
        # (after the fold d_t reads log sigmoid(d_t) <= d_t: the same test where it matters)
        faded = 0
        for i in range(n):
            x = total[i] + carry[i]
            faded += 1 if (x == neg_inf or x - last[i] <= negligible) else 0
        if faded == n:
            return j1
    return steps


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _log_weight(log_a, log_h_prev, log_h, zero, neg_inf):
    """w = exp(log_a + log h_{t-1} - log h_t): the share of h_t that came from the past, in [0, 1].

    log h_{t-1} - log h_t first: the two are close where the past dominates,
    so the difference is exact and w keeps full precision however large
    |log h| is. h_t = 0 passes no gradient back (and -inf - -inf must not
    leak a nan).
    """
    w = vexp(log_a + (log_h_prev - log_h))
    return zero if log_h == neg_inf else w


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _input_weight(log_b, log_h, zero, neg_inf):
    """v = exp(log_b - log h_t): the share of h_t that came from b_t, in [0, 1] (0 where h_t = 0)."""
    v = vexp(log_b - log_h)
    return zero if log_h == neg_inf else v


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _log_backward_lane(i, rg, ra, rb, rh, rhp, rga, rgb, carry, zero, neg_inf):
    u = rg[i] + carry[i]
    uw = u * _log_weight(ra[i], rhp[i], rh[i], zero, neg_inf)
    carry[i] = uw
    rga[i] = uw
    rgb[i] = u * _input_weight(rb[i], rh[i], zero, neg_inf)


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _linear_backward_lane(i, rg, ra, rhp, rga, rgb, carry):
    d = rg[i] + carry[i]
    carry[i] = ra[i] * d
    rga[i] = d * rhp[i]
    rgb[i] = d


def _backward_rows(inline):
    """The reverse pass's lane loops, called or inlined (see ``NARROW_LANES``): log space, linear space."""
    return lane_loop(_log_backward_lane, inline), lane_loop(_linear_backward_lane, inline)


NARROW_BACKWARD_ROWS = _backward_rows(inline=True)
WIDE_BACKWARD_ROWS = _backward_rows(inline=False)


def _backward_steps_kernel(rows):
    """:func:`backward_steps` built on the lane loops ``rows`` (``NARROW_BACKWARD_ROWS`` or ``WIDE_BACKWARD_ROWS``)."""
    log_backward_row, linear_backward_row = rows

    @njit(**_OPTS)
    def steps_kernel(space, g, g_off, g_ts, a, a_off, a_ts, b, b_off, b_ts, h, h_off, h_ts, h_prev, hp_off, hp_ts,
                     grad_a, ga_off, ga_ts, grad_b, gb_off, gb_ts, carry, n, steps, zero, neg_inf, descending,
                     ahead):
        for jj in range(steps):
            j = steps - 1 - jj
            if ahead > 0 and j >= ahead:
                k = j - ahead
                prefetch_row(g, g_off + k * g_ts, n, False)
                prefetch_row(a, a_off + k * a_ts, n, False)
                if space == LOG:
                    prefetch_row(b, b_off + k * b_ts, n, False)
                    prefetch_row(h, h_off + k * h_ts, n, False)  # h_prev is h one row back: fetched with it
                else:
                    prefetch_row(h_prev, hp_off + k * hp_ts, n, False)
                prefetch_row(grad_a, ga_off + k * ga_ts, n, True)
                prefetch_row(grad_b, gb_off + k * gb_ts, n, True)
            rg = g[g_off + j * g_ts: g_off + j * g_ts + n]
            ra = a[a_off + j * a_ts: a_off + j * a_ts + n]
            rhp = h_prev[hp_off + j * hp_ts: hp_off + j * hp_ts + n]
            rga = grad_a[ga_off + j * ga_ts: ga_off + j * ga_ts + n]
            rgb = grad_b[gb_off + j * gb_ts: gb_off + j * gb_ts + n]
            if space == LOG:
                rb = b[b_off + j * b_ts: b_off + j * b_ts + n]
                rh = h[h_off + j * h_ts: h_off + j * h_ts + n]
                log_backward_row(n, descending, rg, ra, rb, rh, rhp, rga, rgb, carry, zero, neg_inf)
            else:
                linear_backward_row(n, descending, rg, ra, rhp, rga, rgb, carry)

    return steps_kernel


_backward_steps_narrow = _backward_steps_kernel(NARROW_BACKWARD_ROWS)
_backward_steps_wide = _backward_steps_kernel(WIDE_BACKWARD_ROWS)


@njit(**_OPTS)
def backward_steps(space, g, g_off, g_ts, a, a_off, a_ts, b, b_off, b_ts, h, h_off, h_ts,
                   h_prev, hp_off, hp_ts, grad_a, ga_off, ga_ts, grad_b, gb_off, gb_ts, carry, n, steps,
                   zero, neg_inf, descending, ahead):
    """Rows ``steps-1`` down to 0 of the fused reverse pass; ``carry`` enters as w_{t+1} u_{t+1}.

    Log space: ``u = g + carry``, ``w = exp(log_a + log_h_prev - log_h)``,
    ``v = exp(log_b - log_h)`` (both 0 where ``log_h = -inf``), then
    ``grad_log_a = u w``, ``grad_log_b = u v`` and the new carry is ``u w``.
    Linear: ``d = g + carry``, ``grad_a = d h_prev``, ``grad_b = d``, carry ``a d``.
    ``zero`` and ``neg_inf`` are scalars of the array dtype (keeps float32 in
    float32).

    Each row is one loop over the lanes that reads its four input rows and
    writes both gradient rows at once, so the cache misses of all six streams
    are in flight together (a loop per array, through scratch rows, had them
    one stream after another: 3.6-3.9 against 2.2-3.2 ns per element, float32,
    512 lanes, one thread, out of cache). ``carry`` holds ``u w`` of the row
    before as the loop goes, and what leaves the run at the end. With
    ``descending`` the lanes go from the last to the first (see the module
    docstring). Rows of at most ``NARROW_LANES`` lanes take the build with
    the lane loop inlined (same bits).
    """
    if n <= NARROW_LANES:
        _backward_steps_narrow(space, g, g_off, g_ts, a, a_off, a_ts, b, b_off, b_ts, h, h_off, h_ts, h_prev, hp_off,
                               hp_ts, grad_a, ga_off, ga_ts, grad_b, gb_off, gb_ts, carry, n, steps, zero, neg_inf,
                               descending, ahead)
    else:
        _backward_steps_wide(space, g, g_off, g_ts, a, a_off, a_ts, b, b_off, b_ts, h, h_off, h_ts, h_prev, hp_off,
                             hp_ts, grad_a, ga_off, ga_ts, grad_b, gb_off, gb_ts, carry, n, steps, zero, neg_inf,
                             descending, ahead)


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _log_total_lane(i, rg, ra, rh, rhp, product, carry, zero, neg_inf):
    w = _log_weight(ra[i], rhp[i], rh[i], zero, neg_inf)
    carry[i] = (rg[i] + carry[i]) * w
    product[i] *= w


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def _linear_total_lane(i, rg, ra, product, carry):
    carry[i] = (rg[i] + carry[i]) * ra[i]
    product[i] *= ra[i]


_log_total_row = lane_loop(_log_total_lane)
_linear_total_row = lane_loop(_linear_total_lane)


@njit(**_OPTS)
def backward_total(space, g, g_off, g_ts, a, a_off, a_ts, h, h_off, h_ts, h_prev, hp_off, hp_ts,
                   product, carry, n, steps, zero, neg_inf, descending, ahead):
    """Compose rows ``steps-1`` .. 0 of the reverse pass into ``carry -> product carry + carry0``.

    Starting from ``product = 1``, ``carry = 0``: afterwards ``product`` is
    the product of the weights (``w`` in log space, ``a`` in linear space)
    and ``carry`` what leaves the run when nothing enters it.
    """
    for jj in range(steps):
        j = steps - 1 - jj
        if ahead > 0 and j >= ahead:
            prefetch_row(g, g_off + (j - ahead) * g_ts, n, False)
            prefetch_row(a, a_off + (j - ahead) * a_ts, n, False)
            if space == LOG:
                prefetch_row(h, h_off + (j - ahead) * h_ts, n, False)
        rg = g[g_off + j * g_ts: g_off + j * g_ts + n]
        ra = a[a_off + j * a_ts: a_off + j * a_ts + n]
        if space == LOG:
            rh = h[h_off + j * h_ts: h_off + j * h_ts + n]
            rhp = h_prev[hp_off + j * hp_ts: hp_off + j * hp_ts + n]
            _log_total_row(n, descending, rg, ra, rh, rhp, product, carry, zero, neg_inf)
        else:
            _linear_total_row(n, descending, rg, ra, product, carry)
