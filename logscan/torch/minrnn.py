r"""minGRU and minLSTM as :class:`torch.nn.Module`\ s: one custom op each, differentiated by the library's backward.

:class:`MinGRU` computes, for ``x`` of shape ``(B, T, d_in)``,

.. math::

    z_t = \sigma(x_t W_z + b_z),\quad \tilde h_t = x_t W_h + b_h,\quad
    h_t = (1 - z_t) \odot h_{t-1} + z_t \odot g(\tilde h_t),

and :class:`MinLSTM`, with :math:`f_t = \sigma(x_t W_f + b_f)` and
:math:`i_t = \sigma(x_t W_i + b_i)`,

.. math::

    h_t = \frac{f_t}{f_t + i_t} \odot h_{t-1} + \frac{i_t}{f_t + i_t} \odot g(\tilde h_t),

where :math:`g(x) = x + 1/2` for :math:`x \ge 0` and :math:`\sigma(x)`
otherwise, so that :math:`h > 0`. The whole sequence is one parallel scan in
log space (:mod:`logscan.nn.mingru`, :mod:`logscan.nn.minlstm` give the
coefficients).

Each layer is one custom op, ``torch.ops.logscan.mingru`` /
``torch.ops.logscan.minlstm``, whose forward is
:func:`logscan.nn.mingru_forward` and whose autograd formula is the op
``logscan::mingru_backward``, that is :func:`logscan.nn.mingru_backward`
(likewise for minLSTM): torch records one node per layer, not one per
elementwise piece. The forward op returns, beside ``h``, the buffers that
the backward needs (the pre-activations, ``log a``, ``log b``, ``log h``,
and minLSTM's logit); the backward overwrites some of them with gradients,
as the library's backward does to keep its peak memory low, and says so in
its schema (``mutates_args``): backpropagating twice through one graph
(``retain_graph=True``) then fails on torch's version counter instead of
returning wrong gradients. Both ops have fake implementations, so
:func:`torch.compile` (``fullgraph=True``) traces forward and backward.

Tensors go to the library with no copy: NumPy views on the CPU, CuPy views on
CUDA (with CuPy working on torch's current stream). Parameters, ``x`` and
``h0`` are float32 or float64, all of one dtype and on one device.

Examples
--------
>>> import torch
>>> from logscan.torch import MinGRU
>>> _ = torch.manual_seed(0)
>>> layer = MinGRU(3, 4, dtype=torch.float64)
>>> x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
>>> h0 = torch.full((2, 4), 0.5, dtype=torch.float64)
>>> h = layer(x, h0)
>>> h.shape
torch.Size([2, 5, 4])
>>> h.sum().backward()
>>> x.grad.shape, layer.weight_gate.grad.shape
(torch.Size([2, 5, 3]), torch.Size([3, 4]))
>>> state = h0
>>> for t in range(5):
...     state = layer.step(x[:, t], state)
>>> torch.allclose(state, h[:, -1])
True
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from logscan.nn import _minrnn, mingru, minlstm
from logscan.nn._xp import to_host
from logscan.torch._tensors import check_same_device, check_tensor, from_library, library_array, library_stream

TRAINING_DTYPES = (torch.float32, torch.float64)


class _Cell:
    """What the ops and modules of one cell share: its gates, library functions and cache buffers."""

    def __init__(self, caller, gates, forward, backward, step, buffers):
        self.caller, self.gates = caller, gates
        self.forward, self.backward, self.step = forward, backward, step
        self.buffers = buffers  # the cache entries the forward op returns after h, in order
        self.param_names = tuple("weight_" + g for g in gates) + tuple("bias_" + g for g in gates)

    def params(self, tensors):
        """The library's parameter dict of ``tensors`` (in :attr:`param_names` order), as library arrays."""
        return {name: library_array(t) for name, t in zip(self.param_names, tensors, strict=True)}


_MINGRU = _Cell("logscan.torch.MinGRU", mingru.GATES, mingru.mingru_forward, mingru.mingru_backward,
                mingru.mingru_step, ("pre", "log_a", "log_b", "log_h"))
_MINLSTM = _Cell("logscan.torch.MinLSTM", minlstm.GATES, minlstm.minlstm_forward, minlstm.minlstm_backward,
                 minlstm.minlstm_step, ("pre", "d", "log_a", "log_b", "log_h"))


