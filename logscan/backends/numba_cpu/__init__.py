"""Numba CPU backend: the fast CPU path, SIMD across channels and threads across channels or time.

Methods
-------
``sequential``
    One pass over time per group of channels ("lanes": a whole row of the
    inner axis, or 64 gathered channels), the lanes advanced together in
    SIMD registers; groups run in parallel threads. Every step is the plain
    rounded recurrence, so a sequence split in two and continued from its
    last state gives the very same bits (DESIGN: chunking is exact). The
    price, in float32 log space: rounding accumulates, ~1e-5 relative at
    T = 65 536 when nothing decays (``log_a = 0``, logcumsumexp).
``chunked``
    The fast hybrid and the ``auto`` choice. The same streaming kernel, with
    the log-space state compensated (its rounding error carried along,
    ``_vmath.logaddexp_compensated32``, with that of ``log a + log h``:
    5e-8 instead of 1.1e-5 at T = 65 536 with no decay, 7e-8 instead of
    1.3e-4 with the constant decay ``log a = -1e-4``) and, where that pays,
    time split into chunks so that few channels still use every core
    (``_chunked``). The log-space forward scans all chunks at once (chunk 0
    from ``h0``, the others from the empty state, summing their log a) and
    then folds each chunk's entering state in, ``logaddexp(A_t + carry,
    out_t)``, a pass with no dependency from row to row that stops once the
    carry's share is below ``exp(2 log eps - 8)`` in every lane (after a few
    dozen rows when the decays are well below 1; ``forward_split``). The
    backward and the linear scan compose chunk totals, pass the carries
    between chunks, and re-scan every chunk from its carry. Splitting a sequence and continuing from the last state
    agrees to a few ulp, not bit for bit (the carried error is not part of
    the state a caller sees).
``hillis_steele``, ``blelloch``
    The textbook tree scans over whole-sequence tiles of lanes (``_tree``),
    for measurement and reference; never faster here.

All four compute the same recurrence in the dtype of the inputs (float32 or
float64) with vectorized polynomial ``exp``/``log1p`` (``_vmath``: no SVML
in pip's llvmlite, so libm calls would keep the loops scalar), handle
``-inf`` exactly, pass NaN through, and are deterministic for a given
machine (the chunk count depends on the shape and ``NUMBA_NUM_THREADS``).
``out`` may be the same view as ``log_b``/``b`` for every method.
Every parallel kernel also has a serial twin (``_threading``): calls that
would use one thread run it without a parallel launch, and so does a
process forked from one whose GNU OpenMP threads had started (numba would
end it); on the workqueue layer parallel calls take turns. So the backend
is safe in several threads at once and in forked processes.

How ``method="auto"`` chooses
-----------------------------
Always ``chunked``; how many chunks of time it uses is the shape rule.
Channels form groups of lanes: whole rows of inner (up to 1024 adjacent
channels, read in place) when ``inner >= 16``, else 64 gathered channels.

- One chunk (one pass over memory, the speed of ``sequential``) whenever
  the groups give every thread work ((8, 2048, 512): 8 groups of 512
  lanes).
- Log-space forward, fewer groups than threads, at most 64 lanes per group
  and chunks of at least 4096 steps: the split forward, one chunk per idle
  thread (the first 1.1 times as long: the others also sum their decays,
  ``SPLIT_FIRST_WEIGHT``). One group of few lanes is bound by the latency of the scan (one
  logaddexp per step on the dependency chain), so scanning the chunks side
  by side pays even on 2 threads: (1, 65536, 64) float32 2.95 ms against
  3.31 ms in one chunk, (1, 262144, 32) 8.4 against 10.5. With wide rows or
  short T it lost ((1, 16384, 256) 3.9 against 3.4 ms, (1, 4096, 64) 0.36
  against 0.31).
- Backward, fewer groups than threads: one chunk per thread (at least 256
  steps each). The chunk totals redo part of the reverse pass, but the
  fused pass is bound by the core, not by memory: (1, 65536, 64) float32
  on 2 threads, 12.7 ms in one chunk against 8.3-9.2 ms in 2 (8 chunks had
  lost, 16.0 ms, on the machine of the first measurements).
- Linear-space forward, fewer groups than threads and at least 4 threads:
  several chunks (about 4 units per thread); its totals redo all of the
  scan's math (only the output writes are saved), so ``p`` threads gain at
  most about ``p/2``.
- The tree methods are never chosen: they make ``log2 T`` passes over a
  whole-sequence tile that does not stay in cache, and lost at every shape
  measured (``tools/bench_numba_cpu.py`` prints them side by side).

Performance
-----------
``PYTHONPATH=. python tools/bench_numba_cpu.py --repeat 10 --methods
sequential,chunked`` on a 2-core AVX-512 VM (float32, axis=1, shared
with other users; ratios from one run, round-robin timing; the first of
three runs, the others within 15 %; 2026-11-22, before the copy baseline
moved three arrays' worth; docs/performance.rst has the later figures of
another, slower VM):

===============  =========  ======  =======  ======  ======  =======  ======
shape (B, T, D)  method     fwd ms  x loop   % copy  bwd ms  x loop   % copy
===============  =========  ======  =======  ======  ======  =======  ======
(8, 2048, 512)   chunked    3.68    50.3     76%     10.36   21.8     54%
(8, 2048, 512)   sequential 3.34    55.4     84%     10.32   21.9     54%
(1, 65536, 64)   chunked    2.85    59.5     49%     6.62    71.2     42%
(1, 65536, 64)   sequential 2.81    60.5     49%     6.56    71.8     42%
===============  =========  ======  =======  ======  ======  =======  ======

The compensated state of ``chunked`` (the ``auto`` choice) cost 10-20 %
of the forward against the plain ``sequential`` on one chunk when these
figures were taken; since its rounding errors are taken by Fast2Sum, 0.77
against 0.64 ns per element in cache, and 3.6-3.8 against 3.4-3.5 ms at
(8, 2048, 512) (best of 30, interleaved, docs/performance.rst); at
(1, 65536, 64) the split forward wins that back. Backward kernels are the
same.
``x loop``: speed-up over the NumPy loop over T (backward: over its
forward plus reverse loops); ``% copy``: bytes moved per second (3 arrays
forward, 6 backward) relative to ``np.copyto`` on one array (now three). The backward
allocated its two outputs then, as the NumPy loop did: at (8, 2048, 512) the
first touch of those fresh pages is about 4 ms of it (``out=`` now spares
them). It reads its rows from high addresses to low, each row in one fused
loop over the lanes; where the rows of a lane group lie end to end, the
lanes are walked downwards too, so that every stream is one falling sweep
that the hardware prefetchers follow (``_chunked._falling_sweep``);
otherwise rows up to 1 KiB are read ahead with software prefetch
(``_prefetch``).
(1, 65536, 64) is one lane group: its forward runs on two cores (the split
forward), and its backward too (two chunks of time).

Examples
--------
>>> import numpy as np, logscan
>>> log_a = np.log(np.full((1, 4, 1), 0.5, np.float32))
>>> log_b = np.zeros((1, 4, 1), np.float32)
>>> np.exp(logscan.scan(log_a, log_b, axis=1, backend="numba")).ravel().round(4).tolist()
[1.0, 1.5, 1.75, 1.875]
"""

