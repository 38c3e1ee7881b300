r"""Differentiable scans for JAX: ``scan``, ``linear_scan`` and ``logcumsumexp``, under jit, grad and vmap.

Each public function checks its arguments (errors name the argument and say
what was expected and what was got), promotes the inputs to one dtype
(float16 and bfloat16 are computed in float32: the cast is a JAX operation in
front of the op, so JAX casts the gradients back), and calls an op defined
with :func:`jax.custom_vjp` whose backward pass is the library's hand-written
one (:func:`logscan.scan_backward`, :func:`logscan.linear_scan_backward`;
``logcumsumexp`` is the log-space scan with a zero ``log_a`` of shape
``(1,) * ndim``, read by stride 0). The adapter adds no arithmetic of its own:
broadcasting, and the reduction of gradients over broadcast dimensions, are
the library's too, and inputs of fewer dimensions only get leading length-1
dimensions (a reshape, no copy).

How an op runs:

- **Staged (inside jit, grad, vmap; and eager calls on the CPU)**: the op is
  put into the XLA program through :func:`jax.lax.platform_dependent`. On the
  CPU it is a :func:`jax.experimental.buffer_callback`
  (:mod:`logscan.jax._buffers`): the library computes on XLA's own buffers,
  with no copy in or out. On any other
  platform it is a :func:`jax.pure_callback` (:mod:`logscan.jax._callback`):
  the inputs travel to the host, the CPU backend computes, the results travel
  back; a host round trip, stated in the documentation of every function.
- **Eager on GPU arrays** (concrete ``jax.Array`` objects on a GPU, outside
  any transformation): the arrays go to the front door as they are, through
  DLPack, and the GPU backends compute on the device.

Under :func:`jax.vmap` the batch becomes a leading dimension of every input:
the time axis is kept as a negative index, so the library reads the batch as
more outer dimensions and a batched call is one library call (an input that
is not batched is repeated along the batch, a copy).
"""

from __future__ import annotations

import atexit
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from logscan import _arrays, registry
from logscan.jax import _buffers, _callback, _host

_FLOATS = tuple(jnp.dtype(t) for t in (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64))
_COMPUTED_IN_FLOAT32 = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))


class _Options(NamedTuple):
    axis: int  # negative: counts from the end, so that batch dimensions vmap puts in front change nothing
    reverse: bool
    method: str


# ------------------------------------------------------------------ running an op
def _result_shapes(op, arrays):
    """The results' shapes and dtypes: the broadcast shape for a scan, each input's own for its gradient."""
    dtype = arrays[0].dtype
    if not op.endswith("_backward"):
        return (jax.ShapeDtypeStruct(np.broadcast_shapes(arrays[0].shape, arrays[1].shape), dtype),)
    return tuple(jax.ShapeDtypeStruct(x.shape, dtype) for x in (arrays[1], arrays[2], *arrays[4:]))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _staged(op, options, arrays):
    """``op`` in the XLA program: a buffer callback on the CPU, a host callback on other platforms."""
    _STAGED.add(op)
    shapes = _result_shapes(op, arrays)
    via_callback = functools.partial(_callback.call, op, result_shapes=shapes, **options._asdict())
    if not _buffers.AVAILABLE:
        return tuple(via_callback(arrays))
    in_place = functools.partial(_buffers.call, op, result_shapes=shapes, **options._asdict())
    return tuple(jax.lax.platform_dependent(arrays, cpu=in_place, default=via_callback))


_STAGED = set()  # the ops staged so far: once there is one, computations may run Python


@atexit.register
def _finish_running_computations():
    """At exit, wait for the computations still running, while the interpreter is intact.

    A staged op runs Python on an XLA thread (a buffer or host callback);
    were the interpreter finalized under it, the process would abort. Exit
    handlers run in reverse order of registration, so this one runs before
    jax's own, which tear the backends down. A computation whose results
    are all gone already is not waited for.
    """
    if not _STAGED:
        return
    for array in jax.live_arrays():
        try:
            array.block_until_ready()
        except Exception:  # noqa: BLE001  (a deleted or failed array: nothing left to wait for)
            continue


