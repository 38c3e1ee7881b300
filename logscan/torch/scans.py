r"""Differentiable scans for PyTorch: ``scan``, ``linear_scan`` and ``logcumsumexp`` as torch custom ops.

Each public function checks its tensors (naming the argument), promotes them to
one dtype, and calls an op registered with :func:`torch.library.custom_op`:

=========================  ==========================================  ==================================
op                         implementation                              backward (registered autograd)
=========================  ==========================================  ==================================
``logscan::scan``          :func:`logscan.scan`                        ``logscan::scan_backward``
``logscan::linear_scan``   :func:`logscan.linear_scan`                 ``logscan::linear_scan_backward``
``logscan::logcumsumexp``  :func:`logscan.logcumsumexp`                ``logscan::logcumsumexp_backward``
=========================  ==========================================  ==================================

The backward ops are the library's hand-written backward passes
(:func:`logscan.scan_backward`, :func:`logscan.linear_scan_backward`), so the
adapter adds no arithmetic of its own. Every op has a fake implementation
(shapes and dtypes only), which is what lets :func:`torch.compile` trace
through them with ``fullgraph=True``.

Broadcasting and the reduction of gradients over broadcast dimensions are the
library's too: the ops take the tensors as given (an expanded tensor is read
through its zero strides, not copied) and return gradients of each input's own
shape. CPU tensors reach the CPU backends as NumPy views; CUDA tensors reach
the GPU backends as they are, on torch's current stream, with outputs and
workspace allocated by :func:`torch.empty` (torch's caching allocator).
float16 is taken by the library directly (computed in float32, returned in
float16); so is bfloat16 on CUDA when the cupy backend and ml_dtypes are
installed (its kernels read and write bfloat16). Elsewhere bfloat16 tensors are
cast to float32 by torch in front of the op and the result cast back, so
autograd casts the gradients back too.
"""


import torch

import logscan
from logscan.torch import _tensors

Tensor = torch.Tensor


# ------------------------------------------------------------------ the ops
def _run_forward(function, first, second, state, dim, reverse, method, state_name):
    result = function(_tensors.front_door(first), _tensors.front_door(second), axis=dim, reverse=reverse,
                      method=method, stream=_tensors.stream_of(first), **{state_name: _tensors.front_door(state)})
    return _tensors.from_front_door(result)


def _run_backward(function, grad, first, second, value, state, dim, reverse, method, state_name):
    grads = function(*(_tensors.front_door(x) for x in (grad, first, second, value)), axis=dim, reverse=reverse,
                     method=method, stream=_tensors.stream_of(first), **{state_name: _tensors.front_door(state)})
    grad_first, grad_second, grad_state = (_tensors.from_front_door(g) for g in grads)
    # A custom op returns tensors only: no state, no gradient, an empty tensor in its place.
    return grad_first, grad_second, first.new_empty(0) if grad_state is None else grad_state


def _fake_forward(first, second):
    return first.new_empty(torch.broadcast_shapes(first.shape, second.shape))


def _fake_backward(first, second, state):
    return (first.new_empty(first.shape), second.new_empty(second.shape),
            first.new_empty(0) if state is None else state.new_empty(state.shape))


def _save(ctx, inputs, output):
    first, second, state, dim, reverse, method = inputs
    ctx.save_for_backward(first, second, state, output)
    ctx.options = (dim, reverse, method)


# log space
@torch.library.custom_op("logscan::scan", mutates_args=())
def _scan(log_a: Tensor, log_b: Tensor, log_h0: Tensor | None, dim: int, reverse: bool, method: str) -> Tensor:
    return _run_forward(logscan.scan, log_a, log_b, log_h0, dim, reverse, method, "log_h0")


@torch.library.custom_op("logscan::scan_backward", mutates_args=())
def _scan_backward(grad_log_h: Tensor, log_a: Tensor, log_b: Tensor, log_h: Tensor, log_h0: Tensor | None,
                   dim: int, reverse: bool, method: str) -> tuple[Tensor, Tensor, Tensor]:
    return _run_backward(logscan.scan_backward, grad_log_h, log_a, log_b, log_h, log_h0, dim, reverse, method,
                         "log_h0")


@_scan.register_fake
def _(log_a, log_b, log_h0, dim, reverse, method):
    return _fake_forward(log_a, log_b)


@_scan_backward.register_fake
def _(grad_log_h, log_a, log_b, log_h, log_h0, dim, reverse, method):
    return _fake_backward(log_a, log_b, log_h0)


def _scan_autograd(ctx, grad_log_h):
    log_a, log_b, log_h0, log_h = ctx.saved_tensors
    grad_log_a, grad_log_b, grad_log_h0 = _scan_backward(grad_log_h, log_a, log_b, log_h, log_h0, *ctx.options)
    return grad_log_a, grad_log_b, None if log_h0 is None else grad_log_h0, None, None, None


_scan.register_autograd(_scan_autograd, setup_context=_save)


