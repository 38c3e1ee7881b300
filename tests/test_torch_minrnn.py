"""logscan.torch.MinGRU / MinLSTM: values and gradients against a per-step torch reference, gradcheck, step mode,
torch.compile, opcheck, the logscan.nn parameter round trip, the single-use graph, and the error paths."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch adapter needs torch (the torch extra)")

from logscan import nn  # noqa: E402
from logscan.torch import MinGRU, MinLSTM  # noqa: E402

CELLS = {"mingru": MinGRU, "minlstm": MinLSTM}
# float64 to the rounding of a few dozen steps; float32 against the float64 reference, a few ulp * T
TOLERANCE = {torch.float64: 1e-10, torch.float32: 2e-5}


# ------------------------------------------------------------------ the reference: one step at a time, in torch ops
def _g(x):
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def reference(cell, params, x, h0=None):
    """``h`` (B, T, d_hidden) by the cell's recurrence on ``h`` itself, a loop over T that torch differentiates."""
    h = x.new_zeros((x.shape[0], params["bias_candidate"].shape[0])) if h0 is None else h0
    states = []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        candidate = _g(x_t @ params["weight_candidate"] + params["bias_candidate"])
        if cell == "mingru":
            z = torch.sigmoid(x_t @ params["weight_gate"] + params["bias_gate"])
            h = (1 - z) * h + z * candidate
        else:
            f = torch.sigmoid(x_t @ params["weight_forget"] + params["bias_forget"])
            i = torch.sigmoid(x_t @ params["weight_input"] + params["bias_input"])
            h = f / (f + i) * h + i / (f + i) * candidate
        states.append(h)
    return torch.stack(states, dim=1)


def _inputs(module, B, T, *, with_h0, seed=1):
    generator = torch.Generator().manual_seed(seed)
    dtype = module.weight_candidate.dtype
    x = torch.randn((B, T, module.d_in), generator=generator, dtype=dtype)
    h0 = torch.rand((B, module.d_hidden), generator=generator, dtype=dtype) + 0.1 if with_h0 else None
    return x, h0