from __future__ import annotations

import functools
from pathlib import Path

import numba
import numpy as np

from logscan.backends.numba_cpu import _cache_guard

# before the kernels are defined: their on-disk cache does not see edits to the helpers they inline
_cache_guard.refresh(Path(__file__).parent)

from logscan.backends._host import as_array  # noqa: E402, F401  (backend interface)
from logscan.backends.numba_cpu import _chunked, _tree  # noqa: E402
from logscan.backends.numba_cpu._geometry import describe, element_aligned  # noqa: E402
from logscan.backends.numba_cpu._steps import LINEAR, LOG  # noqa: E402
from logscan.backends.numba_cpu._threading import at_most  # noqa: E402

methods = ("sequential", "hillis_steele", "blelloch", "chunked")

# Channels advanced together. One step of logaddexp is a chain of ~40
# dependent operations; only with several vectors in flight does the core run
# at its throughput (measured, float32, in cache: 16 lanes 2.1 ns/element,
# 32 lanes 1.1, 64 lanes 0.76, 128+ lanes 0.63). Lanes read in place (rows
# mode) are whole rows of inner (up to 1024 lanes, 4 KiB of float32): a group
# reading part of each row streams badly from memory (256 of 512 lanes:
# 2.4 ns/element out of cache, whole rows 1.1), and splitting the 64-lane
# rows of (1, 65536, 64) over 2 threads as 2 x 32 lanes was 2-3x slower than
# one thread on whole rows (16.0 vs 6.2 ms forward). Gathered lanes (flat
# mode) cost a tile each.
LANES_ROWS = 1024
LANES_FLAT = 64
LANES = LANES_FLAT  # tree methods: whole-sequence tiles of this many lanes
ROWS_MIN_INNER = 16  # from this many inner channels on, groups stay within one row of inner
MIN_CHUNK = 256      # shorter chunks spend more on totals and carries than they win
MIN_THREADS_TO_CHUNK = 4  # below this, splitting time did not pay for the forward (see "How method='auto' chooses")
FORWARD_UNITS_PER_THREAD = 4   # chunks x groups per thread for the chunked forward
BACKWARD_UNITS_PER_THREAD = 1  # the backward's chunk totals cost more: one chunk per idle thread
# The split log-space forward (_chunked.forward_split) pays where one group of few lanes is bound by the
# latency of the scan (measured, 2 threads, float32, split vs not: (1, 65536, 64) 2.95 vs 3.31 ms,
# (1, 262144, 32) 8.4 vs 10.5, (1, 8192, 16) 0.37 vs 0.39); with wide rows, or short T, it lost
# ((1, 16384, 256) 3.9 vs 3.4 ms, (1, 4096, 64) 0.36 vs 0.31).
MIN_SPLIT_CHUNK = 4096
SPLIT_MAX_LANES = 64
# In the split forward every chunk but the first also sums its log a (0.35 against 1.01 ns per element for the
# scan of 64 lanes, in cache), so the first chunk is made this much longer for the threads to finish together:
# (1, 65536, 64) float32, 2 threads, median of 60 interleaved calls, 5.71 -> 5.25 and 5.52 -> 5.05 ms with decays,
# 6.85 -> 6.31 and 6.21 -> 5.81 without (equal chunks -> 1.2; 1.15-1.25 were alike, 1.5 no better than 1.0).
# Once the scan took its step in two loops (its 64-lane rows ~15 % cheaper, the sum unchanged), 1.1 did best: best /
# median of 60 interleaved calls, two processes, weights 1.0 / 1.1 / 1.2 / 1.3, ms: with decays 3.72-3.74 /
# 3.65-3.69 / 3.80-3.82 / 3.93-3.95 best, 3.76-3.88 / 3.76-3.78 / 3.90-3.93 / 4.04-4.05 median; without
# (log a = 0: the fold runs longer) 5.31-5.38 / 5.20-5.21 / 5.21-5.28 / 5.34-5.35 best (Zen 3, session 13).
SPLIT_FIRST_WEIGHT = 1.1


