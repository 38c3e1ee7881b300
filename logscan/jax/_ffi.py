"""The CPU route of the JAX adapter: an XLA FFI handler, written with ctypes, that runs the library on XLA's buffers.

:func:`call` stages ``jax.ffi.ffi_call`` of the target ``logscan_jax_cpu``:
inside a jitted function it is an XLA custom call, and XLA calls
:func:`_handle` when the program runs, with a call frame that names the raw
input and output buffers. The handler (a ctypes callback, which takes the
GIL) views the buffers as NumPy arrays, lets the front door compute straight
into the output buffers (``out=``), and returns: nothing is copied on the way
in or out, and the cost over a call of the library on NumPy arrays is the
decoding of the frame, tens of microseconds.

The structures mirror ``xla/ffi/api/c_api.h`` (the header jaxlib ships in
``jax.ffi.include_dir()``), FFI API version 0.3. XLA asks a handler for its
version when it is registered and refuses one it does not speak; where the
installed jaxlib speaks another version (or has no ``jax.ffi``),
:data:`AVAILABLE` is False, :data:`UNAVAILABLE_BECAUSE` says why (so does a
RuntimeWarning at import), and the adapter computes through
``jax.pure_callback`` instead.
"""

from __future__ import annotations

import ctypes
import warnings

import jax
import numpy as np

from logscan.jax import _host

TARGET = "logscan_jax_cpu"
API_VERSION = (0, 3)

# enums of c_api.h
_EXTENSION_METADATA = 1
_STAGE_EXECUTE = 3
_ERROR_INTERNAL = 13
_ATTR_SCALAR, _ATTR_STRING = 3, 4
_DTYPES = {10: np.dtype(np.float16), 11: np.dtype(np.float32), 12: np.dtype(np.float64)}
_SCALARS = {1: ctypes.c_bool, 4: ctypes.c_int32, 5: ctypes.c_int64}  # PRED, S32, S64


# ------------------------------------------------------------------ the structures of c_api.h
class _ExtensionBase(ctypes.Structure):
    pass


_ExtensionBase._fields_ = [("struct_size", ctypes.c_size_t), ("type", ctypes.c_int),
                           ("next", ctypes.POINTER(_ExtensionBase))]


class _ApiVersion(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p),
                ("major_version", ctypes.c_int), ("minor_version", ctypes.c_int)]


class _Metadata(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("api_version", _ApiVersion), ("traits", ctypes.c_uint32)]


class _MetadataExtension(ctypes.Structure):
    _fields_ = [("extension_base", _ExtensionBase), ("metadata", ctypes.POINTER(_Metadata))]


class _Buffer(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p), ("dtype", ctypes.c_int),
                ("data", ctypes.c_void_p), ("rank", ctypes.c_int64), ("dims", ctypes.POINTER(ctypes.c_int64))]


class _Buffers(ctypes.Structure):  # XLA_FFI_Args and XLA_FFI_Rets have one layout
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p), ("size", ctypes.c_int64),
                ("types", ctypes.POINTER(ctypes.c_int)), ("buffers", ctypes.POINTER(ctypes.c_void_p))]


class _ByteSpan(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Scalar(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int), ("value", ctypes.c_void_p)]


class _Attrs(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p), ("size", ctypes.c_int64),
                ("types", ctypes.POINTER(ctypes.c_int)), ("names", ctypes.POINTER(ctypes.POINTER(_ByteSpan))),
                ("attrs", ctypes.POINTER(ctypes.c_void_p))]


class _ErrorCreateArgs(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p),
                ("message", ctypes.c_char_p), ("errc", ctypes.c_int)]


_ErrorCreate = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.POINTER(_ErrorCreateArgs))


class _ApiHead(ctypes.Structure):
    """The head of XLA_FFI_Api, up to the one function the handler calls."""

    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p),
                ("api_version", _ApiVersion), ("internal_api", ctypes.c_void_p), ("error_create", _ErrorCreate)]


class _CallFrame(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.POINTER(_ExtensionBase)),
                ("api", ctypes.POINTER(_ApiHead)), ("ctx", ctypes.c_void_p), ("stage", ctypes.c_int),
                ("args", _Buffers), ("rets", _Buffers), ("attrs", _Attrs), ("future", ctypes.c_void_p)]


def _struct_size(struct, last_field):
    """XLA_FFI_STRUCT_SIZE: the bytes up to the end of ``last_field`` (no trailing padding)."""
    field = getattr(struct, last_field)
    return field.offset + field.size


_CALL_FRAME_SIZE = _struct_size(_CallFrame, "attrs")
_BUFFER_SIZE = _struct_size(_Buffer, "dims")
_API_HEAD_SIZE = _struct_size(_ApiHead, "error_create")
_ERROR_CREATE_ARGS_SIZE = _struct_size(_ErrorCreateArgs, "errc")


# ------------------------------------------------------------------ decoding a call frame
class _Memory:
    """A raw buffer as NumPy sees it through ``__array_interface__`` (a view, no copy)."""

    def __init__(self, pointer, shape, dtype, read_only):
        self.__array_interface__ = {"data": (pointer, read_only), "shape": shape, "typestr": dtype.str,
                                    "version": 3}