def _library_error(cell, error):
    """A library error raised inside an op, re-raised under the module's name instead of the function's."""
    name, separator, message = str(error).partition(": ")
    if not separator or name not in (cell.forward.__name__, cell.step.__name__):
        message = str(error)
    return type(error)(f"{cell.caller}: {message}")


# ------------------------------------------------------------------ the op bodies, shared by both cells
def _forward(cell, x, params, log_h0):
    """``(h, *buffers)``: the library's forward on views of the tensors."""
    # h0's sign is checked here, on the data, so that it is checked under torch.compile too.
    if log_h0 is not None and not bool(torch.isfinite(log_h0).all()):
        raise ValueError(f"{cell.caller}: h0 must be positive and finite (the layer runs on its log), got "
                         f"values <= 0, infinite or NaN")
    with library_stream(x):
        try:
            h, cache = cell.forward(cell.params(params), library_array(x), log_h0=library_array(log_h0))
        except (TypeError, ValueError) as error:
            raise _library_error(cell, error) from None
        return (from_library(h),) + tuple(from_library(cache[name]) for name in cell.buffers)


def _forward_fake(cell, x, params, log_h0):
    B, T, _ = x.shape
    d_hidden = params[0].shape[1]
    h = x.new_empty((B, T, d_hidden))
    buffers = [x.new_empty((B, T, len(cell.gates) * d_hidden) if name == "pre" else (B, T, d_hidden))
               for name in cell.buffers]
    return (h, *buffers)


def _backward(cell, grad_h, x, params, log_h0, h, buffers):
    """``(grad_x, *grad_params, grad_log_h0)``; ``grad_log_h0`` is empty when there is no ``log_h0``.

    The library's backward overwrites cache buffers (``pre`` becomes its
    gradient; on some paths ``log_a`` and minLSTM's ``d`` are scratch): the
    backward ops declare them in ``mutates_args``.
    """
    with library_stream(x):
        cache = {"x": library_array(x), "h": library_array(h), "log_h0": library_array(log_h0)}
        cache.update((name, library_array(b)) for name, b in zip(cell.buffers, buffers, strict=True))
        grads, grad_x, grad_log_h0 = cell.backward(cell.params(params), cache, library_array(grad_h))
        # The weight and bias gradients are slices of one fused gradient; an op's outputs may not share memory.
        grads = [from_library(grads[name].copy()) for name in cell.param_names]
        grad_log_h0 = x.new_empty((0,)) if grad_log_h0 is None else from_library(grad_log_h0)
        return (from_library(grad_x), *grads, grad_log_h0)


def _backward_fake(cell, x, params, log_h0):
    grad_log_h0 = x.new_empty((0,)) if log_h0 is None else torch.empty_like(log_h0)
    return (torch.empty_like(x), *(torch.empty_like(p) for p in params), grad_log_h0)


def _setup_context(ctx, inputs, output):
    x, *params, log_h0 = inputs
    h, *buffers = output
    ctx.mark_non_differentiable(*buffers)
    ctx.set_materialize_grads(False)  # else torch fills a zero gradient for every buffer before each backward
    ctx.save_for_backward(x, *params, log_h0, h, *buffers)
    ctx.has_log_h0 = log_h0 is not None


def _autograd_formula(cell, backward_op):
    n_buffers, n_inputs = len(cell.buffers), 2 + len(cell.param_names)

    def backward(ctx, grad_h, *_grad_buffers):  # the buffers are not differentiable: no gradient comes for them
        if grad_h is None:
            return (None,) * n_inputs
        *inputs, h = ctx.saved_tensors[:-n_buffers]
        x, *params, log_h0 = inputs
        grad_x, *grad_params, grad_log_h0 = backward_op(grad_h, x, *params, log_h0, h,
                                                        *ctx.saved_tensors[-n_buffers:])
        return (grad_x, *grad_params, grad_log_h0 if ctx.has_log_h0 else None)

    return backward


