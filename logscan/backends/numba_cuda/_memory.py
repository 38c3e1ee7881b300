"""Device memory views and streams for the numba_cuda backend.

:class:`DeviceView` is what :func:`as_array` returns to the C-style core: a
typed, strided view of device memory at a raw pointer (strides in elements,
any sign, 0 for broadcast). It supports exactly what the core needs — basic
slicing (``v[:, ::-1, :]`` for reverse), ``v[...] = other_view`` (strided
copy with a dtype cast, for float16 staging), ``v[...] = scalar`` — and
exposes ``__cuda_array_interface__``. Kernels receive ``view.kernel_arg()``:
a Numba device array over the same memory (no copy). Under the CUDA
simulator pointers are host pointers and the kernel argument is a simulator
array over a NumPy view of that memory.

Streams: the core runs every call inside :func:`on_stream` (a context
variable); every launch and copy in it is enqueued on :func:`current_stream`.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import operator

import numpy as np
from numba import cuda

from logscan.backends import _host

from ._kernels import SIMULATOR, get_copy, get_fill

_STREAM = contextvars.ContextVar("logscan_numba_cuda_stream", default=None)


@contextlib.contextmanager
def on_stream(handle):
    """Enqueue the backend's work inside the block on the CUDA stream ``handle`` (int; None: default)."""
    token = _STREAM.set(None if handle is None else int(handle))
    try:
        yield
    finally:
        _STREAM.reset(token)


def current_stream():
    """The Numba stream object for the handle set by :func:`on_stream`."""
    handle = _STREAM.get()
    if SIMULATOR:
        return cuda.default_stream()  # the simulator runs everything synchronously
    if not handle:
        return cuda.default_stream()
    return cuda.external_stream(handle)


def _c_strides(shape):
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(int(n), 1)
    return tuple(reversed(strides))


class DeviceView:
    """A strided view of device memory (see the module docstring)."""

    def __init__(self, ptr, shape, strides, dtype, writable=True, owner=None):
        self.ptr = int(ptr)
        self.shape = tuple(int(n) for n in shape)
        self.strides = _c_strides(self.shape) if strides is None else tuple(int(s) for s in strides)
        self.dtype = np.dtype(dtype)
        self.writable = bool(writable)
        self.owner = owner  # keeps the memory alive
        if len(self.strides) != len(self.shape):
            raise ValueError("DeviceView: strides and shape differ in length")

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: math.prod(self.shape))

    def __repr__(self):
        return f"DeviceView(ptr={self.ptr:#x}, shape={self.shape}, strides={self.strides}, dtype={self.dtype})"

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "strides": tuple(s * self.dtype.itemsize for s in self.strides),
                "data": (self.ptr, not self.writable), "typestr": self.dtype.str, "version": 3}

    # ------------------------------------------------------------- slicing
    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            at = key.index(Ellipsis)
            key = key[:at] + (slice(None),) * (self.ndim - len(key) + 1) + key[at + 1:]
        key = key + (slice(None),) * (self.ndim - len(key))
        if len(key) != self.ndim:
            raise IndexError(f"DeviceView: too many indices for a {self.ndim}-d view")
        offset, shape, strides = 0, [], []
        for k, n, s in zip(key, self.shape, self.strides, strict=True):
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                count = len(range(start, stop, step))
                offset += start * s if count else 0
                shape.append(count)
                strides.append(s * step)
            else:
                k = operator.index(k)
                if not -n <= k < n:
                    raise IndexError(f"DeviceView: index {k} out of bounds for size {n}")
                offset += (k % n) * s
        return DeviceView(self.ptr + offset * self.dtype.itemsize, shape, strides, self.dtype, self.writable,
                          self.owner)

    def __setitem__(self, key, value):
        target = self[key]
        if not target.writable:
            raise ValueError("DeviceView: assignment to a read-only view")
        if target.size == 0:
            return
        if isinstance(value, DeviceView):
            if value.shape != target.shape:
                raise ValueError(f"DeviceView: cannot copy shape {value.shape} into {target.shape}")
            _launch_over(target, value)
        elif np.isscalar(value):
            _launch_over(target, target.dtype.type(value))
        else:
            raise TypeError(f"DeviceView: cannot assign a {type(value).__name__}")

    # ---------------------------------------------------------- to kernels
    def kernel_arg(self):
        """A Numba device array (simulator array under the simulator) over this memory, no copy."""
        if SIMULATOR:
            from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray  # noqa: PLC0415

            return FakeCUDAArray(_host.as_array(self.ptr, self.shape, self.strides, self.dtype, True))
        return cuda.from_cuda_array_interface(self.__cuda_array_interface__, owner=self.owner, sync=False)

    def as3d(self):
        """The same view with at most 3 dims, as (outer, middle, last); None when more dims would be needed."""
        if self.ndim > 3:
            return None
        pad = 3 - self.ndim
        return DeviceView(self.ptr, (1,) * pad + self.shape, (0,) * pad + self.strides, self.dtype,
                          self.writable, self.owner)


def grid_for(n, threads):
    """Blocks for a grid-stride loop over n elements (capped; the loop covers the rest).

    Under the simulator, which runs a block at a time, two blocks keep the
    grid-stride path exercised at a fraction of the cost.
    """
    return max(1, min(-(-n // threads), 2 if SIMULATOR else 65535 * 32))


def _launch_over(target, source):
    """target[...] = source (a view: strided copy with cast, or a scalar: fill), on the current stream."""
    if target.ndim > 3:
        for k in range(target.shape[0]):
            _launch_over(target[k], source[k] if isinstance(source, DeviceView) else source)
        return
    t3 = target.as3d()
    n0, n1, n2 = t3.shape
    threads = 256 if not SIMULATOR else 32
    blocks = grid_for(t3.size, threads)
    stream = current_stream()
    if isinstance(source, DeviceView):
        get_copy()[blocks, threads, stream](source.as3d().kernel_arg(), t3.kernel_arg(), n0, n1, n2)
    else:
        get_fill()[blocks, threads, stream](t3.kernel_arg(), source, n0, n1, n2)


def as_array(ptr, shape, strides, dtype, writable):
    """A :class:`DeviceView` of device memory at ``ptr`` (strides in elements, None for C order); no copy."""
    return DeviceView(ptr, shape, strides, dtype, writable)