def _array(address, read_only):
    """A NumPy view of the XLA_FFI_Buffer at ``address`` (row-major, the layout ffi_call asks for)."""
    buffer = _Buffer.from_address(address)
    if buffer.struct_size < _BUFFER_SIZE:
        raise RuntimeError(f"an XLA_FFI_Buffer of {buffer.struct_size} bytes, expected at least {_BUFFER_SIZE}")
    if buffer.dtype not in _DTYPES:
        raise TypeError(f"a buffer of XLA_FFI_DataType {buffer.dtype}, expected F16, F32 or F64")
    dtype = _DTYPES[buffer.dtype]
    shape = tuple(buffer.dims[k] for k in range(buffer.rank))
    if buffer.data is None or 0 in shape:  # an empty buffer may have no address at all
        return np.empty(shape, dtype)
    return np.asarray(_Memory(buffer.data, shape, dtype, read_only))


def _attributes(attrs):
    """The call's attributes as a dict of Python values (the scalars and strings :func:`call` sends)."""
    found = {}
    for k in range(attrs.size):
        span = attrs.names[k].contents
        name = ctypes.string_at(span.ptr, span.len).decode()
        if attrs.types[k] == _ATTR_STRING:
            text = _ByteSpan.from_address(attrs.attrs[k])
            found[name] = ctypes.string_at(text.ptr, text.len).decode()
        elif attrs.types[k] == _ATTR_SCALAR:
            scalar = _Scalar.from_address(attrs.attrs[k])
            found[name] = _SCALARS[scalar.dtype].from_address(scalar.value).value
        else:
            raise TypeError(f"attribute {name!r} of XLA_FFI_AttrType {attrs.types[k]}, expected a scalar or a string")
    return found


def _execute(frame):
    if frame.struct_size < _CALL_FRAME_SIZE:
        raise RuntimeError(f"an XLA_FFI_CallFrame of {frame.struct_size} bytes, expected at least {_CALL_FRAME_SIZE}")
    options = _attributes(frame.attrs)
    inputs = [_array(frame.args.buffers[k], read_only=True) for k in range(frame.args.size)]
    outputs = [_array(frame.rets.buffers[k], read_only=False) for k in range(frame.rets.size)]
    _host.run(options["op"], inputs, axis=options["axis"], reverse=options["reverse"], method=options["method"],
              out=outputs)


def _error(frame, message):
    """An XLA_FFI_Error made by XLA's own API (None when the frame has no usable API: XLA then sees success)."""
    if not frame.api or frame.api.contents.struct_size < _API_HEAD_SIZE:
        return None
    args = _ErrorCreateArgs(_ERROR_CREATE_ARGS_SIZE, None, message.encode(errors="replace"), _ERROR_INTERNAL)
    return frame.api.contents.error_create(ctypes.byref(args))


def _handle(frame_pointer):
    """XLA_FFI_Handler: the metadata request at registration, then one call per execution."""
    frame = frame_pointer.contents
    if frame.extension_start and frame.extension_start.contents.type == _EXTENSION_METADATA:
        extension = ctypes.cast(frame.extension_start, ctypes.POINTER(_MetadataExtension)).contents
        version = extension.metadata.contents.api_version
        version.major_version, version.minor_version = API_VERSION
        return None
    if frame.stage != _STAGE_EXECUTE:
        return None
    try:
        _execute(frame)
    except BaseException as error:  # noqa: BLE001  (an exception must not cross into XLA: it becomes XLA's error)
        return _error(frame, f"logscan.jax: {type(error).__name__}: {error}")
    return None


# XLA keeps the function pointer for the life of the process: so must this module keep the callback.
_HANDLER = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.POINTER(_CallFrame))(_handle)


def _register():
    """None once the target is registered with XLA, else the reason it is not."""
    try:
        capsule = jax.ffi.pycapsule(ctypes.cast(_HANDLER, ctypes.c_void_p).value)
        jax.ffi.register_ffi_target(TARGET, capsule, platform="cpu")
    except Exception as error:  # noqa: BLE001  (any failure means the callback route, said in UNAVAILABLE_BECAUSE)
        return f"{type(error).__name__}: {error}"
    return None


UNAVAILABLE_BECAUSE = _register()
AVAILABLE = UNAVAILABLE_BECAUSE is None
if not AVAILABLE:
    warnings.warn(f"logscan.jax: the XLA FFI target {TARGET!r} could not be registered ({UNAVAILABLE_BECAUSE}); "
                  f"jitted calls on the CPU go through jax.pure_callback instead, which copies every input and "
                  f"every result once", RuntimeWarning, stacklevel=2)


def call(op, arrays, result_shapes, *, axis, reverse, method):
    """Stage ``op`` of the library on ``arrays`` as an XLA custom call on the CPU; a list of the results.

    Under :func:`jax.vmap` every input gets the batch as a leading dimension
    (``broadcast_all``): ``axis`` counts from the end, so it still names the
    time axis, and the library reads the batch as more outer dimensions.
    """
    function = jax.ffi.ffi_call(TARGET, result_shapes, vmap_method="broadcast_all")
    return function(*arrays, op=op, axis=np.int64(axis), reverse=bool(reverse), method=method)
