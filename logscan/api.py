r"""The front door: NumPy-style scans on n-d arrays of any family.

Each function validates its arguments once (errors name the argument and
say what was expected and what was got), maps the scan axis onto the
canonical ``(outer, T, inner)`` layout without copying wherever the strides
allow, and calls the C-style core :mod:`logscan.capi`.
"""

from __future__ import annotations

import operator

import numpy as np

from logscan import _arrays, _layout, capi, registry

_OPS = {
    # op: (public name, forward names, state name)
    "log_scan": ("logscan.scan", ("log_a", "log_b"), "log_h0"),
    "linear_scan": ("logscan.linear_scan", ("a", "b"), "h0"),
}


def _normalize_axis(caller, axis, ndim):
    try:
        if isinstance(axis, (bool, np.bool_)):  # an int to operator.index, not to NumPy
            raise TypeError
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"{caller}: axis must be an int, got {type(axis).__name__}") from None
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(f"{caller}: axis {axis} is out of bounds for arrays of {ndim} dimensions")
    return axis % ndim


def _check_flag(caller, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{caller}: {name} must be a bool, got {type(value).__name__}")


def _check_str(caller, name, value):
    if not isinstance(value, str):
        raise TypeError(f"{caller}: {name} must be a str, got {type(value).__name__}")


class _Canonical:
    """An n-d array seen as a canonical ``(outer, T, inner)`` buffer (copied only when strides force it)."""

    def __init__(self, array, axis):
        found = _layout.canonical_of(array, axis)
        if found is None:
            array = np.ascontiguousarray(array)
            found = _layout.canonical_of(array, axis)
        self.array = array  # keeps the memory alive while the core runs
        self.shape3, self.strides3 = found
        self.ptr = array.__array_interface__["data"][0]


def _state(caller, name, state, state_shape, axis, dtype):
    """The (pointer, (outer, inner) strides) of an optional initial state, and what keeps it alive."""
    if state is None:
        return (0, (0, 0)), None
    _arrays.check_float(caller, name, state)
    try:
        state = np.broadcast_to(state.astype(dtype, copy=False), state_shape)
    except ValueError:
        raise ValueError(f"{caller}: {name} must have shape {state_shape} (the scanned arrays' shape without "
                         f"the scan axis), got {state.shape}") from None
    # A state is a time step of the sequence: give it a length-1 time axis and reuse the mapping.
    view = _Canonical(np.expand_dims(state, axis), axis)
    return (view.ptr, (view.strides3[0], view.strides3[2])), view


def _prepare_inputs(caller, names, arrays, axis):
    """Validated NumPy inputs broadcast to one shape, the result dtype, and the normalized axis."""
    for name, x in zip(names, arrays, strict=True):
        _arrays.check_float(caller, name, x)
    shapes = [x.shape for x in arrays]
    try:  # equal shapes are the common case, and broadcast_shapes costs microseconds
        shape = shapes[0] if shapes.count(shapes[0]) == len(shapes) else np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"{caller}: {' and '.join(names)} must have the same shape (or broadcast together), "
                         f"got {' and '.join(str(shape) for shape in shapes)}") from None
    if len(shape) == 0:
        raise ValueError(f"{caller}: {names[0]} must have at least one dimension to scan along, got a 0-d array")
    axis = _normalize_axis(caller, axis, len(shape))
    dtype = np.result_type(*arrays)
    arrays = [x.astype(dtype, copy=False) for x in arrays]
    arrays = [x if x.shape == shape else np.broadcast_to(x, shape) for x in arrays]
    return arrays, shape, dtype, axis


