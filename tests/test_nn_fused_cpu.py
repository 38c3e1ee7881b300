"""The fused numba pass of the minRNN gates against the array expressions it replaces on NumPy arrays."""

import numpy as np
import pytest

from logscan.nn import _fused_cpu, _minrnn
from logscan.nn._logspace import sigmoid, softplus

# every regime of the gates: saturated both ways, both branches of g, the switch at 0, overflow-size inputs
VALUES = np.array([-1e30, -200.0, -88.5, -30.0, -5.0, -1.0, -1e-3, -1e-30, 0.0, 1e-30, 1e-3, 0.25, 0.5,
                   1.0, 3.0, 17.0, 50.0, 150.0, 1e4])
ERROR_BOUND = {np.float32: 1e-6, np.float64: 1e-14}   # |fused - exact| / (1 + |exact|): a few ulp


def gate_grid(n_gates, dtype, seed=0):
    """Rows of pre-activations ``[gate_1 | ... | candidate]`` pairing every listed value with every other."""
    rng = np.random.default_rng(seed)
    columns = np.stack(np.meshgrid(*[VALUES] * n_gates, indexing="ij"), axis=-1).reshape(-1, n_gates)
    return np.ascontiguousarray(rng.permutation(columns).T).reshape(1, -1).astype(dtype)  # (1, n_gates * H)


def array_coefficients(cell, pre):
    """What the cells compute without the fused path: ``(logit, log_a, log_b)``."""
    width = pre.shape[-1] // (2 if cell == "mingru" else 3)
    if cell == "mingru":
        logit = pre[..., :width]
    else:
        logit = softplus(pre[..., :width], negate=True) - softplus(pre[..., width:2 * width], negate=True)
    log_a, log_b = _minrnn.mixture_coefficients(logit, pre[..., -width:])
    return logit, log_a, log_b


def array_gradients(cell, grad_log_a, grad_log_b, log_a, logit, pre):
    """What the cells' array path computes for ``dL/dpre``, with the same helpers."""
    grad_pre = np.empty_like(pre)
    width = pre.shape[-1] // (2 if cell == "mingru" else 3)
    grad_s = _minrnn.logit_backward(grad_log_a, grad_log_b, log_a.copy(), logit, out=logit.copy())
    grad_pre[..., -width:] = _minrnn.candidate_backward(grad_log_b.copy(), pre[..., -width:])
    if cell == "mingru":
        grad_pre[..., :width] = grad_s
    else:  # d logit / d f = -sigma(-f), d logit / d i = sigma(-i)
        grad_pre[..., :width] = -sigmoid(pre[..., :width], negate=True) * grad_s
        grad_pre[..., width:2 * width] = sigmoid(pre[..., width:2 * width], negate=True) * grad_s
    return grad_pre


def fused_coefficients(cell, pre):
    if cell == "mingru":
        log_a, log_b = _fused_cpu.mingru_coefficients(pre)
        return pre[..., :log_a.shape[-1]], log_a, log_b
    return _fused_cpu.minlstm_coefficients(pre)


def fused_gradients(cell, grad_log_a, grad_log_b, logit, pre):
    pre = pre.copy()
    if cell == "mingru":
        return _fused_cpu.mingru_gradients(grad_log_a, grad_log_b, pre)
    return _fused_cpu.minlstm_gradients(grad_log_a, grad_log_b, logit, pre)