def _eager_on_gpu(arrays):
    """True for concrete arrays (no transformation), each on one CUDA device (DLPack cannot export a sharded one)."""
    return all(isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer) and len(x.devices()) == 1
               and _arrays.is_cuda_dlpack(x) for x in arrays)


def _run(op, options, arrays):
    if _eager_on_gpu(arrays):
        return _host.run(op, arrays, **options._asdict())
    return _staged(op, options, tuple(arrays))


def _with_state(arrays, state):
    return [*arrays] if state is None else [*arrays, state]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _scan_op(op, options, first, second, state):
    return _run(op, options, _with_state((first, second), state))[0]


def _scan_op_forward(op, options, first, second, state):
    result = _run(op, options, _with_state((first, second), state))[0]
    return result, (first, second, state, result)


def _scan_op_backward(op, options, residuals, grad):
    first, second, state, result = residuals
    grads = _run(op + "_backward", options, _with_state((grad, first, second, result), state))
    return grads[0], grads[1], None if state is None else grads[2]


_scan_op.defvjp(_scan_op_forward, _scan_op_backward)


# ------------------------------------------------------------------ checks at the boundary
def _check_array(caller, name, x):
    """TypeError unless ``x`` is a floating array, or a Python scalar (weakly typed, as :func:`jax.numpy.add` takes)."""
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{caller}: {name} must be a floating array, got a bool")
    if isinstance(x, (int, float)):
        return
    if not isinstance(x, (jax.Array, np.ndarray, np.generic)):
        raise TypeError(f"{caller}: {name} must be an array (a jax.Array or a NumPy array) or a Python float, "
                        f"got {type(x).__name__}")
    if x.dtype not in _FLOATS:
        raise TypeError(f"{caller}: {name} must have a floating dtype (float16, bfloat16, float32 or float64), "
                        f"got {x.dtype}")


def _normalize_axis(caller, axis, shape):
    """``axis`` as a negative index into ``shape``."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{caller}: axis must be an int, got {type(axis).__name__}")
    ndim = len(shape)
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(f"{caller}: axis {axis} is out of bounds for inputs of shape {shape}; "
                                      f"expected an int in [{-ndim}, {ndim - 1}]")
    return int(axis) % ndim - ndim


def _check_options(caller, reverse, method):
    if not isinstance(reverse, (bool, np.bool_)):
        raise TypeError(f"{caller}: reverse must be a bool (a Python value: it is static under jit), "
                        f"got {type(reverse).__name__}")
    if not isinstance(method, str):
        raise TypeError(f"{caller}: method must be a str, got {type(method).__name__}")
    if method != "auto":
        name, backend = registry.resolve("auto", "cpu", caller=caller)
        if method not in backend.methods:
            raise ValueError(f"{caller}: unknown method {method!r}; expected 'auto' or one of "
                             f"{list(backend.methods)} (the methods of the {name} backend)")


def _compute_dtype(dtype):
    return jnp.dtype(jnp.float32) if dtype in _COMPUTED_IN_FLOAT32 else dtype


def _as_input(x, dtype, ndim):
    """``x`` in ``dtype`` with leading length-1 dimensions up to ``ndim`` (a cast and a reshape, no copy)."""
    x = jnp.asarray(x, dtype)
    return x.reshape((1,) * (ndim - x.ndim) + x.shape) if x.ndim < ndim else x


def _differentiable(op, caller, names, first, second, state, axis, reverse, method):
    """Checks, promotion to one dtype, the op, and the result in the inputs' dtype."""
    for name, x in zip(names[:2], (first, second), strict=True):
        _check_array(caller, name, x)
    try:
        shape = np.broadcast_shapes(np.shape(first), np.shape(second))
    except ValueError:
        raise ValueError(f"{caller}: {names[0]} and {names[1]} must broadcast together (as in jax.numpy.add), "
                         f"got shapes {np.shape(first)} and {np.shape(second)}") from None
    if not shape:
        raise ValueError(f"{caller}: {names[0]} and {names[1]} must have at least one dimension to scan along, "
                         f"got 0-d inputs")
    axis = _normalize_axis(caller, axis, shape)
    _check_options(caller, reverse, method)
    dtype = jnp.result_type(first, second)
    compute = _compute_dtype(dtype)
    if state is not None:
        _check_array(caller, names[2], state)
        state_shape = shape[:len(shape) + axis] + shape[len(shape) + axis + 1:]
        try:
            fits = np.broadcast_shapes(np.shape(state), state_shape) == state_shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"{caller}: {names[2]} must have shape {state_shape} (the inputs' broadcast shape "
                             f"{shape} without axis {axis}) or broadcast to it, got {np.shape(state)}")
        state = _as_input(state, compute, len(state_shape))
    options = _Options(axis, bool(reverse), method)
    result = _scan_op(op, options, _as_input(first, compute, len(shape)), _as_input(second, compute, len(shape)),
                      state)
    return result if result.dtype == dtype else result.astype(dtype)


