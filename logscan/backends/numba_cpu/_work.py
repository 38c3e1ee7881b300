"""Work units handed to threads one at a time, first come first served.

Why
---
On numba's ``omp`` layer a ``prange`` over the work units gives each
thread one equal block of them up front. When one core is slowed (a shared
VM, another process), its thread finishes last and the others wait idle.
Handing out the units one by one from a shared counter lets a faster thread
take more of them. A unit is still computed by exactly one thread in the
same way, so the results do not depend on which thread took it.

Measured on the shared 2-core AVX-512 VM, float32, (8, 2048, 512) (8
units of 512 lanes), calls interleaved, best / median, ms. A prototype of
the forward, 60 calls each: units in blocks 3.81 / 6.28, 6.42 / 7.01,
4.83 / 5.71; one at a time 3.71 / 4.99, 4.88 / 5.54, 4.21 / 5.30. The
backend before and after, 40 calls each: forward 3.68 / 5.48 -> 3.85 /
4.99 and 4.87 / 7.80 -> 5.06 / 6.57, backward 10.54 / 13.53 -> 9.59 /
12.20 and 12.26 / 17.23 -> 11.69 / 15.42; no change in two more runs
while both cores were loaded alike (forward 7.04 / 7.32 -> 7.06 / 7.38).

Usage, in a ``parallel=True`` kernel::

    claimed = new_counter()
    for _ in prange(n_units):
        for unit in units(claimed, n_units):
            ...  # the work of ``unit``

The first iteration a thread runs keeps claiming units until none is left;
its later iterations (and everyone's, once all are claimed) end at once.
(The number of threads is not asked for in the kernel: numba's
``get_num_threads`` there keeps a kernel out of the disk cache. The claims
are made inside the generator, a call that numba does not hoist out of the
``prange`` body.) Never read the counter itself inside the ``prange``:
numba's loop-invariant code motion does not see that ``claim`` writes it
and hoists a plain read out of the loop (the claim, a call, it leaves in
place). In the serial twin (``_threading``) the first iteration takes
every unit in order.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def _fetch_add(typingctx, counter):
    """``counter[0] += 1`` as one atomic operation; returns the value before (int64 1-D array)."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64 and counter.ndim == 1):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, signature.args[0], array,
                                           [context.get_constant(types.intp, 0)])
        # monotonic: only the count itself is shared; the units' data are not published through it
        return builder.atomic_rmw("add", pointer, context.get_constant(types.int64, 1), "monotonic")

    return types.int64(counter), codegen


@njit
def new_counter():
    """A fresh counter of claimed units (shared by the threads of the ``prange`` that follows)."""
    return np.zeros(1, np.int64)


@njit
def claim(counter):
    """The next unclaimed unit: 0, 1, 2, ... across all threads, each number once."""
    return _fetch_add(counter)


@njit
def units(claimed, n_units):
    """The units ``0 .. n_units - 1`` this thread claims from ``claimed``, one at a time, until none is left."""
    while True:
        unit = claim(claimed)
        if unit >= n_units:
            return
        yield unit
