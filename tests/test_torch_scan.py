"""logscan.torch's differentiable scans against an independent float64 loop autodiffed by torch.

The reference here is a plain per-step loop of torch operations (``logaddexp``
in log space, ``a * h + b`` in linear space) over the time dimension; torch's
own autograd differentiates it. The ops under test go through the library's
kernels and hand-written backward passes, registered as torch custom ops.
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="logscan.torch needs PyTorch (the torch extra)")
import logscan  # noqa: E402
import logscan.torch as lt  # noqa: E402

F64 = torch.float64


# ------------------------------------------------------------------ the reference
def reference(op, first, second, state, dim, reverse):
    """h along ``dim`` by a loop of torch operations (differentiable by torch)."""
    shape = torch.broadcast_shapes(first.shape, second.shape)
    first, second = (x.expand(shape).movedim(dim, 0) for x in (first, second))
    log_space = op is not lt.linear_scan
    if state is None:
        state = torch.full(first.shape[1:], -math.inf if log_space else 0.0, dtype=first.dtype)
    h, steps = state.expand(first.shape[1:]), []
    for t in (reversed(range(first.shape[0])) if reverse else range(first.shape[0])):
        h = torch.logaddexp(first[t] + h, second[t]) if log_space else first[t] * h + second[t]
        steps.append(h)
    if reverse:
        steps.reverse()
    return torch.stack(steps).movedim(0, dim)


def call(op, first, second, state, dim, reverse):
    if op is lt.logcumsumexp:
        return op(second, dim=dim, reverse=reverse)
    return op(first, second, dim=dim, reverse=reverse, **{("log_h0" if op is lt.scan else "h0"): state})


def inputs(op, shape, dim, *, with_state, first_shape=None, seed=0):
    generator = torch.Generator().manual_seed(seed)
    first_shape = shape if first_shape is None else first_shape
    first = torch.rand(first_shape, generator=generator, dtype=F64) * 0.9 + 0.05
    first = first.log() if op is not lt.linear_scan else first * 2 - 1  # decays; any sign in linear space
    if op is lt.logcumsumexp:
        first = torch.zeros((1,) * len(shape), dtype=F64)
    second = torch.randn(shape, generator=generator, dtype=F64)
    state_shape = shape[:dim % len(shape)] + shape[dim % len(shape) + 1:]
    state = torch.randn(state_shape, generator=generator, dtype=F64) if with_state else None
    return first, second, state


OPS = [lt.scan, lt.linear_scan, lt.logcumsumexp]
OP_IDS = ["scan", "linear_scan", "logcumsumexp"]
CASES = [  # shape, dim, reverse, with_state, first_shape (broadcast)
    ((2, 5, 3), 1, False, False, None),
    ((2, 5, 3), 1, True, True, None),
    ((2, 5, 3), -1, False, True, None),
    ((4, 3), 0, True, True, None),
    ((7,), 0, False, True, None),
    ((2, 33, 3), -2, False, True, (1, 33, 1)),  # a decay shared by batch and channels
    ((3, 1), 1, True, False, None),
]
CASE_IDS = [f"{'x'.join(map(str, s))}-dim{d}{'-rev' if r else ''}{'-h0' if h else ''}{'-bcast' if f else ''}"
            for s, d, r, h, f in CASES]


def op_cases(cases, ids):
    """(op, case) pairs, logcumsumexp only where there is no state and no broadcast decay."""
    return [pytest.param(op, *case, id=f"{op_id}-{case_id}") for op, op_id in zip(OPS, OP_IDS, strict=True)
            for case, case_id in zip(cases, ids, strict=True) if op is not lt.logcumsumexp or not any(case[3:])]


def _differentiable(op, first, second, state):
    leaves = [second] + ([] if op is lt.logcumsumexp else [first] + ([] if state is None else [state]))
    return [x.requires_grad_() for x in leaves]


@pytest.mark.parametrize(("op", "shape", "dim", "reverse", "with_state", "first_shape"), op_cases(CASES, CASE_IDS))
def test_values_and_gradients_match_the_autodiffed_loop(op, shape, dim, reverse, with_state, first_shape):
    first, second, state = inputs(op, shape, dim, with_state=with_state, first_shape=first_shape)
    leaves = _differentiable(op, first, second, state)
    got = call(op, first, second, state, dim, reverse)
    want = reference(op, first, second, state, dim, reverse)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    weights = torch.randn(want.shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    got_grads = torch.autograd.grad((got * weights).sum(), leaves)
    want_grads = torch.autograd.grad((want * weights).sum(), leaves)
    for g, w in zip(got_grads, want_grads, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("op", "shape", "dim", "reverse", "with_state", "first_shape"),
                         op_cases(CASES[:6], CASE_IDS[:6]))
def test_gradcheck(op, shape, dim, reverse, with_state, first_shape):
    first, second, state = inputs(op, shape, dim, with_state=with_state, first_shape=first_shape, seed=2)
    leaves = _differentiable(op, first, second, state)

    def function(*args):
        named = dict(zip(["second", "first", "state"], args, strict=False))
        return call(op, named.get("first", first), named["second"], named.get("state", state), dim, reverse)

    assert torch.autograd.gradcheck(function, leaves)


def test_resets_give_finite_gradients_equal_to_separate_segments():
    """log a = -inf at t = 4 splits the sequence: values and gradients are those of two scans."""
    log_a, log_b, _ = inputs(lt.scan, (2, 9, 3), 1, with_state=False, seed=3)
    log_a[:, 4] = -math.inf
    log_a.requires_grad_(), log_b.requires_grad_()
    log_h = lt.scan(log_a, log_b, dim=1)
    weights = torch.randn(log_h.shape, dtype=F64, generator=torch.Generator().manual_seed(4))
    grad_log_a, grad_log_b = torch.autograd.grad((log_h * weights).sum(), (log_a, log_b))
    assert torch.isfinite(grad_log_a).all() and torch.isfinite(grad_log_b).all()
    for segment in (slice(0, 4), slice(4, 9)):
        part_a = log_a.detach()[:, segment].clone().requires_grad_()
        part_b = log_b.detach()[:, segment].clone().requires_grad_()
        part = reference(lt.scan, part_a, part_b, None, 1, False)
        torch.testing.assert_close(log_h[:, segment], part, rtol=1e-12, atol=1e-12)
        want_a, want_b = torch.autograd.grad((part * weights[:, segment]).sum(), (part_a, part_b))
        torch.testing.assert_close(grad_log_b[:, segment], want_b, rtol=1e-10, atol=1e-12)
        # the reset decay multiplies the second segment's h_{-1} = 0: no gradient reaches it
        torch.testing.assert_close(grad_log_a[:, segment], want_a, rtol=1e-10, atol=1e-12)


def test_zero_decay_in_linear_space_matches_the_loop():
    a, b, h0 = inputs(lt.linear_scan, (2, 9, 3), 1, with_state=True, seed=3)
    a[:, 4] = 0.0
    leaves = [x.requires_grad_() for x in (a, b, h0)]
    got = lt.linear_scan(a, b, dim=1, h0=h0)
    want = reference(lt.linear_scan, a, b, h0, 1, False)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for g, w in zip(torch.autograd.grad(got.sum(), leaves), torch.autograd.grad(want.sum(), leaves), strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_all_minus_inf_prefix_gives_minus_inf_and_zero_gradients():
    log_a = torch.zeros(1, 6, dtype=F64, requires_grad=True)
    log_b = torch.tensor([[-math.inf, -math.inf, 0.0, 0.5, -math.inf, 1.0]], dtype=F64, requires_grad=True)
    log_h = lt.scan(log_a, log_b)
    assert log_h[0, :2].tolist() == [-math.inf, -math.inf]
    grad_a, grad_b = torch.autograd.grad(log_h[torch.isfinite(log_h)].sum(), (log_a, log_b))
    assert torch.isfinite(grad_a).all() and torch.isfinite(grad_b).all()
    assert grad_b[0, :2].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_low_precision_is_computed_in_float32_and_returned_in_its_dtype(op, dtype):
    first, second, state = inputs(op, (2, 40, 3), 1, with_state=op is not lt.logcumsumexp, seed=5)
    low = [None if x is None else x.to(dtype).requires_grad_() for x in (first, second, state)]
    got = call(op, *low, 1, False)
    assert got.dtype == dtype
    # the reference from the very same (rounded) inputs, in float64
    exact = [None if x is None else x.detach().to(F64).requires_grad_() for x in low]
    want = reference(op, *exact, 1, False)
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(got.to(F64), want, rtol=4 * eps, atol=4 * eps)
    weights = torch.randn(want.shape, dtype=F64, generator=torch.Generator().manual_seed(6))
    leaves = [x for x in (low if op is not lt.logcumsumexp else low[1:2]) if x is not None]
    exact_leaves = [x for x in (exact if op is not lt.logcumsumexp else exact[1:2]) if x is not None]
    got_grads = torch.autograd.grad((got * weights.to(dtype)).sum(), leaves)
    want_grads = torch.autograd.grad((want * weights.to(dtype).to(F64)).sum(), exact_leaves)
    for g, w in zip(got_grads, want_grads, strict=True):
        assert g.dtype == dtype
        scale = w.abs().max().item() + 1
        assert (g.to(F64) - w).abs().max().item() <= 16 * eps * scale


def test_mixed_dtypes_promote_like_torch():
    log_a = torch.zeros(3, dtype=torch.float32)
    log_b = torch.zeros(3, dtype=F64)
    assert lt.scan(log_a, log_b).dtype == F64
    assert lt.scan(log_a.to(torch.float16), log_a.to(torch.bfloat16)).dtype == torch.float32


def test_results_match_the_numpy_front_door_bit_for_bit():
    rng = np.random.default_rng(7)
    log_a = np.log(rng.uniform(0.5, 1.0, (3, 64, 17))).astype(np.float32)
    log_b = rng.standard_normal((3, 64, 17)).astype(np.float32)
    got = lt.scan(torch.from_numpy(log_a), torch.from_numpy(log_b), dim=1)
    np.testing.assert_array_equal(got.numpy(), logscan.scan(log_a, log_b, axis=1))


def test_empty_and_length_one():
    assert lt.scan(torch.zeros(2, 0, 3), torch.zeros(2, 0, 3), dim=1).shape == (2, 0, 3)
    log_b = torch.randn(2, 1, 3, dtype=F64, requires_grad=True)
    log_h = lt.scan(torch.zeros(2, 1, 3, dtype=F64), log_b, dim=1)
    torch.testing.assert_close(log_h, log_b)
    (grad,) = torch.autograd.grad(log_h.sum(), log_b)
    assert grad.tolist() == torch.ones(2, 1, 3).tolist()


# ------------------------------------------------------------------ torch.library and torch.compile
OP_ARGS = {
    "scan": lambda x, y, h: (torch.ops.logscan.scan.default, (x.clamp(max=0), y, h, 1, False, "auto")),
    "scan_reverse": lambda x, y, h: (torch.ops.logscan.scan.default, (x.clamp(max=0), y, None, 0, True, "auto")),
    "linear_scan": lambda x, y, h: (torch.ops.logscan.linear_scan.default, (x, y, h, 1, False, "auto")),
    "logcumsumexp": lambda x, y, h: (torch.ops.logscan.logcumsumexp.default, (y, 1, True)),
}


@pytest.mark.parametrize("name", list(OP_ARGS))
def test_opcheck(name):
    generator = torch.Generator().manual_seed(8)
    x, y = (torch.randn(2, 6, 3, dtype=F64, generator=generator, requires_grad=True) for _ in range(2))
    h = torch.randn(2, 3, dtype=F64, generator=generator, requires_grad=True)
    op, args = OP_ARGS[name](x, y, h)
    torch.library.opcheck(op, args)


def _loss(log_a, log_b, log_h0):
    return (lt.scan(log_a, log_b, dim=1, log_h0=log_h0).exp().sum()
            + lt.linear_scan(log_a.exp(), log_b, dim=1, reverse=True).sum()
            + lt.logcumsumexp(log_b, dim=-1).sum())


@pytest.mark.parametrize("compiler", ["aot_eager", "inductor"])
def test_compile_fullgraph_forward_and_backward(compiler):
    generator = torch.Generator().manual_seed(9)
    log_a = (-torch.rand(2, 7, 3, generator=generator)).requires_grad_()
    log_b = torch.randn(2, 7, 3, generator=generator, requires_grad=True)
    log_h0 = torch.randn(2, 3, generator=generator, requires_grad=True)
    torch._dynamo.reset()
    compiled = torch.compile(_loss, fullgraph=True, backend=compiler)
    got_loss = compiled(log_a, log_b, log_h0)
    got = torch.autograd.grad(got_loss, (log_a, log_b, log_h0))
    want_loss = _loss(log_a, log_b, log_h0)
    want = torch.autograd.grad(want_loss, (log_a, log_b, log_h0))
    torch.testing.assert_close(got_loss, want_loss)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)


# ------------------------------------------------------------------ errors
def test_integer_tensors_are_refused():
    with pytest.raises(TypeError, match=r"logscan.torch.scan: log_b must have a floating dtype .* got torch.int64"):
        lt.scan(torch.zeros(3), torch.arange(3))
    with pytest.raises(TypeError, match=r"logscan.torch.linear_scan: a must have a floating dtype"):
        lt.linear_scan(torch.arange(3), torch.zeros(3))
    with pytest.raises(TypeError, match=r"logscan.torch.logcumsumexp: x must have a floating dtype"):
        lt.logcumsumexp(torch.arange(3))


def test_non_tensors_are_refused():
    with pytest.raises(TypeError, match=r"logscan.torch.scan: log_a must be a torch.Tensor, got ndarray"):
        lt.scan(np.zeros(3), torch.zeros(3))
    with pytest.raises(TypeError, match=r"logscan.torch.scan: log_h0 must be a torch.Tensor, got float"):
        lt.scan(torch.zeros(3), torch.zeros(3), log_h0=0.0)


def test_mismatched_devices_are_refused():
    with pytest.raises(ValueError, match=r"logscan.torch.scan: all tensors must be on one device, got log_a on cpu, "
                                         r"log_b on meta"):
        lt.scan(torch.zeros(3), torch.zeros(3, device="meta"))
    with pytest.raises(ValueError, match=r"logscan.torch.logcumsumexp: x is on device meta; logscan computes on"):
        lt.logcumsumexp(torch.zeros(3, device="meta"))


def test_shapes_that_do_not_broadcast_are_refused():
    with pytest.raises(ValueError, match=r"log_a and log_b must broadcast together, got shapes \(2, 3\) and \(4,\)"):
        lt.scan(torch.zeros(2, 3), torch.zeros(4))
    with pytest.raises(ValueError, match=r"h0 must have shape \(2,\) \(the inputs' broadcast shape without dim 1\)"):
        lt.linear_scan(torch.zeros(2, 3), torch.zeros(2, 3), h0=torch.zeros(3))


def test_bad_dim_and_options_are_refused():
    with pytest.raises(IndexError, match=r"logscan.torch.scan: dim 2 is out of range for tensors of 2 dimensions"):
        lt.scan(torch.zeros(2, 3), torch.zeros(2, 3), dim=2)
    with pytest.raises(TypeError, match=r"dim must be an int, got float"):
        lt.logcumsumexp(torch.zeros(3), dim=0.0)
    with pytest.raises(ValueError, match=r"at least one dimension to scan along, got 0-d tensors"):
        lt.scan(torch.zeros(()), torch.zeros(()))
    with pytest.raises(TypeError, match=r"reverse must be a bool, got str"):
        lt.scan(torch.zeros(3), torch.zeros(3), reverse="False")
    with pytest.raises(TypeError, match=r"method must be a str, got int"):
        lt.linear_scan(torch.zeros(3), torch.zeros(3), method=1)


def test_front_door_names_the_differentiable_route_for_tensors_that_require_grad():
    x = torch.zeros(3, requires_grad=True)
    with pytest.raises(TypeError, match=r"logscan.scan: log_b is a torch tensor that requires grad.*logscan.torch"):
        logscan.scan(torch.zeros(3), x)