def _check_out(caller, out, shape, dtype, name="out"):
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{caller}: {name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"{caller}: {name} must have shape {shape}, got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"{caller}: {name} must have dtype {dtype}, got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{caller}: {name} is read-only")


def _same_view(x, y):
    ix, iy = x.__array_interface__, y.__array_interface__
    return ix["data"][0] == iy["data"][0] and x.shape == y.shape and x.strides == y.strides


def _output(caller, out, shape, dtype, axis, inputs):
    """The buffer the core writes: ``out`` itself when it is canonical and safe, else a fresh array."""
    if out is None:
        return np.empty(shape, dtype)
    _check_out(caller, out, shape, dtype)
    canonical = _layout.canonical_of(out, axis) is not None
    # In place (out is exactly an input) is allowed; any other overlap goes through a temporary.
    overlaps = any(np.may_share_memory(out, x) and not _same_view(out, x) for x in inputs)
    return out if canonical and not overlaps else np.empty(shape, dtype)


def _call(op, caller, buffers, state, dtype, reverse, method, backend):
    """Run one op of the core on canonical buffers (dict name -> _Canonical) and states (name -> (ptr, strides))."""
    outer, T, inner = next(iter(buffers.values())).shape3
    pointers = {name: (view.ptr, view.strides3) for name, view in buffers.items()}
    pointers.update(state)
    capi._run_allocating(caller, op, pointers, outer=outer, T=T, inner=inner, dtype=dtype, reverse=reverse,
                         method=method, backend=backend, device="cpu", allocate=_host_workspace)


def _host_workspace(nbytes):
    workspace = np.empty(nbytes, np.uint8)
    return workspace, workspace.__array_interface__["data"][0]


def _uses_device(device, backend):
    """True when the call goes to a GPU backend: device arrays, or host arrays with a GPU backend named."""
    named_gpu = backend in registry.names() and registry.spec(backend).device != "cpu"
    return device != "cpu" or named_gpu


def _check_no_stream(caller, stream):
    if stream is not None:
        raise ValueError(f"{caller}: stream= applies to GPU arrays and GPU backends only; "
                         f"the arrays given are host arrays (pass stream=None)")


def _check_options(caller, reverse, method, backend):
    _check_flag(caller, "reverse", reverse)
    _check_str(caller, "method", method)
    _check_str(caller, "backend", backend)


def _forward(op, first, second, state, axis, reverse, method, backend, out, *, caller=None, names=None,
             stream=None):
    default_caller, default_names, state_name = _OPS[op]
    caller, names = caller or default_caller, names or default_names
    _check_options(caller, reverse, method, backend)
    named = {names[0]: first, names[1]: second, state_name: state, "out": out}
    for name in names:  # common_device skips None, which only the optional arguments may be
        _arrays.device_of(caller, name, named[name])
    device = _arrays.common_device(caller, named)
    if _uses_device(device, backend):
        from logscan import _device  # noqa: PLC0415  (GPU support loads only when used)
        return _device.forward(op, caller, named, axis, reverse, method, backend, stream=stream)
    _check_no_stream(caller, stream)
    template = first if not isinstance(first, np.ndarray) else None
    inputs = [_arrays.to_numpy(first, caller, names[0]), _arrays.to_numpy(second, caller, names[1])]
    (a, b), shape, dtype, axis = _prepare_inputs(caller, names, inputs, axis)
    state_shape = shape[:axis] + shape[axis + 1:]
    state_host = None if state is None else _arrays.to_numpy(state, caller, state_name)
    state_buffer, _keep = _state(caller, state_name, state_host, state_shape, axis, dtype)
    out_np = None if out is None else _arrays.to_numpy(out, caller, "out")
    # The state is an input too: a backend may read it after writing out (chunk fix-ups).
    state_np = None if _keep is None else _keep.array
    result = _output(caller, out_np, shape, dtype, axis, (a, b) if state_np is None else (a, b, state_np))
    buffers = {default_names[0]: _Canonical(a, axis), default_names[1]: _Canonical(b, axis),
               "out": _Canonical(result, axis)}
    _call(op, caller, buffers, {state_name: state_buffer}, dtype, reverse, method, backend)
    if out is not None:
        if result is not out_np:
            np.copyto(out_np, result)
        return out
    return _arrays.like(result, template)


def _sum_to(caller, grad, shape):
    """Reduce a gradient of the broadcast shape to an input's own shape."""
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(lead)))
    stretched = tuple(k for k, n in enumerate(shape) if n == 1 and grad.shape[k] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad


def _out_entries(caller, out, labels):
    """The arrays of a backward's ``out``, one per gradient in ``labels``; None when ``out`` is None.

    ``out`` is a tuple (or list) with one array per gradient. Without a state a
    trailing None is accepted too, so that the tuple a call returned can be
    passed back as ``out`` of the next one.
    """
    if out is None:
        return None
    expected = f"a tuple of {len(labels)} arrays ({', '.join(labels)})"
    if not isinstance(out, (tuple, list)):
        raise TypeError(f"{caller}: out must be {expected}, got {type(out).__name__}")
    entries = list(out)
    if len(labels) == 2 and len(entries) == 3 and entries[2] is None:
        entries = entries[:2]
    if len(entries) != len(labels):
        raise ValueError(f"{caller}: out must be {expected}, got {len(out)} entries")
    for k, x in enumerate(entries):
        if x is None:
            raise TypeError(f"{caller}: out[{k}] ({labels[k]}) must be an array, got None")
    return entries


def _gradient_labels(op, with_state):
    grad = ("grad_log_a", "grad_log_b", "grad_log_h0") if op == "log_scan" else ("grad_a", "grad_b", "grad_h0")
    return grad if with_state else grad[:2]


def _check_outs_apart(caller, labels, outs, overlap):
    """ValueError when two of a backward's outputs share memory (each gradient needs its own)."""
    for i in range(len(outs)):
        for j in range(i + 1, len(outs)):
            if overlap(outs[i], outs[j]):
                raise ValueError(f"{caller}: out[{i}] ({labels[i]}) and out[{j}] ({labels[j]}) overlap in memory; "
                                 f"each gradient needs its own array")


def _gradient_buffer(out, own_shape, full_shape, dtype, axis, inputs, time_axis=True):
    """The array the core writes one gradient into: ``out`` itself when it can take it directly, else a new one.

    Directly means: no broadcast input to sum over (``own_shape`` is the full
    shape), a layout the core takes without a copy, and no overlap with any
    input. ``time_axis`` is False for the state's gradient (the scan axis is
    absent; the core sees it as a length-1 time axis).
    """
    if out is None or own_shape != full_shape:
        return np.empty(full_shape, dtype)
    view = out if time_axis else np.expand_dims(out, axis)
    canonical = _layout.canonical_of(view, axis) is not None
    overlaps = any(np.may_share_memory(out, x) for x in inputs)
    return out if canonical and not overlaps else np.empty(full_shape, dtype)


def _backward(op, grad, first, second, value, state, axis, reverse, method, backend, out=None, stream=None):
    caller, names, state_name = _OPS[op]
    caller = caller + "_backward"
    grad_name, value_name = ("grad_log_h", "log_h") if op == "log_scan" else ("grad_h", "h")
    _check_options(caller, reverse, method, backend)
    labels = _gradient_labels(op, state is not None)
    entries = _out_entries(caller, out, labels)
    out_names = [] if entries is None else [f"out[{k}]" for k in range(len(entries))]
    named = {grad_name: grad, names[0]: first, names[1]: second, value_name: value, state_name: state}
    for name in (grad_name, *names, value_name):
        _arrays.device_of(caller, name, named[name])
    named.update(zip(out_names, entries or (), strict=True))
    device = _arrays.common_device(caller, named)
    if _uses_device(device, backend):
        from logscan import _device  # noqa: PLC0415
        return _device.backward(op, caller, named, axis, reverse, method, backend, out_names, stream=stream)
    _check_no_stream(caller, stream)
    template = first if not isinstance(first, np.ndarray) else None
    numpy_in = {k: _arrays.to_numpy(v, caller, k) for k, v in named.items() if v is not None}
    (a, b), shape, dtype, axis = _prepare_inputs(caller, names, [numpy_in[names[0]], numpy_in[names[1]]], axis)
    seq = {}
    for name in (grad_name, value_name):
        x = numpy_in[name]
        _arrays.check_float(caller, name, x)
        if x.shape != shape:
            raise ValueError(f"{caller}: {name} must have shape {shape} (that of {names[0]} and {names[1]} "
                             f"broadcast), got {x.shape}")
        seq[name] = x.astype(dtype, copy=False)
    state_shape = shape[:axis] + shape[axis + 1:]
    state_np = numpy_in.get(state_name)
    state_buffer, _keep = _state(caller, state_name, state_np, state_shape, axis, dtype)
    own_shapes = [numpy_in[names[0]].shape, numpy_in[names[1]].shape] + ([state_np.shape] if labels[2:] else [])
    full_shapes = [shape, shape, state_shape]
    outs = [None] * len(labels) if entries is None else [numpy_in[n] for n in out_names]
    for k, x in enumerate(outs):
        if x is not None:
            _check_out(caller, x, own_shapes[k], dtype, name=f"out[{k}] ({labels[k]})")
    if entries is not None:
        _check_outs_apart(caller, labels, outs, np.may_share_memory)
    inputs = [seq[grad_name], a, b, seq[value_name]] + ([] if state_np is None else [state_np])
    kernel = [_gradient_buffer(outs[k], own_shapes[k], full_shapes[k], dtype, axis, inputs, time_axis=k < 2)
              for k in range(len(labels))]
    buffers = {grad_name: _Canonical(seq[grad_name], axis), names[0]: _Canonical(a, axis),
               names[1]: _Canonical(b, axis), value_name: _Canonical(seq[value_name], axis),
               "grad_" + names[0]: _Canonical(kernel[0], axis), "grad_" + names[1]: _Canonical(kernel[1], axis)}
    states = {state_name: state_buffer}
    if state_np is not None:
        states["grad_" + state_name], _keep_grad = _state(caller, "grad_" + state_name, kernel[2], state_shape,
                                                           axis, dtype)
    _call(op + "_backward", caller, buffers, states, dtype, reverse, method, backend)
    grads = [_sum_to(caller, g, own) for g, own in zip(kernel, own_shapes, strict=True)]
    if entries is None:
        grads += [None] * (3 - len(grads))
        return tuple(_arrays.like(g, template) for g in grads)
    for target, result in zip(outs, grads, strict=True):
        if result is not target:
            np.copyto(target, result)
    return tuple(entries) + (None,) * (3 - len(entries))


# ------------------------------------------------------------------ public API
def scan(log_a, log_b, *, axis=-1, log_h0=None, reverse=False, method="auto", backend="auto", out=None,
         stream=None):
    r"""Log-space linear recurrence by a parallel scan.

    .. math::

        \log h_t = \operatorname{logaddexp}(\log a_t + \log h_{t-1},\ \log b_t),
        \qquad \log h_{-1} = \log h_0 \ (\text{or } -\infty \text{ when absent}),

    that is :math:`h_t = a_t h_{t-1} + b_t` for positive :math:`a, b`, computed
    without ever leaving log space, so it cannot overflow or underflow.

    Parameters
    ----------
    log_a, log_b : array_like of float16, float32 or float64
        Logs of the decay and the input, of one shape (or broadcasting
        together, for example a stride-0 ``log_a``). ``-inf`` is exact:
        ``log_a = -inf`` resets the state (segment boundaries),
        ``log_b = -inf`` adds nothing. NaN propagates forward from where it is.
        NumPy arrays, objects exposing ``__array_interface__`` or a CPU
        ``__dlpack__`` (torch/JAX CPU arrays), or GPU arrays when a GPU
        backend is installed. Any strides: views the ``(outer, T, inner)``
        mapping cannot take as they are (some transposes, fields of packed
        records) are copied first. A masked array with masked elements is
        refused (the scan reads every element); pass ``.filled(value)``.
    axis : int, default -1
        The time axis; negative values count from the end.
    log_h0 : array_like, optional
        Log of the initial state, of the scanned shape without ``axis``
        (or broadcasting to it). Absent means :math:`h_{-1} = 0`.
    reverse : bool, default False
        Scan from the end: :math:`h_t = a_t h_{t+1} + b_t`.
    method : str, default "auto"
        ``"sequential"``, ``"hillis_steele"``, ``"blelloch"``, or a hybrid of
        the backend (``"chunked"`` on numba); ``"auto"`` picks by shape.
    backend : str, default "auto"
        ``"numpy"``, ``"numba"`` (and ``"numba_cuda"``, ``"cupy"`` for GPU
        arrays); ``"auto"`` takes the fastest available for the arrays' device.
    out : ndarray, optional
        Where to write the result (shape and dtype of the result). It may be
        ``log_b`` itself for an in-place scan; any other overlap with the
        inputs is handled through a temporary.
    stream : optional
        GPU paths only: the CUDA stream the work is enqueued on — None (the
        stream an input's ``__cuda_array_interface__`` names, else the
        default stream), an int handle, or an object with ``__cuda_stream__``,
        ``.ptr``, ``.cuda_stream`` or ``.handle`` (CuPy, PyTorch, Numba,
        cuda.core streams). A non-None stream with host arrays and a CPU
        backend is a ValueError. NumPy arrays given to a GPU backend are
        copied to the device and back (synchronously).

    Returns
    -------
    log_h : array
        Same shape as the broadcast inputs, dtype ``result_type(log_a, log_b)``
        (float16 is computed in float32 and returned as float16), of the
        inputs' array family.

    Examples
    --------
    >>> import numpy as np
    >>> import logscan
    >>> a = np.array([0.5, 0.5, 0.5]); b = np.array([1.0, 1.0, 1.0])
    >>> np.exp(logscan.scan(np.log(a), np.log(b))).round(6).tolist()
    [1.0, 1.5, 1.75]
    >>> np.exp(logscan.scan(np.log(a), np.log(b), log_h0=np.log(2.0))).round(6).tolist()
    [2.0, 2.0, 2.0]
    """
    return _forward("log_scan", log_a, log_b, log_h0, axis, reverse, method, backend, out, stream=stream)


def scan_backward(grad_log_h, log_a, log_b, log_h, *, axis=-1, log_h0=None, reverse=False, method="auto",
                  backend="auto", out=None, stream=None):
    r"""Gradients of a loss through :func:`scan`.

    With :math:`g_t = \partial L / \partial \log h_t`, the stable form uses only
    weights in :math:`[0, 1]`:

    .. math::

        w_t = e^{\log a_t + \log h_{t-1} - \log h_t},\quad
        v_t = e^{\log b_t - \log h_t},\quad
        u_t = g_t + w_{t+1} u_{t+1},

    and returns :math:`\partial L/\partial \log a_t = u_t w_t`,
    :math:`\partial L/\partial \log b_t = u_t v_t`,
    :math:`\partial L/\partial \log h_0 = u_0 w_0`. Where :math:`\log h_t = -\infty`
    both weights are 0, so ``-inf`` inputs never give NaN.

    Parameters
    ----------
    grad_log_h : array
        Upstream gradient, shape of the scan's output.
    log_a, log_b, log_h0, axis, reverse, method, backend
        Exactly as given to :func:`scan`.
    log_h : array
        The output of :func:`scan` for these inputs.
    out : tuple of arrays, optional
        Where to write the gradients: ``(grad_log_a, grad_log_b)``, plus
        ``grad_log_h0`` when ``log_h0`` is given; each of the shape and
        dtype it would be returned with, in the family of the inputs. A
        trailing None is accepted without ``log_h0``, so the tuple one call
        returns can be the next call's ``out``. Reusing buffers spares a
        training loop two fresh arrays per call: on the CPU, the first
        write to fresh memory waits for the operating system to zero its
        pages, a large part of the backward's time for large arrays (see
        :doc:`performance`). They must not overlap each other; one that
        overlaps an input is written through a temporary.
    stream : optional
        As in :func:`scan`.

    Returns
    -------
    grad_log_a, grad_log_b : array
        Of the shapes of ``log_a`` and ``log_b`` (summed over broadcast dimensions);
        the arrays of ``out`` when given.
    grad_log_h0 : array or None
        None when ``log_h0`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> import logscan
    >>> log_a, log_b = np.log([0.5, 0.5]), np.log([1.0, 1.0])
    >>> log_h = logscan.scan(log_a, log_b)
    >>> ga, gb, gh0 = logscan.scan_backward(np.array([0.0, 1.0]), log_a, log_b, log_h)
    >>> gb.round(4).tolist()  # d log h_1 / d log b_t = b_t * a_1^(t<1) / h_1
    [0.3333, 0.6667]
    """
    return _backward("log_scan", grad_log_h, log_a, log_b, log_h, log_h0, axis, reverse, method, backend,
                     out=out, stream=stream)


def linear_scan(a, b, *, axis=-1, h0=None, reverse=False, method="auto", backend="auto", out=None,
                stream=None):
    r"""Linear recurrence :math:`h_t = a_t h_{t-1} + b_t` by a parallel scan (any signs).

    Parameters
    ----------
    a, b : array_like of float16, float32 or float64
        Same shape (or broadcasting together).
    h0 : array_like, optional
        Initial state, shape of ``a`` without ``axis``; absent means 0.
    axis, reverse, method, backend, out, stream
        As in :func:`scan` (``out`` may be ``b`` itself).

    Returns
    -------
    h : array

    Examples
    --------
    >>> import numpy as np
    >>> import logscan
    >>> logscan.linear_scan(np.array([1.0, -1.0, 2.0]), np.array([1.0, 1.0, 1.0])).tolist()
    [1.0, 0.0, 1.0]
    """
    return _forward("linear_scan", a, b, h0, axis, reverse, method, backend, out, stream=stream)


def linear_scan_backward(grad_h, a, b, h, *, axis=-1, h0=None, reverse=False, method="auto", backend="auto",
                         out=None, stream=None):
    r"""Gradients through :func:`linear_scan`.

    The reverse scan :math:`d_t = g_t + a_{t+1} d_{t+1}` gives
    :math:`\partial L/\partial b_t = d_t`, :math:`\partial L/\partial a_t = d_t h_{t-1}`
    and :math:`\partial L/\partial h_0 = a_0 d_0`.

    Parameters
    ----------
    grad_h : array
        Upstream gradient, shape of the scan's output.
    a, b, h0, axis, reverse, method, backend, stream
        As given to :func:`linear_scan`.
    h : array
        The output of :func:`linear_scan` for these inputs.
    out : tuple of arrays, optional
        ``(grad_a, grad_b)``, plus ``grad_h0`` when ``h0`` is given: as in
        :func:`scan_backward`.

    Returns
    -------
    grad_a, grad_b : array
        Of the shapes of ``a`` and ``b``; the arrays of ``out`` when given.
    grad_h0 : array or None
        None when ``h0`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> import logscan
    >>> a, b = np.array([0.5, 0.5]), np.array([1.0, 1.0])
    >>> h = logscan.linear_scan(a, b)
    >>> ga, gb, _ = logscan.linear_scan_backward(np.array([0.0, 1.0]), a, b, h)
    >>> ga.tolist(), gb.tolist()
    ([0.0, 1.0], [0.5, 1.0])
    """
    return _backward("linear_scan", grad_h, a, b, h, h0, axis, reverse, method, backend, out=out, stream=stream)


def logcumsumexp(x, *, axis=-1, reverse=False, method="auto", backend="auto", out=None, stream=None):
    r"""Cumulative log-sum-exp: :math:`y_t = \log \sum_{s \le t} e^{x_s}` (:math:`s \ge t` when reverse).

    The log-space scan with :math:`\log a = 0` (a stride-0 input, never materialized).

    Examples
    --------
    >>> import numpy as np
    >>> import logscan
    >>> logscan.logcumsumexp(np.log(np.array([1.0, 2.0, 3.0]))).round(6).tolist() == np.log([1, 3, 6]).round(6).tolist()
    True
    """
    caller = "logscan.logcumsumexp"
    _check_options(caller, reverse, method, backend)
    # x and out first: a host/device mix must fail here, before any device code runs
    _arrays.device_of(caller, "x", x)
    if _arrays.common_device(caller, {"x": x, "out": out}) == "cpu":
        x_np = _arrays.to_numpy(x, caller, "x")
        _arrays.check_float(caller, "x", x_np)
        if x_np.ndim == 0:
            raise ValueError(f"{caller}: x must have at least one dimension to scan along, got a 0-d array")
        zero = np.zeros((1,) * x_np.ndim, x_np.dtype)
    else:
        from logscan import _device  # noqa: PLC0415  (GPU support loads only when used)
        zero = _device.zeros_like_scalar(x)
    return _forward("log_scan", zero, x, None, axis, reverse, method, backend, out,
                    caller=caller, names=("log_a", "x"), stream=stream)