def scaled_error(got, exact):
    got, exact = got.astype(np.float64), exact.astype(np.float64)
    both_inf = np.isinf(got) & (got == exact)
    with np.errstate(invalid="ignore"):
        err = np.abs(got - exact) / (1 + np.abs(exact))
    return float(np.max(np.where(both_inf, 0.0, err)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_fused_gates_match_the_array_expressions_in_float64(cell, dtype):
    n_gates = 2 if cell == "mingru" else 3
    pre = gate_grid(n_gates, dtype)
    width = pre.shape[-1] // n_gates
    rng = np.random.default_rng(1)
    grad_log_a = rng.standard_normal((1, width)).astype(dtype)
    grad_log_b = rng.standard_normal((1, width)).astype(dtype)

    with np.errstate(over="ignore"):   # the float64 array path may overflow harmlessly in unselected branches
        exact = array_coefficients(cell, pre.astype(np.float64))
        got = fused_coefficients(cell, pre)
    for name, g, e in zip(("logit", "log_a", "log_b"), got, exact, strict=True):
        assert g.dtype == dtype and g.shape == (1, width)
        assert not np.isnan(g).any(), name
        assert scaled_error(g, e) < ERROR_BOUND[dtype], name

    logit, log_a = exact[0], exact[1]
    with np.errstate(over="ignore", invalid="ignore"):
        exact_grad = array_gradients(cell, grad_log_a.astype(np.float64), grad_log_b.astype(np.float64),
                                     log_a, logit, pre.astype(np.float64))
        got_grad = fused_gradients(cell, grad_log_a, grad_log_b, logit.astype(dtype), pre)
    assert got_grad.dtype == dtype and got_grad.shape == pre.shape
    finite = np.isfinite(exact_grad)
    assert (np.isfinite(got_grad) == finite).all()
    assert scaled_error(got_grad[finite], exact_grad[finite]) < ERROR_BOUND[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_array_path_logit_gradient_keeps_the_relative_accuracy_of_sigma(dtype):
    """``dL/ds = -sigma(s)`` for ``dL/dlog a = 1``: a few ulp of sigma(s) itself, at every logit.

    (Formed as ``exp(log a + s)``, it carried the rounding of ``log a``: 1e-6 relative near s = 16
    in float32.) This is the path CuPy arrays take.
    """
    s = np.concatenate([VALUES, np.linspace(-30, 30, 2401)]).astype(dtype)[None]
    log_a, _ = _minrnn.mixture_coefficients(s, np.zeros_like(s))
    got = _minrnn.logit_backward(np.ones_like(s), np.zeros_like(s), log_a, s, out=np.empty_like(s))
    exact = -np.exp(-np.logaddexp(0, -s.astype(np.longdouble)))
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(got - exact) <= 4 * eps * np.abs(exact) + np.finfo(dtype).tiny)


@pytest.mark.parametrize("negate", [False, True], ids=["sigma(x)", "sigma(-x)"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_array_path_sigmoid_keeps_its_relative_accuracy(dtype, negate):
    """The sigmoid of the array path (minLSTM's gates, step mode) within 4 ulp of itself, however small."""
    x = np.concatenate([VALUES, -VALUES, np.linspace(-30, 30, 2401), [np.inf, -np.inf]]).astype(dtype)
    got = sigmoid(x, negate=negate)
    sign = -1 if negate else 1
    with np.errstate(over="ignore"):
        exact = np.exp(-np.logaddexp(0, -sign * x.astype(np.longdouble)))
    eps = np.finfo(dtype).eps
    assert got.dtype == dtype
    assert np.all(np.abs(got - exact) <= 4 * eps * exact + np.finfo(dtype).tiny)
    assert np.isnan(sigmoid(np.array([np.nan], dtype), negate=negate)).all()


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_fused_gates_propagate_nan_to_their_own_element_only(cell):
    n_gates = 2 if cell == "mingru" else 3
    pre = np.zeros((2, 3, n_gates * 4), np.float32)
    pre[1, 2, 4 * (n_gates - 1) + 1] = np.nan          # one candidate
    pre[0, 1, 2] = np.nan                              # one gate
    _, log_a, log_b = fused_coefficients(cell, pre)
    nan_b = np.zeros(log_b.shape, bool)
    nan_b[1, 2, 1] = nan_b[0, 1, 2] = True
    np.testing.assert_array_equal(np.isnan(log_b), nan_b)
    nan_a = np.zeros(log_a.shape, bool)
    nan_a[0, 1, 2] = True
    np.testing.assert_array_equal(np.isnan(log_a), nan_a)


def test_fused_path_applies_only_to_contiguous_float_numpy_arrays(monkeypatch):
    pre = np.zeros((2, 3, 8), np.float32)
    assert _fused_cpu.applies(pre)
    assert _fused_cpu.applies(pre.astype(np.float64))
    assert not _fused_cpu.applies(pre.astype(np.float16))
    assert not _fused_cpu.applies(pre[:, ::2])
    assert not _fused_cpu.applies(pre[0, 0])
    assert not _fused_cpu.applies(pre.tolist())
    monkeypatch.setattr(_fused_cpu, "ENABLED", False)
    assert not _fused_cpu.applies(pre)


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_layers_take_the_fused_path_on_numpy(cell, monkeypatch):
    from logscan import nn

    calls = []
    kernels = _fused_cpu._kernels()

    class Spy:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(kernels, name)

    monkeypatch.setattr(_fused_cpu, "_kernels", Spy)
    rng = np.random.default_rng(0)
    params = getattr(nn, f"{cell}_init")(3, 4, rng=rng, dtype=np.float32)
    h, cache = getattr(nn, f"{cell}_forward")(params, rng.standard_normal((2, 5, 3)).astype(np.float32))
    getattr(nn, f"{cell}_backward")(params, cache, np.ones_like(h))
    assert calls == [f"{cell}_coefficients", f"{cell}_gradients"]