def _threads():
    return int(numba.config.NUMBA_NUM_THREADS)


def _lanes(outer, inner):
    """Lanes per group: whole rows of inner when it is wide enough, else 64 gathered channels."""
    return LANES_ROWS if inner >= ROWS_MIN_INNER else LANES_FLAT


def _groups(outer, inner):
    lanes = _lanes(outer, inner)
    if inner >= ROWS_MIN_INNER:
        return outer * -(-inner // lanes)
    return -(-(outer * inner) // lanes)


def _n_chunks(outer, T, inner, backward):
    """Chunks of time for ``chunked`` (not the split log-space forward): only when channel groups leave threads idle.

    Forward (linear space): with at least MIN_THREADS_TO_CHUNK threads,
    FORWARD_UNITS_PER_THREAD units per thread. Backward: from 2 threads on,
    BACKWARD_UNITS_PER_THREAD units per thread. None shorter than MIN_CHUNK.
    """
    groups, threads = _groups(outer, inner), _threads()
    min_threads, units = (2, BACKWARD_UNITS_PER_THREAD) if backward else (MIN_THREADS_TO_CHUNK,
                                                                          FORWARD_UNITS_PER_THREAD)
    if not 0 < groups < threads or threads < min_threads:
        return 1
    return int(max(1, min(-(-units * threads // groups), T // MIN_CHUNK)))


def _split(outer, T, inner):
    """(chunks, pieces) for the log-space ``chunked`` forward of :func:`_chunked.forward_split`, or (1, 1).

    Only when the channel groups leave threads idle and a group has at most
    SPLIT_MAX_LANES lanes: then about one chunk per idle thread (none
    shorter than MIN_SPLIT_CHUNK), and each chunk's fix-up in as many pieces
    as there are threads.
    """
    groups, threads = _groups(outer, inner), _threads()
    if not 0 < groups < threads or min(inner, LANES_ROWS) > SPLIT_MAX_LANES:
        return 1, 1
    chunks = int(max(1, min(-(-threads // groups), T // MIN_SPLIT_CHUNK)))
    return (chunks, threads) if chunks > 1 else (1, 1)


def choose_method(op, dtype, outer, T, inner):
    # "chunked" is the compensated, time-splitting hybrid; where splitting
    # does not pay it runs as one chunk, as fast as "sequential" (same
    # kernel) and more accurate in log space. See the module docstring.
    return "chunked"


def workspace_size(op, dtype, outer, T, inner, method):
    itemsize = np.dtype(dtype).itemsize
    if method == "chunked":
        rows = 2 * _n_chunks(outer, T, inner, op.endswith("_backward"))
        if op == "log_scan":  # the split forward, when the layout allows it (decided at the call)
            chunks, pieces = _split(outer, T, inner)
            rows = max(rows, (2 + pieces) * chunks if chunks > 1 else 0)
        return rows * outer * inner * itemsize
    if method in ("hillis_steele", "blelloch"):
        return _tree.workspace_elements(op, outer, T, inner, method, LANES) * itemsize
    return 0


_DUMMY = {}


def _workspace_view(workspace, dtype, n_chunks, channels):
    if n_chunks <= 1 or workspace is None:
        key = np.dtype(dtype)
        if key not in _DUMMY:
            _DUMMY[key] = np.zeros((2, 1, 1), key)
        return _DUMMY[key]
    return workspace.view(dtype)[: 2 * n_chunks * channels].reshape(2, n_chunks, channels)


def _layout(outer, inner, arrays):
    """(rows_mode, direct): lanes within one row, and lanes adjacent in every buffer."""
    rows_mode = inner >= ROWS_MIN_INNER
    direct = rows_mode and all(x.strides[2] == x.dtype.itemsize for x in arrays)
    return rows_mode, direct


def _lanes_in_place(x):
    """``x``, or the same values with a contiguous inner axis where ``x`` repeats one value along it.

    A broadcast input (inner stride 0: the zero decay of ``logcumsumexp``, a
    decay per (batch, step) shared by every channel, the gradient of a sum of
    outputs) would send the streaming kernels to their gathered tiles, 10x
    slower at (8, 2048, 512) float32 (51 ms against 5 for ``logcumsumexp``).
    Only the distinct values are written out, along a contiguous inner axis;
    the other broadcast dimensions keep stride 0, so a single value costs one
    row.
    """
    if x is None or x.strides[2] != 0 or x.shape[2] < ROWS_MIN_INNER:
        return x
    distinct = x[tuple(slice(0, 1) if stride == 0 else slice(None) for stride in x.strides[:2])]
    core = np.ascontiguousarray(distinct)
    strides = tuple(0 if stride == 0 else kept for stride, kept in zip(x.strides[:2], core.strides[:2], strict=True))
    return np.lib.stride_tricks.as_strided(core, x.shape, strides + (core.strides[2],), writeable=False)


def _staged(arrays, outputs):
    """Copies for the (rare) views whose strides are not whole elements; kernels need element strides."""
    staged = [np.ascontiguousarray(x) if not element_aligned(x) else x for x in arrays]
    staged_out = [np.empty(x.shape, x.dtype) if not element_aligned(x) else x for x in outputs]
    return staged, staged_out


def _copy_back(outputs, staged_out):
    for x, y in zip(outputs, staged_out, strict=False):
        if x is not None and x is not y:
            x[...] = y


SMALL_WORK = 1 << 16  # elements below which waking a second thread costs more than it saves


def _threads_for(units, elements):
    """Context: the kernels inside run on no more threads than they have work units (one below SMALL_WORK).

    A parallel region ends only when every thread of the pool has checked
    in; on a busy machine a thread with nothing to do can still be waiting
    for a time slice, which cost milliseconds per call in our measurements
    ((64, 4096, 1): one 64-lane group, 0.7 ms on one thread, 4.0 ms when
    the region also woke a second, idle thread).
    """
    return at_most(1 if elements < SMALL_WORK else max(1, min(units, numba.get_num_threads())))


@functools.cache
def _identity(space, dtype):
    """(identity of the totals' first part, empty state) in ``dtype``."""
    if space == LOG:
        return dtype.type(0), dtype.type(-np.inf)
    return dtype.type(1), dtype.type(0)


@functools.cache
def _negligible(dtype):
    """log of a share of the state below every rounding that matters: ``2 log(eps) - 8`` (-40 float32, -80 float64).

    A term ``exp(negligible)`` times the state is below eps squared of it, far under the
    ``(1 + |log h|) eps`` that the results are held to (DESIGN section 3).
    """
    return dtype.type(2 * np.log(np.finfo(dtype).eps) - 8)


def _forward(space, a, b, h0, out, method, workspace):
    outer, T, inner = out.shape
    if outer * T * inner == 0:
        return
    dtype = out.dtype
    (a, b, h0), (out_k,) = _staged([a, b, h0], [out])
    identity_a, identity_b = _identity(space, dtype)
    if method in ("hillis_steele", "blelloch"):
        with _threads_for(-(-(outer * inner) // LANES), outer * T * inner):
            _tree.forward(space, method, a, b, h0, out_k, workspace, LANES, ROWS_MIN_INNER, identity_a, identity_b)
        _copy_back([out], [out_k])
        return
    a, b = _lanes_in_place(a), _lanes_in_place(b)
    rows_mode, direct = _layout(outer, inner, (a, b, out_k))
    (a_m, b_m, out_m, h0_m), geo = describe([a, b, out_k, h0], dtype)
    chunks, pieces = _split(outer, T, inner) if (method == "chunked" and space == LOG and direct) else (1, 1)
    if chunks > 1:
        ws = workspace.view(dtype)[: (2 + pieces) * chunks * outer * inner].reshape(2 + pieces, chunks, outer * inner)
        with _threads_for(_groups(outer, inner) * chunks, outer * T * inner):
            _chunked.forward_split(a_m, b_m, out_m, h0_m, geo, h0 is not None, outer, T, inner,
                                   _lanes(outer, inner), chunks, pieces, SPLIT_FIRST_WEIGHT, ws, identity_a, identity_b,
                                   _negligible(dtype))
    else:
        n_chunks = _n_chunks(outer, T, inner, False) if method == "chunked" else 1
        ws = _workspace_view(workspace, dtype, n_chunks, outer * inner)
        with _threads_for(_groups(outer, inner) * n_chunks, outer * T * inner):
            _chunked.forward(space, method == "chunked", a_m, b_m, out_m, h0_m, geo, h0 is not None, outer, T,
                             inner, _lanes(outer, inner), rows_mode, direct, n_chunks, ws, identity_a, identity_b)
    _copy_back([out], [out_k])


def _backward(space, g, a, b, h, h0, grad_a, grad_b, grad_h0, method, workspace):
    outer, T, inner = g.shape
    if outer * inner == 0:
        return
    if T == 0:
        if grad_h0 is not None:
            grad_h0[...] = 0
        return
    dtype = g.dtype
    (g, a, b, h, h0), (ga_k, gb_k, gh0_k) = _staged([g, a, b, h, h0], [grad_a, grad_b, grad_h0])
    _, identity_b = _identity(space, dtype)
    zero, neg_inf = dtype.type(0), dtype.type(-np.inf)
    if method in ("hillis_steele", "blelloch"):
        with _threads_for(-(-(outer * inner) // LANES), outer * T * inner):
            _tree.backward(space, method, g, a, b, h, h0, ga_k, gb_k, gh0_k, workspace, LANES, ROWS_MIN_INNER,
                           identity_b)
    else:
        g, a, b, h = (_lanes_in_place(x) for x in (g, a, b, h))  # a broadcast gradient too: the grad of a sum
        rows_mode, direct = _layout(outer, inner, (g, a, b, h, ga_k, gb_k))
        n_chunks = _n_chunks(outer, T, inner, True) if method == "chunked" else 1
        memories, geo = describe([g, a, b, h, ga_k, gb_k, h0, gh0_k], dtype)
        ws = _workspace_view(workspace, dtype, n_chunks, outer * inner)
        with _threads_for(_groups(outer, inner) * n_chunks, outer * T * inner):
            _chunked.backward(space, *memories, geo, h0 is not None, outer, T, inner, _lanes(outer, inner),
                              rows_mode, direct, n_chunks, ws, identity_b, zero, neg_inf)
    _copy_back([grad_a, grad_b, grad_h0], [ga_k, gb_k, gh0_k])


def log_scan(log_a, log_b, log_h0, out, method, workspace):
    _forward(LOG, log_a, log_b, log_h0, out, method, workspace)


def linear_scan(a, b, h0, out, method, workspace):
    _forward(LINEAR, a, b, h0, out, method, workspace)


def log_scan_backward(grad_log_h, log_a, log_b, log_h, log_h0, grad_log_a, grad_log_b, grad_log_h0,
                      method, workspace):
    _backward(LOG, grad_log_h, log_a, log_b, log_h, log_h0, grad_log_a, grad_log_b, grad_log_h0,
              method, workspace)


def linear_scan_backward(grad_h, a, b, h, h0, grad_a, grad_b, grad_h0, method, workspace):
    _backward(LINEAR, grad_h, a, b, h, h0, grad_a, grad_b, grad_h0, method, workspace)