# ------------------------------------------------------------------ minGRU ops
@torch.library.custom_op("logscan::mingru", mutates_args=())
def _mingru(x: Tensor, weight_gate: Tensor, weight_candidate: Tensor, bias_gate: Tensor, bias_candidate: Tensor,
            log_h0: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """minGRU forward: ``(h, pre, log_a, log_b, log_h)``."""
    return _forward(_MINGRU, x, (weight_gate, weight_candidate, bias_gate, bias_candidate), log_h0)


@_mingru.register_fake
def _(x, weight_gate, weight_candidate, bias_gate, bias_candidate, log_h0):
    return _forward_fake(_MINGRU, x, (weight_gate, weight_candidate, bias_gate, bias_candidate), log_h0)


@torch.library.custom_op("logscan::mingru_backward", mutates_args=("pre", "log_a"))
def _mingru_backward(grad_h: Tensor, x: Tensor, weight_gate: Tensor, weight_candidate: Tensor, bias_gate: Tensor,
                     bias_candidate: Tensor, log_h0: Tensor | None, h: Tensor, pre: Tensor, log_a: Tensor,
                     log_b: Tensor, log_h: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """minGRU backward: ``(grad_x, grad_weight_gate, grad_weight_candidate, grad_bias_gate, grad_bias_candidate,
    grad_log_h0)``; overwrites ``pre`` and ``log_a``."""
    params = (weight_gate, weight_candidate, bias_gate, bias_candidate)
    return _backward(_MINGRU, grad_h, x, params, log_h0, h, (pre, log_a, log_b, log_h))


@_mingru_backward.register_fake
def _(grad_h, x, weight_gate, weight_candidate, bias_gate, bias_candidate, log_h0, h, pre, log_a, log_b, log_h):
    return _backward_fake(_MINGRU, x, (weight_gate, weight_candidate, bias_gate, bias_candidate), log_h0)


_mingru.register_autograd(_autograd_formula(_MINGRU, _mingru_backward), setup_context=_setup_context)


# ------------------------------------------------------------------ minLSTM ops
@torch.library.custom_op("logscan::minlstm", mutates_args=())
def _minlstm(x: Tensor, weight_forget: Tensor, weight_input: Tensor, weight_candidate: Tensor, bias_forget: Tensor,
             bias_input: Tensor, bias_candidate: Tensor,
             log_h0: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """minLSTM forward: ``(h, pre, d, log_a, log_b, log_h)``."""
    params = (weight_forget, weight_input, weight_candidate, bias_forget, bias_input, bias_candidate)
    return _forward(_MINLSTM, x, params, log_h0)


@_minlstm.register_fake
def _(x, weight_forget, weight_input, weight_candidate, bias_forget, bias_input, bias_candidate, log_h0):
    params = (weight_forget, weight_input, weight_candidate, bias_forget, bias_input, bias_candidate)
    return _forward_fake(_MINLSTM, x, params, log_h0)


@torch.library.custom_op("logscan::minlstm_backward", mutates_args=("pre", "d", "log_a"))
def _minlstm_backward(grad_h: Tensor, x: Tensor, weight_forget: Tensor, weight_input: Tensor,
                      weight_candidate: Tensor, bias_forget: Tensor, bias_input: Tensor, bias_candidate: Tensor,
                      log_h0: Tensor | None, h: Tensor, pre: Tensor, d: Tensor, log_a: Tensor, log_b: Tensor,
                      log_h: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """minLSTM backward: ``(grad_x, *grad_params, grad_log_h0)``; overwrites ``pre``, ``d`` and ``log_a``."""
    params = (weight_forget, weight_input, weight_candidate, bias_forget, bias_input, bias_candidate)
    return _backward(_MINLSTM, grad_h, x, params, log_h0, h, (pre, d, log_a, log_b, log_h))


@_minlstm_backward.register_fake
def _(grad_h, x, weight_forget, weight_input, weight_candidate, bias_forget, bias_input, bias_candidate, log_h0, h,
      pre, d, log_a, log_b, log_h):
    params = (weight_forget, weight_input, weight_candidate, bias_forget, bias_input, bias_candidate)
    return _backward_fake(_MINLSTM, x, params, log_h0)


_minlstm.register_autograd(_autograd_formula(_MINLSTM, _minlstm_backward), setup_context=_setup_context)


# ------------------------------------------------------------------ the modules
class _MinRNN(torch.nn.Module):
    _cell: _Cell
    _op: object

    def __init__(self, d_in, d_hidden, *, dtype=None, device=None):
        super().__init__()
        caller = self._cell.caller
        for name, size in (("d_in", d_in), ("d_hidden", d_hidden)):
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"{caller}: {name} must be a positive int, got {size!r}")
        dtype = torch.get_default_dtype() if dtype is None else dtype
        if dtype not in TRAINING_DTYPES:
            raise TypeError(f"{caller}: dtype must be torch.float32 or torch.float64, got {dtype}")
        self.d_in, self.d_hidden = d_in, d_hidden
        for gate in self._cell.gates:
            self.register_parameter("weight_" + gate,
                                    torch.nn.Parameter(torch.empty((d_in, d_hidden), dtype=dtype, device=device)))
            self.register_parameter("bias_" + gate,
                                    torch.nn.Parameter(torch.empty((d_hidden,), dtype=dtype, device=device)))
        self.reset_parameters()

    def reset_parameters(self):
        """Uniform in ``±1/sqrt(d_in)``, like :func:`logscan.nn.mingru_init` (from torch's generator)."""
        bound = 1.0 / math.sqrt(self.d_in)
        for gate in self._cell.gates:
            torch.nn.init.uniform_(getattr(self, "weight_" + gate), -bound, bound)
            torch.nn.init.uniform_(getattr(self, "bias_" + gate), -bound, bound)

    def extra_repr(self):
        return f"d_in={self.d_in}, d_hidden={self.d_hidden}, dtype={self.weight_candidate.dtype}"

    def _param_tensors(self):
        return tuple(getattr(self, name) for name in self._cell.param_names)

    def _check(self, name, x, ndim, state_name, state):
        """The checks of forward and step: ``x`` of ``ndim`` dimensions, the state ``(B, d_hidden)``."""
        caller = self._cell.caller
        check_tensor(caller, name, x)
        check_tensor(caller, state_name, state, optional=True)
        layout = "(batch, time, d_in)" if ndim == 3 else "(batch, d_in)"
        if x.ndim != ndim or x.shape[-1] != self.d_in:
            raise ValueError(f"{caller}: {name} must have shape {layout} with d_in = {self.d_in}, "
                             f"got {tuple(x.shape)}")
        dtype = self.weight_candidate.dtype
        if x.dtype != dtype:
            raise TypeError(f"{caller}: {name} must have the parameters' dtype {dtype}, got {x.dtype}")
        if state is not None:
            if tuple(state.shape) != (x.shape[0], self.d_hidden):
                raise ValueError(f"{caller}: {state_name} must have shape (batch, d_hidden) = "
                                 f"{(x.shape[0], self.d_hidden)}, got {tuple(state.shape)}")
            if state.dtype != dtype:
                raise TypeError(f"{caller}: {state_name} must have the parameters' dtype {dtype}, got {state.dtype}")
        check_same_device(caller, {name: x, state_name: state, "the parameters": self.weight_candidate})

    def forward(self, x, h0=None):
        r"""The layer over whole sequences, by one parallel scan.

        Parameters
        ----------
        x : Tensor, shape (B, T, d_in)
            Of the parameters' dtype and device.
        h0 : Tensor, shape (B, d_hidden), optional
            The state before the first step, positive (the scan runs on its
            log; a state the layer produced is positive). Absent means
            :math:`h_{-1} = 0`. Gradients flow to it.

        Returns
        -------
        h : Tensor, shape (B, T, d_hidden)
        """
        self._check("x", x, 3, "h0", h0)
        log_h0 = None if h0 is None else torch.log(h0)  # torch differentiates the log
        return self._op(x, *self._param_tensors(), log_h0)[0]

    @torch.no_grad()
    def step(self, x_t, h_prev=None):
        """One step of the recurrence on ``h`` itself, O(1) memory, for inference.

        Runs the library's step function (:func:`logscan.nn.mingru_step` or
        :func:`logscan.nn.minlstm_step`) under :func:`torch.no_grad`: it records
        no autograd graph (use :meth:`forward` to train).

        Parameters
        ----------
        x_t : Tensor, shape (B, d_in)
        h_prev : Tensor, shape (B, d_hidden), optional
            The previous state (not its log), e.g. the last step of
            :meth:`forward`; absent means 0.

        Returns
        -------
        h_t : Tensor, shape (B, d_hidden)
            Stepping from ``h0`` through ``x[:, t]`` gives ``forward(x, h0)[:, t]``.
        """
        self._check("x_t", x_t, 2, "h_prev", h_prev)
        with library_stream(x_t):
            try:
                h = self._cell.step(self._cell.params(self._param_tensors()), library_array(x_t),
                                    library_array(h_prev))
            except (TypeError, ValueError) as error:
                raise _library_error(self._cell, error) from None
            return from_library(h)

    @classmethod
    def from_params(cls, params, *, device=None):
        """A module holding copies of a :mod:`logscan.nn` parameter dict (NumPy or CuPy arrays).

        Parameters
        ----------
        params : dict
            As made by :func:`logscan.nn.mingru_init` (or ``minlstm_init``);
            sizes and dtype are read from it.
        device : torch.device or str, optional
            Where the parameters go (the CPU by default).
        """
        caller = f"{cls._cell.caller}.from_params"
        d_in, d_hidden, dtype = _minrnn.infer_sizes(caller, params, cls._cell.gates)
        module = cls(d_in, d_hidden, dtype=getattr(torch, np.dtype(dtype).name), device=device)
        with torch.no_grad():
            for name in cls._cell.param_names:
                getattr(module, name).copy_(torch.from_numpy(np.asarray(to_host(params[name]))))
        return module

    def to_params(self):
        """The parameters as a :mod:`logscan.nn` dict of NumPy arrays (copies).

        ``logscan.nn.mingru_forward(module.to_params(), x.numpy())`` computes
        what ``module(x)`` does.
        """
        return {name: getattr(self, name).detach().cpu().numpy().copy() for name in self._cell.param_names}


class MinGRU(_MinRNN):
    r"""A minGRU layer (Feng et al. 2024) as a torch module, trained through the library's hand-written backward.

    .. math::

        z_t = \sigma(x_t W_z + b_z),\quad \tilde h_t = x_t W_h + b_h,\quad
        h_t = (1 - z_t) \odot h_{t-1} + z_t \odot g(\tilde h_t)

    Parameters
    ----------
    d_in, d_hidden : int
    dtype : torch.float32 or torch.float64, optional
        Torch's default dtype when absent.
    device : optional
        Where the parameters live (the CPU or a CUDA device).

    Attributes
    ----------
    weight_gate, weight_candidate : Parameter, shape (d_in, d_hidden)
        :math:`W_z`, :math:`W_h` (inputs multiply from the left: ``x @ W``).
    bias_gate, bias_candidate : Parameter, shape (d_hidden,)
        :math:`b_z`, :math:`b_h`.

    Examples
    --------
    >>> import torch
    >>> from logscan.torch import MinGRU
    >>> layer = MinGRU(8, 16)
    >>> layer(torch.randn(4, 100, 8)).shape
    torch.Size([4, 100, 16])
    """

    _cell = _MINGRU
    _op = _mingru


class MinLSTM(_MinRNN):
    r"""A minLSTM layer (Feng et al. 2024) as a torch module, trained through the library's hand-written backward.

    .. math::

        f_t = \sigma(x_t W_f + b_f),\quad i_t = \sigma(x_t W_i + b_i),\quad \tilde h_t = x_t W_h + b_h,\quad
        h_t = \frac{f_t}{f_t + i_t} \odot h_{t-1} + \frac{i_t}{f_t + i_t} \odot g(\tilde h_t)

    Parameters
    ----------
    d_in, d_hidden : int
    dtype : torch.float32 or torch.float64, optional
        Torch's default dtype when absent.
    device : optional
        Where the parameters live (the CPU or a CUDA device).

    Attributes
    ----------
    weight_forget, weight_input, weight_candidate : Parameter, shape (d_in, d_hidden)
        :math:`W_f`, :math:`W_i`, :math:`W_h`.
    bias_forget, bias_input, bias_candidate : Parameter, shape (d_hidden,)
        :math:`b_f`, :math:`b_i`, :math:`b_h`.

    Examples
    --------
    >>> import torch
    >>> from logscan.torch import MinLSTM
    >>> layer = MinLSTM(8, 16)
    >>> layer(torch.randn(4, 100, 8)).shape
    torch.Size([4, 100, 16])
    """

    _cell = _MINLSTM
    _op = _minlstm
