"""Software prefetch of rows a few steps ahead, for the reverse passes.

Why
---
The streaming kernels advance a block of lanes one time row at a time, and
one row of log-space work is a long chain of dependent arithmetic, so the
core's out-of-order window covers only a row or two. The fused backward pass
reads four arrays and writes two, from high addresses to low, and on its own
waited on each row's cache misses in turn: measured on the 2-core AVX-512
machine, one thread, 64 lanes, float32, 6.3 ns per element out of cache
against 1.4 in cache. Touching the rows a few KiB ahead (``prefetch_row``,
``prefetch_distance`` rows) overlaps those misses with the math; rows longer
than ``MAX_ROW_BYTES`` are left to the hardware prefetcher. The forward
passes walk memory upwards, which the hardware prefetchers follow; they
measured slower with software prefetch and do not use it.

``prefetch_read`` and ``prefetch_write`` are ``llvm.prefetch`` on the address
of ``memory[index]`` (a 1-D C-contiguous array). A prefetch never faults;
the callers still keep their indices inside the array.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from logscan.backends.numba_cpu._vmath import FASTMATH

LINE_BYTES = 64      # cache line
AHEAD_BYTES = 4096   # distance ahead of the current row, per stream (2-8 KiB measured alike)
# Rows longer than this are not prefetched: each is a long ascending run the hardware prefetcher
# follows, and the extra instructions cost more than they save (fused backward, one thread, float32,
# out of cache, 6 alternating rounds: 512 lanes 2.4-2.7 ns per element without, 2.9-3.5 with; 1024
# lanes 2.1-2.3 against 2.9-3.1; 256 lanes alike; 128 lanes 4.8-4.9 without, 2.9-3.2 with; 64 lanes
# 2.3-2.5 without, 3.2-3.4 with in one thread, but (1, 65536, 64) on two threads ran 9-13 ms with it
# and 17 ms without, so short rows keep it). Measured on a noisy 2-core VM: treat as a rule of thumb.
MAX_ROW_BYTES = 1024


def _prefetch_intrinsic(write):
    def impl(typingctx, memory, index):
        if not isinstance(memory, types.Array) or not isinstance(index, types.Integer):
            return None

        def codegen(context, builder, signature, args):
            array = context.make_array(signature.args[0])(context, builder, args[0])
            address = builder.bitcast(builder.gep(array.data, [args[1]]), ir.IntType(8).as_pointer())
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
            # (address, 0 read / 1 write, locality 3 = keep in every level, 1 = data cache)
            builder.call(fn, [address, ir.Constant(i32, int(write)), ir.Constant(i32, 3), ir.Constant(i32, 1)])
            return context.get_dummy_value()

        return types.void(memory, index), codegen

    return impl


prefetch_read = intrinsic(_prefetch_intrinsic(False))
prefetch_write = intrinsic(_prefetch_intrinsic(True))


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def prefetch_distance(n, itemsize):
    """Rows ahead for rows of ``n`` elements: about AHEAD_BYTES per stream, at least one row; 0 (none) for long rows."""
    if n * itemsize > MAX_ROW_BYTES:
        return 0
    return max(1, AHEAD_BYTES // max(1, n * itemsize))


@njit(fastmath=FASTMATH, error_model="numpy", forceinline=True)
def prefetch_row(memory, start, n, write):
    """Prefetch every cache line of ``memory[start : start + n]``."""
    step = max(1, LINE_BYTES // memory.itemsize)
    for k in range(0, n, step):
        if write:
            prefetch_write(memory, start + k)
        else:
            prefetch_read(memory, start + k)
