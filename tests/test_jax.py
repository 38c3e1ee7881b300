"""logscan.jax: values and gradients against a jax.lax.scan loop that JAX differentiates, under jit, grad and vmap;
half-precision dtypes; the buffer callback on the CPU and the host-callback route; the error paths."""

import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the JAX adapter needs jax (the jax extra)")

import jax.numpy as jnp  # noqa: E402

import logscan.jax as lj  # noqa: E402
from logscan.jax import _buffers  # noqa: E402

scan_module = sys.modules["logscan.jax.scans"]

OPS = {"log": (lj.scan, "log_h0"), "linear": (lj.linear_scan, "h0")}
# float64 to the rounding of a few dozen steps; float32 against the float64 reference, a few ulp * log2 T
TOLERANCE = {"float64": 1e-10, "float32": 3e-5}


@pytest.fixture
def x64():
    """float64 arrays inside the test only (the setting is restored after it)."""
    with jax.enable_x64(True):
        yield


# ------------------------------------------------------------------ the reference: one step at a time
def reference(kind, first, second, state, axis, reverse):
    """The recurrence as a jax.lax.scan over the time axis, which JAX differentiates by itself."""
    shape = jnp.broadcast_shapes(first.shape, second.shape)
    first = jnp.moveaxis(jnp.broadcast_to(first, shape), axis, 0)
    second = jnp.moveaxis(jnp.broadcast_to(second, shape), axis, 0)
    if state is None:
        state = jnp.full(first.shape[1:], -jnp.inf if kind == "log" else 0.0, first.dtype)
    state = jnp.broadcast_to(state, first.shape[1:])

    def step(h, pair):
        a, b = pair
        h = jnp.logaddexp(a + h, b) if kind == "log" else a * h + b
        return h, h

    _, states = jax.lax.scan(step, state, (first, second), reverse=reverse)
    return jnp.moveaxis(states, 0, axis)