# ------------------------------------------------------------------ the public functions
def scan(log_a, log_b, *, axis=-1, log_h0=None, reverse=False, method="auto"):
    r"""Log-space linear recurrence along ``axis``, differentiable, under jit, grad and vmap.

    .. math::

        \log h_t = \operatorname{logaddexp}(\log a_t + \log h_{t-1},\ \log b_t),
        \qquad \log h_{-1} = \log h_0 \ (\text{or } -\infty \text{ when absent}),

    that is :math:`h_t = a_t h_{t-1} + b_t` for positive :math:`a, b`, never
    leaving log space. The gradients are those of :func:`logscan.scan_backward`,
    whose weights lie in :math:`[0, 1]`: ``-inf`` inputs (``log_a = -inf``
    resets the state, ``log_b = -inf`` adds nothing) give finite gradients.

    Parameters
    ----------
    log_a, log_b : jax.Array
        Floating arrays (float16, bfloat16, float32 or float64; NumPy arrays
        and Python floats are taken too) broadcasting together like
        :func:`jax.numpy.add`. float16 and bfloat16 are computed in float32.
    axis : int, default -1
        The time axis of the broadcast shape; negative values count from the end.
    log_h0 : jax.Array, optional
        Log of the initial state: the broadcast shape without ``axis`` (or
        broadcasting to it). Absent means :math:`h_{-1} = 0`. Differentiable.
    reverse : bool, default False
        Scan from the end: :math:`h_t = a_t h_{t+1} + b_t`.
    method : str, default "auto"
        A method of the CPU backend (:func:`logscan.scan`); ``"auto"`` picks by shape.

    Returns
    -------
    log_h : jax.Array
        The broadcast shape, in ``jax.numpy.result_type(log_a, log_b)``.

    Notes
    -----
    Inside :func:`jax.jit` on the CPU the op is an XLA custom call that runs
    the library on XLA's buffers, with no copy. Jitted on a GPU it is a host
    callback: the inputs are copied to the host, the CPU backend computes,
    and the result is copied back (so is the backward pass). Eager calls on
    GPU arrays compute on the GPU, without a host round trip. See
    :doc:`/jax`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import logscan.jax
    >>> log_a, log_b = jnp.log(jnp.array([0.5, 0.5, 0.5])), jnp.zeros(3)
    >>> jnp.exp(logscan.jax.scan(log_a, log_b)).round(4).tolist()
    [1.0, 1.5, 1.75]
    >>> grad = jax.grad(lambda log_b: logscan.jax.scan(log_a, log_b)[-1])(log_b)
    >>> [round(g, 4) for g in grad.tolist()]  # the share of h_2 that each b_t contributes
    [0.1429, 0.2857, 0.5714]
    """
    return _differentiable("log_scan", "logscan.jax.scan", ("log_a", "log_b", "log_h0"), log_a, log_b, log_h0, axis,
                           reverse, method)


