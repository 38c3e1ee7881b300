"""The front door for device arrays: what :mod:`logscan.api` does for host arrays, on a GPU.

:mod:`logscan.api` sends a call here when an argument lives on a CUDA device
(``__cuda_array_interface__``, or ``__dlpack__`` with a CUDA
``__dlpack_device__``), or when a GPU backend is named for host
arrays. This module validates with the same messages as the host path, maps
the scan axis onto ``(outer, T, inner)`` with :mod:`logscan._layout` (a view
wherever the strides allow), allocates outputs and the workspace in the
input's array family, and calls :mod:`logscan.capi` with device pointers,
``device="cuda"`` and a stream.

Array families
    CuPy arrays give CuPy arrays back, torch CUDA tensors give torch tensors,
    Numba device arrays (and any other object exposing
    ``__cuda_array_interface__``) give Numba device arrays; all zero-copy.
    Objects that expose only ``__dlpack__`` with a CUDA ``__dlpack_device__``
    (kDLCUDA or kDLCUDAManaged; a JAX GPU array) are viewed zero-copy through
    ``cupy.from_dlpack`` (CuPy is required for them; numba-cuda has no public
    ``from_dlpack``); outputs are allocated by CuPy and handed back through
    the family's own ``from_dlpack`` (``jax.numpy.from_dlpack`` for
    ``jax``/``jaxlib``, ``<module root>.from_dlpack`` otherwise, CuPy arrays
    when the module has none), on the work stream. JAX arrays are immutable,
    so ``out=`` cannot be one. :func:`route` is the pure decision (family,
    import route, allocator, give-back); :func:`_as_cai` is the only place
    that imports through DLPack.
    NumPy arrays given with a GPU backend (``backend="numba_cuda"``) are
    copied to the device, scanned, and copied back: NumPy in, NumPy out, and
    the call returns only once the result is on the host.
Streams
    ``stream=`` takes None, an int handle, or an object with
    ``__cuda_stream__``, ``.ptr`` (CuPy), ``.cuda_stream`` (PyTorch) or
    ``.handle`` (Numba). With None, the work goes on the stream named in the
    first input's ``__cuda_array_interface__`` (else the default stream).
    Inputs whose interface names another stream are waited for with an
    event on the work stream (no host synchronization). Outputs come from
    the family's allocator: CuPy's pool and PyTorch's caching allocator
    associate memory with *their* current stream, so with a foreign
    ``stream=`` keep the inputs alive until that stream is done.
Devices
    All arrays must live on one GPU; the work runs on it. Device ids that
    ``__dlpack_device__`` declares are compared before anything is imported.
bfloat16
    ``__cuda_array_interface__`` has no name for bfloat16: torch (2.13)
    writes the opaque two bytes ``"<V2"``, which is also the ``dtype.str`` of
    ml_dtypes' bfloat16 (the dtype of CuPy's bfloat16 arrays). Such an array
    is read as bfloat16 when its own ``dtype`` says so (``torch.bfloat16``,
    or ml_dtypes' bfloat16), so a torch bfloat16 CUDA tensor or a CuPy
    bfloat16 array is taken as it is, computed in float32 and answered in
    bfloat16. This needs ml_dtypes on the host (:func:`accepts_bfloat16`
    says whether it is there) and a backend whose arrays hold bfloat16: the
    cupy backend (a CuPy with bfloat16 support); Numba's arrays have none.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math

import numpy as np

from logscan import _arrays, _layout, capi, registry

_SIM_ARRAY_TYPES = ("FakeCUDAArray",)


# ------------------------------------------------------------------ numba.cuda
def _cuda():
    from numba import cuda  # noqa: PLC0415  (only on the GPU path)

    return cuda


def _simulator():
    from numba import config  # noqa: PLC0415

    return bool(config.ENABLE_CUDASIM)


def _numba_stream(handle):
    cuda = _cuda()
    if _simulator():
        return cuda.default_stream()
    return cuda.default_stream() if not handle else cuda.external_stream(handle)


# --------------------------------------------------------------------- streams
def stream_handle(caller, stream):
    """The int CUDA stream handle of any framework's stream object (None stays None)."""
    if stream is None:
        return None
    if isinstance(stream, (bool, np.bool_)):
        raise TypeError(f"{caller}: stream must be None, an int handle or a stream object, got a bool")
    if isinstance(stream, (int, np.integer)):
        if stream < 0:
            raise ValueError(f"{caller}: stream handle must be non-negative, got {stream}")
        return int(stream)
    if hasattr(stream, "__cuda_stream__"):
        protocol = stream.__cuda_stream__
        version_handle = protocol() if callable(protocol) else protocol
        return _handle_int(caller, version_handle[1])
    for attr in ("ptr", "cuda_stream", "handle"):
        if hasattr(stream, attr):
            return _handle_int(caller, getattr(stream, attr))
    raise TypeError(f"{caller}: stream must be None, an int handle, or an object with __cuda_stream__, .ptr, "
                    f".cuda_stream or .handle, got {type(stream).__name__}")