# linear space
@torch.library.custom_op("logscan::linear_scan", mutates_args=())
def _linear_scan(a: Tensor, b: Tensor, h0: Tensor | None, dim: int, reverse: bool, method: str) -> Tensor:
    return _run_forward(logscan.linear_scan, a, b, h0, dim, reverse, method, "h0")


@torch.library.custom_op("logscan::linear_scan_backward", mutates_args=())
def _linear_scan_backward(grad_h: Tensor, a: Tensor, b: Tensor, h: Tensor, h0: Tensor | None, dim: int,
                          reverse: bool, method: str) -> tuple[Tensor, Tensor, Tensor]:
    return _run_backward(logscan.linear_scan_backward, grad_h, a, b, h, h0, dim, reverse, method, "h0")


@_linear_scan.register_fake
def _(a, b, h0, dim, reverse, method):
    return _fake_forward(a, b)


@_linear_scan_backward.register_fake
def _(grad_h, a, b, h, h0, dim, reverse, method):
    return _fake_backward(a, b, h0)


def _linear_scan_autograd(ctx, grad_h):
    a, b, h0, h = ctx.saved_tensors
    grad_a, grad_b, grad_h0 = _linear_scan_backward(grad_h, a, b, h, h0, *ctx.options)
    return grad_a, grad_b, None if h0 is None else grad_h0, None, None, None


_linear_scan.register_autograd(_linear_scan_autograd, setup_context=_save)


# logcumsumexp: the log-space scan with log a = 0, a stride-0 zero that is never materialized
def _zero(x):
    """A zero of ``x``'s dimensions, broadcasting along every axis, in the family the front door takes."""
    zero = torch.zeros((1,) * x.dim(), dtype=x.dtype, device=x.device)
    return _tensors.front_door(zero)


@torch.library.custom_op("logscan::logcumsumexp", mutates_args=())
def _logcumsumexp(x: Tensor, dim: int, reverse: bool) -> Tensor:
    result = logscan.logcumsumexp(_tensors.front_door(x), axis=dim, reverse=reverse, stream=_tensors.stream_of(x))
    return _tensors.from_front_door(result)


@torch.library.custom_op("logscan::logcumsumexp_backward", mutates_args=())
def _logcumsumexp_backward(grad_y: Tensor, x: Tensor, y: Tensor, dim: int, reverse: bool) -> Tensor:
    grads = logscan.scan_backward(_tensors.front_door(grad_y), _zero(x), _tensors.front_door(x),
                                  _tensors.front_door(y), axis=dim, reverse=reverse, stream=_tensors.stream_of(x))
    return _tensors.from_front_door(grads[1])


@_logcumsumexp.register_fake
def _(x, dim, reverse):
    return x.new_empty(x.shape)


@_logcumsumexp_backward.register_fake
def _(grad_y, x, y, dim, reverse):
    return x.new_empty(x.shape)


def _logcumsumexp_save(ctx, inputs, output):
    x, dim, reverse = inputs
    ctx.save_for_backward(x, output)
    ctx.options = (dim, reverse)


def _logcumsumexp_autograd(ctx, grad_y):
    x, y = ctx.saved_tensors
    return _logcumsumexp_backward(grad_y, x, y, *ctx.options), None, None


_logcumsumexp.register_autograd(_logcumsumexp_autograd, setup_context=_logcumsumexp_save)


# ------------------------------------------------------------------ the public functions
def _check_options(caller, reverse, method):
    if not isinstance(reverse, bool):
        raise TypeError(f"{caller}: reverse must be a bool, got {type(reverse).__name__}")
    if not isinstance(method, str):
        raise TypeError(f"{caller}: method must be a str, got {type(method).__name__}")


def _prepare(caller, names, first, second, state, dim):
    """The tensors cast to the dtype the library computes in, the normalized dim, and the result dtype."""
    named = dict(zip(names, (first, second, state), strict=True))
    for name, x in named.items():
        _tensors.check_tensor(caller, name, x, optional=name == names[2])
    _tensors.check_same_device(caller, named)
    try:  # equal shapes are the common case, and broadcast_shapes costs microseconds
        shape = first.shape if first.shape == second.shape else torch.broadcast_shapes(first.shape, second.shape)
    except RuntimeError:
        raise ValueError(f"{caller}: {names[0]} and {names[1]} must broadcast together, got shapes "
                         f"{tuple(first.shape)} and {tuple(second.shape)}") from None
    dim = _tensors.normalize_dim(caller, dim, len(shape))
    dtype = torch.promote_types(first.dtype, second.dtype)
    compute = _tensors.compute_dtype(dtype, first.device)
    if state is not None:
        state_shape = shape[:dim] + shape[dim + 1:]
        try:
            fits = torch.broadcast_shapes(state.shape, state_shape) == state_shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(f"{caller}: {names[2]} must have shape {tuple(state_shape)} (the inputs' broadcast "
                             f"shape without dim {dim}) or broadcast to it, got {tuple(state.shape)}")
        state = state.to(compute)
    return first.to(compute), second.to(compute), state, dim, dtype


def _in_dtype(result, dtype):
    return result if result.dtype == dtype else result.to(dtype)