def linear_scan(a, b, *, axis=-1, h0=None, reverse=False, method="auto"):
    r"""Linear recurrence :math:`h_t = a_t h_{t-1} + b_t` along ``axis`` (any signs), differentiable.

    The gradients are those of :func:`logscan.linear_scan_backward`: the
    reverse scan :math:`d_t = g_t + a_{t+1} d_{t+1}` gives
    :math:`\partial L/\partial b_t = d_t`, :math:`\partial L/\partial a_t = d_t h_{t-1}`
    and :math:`\partial L/\partial h_0 = a_0 d_0`.

    Parameters
    ----------
    a, b : jax.Array
        Floating arrays broadcasting together like :func:`jax.numpy.add`.
        float16 and bfloat16 are computed in float32.
    axis : int, default -1
        The time axis of the broadcast shape.
    h0 : jax.Array, optional
        Initial state: the broadcast shape without ``axis`` (or broadcasting
        to it). Absent means 0.
    reverse : bool, default False
        Scan from the end: :math:`h_t = a_t h_{t+1} + b_t`.
    method : str, default "auto"
        As in :func:`scan`.

    Returns
    -------
    h : jax.Array
        The broadcast shape, in ``jax.numpy.result_type(a, b)``.

    Notes
    -----
    Runs as :func:`scan` does: an XLA custom call on XLA's buffers when jitted
    on the CPU, a host round trip when jitted on a GPU, on the GPU when called
    eagerly on GPU arrays.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import logscan.jax
    >>> logscan.jax.linear_scan(jnp.array([1.0, -1.0, 2.0]), jnp.ones(3)).tolist()
    [1.0, 0.0, 1.0]
    >>> logscan.jax.linear_scan(jnp.array([0.5, 0.5]), jnp.ones(2), h0=jnp.array(2.0)).tolist()
    [2.0, 2.0]
    """
    return _differentiable("linear_scan", "logscan.jax.linear_scan", ("a", "b", "h0"), a, b, h0, axis, reverse,
                           method)


def logcumsumexp(x, *, axis=-1, reverse=False):
    r"""Cumulative log-sum-exp along ``axis``: :math:`y_t = \log \sum_{s \le t} e^{x_s}` (:math:`s \ge t` when reverse).

    The log-space scan with :math:`\log a = 0`, differentiable:
    :math:`\partial y_t / \partial x_s = e^{x_s - y_t}` for :math:`s \le t`,
    through :func:`logscan.scan_backward`. ``-inf`` entries add nothing and
    have zero gradient.

    Parameters
    ----------
    x : jax.Array
        A floating array of at least one dimension. float16 and bfloat16 are
        computed in float32.
    axis : int, default -1
        The axis to accumulate along.
    reverse : bool, default False
        Accumulate from the end.

    Returns
    -------
    y : jax.Array
        Shape and dtype of ``x``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import logscan.jax
    >>> jnp.exp(logscan.jax.logcumsumexp(jnp.log(jnp.array([1.0, 2.0, 3.0])))).round(4).tolist()
    [1.0, 3.0, 6.0]
    """
    caller = "logscan.jax.logcumsumexp"
    _check_array(caller, "x", x)
    shape = np.shape(x)
    if not shape:
        raise ValueError(f"{caller}: x must have at least one dimension to scan along, got a 0-d input")
    axis = _normalize_axis(caller, axis, shape)
    _check_options(caller, reverse, "auto")
    dtype = jnp.result_type(x)
    compute = _compute_dtype(dtype)
    zero = jnp.zeros((1,) * len(shape), compute)  # log a = 0 along every axis, by stride 0
    result = _scan_op("log_scan", _Options(axis, bool(reverse), "auto"), zero, jnp.asarray(x, compute), None)
    return result if result.dtype == dtype else result.astype(dtype)