def _module(cell, d_in, d_hidden, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return CELLS[cell](d_in, d_hidden, dtype=dtype)


def _leaves(module, x, h0):
    """Detached copies of x, h0 and every parameter, requiring grad: the inputs of a functional call."""
    named = {"x": x, "h0": h0, **dict(module.named_parameters())}
    return {name: t.detach().clone().requires_grad_() for name, t in named.items() if t is not None}


def _call_module(module, leaves):
    params = {name: t for name, t in leaves.items() if name not in ("x", "h0")}
    return torch.func.functional_call(module, params, (leaves["x"], leaves.get("h0")))


# ------------------------------------------------------------------ values and gradients
@pytest.mark.parametrize("with_h0", [False, True], ids=["no-h0", "h0"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_matches_the_per_step_reference(cell, dtype, with_h0):
    module = _module(cell, 5, 6, dtype)
    x, h0 = _inputs(module, 3, 33, with_h0=with_h0)
    ours = _leaves(module, x, h0)
    theirs = {name: t.detach().double().requires_grad_() for name, t in ours.items()}
    h = _call_module(module, ours)
    expected = reference(cell, {k: v for k, v in theirs.items() if k not in ("x", "h0")}, theirs["x"],
                         theirs.get("h0"))
    tolerance = TOLERANCE[dtype]
    assert h.dtype == dtype and h.shape == (3, 33, 6)
    torch.testing.assert_close(h.double(), expected, rtol=tolerance, atol=tolerance)

    grad_h = torch.randn(h.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    h.backward(grad_h.to(dtype))
    expected.backward(grad_h)
    for name, leaf in ours.items():
        torch.testing.assert_close(leaf.grad.double(), theirs[name].grad, rtol=10 * tolerance, atol=10 * tolerance,
                                   msg=lambda m, name=name: f"d/d{name}: {m}")


class _Rebuilt(torch.autograd.Function):
    """``fn(*leaves)``, with a fresh graph for every backward.

    A layer's graph serves one backward (its buffers become the gradients), and
    gradcheck backpropagates through one graph several times (one row of the
    Jacobian each, and its reentrancy check): here each backward re-runs the
    forward, as activation checkpointing does.
    """

    @staticmethod
    def forward(ctx, fn, *leaves):
        ctx.fn = fn
        ctx.save_for_backward(*leaves)
        return fn(*leaves)

    @staticmethod
    def backward(ctx, grad):
        leaves = [t.detach().requires_grad_() for t in ctx.saved_tensors]
        with torch.enable_grad():
            out = ctx.fn(*leaves)
        return (None, *torch.autograd.grad(out, leaves, grad))


@pytest.mark.parametrize("with_h0", [False, True], ids=["no-h0", "h0"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_gradcheck(cell, with_h0):
    module = _module(cell, 3, 3)
    x, h0 = _inputs(module, 2, 4, with_h0=with_h0)
    leaves = _leaves(module, x, h0)
    names = list(leaves)

    def layer(*tensors):
        return _call_module(module, dict(zip(names, tensors, strict=True)))

    assert torch.autograd.gradcheck(lambda *tensors: _Rebuilt.apply(layer, *tensors), tuple(leaves.values()))


@pytest.mark.parametrize("with_h0", [False, True], ids=["no-h0", "h0"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_step_matches_parallel(cell, with_h0):
    module = _module(cell, 4, 5)
    x, h0 = _inputs(module, 3, 9, with_h0=with_h0)
    h = module(x, h0)
    state = h0
    for t in range(x.shape[1]):
        state = module.step(x[:, t], state)
        torch.testing.assert_close(state, h[:, t].detach(), rtol=1e-12, atol=1e-12)
    assert not state.requires_grad


# ------------------------------------------------------------------ torch.compile and opcheck
# minGRU through inductor (the default backend); minLSTM through aot_eager: the same tracing, fake implementations
# and autograd partition, without inductor's code generation (tens of seconds on two cores).
@pytest.mark.parametrize(("cell", "compile_backend"), [("mingru", "inductor"), ("minlstm", "aot_eager")])
def test_compile_fullgraph_forward_backward(cell, compile_backend):
    module = _module(cell, 3, 4)
    x, h0 = _inputs(module, 2, 7, with_h0=True)

    def loss(x, h0):
        return (module(x, h0) ** 2).sum()

    compiled = torch.compile(loss, fullgraph=True, dynamic=True, backend=compile_backend)
    grads = {}
    for name, fn in (("compiled", compiled), ("eager", loss)):
        leaves = {"x": x.clone().requires_grad_(), "h0": h0.clone().requires_grad_()}
        module.zero_grad()
        value = fn(leaves["x"], leaves["h0"])
        value.backward()
        grads[name] = [value.detach(), leaves["x"].grad, leaves["h0"].grad] + [p.grad for p in module.parameters()]
    for got, expected in zip(grads["compiled"], grads["eager"], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    # the sign of h0 is checked inside the op, on the data, so compiled code checks it too
    with pytest.raises(ValueError, match=r"logscan.torch.\w+: h0 must be positive"):
        compiled(x, torch.zeros_like(h0))


@pytest.mark.parametrize("with_h0", [False, True], ids=["no-h0", "h0"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_opcheck(cell, with_h0):
    module = _module(cell, 3, 4)
    x, h0 = _inputs(module, 2, 5, with_h0=with_h0)
    log_h0 = None if h0 is None else torch.log(h0).requires_grad_()
    params = [getattr(module, name).detach().clone().requires_grad_() for name in module._cell.param_names]
    op = getattr(torch.ops.logscan, cell)
    # Not test_aot_dispatch_dynamic: it traces the op as a function whose outputs include the cache buffers,
    # which the backward op overwrites (declared in its mutates_args), and AOTAutograd cannot split a joint
    # graph whose backward mutates a tensor the forward returns to its caller. Inside the module the buffers
    # never leave the op; test_compile_fullgraph_forward_backward traces that, with dynamic shapes.
    torch.library.opcheck(op, (x.requires_grad_(), *params, log_h0),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


def test_opcheck_aot_dispatch_dynamic_fails_for_the_stated_reason():
    """The one opcheck test left out above fails, and for that reason (if torch lifts it, include it)."""
    module = _module("mingru", 3, 4)
    x, _ = _inputs(module, 2, 5, with_h0=False)
    params = [getattr(module, name).detach().clone().requires_grad_() for name in module._cell.param_names]
    # the partitioner's words for "a tensor the forward returns is mutated later"
    with pytest.raises(Exception, match="test_aot_dispatch_dynamic failed with Node .* was invalid, but is output"):
        torch.library.opcheck(torch.ops.logscan.mingru, (x.requires_grad_(), *params, None),
                              test_utils=("test_aot_dispatch_dynamic",))


# ------------------------------------------------------------------ logscan.nn parameters, the single-use graph
@pytest.mark.parametrize("cell", list(CELLS))
def test_params_round_trip_matches_the_functional_layer(cell):
    init, forward = {"mingru": (nn.mingru_init, nn.mingru_forward),
                     "minlstm": (nn.minlstm_init, nn.minlstm_forward)}[cell]
    params = init(4, 5, rng=np.random.default_rng(0), dtype=np.float64)
    module = CELLS[cell].from_params(params)
    assert (module.d_in, module.d_hidden, module.weight_candidate.dtype) == (4, 5, torch.float64)
    x = np.random.default_rng(1).standard_normal((2, 7, 4))
    h0 = np.random.default_rng(2).uniform(0.1, 1.0, (2, 5))
    expected, _ = forward(params, x, log_h0=np.log(h0))
    np.testing.assert_allclose(module(torch.from_numpy(x), torch.from_numpy(h0)).detach().numpy(), expected,
                               rtol=1e-13, atol=1e-13)
    back = module.to_params()
    assert sorted(back) == sorted(params)
    for name, value in back.items():
        assert isinstance(value, np.ndarray) and value.dtype == np.float64
        np.testing.assert_array_equal(value, params[name])
    back["weight_candidate"] += 1  # copies: the module is untouched
    np.testing.assert_array_equal(module.weight_candidate.detach().numpy(), params["weight_candidate"])


def test_module_init_is_uniform_in_the_bound():
    torch.manual_seed(0)
    module = MinLSTM(16, 300)
    assert [name for name, _ in module.named_parameters()] == [
        "weight_forget", "bias_forget", "weight_input", "bias_input", "weight_candidate", "bias_candidate"]
    for param in module.parameters():
        assert param.dtype == torch.get_default_dtype()
        assert 0.24 < float(param.detach().abs().max()) <= 0.25


@pytest.mark.parametrize("cell", list(CELLS))
def test_second_backward_through_a_retained_graph_fails(cell):
    module = _module(cell, 3, 4)
    x, h0 = _inputs(module, 2, 5, with_h0=True)
    loss = module(x, h0).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


# ------------------------------------------------------------------ errors
def _errors():
    d_in, d_hidden = 3, 4
    x, h0 = torch.zeros((2, 5, d_in), dtype=torch.float64), torch.ones((2, d_hidden), dtype=torch.float64)
    return [
        ("int-x", lambda m: m(x.long()), TypeError, r"x must have a floating dtype .* got torch.int64"),
        ("not-a-tensor", lambda m: m(x.numpy()), TypeError, r"x must be a torch.Tensor, got ndarray"),
        ("x-2d", lambda m: m(x[0]), ValueError, r"x must have shape \(batch, time, d_in\) with d_in = 3, got \(5, 3\)"),
        ("wrong-d_in", lambda m: m(torch.zeros((2, 5, 4), dtype=torch.float64)), ValueError,
         r"x must have shape \(batch, time, d_in\) with d_in = 3, got \(2, 5, 4\)"),
        ("x-dtype", lambda m: m(x.float()), TypeError, r"x must have the parameters' dtype torch.float64, got "
                                                       r"torch.float32"),
        ("h0-shape", lambda m: m(x, h0[:1]), ValueError,
         r"h0 must have shape \(batch, d_hidden\) = \(2, 4\), got \(1, 4\)"),
        ("h0-dtype", lambda m: m(x, h0.float()), TypeError, r"h0 must have the parameters' dtype torch.float64"),
        ("h0-zero", lambda m: m(x, h0 - 1), ValueError, r"h0 must be positive and finite"),
        ("h0-negative", lambda m: m(x, -h0), ValueError, r"h0 must be positive and finite"),
        ("x-nan", lambda m: m(x * float("nan")), ValueError, r"x contains NaN or infinite values"),
        ("x-elsewhere", lambda m: m(x.to("meta")), ValueError,
         r"all tensors must be on one device, got x on meta, the parameters on cpu"),
        ("step-x_t-shape", lambda m: m.step(x), ValueError, r"x_t must have shape \(batch, d_in\) with d_in = 3"),
        ("step-h_prev-shape", lambda m: m.step(x[:, 0], h0[:, :2]), ValueError,
         r"h_prev must have shape \(batch, d_hidden\) = \(2, 4\), got \(2, 2\)"),
    ]


@pytest.mark.parametrize(("case", "call", "error", "match"), _errors(), ids=[e[0] for e in _errors()])
@pytest.mark.parametrize("cell", list(CELLS))
def test_bad_inputs_name_the_argument(cell, case, call, error, match):
    module = _module(cell, 3, 4)
    name = CELLS[cell].__name__
    with pytest.raises(error, match=rf"^logscan.torch.{name}: {match}"):
        call(module)


def test_bad_construction():
    with pytest.raises(TypeError, match=r"^logscan.torch.MinGRU: dtype must be torch.float32 or torch.float64, "
                                        r"got torch.float16"):
        MinGRU(3, 4, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"^logscan.torch.MinLSTM: d_hidden must be a positive int, got 0"):
        MinLSTM(3, 0)
    params = nn.mingru_init(3, 4, dtype=np.float64)
    del params["bias_gate"]
    with pytest.raises(ValueError, match=r"^logscan.torch.MinGRU.from_params: params is missing 'bias_gate'"):
        MinGRU.from_params(params)


def test_a_device_the_library_does_not_compute_on():
    module = MinGRU(3, 4, dtype=torch.float64, device="meta")
    with pytest.raises(ValueError, match=r"^logscan.torch.MinGRU: x is on device meta"):
        module(torch.zeros((2, 5, 3), dtype=torch.float64, device="meta"))