def _handle_int(caller, handle):
    handle = getattr(handle, "value", handle)  # ctypes.c_void_p
    if handle is None:
        return 0
    try:
        value = int(handle)
    except (TypeError, ValueError):
        raise TypeError(f"{caller}: stream handle must be an int, got {type(handle).__name__}") from None
    if value < 0:
        raise ValueError(f"{caller}: stream handle must be non-negative, got {value}")
    return value


def _wait(producer, consumer):
    """Make stream ``consumer`` wait for the work queued so far on ``producer`` (no host sync)."""
    if producer == consumer or _simulator():
        return
    cuda = _cuda()
    event = cuda.event(timing=False)
    event.record(stream=_numba_stream(producer))
    event.wait(stream=_numba_stream(consumer))


# ---------------------------------------------------------------- descriptors
class _Operand:
    """An n-d device array as (pointer, shape, element strides, dtype), plus where it came from."""

    def __init__(self, ptr, shape, strides, dtype, obj, readonly=False, stream=None, device=None):
        self.ptr, self.shape, self.strides, self.dtype = int(ptr), tuple(shape), tuple(strides), np.dtype(dtype)
        self.obj, self.readonly, self.stream, self.device = obj, readonly, stream, device

    def extent(self):
        """Byte range [lo, hi) the view touches (empty views touch nothing)."""
        if math.prod(self.shape) == 0:
            return (self.ptr, self.ptr)
        lo = sum(s * (n - 1) for n, s in zip(self.shape, self.strides, strict=True) if s < 0)
        hi = sum(s * (n - 1) for n, s in zip(self.shape, self.strides, strict=True) if s > 0)
        size = self.dtype.itemsize
        return (self.ptr + lo * size, self.ptr + (hi + 1) * size)


def is_device_array(x):
    """True for objects the GPU path takes zero-copy (CAI, CUDA DLPack, and the simulator's arrays)."""
    return (hasattr(x, "__cuda_array_interface__") or type(x).__name__ in _SIM_ARRAY_TYPES
            or _arrays.is_cuda_dlpack(x))


# ------------------------------------------------------------------ interop
# Families whose own ``from_dlpack`` is not ``<module root>.from_dlpack``.
_GIVE_BACK = {"jax": "jax.numpy:from_dlpack", "jaxlib": "jax.numpy:from_dlpack"}


@dataclasses.dataclass(frozen=True)
class Route:
    """How one device array comes in and how results go back: a pure decision from type and protocols.

    family
        What the caller gets back: ``"cupy"``, ``"torch"``, ``"numba"``, ``"jax"``, or the module root of
        another DLPack producer.
    import_via
        ``"cai"`` (``__cuda_array_interface__``), ``"simulator"`` (Numba's simulator arrays) or
        ``"dlpack"`` (``cupy.from_dlpack``, zero-copy).
    allocate
        Who allocates outputs and temporaries: ``"cupy"``, ``"torch"`` or ``"numba"``.
    give_back
        ``"module:function"`` turning an allocated output into the family's array through DLPack
        (zero-copy), or None when the allocator's arrays already are the family's.
    """

    family: str
    import_via: str
    allocate: str
    give_back: str | None


def route(x):
    """The :class:`Route` of a device array ``x`` (imports nothing, touches no GPU)."""
    root = type(x).__module__.split(".")[0]
    if hasattr(x, "__cuda_array_interface__"):
        import_via = "cai"
    elif type(x).__name__ in _SIM_ARRAY_TYPES:
        import_via = "simulator"
    elif _arrays.is_cuda_dlpack(x):
        import_via = "dlpack"
    else:
        raise TypeError(f"logscan: {type(x).__name__} is not a device array (no __cuda_array_interface__ and no "
                        f"CUDA __dlpack_device__)")
    if root in ("cupy", "torch"):
        return Route(root, import_via, root, None)
    if root in _GIVE_BACK:
        return Route("jax", import_via, "cupy", _GIVE_BACK[root])
    if import_via == "dlpack":
        return Route(root, import_via, "cupy", f"{root}:from_dlpack")
    return Route("numba", import_via, "numba", None)


