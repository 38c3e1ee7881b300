"""The C-style core: every scan over raw buffers.

Each operation is a flat function of plain values: data pointers (ints), the
canonical shape ``(outer, T, inner)``, strides *in elements* (any sign, 0 for
a broadcast input), a dtype name, and a caller-supplied output and
workspace. Nothing here allocates memory the caller did not ask for; the
calls are two-phase, as in C libraries:

>>> import numpy as np
>>> from logscan import capi
>>> log_a = np.log(np.full((1, 4, 1), 0.5, np.float32))
>>> log_b = np.zeros((1, 4, 1), np.float32)
>>> out = np.empty_like(log_b)
>>> nbytes = capi.workspace_size("log_scan", outer=1, T=4, inner=1, dtype="float32", backend="numpy")
>>> workspace = np.empty(nbytes, np.uint8)
>>> capi.log_scan(outer=1, T=4, inner=1, dtype="float32",
...               log_a=log_a.ctypes.data, log_a_strides=(4, 1, 1),
...               log_b=log_b.ctypes.data, log_b_strides=(4, 1, 1),
...               out=out.ctypes.data, out_strides=(4, 1, 1),
...               workspace=workspace.ctypes.data, workspace_bytes=nbytes, backend="numpy")
>>> np.exp(out.ravel()).round(4).tolist()  # h = 1, 1.5, 1.75, 1.875
[1.0, 1.5, 1.75, 1.875]

A pointer of 0 stands for an absent optional buffer (``log_h0``, ``h0``,
``grad_log_h0``). ``reverse=True`` scans from the end; it is expressed by
negative time strides, so no buffer is ever flipped. ``stream`` (device
buffers only) is a CUDA stream handle (int; None for the default stream):
the call runs inside the backend's ``on_stream(stream)`` context, so every
kernel and copy of the call is enqueued on it.

The half-precision dtypes, ``float16`` and ``bfloat16``, are computed in
float32 (:data:`COMPUTE_DTYPES`): by kernels that read and write them
themselves where the backend has them (its ``half_methods``: the cupy
backend's sequential, chunked and lookback), else on float32 copies that the
workspace then also holds. NumPy has no bfloat16: ``dtype="bfloat16"`` is
``ml_dtypes.bfloat16`` (the package that jax brings), imported only when
bfloat16 is asked for; host buffers are then staged by NumPy, device buffers
by the backend's arrays (CuPy with bfloat16 support).

The front door (:func:`logscan.scan` and friends) maps n-d arrays onto these
calls; any other framework, or C code through ctypes, can call them directly.
"""

from __future__ import annotations

import contextlib
import functools
import importlib

import numpy as np

from logscan import registry

#: The dtypes the core takes, and the dtype each is computed in.
COMPUTE_DTYPES = {"float16": "float32", "bfloat16": "float32", "float32": "float32", "float64": "float64"}
DTYPES = tuple(COMPUTE_DTYPES)
# The same as NumPy dtypes (looking up a dtype is fast, its .name is not); bfloat16, ml_dtypes', joins when
# ml_dtypes is first loaded.
_COMPUTE = {np.dtype(name): np.dtype(compute) for name, compute in COMPUTE_DTYPES.items() if name != "bfloat16"}
# Per op: (T-indexed input buffers, T-indexed output buffers); the state
# buffers (h0 and its gradient) are 2-D (outer, inner) and handled apart.
_SIGNATURES = {
    "log_scan": (("log_a", "log_b"), ("out",), "log_h0", None),
    "linear_scan": (("a", "b"), ("out",), "h0", None),
    "log_scan_backward": (("grad_log_h", "log_a", "log_b", "log_h"), ("grad_log_a", "grad_log_b"),
                          "log_h0", "grad_log_h0"),
    "linear_scan_backward": (("grad_h", "a", "b", "h"), ("grad_a", "grad_b"), "h0", "grad_h0"),
}
# The argument order of each backend function (see logscan.backends).
_CALL_ORDER = {
    "log_scan": ("log_a", "log_b", "log_h0", "out"),
    "linear_scan": ("a", "b", "h0", "out"),
    "log_scan_backward": ("grad_log_h", "log_a", "log_b", "log_h", "log_h0",
                          "grad_log_a", "grad_log_b", "grad_log_h0"),
    "linear_scan_backward": ("grad_h", "a", "b", "h", "h0", "grad_a", "grad_b", "grad_h0"),
}
_ALIGN = 64
_NO_SCOPE = contextlib.nullcontext()  # reusable: host backends run on no stream