def scan(log_a, log_b, *, dim=-1, log_h0=None, reverse=False, method="auto"):
    r"""Log-space linear recurrence along ``dim``, differentiable.

    .. math::

        \log h_t = \operatorname{logaddexp}(\log a_t + \log h_{t-1},\ \log b_t),
        \qquad \log h_{-1} = \log h_0 \ (\text{or } -\infty \text{ when absent}),

    that is :math:`h_t = a_t h_{t-1} + b_t` for positive :math:`a, b`, never
    leaving log space. The gradients are those of :func:`logscan.scan_backward`,
    whose weights lie in :math:`[0, 1]`: ``-inf`` inputs (``log_a = -inf``
    resets the state, ``log_b = -inf`` adds nothing) give finite gradients.

    Parameters
    ----------
    log_a, log_b : torch.Tensor
        Floating tensors on one device, broadcasting together like
        :func:`torch.add`. float16 and bfloat16 are computed in float32.
    dim : int, default -1
        The time dimension.
    log_h0 : torch.Tensor, optional
        Log of the initial state: the broadcast shape without ``dim`` (or
        broadcasting to it). Absent means :math:`h_{-1} = 0`.
    reverse : bool, default False
        Scan from the end: :math:`h_t = a_t h_{t+1} + b_t`.
    method : str, default "auto"
        As in :func:`logscan.scan`.

    Returns
    -------
    log_h : torch.Tensor
        The broadcast shape, in the promoted dtype of ``log_a`` and ``log_b``,
        on their device.

    Examples
    --------
    >>> import torch
    >>> import logscan.torch
    >>> log_a = torch.log(torch.full((3,), 0.5, dtype=torch.float64)).requires_grad_()
    >>> log_b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    >>> log_h = logscan.torch.scan(log_a, log_b)
    >>> log_h.exp().tolist()
    [1.0, 1.5, 1.75]
    >>> log_h[-1].backward()
    >>> [round(g, 4) for g in log_b.grad.tolist()]  # d log h_2 / d log b_t = b_t a^(2-t) / h_2
    [0.1429, 0.2857, 0.5714]
    """
    caller = "logscan.torch.scan"
    _check_options(caller, reverse, method)
    log_a, log_b, log_h0, dim, dtype = _prepare(caller, ("log_a", "log_b", "log_h0"), log_a, log_b, log_h0, dim)
    return _in_dtype(_scan(log_a, log_b, log_h0, dim, reverse, method), dtype)


def linear_scan(a, b, *, dim=-1, h0=None, reverse=False, method="auto"):
    r"""Linear recurrence :math:`h_t = a_t h_{t-1} + b_t` along ``dim`` (any signs), differentiable.

    The gradients are those of :func:`logscan.linear_scan_backward`: the reverse
    scan :math:`d_t = g_t + a_{t+1} d_{t+1}` gives :math:`\partial L/\partial b_t = d_t`,
    :math:`\partial L/\partial a_t = d_t h_{t-1}`, :math:`\partial L/\partial h_0 = a_0 d_0`.

    Parameters
    ----------
    a, b : torch.Tensor
        Floating tensors on one device, broadcasting together.
    h0 : torch.Tensor, optional
        Initial state, the broadcast shape without ``dim``; absent means 0.
    dim, reverse, method
        As in :func:`scan`.

    Returns
    -------
    h : torch.Tensor

    Examples
    --------
    >>> import torch
    >>> import logscan.torch
    >>> logscan.torch.linear_scan(torch.tensor([1.0, -1.0, 2.0]), torch.ones(3)).tolist()
    [1.0, 0.0, 1.0]
    """
    caller = "logscan.torch.linear_scan"
    _check_options(caller, reverse, method)
    a, b, h0, dim, dtype = _prepare(caller, ("a", "b", "h0"), a, b, h0, dim)
    return _in_dtype(_linear_scan(a, b, h0, dim, reverse, method), dtype)


def logcumsumexp(x, *, dim=-1, reverse=False):
    r"""Cumulative log-sum-exp along ``dim``: :math:`y_t = \log \sum_{s \le t} e^{x_s}` (:math:`s \ge t` when reverse).

    The log-space scan with :math:`\log a = 0`, differentiable; unlike a
    max-shifted ``log(cumsum(exp(x)))`` it is exact to rounding for any range
    of ``x``, and ``-inf`` entries give zero, not NaN, gradients.

    Examples
    --------
    >>> import torch
    >>> import logscan.torch
    >>> x = torch.log(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    >>> logscan.torch.logcumsumexp(x).exp().round(decimals=12).tolist()
    [1.0, 3.0, 6.0]
    """
    caller = "logscan.torch.logcumsumexp"
    _check_options(caller, reverse, "auto")
    _tensors.check_tensor(caller, "x", x)
    _tensors.check_same_device(caller, {"x": x})
    dim = _tensors.normalize_dim(caller, dim, x.dim())
    compute = _tensors.compute_dtype(x.dtype, x.device)
    return _in_dtype(_logcumsumexp(x.to(compute), dim, reverse), x.dtype)