def _cupy_or_error(caller, name, x, found):
    try:
        return importlib.import_module("cupy")
    except ImportError:
        what = "taking it zero-copy" if found.import_via == "dlpack" else "giving results back in its family"
        raise RuntimeError(f"{caller}: {name} is a {type(x).__module__}.{type(x).__name__} on a CUDA device "
                           f"({'only __dlpack__' if found.import_via == 'dlpack' else 'a ' + found.family + ' array'}"
                           f"); {what} needs CuPy, which is not installed: pip install 'logscan[cuda12]' or "
                           f"'logscan[cuda13]' (or pass an array with __cuda_array_interface__)") from None


@contextlib.contextmanager
def _cupy_stream(cupy, handle):
    """CuPy's current stream set to ``handle`` so that DLPack producers and consumers order against it."""
    if handle is None:
        yield
        return
    with cupy.cuda.ExternalStream(handle) if handle else cupy.cuda.Stream.null:
        yield


def _as_cai(caller, name, x, handle=None):
    """(object with ``__cuda_array_interface__`` or a simulator array, :class:`Route`) of device array ``x``.

    The one place that knows DLPack on the way in: a DLPack-only CUDA producer is viewed through
    ``cupy.from_dlpack`` (zero-copy), ordered on stream ``handle``.
    """
    found = route(x)
    if found.allocate != "cupy" and found.import_via != "dlpack":
        return x, found
    cupy = _cupy_or_error(caller, name, x, found)  # allocates this family's outputs, or imports x
    if found.import_via != "dlpack":
        return x, found
    with _cupy_stream(cupy, handle):
        return cupy.from_dlpack(x), found


def _give_back_function(found):
    """The family's ``from_dlpack`` (imported now, only on this path), or None to return CuPy arrays as they are.

    A producer whose module has no ``from_dlpack`` gets CuPy arrays, which any DLPack consumer takes zero-copy.
    """
    if found.give_back is None:
        return None
    module_name, function = found.give_back.split(":")
    try:
        return getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError):
        return None


def _interface(x):
    if hasattr(x, "__cuda_array_interface__"):
        return x.__cuda_array_interface__
    host = x._ary.__array_interface__  # the simulator's device arrays: host memory
    return {"shape": host["shape"], "strides": host["strides"], "data": host["data"], "typestr": host["typestr"],
            "version": 3}


def _device_id(x, ptr):
    if hasattr(x, "__dlpack_device__"):
        with contextlib.suppress(Exception):
            kind, index = x.__dlpack_device__()
            return int(index)
    device = getattr(x, "device", None)
    for attr in ("id", "index"):  # cupy.cuda.Device.id, torch.device.index
        value = getattr(device, attr, None)
        if isinstance(value, (int, np.integer)):
            return int(value)
    if ptr and not _simulator():
        with contextlib.suppress(Exception):
            from numba.cuda.cudadrv import driver  # noqa: PLC0415

            attr = driver.binding.CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL
            return int(driver.driver.cuPointerGetAttribute(attr, driver.binding.CUdeviceptr(ptr)))
    return None


def accepts_bfloat16() -> bool:
    """Whether bfloat16 device arrays are taken as they are here: ml_dtypes, which gives NumPy (and so the
    core) its bfloat16, is importable. Without it such arrays are a RuntimeError naming ml_dtypes."""
    return capi._bfloat16() is not None


def _dtype(caller, name, x, typestr):
    """The checked dtype of device array ``x``: its typestr's, except for bfloat16, whose typestr is the opaque
    ``"<V2"`` and whose own ``dtype`` (``torch.bfloat16``, ml_dtypes' bfloat16) names it."""
    dtype = np.dtype(typestr)
    if dtype.kind == "V" and dtype.itemsize == 2 and str(getattr(x, "dtype", "")).rpartition(".")[2] == "bfloat16":
        return capi.dtype_of("bfloat16", caller)
    _arrays.check_float_dtype(caller, name, dtype)
    return dtype