def _inputs(kind, shape_a, shape_b, state_shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    first = np.log(rng.uniform(0.5, 1.0, shape_a)) if kind == "log" else rng.uniform(-1.0, 1.0, shape_a)
    second = rng.standard_normal(shape_b)
    state = None if state_shape is None else rng.standard_normal(state_shape)
    cast = lambda x: None if x is None else jnp.asarray(x, dtype)  # noqa: E731
    return cast(first), cast(second), cast(state)


def _check(kind, first, second, state, axis, reverse, dtype):
    """Our values and gradients (every input, the state included) against the reference's, in float64."""
    function, state_name = OPS[kind]
    inputs = (first, second) if state is None else (first, second, state)
    wide = tuple(x.astype(jnp.float64) for x in inputs)
    got, our_vjp = jax.vjp(lambda *xs: function(*xs[:2], axis=axis, reverse=reverse,
                                                **{state_name: xs[2] if len(xs) > 2 else None}), *inputs)
    want, their_vjp = jax.vjp(lambda *xs: reference(kind, *xs[:2], xs[2] if len(xs) > 2 else None, axis, reverse),
                              *wide)
    tolerance = TOLERANCE[dtype]
    assert got.dtype == dtype and got.shape == jnp.broadcast_shapes(first.shape, second.shape)
    np.testing.assert_allclose(got.astype(jnp.float64), want, rtol=tolerance, atol=tolerance)
    weights = jnp.asarray(np.random.default_rng(7).standard_normal(got.shape))
    ours, theirs = our_vjp(weights.astype(dtype)), their_vjp(weights)
    for k, (g, w) in enumerate(zip(ours, theirs, strict=True)):
        assert g.dtype == dtype and g.shape == inputs[k].shape, k
        assert np.all(np.isfinite(g)), k
        np.testing.assert_allclose(g.astype(jnp.float64), w, rtol=tolerance, atol=tolerance, err_msg=f"input {k}")


# ------------------------------------------------------------------ values and gradients
# (shape of the first input, of the second, axis, shape of the state or None, reverse)
CASES = {
    "B2-T33-D3-axis1": ((2, 33, 3), (2, 33, 3), 1, None, False),
    "B2-T33-D3-axis1-reverse": ((2, 33, 3), (2, 33, 3), 1, None, True),
    "B2-T33-D3-axis1-h0": ((2, 33, 3), (2, 33, 3), 1, (2, 3), False),
    "T33-B2-axis0-h0-reverse": ((33, 2), (33, 2), 0, (2,), True),
    "B2-D3-T33-axis-1-h0": ((2, 3, 33), (2, 3, 33), -1, (2, 3), False),
    "B2-T2-D3-axis-2-h0-reverse": ((2, 2, 3), (2, 2, 3), -2, (2, 3), True),
    "B2-T1-D3-axis1-h0": ((2, 1, 3), (2, 1, 3), 1, (2, 3), False),
    "broadcast-a1T1-B2-T33-D3-h0-reverse": ((1, 33, 1), (2, 33, 3), 1, (2, 3), True),
    "broadcast-aT-B2-T33-h0D": ((33,), (2, 33), -1, (), False),
    "broadcast-b1-h0-row": ((2, 33, 3), (1, 33, 3), 1, (3,), False),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", list(OPS))
def test_matches_the_reference_in_float64(x64, kind, case):
    shape_a, shape_b, axis, state_shape, reverse = CASES[case]
    first, second, state = _inputs(kind, shape_a, shape_b, state_shape, jnp.float64)
    _check(kind, first, second, state, axis, reverse, "float64")


@pytest.mark.parametrize("kind", list(OPS))
def test_float32_matches_the_float64_reference(x64, kind):
    first, second, state = _inputs(kind, (2, 33, 3), (2, 33, 3), (2, 3), jnp.float32)
    _check(kind, first, second, state, 1, False, "float32")


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_resets_give_finite_gradients(x64, reverse):
    first, second, state = _inputs("log", (2, 33, 3), (2, 33, 3), (2, 3), jnp.float64)
    first = first.at[:, ::7].set(-jnp.inf).at[0, 10:14].set(-jnp.inf)  # segment starts, one run of them
    _check("log", first, second, state, 1, reverse, "float64")
    grads = jax.grad(lambda a, h0: jnp.sum(lj.scan(a, second, axis=1, log_h0=h0, reverse=reverse)),
                     (0, 1))(first, state)
    assert all(np.all(np.isfinite(g)) for g in grads)
    # where log a = -inf the past does not reach: its gradient is exactly 0
    assert np.all(grads[0][np.isneginf(first)] == 0)


def test_an_all_minus_inf_prefix_is_minus_inf_with_zero_gradients(x64):
    log_a = jnp.zeros((2, 5))
    log_b = jnp.array([[-jnp.inf, -jnp.inf, 0.0, 1.0, -jnp.inf]] * 2)
    log_h = lj.scan(log_a, log_b)
    assert np.all(np.isneginf(log_h[:, :2])) and np.all(np.isfinite(log_h[:, 2:]))
    grads = jax.grad(lambda a, b: jnp.sum(jnp.where(jnp.isfinite(log_h), lj.scan(a, b), 0.0)), (0, 1))(log_a, log_b)
    assert all(np.all(np.isfinite(g)) for g in grads)
    assert np.all(grads[1][:, :2] == 0)


@pytest.mark.parametrize(("axis", "reverse"), [(1, False), (-3, True)], ids=["axis1", "axis-3-reverse"])
def test_logcumsumexp_matches_the_reference(x64, axis, reverse):
    x = jnp.asarray(np.random.default_rng(3).standard_normal((3, 33, 2)))
    got, our_vjp = jax.vjp(lambda x: lj.logcumsumexp(x, axis=axis, reverse=reverse), x)
    want, their_vjp = jax.vjp(lambda x: reference("log", jnp.zeros(()), x, None, axis, reverse), x)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    weights = jnp.asarray(np.random.default_rng(4).standard_normal(x.shape))
    np.testing.assert_allclose(our_vjp(weights)[0], their_vjp(weights)[0], rtol=1e-10, atol=1e-12)


def test_T0_gives_empty_results_and_a_zero_state_gradient(x64):
    log_a, log_b, log_h0 = jnp.zeros((2, 0, 3)), jnp.zeros((2, 0, 3)), jnp.ones((2, 3))
    assert lj.scan(log_a, log_b, axis=1, log_h0=log_h0).shape == (2, 0, 3)
    grads = jax.grad(lambda *xs: jnp.sum(lj.scan(*xs[:2], axis=1, log_h0=xs[2])), (0, 1, 2))(log_a, log_b, log_h0)
    assert [g.shape for g in grads] == [(2, 0, 3), (2, 0, 3), (2, 3)]
    assert np.all(grads[2] == 0)


def test_python_scalars_broadcast_like_jnp_add():
    log_b = jnp.asarray(np.random.default_rng(0).standard_normal((2, 5)), jnp.float32)
    got = lj.scan(-0.5, log_b)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, lj.scan(jnp.full((2, 5), -0.5), log_b), rtol=0, atol=0)


# ------------------------------------------------------------------ jit, grad, vmap
def _batch(seed=0, B=3, T=33, D=4):
    rng = np.random.default_rng(seed)
    log_a = jnp.asarray(np.log(rng.uniform(0.5, 1.0, (T, D))), jnp.float32)
    log_b = jnp.asarray(rng.standard_normal((B, T, D)), jnp.float32)
    log_h0 = jnp.asarray(rng.standard_normal((B, D)), jnp.float32)
    return log_a, log_b, log_h0


def _loss_one(log_a, log_b, log_h0):
    return jnp.sum(jnp.sin(lj.scan(log_a, log_b, axis=0, log_h0=log_h0)))


def test_jit_matches_eager_and_computes_on_xlas_buffers():
    log_a, log_b, log_h0 = _batch()
    function = lambda a, b, h0: lj.scan(a, b, axis=-2, log_h0=h0, reverse=True)  # noqa: E731
    np.testing.assert_array_equal(jax.jit(function)(log_a, log_b, log_h0), function(log_a, log_b, log_h0))
    grad = jax.grad(lambda *xs: jnp.sum(function(*xs)), (0, 1, 2))
    for eager, jitted in zip(grad(log_a, log_b, log_h0), jax.jit(grad)(log_a, log_b, log_h0), strict=True):
        np.testing.assert_array_equal(jitted, eager)
    assert _buffers.AVAILABLE
    lowered = jax.jit(grad).lower(log_a, log_b, log_h0).as_text()
    assert lowered.count(_buffers.TARGET) == 2  # the forward and the backward, nothing else


def test_vmap_and_vmap_of_grad_match_a_loop():
    log_a, log_b, log_h0 = _batch()
    one = lambda b, h0: lj.scan(log_a, b, axis=0, log_h0=h0)  # noqa: E731  (log_a is shared: not batched)
    want = jnp.stack([one(log_b[i], log_h0[i]) for i in range(3)])
    np.testing.assert_allclose(jax.vmap(one)(log_b, log_h0), want, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(jax.vmap(one))(log_b, log_h0), want, rtol=1e-6)

    per_example = jax.vmap(jax.grad(_loss_one, (0, 1, 2)), in_axes=(None, 0, 0))
    loop = [jax.grad(_loss_one, (0, 1, 2))(log_a, log_b[i], log_h0[i]) for i in range(3)]
    for k, got in enumerate(jax.jit(per_example)(log_a, log_b, log_h0)):
        np.testing.assert_allclose(got, jnp.stack([g[k] for g in loop]), rtol=1e-5, atol=1e-6, err_msg=str(k))
    # the gradient of a batched loss reaches the shared input summed over the batch
    shared = jax.grad(lambda a: jnp.sum(jax.vmap(lambda b, h0: _loss_one(a, b, h0))(log_b, log_h0)))(log_a)
    np.testing.assert_allclose(shared, sum(g[0] for g in loop), rtol=1e-5, atol=1e-6)


def test_vmap_over_a_middle_axis_and_over_the_state_alone():
    log_a, log_b, log_h0 = _batch()
    moved = jnp.moveaxis(log_b, 0, 1)  # (T, B, D), batch in the middle
    got = jax.vmap(lambda b: lj.scan(log_a, b, axis=0), in_axes=1, out_axes=1)(moved)
    np.testing.assert_allclose(got, jnp.moveaxis(jax.vmap(lambda b: lj.scan(log_a, b, axis=0))(log_b), 0, 1),
                               rtol=1e-6)
    only_state = jax.vmap(lambda h0: lj.scan(log_a, log_b[0], axis=0, log_h0=h0))(log_h0)
    want = jnp.stack([lj.scan(log_a, log_b[0], axis=0, log_h0=h0) for h0 in log_h0])
    np.testing.assert_allclose(only_state, want, rtol=1e-6)
    grads = jax.vmap(jax.grad(lambda h0: _loss_one(log_a, log_b[0], h0)))(log_h0)
    np.testing.assert_allclose(grads, jnp.stack([jax.grad(lambda h0: _loss_one(log_a, log_b[0], h0))(h0)
                                                 for h0 in log_h0]), rtol=1e-5, atol=1e-6)


def test_linear_scan_and_logcumsumexp_under_vmap_and_jit():
    _, log_b, _ = _batch()
    a = jnp.tanh(log_b)
    np.testing.assert_allclose(jax.jit(jax.vmap(lambda a, b: lj.linear_scan(a, b, axis=0)))(a, log_b),
                               jnp.stack([lj.linear_scan(a[i], log_b[i], axis=0) for i in range(3)]), rtol=1e-6)
    grad = jax.vmap(jax.grad(lambda x: jnp.sum(lj.logcumsumexp(x, axis=0, reverse=True))))(log_b)
    np.testing.assert_allclose(grad, jnp.stack([jax.grad(lambda x: jnp.sum(lj.logcumsumexp(x, axis=0,
                                                                                           reverse=True)))(x)
                                                for x in log_b]), rtol=1e-6)


def test_the_host_callback_route_gives_the_same_results(monkeypatch):
    """What a jitted call on a GPU runs (pure_callback to the CPU backend), forced here on the CPU."""
    log_a, log_b, log_h0 = _batch()
    grad = jax.grad(_loss_one, (0, 1, 2))
    want = [grad(log_a, log_b[0], log_h0[0]), jax.vmap(grad, in_axes=(None, 0, 0))(log_a, log_b, log_h0)]
    monkeypatch.setattr(_buffers, "AVAILABLE", False)
    scan_module._staged.clear_cache()
    try:
        lowered = jax.jit(grad).lower(log_a, log_b[0], log_h0[0]).as_text()
        assert _buffers.TARGET not in lowered
        got = [jax.jit(grad)(log_a, log_b[0], log_h0[0]),
               jax.jit(jax.vmap(grad, in_axes=(None, 0, 0)))(log_a, log_b, log_h0)]
    finally:
        monkeypatch.undo()
        scan_module._staged.clear_cache()
    assert _buffers.TARGET in jax.jit(lambda *xs: grad(*xs)).lower(log_a, log_b[0], log_h0[0]).as_text()
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(g, w)


def test_an_error_inside_the_buffer_callback_is_an_exception_not_a_crash():
    x = jnp.zeros((2, 5))
    shapes = (jax.ShapeDtypeStruct(x.shape, x.dtype),)
    bad = jax.jit(lambda x: _buffers.call("log_scan", [x, x], shapes, axis=-1, reverse=False, method="no-such-method"))
    with pytest.raises(Exception, match="logscan.scan: unknown method 'no-such-method'"):
        jax.block_until_ready(bad(x))


# ------------------------------------------------------------------ dtypes
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_computed_in_float32_and_returned_in_its_dtype(dtype):
    log_a, log_b, log_h0 = (x.astype(dtype) for x in _batch())
    log_h = lj.scan(log_a, log_b[0], axis=0, log_h0=log_h0[0])
    assert log_h.dtype == dtype
    want = lj.scan(log_a.astype(jnp.float32), log_b[0].astype(jnp.float32), axis=0,
                   log_h0=log_h0[0].astype(jnp.float32))
    np.testing.assert_array_equal(log_h, want.astype(dtype))
    grads = jax.grad(_loss_one, (0, 1, 2))(log_a, log_b[0], log_h0[0])
    assert [g.dtype for g in grads] == [dtype] * 3
    assert lj.linear_scan(jnp.tanh(log_b[0]), log_b[0], axis=0).dtype == dtype
    assert lj.logcumsumexp(log_b[0], axis=0).dtype == dtype
    assert lj.scan(log_a, log_b[0].astype(jnp.float32), axis=0).dtype == jnp.float32  # promoted as jnp.add does


# ------------------------------------------------------------------ errors at the boundary
def test_errors_name_the_argument():
    x = jnp.zeros((2, 5))
    with pytest.raises(TypeError, match=r"logscan.jax.scan: log_a must have a floating dtype .* got int32"):
        lj.scan(jnp.zeros((2, 5), jnp.int32), x)
    with pytest.raises(TypeError, match=r"logscan.jax.linear_scan: b must be an array .* got list"):
        lj.linear_scan(x, [1.0, 2.0])
    with pytest.raises(TypeError, match=r"logscan.jax.scan: log_b must be a floating array, got a bool"):
        lj.scan(x, True)
    with pytest.raises(ValueError, match=r"logscan.jax.scan: log_a and log_b must have at least one dimension"):
        lj.scan(jnp.zeros(()), jnp.zeros(()))
    with pytest.raises(ValueError, match=r"logscan.jax.logcumsumexp: x must have at least one dimension"):
        lj.logcumsumexp(jnp.zeros(()))
    with pytest.raises(TypeError, match=r"logscan.jax.logcumsumexp: x must have a floating dtype .* got int32"):
        lj.logcumsumexp(jnp.arange(3))
    with pytest.raises(ValueError, match=r"log_a and log_b must broadcast together .* got shapes \(2, 5\) and \(3,"):
        lj.scan(x, jnp.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"logscan.jax.scan: axis 2 is out of bounds for inputs of shape \(2, 5\); "
                                         r"expected an int in \[-2, 1\]"):
        lj.scan(x, x, axis=2)
    with pytest.raises(IndexError, match=r"logscan.jax.logcumsumexp: axis -3 is out of bounds"):
        lj.logcumsumexp(x, axis=-3)
    with pytest.raises(TypeError, match=r"logscan.jax.scan: axis must be an int, got float"):
        lj.scan(x, x, axis=1.0)
    with pytest.raises(ValueError, match=r"logscan.jax.scan: log_h0 must have shape \(2,\) \(the inputs' broadcast "
                                         r"shape \(2, 5\) without axis -1\) or broadcast to it, got \(5,\)"):
        lj.scan(x, x, log_h0=jnp.zeros(5))
    with pytest.raises(ValueError, match=r"logscan.jax.linear_scan: h0 must have shape \(5,\)"):
        lj.linear_scan(x, x, axis=0, h0=jnp.zeros((2, 5)))
    with pytest.raises(TypeError, match=r"logscan.jax.scan: log_h0 must have a floating dtype .* got int32"):
        lj.scan(x, x, log_h0=jnp.zeros(2, jnp.int32))
    with pytest.raises(TypeError, match=r"logscan.jax.scan: reverse must be a bool .* got str"):
        lj.scan(x, x, reverse="yes")
    with pytest.raises(ValueError, match=r"logscan.jax.scan: unknown method 'fast'; expected 'auto' or one of"):
        lj.scan(x, x, method="fast")


def test_a_traced_option_is_an_error_under_jit():
    x = jnp.zeros((2, 5))
    with pytest.raises(TypeError, match=r"logscan.jax.scan: reverse must be a bool \(a Python value: it is static"):
        jax.jit(lambda x, reverse: lj.scan(x, x, reverse=reverse))(x, True)
    with pytest.raises(TypeError, match=r"logscan.jax.scan: axis must be an int"):
        jax.jit(lambda x, axis: lj.scan(x, x, axis=axis))(x, 1)