@functools.cache
def _bfloat16():
    """``ml_dtypes.bfloat16`` as a NumPy dtype (entered in the table of compute dtypes), or None without
    ml_dtypes."""
    try:
        bfloat16 = np.dtype(importlib.import_module("ml_dtypes").bfloat16)
    except ImportError:
        return None
    _COMPUTE[bfloat16] = np.dtype(COMPUTE_DTYPES["bfloat16"])
    return bfloat16


def dtype_of(dtype, caller="logscan.capi.dtype_of") -> np.dtype:
    """The NumPy dtype of ``dtype``: a name in :data:`DTYPES` or a dtype (in the machine's byte order).

    ``"bfloat16"`` is ``ml_dtypes.bfloat16``, imported only then; without
    ml_dtypes it is a RuntimeError that says to install it. Anything else is a
    TypeError prefixed with ``caller``.
    """
    try:  # np.dtype(None) is float64 and np.dtype("foo") raises an unprefixed TypeError
        found = None if dtype is None else np.dtype(dtype)
    except TypeError:
        found = None
    if found in _COMPUTE:
        return found
    if (isinstance(dtype, str) and dtype == "bfloat16") or (found is not None and found.name == "bfloat16"):
        bfloat16 = _bfloat16()
        if bfloat16 is None:
            raise RuntimeError(f"{caller}: dtype 'bfloat16' needs the ml_dtypes package (NumPy has no bfloat16), "
                               f"which is not installed: pip install ml_dtypes (jax brings it)")
        if found is None or found == bfloat16:
            return bfloat16
    raise TypeError(f"{caller}: dtype must be one of {DTYPES}, got {dtype!r}")


def compute_dtype(dtype) -> np.dtype:
    """The dtype the kernels compute in (:data:`COMPUTE_DTYPES`): the half-precision types in float32."""
    return _COMPUTE[dtype_of(dtype)]


