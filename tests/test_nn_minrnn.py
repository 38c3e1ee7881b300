"""minGRU / minLSTM layers: forward against the float64 reference, backward against finite differences,
parallel mode against step mode, and the errors of bad inputs."""

import numpy as np
import pytest

from logscan import reference_nn
from logscan.nn import (
    _fused_cpu,
    mingru_backward,
    mingru_forward,
    mingru_init,
    mingru_step,
    minlstm_backward,
    minlstm_forward,
    minlstm_init,
    minlstm_step,
)
from logscan.nn.gradcheck import numerical_gradient, relative_error

CELLS = {
    "mingru": (mingru_init, mingru_forward, mingru_backward, mingru_step, reference_nn.mingru),
    "minlstm": (minlstm_init, minlstm_forward, minlstm_backward, minlstm_step, reference_nn.minlstm),
}
SHAPES = [(1, 1, 2, 3), (2, 5, 3, 4), (3, 33, 4, 2)]  # (B, T, d_in, d_hidden)
TOLERANCE = {np.float64: 1e-11, np.float32: 2e-5}


@pytest.fixture(autouse=True, params=["fused", "arrays"])
def gate_path(request, monkeypatch):
    """Every test runs on both paths of the gates: the fused numba pass and the array expressions (CuPy's path)."""
    monkeypatch.setattr(_fused_cpu, "ENABLED", request.param == "fused")
    return request.param


def shape_id(shape):
    return "B{}-T{}-I{}-H{}".format(*shape)


def make(cell, shape, dtype, seed=0, with_h0=False):
    B, T, d_in, d_hidden = shape
    rng = np.random.default_rng(seed)
    params = CELLS[cell][0](d_in, d_hidden, rng=rng, dtype=dtype)
    # wide pre-activations reach both branches of g and saturated gates
    params = {k: (v * 3).astype(dtype) for k, v in params.items()}
    x = rng.standard_normal((B, T, d_in)).astype(dtype)
    h0 = rng.uniform(0.1, 2.0, (B, d_hidden)).astype(dtype) if with_h0 else None
    return params, x, h0