def _describe(caller, name, x, dtype=None):
    """The :class:`_Operand` of a device array: an argument, its dtype read from its interface and checked, or
    an array allocated here in ``dtype`` (float, or the workspace's bytes)."""
    cai = _interface(x)
    if cai.get("mask") is not None:
        raise TypeError(f"{caller}: {name} is a masked device array, which logscan does not support")
    dtype = _dtype(caller, name, x, cai["typestr"]) if dtype is None else np.dtype(dtype)
    shape = tuple(int(n) for n in cai["shape"])
    if cai.get("strides") is None:
        strides, step = [], 1
        for n in reversed(shape):
            strides.append(step)
            step *= max(n, 1)
        strides = tuple(reversed(strides))
    else:
        if any(s % dtype.itemsize for s in cai["strides"]):
            raise ValueError(f"{caller}: {name} has strides {tuple(cai['strides'])} that are not a multiple of "
                             f"its itemsize {dtype.itemsize}")
        strides = tuple(int(s) // dtype.itemsize for s in cai["strides"])
    ptr, readonly = cai["data"]
    if ptr % dtype.itemsize:  # a misaligned load is a CUDA error that ends the whole context
        raise ValueError(f"{caller}: {name} starts at {ptr:#x}, not a multiple of its itemsize {dtype.itemsize}; "
                         f"GPU kernels need element-aligned data")
    return _Operand(ptr, shape, strides, dtype, x, bool(readonly), cai.get("stream"), _device_id(x, ptr))


def _broadcast(op, shape):
    """``op`` viewed with the broadcast ``shape`` (stride 0 where stretched or prepended)."""
    lead = len(shape) - len(op.shape)
    strides = [0] * lead
    for n_to, n, s in zip(shape[lead:], op.shape, op.strides, strict=True):
        strides.append(s if n == n_to else 0)
    return _Operand(op.ptr, shape, strides, op.dtype, op.obj, op.readonly, op.stream, op.device)


# ------------------------------------------------------------------ families
class _Family:
    """Allocation in the array family of a template input (CuPy, torch, else Numba)."""

    def __init__(self, template, device, stream):
        self.route = route(template) if template is not None else None
        self.kind = self.route.allocate if self.route is not None else "numba"
        self.template, self.device, self.stream = template, device, stream
        self.to_host = template is None  # NumPy inputs: results go back to the host
        self._give_back = None if self.route is None else _give_back_function(self.route)

    def give_back(self, obj):
        """``obj`` (allocated here) as an array of the caller's family: zero-copy through DLPack where needed."""
        if obj is None or self._give_back is None:
            return obj
        if self.stream is None:
            return self._give_back(obj)
        with _cupy_stream(importlib.import_module("cupy"), self.stream):  # the consumer waits for our stream
            return self._give_back(obj)

    def empty(self, shape, dtype):
        """(object, _Operand) of a new C-contiguous device array."""
        dtype = np.dtype(dtype)
        if self.kind == "cupy":
            cupy = importlib.import_module("cupy")
            with cupy.cuda.Device(self.device or 0):
                obj = cupy.empty(shape, dtype)
        elif self.kind == "torch":
            torch = importlib.import_module("torch")
            obj = torch.empty(shape, dtype=getattr(torch, dtype.name), device=self.template.device)
        else:
            obj = _cuda().device_array(shape, dtype, stream=_numba_stream(self.stream))
        op = _describe("logscan", "new array", obj, dtype) if math.prod(shape) else _Operand(
            0, shape, (0,) * len(shape), dtype, obj)
        return obj, op

    def workspace(self, nbytes):
        if nbytes == 0:
            return None, 0
        obj, op = self.empty((nbytes,), np.uint8)
        return obj, op.ptr

    def zeros(self, shape, dtype):
        obj, op = self.empty(shape, dtype)
        return obj, op

    def reduce_sum(self, obj, axes, keepdims):
        """Sum over axes in the family (host round trip for Numba arrays)."""
        if self.kind == "cupy":
            return obj.sum(axis=axes, keepdims=keepdims)
        if self.kind == "torch":
            return obj.sum(dim=axes, keepdim=keepdims)
        host = obj.copy_to_host(stream=_numba_stream(self.stream))
        _numba_stream(self.stream).synchronize()
        return _cuda().to_device(np.ascontiguousarray(host.sum(axis=axes, keepdims=keepdims)),
                                 stream=_numba_stream(self.stream))


def _copy(module, dst, src):
    """dst[...] = src between device operands of one shape (casts dtype), through the backend's views."""
    if math.prod(dst.shape) == 0:
        return
    dst_view = module.as_array(dst.ptr, dst.shape, dst.strides, dst.dtype, True)
    dst_view[...] = module.as_array(src.ptr, src.shape, src.strides, src.dtype, False)


def _fill(module, dst, value):
    if math.prod(dst.shape):
        module.as_array(dst.ptr, dst.shape, dst.strides, dst.dtype, True)[...] = value


class _Call:
    """Everything one front-door call holds: backend, family, stream, temporaries kept alive."""

    def __init__(self, caller, backend, family, module):
        self.caller, self.backend, self.family, self.module = caller, backend, family, module
        self.keep = []

    def contiguous(self, op, dtype=None):
        """A C-contiguous copy of ``op`` (with dtype cast) in the family."""
        obj, new = self.family.empty(op.shape, dtype or op.dtype)
        self.keep.append(obj)
        _copy(self.module, new, op)
        return new

    def canonical(self, op, axis):
        """(ptr, shape3, strides3) of ``op`` scanned along ``axis``, copying only when the strides force it."""
        found = _layout.canonical(op.shape, op.strides, axis)
        if found is None:
            op = self.contiguous(op)
            found = _layout.canonical(op.shape, op.strides, axis)
        shape3, strides3 = found
        return op.ptr, shape3, strides3

    def as_dtype(self, op, dtype):
        return op if op.dtype == dtype else self.contiguous(op, dtype)


# ------------------------------------------------------------------ the calls
def _normalize_axis(caller, axis, ndim):
    from logscan.api import _normalize_axis as normalize  # noqa: PLC0415  (api imports this module lazily)

    return normalize(caller, axis, ndim)


def _gather(caller, named, stream):
    """Operands of the given arrays (NumPy ones copied to the device), the family, device and stream."""
    present = {name: x for name, x in named.items() if x is not None}
    host = [name for name, x in present.items() if not is_device_array(x)]
    device_names = [name for name in present if name not in host]
    if host and device_names:
        raise TypeError(f"{caller}: cannot mix host and device arrays: {', '.join(host)} on the CPU, "
                        f"{', '.join(device_names)} on a CUDA device; move them to one place first")
    handle = stream_handle(caller, stream)
    operands = {}
    if host:
        cuda = _cuda()
        numba_stream = _numba_stream(handle)
        for name, x in present.items():
            x_np = _arrays.to_numpy(x, caller, name)
            _arrays.check_float(caller, name, x_np)
            operands[name] = _describe(caller, name, cuda.to_device(np.ascontiguousarray(x_np),
                                                                    stream=numba_stream))
        return operands, None, None, handle
    # Device ids DLPack producers declare are checked before anything is imported.
    _one_device(caller, {name: _dlpack_index(x) for name, x in present.items()})
    for name, x in present.items():
        if (name == "out" or name.startswith("out[")) and route(x).family == "jax":
            raise TypeError(f"{caller}: {name} cannot be a JAX array (JAX arrays are immutable); leave out=None "
                            f"and use the returned array")
    for name, x in present.items():
        view, _route = _as_cai(caller, name, x, handle)
        operands[name] = _describe(caller, name, view)
    device = _one_device(caller, {name: op.device for name, op in operands.items()})
    producers = [op.stream for op in operands.values() if op.stream is not None]
    if handle is None and producers:
        handle = int(producers[0])
    for producer in producers:
        _wait(int(producer), handle or 0)
    template = next(x for x in present.values())
    return operands, template, device, handle


def _dlpack_index(x):
    with contextlib.suppress(Exception):
        found = _arrays.dlpack_device(x)
        return None if found is None else found[1]
    return None


def _one_device(caller, devices):
    """The one device id among ``devices`` (name -> id or None); ValueError naming them when there are several."""
    devices = {name: d for name, d in devices.items() if d is not None}
    if len(set(devices.values())) > 1:
        where = ", ".join(f"{name} on cuda:{d}" for name, d in devices.items())
        raise ValueError(f"{caller}: arrays are on different devices ({where}); move them to one device first")
    return next(iter(devices.values()), None)


@contextlib.contextmanager
def _on_device(device):
    if device is None or _simulator():
        yield
        return
    with _cuda().gpus[device]:
        yield


def _setup(caller, named, backend, stream, input_names):
    _name, module = registry.resolve(backend, "cuda", caller=caller)  # first: "install logscan[cuda13]"
    operands, template, device, handle = _gather(caller, named, stream)
    family = _Family(template, device, handle)
    call = _Call(caller, backend, family, module)
    for name in input_names:
        if name not in operands:
            raise TypeError(f"{caller}: {name} must be an array, got None")
    return operands, call, device, handle


def _inputs(caller, call, operands, names, axis):
    try:
        shape = np.broadcast_shapes(*(operands[n].shape for n in names))
    except ValueError:
        shapes = " and ".join(str(operands[n].shape) for n in names)
        raise ValueError(f"{caller}: {' and '.join(names)} must have the same shape (or broadcast together), "
                         f"got {shapes}") from None
    if len(shape) == 0:
        raise ValueError(f"{caller}: {names[0]} must have at least one dimension to scan along, got a 0-d array")
    axis = _normalize_axis(caller, axis, len(shape))
    dtype = np.result_type(*(operands[n].dtype for n in names))
    return [_broadcast(call.as_dtype(operands[n], dtype), shape) for n in names], shape, dtype, axis


def _state(caller, call, name, op, state_shape, axis, dtype):
    """(ptr, (outer, inner) strides) of an optional initial state."""
    if op is None:
        return 0, (0, 0)
    op = call.as_dtype(op, dtype)
    try:
        fits = np.broadcast_shapes(op.shape, state_shape) == tuple(state_shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{caller}: {name} must have shape {state_shape} (the scanned arrays' shape without "
                         f"the scan axis), got {op.shape}") from None
    op = _broadcast(op, state_shape)
    expanded = _Operand(op.ptr, op.shape[:axis] + (1,) + op.shape[axis:], op.strides[:axis] + (0,) + op.strides[axis:],
                        op.dtype, op.obj)
    ptr, _shape3, strides3 = call.canonical(expanded, axis)
    return ptr, (strides3[0], strides3[2])


def _overlaps(x, y):
    (x0, x1), (y0, y1) = x.extent(), y.extent()
    return x0 < y1 and y0 < x1


def _same_view(x, y):
    return x.ptr == y.ptr and x.shape == y.shape and x.strides == y.strides


def _run(op, call, sizes, kwargs, reverse, method, handle):
    """Run one op of the core on device pointers (``kwargs``: name -> pointer, name_strides -> strides)."""
    buffers = {name: (ptr, kwargs[name + "_strides"]) for name, ptr in kwargs.items() if not name.endswith("_strides")}

    def allocate(nbytes):
        owner, pointer = call.family.workspace(nbytes)
        call.keep.append(owner)  # alive until the call returns, as the other temporaries
        return owner, pointer

    capi._run_allocating(call.caller, op, buffers, **sizes, reverse=reverse, method=method, backend=call.backend,
                         device="cuda", allocate=allocate, stream=handle)


def _finish_host(call, obj, handle):
    """NumPy result of a device array (the host path), after the stream is done."""
    stream = _numba_stream(handle)
    host = obj.copy_to_host(stream=stream)
    stream.synchronize()
    return host


def forward(op, caller, named, axis, reverse, method, backend, stream=None):
    """Forward scan of device arrays (or NumPy arrays with a GPU backend); see :func:`logscan.scan`."""
    names = list(named)
    first, second, state_name = names[0], names[1], names[2]
    operands, call, device, handle = _setup(caller, named, backend, stream, (first, second))
    with _on_device(device), _backend_stream(call.module, handle):
        (a, b), shape, dtype, axis = _inputs(caller, call, operands, (first, second), axis)
        state_shape = shape[:axis] + shape[axis + 1:]
        state = _state(caller, call, state_name, operands.get(state_name), state_shape, axis, dtype)
        out_obj = named.get("out")
        result_obj, result = _output(caller, call, out_obj, operands.get("out"), shape, dtype, axis, (a, b))
        kwargs = {}
        a_names = ("log_a", "log_b") if op == "log_scan" else ("a", "b")
        for name, x in zip(a_names + ("out",), (a, b, result), strict=True):
            kwargs[name], shape3, kwargs[name + "_strides"] = call.canonical(x, axis)
        kwargs["log_h0" if op == "log_scan" else "h0"], kwargs[("log_h0" if op == "log_scan" else "h0") + "_strides"] \
            = state
        outer, T, inner = shape3
        if outer * T * inner:  # empty results have nothing to compute (and may have null pointers)
            _run(op, call, dict(outer=outer, T=T, inner=inner, dtype=str(dtype)), kwargs, reverse, method, handle)
        if out_obj is not None:
            if result_obj is not out_obj:
                _copy_out(call, out_obj, operands.get("out"), result_obj, result, handle)
            return out_obj
        if call.family.to_host:
            return _finish_host(call, result_obj, handle)
        return call.family.give_back(result_obj)


@contextlib.contextmanager
def _backend_stream(module, handle):
    """The backend's stream scope around the front door's own copies (the core opens its own for the call)."""
    scope = getattr(module, "on_stream", None)
    if scope is None:
        yield
        return
    with scope(handle):
        yield


def _check_out(caller, call, label, out_obj, out_op, shape, dtype):
    """Errors for an output argument ``label`` of the wrong kind, shape or dtype, or read-only."""
    if call.family.to_host and not isinstance(out_obj, np.ndarray):
        raise TypeError(f"{caller}: {label} must be a numpy.ndarray, got {type(out_obj).__name__}")
    if out_op.shape != tuple(shape):
        raise ValueError(f"{caller}: {label} must have shape {tuple(shape)}, got {out_op.shape}")
    if out_op.dtype != dtype:
        raise TypeError(f"{caller}: {label} must have dtype {dtype}, got {out_op.dtype}")
    if (not out_obj.flags.writeable) if call.family.to_host else out_op.readonly:
        raise ValueError(f"{caller}: {label} is read-only")


def _output(caller, call, out_obj, out_op, shape, dtype, axis, inputs):
    """(object, operand) the core writes: ``out`` itself when canonical and safe, else a new array."""
    if out_obj is None:
        return call.family.empty(shape, dtype)
    _check_out(caller, call, "out", out_obj, out_op, shape, dtype)
    if call.family.to_host:
        return call.family.empty(shape, dtype)
    canonical = _layout.canonical(out_op.shape, out_op.strides, axis) is not None
    overlaps = any(_overlaps(out_op, x) and not _same_view(out_op, x) for x in inputs)
    if canonical and not overlaps:
        return out_obj, out_op
    return call.family.empty(shape, dtype)


def _copy_out(call, out_obj, out_op, result_obj, result, handle):
    if call.family.to_host:
        np.copyto(out_obj, _finish_host(call, result_obj, handle))
    else:
        _copy(call.module, out_op, result)


def _sum_to(call, obj, op, shape):
    """Reduce a gradient of the broadcast shape to an input's own shape, in the family."""
    if op.shape == tuple(shape):
        return obj
    lead = len(op.shape) - len(shape)
    if lead:
        obj = call.family.reduce_sum(obj, tuple(range(lead)), False)
    current = op.shape[lead:]
    stretched = tuple(k for k, n in enumerate(shape) if n == 1 and current[k] != 1)
    return call.family.reduce_sum(obj, stretched, True) if stretched else obj


def _gradient_target(caller, call, label, out_obj, out_op, own_shape, full_shape, dtype, axis, inputs,
                     time_axis=True):
    """(object, operand) the core writes one gradient into: ``out``'s own when it can, else a new array.

    As :func:`logscan.api._gradient_buffer`: directly only with nothing to sum
    over, a layout the core takes without a copy, and no overlap with an input.
    """
    if out_obj is not None:
        _check_out(caller, call, label, out_obj, out_op, own_shape, dtype)
    if out_obj is None or call.family.to_host or tuple(own_shape) != tuple(full_shape):
        return call.family.empty(full_shape, dtype)
    shape = out_op.shape if time_axis else out_op.shape[:axis] + (1,) + out_op.shape[axis:]
    strides = out_op.strides if time_axis else out_op.strides[:axis] + (0,) + out_op.strides[axis:]
    canonical = _layout.canonical(shape, strides, axis) is not None
    if canonical and not any(_overlaps(out_op, x) for x in inputs):
        return out_obj, out_op
    return call.family.empty(full_shape, dtype)


def backward(op, caller, named, axis, reverse, method, backend, out_names=(), stream=None):
    """Backward of a scan on device arrays; see :func:`logscan.scan_backward`.

    ``named``: the gradient, the two inputs, the scan's output and the state
    (None when absent), in that order, then the ``out`` arrays under
    ``out_names``.
    """
    grad_name, first, second, value_name, state_name = list(named)[:5]
    operands, call, device, handle = _setup(caller, named, backend, stream, (grad_name, first, second, value_name))
    with _on_device(device), _backend_stream(call.module, handle):
        (a, b), shape, dtype, axis = _inputs(caller, call, operands, (first, second), axis)
        seq = {}
        for name in (grad_name, value_name):
            x = operands[name]
            if x.shape != tuple(shape):
                raise ValueError(f"{caller}: {name} must have shape {tuple(shape)} (that of {first} and {second} "
                                 f"broadcast), got {x.shape}")
            seq[name] = call.as_dtype(x, dtype)
        state_shape = shape[:axis] + shape[axis + 1:]
        state_op = operands.get(state_name)
        state = _state(caller, call, state_name, state_op, state_shape, axis, dtype)
        names = {"log_scan": ("grad_log_h", "log_a", "log_b", "log_h", "grad_log_a", "grad_log_b", "log_h0",
                              "grad_log_h0"),
                 "linear_scan": ("grad_h", "a", "b", "h", "grad_a", "grad_b", "h0", "grad_h0")}[op]
        grad_labels = [names[4], names[5]] + ([names[7]] if state_op is not None else [])
        labels = [f"out[{k}] ({label})" if out_names else label for k, label in enumerate(grad_labels)]
        own_shapes = [operands[first].shape, operands[second].shape]
        own_shapes += [state_op.shape] if state_op is not None else []
        full_shapes = [tuple(shape), tuple(shape), tuple(state_shape)]
        out_objs = [named[n] for n in out_names] or [None] * len(labels)
        out_ops = [operands[n] for n in out_names] or [None] * len(labels)
        if out_names:
            from logscan.api import _check_outs_apart  # noqa: PLC0415  (api imports this module lazily)

            if call.family.to_host:  # NumPy outs: the operands are device copies, the outs themselves are checked
                _check_outs_apart(caller, grad_labels, out_objs, np.may_share_memory)
            else:
                _check_outs_apart(caller, grad_labels, out_ops, _overlaps)
        inputs = [seq[grad_name], a, b, seq[value_name]] + ([state_op] if state_op is not None else [])
        targets = [_gradient_target(caller, call, labels[k], out_objs[k], out_ops[k], own_shapes[k], full_shapes[k],
                                    dtype, axis, inputs, time_axis=k < 2) for k in range(len(labels))]
        kwargs = {}
        for name, x in zip(names[:6], (seq[grad_name], a, b, seq[value_name], targets[0][1], targets[1][1]),
                           strict=True):
            kwargs[name], shape3, kwargs[name + "_strides"] = call.canonical(x, axis)
        kwargs[names[6]], kwargs[names[6] + "_strides"] = state
        if state_op is not None:
            kwargs[names[7]], kwargs[names[7] + "_strides"] = _state(caller, call, names[7], targets[2][1],
                                                                     state_shape, axis, dtype)
        outer, T, inner = shape3
        if outer * T * inner:
            _run(op + "_backward", call, dict(outer=outer, T=T, inner=inner, dtype=str(dtype)), kwargs, reverse,
                 method, handle)
        elif state_op is not None:
            _fill(call.module, targets[2][1], 0)  # T = 0: the state passes through untouched
        grads = [_sum_to(call, obj, op_, own) for (obj, op_), own in zip(targets, own_shapes, strict=True)]
        if out_names:
            for k, (out_obj, out_op, result) in enumerate(zip(out_objs, out_ops, grads, strict=True)):
                if result is not out_obj:
                    result_op = None if call.family.to_host else _describe(caller, labels[k], result)
                    _copy_out(call, out_obj, out_op, result, result_op, handle)
            return tuple(out_objs) + (None,) * (3 - len(out_objs))
        if call.family.to_host:
            grads = [_finish_host(call, g, handle) for g in grads]
        else:
            grads = [call.family.give_back(g) for g in grads]
        return tuple(grads) + (None,) * (3 - len(grads))


def zeros_like_scalar(x):
    """A zero of ``x``'s dtype with ``x.ndim`` unit dims, in ``x``'s family (``log_a = 0`` for logcumsumexp)."""
    caller = "logscan.logcumsumexp"
    _one_device(caller, {"x": _dlpack_index(x)})
    view, _route = _as_cai(caller, "x", x)
    op = _describe(caller, "x", view)
    family = _Family(x, op.device, None)
    ndim = max(len(op.shape), 1)
    if family.kind == "cupy":
        cupy = importlib.import_module("cupy")
        with cupy.cuda.Device(op.device or 0):
            return family.give_back(cupy.zeros((1,) * ndim, op.dtype))
    if family.kind == "torch":
        torch = importlib.import_module("torch")
        return torch.zeros((1,) * ndim, dtype=getattr(torch, op.dtype.name), device=x.device)
    if _simulator():
        return _SimulatedDeviceArray(np.zeros((1,) * ndim, op.dtype))
    return _cuda().to_device(np.zeros((1,) * ndim, op.dtype))


class _SimulatedDeviceArray:
    """Under Numba's simulator "device" memory is host memory; this marks it as device memory for the API."""

    def __init__(self, host):
        self.host = host
        self.__cuda_array_interface__ = {"shape": host.shape, "strides": None, "typestr": host.dtype.str,
                                         "data": (host.__array_interface__["data"][0], False), "version": 3}