def _check_common(caller, op, outer, T, inner, dtype, method):
    """Checks shared by every entry point; returns the NumPy dtype of ``dtype``."""
    if op not in _SIGNATURES:
        raise ValueError(f"{caller}: unknown op {op!r}; expected one of {sorted(_SIGNATURES)}")
    for name, value in (("outer", outer), ("T", T), ("inner", inner)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{caller}: {name} must be a non-negative int, got {value!r}")
    dtype = dtype_of(dtype, caller)
    if not isinstance(method, str):
        raise TypeError(f"{caller}: method must be a str, got {type(method).__name__}")
    return dtype


def _resolve(caller, op, outer, T, inner, dtype, method, backend, device):
    """(backend module, concrete method) for this call."""
    _name, module = registry.resolve(backend, device, caller=caller)
    if method == "auto":
        method = module.choose_method(op, _COMPUTE[dtype], outer, T, inner)
    elif method not in module.methods:
        raise ValueError(f"{caller}: unknown method {method!r} for backend {_name!r}; "
                         f"expected 'auto' or one of {list(module.methods)}")
    return module, method


def _aligned(nbytes):
    return -(-nbytes // _ALIGN) * _ALIGN


def _stages(module, method, dtype):
    """Whether a call computes on copies in its compute dtype: a half-precision dtype, and no kernels of
    ``method`` that take it (the backend's ``half_methods``)."""
    return _COMPUTE[dtype] != dtype and method not in getattr(module, "half_methods", ())


def _staging_bytes(op, dtype, outer, T, inner):
    """Bytes of the staging copies of a call in ``dtype`` (every buffer, in the compute dtype)."""
    t_in, t_out, state, grad_state = _SIGNATURES[op]
    n_seq = len(t_in) + len(t_out)
    n_state = 1 + (grad_state is not None)
    itemsize = _COMPUTE[dtype].itemsize
    return n_seq * _aligned(itemsize * outer * T * inner) + n_state * _aligned(itemsize * outer * inner)


def workspace_size(op, *, outer, T, inner, dtype, method="auto", backend="auto", device="cpu") -> int:
    """Bytes of workspace a call of ``op`` needs with these sizes.

    Parameters
    ----------
    op : {"log_scan", "log_scan_backward", "linear_scan", "linear_scan_backward"}
    outer, T, inner : int
        The canonical shape.
    dtype : {"float16", "bfloat16", "float32", "float64"}
    method, backend : str
        As in the call that will use the workspace.
    device : {"cpu", "cuda"}
        Where the buffers live.

    Returns
    -------
    int
        Bytes; pass a buffer at least this large as ``workspace``.
    """
    caller = "logscan.capi.workspace_size"
    dtype = _check_common(caller, op, outer, T, inner, dtype, method)
    module, method = _resolve(caller, op, outer, T, inner, dtype, method, backend, device)
    return _workspace_parts(module, op, dtype, outer, T, inner, method)[1]


def _workspace_parts(module, op, dtype, outer, T, inner, method):
    """(bytes the backend's kernels ask for, bytes of the whole workspace: theirs, aligned, then the staging
    copies of a half-precision call)."""
    kernel_bytes = module.workspace_size(op, _COMPUTE[dtype], outer, T, inner, method)
    staging = _staging_bytes(op, dtype, outer, T, inner) if _stages(module, method, dtype) else 0
    return kernel_bytes, _aligned(kernel_bytes) + staging


class _Carver:
    """Hands out aligned pieces of the caller's workspace as arrays."""

    def __init__(self, caller, module, ptr, nbytes):
        self.caller, self.module, self.ptr, self.nbytes, self.used = caller, module, ptr, nbytes, 0

    def take(self, nbytes):
        if self.used + nbytes > self.nbytes:
            raise ValueError(f"{self.caller}: workspace of {self.nbytes} bytes is too small (needs at least "
                             f"{self.used + nbytes}; ask workspace_size)")
        view = self.module.as_array(self.ptr + self.used, (nbytes,), (1,), np.uint8, True) if nbytes else None
        self.used += _aligned(nbytes)
        return view

    def take_array(self, shape, dtype):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        ptr = self.ptr + self.used
        self.take(nbytes)
        return self.module.as_array(ptr, shape, None, dtype, True)


def _stream_scope(caller, module, device, stream):
    """The backend's ``on_stream`` context for ``stream`` (device backends), checked."""
    if stream is None:
        scope = getattr(module, "on_stream", None)
        return scope(None) if scope is not None else _NO_SCOPE
    if isinstance(stream, bool) or not isinstance(stream, (int, np.integer)) or stream < 0:
        raise TypeError(f"{caller}: stream must be None or a CUDA stream handle (a non-negative int), "
                        f"got {stream!r}")
    if device == "cpu" or getattr(module, "on_stream", None) is None:
        raise ValueError(f"{caller}: stream= applies to device buffers only (device='cuda'), got device={device!r}")
    return module.on_stream(int(stream))


def _run(caller, op, buffers, *, outer, T, inner, dtype, reverse, method, backend, device,
         workspace, workspace_bytes, stream=None):
    """Shared body of the four operations: views, half-precision staging, reverse, dispatch (on ``stream``)."""
    dtype = _check_common(caller, op, outer, T, inner, dtype, method)
    if device != "cpu":
        _check_device_alignment(caller, buffers, dtype, workspace)
    module, method = _resolve(caller, op, outer, T, inner, dtype, method, backend, device)
    kernel_bytes, _ = _workspace_parts(module, op, dtype, outer, T, inner, method)
    with _stream_scope(caller, module, device, stream):
        _run_resolved(caller, op, module, method, buffers, outer=outer, T=T, inner=inner, dtype=dtype,
                      reverse=reverse, workspace=workspace, workspace_bytes=workspace_bytes,
                      kernel_bytes=kernel_bytes)


_DEVICE_WORKSPACE_ALIGN = 16  # pieces are carved at 64-byte offsets and hold 8-byte values and vectors


def _check_device_alignment(caller, buffers, dtype, workspace):
    """Device pointers must be element-aligned (a misaligned load is a CUDA error that ends the context)."""
    itemsize = dtype.itemsize
    for name, (ptr, _strides) in buffers.items():
        if ptr % itemsize:
            raise ValueError(f"{caller}: {name} pointer {ptr:#x} is not a multiple of the {dtype.name} "
                             f"itemsize {itemsize}; device buffers must be element-aligned")
    if workspace % _DEVICE_WORKSPACE_ALIGN:
        raise ValueError(f"{caller}: workspace pointer {workspace:#x} is not {_DEVICE_WORKSPACE_ALIGN}-byte "
                         f"aligned (cudaMalloc and CuPy allocations are)")


def _run_allocating(caller, op, buffers, *, outer, T, inner, dtype, reverse, method, backend, device, allocate,
                    stream=None):
    """The front doors' call: validate, resolve, size the workspace, have ``allocate(nbytes)`` give
    ``(owner, pointer)`` of one, and run on ``stream``, each step once (the public functions' steps, with
    errors under ``caller``; on small arrays this Python is most of a call)."""
    dtype = _check_common(caller, op, outer, T, inner, dtype, method)
    module, method = _resolve(caller, op, outer, T, inner, dtype, method, backend, device)
    kernel_bytes, nbytes = _workspace_parts(module, op, dtype, outer, T, inner, method)
    _owner, workspace = allocate(nbytes)  # the owner keeps the memory alive while the kernels run
    with _stream_scope(caller, module, device, stream):
        _run_resolved(caller, op, module, method, buffers, outer=outer, T=T, inner=inner, dtype=dtype,
                      reverse=reverse, workspace=workspace, workspace_bytes=nbytes, kernel_bytes=kernel_bytes)


def _run_resolved(caller, op, module, method, buffers, *, outer, T, inner, dtype, reverse, workspace,
                  workspace_bytes, kernel_bytes):
    """Views of the buffers, half-precision staging, reverse, and the backend's call; ``kernel_bytes``: what
    the backend's ``workspace_size`` asked for (carved first from the workspace)."""
    t_in, t_out, state, grad_state = _SIGNATURES[op]
    shape3, shape2 = (outer, T, inner), (outer, inner)

    def view(name, shape, writable):
        ptr, strides = buffers[name]
        if not ptr:
            return None
        if len(strides) != len(shape):
            raise ValueError(f"{caller}: {name}_strides must have {len(shape)} entries, got {strides!r}")
        return module.as_array(ptr, shape, strides, dtype, writable)

    views = {name: view(name, shape3, False) for name in t_in}
    views.update({name: view(name, shape3, True) for name in t_out})
    views[state] = view(state, shape2, False)
    if grad_state is not None:
        views[grad_state] = view(grad_state, shape2, True) if views[state] is not None else None
    for name in t_out:
        if views[name] is None:
            raise ValueError(f"{caller}: output buffer {name!r} is a null pointer")
    for name in t_in:  # an empty input may have no storage at all (a null data pointer)
        if views[name] is None and outer * T * inner:
            raise ValueError(f"{caller}: input buffer {name!r} is a null pointer")

    if outer * inner == 0:
        return
    if T == 0:
        if grad_state is not None and views[grad_state] is not None:
            views[grad_state][...] = 0
        return

    carver = _Carver(caller, module, workspace, workspace_bytes)
    kernel_ws = carver.take(kernel_bytes)
    # A half-precision dtype without kernels for it: compute on staging copies carved from the workspace.
    compute = dict(views)
    staged_call = _stages(module, method, dtype)
    if staged_call:
        for name, v in views.items():
            if v is None:
                continue
            staged = carver.take_array(v.shape, _COMPUTE[dtype])
            if name not in t_out and name != grad_state:
                staged[...] = v
            compute[name] = staged
    if reverse:
        for name in t_in + t_out:
            compute[name] = compute[name][:, ::-1, :]

    call_args = [compute[name] for name in _CALL_ORDER[op]]
    getattr(module, op)(*call_args, method, kernel_ws)

    if staged_call:
        for name in t_out + ((grad_state,) if grad_state else ()):
            if views.get(name) is not None:
                staged = compute[name][:, ::-1, :] if (reverse and name in t_out) else compute[name]
                views[name][...] = staged


def log_scan(*, outer, T, inner, dtype, log_a, log_a_strides, log_b, log_b_strides, out, out_strides,
             log_h0=0, log_h0_strides=(0, 0), reverse=False, method="auto", backend="auto", device="cpu",
             workspace=0, workspace_bytes=0, stream=None) -> None:
    r"""Log-space scan over raw buffers.

    Computes, for every ``o < outer``, ``i < inner`` and ``t < T``,

    .. math:: \log h_t = \operatorname{logaddexp}(\log a_t + \log h_{t-1}, \log b_t),
              \qquad \log h_{-1} = \log h_0 \ (\text{or } -\infty)

    where element ``t`` of channel ``(o, i)`` of buffer ``x`` sits at
    ``x + (o*s[0] + t*s[1] + i*s[2]) * itemsize``.

    Parameters
    ----------
    outer, T, inner : int
        Canonical shape.
    dtype : {"float16", "bfloat16", "float32", "float64"}
        Element type of every buffer (a name, or a NumPy dtype such as ``ml_dtypes.bfloat16``).
    log_a, log_b, out : int
        Data pointers; ``out`` may equal ``log_b`` (same strides) for in-place use.
    log_a_strides, log_b_strides, out_strides : tuple of 3 int
        Element strides.
    log_h0 : int, optional
        Pointer to the ``(outer, inner)`` initial state, or 0 for none.
    log_h0_strides : tuple of 2 int
    reverse : bool
        Scan from ``t = T-1`` down to 0.
    method, backend : str
        As in :func:`logscan.scan`.
    device : {"cpu", "cuda"}
        Where the buffers live.
    workspace, workspace_bytes : int
        Scratch buffer of at least :func:`workspace_size` bytes (pointer 0 if that is 0).
    stream : int, optional
        CUDA stream handle the work is enqueued on (device buffers only; None: the default stream).
    """
    buffers = {"log_a": (log_a, log_a_strides), "log_b": (log_b, log_b_strides), "out": (out, out_strides),
               "log_h0": (log_h0, log_h0_strides)}
    _run("logscan.capi.log_scan", "log_scan", buffers, outer=outer, T=T, inner=inner, dtype=dtype,
         reverse=reverse, method=method, backend=backend, device=device,
         workspace=workspace, workspace_bytes=workspace_bytes, stream=stream)


def linear_scan(*, outer, T, inner, dtype, a, a_strides, b, b_strides, out, out_strides,
                h0=0, h0_strides=(0, 0), reverse=False, method="auto", backend="auto", device="cpu",
                workspace=0, workspace_bytes=0, stream=None) -> None:
    r"""Linear-space scan over raw buffers: :math:`h_t = a_t h_{t-1} + b_t`, :math:`h_{-1} = h_0` (or 0).

    Parameters are those of :func:`log_scan` with ``a, b, h0`` in place of
    ``log_a, log_b, log_h0``.
    """
    buffers = {"a": (a, a_strides), "b": (b, b_strides), "out": (out, out_strides), "h0": (h0, h0_strides)}
    _run("logscan.capi.linear_scan", "linear_scan", buffers, outer=outer, T=T, inner=inner, dtype=dtype,
         reverse=reverse, method=method, backend=backend, device=device,
         workspace=workspace, workspace_bytes=workspace_bytes, stream=stream)


def log_scan_backward(*, outer, T, inner, dtype, grad_log_h, grad_log_h_strides, log_a, log_a_strides,
                      log_b, log_b_strides, log_h, log_h_strides, grad_log_a, grad_log_a_strides,
                      grad_log_b, grad_log_b_strides, log_h0=0, log_h0_strides=(0, 0),
                      grad_log_h0=0, grad_log_h0_strides=(0, 0), reverse=False, method="auto",
                      backend="auto", device="cpu", workspace=0, workspace_bytes=0, stream=None) -> None:
    r"""Backward of :func:`log_scan` over raw buffers.

    With :math:`g_t = \partial L/\partial \log h_t` and the weights
    :math:`w_t = e^{\log a_t + \log h_{t-1} - \log h_t}`,
    :math:`v_t = e^{\log b_t - \log h_t}` (both in [0, 1], taken as 0 where
    :math:`\log h_t = -\infty`), it computes :math:`u_t = g_t + w_{t+1} u_{t+1}` and
    writes :math:`\partial L/\partial \log a_t = u_t w_t`,
    :math:`\partial L/\partial \log b_t = u_t v_t` and, when ``log_h0`` is given,
    :math:`\partial L/\partial \log h_0 = u_0 w_0`.
    ``log_h`` is the forward output. Other parameters as in :func:`log_scan`.
    """
    buffers = {"grad_log_h": (grad_log_h, grad_log_h_strides), "log_a": (log_a, log_a_strides),
               "log_b": (log_b, log_b_strides), "log_h": (log_h, log_h_strides),
               "grad_log_a": (grad_log_a, grad_log_a_strides), "grad_log_b": (grad_log_b, grad_log_b_strides),
               "log_h0": (log_h0, log_h0_strides), "grad_log_h0": (grad_log_h0, grad_log_h0_strides)}
    _run("logscan.capi.log_scan_backward", "log_scan_backward", buffers, outer=outer, T=T, inner=inner,
         dtype=dtype, reverse=reverse, method=method, backend=backend, device=device,
         workspace=workspace, workspace_bytes=workspace_bytes, stream=stream)


def linear_scan_backward(*, outer, T, inner, dtype, grad_h, grad_h_strides, a, a_strides, b, b_strides,
                         h, h_strides, grad_a, grad_a_strides, grad_b, grad_b_strides, h0=0,
                         h0_strides=(0, 0), grad_h0=0, grad_h0_strides=(0, 0), reverse=False,
                         method="auto", backend="auto", device="cpu", workspace=0,
                         workspace_bytes=0, stream=None) -> None:
    r"""Backward of :func:`linear_scan` over raw buffers.

    :math:`d_t = g_t + a_{t+1} d_{t+1}`; writes :math:`\partial L/\partial b_t = d_t`,
    :math:`\partial L/\partial a_t = d_t h_{t-1}` and, when ``h0`` is given,
    :math:`\partial L/\partial h_0 = a_0 d_0`. Other parameters as in :func:`log_scan`.
    """
    buffers = {"grad_h": (grad_h, grad_h_strides), "a": (a, a_strides), "b": (b, b_strides),
               "h": (h, h_strides), "grad_a": (grad_a, grad_a_strides), "grad_b": (grad_b, grad_b_strides),
               "h0": (h0, h0_strides), "grad_h0": (grad_h0, grad_h0_strides)}
    _run("logscan.capi.linear_scan_backward", "linear_scan_backward", buffers, outer=outer, T=T,
         inner=inner, dtype=dtype, reverse=reverse, method=method, backend=backend, device=device,
         workspace=workspace, workspace_bytes=workspace_bytes, stream=stream)