@pytest.mark.parametrize("with_h0", [False, True], ids=["no-h0", "h0"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("cell", CELLS)
def test_forward_matches_reference(cell, shape, dtype, with_h0):
    _, forward, _, _, reference = CELLS[cell]
    params, x, h0 = make(cell, shape, dtype, with_h0=with_h0)
    h, _ = forward(params, x, log_h0=None if h0 is None else np.log(h0))
    assert h.dtype == dtype and h.shape == shape[:2] + shape[3:]
    expected = reference(params, x, h0)
    assert relative_error(h, expected) < TOLERANCE[dtype] * max(1, np.log2(shape[1]))


@pytest.mark.parametrize("with_h0", [False, True], ids=["no-h0", "h0"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("cell", CELLS)
def test_parallel_equals_step(cell, dtype, with_h0):
    _, forward, _, step, _ = CELLS[cell]
    params, x, h0 = make(cell, (2, 17, 3, 5), dtype, seed=3, with_h0=with_h0)
    h, _ = forward(params, x, log_h0=None if h0 is None else np.log(h0))
    state = h0
    for t in range(x.shape[1]):
        state = step(params, x[:, t], state)
        assert state.dtype == dtype
        np.testing.assert_allclose(state, h[:, t], rtol=TOLERANCE[dtype] * 10, atol=0)


@pytest.mark.parametrize("cell", CELLS)
def test_chunked_equals_whole(cell):
    """Scanning [x1, x2] equals scanning x1, then x2 from log of the last state: what streaming relies on."""
    _, forward, _, _, _ = CELLS[cell]
    params, x, _ = make(cell, (2, 20, 3, 4), np.float64, seed=5)
    whole, _ = forward(params, x)
    first, _ = forward(params, x[:, :8])
    second, _ = forward(params, x[:, 8:], log_h0=np.log(first[:, -1]))
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, rtol=1e-13)


@pytest.mark.parametrize("with_h0", [False, True], ids=["no-h0", "h0"])
@pytest.mark.parametrize("shape", [(2, 5, 3, 4), (1, 9, 2, 3)], ids=shape_id)
@pytest.mark.parametrize("cell", CELLS)
def test_backward_matches_finite_differences(cell, shape, with_h0):
    _, forward, backward, _, reference = CELLS[cell]
    params, x, h0 = make(cell, shape, np.float64, seed=1, with_h0=with_h0)
    log_h0 = None if h0 is None else np.log(h0)
    weights = np.random.default_rng(9).standard_normal(shape[:2] + shape[3:])

    h, cache = forward(params, x, log_h0=log_h0)
    grads, grad_x, grad_log_h0 = backward(params, cache, weights)
    assert set(grads) == set(params)

    def loss():
        return float((reference(params, x, None if log_h0 is None else np.exp(log_h0)) * weights).sum())

    for name, value in params.items():
        assert grads[name].shape == value.shape
        assert relative_error(grads[name], numerical_gradient(loss, value)) < 1e-7, name
    assert relative_error(grad_x, numerical_gradient(loss, x)) < 1e-7
    if log_h0 is None:
        assert grad_log_h0 is None
    else:
        assert relative_error(grad_log_h0, numerical_gradient(loss, log_h0)) < 1e-7


@pytest.mark.parametrize("cell", CELLS)
def test_zero_initial_state_is_minus_inf(cell):
    _, forward, _, _, _ = CELLS[cell]
    params, x, _ = make(cell, (2, 4, 3, 2), np.float64)
    h_none, _ = forward(params, x)
    h_zero, _ = forward(params, x, log_h0=np.full((2, 2), -np.inf))
    np.testing.assert_array_equal(h_none, h_zero)


@pytest.mark.parametrize("cell", CELLS)
def test_extreme_preactivations_stay_finite(cell):
    _, forward, backward, _, _ = CELLS[cell]
    params, x, _ = make(cell, (2, 6, 3, 4), np.float32)
    params = {k: v * 200 for k, v in params.items()}
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        h, cache = forward(params, x)
        grads, grad_x, _ = backward(params, cache, np.ones_like(h))
    assert np.isfinite(h).all() and (h >= 0).all()  # g(x) may underflow to 0, never below
    assert all(np.isfinite(g).all() for g in grads.values()) and np.isfinite(grad_x).all()


# ---------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("cell", CELLS)
def test_bad_inputs(cell):
    init, forward, backward, step, _ = CELLS[cell]
    name = cell + "_forward"
    params, x, _ = make(cell, (2, 4, 3, 5), np.float32)
    with pytest.raises(ValueError, match=rf"{name}: x must have shape \(batch, time, 3\), got \(4, 3\)"):
        forward(params, x[0])
    with pytest.raises(ValueError, match=rf"{name}: x must have shape .* got \(2, 4, 2\)"):
        forward(params, x[..., :2])
    with pytest.raises(TypeError, match=rf"{name}: x must have the params' dtype float32, got float64"):
        forward(params, x.astype(np.float64))
    with pytest.raises(TypeError, match=rf"{name}: x must be an array, got list"):
        forward(params, x.tolist())
    bad = x.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=rf"{name}: x contains NaN"):
        forward(params, bad)
    wrong = dict(params, weight_candidate=params["weight_candidate"][:, :4])
    with pytest.raises(ValueError, match=rf"{name}: params\['weight_candidate'\] must have shape \(3, 5\), "
                                         r"got \(3, 4\)"):
        forward(wrong, x)
    missing = {k: v for k, v in params.items() if k != "bias_candidate"}
    with pytest.raises(ValueError, match=rf"{name}: params is missing 'bias_candidate'"):
        forward(missing, x)
    mixed = dict(params, bias_candidate=params["bias_candidate"].astype(np.float64))
    with pytest.raises(TypeError, match=rf"{name}: params must share one dtype"):
        forward(mixed, x)
    with pytest.raises(ValueError, match=rf"{name}: log_h0 must have shape \(batch, d_hidden\) = \(2, 5\)"):
        forward(params, x, log_h0=np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=rf"{name}: log_h0 contains NaN"):
        forward(params, x, log_h0=np.full((2, 5), np.nan, np.float32))
    h, cache = forward(params, x)
    with pytest.raises(ValueError, match=rf"{cell}_backward: grad_h must have the shape of h"):
        backward(params, cache, h[:, :2])
    with pytest.raises(TypeError, match=rf"{cell}_backward: grad_h must be an array of h's family, got list"):
        backward(params, cache, h.tolist())
    with pytest.raises(TypeError, match=rf"{cell}_backward: grad_h must be a float array .* got int64"):
        backward(params, cache, np.ones(h.shape, np.int64))
    backward(params, cache, np.ones_like(h))
    with pytest.raises(ValueError, match=rf"{cell}_backward: this cache was already used by a backward pass"):
        backward(params, cache, np.ones_like(h))
    with pytest.raises(TypeError, match=rf"{cell}_backward: cache must be the dict returned by the forward pass"):
        backward(params, {}, h)
    with pytest.raises(ValueError, match=rf"{cell}_step: x_t must have shape \(batch, 3\)"):
        step(params, x)
    with pytest.raises(TypeError, match="init: dtype must be float32 or float64"):
        init(3, 5, dtype=np.int32)
